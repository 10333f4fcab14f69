// An app in TypeScript that runs a TypeScript job, its types flowing from the job to the result
// through defineJob:
//
//   node examples/typescript/index.mts          (Node 24, or 22.18+)
//
// Where this user cannot create cgroups, run with NODESPAWNER_LIMITS=rlimit (see docs/deploy.md).
import { tableFromArrays } from 'apache-arrow';
import { Spawner, defineJob } from 'nodespawner';
import type { Args, Totals } from './job.mts';

const totals = defineJob<Args, Totals>(new URL('./job.mts', import.meta.url));

const spawner = await Spawner.start();
try {
  const sales = tableFromArrays({ amount: Float64Array.of(10, 20, 30) });
  const r = await spawner.run(totals, { rate: 1.5 }, { inputs: { sales } });
  const value: Totals | undefined = r.value; // typed by defineJob
  console.log(`${value?.rows} sales, total ${value?.total}`);
} finally {
  await spawner.close();
}
