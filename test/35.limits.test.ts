// Per-job resource limits: cgroups (v1 or v2, whichever this host has) with exact outcomes, the
// rlimit fallback, and a clear start error where neither cgroups nor a fallback is allowed.
import { expect } from 'chai';
import fs from 'node:fs';
import { Spawner, OutOfMemoryError, StartError } from '../lib/index.js';
import { detectCgroups, parentDirs } from '../lib/cgroups.js';
import { expectCode, fixture, skipBecause } from './helpers.js';

const support = detectCgroups('nodespawner-probe', null);
const noCgroups = support.version === 0 ? support.reason : null;

function jobDirsUnder(dirs: string[]): string[] {
  return dirs.flatMap((d) => {
    try {
      return fs.readdirSync(d).filter((n) => n.startsWith('job-'));
    } catch {
      return [];
    }
  });
}

describe('limits with cgroups', function () {
  let spawner: Spawner;
  let parents: string[];

  before(async function () {
    if (noCgroups) skipBecause(this, `cgroups are not usable by this user (${noCgroups}); the rlimit and start-error tests below cover this host`);
    spawner = await Spawner.start({ concurrency: 2, sandbox: { limits: 'cgroup', memoryLimit: 2 * 2 ** 30, pids: 32 } });
    parents = parentDirs((spawner as unknown as { cgroups: Parameters<typeof parentDirs>[0] }).cgroups);
  });

  after(async function () {
    await spawner?.close();
  });

  it(`uses cgroup v${support.version} on this host and reports CPU time and peak memory of the whole job`, async function () {
    const r = await spawner.run(fixture('hog.mjs'), { what: 'cpu', ms: 200 });
    expect(r.cpuMs).to.be.greaterThan(100);
    expect(r.peakMemoryBytes).to.be.a('number').greaterThan(0);
  });

  it('kills a job that goes over memoryLimit with ERR_OUT_OF_MEMORY, read from the OOM events', async function () {
    const e = await expectCode(spawner.run(fixture('hog.mjs'), { what: 'memory' }, { memoryLimit: 128 * 2 ** 20, timeout: 20_000 }), 'ERR_OUT_OF_MEMORY');
    expect(e).to.be.instanceOf(OutOfMemoryError);
    expect(e.limit).to.equal(128 * 2 ** 20);
    // and the next job is fine
    const r = await spawner.run(fixture('echo.mjs'), 1);
    expect((r.value as { echo: number }).echo).to.equal(1);
  });

  it('stops a thread or process bomb at the pids limit, and the host stays fine', async function () {
    const r = await spawner.run(fixture('hog.mjs'), { what: 'threads', count: 200 }, { pids: 16, timeout: 20_000 });
    const v = r.value as { started: number; error: string | null };
    expect(v.error, 'creating one more thread failed').to.not.equal(null);
    expect(v.started).to.be.lessThan(16);
  });

  it('applies a CPU quota (cpu: 0.2 lets a busy job use about a fifth of the wall clock)', async function () {
    const r = await spawner.run(fixture('hog.mjs'), { what: 'cpu', ms: 600 }, { cpu: 0.2 });
    expect(r.cpuMs / 600).to.be.lessThan(0.6);
  });

  it('removes each job cgroup when the job ends, and the spawner cgroups on close', async function () {
    await Promise.all([spawner.run(fixture('echo.mjs'), 1), spawner.run(fixture('throws.mjs'), {}).catch(() => null)]);
    expect(jobDirsUnder(parents)).to.deep.equal([]);
    const s = await Spawner.start({ sandbox: { limits: 'cgroup' } });
    const own = parentDirs((s as unknown as { cgroups: Parameters<typeof parentDirs>[0] }).cgroups);
    expect(own.every((d) => fs.existsSync(d))).to.equal(true);
    await s.run(fixture('echo.mjs'), 1);
    await s.close();
    expect(own.some((d) => fs.existsSync(d))).to.equal(false);
  });
});

describe('limits without cgroups', function () {
  it('refuses to start, saying what to configure, when cgroups are unusable and no fallback was chosen', async function () {
    if (!noCgroups) skipBecause(this, `this user can use cgroup v${support.version} here; the unprivileged re-run covers this path`);
    let err: unknown;
    try {
      await Spawner.start({ sandbox: { limits: 'cgroup' } });
    } catch (e) {
      err = e;
    }
    expect(err).to.be.instanceOf(StartError);
    expect((err as StartError).reason).to.equal('cgroups');
    expect((err as Error).message).to.include("sandbox.limits to 'rlimit'");
  });

  it("falls back to rlimits when asked (sandbox.limits: 'rlimit'): a process limit still holds", async function () {
    const s = await Spawner.start({ sandbox: { limits: 'rlimit', pids: 16, memoryLimit: 2 * 2 ** 30 } });
    try {
      const r = await s.run(fixture('hog.mjs'), { what: 'threads', count: 64 }, { timeout: 20_000 });
      const v = r.value as { started: number; error: string | null };
      expect(v.error).to.not.equal(null);
      expect(v.started).to.be.lessThan(16);
      expect(r.peakMemoryBytes).to.equal(null);
    } finally {
      await s.close();
    }
  });
});
