// Preforked children (spawner option `prefork`): a module that has run keeps children forked,
// sandboxed and with the module imported, and the next runs go to them: one run per child, the
// run's own timeout, errors of the import reported by the run, nothing left behind.
import { expect } from 'chai';
import { Spawner } from '../lib/index.js';
import type { RunResult } from '../lib/index.js';
import { descendants, expectCode, fixture, procInfo, runProgram, stillAlive, waitFor } from './helpers.js';

/** Whether `pid` is a live process (not a zombie). */
function stillAliveAny(pid: number): boolean {
  const p = procInfo(pid);
  return p !== null && p.state !== 'Z';
}

type Token = { token: string; calls: number; id: number; args: unknown };

/** The zygote's grandchildren: jobs running and preforked children waiting. */
function children(zygotePid: number) {
  return descendants(zygotePid).filter((p) => p.depth === 2);
}

/** The phases of a run add up: requestMs..reapMs to totalMs, specializeMs..resultMs to runMs. */
function expectConsistent(t: RunResult['timings']): void {
  const close = (a: number, b: number) => expect(Math.abs(a - b), `${a} vs ${b}: ${JSON.stringify(t)}`).to.be.below(0.01);
  close(t.requestMs + t.forkMs + t.cloneMs + t.runMs + t.reapMs, t.totalMs);
  close(t.specializeMs + t.importMs + t.jobMs + t.resultMs, t.runMs);
  for (const [k, v] of Object.entries(t)) expect(v, k).to.be.at.least(0);
}

describe('preforked children', function () {
  describe('with prefork: 2', function () {
    let spawner: Spawner;

    before(async function () {
      spawner = await Spawner.start({ concurrency: 2, prefork: 2 });
    });

    after(async function () {
      await spawner?.close();
    });

    it('forks the first run of a module and gives the next runs to preforked children, one run each', async function () {
      const first = await spawner.run<Token>(fixture('token.mjs'), { n: 1 });
      expect(first.preforked).to.equal(false);
      await waitFor('two preforked children', () => spawner.stats().preforked.waiting === 2);
      // and no other process: the first run's child ends just after its run settled
      await waitFor('the first run to be gone', () => children(spawner.pid).length === 2);
      const runs: RunResult<Token>[] = [];
      for (let n = 2; n <= 4; n++) runs.push(await spawner.run<Token>(fixture('token.mjs'), { n }));
      for (const [i, r] of runs.entries()) {
        expect(r.preforked, `run ${i + 2}`).to.equal(true);
        expect(r.value!.args).to.deep.equal({ n: i + 2 });
        expect(r.value!.calls).to.equal(1);
      }
      const tokens = [first, ...runs].map((r) => r.value!.token);
      expect(new Set(tokens).size, 'each run had its own module instance').to.equal(4);
      expect(new Set([first, ...runs].map((r) => r.value!.id)).size).to.equal(4);
      expect(spawner.stats().preforked.runs).to.equal(3);
    });

    it('reports the phases: a preforked run skips fork, clone, specialize and import', async function () {
      await spawner.run(fixture('sum.mjs'), { values: [1] });
      await waitFor('preforked children of sum.mjs', () => spawner.stats().preforked.waiting >= 2);
      const cold = await spawner.run(fixture('token.mjs'), {}, { maxStdout: 1234 }); // other options: forked
      const warm = await spawner.run(fixture('sum.mjs'), { values: [1, 2] });
      expect(cold.preforked).to.equal(false);
      expect(warm.preforked).to.equal(true);
      expect(warm.value).to.equal(3);
      expectConsistent(cold.timings);
      expectConsistent(warm.timings);
      expect(cold.timings.forkMs).to.be.greaterThan(0);
      expect(cold.timings.specializeMs).to.be.greaterThan(0);
      expect(cold.timings.importMs).to.be.greaterThan(0);
      expect(cold.timings.jobMs).to.be.greaterThan(0);
      expect(cold.timings.resultMs).to.be.greaterThan(0);
      for (const k of ['forkMs', 'cloneMs', 'specializeMs', 'importMs'] as const) expect(warm.timings[k], k).to.equal(0);
      expect(warm.timings.requestMs).to.be.greaterThan(0);
      expect(warm.timings.jobMs).to.be.greaterThan(0);
      const phases = spawner.stats().phases;
      expect(phases.jobMs.count).to.be.greaterThan(0);
      expect(phases.specializeMs.max).to.be.greaterThan(0);
    });

    it("makes a run's replacement child after the run when runs are spaced out, and at once when another run is in flight", async function () {
      const s = await Spawner.start({ concurrency: 2, prefork: 2 });
      // A run that lasts until it is aborted: the test decides when runs end, not a clock.
      const hold = () => {
        const ac = new AbortController();
        return { ac, run: s.run(fixture('sleep.mjs'), { ms: 600_000 }, { signal: ac.signal, timeout: 3_600_000 }).catch((e) => e) };
      };
      try {
        const full = () => s.stats().preforked.ready >= 2 && s.stats().preforked.waiting === 2;
        await s.run(fixture('sleep.mjs'), { ms: 0 });
        await waitFor('two preforked sleep.mjs', full);
        await s.run(fixture('sleep.mjs'), { ms: 0 }); // a run on a preforked child: its readiness is known
        await waitFor('two preforked sleep.mjs again', full);
        // How long the waiting children took to get ready, on this machine, now: the spawner's own
        // measure, which it compares the idle time with when it gives one of them a run.
        const pool = (s as unknown as { prefork: Map<string, { jobs: Array<{ readyMs: number | null }> }> }).prefork;
        const readyMs = Math.max(...[...pool.values()].flatMap((p) => p.jobs.map((j) => j.readyMs ?? Infinity)));
        expect(readyMs, 'the waiting children were timed').to.be.finite;
        await new Promise((r) => setTimeout(r, 2 * readyMs + 10)); // idle for longer than that
        const runsBefore = s.stats().preforked.runs;
        const spaced = hold();
        await waitFor('the spaced-out run to take a preforked child', () => s.stats().preforked.runs === runsBefore + 1);
        // A replacement made at once would be ready within about readyMs; none comes.
        const until = Date.now() + 3 * readyMs + 50;
        while (Date.now() < until) {
          expect(s.stats().preforked.waiting, 'while the spaced-out run is in flight').to.equal(1);
          await new Promise((r) => setTimeout(r, 10));
        }
        // A second run while the first is in flight takes the last waiting child, and the
        // replacements are made at once, while both runs are in flight.
        const second = hold();
        await waitFor('the second run to take a preforked child', () => s.stats().preforked.runs === runsBefore + 2);
        await waitFor('replacements while both runs are in flight', () => s.stats().preforked.waiting === 2 && s.active === 2);
        spaced.ac.abort();
        second.ac.abort();
        await Promise.all([spaced.run, second.run]);
        await waitFor('two preforked sleep.mjs at the end', full);
      } finally {
        await s.close();
      }
    });

    it('keeps separate children for other limits: a run with another memoryLimit is forked', async function () {
      await spawner.run(fixture('token.mjs'), {});
      await waitFor('preforked children', () => spawner.stats().preforked.waiting >= 2);
      const other = await spawner.run<Token>(fixture('token.mjs'), {}, { memoryLimit: 300 * 2 ** 20 });
      expect(other.preforked).to.equal(false);
      const same = await spawner.run<Token>(fixture('token.mjs'), {});
      expect(same.preforked).to.equal(true);
    });

    it('times a preforked run from its assignment: a child waiting longer than the timeout still runs', async function () {
      const s = await Spawner.start({ concurrency: 1, prefork: 1, timeout: 400 });
      try {
        await s.run(fixture('token.mjs'), {});
        await new Promise((r) => setTimeout(r, 900));
        const r = await s.run<Token>(fixture('token.mjs'), {});
        expect(r.preforked).to.equal(true);
        await expectCode(s.run(fixture('sleep.mjs'), { ms: 600_000 }), 'ERR_TIMEOUT');
        await waitFor('a preforked sleep.mjs', () => s.stats().preforked.waiting >= 2);
        // Its timer starts when the run reaches the child, not when the child was forked.
        const e = await expectCode(s.run(fixture('sleep.mjs'), { ms: 600_000 }), 'ERR_TIMEOUT');
        expect(e.durationMs).to.be.at.least(400);
      } finally {
        await s.close();
      }
    });

    it('reports an import error to the run that gets the preforked child', async function () {
      const e1 = await expectCode(spawner.run(fixture('throws-at-load.mjs')), 'ERR_JOB_FAILED');
      expect(e1.message).to.contain('broken at load');
      await waitFor('preforked children of throws-at-load.mjs', () => children(spawner.pid).length >= 2);
      const before = spawner.stats().preforked.runs;
      const e2 = await expectCode(spawner.run(fixture('throws-at-load.mjs')), 'ERR_JOB_FAILED');
      expect(e2.message).to.contain('broken at load');
      expect(e2.remote.name).to.equal('SyntaxError');
      expect(spawner.stats().preforked.runs).to.equal(before + 1);
    });

    it('stops preforking a module whose child ends before a run reaches it', async function () {
      const e = await expectCode(spawner.run(fixture('exits-at-load.mjs')), 'ERR_JOB_CRASHED');
      expect(e.exitCode).to.equal(7);
      const runs = spawner.stats().preforked.runs;
      const gone = () => spawner.stats().preforked.waiting === 0 && children(spawner.pid).length === 0;
      await waitFor('the preforked ones to exit 7 at load too', gone);
      const again = await expectCode(spawner.run(fixture('exits-at-load.mjs')), 'ERR_JOB_CRASHED');
      expect(again.exitCode).to.equal(7);
      await new Promise((r) => setImmediate(r)); // where a replacement would be made
      await waitFor('the forked run to be gone', gone);
      expect(spawner.stats().preforked.runs).to.equal(runs);
    });

    it('streams from a preforked child, once it is ready', async function () {
      const s = await Spawner.start({ concurrency: 1, prefork: 1 });
      try {
        const collect = async () => {
          const st = s.stream(fixture('batches.mjs'), { count: 3, rows: 10 });
          let rows = 0;
          for await (const b of st) rows += b.numRows;
          return { rows, r: await st.result };
        };
        expect((await collect()).r.preforked).to.equal(false);
        await waitFor('a ready preforked streaming child', () => s.stats().preforked.ready === 1);
        const { rows, r } = await collect();
        expect(rows).to.equal(30);
        expect(r.preforked).to.equal(true);
      } finally {
        await s.close();
      }
    });
  });

  it('ends a preforked child that is not ready within the timeout, and forks that module from then on', async function () {
    const s = await Spawner.start({ concurrency: 1, prefork: 1, timeout: 300 });
    try {
      await expectCode(s.run(fixture('hangs-at-load.mjs')), 'ERR_TIMEOUT');
      await waitFor('the preforked child to be ended', () => s.stats().preforked.waiting === 0 && children(s.pid).length === 0);
      await expectCode(s.run(fixture('hangs-at-load.mjs')), 'ERR_TIMEOUT');
      await new Promise((r) => setTimeout(r, 100));
      expect(s.stats().preforked).to.deep.equal({ waiting: 0, ready: 0, runs: 0 });
    } finally {
      await s.close();
    }
  });

  it('ends idle preforked children after preforkIdleTimeout, and all of them on close()', async function () {
    const s = await Spawner.start({ concurrency: 2, prefork: 2, preforkIdleTimeout: 1_000 });
    let waiting: ReturnType<typeof children> = [];
    try {
      await s.run(fixture('token.mjs'), {});
      waiting = await waitFor('two preforked children', () => (children(s.pid).length === 2 ? children(s.pid) : null));
      await waitFor('idle children to end', () => s.stats().preforked.waiting === 0 && waiting.every((p) => !stillAlive(p)));
      const modules = ['token.mjs', 'sum.mjs', 'echo.mjs', 'stdio.mjs', 'random.mjs', 'table.mjs', 'returns.mjs', 'inputs.mjs', 'paths.mjs'];
      for (const m of modules) await s.run(fixture(m), { values: [] }).catch(() => null);
      await waitFor('preforked children of the 8 most recent modules', () => s.stats().preforked.waiting === 16);
      waiting = children(s.pid);
    } finally {
      await s.close();
    }
    expect(waiting.filter(stillAlive)).to.deep.equal([]);
  });

  it('does not keep an app alive that never calls close(), and its children end with it', async function () {
    // The app's preforked children would wait 10 minutes (preforkIdleTimeout): kept alive by
    // them, it would be killed long before that.
    const run = await runProgram(process.execPath, [fixture('app-forgets-close.mjs')], { timeoutMs: 100_000 });
    expect(run.signal, 'the app was kept alive').to.equal(null);
    expect(run.code, run.output).to.equal(0);
    const report = JSON.parse(run.stdout.trim()) as { zygote: number; preforked: boolean; waiting: number };
    expect(report.preforked).to.equal(true);
    expect(report.waiting).to.equal(2);
    await waitFor('the zygote and the waiting children to die with the app', () => descendants(report.zygote).length === 0 && !stillAliveAny(report.zygote));
  });

  it('loses its waiting children with the zygote, and preforks again on the next zygote', async function () {
    const s = await Spawner.start({ concurrency: 1, prefork: 2, selfTest: false });
    try {
      await s.run(fixture('token.mjs'), {});
      const old = await waitFor('two preforked children', () => (s.stats().preforked.ready === 2 ? children(s.pid) : null));
      const oldZygote = s.pid;
      // The next run must come after the spawner noticed: one sent before goes to the dead zygote.
      let noticed = false;
      s.once('zygoteExit', () => (noticed = true));
      process.kill(oldZygote, 'SIGKILL');
      await waitFor('the waiting children to be gone', () => noticed && s.stats().preforked.waiting === 0 && old.every((p) => !stillAlive(p)));
      const r = await s.run<Token>(fixture('token.mjs'), {});
      expect(r.preforked).to.equal(false);
      expect(s.pid).to.not.equal(oldZygote);
      await waitFor('preforked children of the new zygote', () => s.stats().preforked.ready === 2);
      expect((await s.run(fixture('token.mjs'), {})).preforked).to.equal(true);
    } finally {
      await s.close();
    }
  });

  it("ends a preforked child whose module's top level writes to the runner's socket, and forks that module from then on", async function () {
    const s = await Spawner.start({ concurrency: 1, prefork: 2, selfTest: false });
    try {
      expect((await s.run(fixture('spams-work-socket.mjs'))).value).to.equal('ran'); // forked: no such socket
      await waitFor('the preforked children to be ended', () => s.stats().preforked.waiting === 0);
      const r = await s.run(fixture('spams-work-socket.mjs'));
      expect(r.value).to.equal('ran');
      expect(r.preforked).to.equal(false);
      expect(s.stats().preforked.runs).to.equal(0);
    } finally {
      await s.close();
    }
  });

  it('does not prefork with prefork: 0', async function () {
    const s = await Spawner.start({ concurrency: 1, prefork: 0 });
    try {
      for (let i = 0; i < 3; i++) expect((await s.run(fixture('token.mjs'), {})).preforked).to.equal(false);
      await waitFor('every child to be gone', () => children(s.pid).length === 0);
      await new Promise((r) => setTimeout(r, 100));
      expect(children(s.pid)).to.have.length(0);
      expect(s.stats().preforked).to.deep.equal({ waiting: 0, ready: 0, runs: 0 });
    } finally {
      await s.close();
    }
  });

  it('rejects a bad prefork option', async function () {
    for (const prefork of [-1, 1.5, '2', Infinity]) {
      let err: unknown;
      try {
        await Spawner.start({ prefork: prefork as number });
      } catch (e) {
        err = e;
      }
      expect(err, String(prefork)).to.be.instanceOf(TypeError);
      expect((err as Error).message).to.contain('prefork');
    }
  });
});
