// Time limits and cancellation: a job past its timeout, a running job aborted, a queued job
// aborted before it starts, and AbortSignal.timeout() as a deadline that includes queue time.
//
//   node examples/abort-and-timeouts/index.mjs
//
// Where this user cannot create cgroups, run with NODESPAWNER_LIMITS=rlimit (see docs/deploy.md).
import { Spawner, NodespawnerError } from 'nodespawner';

const job = new URL('./job.mjs', import.meta.url);
// One job at a time, so that the third case has a job waiting in the queue.
const spawner = await Spawner.start({ concurrency: 1, timeout: 10_000 });

/** Runs `p` and prints how it ended: the value, or the error's code. */
async function report(what, p) {
  try {
    const r = await p;
    console.log(`${what}: ok ${JSON.stringify(r.value)}`);
  } catch (e) {
    if (!(e instanceof NodespawnerError)) throw e;
    const cause = e.code === 'ERR_ABORTED' && e.cause ? `; cause: ${e.cause.name}: ${e.cause.message}` : '';
    console.log(`${what}: ${e.code} (${e.message}${cause})`);
  }
}

try {
  // 1. Within its time limit: fine.
  await report('quick job', spawner.run(job, { ms: 10 }, { timeout: 5_000 }));

  // 2. Over it: killed with everything it started; ERR_TIMEOUT. Busy loops are killed too.
  await report('busy job over its timeout', spawner.run(job, { ms: 60_000, busy: true }, { timeout: 300 }));

  // 3. Aborted while running: ERR_ABORTED, and the child is killed.
  const running = new AbortController();
  const p = spawner.run(job, { ms: 60_000 }, { signal: running.signal });
  setTimeout(() => running.abort(new Error('the user clicked cancel')), 200);
  await report('running job aborted', p);

  // 4. Aborted while still queued: it never starts.
  const queued = new AbortController();
  const first = spawner.run(job, { ms: 300 });
  const second = spawner.run(job, { ms: 10 }, { signal: queued.signal });
  console.log(`queued: ${spawner.queued}, running: ${spawner.active}`);
  queued.abort();
  await report('queued job aborted', second);
  await report('the job ahead of it', first);

  // 5. A deadline for queue time and run time together: AbortSignal.timeout(). `timeout` counts
  //    only from the request to the child's exit.
  await report('deadline with AbortSignal.timeout', spawner.run(job, { ms: 60_000 }, { signal: AbortSignal.timeout(300) }));
} finally {
  await spawner.close();
}
