// A producer: sends sales tables to the `reports` queue and prints each region's totals as the
// workers send them back. The app process runs no job code itself.
//
//   REDIS_URL=redis://127.0.0.1:6379 node examples/bullmq/producer.mjs [jobs]
import { tableFromArrays } from 'apache-arrow';
import { RemoteSpawner, FileResultStore } from 'nodespawner/bullmq';
import { connection } from './connection.mjs';

const jobs = Number(process.argv[2] ?? 4);
const remote = new RemoteSpawner({
  queue: 'reports',
  connection: connection(),
  results: process.env.RESULT_DIR ? { store: new FileResultStore(process.env.RESULT_DIR) } : {},
});
const regions = ['north', 'south', 'east', 'west'];
try {
  const runs = Array.from({ length: jobs }, async (_, day) => {
    const n = 1000;
    const sales = tableFromArrays({
      region: Array.from({ length: n }, (_, i) => regions[(i * 7 + day) % regions.length]),
      amount: Float64Array.from({ length: n }, (_, i) => ((i * 37 + day) % 100) + 0.5),
    });
    const r = await remote.run('totals', { day }, { inputs: { sales }, timeout: 10_000 });
    const rows = r.table.toArray().map((row) => `${row.region} ${row.total.toFixed(1)}`);
    console.log(`day ${day}: ${rows.join(', ')} (${r.stdout.trim()})`);
  });
  await Promise.all(runs);
  try {
    await remote.run('no-such-job', {});
  } catch (e) {
    console.log(`an unregistered name: ${e.code}`);
  }
} finally {
  await remote.close();
}
