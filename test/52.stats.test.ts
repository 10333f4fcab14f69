// spawner.stats() and the spawn / exit events.
import { expect } from 'chai';
import { Spawner } from '../lib/index.js';
import { fixture } from './helpers.js';

describe('stats and events', function () {
  it('counts completions and failures by code, and keeps wait and run histograms', async function () {
    const spawner = await Spawner.start({ selfTest: false, concurrency: 2 });
    const spawned: Array<{ id: number; pid: number }> = [];
    const exited: Array<{ id: number; code: string | null }> = [];
    spawner.on('spawn', (e) => spawned.push(e));
    spawner.on('exit', (e) => exited.push(e));
    try {
      await Promise.all([
        spawner.run(fixture('echo.mjs'), 1),
        spawner.run(fixture('echo.mjs'), 2),
        spawner.run(fixture('throws.mjs'), { message: 'x' }).catch(() => null),
        spawner.run(fixture('loop.mjs'), {}, { timeout: 50 }).catch(() => null),
      ]);
      const s = spawner.stats();
      expect(s.completed).to.equal(2);
      expect(s.failed).to.deep.equal({ ERR_JOB_FAILED: 1, ERR_TIMEOUT: 1 });
      expect(s.queued).to.equal(0);
      expect(s.running).to.equal(0);
      expect(s.run.count).to.equal(2);
      expect(s.run.p50).to.be.greaterThan(0);
      expect(s.run.max).to.be.at.least(s.run.p99);
      expect(s.wait.count).to.equal(2);
      expect(s.phases.forkMs.count).to.equal(2);
      expect(s.phases.forkMs.mean).to.be.greaterThan(0);
      expect(s.phases.jobMs.max).to.be.at.least(s.phases.jobMs.p50);
      expect(new Set(spawned.map((e) => e.id)).size).to.equal(4);
      expect(spawned.map((e) => e.id).sort()).to.deep.equal(exited.map((e) => e.id).sort());
      expect(spawned.every((e) => e.pid > 0)).to.equal(true);
      expect(exited.map((e) => e.code).sort()).to.deep.equal(['ERR_JOB_FAILED', 'ERR_TIMEOUT', null, null]);
    } finally {
      await spawner.close();
    }
  });
});
