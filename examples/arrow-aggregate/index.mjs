// An Arrow table goes in (`inputs`), an aggregated Arrow table comes out (`r.table`).
//
//   node examples/arrow-aggregate/index.mjs
//
// Where this user cannot create cgroups, run with NODESPAWNER_LIMITS=rlimit (see docs/deploy.md).
import { tableFromArrays } from 'apache-arrow';
import { Spawner } from 'nodespawner';

const sales = tableFromArrays({
  region: ['north', 'south', 'north', 'east', 'south', 'north', 'east', 'west'],
  amount: Float64Array.of(120, 80, 40, 200, 20, 60, 100, 5),
});

const spawner = await Spawner.start({ concurrency: 2 });
try {
  const r = await spawner.run(new URL('./job.mjs', import.meta.url), { minAmount: 10 }, { timeout: 5_000, inputs: { sales } });
  const byRegion = r.table;
  console.log(`${sales.numRows} sales in, ${byRegion.numRows} regions out (columns: ${byRegion.schema.fields.map((f) => f.name).join(', ')})`);
  for (const row of byRegion) {
    const { region, count, total, mean } = row.toJSON();
    console.log(`${region}\t${count}\t${total}\t${mean}`);
  }
} finally {
  await spawner.close();
}
