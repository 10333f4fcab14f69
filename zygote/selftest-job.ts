// The zygote's fork self-test, also run by the test suite as an ordinary job: everything a job
// may use that a fork without exec can break. Returns {checks: {name: 'ok' | reason}, ...}.
import fs from 'node:fs';
import zlib from 'node:zlib';
import crypto from 'node:crypto';
import { promisify } from 'node:util';

// (module (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add))
const wasmAdd = Uint8Array.from([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x01, 0x07, 0x01, 0x60, 0x02, 0x7f, 0x7f, 0x01, 0x7f, 0x03, 0x02, 0x01, 0x00, 0x07, 0x07, 0x01, 0x03, 0x61,
  0x64, 0x64, 0x00, 0x00, 0x0a, 0x09, 0x01, 0x07, 0x00, 0x20, 0x00, 0x20, 0x01, 0x6a, 0x0b,
]);

function withTimeout<T>(name: string, p: Promise<T>, ms = 5000): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${name} did not finish within ${ms} ms`)), ms);
    }),
  ]);
}

const checks: Record<string, () => Promise<void>> = {
  async timers() {
    const t0 = Date.now();
    await new Promise((r) => setTimeout(r, 5));
    if (Date.now() - t0 < 4) throw new Error('setTimeout fired early');
    await new Promise((r) => setImmediate(r));
  },
  async promises() {
    const v = await Promise.all([1, Promise.resolve(2), new Promise((r) => queueMicrotask(() => r(3)))]);
    if (v.join() !== '1,2,3') throw new Error(`got ${v.join()}`);
  },
  async syncFs() {
    const status = fs.readFileSync('/proc/self/status', 'utf8');
    if (!status.includes('Pid:')) throw new Error('unexpected /proc/self/status');
  },
  async asyncFs() {
    const status = await fs.promises.readFile('/proc/self/status', 'utf8');
    if (!status.includes('Pid:')) throw new Error('unexpected /proc/self/status');
    await new Promise<void>((resolve, reject) => fs.stat('/', (err) => (err ? reject(err) : resolve())));
  },
  async zlib() {
    const input = Buffer.alloc(100_000, 'nodespawner ');
    const out = await promisify(zlib.gunzip)(await promisify(zlib.gzip)(input));
    if (!out.equals(input)) throw new Error('gzip round trip differs');
    zlib.gunzipSync(zlib.gzipSync(input));
  },
  async crypto() {
    const key = await promisify(crypto.pbkdf2)('secret', 'salt', 1000, 32, 'sha256');
    if (key.length !== 32) throw new Error('pbkdf2 length');
    crypto.createHash('sha256').update('x').digest('hex');
    crypto.randomBytes(16);
    await promisify(crypto.randomBytes)(16);
  },
  async webAssembly() {
    const module = await WebAssembly.compile(wasmAdd);
    const instance = await WebAssembly.instantiate(module);
    const add = instance.exports.add as (a: number, b: number) => number;
    if (add(2, 3) !== 5) throw new Error('add(2, 3) !== 5');
  },
  async garbageCollection() {
    // Enough short-lived garbage for several scavenges and at least one mark-compact.
    let keep: number[][] = [];
    for (let i = 0; i < 400; i++) {
      keep.push(new Array(50_000).fill(i));
      if (keep.length > 40) keep = keep.slice(20);
    }
    const big = Buffer.alloc(64 * 2 ** 20, 1);
    if (big[big.length - 1] !== 1) throw new Error('large buffer');
  },
  async processIdentity() {
    if (process.pid !== 1) throw new Error(`process.pid is ${process.pid}, expected 1 (PID namespace)`);
  },
};

export default async function selfTest() {
  const results: Record<string, string> = {};
  for (const [name, check] of Object.entries(checks)) {
    try {
      await withTimeout(name, check());
      results[name] = 'ok';
    } catch (err) {
      results[name] = (err as Error)?.message ?? String(err);
    }
  }
  return {
    checks: results,
    pid: process.pid,
    random: Math.random(),
    uuid: crypto.randomUUID(),
    webUuid: globalThis.crypto.randomUUID(),
    bytes: crypto.randomBytes(16).toString('hex'),
  };
}
