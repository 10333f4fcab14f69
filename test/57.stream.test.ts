// spawner.stream(): RecordBatches while the child still produces them, with backpressure, the
// job's errors, and early exit.
import { expect } from 'chai';
import type { RecordBatch } from 'apache-arrow';
import { Spawner, JobFailedError, InvalidOutputError } from '../lib/index.js';
import { expectCode, fixture } from './helpers.js';

describe('streaming Arrow results', function () {
  let spawner: Spawner;

  before(async function () {
    spawner = await Spawner.start({ selfTest: false });
  });

  after(async function () {
    await spawner?.close();
  });

  it('yields each batch while the job is still making the next', async function () {
    const got: Array<{ index: number; at: number }> = [];
    for await (const batch of spawner.stream(fixture('batches.mjs'), { count: 3, pauseMs: 300 })) {
      got.push({ index: batch.getChild('index')!.get(0) as number, at: Date.now() });
    }
    expect(got.map((g) => g.index)).to.deep.equal([0, 1, 2]);
    // The first batch arrived before the job had made the second.
    expect(got[1].at - got[0].at).to.be.greaterThan(200);
  });

  it('holds a fast job back while the consumer is slow (backpressure)', async function () {
    const s = spawner.stream(fixture('batches.mjs'), { count: 120, rows: 16384 }, { timeout: 60_000 });
    let pauseEnd = 0;
    let latest = 0;
    let n = 0;
    for await (const batch of s) {
      if (n++ === 0) {
        await new Promise((r) => setTimeout(r, 600));
        pauseEnd = Date.now();
      }
      latest = Math.max(latest, batch.getChild('madeAt')!.get(0) as number);
    }
    expect(n).to.equal(120);
    expect(latest, 'some batches were only made after the consumer read again').to.be.greaterThan(pauseEnd);
    await s.result;
  });

  it('collects a streamed result into one table with run()', async function () {
    const r = await spawner.run(fixture('batches.mjs'), { count: 4, rows: 5 });
    expect(r.table!.numRows).to.equal(20);
    expect([...r.table!.getChild('index')!].filter((v, i) => i % 5 === 0)).to.deep.equal([0, 1, 2, 3]);
  });

  it("ends the iteration with the job's error when it fails part way, after the batches it made", async function () {
    const seen: number[] = [];
    let err: unknown;
    try {
      for await (const batch of spawner.stream(fixture('batches.mjs'), { count: 5, failAfter: 2 })) seen.push(batch.getChild('index')!.get(0) as number);
    } catch (e) {
      err = e;
    }
    expect(seen).to.deep.equal([0, 1]);
    expect(err).to.be.instanceOf(JobFailedError);
    expect((err as JobFailedError).remote.message).to.equal('failed after 2 batches');
    await expectCode(spawner.run(fixture('batches.mjs'), { count: 5, failAfter: 2 }), 'ERR_JOB_FAILED');
  });

  it('kills the job when the consumer stops early', async function () {
    const s = spawner.stream(fixture('batches.mjs'), { count: 1000, pauseMs: 20 });
    let first: RecordBatch | undefined;
    for await (const batch of s) {
      first = batch;
      break;
    }
    expect(first!.numRows).to.equal(10);
    await expectCode(s.result, 'ERR_ABORTED');
  });

  it('refuses a job that returns a plain value', async function () {
    let err: unknown;
    try {
      for await (const _ of spawner.stream(fixture('echo.mjs'), 1)) void _;
    } catch (e) {
      err = e;
    }
    expect(err).to.be.instanceOf(InvalidOutputError);
  });

  it('streams the batches of a job that returns a whole Table', async function () {
    let rows = 0;
    for await (const batch of spawner.stream(fixture('table.mjs'), { n: 100 })) rows += batch.numRows;
    expect(rows).to.equal(100);
  });
});
