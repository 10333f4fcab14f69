// Post-fork hygiene (Android's postForkChild). What can be prepared in the zygote is prepared
// there once (installInZygote); the child only invalidates state copied from the zygote.
import crypto from 'node:crypto';
import { syncBuiltinESMExports } from 'node:module';
import { native } from '../lib/native.js';

const pool = new Uint32Array(1024);
let next = pool.length;

/** Math.random drawing from the OS CSPRNG: V8's generator state would be copied from the zygote. */
function random(): number {
  if (next + 2 > pool.length) {
    crypto.randomFillSync(pool);
    next = 0;
  }
  const hi = pool[next++] >>> 5; // 27 bits
  const lo = pool[next++] >>> 6; // 26 bits
  return (hi * 67108864 + lo) / 9007199254740992;
}

/**
 * Installed once in the zygote, before any fork: Math.random from the pool above, and randomUUID
 * without Node's entropy cache (a cache filled in the zygote would repeat in every child).
 */
export function installInZygote(): void {
  Math.random = random;
  const original = crypto.randomUUID;
  const fresh = (_options?: crypto.RandomUUIDOptions) => original({ disableEntropyCache: true });
  crypto.randomUUID = fresh;
  const web = globalThis.crypto as Crypto | undefined;
  if (web && typeof web.randomUUID === 'function') {
    Object.defineProperty(web, 'randomUUID', { value: () => original({ disableEntropyCache: true }), configurable: true, writable: true });
  }
  syncBuiltinESMExports();
}

/** process.pid and ppid are cached at bootstrap: they name the zygote. */
function fixProcessIds(): void {
  Object.defineProperty(process, 'pid', { value: native.getpid(), configurable: true, enumerable: true, writable: false });
  Object.defineProperty(process, 'ppid', { value: native.getppid(), configurable: true, enumerable: true, writable: false });
}

/**
 * Every exit goes through _exit(): Node's own shutdown joins threads that the clone left behind
 * and would hang or crash. process.exit() still emits 'exit' first.
 */
function routeExits(onFatal: (err: unknown) => void, onUnsettled: () => void): void {
  (process as unknown as { reallyExit(code?: number): void }).reallyExit = (code?: number) => native.exit(code ?? 0);
  process.on('uncaughtException', (err) => onFatal(err));
  process.on('beforeExit', () => onUnsettled());
}

const usedStdio: NodeJS.WriteStream[] = [];

/** Notes which of process.stdout / stderr the job created, so that exit can drain just those. */
function trackStdio(): void {
  for (const name of ['stdout', 'stderr'] as const) {
    const d = Object.getOwnPropertyDescriptor(process, name);
    if (!d?.get) continue;
    const get = d.get;
    Object.defineProperty(process, name, {
      ...d,
      get() {
        const stream = get.call(process) as NodeJS.WriteStream;
        if (!usedStdio.includes(stream)) usedStdio.push(stream);
        return stream;
      },
    });
  }
}

/**
 * Leaves through _exit() once what the job wrote to stdout and stderr has reached the pipes:
 * libuv queues what a full pipe did not take, and _exit() would drop it.
 */
export function drainAndExit(code: number): void {
  const pending = usedStdio.filter((s) => s.writableLength > 0 && !s.destroyed);
  if (pending.length === 0) native.exit(code);
  let left = pending.length;
  for (const s of pending) s.write('', () => --left === 0 && native.exit(code));
  setTimeout(() => native.exit(code), 10_000).unref();
}

export function postForkChild(onFatal: (err: unknown) => void, onUnsettled: () => void): void {
  fixProcessIds();
  trackStdio();
  routeExits(onFatal, onUnsettled);
  next = pool.length; // the pool's bytes were copied from the zygote: never use them
}
