// Jobs side by side, close() with jobs in flight, and nothing left behind: no process, no fd.
import fs from 'node:fs';
import { expect } from 'chai';
import { ClosedError, Spawner } from '../lib/index.js';
import { descendants, expectCode, fixture, openFds, processTable, runningJob, stillAlive, waitFor } from './helpers.js';

interface Slept {
  start: number;
  end: number;
}

describe('concurrency', function () {
  let spawner: Spawner;

  before(async function () {
    spawner = await Spawner.start({ concurrency: 2, selfTest: false });
  });

  after(async function () {
    await spawner?.close();
  });

  it('runs two jobs at once with concurrency 2, and a third only after one of them ended', async function () {
    const [a, b, c] = await Promise.all([1, 2, 3].map(() => spawner.run<Slept>(fixture('sleep.mjs'), { ms: 600 })));
    const [ra, rb, rc] = [a.value!, b.value!, c.value!];
    expect(ra.start < rb.end && rb.start < ra.end, `the first two overlap: ${JSON.stringify([ra, rb])}`).to.equal(true);
    expect(rc.start, 'the third starts after the first or the second ended').to.be.at.least(Math.min(ra.end, rb.end));
  });

  it('counts active and queued jobs', async function () {
    const runs = [1, 2, 3].map(() => spawner.run(fixture('sleep.mjs'), { ms: 200 }));
    expect(spawner.active + spawner.queued).to.equal(3);
    expect(spawner.active).to.be.at.most(2);
    await Promise.all(runs);
    expect(spawner.active).to.equal(0);
    expect(spawner.queued).to.equal(0);
  });

  it("returns the app's open fd count to where it was after many jobs, failed ones included", async function () {
    const mixed = () => [
      spawner.run(fixture('echo.mjs'), 1),
      spawner.run(fixture('table.mjs'), { n: 100 }),
      spawner.run(fixture('throws.mjs'), { message: 'x' }).catch(() => null),
      spawner.run(fixture('exit.mjs'), { code: 2 }).catch(() => null),
      spawner.run(fixture('returns.mjs'), { kind: 'big' }, { maxResultBytes: 100 }).catch(() => null),
      spawner.run(fixture('loop.mjs'), {}, { timeout: 100 }).catch(() => null),
    ];
    await Promise.all(mixed()); // first use opens whatever Node opens lazily
    await new Promise((r) => setTimeout(r, 200)); // closing a destroyed stream's fd takes a loop turn
    const before = openFds();
    for (let i = 0; i < 8; i++) await Promise.all(mixed());
    const after = await waitFor(
      'fds to be closed',
      () => {
        const now = openFds();
        return now.size <= before.size ? now : null;
      },
      60_000,
    ).catch(() => openFds());
    const added = [...after].filter(([fd, t]) => before.get(fd) !== t);
    expect(after.size, `fds left open: ${JSON.stringify(added)}`).to.equal(before.size);
  });
});

describe('close()', function () {
  it('rejects running and queued jobs with ERR_CLOSED and leaves no process behind', async function () {
    const spawner = await Spawner.start({ concurrency: 1, selfTest: false, prefork: 0 });
    const zygote = spawner.pid;
    const running = spawner.run(fixture('sleep.mjs'), { ms: 60_000 });
    const queued = spawner.run(fixture('echo.mjs'), 'never runs');
    const { job, intermediate } = await runningJob(zygote);
    const zygoteInfo = processTable().get(zygote)!;
    const outcomes = [expectCode(running, 'ERR_CLOSED'), expectCode(queued, 'ERR_CLOSED')];
    await spawner.close();

    const [e1, e2] = await Promise.all(outcomes);
    expect(e1).to.be.instanceOf(ClosedError);
    expect(e2).to.be.instanceOf(ClosedError);
    await waitFor('every process of the spawner to be gone', () => ![job, intermediate, zygoteInfo].some(stillAlive), 60_000).catch(() => {});
    expect(stillAlive(zygoteInfo), 'zygote').to.equal(false);
    expect(stillAlive(intermediate), 'intermediate').to.equal(false);
    expect(stillAlive(job), 'job').to.equal(false);
    expect(descendants(zygote), 'processes whose parent chain leads to the zygote').to.deep.equal([]);

    await expectCode(spawner.run(fixture('echo.mjs'), 1), 'ERR_CLOSED');
    await spawner.close(); // idempotent
  });

  it("returns the app's open fd count to what it was before start", async function () {
    const before = openFds();
    const spawner = await Spawner.start({ selfTest: false });
    await spawner.run(fixture('echo.mjs'), 1);
    await spawner.close();
    await new Promise((r) => setImmediate(r));
    const after = openFds();
    const added = [...after].filter(([fd, t]) => before.get(fd) !== t);
    expect(after.size, `fds left open: ${JSON.stringify(added)}`).to.equal(before.size);
  });

  it('rejects run() after close with ERR_CLOSED', async function () {
    const spawner = await Spawner.start({ selfTest: false });
    const zygote = processTable().get(spawner.pid)!;
    await spawner.close();
    await expectCode(spawner.run(fixture('echo.mjs'), 1), 'ERR_CLOSED');
    expect(stillAlive(zygote)).to.equal(false);
    expect(fs.existsSync(`/proc/${zygote.pid}`) && processTable().get(zygote.pid)?.start === zygote.start).to.equal(false);
  });
});
