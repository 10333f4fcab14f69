// A throwaway redis-server for the tests and the benchmark: on a unix socket in a temp directory,
// no TCP port, persistence off; stopped (and its directory removed) by stop().
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface RedisServer {
  /** The unix socket: `connection: { path: socket }`. */
  socket: string;
  process: ChildProcess;
  stop(): Promise<void>;
}

/** The redis-server binary (NODESPAWNER_REDIS_SERVER, else from PATH), or why there is none. */
export function findRedisServer(): { path: string } | { missing: string } {
  const path = process.env.NODESPAWNER_REDIS_SERVER || 'redis-server';
  const r = spawnSync(path, ['--version'], { encoding: 'utf8', timeout: 10_000 });
  if (r.error || r.status !== 0) return { missing: `${path} cannot run (${r.error?.message ?? r.stderr.trim()}); Debian: apt-get install redis-server` };
  return { path };
}

/** Starts redis-server and resolves once it accepts connections. */
export function startRedisServer(binary: string): Promise<RedisServer> {
  const dir = mkdtempSync(join(tmpdir(), 'nodespawner-redis-'));
  chmodSync(dir, 0o700);
  const socket = join(dir, 'redis.sock');
  const child = spawn(
    binary,
    ['--port', '0', '--unixsocket', socket, '--unixsocketperm', '700', '--save', '', '--appendonly', 'no', '--dir', dir, '--loglevel', 'notice'],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let output = '';
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
    rmSync(dir, { recursive: true, force: true });
  };
  return new Promise((resolve, reject) => {
    const onData = (d: Buffer) => {
      output += d;
      if (/ready to accept connections/i.test(output)) {
        child.stdout!.off('data', onData);
        child.stdout!.resume();
        resolve({ socket, process: child, stop });
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', (d) => (output += d));
    child.once('error', (e) => {
      rmSync(dir, { recursive: true, force: true });
      reject(e);
    });
    child.once('exit', (code, signal) => {
      rmSync(dir, { recursive: true, force: true });
      reject(new Error(`redis-server exited (${signal ?? `code ${code}`}) before it was ready: ${output.trim().slice(-2000)}`));
    });
  });
}
