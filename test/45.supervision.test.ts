// Output floods, and what happens when the app itself dies: the zygote and every job go with it.
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { Spawner } from '../lib/index.js';
import { descendants, expectCode, fixture, procInfo, waitFor } from './helpers.js';

describe('output floods', function () {
  let spawner: Spawner;

  before(async function () {
    spawner = await Spawner.start({ selfTest: false, sandbox: { limits: 'none' } });
  });

  after(async function () {
    await spawner?.close();
  });

  it("cuts a flood at the cap and lets the job finish (outputOverflow: 'truncate')", async function () {
    const r = await spawner.run(fixture('flood.mjs'), { chunk: 65536, times: 320 }, { maxStdout: 1000 });
    expect(r.value).to.equal('done');
    expect(r.stdout).to.match(/^z{1000}\n\[nodespawner: stdout truncated, 20970520 more bytes dropped\]$/);
  });

  it("kills a job that floods past the cap with ERR_OUTPUT_TOO_LARGE (outputOverflow: 'kill')", async function () {
    const e = await expectCode(
      spawner.run(fixture('flood.mjs'), { times: 0 }, { maxStdout: 4096, outputOverflow: 'kill', timeout: 20_000 }),
      'ERR_OUTPUT_TOO_LARGE',
    );
    expect(e.stream).to.equal('stdout');
    expect(e.signal).to.equal('SIGKILL');
  });
});

describe('when the app dies', function () {
  it('the zygote and its jobs die with it: no orphans', async function () {
    const app = spawn(process.execPath, [fixture('app-with-job.mjs')], { stdio: ['ignore', 'pipe', 'inherit'] });
    const line = await new Promise<string>((resolve, reject) => {
      let out = '';
      app.stdout!.on('data', (d) => {
        out += d;
        if (out.includes('\n')) resolve(out.split('\n')[0]);
      });
      app.once('exit', (code) => reject(new Error(`the app exited early (${code})`)));
    });
    const zygote = (JSON.parse(line) as { zygote: number }).zygote;
    const tree = await waitFor('the job to be running', () => {
      const d = descendants(zygote);
      return d.length >= 2 ? d : null;
    });
    app.kill('SIGKILL');
    await waitFor('the zygote to die', () => procInfo(zygote) === null || procInfo(zygote)!.state === 'Z');
    await waitFor('every job process to die', () => tree.every((p) => procInfo(p.pid) === null || procInfo(p.pid)!.state === 'Z'));
  });
});
