// Through the queue: the benchmark's job run with RemoteSpawner.run() by one and by two worker
// processes (nodespawner/bullmq, each worker a Spawner of concurrency 2), beside Spawner.run() in
// this process. Needs a redis-server binary (started here on a unix socket, persistence off).
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Spawner } from '../lib/index.js';
import { RemoteSpawner } from '../lib/bullmq/index.js';
import { findRedisServer, startRedisServer } from './redis-server.js';
import { checkTable, closedLoop, fixture, jobArgs, progress, sequential, summarize } from './util.js';
import type { RunOne, Summary } from './util.js';

export interface QueueRow {
  label: string;
  /** One job at a time. */
  c1: Summary;
  /** Jobs per second with `inFlight` jobs in flight. */
  perSec: number;
}

export const inFlight = 4;

function startWorkerProcess(socket: string, queue: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, [fileURLToPath(new URL('./bullmq-worker.js', import.meta.url)), socket, queue], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    child.stdout!.once('data', () => resolve(child));
    child.once('exit', (code, signal) => reject(new Error(`a benchmark worker exited (${signal ?? code}) before it was ready`)));
  });
}

/** SIGTERM (they drain) and wait for their exit. */
async function stop(workers: ChildProcess[]): Promise<void> {
  await Promise.all(
    workers.map((w) => {
      if (w.exitCode !== null || w.signalCode !== null) return null;
      const exited = new Promise((r) => w.once('exit', r));
      w.kill('SIGTERM');
      return exited;
    }),
  );
}

async function measure(label: string, run: RunOne, n: number, warmup: number): Promise<QueueRow> {
  progress(`through the queue: ${label}`);
  await closedLoop(run, inFlight, Math.max(warmup, inFlight));
  const c1 = summarize((await sequential(run, n)).latencies);
  const m = await closedLoop(run, inFlight, 2 * n);
  return { label, c1, perSec: (m.latencies.length / m.wallMs) * 1000 };
}

export async function queueBench(n: number, warmup: number): Promise<QueueRow[] | { skipped: string }> {
  const found = findRedisServer();
  if ('missing' in found) return { skipped: found.missing };
  const rows: QueueRow[] = [];
  const spawner = await Spawner.start({ concurrency: 2 });
  try {
    rows.push(
      await measure('Spawner.run(), in this process', async () => checkTable((await spawner.run(fixture('job.mjs'), jobArgs)).table, 'direct'), n, warmup),
    );
  } finally {
    await spawner.close();
  }
  const redis = await startRedisServer(found.path);
  const workers: ChildProcess[] = [];
  try {
    for (const count of [1, 2]) {
      const queue = `bench-${count}`;
      for (let i = 0; i < count; i++) workers.push(await startWorkerProcess(redis.socket, queue));
      const remote = new RemoteSpawner({ queue, connection: { path: redis.socket } });
      try {
        rows.push(
          await measure(
            `RemoteSpawner.run(), ${count} worker${count > 1 ? 's' : ''}`,
            async () => checkTable((await remote.run('job', jobArgs)).table, 'queue'),
            n,
            warmup,
          ),
        );
      } finally {
        await remote.close();
        await stop(workers.splice(0));
      }
    }
  } finally {
    await stop(workers);
    await redis.stop();
  }
  return rows;
}
