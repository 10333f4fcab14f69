// The smallest nodespawner app: start a spawner, run one job, print what came back.
//
//   node examples/hello/index.mjs
//
// Where this user cannot create cgroups, run with NODESPAWNER_LIMITS=rlimit (see docs/deploy.md).
import { Spawner } from 'nodespawner';

const spawner = await Spawner.start();
try {
  const r = await spawner.run(new URL('./job.mjs', import.meta.url), { name: 'world' }, { timeout: 5_000 });
  console.log(r.value.greeting);
  console.log(`the job ran as pid ${r.value.pid}, uid ${r.value.uid}, on host ${r.value.hostname}`);
  console.log(`its stdout: ${r.stdout.trim()}`);
  console.log(`round trip: ${r.durationMs.toFixed(1)} ms`);
} finally {
  await spawner.close();
}
