// Runs the job runner's own hot paths in the zygote before serving, so that every child starts
// with their code already compiled (V8 keeps it in the heap that the fork copies).
import { tableFromArrays, tableFromIPC, tableToIPC } from 'apache-arrow';
import { T, decode, encode, fromWire, payloadParts, readPayload, timingsFrame, toWire } from '../lib/wire.js';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Linker } from './linker.js';

const commonBuiltins = [
  'buffer',
  'child_process',
  'crypto',
  'events',
  'fs',
  'fs/promises',
  'os',
  'path',
  'stream',
  'stream/promises',
  'string_decoder',
  'timers',
  'timers/promises',
  'url',
  'util',
  'zlib',
];

export async function warmUp(linker: Linker, rounds = 40): Promise<void> {
  warmRunner(rounds);
  warmRunnerIo();
  await linker.warmBuiltins(commonBuiltins);
  linker.warmTypeScript();
  await linker.warmUp(fileURLToPath(new URL('./warm-up-job.js', import.meta.url)));
}

/**
 * The runner's I/O, which only children did: a payload read from its fd, a Timings frame, writes
 * to an fd. Done on /dev/null, so that Node's code for it is compiled here: a child took 0.47-0.60
 * ms for its first Timings frame and write, 0.05-0.09 ms after this.
 */
function warmRunnerIo(): void {
  let fd: number;
  try {
    fd = fs.openSync('/dev/null', 'r+');
  } catch {
    return; // a speed-up only: without /dev/null, children compile this themselves
  }
  try {
    for (let i = 0; i < 3; i++) {
      fs.readFileSync(fd);
      const frame = timingsFrame({ started: 1n, imported: 2n, received: 3n, returned: 4n });
      fs.writeSync(fd, frame, 0, frame.length);
      fs.writeSync(fd, Uint8Array.of(1));
    }
  } finally {
    fs.closeSync(fd);
  }
}

/** The runner's own paths: payload and value coding, a table's IPC both ways. */
function warmRunner(rounds: number): void {
  const n = 1000;
  for (let i = 0; i < rounds; i++) {
    const table = tableFromArrays({
      id: Int32Array.from({ length: n }, (_, k) => k),
      value: Float64Array.from({ length: n }, (_, k) => k * 0.5),
      label: Array.from({ length: 16 }, (_, k) => `row ${k}`).concat(Array(n - 16).fill('x')),
    });
    const ipc = tableToIPC(table, 'stream');
    tableFromIPC(ipc);
    const back = readPayload(Buffer.concat(payloadParts(toWire(args), [{ name: 't', ipc }])));
    fromWire(back.args);
    tableFromIPC(back.inputs[0].ipc);
  }
  warmValueCoding(rounds);
}

const args = { n: 1000, scale: 1.5, tags: ['a', 'b'], nested: { ok: true, none: null, big: 12n, bytes: new Uint8Array(4) } };
const rows = Array.from({ length: 200 }, (_, k) => ({ i: k, s: `v${k}`, ok: k % 2 === 0, f: k / 3, none: null, list: [k, 'x'] }));

/**
 * Arguments and result values, both ways, and an error report: code that depends on no job's data
 * shapes, so its optimized code stays valid in every child. Run again after the zygote's last full
 * GC, which discards optimized code (see prepareHeap in main.ts).
 */
export function warmValueCoding(rounds: number): void {
  for (let i = 0; i < rounds; i++) {
    fromWire(readPayload(Buffer.concat(payloadParts(toWire(args), []))).args);
    fromWire(decode(T.Value, encode(T.Value, toWire({ count: rows.length, rows, big: 1n, bytes: new Uint8Array(2) }, 'result'))));
    encode(T.JobError, { name: 'Error', message: 'warm', stack: 'Error: warm', code: null });
  }
}

/**
 * The runner's result path again after the zygote's last full GC, on a table of 2 rows with the
 * warm-up's column kinds. The table is built now, before that GC, and kept alive by the returned
 * function, which encodes it twice. The GC frees the maps that only the warm-up's dead objects used
 * and discards the optimized code that embedded them: without this, every child compiled
 * flatbuffers' `writeInt16` again, synchronously, in the encoding of its result, and deoptimized it
 * at once ("insufficient type feedback"). Twice, because after one or three encodings a small
 * function of the writer (`capacity`, `offset`) sits at its tier-up point and every child compiles
 * it instead (test/22.prefork traces the child's compiles).
 */
export function resultRehearsal(): () => void {
  const table = tableFromArrays({ id: Int32Array.of(1, 2), value: Float64Array.of(0.5, 1.5), label: ['a', 'b'] });
  return () => {
    for (let i = 0; i < 2; i++) tableToIPC(table, 'stream');
  };
}
