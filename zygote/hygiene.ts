// Post-fork hygiene in the job child, before any job code runs (Android's postForkChild).
import crypto from 'node:crypto';
import { syncBuiltinESMExports } from 'node:module';
import { native } from '../lib/native.js';

/** Math.random drawing from the OS CSPRNG: V8's generator state was copied from the zygote. */
function installRandom(): void {
  const pool = new Uint32Array(1024);
  let next = pool.length;
  Math.random = function random(): number {
    if (next + 2 > pool.length) {
      crypto.randomFillSync(pool);
      next = 0;
    }
    const hi = pool[next++] >>> 5; // 27 bits
    const lo = pool[next++] >>> 6; // 26 bits
    return (hi * 67108864 + lo) / 9007199254740992;
  };
}

/** randomUUID without Node's entropy cache, which the zygote may have filled for every child. */
function installRandomUUID(): void {
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

export function postForkChild(onFatal: (err: unknown) => void, onUnsettled: () => void): void {
  fixProcessIds();
  routeExits(onFatal, onUnsettled);
  installRandom();
  installRandomUUID();
}
