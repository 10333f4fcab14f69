// A worker: takes jobs from the BullMQ queue `reports` and runs each in a nodespawner sandbox.
// Run as many as you like, on as many machines as you like, all pointing at the same Redis.
//
//   REDIS_URL=redis://127.0.0.1:6379 node examples/bullmq/worker.mjs
//
// Environment: REDIS_URL (or REDIS_SOCKET, a unix socket path), RESULT_DIR (a directory every
// producer and worker shares, for inputs and results over 1 MiB), CONCURRENCY (default: the CPUs).
// SIGTERM (or Ctrl-C) drains: running jobs finish and report, nothing new starts.
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { startWorker, FileResultStore } from 'nodespawner/bullmq';
import { connection } from './connection.mjs';

const concurrency = Number(process.env.CONCURRENCY ?? availableParallelism());
const worker = await startWorker({
  queue: 'reports',
  connection: connection(),
  spawnerOptions: { concurrency, preload: ['apache-arrow'] },
  // The only modules this worker runs: a queued job names one of these, never a path.
  jobs: { totals: fileURLToPath(new URL('./totals.mjs', import.meta.url)) },
  concurrency,
  results: process.env.RESULT_DIR ? { store: new FileResultStore(process.env.RESULT_DIR) } : {},
});
worker.worker.on('completed', (job) => console.log(`done ${job.name} ${job.id}`));
worker.worker.on('failed', (job, err) => console.log(`failed ${job?.name} ${job?.id}: ${err.message}`));
worker.worker.on('closing', () => console.log('draining: running jobs finish, nothing new starts'));
await worker.worker.waitUntilReady();
console.log(`worker ${process.pid} ready (pid of its zygote: ${worker.spawner.pid}), concurrency ${concurrency}`);
