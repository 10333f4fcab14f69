// However the app ends without close(), nothing of its spawner is left: no zygote, no job or
// preforked child, and none of the cgroups it made (the spawner's and each job's). After a
// SIGKILL of the app the zygote, which sees the app's death, removes them.
import fs from 'node:fs';
import { spawn } from 'node:child_process';
import { expect } from 'chai';
import { detectCgroups, parentDirs } from '../lib/cgroups.js';
import { descendants, fixture, procInfo, skipBecause, waitFor } from './helpers.js';

interface Started {
  pid: number;
  zygote?: number;
  waiting?: number;
}

/** Starts `node <fixture> ...args`; resolves with the app and the first line it prints. */
function startApp(
  file: string,
  args: string[],
): Promise<{ app: ReturnType<typeof spawn>; line: Started; exited: Promise<{ code: number | null; signal: string | null; stderr: string }> }> {
  const app = spawn(process.execPath, [fixture(file), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  app.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exited = new Promise<{ code: number | null; signal: string | null; stderr: string }>((resolve) =>
    app.on('close', (code, signal) => resolve({ code, signal, stderr })),
  );
  return new Promise((resolve, reject) => {
    let out = '';
    app.stdout!.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      if (out.includes('\n')) resolve({ app, line: JSON.parse(out.split('\n')[0]) as Started, exited });
    });
    void exited.then(({ code, signal }) => reject(new Error(`the app ended before it printed (${signal ?? code}): ${stderr}`)));
  });
}

/** The spawner's cgroup directories of app `pid`'s first spawner, where the test process sees them. */
function spawnerCgroups(pid: number): string[] {
  return parentDirs(detectCgroups(`nodespawner-${pid}-1`, null));
}

function existing(dirs: string[]): string[] {
  return dirs.filter((d) => fs.existsSync(d));
}

describe('when the app ends without close()', function () {
  this.timeout(60_000);

  before(function () {
    if ((process.env.NODESPAWNER_LIMITS ?? 'cgroup') !== 'cgroup')
      skipBecause(this, `NODESPAWNER_LIMITS is ${process.env.NODESPAWNER_LIMITS}: the spawners make no cgroups`);
    const support = detectCgroups(`nodespawner-probe-${process.pid}`, null);
    if (support.version === 0) skipBecause(this, `no cgroups for jobs here: ${support.reason}`);
  });

  for (const how of ['return', 'exit', 'throw', 'kill'] as const) {
    const what = { return: 'its work is done and it returns', exit: 'it calls process.exit()', throw: 'an exception is not caught', kill: 'it is SIGKILLed' }[
      how
    ];
    it(`leaves no process and no cgroup when ${what}, with a module's children preforked${how === 'return' ? '' : ' and a job running'}`, async function () {
      const { app, line, exited } = await startApp('app-ends.mjs', [how]);
      const dirs = spawnerCgroups(line.pid);
      expect(dirs.length).to.be.greaterThan(0);
      expect(existing(dirs), 'the spawner made its cgroups').to.deep.equal(dirs);
      const jobCgroups = dirs.flatMap((d) => fs.readdirSync(d).filter((n) => n.startsWith('job-')));
      expect(line.waiting, 'preforked children').to.be.greaterThan(0);
      // (An app that returns may be gone, and its spawner cleaned up, by now.)
      if (how !== 'return') expect(jobCgroups.length, 'job cgroups while the app runs').to.be.greaterThan(0);
      const tree = descendants(line.zygote!);
      if (how === 'kill') app.kill('SIGKILL');
      const end = await exited;
      if (how === 'kill') expect(end.signal).to.equal('SIGKILL');
      else expect(end.code, end.stderr).to.equal(how === 'throw' ? 1 : 0);
      await waitFor('the zygote to exit', () => procInfo(line.zygote!) === null || procInfo(line.zygote!)!.state === 'Z');
      await waitFor('every intermediate and job to exit', () => tree.every((p) => procInfo(p.pid) === null || procInfo(p.pid)!.state === 'Z'));
      await waitFor(`the cgroups to be removed (left: ${existing(dirs).join(', ')})`, () => existing(dirs).length === 0);
    });
  }

  it('leaves no cgroup when the app is SIGKILLed while its spawner is still starting', async function () {
    const { app, line, exited } = await startApp('app-killed-starting.mjs', []);
    const dirs = spawnerCgroups(line.pid);
    await waitFor('the spawner to make its cgroups and its zygote to preload', () => existing(dirs).length === dirs.length && descendants(line.pid).length > 0);
    const zygote = descendants(line.pid)[0];
    app.kill('SIGKILL');
    await exited;
    await waitFor('the zygote to exit', () => procInfo(zygote.pid) === null || procInfo(zygote.pid)!.state === 'Z');
    await waitFor(`the cgroups to be removed (left: ${existing(dirs).join(', ')})`, () => existing(dirs).length === 0);
  });
});
