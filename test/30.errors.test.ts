// Every way a run can fail, each as a typed error with its code, and what happens to the child.
import fs from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import {
  AbortError,
  InvalidOutputError,
  JobCrashedError,
  InvalidArgumentError,
  JobFailedError,
  ModuleNotFoundError,
  QueueFullError,
  ResultTooLargeError,
  Spawner,
  TimeoutError,
  ZygoteGoneError,
} from '../lib/index.js';
import { descendants, expectCode, fixture, packageRoot, procInfo, rejection, runningJob, stillAlive, waitFor } from './helpers.js';

describe('run failures', function () {
  let spawner: Spawner;

  before(async function () {
    spawner = await Spawner.start({ concurrency: 2, prefork: 0 }); // runningJob() looks for the run's process
  });

  after(async function () {
    await spawner?.close();
  });

  describe('ERR_TIMEOUT', function () {
    it('kills a job that runs past its timeout, and the child is really gone', async function () {
      const run = spawner.run(fixture('loop.mjs'), {}, { timeout: 500 });
      const { job, intermediate } = await runningJob(spawner.pid);
      const e = await expectCode(run, 'ERR_TIMEOUT');
      expect(e).to.be.instanceOf(TimeoutError);
      expect(e.timeout).to.equal(500);
      expect(e.signal).to.equal('SIGKILL');
      expect(stillAlive(job), `job process ${job.pid} is still alive`).to.equal(false);
      await waitFor('the intermediate process to exit', () => !stillAlive(intermediate));
    });

    it('uses the spawner-wide timeout when the run gives none', async function () {
      const short = await Spawner.start({ timeout: 300, selfTest: false });
      try {
        const e = await expectCode(short.run(fixture('loop.mjs')), 'ERR_TIMEOUT');
        expect(e.timeout).to.equal(300);
      } finally {
        await short.close();
      }
    });
  });

  describe('ERR_JOB_FAILED', function () {
    it('reports what the job threw: name, message, code, stack and the tail of stderr', async function () {
      const e = await expectCode(spawner.run(fixture('throws.mjs'), { message: 'boom from the job' }), 'ERR_JOB_FAILED');
      expect(e).to.be.instanceOf(JobFailedError);
      expect(e.message).to.equal('job failed: RangeError: boom from the job');
      expect(e.remote.name).to.equal('RangeError');
      expect(e.remote.message).to.equal('boom from the job');
      expect(e.remote.code).to.equal('E_FIXTURE');
      expect(e.remote.stack).to.include('throws.mjs');
      expect(e.stderr).to.include('stderr before the throw');
      expect(e.stderr).to.include('RangeError: boom from the job');
      expect(e.exitCode).to.equal(1);
    });

    it('rejects a module without a default export', async function () {
      const e = await expectCode(spawner.run(fixture('no-default.mjs')), 'ERR_JOB_FAILED');
      expect(e.remote.message).to.include('default export');
    });

    it('rejects a module that does not exist before forking anything, with ERR_MODULE_NOT_FOUND', async function () {
      const spawned: unknown[] = [];
      const onSpawn = (e: unknown) => spawned.push(e);
      spawner.on('spawn', onSpawn);
      try {
        const e = await expectCode(spawner.run(fixture('does-not-exist.mjs')), 'ERR_MODULE_NOT_FOUND');
        expect(e).to.be.instanceOf(ModuleNotFoundError);
        expect(e.modulePath).to.equal(fixture('does-not-exist.mjs'));
        expect(e.message).to.equal(`job module ${fixture('does-not-exist.mjs')} does not exist`);
        const dir = await expectCode(spawner.run(fixture('.')), 'ERR_MODULE_NOT_FOUND');
        expect(dir.message).to.include('is not a file');
        expect(spawned, 'a child was forked').to.deep.equal([]);
      } finally {
        spawner.off('spawn', onSpawn);
      }
    });

    it("gives an error's help as an absolute path to the installed troubleshooting page", async function () {
      const e = await expectCode(spawner.run(fixture('does-not-exist.mjs')), 'ERR_MODULE_NOT_FOUND');
      const [file, hash] = e.help.split('#');
      expect(file).to.equal(join(packageRoot, 'docs', 'troubleshooting.md'));
      expect(fs.existsSync(file)).to.equal(true);
      expect(hash).to.equal('err_module_not_found');
    });
  });

  describe('bad module paths', function () {
    it('rejects a relative module path with a TypeError before running anything', async function () {
      for (const path of ['test/fixtures/echo.mjs', './echo.mjs', '']) {
        const e = await rejection(spawner.run(path));
        expect(e, path).to.be.instanceOf(TypeError);
        expect(e, path).to.be.instanceOf(InvalidArgumentError);
        expect(e.code).to.equal('ERR_INVALID_ARG');
        expect(e.message).to.match(/^Expected `module` to be an absolute path or a file: URL, got /);
      }
    });

    it('rejects bad run options with a TypeError', async function () {
      const e = await rejection(spawner.run(fixture('echo.mjs'), {}, { timeout: -1 }));
      expect(e).to.be.instanceOf(TypeError);
      expect(e.code).to.equal('ERR_INVALID_OPTION');
      expect(e.message).to.equal('Expected `timeout` to be a positive finite number, got `-1` (number)');
      const e2 = await rejection(spawner.run(fixture('echo.mjs'), {}, { timout: 5 } as never));
      expect(e2).to.be.instanceOf(TypeError);
      expect(e2.message).to.match(/Unknown option `timout`/);
      const e3 = await rejection(spawner.run(fixture('echo.mjs'), {}, { signal: {} as never }));
      expect(e3).to.be.instanceOf(TypeError);
      expect(e3.message).to.include('`signal`');
    });

    it('rejects args that are not JSON-like, and inputs that are not Tables, with code ERR_INVALID_ARG', async function () {
      const e = await rejection(spawner.run(fixture('echo.mjs'), { f: () => 1 }));
      expect(e).to.be.instanceOf(InvalidArgumentError);
      expect(e.code).to.equal('ERR_INVALID_ARG');
      expect(e.message).to.match(/^Expected `args\.f` to be JSON-like, got function/);
      const e2 = await rejection(spawner.run(fixture('echo.mjs'), {}, { inputs: { t: { numRows: 1 } as never } }));
      expect(e2).to.be.instanceOf(InvalidArgumentError);
      expect(e2.message).to.match(/^Expected `inputs\.t` to be an apache-arrow Table, got /);
    });
  });

  describe('ERR_JOB_CRASHED', function () {
    it('reports process.exit(3) with exitCode 3', async function () {
      const e = await expectCode(spawner.run(fixture('exit.mjs'), { code: 3 }), 'ERR_JOB_CRASHED');
      expect(e).to.be.instanceOf(JobCrashedError);
      expect(e.exitCode).to.equal(3);
      expect(e.signal).to.equal(null);
      expect(e.stdout).to.equal('exiting\n');
    });

    it('reports process.abort() as killed by SIGABRT', async function () {
      const e = await expectCode(spawner.run(fixture('crash.mjs'), { how: 'abort' }), 'ERR_JOB_CRASHED');
      expect(e.signal).to.equal('SIGABRT');
      expect(e.message).to.include('SIGABRT');
    });

    it("reports process.kill(process.pid, 'SIGTERM') as killed by SIGTERM, although the job is PID 1", async function () {
      const e = await expectCode(spawner.run(fixture('crash.mjs'), { how: 'term' }), 'ERR_JOB_CRASHED');
      expect(e.signal).to.equal('SIGTERM');
    });

    it('kills a job that forges an exit note at once, and reports the code it wrote', async function () {
      let pid = 0;
      const onSpawn = (e: { pid: number }) => (pid = e.pid);
      spawner.on('spawn', onSpawn);
      try {
        const e = await expectCode(spawner.run(fixture('forge-exit.mjs'), { code: 42 }, { timeout: 10_000 }), 'ERR_JOB_CRASHED');
        expect(e.exitCode).to.equal(42);
        expect(e.durationMs).to.be.below(5_000); // killed at its note, not at the timeout
        const job = procInfo(pid);
        if (job) await waitFor('the forging job to be gone', () => !stillAlive(job));
      } finally {
        spawner.off('spawn', onSpawn);
      }
    });

    it('still lets a job handle a signal it sends itself', async function () {
      const r = await spawner.run(fixture('crash.mjs'), { how: 'term-handled' });
      expect(r.value).to.equal('handled SIGTERM');
    });
  });

  describe('ERR_INVALID_OUTPUT', function () {
    const garbage = async (bytes: number[]) => {
      const e = await expectCode(spawner.run(fixture('garbage.mjs'), { bytes }), 'ERR_INVALID_OUTPUT');
      expect(e).to.be.instanceOf(InvalidOutputError);
      return e;
    };

    it('rejects a result that starts with an unknown tag', async function () {
      const e = await garbage([9, 1, 2, 3]);
      expect(e.message).to.include('unknown tag 9');
    });

    it('rejects a malformed value', async function () {
      const e = await garbage([2, 0xff, 0xff, 0xff]);
      expect(e.message).to.include('malformed value');
    });

    it('rejects a value that claims a huge list, without trying to allocate it', async function () {
      const e = await garbage([2, 0x0f, 0x00, 0x06, 0x0c, 0x7f, 0xff, 0xff, 0xff, 0x00]);
      expect(e.message).to.include('2147483647');
    });

    it('rejects a malformed error report', async function () {
      const e = await garbage([3, 0, 0]);
      expect(e.message).to.include('error report is malformed');
    });

    it('rejects exit code 0 without any result', async function () {
      const e = await garbage([]);
      expect(e.message).to.include('without returning a result');
    });

    it('rejects bytes that are not an Arrow IPC stream after the table tag', async function () {
      const e = await garbage([1, 1, 2, 3, 4, 5, 6, 7, 8]);
      expect(e.message).to.include('Arrow');
    });

    it('rejects a table tag followed by no Arrow stream (no schema message) instead of returning an empty table', async function () {
      for (const bytes of [[1], [1, 1, 2, 3, 4], [1, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]]) {
        const e = await rejection(spawner.run(fixture('garbage.mjs'), { bytes }));
        expect(e?.code, `result bytes ${JSON.stringify(bytes)}: ${e?.message}`).to.equal('ERR_INVALID_OUTPUT');
      }
    });

    it('rejects a job that returns a function', async function () {
      const e = await expectCode(spawner.run(fixture('returns.mjs'), { kind: 'function' }), 'ERR_INVALID_OUTPUT');
      expect(e.message).to.include('function');
    });

    it('rejects a job that returns a class instance', async function () {
      const e = await expectCode(spawner.run(fixture('returns.mjs'), { kind: 'class' }), 'ERR_INVALID_OUTPUT');
      expect(e.message).to.include('Point');
    });
  });

  describe('ERR_RESULT_TOO_LARGE', function () {
    it('kills a job whose result exceeds maxResultBytes', async function () {
      const e = await expectCode(spawner.run(fixture('returns.mjs'), { kind: 'big' }, { maxResultBytes: 1000 }), 'ERR_RESULT_TOO_LARGE');
      expect(e).to.be.instanceOf(ResultTooLargeError);
      expect(e.limit).to.equal(1000);
      expect(e.message).to.include('1000 bytes');
    });

    it('accepts the same result under a larger limit', async function () {
      const r = await spawner.run<string>(fixture('returns.mjs'), { kind: 'big' }, { maxResultBytes: 1_000_000 });
      expect(r.value).to.have.lengthOf(200_000);
    });
  });
});

describe('ERR_ZYGOTE_GONE', function () {
  let spawner: Spawner;

  before(async function () {
    spawner = await Spawner.start({ selfTest: false, prefork: 0 });
  });

  after(async function () {
    await spawner?.close();
  });

  it('rejects the running job when the zygote is killed, and starts a new zygote for the next run', async function () {
    let emitted: unknown;
    let restarted: { previousPid: number; pid: number } | undefined;
    spawner.on('zygoteExit', (e) => (emitted = e));
    spawner.on('zygoteRestart', (e) => (restarted = e));
    const oldPid = spawner.pid;
    const run = spawner.run(fixture('sleep.mjs'), { ms: 60_000 });
    const { job } = await runningJob(oldPid);
    process.kill(oldPid, 'SIGKILL');
    const e = await expectCode(run, 'ERR_ZYGOTE_GONE');
    expect(e).to.be.instanceOf(ZygoteGoneError);
    await waitFor("the spawner's zygoteExit event", () => emitted);
    expect(emitted).to.be.instanceOf(ZygoteGoneError);
    await waitFor('the orphaned job to die with the zygote', () => !stillAlive(job));
    // The next run is served by a new zygote, transparently.
    const r = await spawner.run(fixture('echo.mjs'), 2);
    expect((r.value as { echo: number }).echo).to.equal(2);
    expect(restarted).to.deep.equal({ previousPid: oldPid, pid: spawner.pid });
    expect(spawner.pid).to.not.equal(oldPid);
  });
});

describe('aborts and the queue', function () {
  let spawner: Spawner;

  before(async function () {
    spawner = await Spawner.start({ concurrency: 1, maxQueue: 1, selfTest: false, prefork: 0 });
  });

  after(async function () {
    await spawner?.close();
  });

  it('ERR_ABORTED: a queued job is dropped without running, a running one is killed', async function () {
    const running = new AbortController();
    const queued = new AbortController();
    const first = spawner.run(fixture('sleep.mjs'), { ms: 60_000 }, { signal: running.signal });
    const second = spawner.run(fixture('echo.mjs'), 'never', { signal: queued.signal });
    const { job } = await runningJob(spawner.pid);
    expect(spawner.active).to.equal(1);
    expect(spawner.queued).to.equal(1);

    const queuedReason = new Error('no longer wanted');
    queued.abort(queuedReason);
    const e2 = await expectCode(second, 'ERR_ABORTED');
    expect(e2).to.be.instanceOf(AbortError);
    expect(e2.cause).to.equal(queuedReason);
    expect(spawner.queued).to.equal(0);
    expect(stillAlive(job), 'aborting a queued job leaves the running one alone').to.equal(true);

    running.abort('stop');
    const e1 = await expectCode(first, 'ERR_ABORTED');
    expect(e1.cause).to.equal('stop');
    expect(e1.signal).to.equal('SIGKILL');
    expect(stillAlive(job)).to.equal(false);
    expect(descendants(spawner.pid).filter((p) => p.depth === 2)).to.deep.equal([]);
  });

  it('ERR_ABORTED at once for a signal that is already aborted', async function () {
    const e = await expectCode(spawner.run(fixture('echo.mjs'), 1, { signal: AbortSignal.abort('early') }), 'ERR_ABORTED');
    expect(e.cause).to.equal('early');
  });

  it('ERR_QUEUE_FULL when maxQueue jobs already wait', async function () {
    const stop = new AbortController();
    const first = spawner.run(fixture('sleep.mjs'), { ms: 60_000 }, { signal: stop.signal });
    const second = spawner.run(fixture('echo.mjs'), 'second');
    const e = await expectCode(spawner.run(fixture('echo.mjs'), 'third'), 'ERR_QUEUE_FULL');
    expect(e).to.be.instanceOf(QueueFullError);
    expect(e.maxQueue).to.equal(1);
    stop.abort();
    await expectCode(first, 'ERR_ABORTED');
    expect((await second).value).to.deep.equal({ echo: 'second', kinds: {} });
  });
});
