// Many jobs of every outcome, then nothing left behind: no process, no app fd, no cgroup, no
// mount, no temp file.
import { expect } from 'chai';
import fs from 'node:fs';
import { tmpdir } from 'node:os';
import { Spawner } from '../lib/index.js';
import { detectCgroups, parentDirs } from '../lib/cgroups.js';
import { descendants, fixture, openFds, stillAlive, waitFor } from './helpers.js';

const jobs = Number(process.env.NODESPAWNER_SOAK_JOBS ?? 1200);
const cgroupsUsable = detectCgroups('nodespawner-probe', null).version !== 0;

/** A progress line for a long run: rewritten in place on a terminal, every quarter otherwise. */
function progress(done: number, total: number, outcomes: Map<string, number>): void {
  const line = `soak: ${Math.min(done, total)}/${total} jobs ${[...outcomes].map(([k, n]) => `${k}=${n}`).join(' ')}`;
  if (process.stderr.isTTY) process.stderr.write(`\r${line}`);
  else if (done % (Math.ceil(total / 80) * 20) === 0 || done >= total) process.stderr.write(`      ${line}\n`);
}

function mountCount(): number {
  return fs.readFileSync('/proc/self/mountinfo', 'utf8').trim().split('\n').length;
}

function tempEntries(): string[] {
  return fs
    .readdirSync(tmpdir())
    .filter((n) => n.startsWith('nodespawner'))
    .sort();
}

describe('soak', function () {
  it(`runs ${jobs} jobs mixing success, failures, timeouts, crashes, aborts${cgroupsUsable ? ' and OOMs' : ''}, and leaves nothing behind`, async function () {
    this.timeout(300_000);
    const before = { fds: openFds(), mounts: mountCount(), temp: tempEntries() };
    const spawner = await Spawner.start({ concurrency: 2, selfTest: false, sandbox: cgroupsUsable ? { limits: 'cgroup' } : {} });
    const cgroupDirs = parentDirs((spawner as unknown as { cgroups: Parameters<typeof parentDirs>[0] }).cgroups);
    const outcomes = new Map<string, number>();
    const count = (k: string) => outcomes.set(k, (outcomes.get(k) ?? 0) + 1);
    const kinds: Array<() => Promise<unknown>> = [
      () => spawner.run(fixture('echo.mjs'), { n: 1 }),
      () => spawner.run(fixture('table.mjs'), { n: 200 }),
      () => spawner.run(fixture('throws.mjs'), { message: 'soak' }),
      () => spawner.run(fixture('loop.mjs'), {}, { timeout: 50 }),
      () => spawner.run(fixture('crash.mjs'), { how: 'abort' }),
      () => spawner.run(fixture('exit.mjs'), { code: 3 }),
      () => spawner.run(fixture('sleep.mjs'), { ms: 5_000 }, { signal: AbortSignal.timeout(30) }),
      ...(cgroupsUsable ? [() => spawner.run(fixture('hog.mjs'), { what: 'memory' }, { memoryLimit: 96 * 2 ** 20 })] : []),
    ];
    let zygotePid = spawner.pid;
    for (let i = 0; i < jobs; i += 20) {
      await Promise.all(
        Array.from({ length: Math.min(20, jobs - i) }, (_, k) =>
          kinds[(i + k) % kinds.length]().then(
            () => count('ok'),
            (e: { code?: string }) => count(e.code ?? 'other'),
          ),
        ),
      );
      zygotePid = spawner.pid;
      progress(i + 20, jobs, outcomes);
    }
    if (process.stderr.isTTY) process.stderr.write('\n');
    expect(outcomes.get('ok')).to.be.greaterThan(0);
    for (const code of ['ERR_JOB_FAILED', 'ERR_TIMEOUT', 'ERR_JOB_CRASHED', 'ERR_ABORTED', ...(cgroupsUsable ? ['ERR_OUT_OF_MEMORY'] : [])]) {
      expect(outcomes.get(code), `${code} among ${JSON.stringify([...outcomes])}`).to.be.greaterThan(0);
    }
    expect(outcomes.get('other') ?? 0).to.equal(0);
    expect([...outcomes.keys()]).to.not.include('ERR_ZYGOTE_GONE');
    // While the zygote still runs: no intermediate or job left under it but the preforked
    // children waiting for a run (an intermediate and a child each, and a job cgroup).
    const waiting = () => spawner.stats().preforked.waiting;
    await waitFor('every job process to be reaped', () => descendants(zygotePid).length === 2 * waiting());
    expect(spawner.stats().preforked.runs, 'runs that went to preforked children').to.be.greaterThan(0);
    if (cgroupsUsable) {
      const left = cgroupDirs.flatMap((d) => fs.readdirSync(d).filter((n) => n.startsWith('job-')));
      expect(new Set(left).size, `job cgroups left: ${left}`).to.equal(waiting());
    }
    const last = descendants(zygotePid);
    await spawner.close();
    expect(last.filter(stillAlive), 'preforked children left after close()').to.deep.equal([]);
    if (cgroupsUsable)
      expect(
        cgroupDirs.filter((d) => fs.existsSync(d)),
        'spawner cgroups left',
      ).to.deep.equal([]);
    const after = await waitFor('app fds to be closed', () => (openFds().size <= before.fds.size ? openFds() : null), 60_000).catch(() => openFds());
    expect(
      [...after].filter(([fd, t]) => before.fds.get(fd) !== t),
      'app fds left open',
    ).to.deep.equal([]);
    expect(mountCount(), 'mounts').to.equal(before.mounts);
    expect(tempEntries(), 'temp files').to.deep.equal(before.temp);
  });
});
