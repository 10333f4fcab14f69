// A worker process of the queue benchmark (bench/bullmq.ts): the benchmark's job, registered as 'job'.
//   node dist/bench/bullmq-worker.js <redis socket> <queue>
import { startWorker } from '../lib/bullmq/index.js';
import { fixture } from './util.js';

const [socket, queue] = process.argv.slice(2);
const handle = await startWorker({
  queue,
  connection: { path: socket },
  spawnerOptions: { concurrency: 2 },
  jobs: { job: fixture('job.mjs') },
  concurrency: 2,
});
await handle.worker.waitUntilReady();
process.stdout.write('ready\n');
