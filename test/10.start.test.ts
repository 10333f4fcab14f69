// Spawner.start(): the zygote comes up, reports itself, preloads; bad options and failures to
// start are reported with a clear shape.
import fs from 'node:fs';
import { execFile } from 'node:child_process';
import { pathToFileURL } from 'node:url';
import { join } from 'node:path';
import { expect } from 'chai';
import { InvalidOptionError, Spawner, StartError } from '../lib/index.js';
import { addonPath } from '../lib/native.js';
import { expectCode, fixture, isRoot, packageRoot, procInfo, rejection, skipBecause, whyNobodyCannotRead } from './helpers.js';

describe('Spawner.start', function () {
  let spawner: Spawner;
  const preload = fixture('token-preload.mjs');

  before(async function () {
    spawner = await Spawner.start({ preload: [preload] });
  });

  after(async function () {
    await spawner?.close();
  });

  it('starts a zygote and reports what it is', function () {
    const info = spawner.info;
    expect(info.pid).to.be.a('number').above(1);
    expect(spawner.pid).to.equal(info.pid);
    expect(info.pid).to.not.equal(process.pid);
    const zygote = procInfo(info.pid);
    expect(zygote, 'the zygote process exists').to.not.equal(null);
    expect(zygote!.ppid, 'the zygote is a child of the app').to.equal(process.pid);
    expect(info.nodeVersion).to.equal(process.version);
    expect(info.threads).to.be.a('number').above(0);
    expect(info.rssBytes)
      .to.be.a('number')
      .above(1024 * 1024);
    expect(info.selfTestMs).to.be.a('number').at.least(0);
    expect(spawner.active).to.equal(0);
    expect(spawner.queued).to.equal(0);
  });

  it('always preloads apache-arrow and thrift, then the user preloads in order', function () {
    expect(spawner.info.preloaded).to.deep.equal(['apache-arrow', 'thrift', preload]);
  });

  it('evaluates a user preload given by absolute path once, in the zygote', async function () {
    const r = await spawner.run<{ evaluatedInPid: number; evaluations: number; pid: number }>(fixture('preload-token.mjs'), { preload });
    expect(r.value!.evaluatedInPid, 'the preload ran in the zygote process').to.equal(spawner.pid);
    expect(r.value!.evaluations).to.equal(1);
    expect(r.value!.pid).to.equal(1);
  });

  it('runs a job', async function () {
    const r = await spawner.run(fixture('echo.mjs'), 'hello');
    expect(r.value).to.deep.equal({ echo: 'hello', kinds: {} });
    expect(r.exitCode).to.equal(0);
  });

  it('rejects with ERR_START naming the preload that threw', async function () {
    const bad = fixture('throwing-preload.mjs');
    const e = await expectCode(Spawner.start({ preload: [bad] }), 'ERR_START');
    expect(e).to.be.instanceOf(StartError);
    expect(e.message).to.include(bad);
    expect(e.message).to.include('this preload refuses to load');
  });

  it('names the system call that the job seccomp policy stopped in the fork self-test', async function () {
    // The preload makes the self-test child call ptrace (x86_64 number 101), as a runtime that needs
    // a call the policy lacks would: the self-test traps it instead of dying of a bare SIGSYS.
    const e = await expectCode(Spawner.start({ preload: [fixture('selftest-syscall-preload.mjs')] }), 'ERR_START');
    expect(e.reason).to.equal('SELF_TEST_SECCOMP');
    expect(e.message).to.include('syscall 101 (ptrace)');
  });

  it('rejects with ERR_START when a preload cannot be found', async function () {
    const e = await expectCode(Spawner.start({ preload: ['no-such-package-nodespawner-test'] }), 'ERR_START');
    expect(e.message).to.include('no-such-package-nodespawner-test');
  });
});

describe('Spawner options validation', function () {
  const cases: Array<[string, Record<string, unknown>, string]> = [
    ['timeout', { timeout: -1 }, 'Expected `timeout` to be a positive finite number, got `-1` (number)'],
    ['timeout NaN', { timeout: NaN }, 'Expected `timeout` to be a positive finite number, got `'],
    ['timeout Infinity', { timeout: Infinity }, 'Expected `timeout` to be a positive finite number, got `'],
    ['timeout string', { timeout: '5' }, 'Expected `timeout` to be a positive finite number, got `5` (string)'],
    ['concurrency', { concurrency: 0 }, 'Expected `concurrency` to be a positive'],
    ['concurrency fraction', { concurrency: 1.5 }, 'Expected `concurrency` to be a positive integer, got `1.5` (number)'],
    ['maxQueue', { maxQueue: -5 }, 'Expected `maxQueue` to be a positive number or Infinity, got `-5` (number)'],
    ['maxStdout', { maxStdout: 0 }, 'Expected `maxStdout` to be a positive'],
    ['maxResultBytes', { maxResultBytes: 'big' }, 'Expected `maxResultBytes` to be a positive'],
    ['preload relative', { preload: ['./x.mjs'] }, 'Expected `preload` to be package names or absolute paths, not relative paths, got `./x.mjs` (string)'],
    ['preload type', { preload: 'apache-arrow' }, 'Expected `preload` to be an array'],
    ['preloadBase', { preloadBase: 'relative/dir' }, 'Expected `preloadBase` to be an absolute path'],
    ['sandbox.network', { sandbox: { network: 'no' } }, "Expected `sandbox.network` to be 'none', 'egress' or 'host', got `no` (string)"],
    [
      'sandbox.readOnlyPaths /tmp',
      { sandbox: { readOnlyPaths: ['/tmp/'] } },
      'Expected `sandbox.readOnlyPaths` to hold paths other than /, /tmp, /proc and /.nodespawner (each job has its own), got `/tmp/`',
    ],
    ['sandbox.writablePaths /', { sandbox: { writablePaths: ['/'] } }, 'Expected `sandbox.writablePaths` to hold paths other than /'],
    ['sandbox.readOnlyPaths /proc/1', { sandbox: { readOnlyPaths: ['/proc/1'] } }, 'Expected `sandbox.readOnlyPaths` to hold paths other than /'],
    [
      'sandbox.readOnlyPaths inside writablePaths',
      { sandbox: { readOnlyPaths: ['/usr/lib'], writablePaths: ['/usr'] } },
      'Expected `sandbox.readOnlyPaths` to be outside sandbox.writablePaths (jobs can write /usr, so nothing in it is read-only to them), got `/usr/lib` (string)',
    ],
    ['sandbox.hostname', { sandbox: { hostname: 'bad host' } }, 'Expected `sandbox.hostname` to be a hostname'],
    ['env', { env: { A: 1 } }, 'Expected `env` to be an object of strings'],
    ['selfTest', { selfTest: 'yes' }, 'Expected `selfTest` to be a boolean'],
    ['heapArena', { heapArena: 'on' }, 'Expected `heapArena` to be a boolean'],
  ];

  for (const [name, options, message] of cases) {
    it(`rejects a bad ${name} with a TypeError saying what was expected, with code ERR_INVALID_OPTION`, async function () {
      const e = await rejection(Spawner.start(options as never));
      expect(e).to.be.instanceOf(TypeError);
      expect(e).to.be.instanceOf(InvalidOptionError);
      expect(e.code).to.equal('ERR_INVALID_OPTION');
      expect(e.message).to.include(message);
    });
  }

  it('refuses the boolean sandbox.network of earlier versions, naming what each became', async function () {
    const on = await rejection(Spawner.start({ sandbox: { network: true as never } }));
    expect(on).to.be.instanceOf(InvalidOptionError);
    expect(on.code).to.equal('ERR_INVALID_OPTION');
    expect(on.message).to.equal(
      "Expected `sandbox.network` to be 'none', 'egress' or 'host', got `true` (boolean); `true` is now 'host' (the host's network, no isolation) or 'egress'",
    );
    const off = await rejection(Spawner.start({ sandbox: { network: false as never } }));
    expect(off.code).to.equal('ERR_INVALID_OPTION');
    expect(off.message).to.include("`false` is now 'none'");
  });

  it('says that prefork may be 0', async function () {
    for (const prefork of [-2, 1.5, '2']) {
      const e = await rejection(Spawner.start({ prefork } as never));
      expect(e.code).to.equal('ERR_INVALID_OPTION');
      expect(e.message).to.match(/^Expected `prefork` to be a non-negative integer \(0 turns it off\), got /);
    }
  });

  it('refuses a sandbox.cgroupRoot that is not a cgroup v2 directory, instead of using other cgroups', async function () {
    for (const root of ['/nope', '/tmp', 'relative/dir']) {
      const e = await rejection(Spawner.start({ sandbox: { cgroupRoot: root } }));
      expect(e, root).to.be.instanceOf(InvalidOptionError);
      expect(e.code).to.equal('ERR_INVALID_OPTION');
      expect(e.message).to.include('Expected `sandbox.cgroupRoot` to be a directory in a cgroup v2 hierarchy');
    }
    const nope = await rejection(Spawner.start({ sandbox: { cgroupRoot: '/nope' } }));
    expect(nope.message).to.match(/: ENOENT$/);
  });

  it('refuses a cgroup v2 sandbox.cgroupRoot without the memory and pids controllers, instead of using v1 cgroups', async function () {
    const v2 = fs
      .readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .find((l) => / - cgroup2 /.test(l))
      ?.split(' ')[4];
    if (!v2) skipBecause(this, 'no cgroup2 file system is mounted here');
    const controllers = fs.readFileSync(`${v2}/cgroup.controllers`, 'utf8').trim().split(/\s+/);
    if (controllers.includes('memory') && controllers.includes('pids'))
      skipBecause(this, `the cgroup2 root ${v2} has the memory and pids controllers: it would be accepted`);
    const e = await expectCode(Spawner.start({ sandbox: { cgroupRoot: v2, limits: 'cgroup' } }), 'ERR_START');
    expect(e.reason).to.equal('cgroups');
    expect(e.message).to.include(`sandbox.cgroupRoot ${v2} does not offer the memory and pids controllers`);
  });

  it('says that a startTimeout too short for this app is a configuration mistake, without an empty stderr', async function () {
    const e = await expectCode(Spawner.start({ startTimeout: 1 }), 'ERR_START');
    expect(e.reason).to.equal('timeout');
    expect(e.message).to.include('the zygote did not become ready within startTimeout (1 ms)');
    expect(e.message).to.include('raise the spawner option `startTimeout`');
    expect(e.message).not.to.include('stderr: .');
  });

  it('uses exactly the documented message shape', async function () {
    const e = await rejection(Spawner.start({ timeout: -1 }));
    expect(e).to.be.instanceOf(TypeError);
    expect(e.message).to.equal('Expected `timeout` to be a positive finite number, got `-1` (number)');
  });

  it('shows NaN and Infinity as themselves in the message, not as null', async function () {
    const nan = await rejection(Spawner.start({ timeout: NaN }));
    expect(nan.message).to.equal('Expected `timeout` to be a positive finite number, got `NaN` (number)');
    const inf = await rejection(Spawner.start({ timeout: Infinity }));
    expect(inf.message).to.equal('Expected `timeout` to be a positive finite number, got `Infinity` (number)');
  });

  it('rejects unknown option keys, at the top level and in sandbox', async function () {
    const e = await rejection(Spawner.start({ tiemout: 5 } as never));
    expect(e).to.be.instanceOf(TypeError);
    expect(e.message).to.match(/Unknown option `tiemout`/);
    expect(e.message).to.include('timeout');
    const e2 = await rejection(Spawner.start({ sandbox: { netwrok: true } } as never));
    expect(e2).to.be.instanceOf(TypeError);
    expect(e2.message).to.match(/Unknown option `sandbox\.netwrok`/);
  });

  it('rejects options that are not an object', async function () {
    const e = await rejection(Spawner.start(42 as never));
    expect(e).to.be.instanceOf(TypeError);
    expect(e.message).to.equal('Expected `options` to be an object, got `42` (number)');
  });
});

describe('Spawner.start on a kernel that refuses user namespaces', function () {
  const maxUserNs = '/proc/sys/user/max_user_namespaces';

  it('as root with user.max_user_namespaces=0: ERR_START naming the clone step', async function () {
    if (!isRoot) skipBecause(this, 'needs root to change user.max_user_namespaces');
    let old: string;
    try {
      old = fs.readFileSync(maxUserNs, 'utf8');
      fs.writeFileSync(maxUserNs, old); // probe: can we write it at all?
    } catch (e) {
      skipBecause(this, `cannot write ${maxUserNs} here (${(e as NodeJS.ErrnoException).code}); see the next test for the same check inside a user namespace`);
    }
    try {
      fs.writeFileSync(maxUserNs, '0');
      const e = await expectCode(Spawner.start({}), 'ERR_START');
      expect(e.message).to.match(/\bclone\b/);
      expect(e.message).to.include('ENOSPC');
      expect(e.message).to.include('max_user_namespaces');
    } finally {
      fs.writeFileSync(maxUserNs, old);
    }
  });

  it('inside a user namespace whose user.max_user_namespaces is 0: ERR_START naming the clone step', async function () {
    if (!fs.existsSync('/usr/bin/unshare')) skipBecause(this, '/usr/bin/unshare is not installed');
    if (isRoot) {
      const why = whyNobodyCannotRead([join(packageRoot, 'dist', 'lib', 'index.js'), addonPath]);
      if (why) skipBecause(this, why);
    }
    // The app runs unprivileged (as nobody when we are root) in a fresh user namespace in which
    // no further user namespace may be created; the limit is that namespace's own, not the host's.
    const script = `
      import { Spawner } from ${JSON.stringify(pathToFileURL(join(packageRoot, 'dist', 'lib', 'index.js')).href)};
      try {
        const s = await Spawner.start({ sandbox: { limits: 'none' } });
        await s.close();
        console.log(JSON.stringify({ started: true }));
      } catch (e) {
        console.log(JSON.stringify({ code: e.code, message: e.message }));
      }`;
    const inner = [
      '/usr/bin/unshare',
      '--user',
      '--map-current-user',
      '--keep-caps',
      '/bin/sh',
      '-c',
      `echo 0 > ${maxUserNs} || exit 99; exec "$0" --input-type=module -e "$1"`,
      process.execPath,
      script,
    ];
    const argv = isRoot ? ['/usr/bin/setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', ...inner] : inner;
    const { code, stdout, stderr } = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      execFile(argv[0], argv.slice(1), { cwd: '/', env: { ...process.env, HOME: '/tmp' }, timeout: 25_000 }, (err, stdout, stderr) =>
        resolve({ code: err ? ((err as { code?: number }).code ?? -1) : 0, stdout, stderr }),
      );
    });
    if (code === 99 || (code !== 0 && /^(unshare|setpriv): /m.test(stderr))) {
      skipBecause(this, `cannot create a user namespace with its own limit here (exit ${code}): ${stderr.trim().slice(-300)}`);
    }
    expect(code, `the app exited with ${code}; stdout: ${stdout}\nstderr: ${stderr}`).to.equal(0);
    const out = JSON.parse(stdout.trim().split('\n').pop()!);
    expect(out.started, 'the spawner must not start').to.not.equal(true);
    expect(out.code).to.equal('ERR_START');
    expect(out.message).to.match(/\bclone\b/);
    expect(out.message).to.include('ENOSPC');
    expect(out.message).to.include('max_user_namespaces');
  });
});
