// The whole suite again, as an unprivileged app (user nobody), when we are root: the job's outer
// uid, the id maps and every sandbox step differ between a root and an unprivileged app.
import { join } from 'node:path';
import { expect } from 'chai';
import { isRoot, packageRoot, runProgram, skipBecause, whyNobodyCannotRead } from './helpers.js';
import { installedBinary } from '../lib/native.js';

const setpriv = '/usr/bin/setpriv';

describe('unprivileged app', function () {
  it('passes the whole suite as user nobody', async function () {
    this.timeout(170_000);
    if (process.env.NODESPAWNER_TEST_NESTED) skipBecause(this, 'already the unprivileged re-run');
    if (!isRoot) skipBecause(this, `running as uid ${process.geteuid!()}, not root: this run already is the unprivileged one`);
    const mocha = join(packageRoot, 'node_modules', 'mocha', 'bin', 'mocha.js');
    // Where the addon is now (test/80 may have moved it into prebuilds/ since this process loaded it).
    const addon = installedBinary('nodespawner.node', 'nodespawner.node');
    const why = whyNobodyCannotRead([mocha, join(packageRoot, 'dist', 'test', '00.wire.test.js'), addon, join(packageRoot, 'test', 'fixtures', 'echo.mjs')]);
    if (why) skipBecause(this, why);
    const self = join('dist', 'test', '90.unprivileged.test.js');
    const argv = ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, mocha, '--config', join(packageRoot, '.mocharc.json'), '--ignore', self, '--reporter', 'dot', 'dist/test/**/*.test.js'];
    const { code, signal, output } = await runProgram(setpriv, argv, {
      cwd: packageRoot,
      // nobody cannot create cgroups here: the run uses the rlimit fallback, and the limits tests
      // check that an app left without cgroups is told what to configure.
      env: { ...process.env, HOME: '/tmp', NODESPAWNER_TEST_NESTED: '1', NODESPAWNER_LIMITS: 'rlimit' },
      timeoutMs: 160_000,
    });
    if (code !== 0) console.log(output);
    expect(signal, 'the unprivileged run was killed').to.equal(null);
    expect(code, 'the unprivileged run failed; its output is above').to.equal(0);
  });
});
