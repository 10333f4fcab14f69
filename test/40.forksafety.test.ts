// What a fork without exec can break: Node's runtime in the child, randomness copied from the
// zygote, exits that would hang, and file descriptors that would leak into jobs.
import fs from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { expect } from 'chai';
import { Spawner } from '../lib/index.js';
import { expectCode, fixture, packageRoot, procInfo, runProgram, stillAlive, tempDir } from './helpers.js';

interface Randomness {
  math: number;
  uuid: string;
  namedUuid: string;
  webUuid: string;
  bytes: string;
}

describe('fork safety', function () {
  let spawner: Spawner;
  const preload = fixture('token-preload.mjs');

  before(async function () {
    // token-preload draws randomUUID(), crypto.randomUUID() and Math.random() in the zygote.
    spawner = await Spawner.start({ preload: [preload], concurrency: 2 });
  });

  after(async function () {
    await spawner?.close();
  });

  it('passes the self-test job as an ordinary job: every check is ok', async function () {
    const r = await spawner.run<{ checks: Record<string, string>; pid: number }>(join(packageRoot, 'dist', 'zygote', 'selftest-job.js'));
    const checks = r.value!.checks;
    expect(Object.keys(checks)).to.include.members(['timers', 'asyncFs', 'zlib', 'crypto', 'webAssembly', 'garbageCollection', 'processIdentity']);
    for (const [name, result] of Object.entries(checks)) expect(result, name).to.equal('ok');
    expect(r.value!.pid).to.equal(1);
  });

  it('gives every job its own Math.random, randomUUID, crypto.randomUUID and randomBytes, even after a preload drew them in the zygote', async function () {
    const runs = await Promise.all([1, 2, 3, 4].map(() => spawner.run<Randomness & { atImport: Record<string, unknown> }>(fixture('random.mjs'), { preload })));
    const values = runs.map((r) => r.value!);
    const atImport = values[0].atImport;
    expect(atImport.evaluatedInPid, 'the preload drew its values in the zygote').to.equal(spawner.pid);
    for (const v of values) expect(v.atImport).to.deep.equal(atImport);
    for (const key of ['math', 'uuid', 'namedUuid', 'webUuid', 'bytes'] as const) {
      const seen = new Set(values.map((v) => v[key]));
      expect(seen.size, `${key}: ${JSON.stringify(values.map((v) => v[key]))}`).to.equal(values.length);
    }
    const drawnInZygote = [atImport.math, atImport.uuid, atImport.webUuid];
    for (const v of values) {
      expect(drawnInZygote).to.not.include(v.math);
      expect(drawnInZygote).to.not.include(v.uuid);
      expect(drawnInZygote).to.not.include(v.webUuid);
      expect(v.math).to.be.within(0, 1);
      expect(v.uuid).to.match(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      expect(v.webUuid).to.match(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      expect(new Set([v.uuid, v.namedUuid, v.webUuid]).size).to.equal(3);
    }
  });

  it('process.exit() with timers still pending exits rather than hangs', async function () {
    const e = await expectCode(spawner.run(fixture('exit.mjs'), { code: 7, pending: true }, { timeout: 15_000 }), 'ERR_JOB_CRASHED');
    expect(e.exitCode).to.equal(7);
    expect(e.stdout).to.equal('exiting\n');
  });

  it('process.exit(0) with timers pending ends the job too (no result: ERR_INVALID_OUTPUT)', async function () {
    const e = await expectCode(spawner.run(fixture('exit.mjs'), { code: 0, pending: true }, { timeout: 15_000 }), 'ERR_INVALID_OUTPUT');
    expect(e.exitCode).to.equal(0);
  });

  it('an uncaught exception in a timer callback fails the job with ERR_JOB_FAILED', async function () {
    const e = await expectCode(spawner.run(fixture('late-throw.mjs'), {}, { timeout: 15_000 }), 'ERR_JOB_FAILED');
    expect(e.remote.message).to.equal('thrown from a timer');
    expect(e.stderr).to.include('thrown from a timer');
  });

  it('a promise that never settles ends the job (exit code 13) rather than hanging', async function () {
    const e = await expectCode(spawner.run(fixture('never.mjs'), {}, { timeout: 15_000 }), 'ERR_JOB_FAILED');
    expect(e.exitCode).to.equal(13);
    expect(e.remote.message).to.include('never settled');
  });

  describe('file descriptors', function () {
    let fds: Record<string, string>;

    before(async function () {
      fds = (await spawner.run<Record<string, string>>(fixture('fds.mjs'))).value!;
    });

    it('has /dev/null on stdin and pipes on stdout and stderr', function () {
      expect(fds['0']).to.equal('/dev/null');
      expect(fds['1']).to.match(/^pipe:/);
      expect(fds['2']).to.match(/^pipe:/);
      expect(fds['1']).to.not.equal(fds['2']);
    });

    it('keeps no socket of the zygote (the control socket, its stderr), only pipes, /dev/null, memfds and anon inodes', function () {
      for (const [fd, target] of Object.entries(fds)) {
        if (target.startsWith('unreadable')) continue; // the directory listing's own fd
        expect(target, `fd ${fd}`).to.match(/^(pipe:\[\d+\]|\/dev\/null|\/memfd:.*|anon_inode:.*)$/);
      }
    });

    it('shares no open pipe or socket with the zygote', function () {
      const zygoteFds = new Set<string>();
      for (const fd of fs.readdirSync(`/proc/${spawner.pid}/fd`)) {
        try {
          zygoteFds.add(fs.readlinkSync(`/proc/${spawner.pid}/fd/${fd}`));
        } catch {
          // closed meanwhile
        }
      }
      const shared = Object.entries(fds).filter(([, target]) => /^(pipe|socket):/.test(target) && zygoteFds.has(target));
      expect(shared, 'fds of the job that the zygote holds open too').to.deep.equal([]);
    });

    it('shares no open pipe or socket with another job', async function () {
      const other = (await spawner.run<Record<string, string>>(fixture('fds.mjs'))).value!;
      const mine = new Set(Object.values(fds).filter((t) => /^(pipe|socket):/.test(t)));
      const shared = Object.entries(other).filter(([, t]) => mine.has(t));
      expect(shared, 'fds open in two different jobs').to.deep.equal([]);
    });
  });

  it('does not pass an fd the app inherited without close-on-exec into jobs', async function () {
    // The app's parent (a shell here) gave it fd 7, open on a private file, without
    // close-on-exec: the zygote inherits it, and no job may.
    const dir = await tempDir();
    try {
      const secret = await dir.write('secret.txt', 'not for jobs');
      fs.chmodSync(secret, 0o600);
      const script = `
        import fs from 'node:fs';
        import { Spawner } from ${JSON.stringify(pathToFileURL(join(packageRoot, 'dist', 'lib', 'index.js')).href)};
        const inherited = fs.readlinkSync('/proc/self/fd/7');
        const s = await Spawner.start({ selfTest: false });
        try {
          const r = await s.run(${JSON.stringify(fixture('fds.mjs'))});
          console.log(JSON.stringify({ inherited, job: r.value }));
        } finally {
          await s.close();
        }`;
      const app = await runProgram('/bin/sh', ['-c', 'exec "$0" --input-type=module -e "$1" 7<"$2"', process.execPath, script, secret], { timeoutMs: 100_000 });
      if (app.code !== 0) throw new Error(`the app exited with ${app.signal ?? app.code}\n${app.stdout}\n${app.stderr}`);
      const out = app.stdout;
      const { inherited, job } = JSON.parse(out.trim().split('\n').pop()!) as { inherited: string; job: Record<string, string> };
      expect(inherited).to.equal(secret);
      const leaked = Object.entries(job).filter(([, t]) => t === inherited);
      expect(leaked, `the app's fd 7 (${inherited}) in the job`).to.deep.equal([]);
    } finally {
      await dir.remove();
    }
  });

  it('a job cannot crash the zygote by writing into the pipes it holds', async function () {
    const victim = await Spawner.start({ selfTest: false });
    const zygote = procInfo(victim.pid)!;
    try {
      await victim.run(fixture('hostile-fds.mjs')).catch(() => {}); // whatever becomes of the job itself
      const after = await victim.run(fixture('echo.mjs'), 'still serving').catch((e: Error) => e);
      expect(after, `the next job failed: ${(after as Error).message}`).to.not.be.instanceOf(Error);
      expect((after as { value: unknown }).value).to.deep.equal({ echo: 'still serving', kinds: {} });
      expect(stillAlive(zygote), 'the zygote is alive').to.equal(true);
    } finally {
      await victim.close();
    }
  });
});
