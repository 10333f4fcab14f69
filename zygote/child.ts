// The job child, after Specialize(): decode the payload, import the job through the linker, call
// its default export, write the result, _exit(). Everything the app reads back is framed as
// one tag byte + body on the result pipe.
import fs from 'node:fs';
import { RecordBatch, RecordBatchStreamWriter, Table, tableFromIPC, tableToIPC } from 'apache-arrow';
import { native } from '../lib/native.js';
import { T, ResultTag, StreamRecord, encode, fromWire, readPayload, timingsFrame, toWire } from '../lib/wire.js';
import type { ChildMarks, RunRequest } from '../lib/wire.js';
import type { JobContext } from '../lib/define.js';
import type { Linker } from './linker.js';
import { drainAndExit, postForkChild } from './hygiene.js';

function writeAll(fd: number, bytes: Uint8Array): void {
  let off = 0;
  while (off < bytes.length) off += fs.writeSync(fd, bytes, off, bytes.length - off);
}

function writeFrame(fd: number, tag: number, body: Uint8Array): void {
  writeAll(fd, Uint8Array.of(tag));
  writeAll(fd, body);
}

function errorFields(err: unknown) {
  if (err instanceof Error) {
    const code = (err as Error & { code?: unknown }).code;
    return { name: err.name, message: err.message, stack: err.stack ?? null, code: typeof code === 'string' ? code : null };
  }
  return { name: 'Error', message: `job threw a non-Error value: ${String(err)}`, stack: null, code: null };
}

/** A job that returns an iterator (or async iterator) streams RecordBatches; arrays are values. */
function isBatchIterable(x: unknown): x is Iterable<RecordBatch> | AsyncIterable<RecordBatch> {
  if (typeof x !== 'object' || x === null || Array.isArray(x) || ArrayBuffer.isView(x) || x instanceof Table) return false;
  return typeof (x as AsyncIterable<unknown>)[Symbol.asyncIterator] === 'function' || typeof (x as Iterator<unknown>).next === 'function';
}

/**
 * Writes each batch to the result pipe as the job yields it: the app reads them while the job
 * still runs, and a full pipe blocks the job (backpressure).
 */
let streaming = false;
let streamClosed = false;

function u32(n: number): Uint8Array {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0);
  return b;
}

async function writeBatches(fd: number, batches: Iterable<RecordBatch> | AsyncIterable<RecordBatch>): Promise<void> {
  writeAll(fd, Uint8Array.of(ResultTag.Stream));
  streaming = true;
  const writer = new RecordBatchStreamWriter();
  const pump = (async () => {
    for await (const chunk of writer) {
      if (streamClosed) return; // the job failed: its error record is already written
      if (chunk.byteLength === 0) continue;
      writeAll(fd, u32(chunk.byteLength));
      writeAll(fd, chunk);
    }
  })();
  for await (const batch of batches) {
    if (!(batch instanceof RecordBatch)) {
      throw Object.assign(new TypeError(`a streaming job must yield apache-arrow RecordBatches, got ${typeof batch}`), { code: 'ERR_INVALID_OUTPUT' });
    }
    writer.write(batch);
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  writer.finish();
  await pump;
  writeAll(fd, u32(StreamRecord.End));
}

/** Monotonic ns (CLOCK_MONOTONIC, the app's clock too): the child's own phase marks. */
const now = () => process.hrtime.bigint();

/**
 * When the child reached each phase; sent as a Timings frame before the result so that the app
 * can split the child's time (the app clamps the values: they come from the job's process).
 */
const marks: ChildMarks = { started: 0n, imported: 0n, received: 0n, returned: 0n };

/**
 * A preforked child: says it is ready on the work socket, then blocks until the app assigns it a
 * run by sending the payload memfd. Nothing of the job runs while it waits. Returns the memfd.
 */
function awaitAssignment(workFd: number): number {
  try {
    native.sendMessage(workFd, Uint8Array.of(1), []);
  } catch {
    // The run may already be assigned and the app's end closed: its payload is still queued here.
  }
  let msg;
  try {
    msg = native.recvRequest(workFd);
  } catch {
    native.exit(1);
  }
  if (msg === null) native.exit(0); // ended unused
  native.close(workFd);
  if (msg.fds.length !== 1) {
    msg.fds.forEach((fd) => native.close(fd));
    native.exit(1);
  }
  return msg.fds[0];
}

export async function runChild(req: RunRequest, resultFd: number, payloadOrWorkFd: number, linker: Linker, startedNs: bigint): Promise<never> {
  marks.started = startedNs;
  let settled = false;
  let timingsSent = false;
  const sendTimings = () => {
    if (timingsSent) return;
    timingsSent = true;
    if (marks.returned === 0n) marks.returned = now();
    writeAll(resultFd, timingsFrame(marks));
  };
  const fail = (err: unknown, code = 1): never => {
    if (!settled) {
      settled = true;
      try {
        const fields = errorFields(err);
        if (streaming) {
          streamClosed = true;
          writeAll(resultFd, u32(StreamRecord.Failed));
        } else {
          sendTimings();
        }
        writeFrame(resultFd, ResultTag.Error, encode(T.JobError, fields));
        fs.writeSync(2, `${fields.stack ?? `${fields.name}: ${fields.message}`}\n`);
      } catch {
        // the app has gone; nothing to report to
      }
    }
    drainAndExit(code);
    return undefined as never;
  };
  postForkChild(fail, () => fail(new Error('the job returned a promise that never settled, and nothing else was pending'), 13));
  try {
    // The import comes first: a preforked child does it before its run is assigned.
    let ns: Record<string, unknown> | null = null;
    let importError: unknown = null;
    try {
      ns = await linker.importFile(req.modulePath);
    } catch (err) {
      importError = err;
    }
    marks.imported = now();
    const payloadFd = req.deferred ? awaitAssignment(payloadOrWorkFd) : payloadOrWorkFd;
    marks.received = now();
    if (importError !== null) throw importError;
    const payload = readPayload(fs.readFileSync(payloadFd));
    fs.closeSync(payloadFd);
    const args = fromWire(payload.args);
    const inputs: Record<string, Table> = {};
    for (const { name, ipc } of payload.inputs) inputs[name] = tableFromIPC(ipc);
    const main = ns!.default;
    if (typeof main !== 'function') {
      throw new TypeError(`job module ${req.modulePath} must have a default export that is a function, got ${typeof main}`);
    }
    const ctx: JobContext = { inputs, id: req.id };
    const result = await (main as (a: unknown, c: JobContext) => unknown)(args, ctx);
    marks.returned = now();
    if (isBatchIterable(result)) {
      sendTimings();
      await writeBatches(resultFd, result);
      settled = true;
      drainAndExit(0);
      return undefined as never;
    }
    let frame: [number, Uint8Array];
    try {
      frame = result instanceof Table ? [ResultTag.Table, tableToIPC(result, 'stream')] : [ResultTag.Value, encode(T.Value, toWire(result, 'result'))];
    } catch (err) {
      // The job ran, but what it returned cannot be sent: the app reports invalid output.
      throw Object.assign(err instanceof Error ? err : new Error(String(err)), { code: 'ERR_INVALID_OUTPUT' });
    }
    sendTimings();
    writeFrame(resultFd, frame[0], frame[1]);
    settled = true;
    drainAndExit(0);
    return undefined as never;
  } catch (err) {
    return fail(err);
  }
}
