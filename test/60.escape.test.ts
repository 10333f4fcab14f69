// Escape attempts: one probe job per attack, asserted from outside. Each attack runs against the
// full sandbox and, where that means something, against the layer under test alone (the other
// switchable layers off; capability dropping, no_new_privs and the namespaces are always on).
// Raw system calls that JavaScript cannot make go through the probe addon (native/probe.cc, built by `npm run build:probe`
// as test/native/build/Release/nodespawner_probe.node), which a job loads from the package root that is bound
// into every job. docs/security-model.md says what each layer defends.
//
// Predicting another job's random numbers (Math.random, randomUUID, randomBytes) is covered by
// 40.forksafety ("gives every job its own Math.random..."), as are the fds a job could inherit
// from the zygote or another job; the fd test here adds only what an attacker would look for.
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { createRequire } from 'node:module';
import { join, relative } from 'node:path';
import { expect } from 'chai';
import { Spawner } from '../lib/index.js';
import type { SandboxOptions } from '../lib/index.js';
import { descendants, expectCode, fixture, isRoot, packageRoot, runProgram, runningJob, skipBecause, tempDir, waitFor } from './helpers.js';

// Built by `npm run build:probe` (npm test does): test/native/binding.gyp.
const probe = join(packageRoot, 'test', 'native', 'build', 'Release', 'nodespawner_probe.node');
const escape = (name: string) => fixture(join('escape', name));
const MiB = 2 ** 20;

/** What the kernel answered to one attack, or the signal that killed the job making it. */
type Outcome = { name: string; ok: boolean; code: string | null; result: number; data?: string } | { killed: string | null };

async function attack(spawner: Spawner, call: Array<string | number | { open: string }>): Promise<Outcome> {
  if (!fs.existsSync(probe)) throw new Error(`the probe addon ${probe} is missing: build it with \`npm run build:probe\``);
  try {
    const r = await spawner.run<Outcome[]>(escape('syscall.mjs'), { probe, calls: [call] });
    return r.value![0];
  } catch (e) {
    if ((e as { code?: string }).code === 'ERR_JOB_CRASHED') return { killed: (e as { signal: string | null }).signal };
    throw e;
  }
}

/** The errno name of a refused call; fails the test if the call got through or the job died. */
function refused(o: Outcome, what: string): string {
  expect(o, `${what}: the job was killed`).to.not.have.property('killed');
  const r = o as Exclude<Outcome, { killed: string | null }>;
  expect(r.ok, `${what} succeeded (returned ${r.result})`).to.equal(false);
  return r.code!;
}

/** paths.mjs results with file contents shortened, so that a failure does not print a whole file. */
function shortened(results: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(results).map(([k, v]) => [k, typeof v === 'string' && !v.startsWith('ERR ') ? `read ${v.length} chars` : v]));
}

/**
 * Host objects in `dir`, as a host service would leave them there: a unix socket it listens on
 * (mode 0777) and a FIFO it reads (mode 0666), whatever uid the job has outside.
 */
async function hostObjects(dir: string) {
  const socket = join(dir, 'svc.sock');
  const server = net.createServer((c) => c.end('host service reply')).listen(socket);
  await once(server, 'listening');
  fs.chmodSync(socket, 0o777);
  const fifo = join(dir, 'ctl.fifo');
  const made = spawnSync('mkfifo', ['-m', '0666', fifo], { encoding: 'utf8' });
  if (made.status !== 0) throw new Error(`mkfifo ${fifo}: ${made.error?.message ?? made.stderr}`);
  // The reader the job would write to: open, so that a job's open for writing does not fail with ENXIO.
  const reader = fs.openSync(fifo, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  return {
    socket,
    fifo,
    /** What jobs wrote into the FIFO so far. */
    received(): string {
      const buf = Buffer.alloc(4096);
      try {
        return buf.subarray(0, fs.readSync(reader, buf)).toString();
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'EAGAIN') return '';
        throw e;
      }
    },
    close() {
      server.close();
      fs.closeSync(reader);
    },
  };
}

function sysctl(path: string): number | null {
  try {
    return Number(fs.readFileSync(`/proc/sys/${path}`, 'utf8').trim());
  } catch {
    return null;
  }
}

describe('escape attempts', function () {
  // Layers: `full` has every layer; the others keep one switchable layer (or none) on top of what
  // is always on.
  const layers: Record<string, SandboxOptions> = {
    full: { tmpSize: MiB },
    hostNetwork: { network: 'host' },
    hostNetworkWithoutSeccomp: { network: 'host', seccomp: false },
    withoutSeccomp: { seccomp: false },
    seccompAlone: { filesystem: false, landlock: false },
    landlockAlone: { filesystem: false, seccomp: false },
    filesystemAlone: { landlock: false, seccomp: false },
    userAlone: { filesystem: false, landlock: false, seccomp: false },
  };
  const secretName = 'NODESPAWNER_ESCAPE_SECRET';
  const s: Record<string, Spawner> = {};
  let shared: Awaited<ReturnType<typeof tempDir>>;
  let pair: Spawner;

  before(async function () {
    if (!fs.existsSync(probe)) throw new Error(`the probe addon is missing at ${probe}: build it with node-gyp rebuild`);
    // A secret in the app's environment: the zygote starts with `env` only.
    process.env[secretName] = 'the app secret';
    shared = await tempDir();
    fs.chmodSync(shared.path, 0o777);
    const started = await Promise.all(
      [
        ...Object.entries(layers).map(async ([name, sandbox]) => {
          s[name] = await Spawner.start({ sandbox, env: { VISIBLE: 'yes' }, concurrency: 4, selfTest: false });
        }),
        Spawner.start({ sandbox: { writablePaths: [shared.path] }, selfTest: false, concurrency: 2, prefork: 0 }).then((p) => (pair = p)),
      ].map((p) =>
        p.then(
          () => null,
          (e: unknown) => e,
        ),
      ),
    );
    const failed = started.find((e) => e !== null);
    if (failed) throw failed;
  });

  after(async function () {
    delete process.env[secretName];
    await Promise.all([...Object.values(s), pair].map((x) => x?.close()));
    await shared?.remove();
  });

  describe('the host filesystem', function () {
    const hostFiles = { read: ['/etc/shadow', '/etc/passwd'], list: ['/root'] };

    it('is not there at all in the job root: /etc/shadow, /etc/passwd and /root are ENOENT', async function () {
      for (const layer of ['full', 'filesystemAlone']) {
        const v = (await s[layer].run<any>(fixture('paths.mjs'), hostFiles)).value;
        expect(shortened(v.read), layer).to.deep.equal({ '/etc/shadow': 'ERR ENOENT', '/etc/passwd': 'ERR ENOENT' });
        expect(v.list, layer).to.deep.equal({ '/root': 'ERR ENOENT' });
      }
    });

    it('the unprivileged user alone cannot read /etc/shadow or list /root (EACCES)', async function () {
      const v = (await s.userAlone.run<any>(fixture('paths.mjs'), hostFiles)).value;
      expect(v.read['/etc/shadow']).to.equal('ERR EACCES');
      expect(v.list['/root']).to.equal('ERR EACCES');
    });

    it('Landlock alone refuses host files outside the job plan, even world-readable ones (EACCES)', async function () {
      if (s.landlockAlone.info.landlockAbi <= 0) skipBecause(this, `the kernel has no Landlock (ABI ${s.landlockAlone.info.landlockAbi})`);
      const v = (await s.landlockAlone.run<any>(fixture('paths.mjs'), hostFiles)).value;
      // /etc/passwd is world-readable: only Landlock can refuse it here.
      expect(shortened(v.read)).to.deep.equal({ '/etc/shadow': 'ERR EACCES', '/etc/passwd': 'ERR EACCES' });
      expect(v.list).to.deep.equal({ '/root': 'ERR EACCES' });
    });
  });

  describe('writing outside /tmp', function () {
    const targets = () => [join(packageRoot, 'escape-written'), fixture('escape-written'), '/escape-written'];

    after(function () {
      for (const t of targets()) fs.rmSync(t, { force: true });
    });

    it("is refused everywhere but /tmp: the root, the package and the job's own dir are read-only (EROFS)", async function () {
      for (const layer of ['full', 'filesystemAlone']) {
        const v = (await s[layer].run<any>(fixture('paths.mjs'), { write: [...targets(), '/tmp/ok'] })).value;
        for (const t of targets()) expect(v.write[t], `${layer}: ${t}`).to.be.oneOf(['ERR EROFS', 'ERR EACCES']);
        expect(v.write[targets()[1]], `${layer}: the job's own dir`).to.equal('ERR EROFS');
        expect(v.write['/tmp/ok'], `${layer}: /tmp`).to.equal('ok');
      }
      for (const t of targets()) expect(fs.existsSync(t), t).to.equal(false);
    });

    it("the unprivileged user alone cannot write to the host's root or the job's dir (EACCES)", async function () {
      const v = (await s.userAlone.run<any>(fixture('paths.mjs'), { write: targets() })).value;
      for (const t of targets()) expect(v.write[t], t).to.equal('ERR EACCES');
      for (const t of targets()) expect(fs.existsSync(t), t).to.equal(false);
    });
  });

  it('cannot fill /tmp past sandbox.tmpSize: ENOSPC at the limit', async function () {
    const v = (await s.full.run<{ written: number; code: string | null }>(escape('fill-tmp.mjs'), { limit: 8 * MiB })).value!;
    expect(v.code).to.equal('ENOSPC');
    expect(v.written)
      .to.be.at.most(MiB)
      .and.at.least(MiB / 2);
  });

  describe('host processes and the zygote', function () {
    it('sees only itself in /proc and can neither signal nor read the zygote or the app (ESRCH)', async function () {
      const v = (await s.full.run<any>(escape('processes.mjs'), { pids: [s.full.pid, process.pid] })).value;
      expect(v.self).to.equal(1);
      expect(v.proc).to.deep.equal([1]);
      expect(v.signal).to.deep.equal({ [s.full.pid]: 'ERR ESRCH', [process.pid]: 'ERR ESRCH' });
      expect(v.environ).to.deep.equal({ [s.full.pid]: 'ERR ENOENT', [process.pid]: 'ERR ENOENT' });
      const killed = await attack(s.full, ['kill', s.full.pid, 0]);
      expect(refused(killed, 'kill(zygote, 0)')).to.equal('ESRCH');
    });

    it("the PID namespace alone: with the host's /proc in view, the zygote and the app still cannot be signalled, and their environments not read", async function () {
      const v = (await s.userAlone.run<any>(escape('processes.mjs'), { pids: [s.userAlone.pid, process.pid] })).value;
      expect(v.proc, "the host's /proc").to.include.members([s.userAlone.pid, process.pid]);
      expect(v.signal).to.deep.equal({ [s.userAlone.pid]: 'ERR ESRCH', [process.pid]: 'ERR ESRCH' });
      expect(v.environ).to.deep.equal({ [s.userAlone.pid]: 'ERR EACCES', [process.pid]: 'ERR EACCES' });
    });
  });

  describe('system calls the seccomp filter denies kill the job (SIGSYS)', function () {
    // The DESIGN.md denylist and its neighbours; each in a job of its own, since the first kills it.
    const denied: Array<Array<string | number | { open: string }>> = [
      ['ptrace-traceme'],
      ['ptrace-attach', 1],
      ['mount', '/tmp'],
      ['umount2', '/proc'],
      ['pivot_root', '/tmp', '/tmp'],
      ['chroot', '/tmp'],
      ['unshare-user'],
      ['clone-user'],
      ['setns', { open: '/proc/self/ns/net' }, 0],
      ['bpf'],
      ['keyctl'],
      ['add_key'],
      ['perf_event_open'],
      ['userfaultfd'],
      ['process_vm_readv', 1],
      ['init_module'],
      ['reboot'],
      ['kexec_load'],
      ['clock_settime'],
      // FIFOs and device nodes: none of the job's making, for another job or the host to open.
      ['mknod-fifo', '/tmp/fifo'],
    ];

    it('the probe itself runs under the filter: an allowed call (kill(1, 0)) answers', async function () {
      for (const layer of ['full', 'seccompAlone']) {
        const o = await attack(s[layer], ['kill', 1, 0]);
        expect(o, layer).to.deep.include({ ok: true });
      }
    });

    it('the full sandbox has a seccomp filter installed (Seccomp: 2 in /proc/self/status)', async function () {
      const v = (await s.full.run<any>(escape('privileges.mjs'))).value;
      expect(v.status.Seccomp, 'mode 2 is filter').to.equal('2');
    });

    for (const call of denied) {
      it(`${call[0]}: killed by SIGSYS, with every layer and with seccomp alone`, async function () {
        for (const layer of ['full', 'seccompAlone']) {
          const o = await attack(s[layer], call);
          expect(o, `${layer}: ${JSON.stringify(o)}`).to.deep.equal({ killed: 'SIGSYS' });
        }
      });
    }

    // libuv 1.49+ asks for an io_uring in every new event loop and falls back to epoll without one.
    it('io_uring_setup: refused (ENOSYS), with every layer and with seccomp alone', async function () {
      for (const layer of ['full', 'seccompAlone']) {
        const o = await attack(s[layer], ['io_uring_setup']);
        expect(refused(o, `${layer}: io_uring_setup`), layer).to.equal('ENOSYS');
      }
    });

    // A filter cannot read clone3's flags (they are in memory), so clone3 must be denied whole;
    // ENOSYS is the usual answer, which makes glibc fall back to clone, whose flags it can read.
    it('clone3 with CLONE_NEWUSER: killed by SIGSYS or refused (ENOSYS), with every layer and with seccomp alone', async function () {
      for (const layer of ['full', 'seccompAlone']) {
        const o = await attack(s[layer], ['clone3-user']);
        if ('killed' in o) expect(o.killed, layer).to.equal('SIGSYS');
        else expect(refused(o, `${layer}: clone3(CLONE_NEWUSER)`), layer).to.be.oneOf(['ENOSYS', 'EPERM']);
      }
    });

    it('the job dies as ERR_JOB_CRASHED with signal SIGSYS', async function () {
      const e = await expectCode(s.full.run(escape('syscall.mjs'), { probe, calls: [['unshare-user']] }), 'ERR_JOB_CRASHED');
      expect(e.signal).to.equal('SIGSYS');
    });
  });

  describe('without seccomp, capabilities and namespaces still refuse', function () {
    // The same attacks with every layer but seccomp: what the kernel answers an unprivileged
    // process in its own namespaces. Attacks that only seccomp stops (unshare, clone and clone3
    // with CLONE_NEWUSER, PTRACE_TRACEME, keyctl and add_key; io_uring where the host allows it)
    // are not here: docs/security-model.md lists them.
    const expected: Array<[Array<string | number | { open: string }>, string[]]> = [
      [['mount', '/tmp'], ['EPERM']],
      [['umount2', '/proc'], ['EPERM']],
      [['pivot_root', '/tmp', '/tmp'], ['EPERM']],
      [['chroot', '/tmp'], ['EPERM']],
      [['setns', { open: '/proc/self/ns/net' }, 0], ['EPERM']],
      [['sethostname', 'escaped'], ['EPERM']],
      // uid 0 has no mapping in the job's namespace.
      [
        ['setuid', 0],
        ['EINVAL', 'EPERM'],
      ],
      [['open_by_handle_at'], ['EPERM']],
      // ENOSYS: a kernel built without module support.
      [['init_module'], ['EPERM', 'ENOSYS']],
      [['reboot'], ['EPERM']],
      // ENOSYS: a kernel built without kexec.
      [['kexec_load'], ['EPERM', 'ENOSYS']],
    ];

    for (const [call, codes] of expected) {
      it(`${call[0]}: ${codes.join(' or ')}`, async function () {
        expect(refused(await attack(s.withoutSeccomp, call), String(call[0]))).to.be.oneOf(codes);
      });
    }

    it('ptrace, process_vm_readv and kill on the zygote: ESRCH (it does not exist in the job)', async function () {
      const zygote = s.withoutSeccomp.pid;
      for (const call of [
        ['ptrace-attach', zygote],
        ['process_vm_readv', zygote],
        ['kill', zygote, 0],
      ]) {
        expect(refused(await attack(s.withoutSeccomp, call), String(call[0]))).to.equal('ESRCH');
      }
    });

    const bySysctl: Array<[string, string, (v: number) => boolean, string]> = [
      ['bpf', 'kernel/unprivileged_bpf_disabled', (v) => v !== 0, 'EPERM'],
      ['perf_event_open', 'kernel/perf_event_paranoid', (v) => v >= 2, 'EACCES'],
      ['userfaultfd', 'vm/unprivileged_userfaultfd', (v) => v === 0, 'EPERM'],
      ['io_uring_setup', 'kernel/io_uring_disabled', (v) => v !== 0, 'EPERM'],
    ];
    for (const [name, path, hostRefuses, code] of bySysctl) {
      it(`${name}: ${code} where ${path} refuses unprivileged callers`, async function () {
        const v = sysctl(path);
        if (v === null || !hostRefuses(v)) skipBecause(this, `${path} = ${v}: this host lets unprivileged processes call ${name}; only seccomp stops a job`);
        expect(refused(await attack(s.withoutSeccomp, [name]), name)).to.equal(code);
      });
    }
  });

  describe("the app's session keyring", function () {
    it("is out of a job's reach: the job cannot find or read the app's keys", async function () {
      const sandboxes = [layers.full, layers.withoutSeccomp];
      const app = join(packageRoot, 'test', 'fixtures', 'escape', 'keyring-app.mjs');
      const run = await runProgram(process.execPath, [app, packageRoot, JSON.stringify(sandboxes)], { timeoutMs: 100_000 });
      if (run.code !== 0) throw new Error(`the keyring app exited with ${run.signal ?? run.code}\n${run.stdout}\n${run.stderr}`);
      const out = run.stdout;
      const [full, withoutSeccomp] = JSON.parse(out.trim().split('\n').pop()!);
      expect(full, 'full sandbox: keyctl is denied').to.deep.include({ killed: 'SIGSYS' });
      // Without seccomp: a job must not hold the app's session keyring (it is inherited across
      // fork and clone; the child joins a new one while it specializes).
      expect(withoutSeccomp.session.result, "without seccomp: the job's session keyring is the app's").to.not.equal(withoutSeccomp.appSession);
      expect(withoutSeccomp.search.ok, `without seccomp: the job found the app's key and read ${JSON.stringify(withoutSeccomp.read?.data)}`).to.equal(false);
    });
  });

  describe('privileges', function () {
    const none = '0000000000000000';

    it('runs with no capabilities, no_new_privs set, and no uid 0, with every layer and with the switchable layers off', async function () {
      for (const layer of ['full', 'userAlone']) {
        const v = (await s[layer].run<any>(escape('privileges.mjs'))).value;
        expect(v.status, layer).to.deep.include({
          CapInh: none,
          CapPrm: none,
          CapEff: none,
          CapBnd: none,
          CapAmb: none,
          NoNewPrivs: '1',
          Uid: '1000 1000 1000 1000',
          Gid: '1000 1000 1000 1000',
          Groups: '',
        });
      }
    });

    it('a setuid-root program gives the job no euid 0 (it would give one to nobody outside)', async function () {
      if (!isRoot) skipBecause(this, 'making a setuid-root program needs root');
      const id = '/usr/bin/id';
      if (!fs.existsSync(id)) skipBecause(this, `${id} is not installed`);
      const dir = await tempDir();
      try {
        const suid = join(dir.path, 'id');
        fs.copyFileSync(id, suid);
        fs.chmodSync(suid, 0o4755);
        // The control: outside the sandbox the copy works, so the test means something here.
        const control = spawnSync('/usr/bin/setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', suid], { encoding: 'utf8' });
        if (control.error || !/euid=0\b/.test(control.stdout))
          skipBecause(this, `the setuid copy does not raise nobody to euid 0 on this host (${control.error?.message ?? control.stdout.trim()}): nosuid mount?`);
        // The job needs the host's filesystem to reach the program. Without seccomp the exec
        // happens and must gain nothing; seccomp may refuse execve itself (EPERM, or SIGSYS),
        // which is as good, as long as that is what happened.
        const ran = async (layer: string) => {
          try {
            return (await s[layer].run<any>(escape('privileges.mjs'), { exec: [suid] })).value.ran;
          } catch (e) {
            expect((e as { code: string }).code, `${layer}: ${(e as Error).message}`).to.equal('ERR_JOB_CRASHED');
            return { killed: (e as { signal: string }).signal };
          }
        };
        const plain = await ran('userAlone');
        expect(plain, 'userAlone').to.not.have.any.keys('error', 'killed');
        expect(plain.stdout, 'userAlone').to.match(/^uid=1000\b/);
        expect(plain.stdout, 'userAlone').to.not.match(/euid=0\b/);
        const filtered = await ran('seccompAlone');
        if (filtered.killed) expect(filtered.killed, 'seccompAlone').to.equal('SIGSYS');
        else if (filtered.error) expect(filtered.error, 'seccompAlone: spawn refused').to.equal('EPERM');
        else
          expect(filtered.stdout, 'seccompAlone')
            .to.match(/^uid=1000\b/)
            .and.not.match(/euid=0\b/);
      } finally {
        await dir.remove();
      }
    });
  });

  describe('host objects in a bound tree: sockets, FIFOs, devices, mounts', function () {
    // Where the job's directory is: a temp dir under /tmp, one elsewhere (/var/tmp), and one
    // reached through a symlink in /tmp. Each holds the probe job and a host service's socket and
    // FIFO. `bound` binds two more trees: a read-only one under /tmp, a writable one elsewhere.
    const places: Record<string, { dir: string; job: string; objects: Awaited<ReturnType<typeof hostObjects>> }> = {};
    const made: string[] = [];
    let readOnly: string;
    let writable: string;
    let bound: Spawner;
    let boundMountsAlone: Spawner;
    let roObjects: Awaited<ReturnType<typeof hostObjects>>;

    const mkdir = (parent: string) => {
      const d = fs.mkdtempSync(join(parent, 'nodespawner-test-'));
      fs.chmodSync(d, 0o755);
      made.push(d);
      return d;
    };

    before(async function () {
      this.timeout(60_000);
      const job = fs.readFileSync(escape('bound-objects.mjs'));
      const paths = fs.readFileSync(fixture('paths.mjs'));
      const place = async (name: string, dir: string, via = dir) => {
        fs.writeFileSync(join(dir, 'job.mjs'), job, { mode: 0o644 });
        fs.writeFileSync(join(dir, 'paths.mjs'), paths, { mode: 0o644 });
        places[name] = { dir: via, job: join(via, 'job.mjs'), objects: await hostObjects(dir) };
      };
      await place('/tmp', mkdir('/tmp'));
      await place('/var/tmp', mkdir('/var/tmp'));
      const real = mkdir('/var/tmp');
      const link = `${mkdir('/tmp')}/link`;
      fs.symlinkSync(real, link);
      await place('a symlink in /tmp', real, link);
      readOnly = mkdir('/tmp');
      roObjects = await hostObjects(readOnly);
      writable = mkdir('/var/tmp');
      fs.chmodSync(writable, 0o777); // writable by the job's outside uid, whatever the app's
      const sandbox = { readOnlyPaths: [readOnly], writablePaths: [writable] };
      [bound, boundMountsAlone] = await Promise.all([
        Spawner.start({ sandbox, selfTest: false, concurrency: 2, prefork: 0 }),
        Spawner.start({ sandbox: { ...sandbox, landlock: false, seccomp: false }, selfTest: false, concurrency: 2, prefork: 0 }),
      ]);
    });

    after(async function () {
      await Promise.all([bound?.close(), boundMountsAlone?.close()]);
      for (const p of Object.values(places)) p.objects.close();
      roObjects?.close();
      for (const d of made) fs.rmSync(d, { recursive: true, force: true });
    });

    const probe = (spawner: Spawner, where: string, what: { socket?: boolean; fifo?: boolean }) => {
      const p = places[where];
      return spawner
        .run<any>(p.job, { socket: what.socket ? join(p.dir, 'svc.sock') : null, fifo: what.fifo ? join(p.dir, 'ctl.fifo') : null })
        .then((r) => r.value);
    };

    it("cannot connect to a host's unix socket in its own directory, in /tmp or elsewhere (seccomp: EAFNOSUPPORT)", async function () {
      for (const where of Object.keys(places)) {
        for (const layer of ['full', 'seccompAlone']) {
          expect((await probe(s[layer], where, { socket: true })).socket, `${layer}, job in ${where}`).to.equal('EAFNOSUPPORT');
        }
      }
      // The control: mounts alone do not refuse connect() on a read-only bind.
      expect((await probe(s.filesystemAlone, '/var/tmp', { socket: true })).socket, 'filesystemAlone').to.equal('read host service reply');
    });

    it("cannot open a host's FIFO in its own directory for writing, in /tmp or elsewhere (Landlock: EACCES)", async function () {
      if (s.full.info.landlockAbi <= 0)
        skipBecause(this, `the kernel has no Landlock (ABI ${s.full.info.landlockAbi}): a read-only bind does not refuse writing into a FIFO`);
      for (const where of Object.keys(places)) {
        expect((await probe(s.full, where, { fifo: true })).fifo, `full, job in ${where}`).to.equal('EACCES');
        expect(places[where].objects.received(), `the host read from its FIFO in ${where}`).to.equal('');
      }
      expect((await probe(s.landlockAlone, '/var/tmp', { fifo: true })).fifo, 'landlockAlone').to.equal('EACCES');
      // The control: a read-only bind does not refuse it; Landlock is the layer that does.
      expect((await probe(s.filesystemAlone, '/var/tmp', { fifo: true })).fifo, 'filesystemAlone').to.equal('written');
      expect(places['/var/tmp'].objects.received()).to.equal('escaped through the FIFO');
    });

    it('reaches neither in readOnlyPaths under /tmp', async function () {
      const v = (await bound.run<any>(escape('bound-objects.mjs'), { socket: roObjects.socket, fifo: roObjects.fifo })).value;
      expect(v.socket, 'socket').to.equal('EAFNOSUPPORT');
      if (bound.info.landlockAbi > 0) expect(v.fifo, 'FIFO').to.equal('EACCES');
      expect(roObjects.received()).to.equal('');
    });

    it("finds its directory under /tmp at its host path, yet beside the job's /tmp rather than in it", async function () {
      const p = places['/tmp'];
      const v = (await s.full.run<any>(join(p.dir, 'paths.mjs'), { write: [join(p.dir, 'escape-written'), '/tmp/ok'], list: [p.dir] })).value;
      expect(v.list[p.dir]).to.include.members(['job.mjs', 'svc.sock', 'ctl.fifo']);
      expect(v.write[join(p.dir, 'escape-written')]).to.be.oneOf(['ERR EROFS', 'ERR EACCES']);
      expect(v.write['/tmp/ok']).to.equal('ok');
    });

    it('cannot open a device node in a writable path: every bind is nodev (EACCES)', async function () {
      if (!isRoot) skipBecause(this, 'making a device node needs root (CAP_MKNOD)');
      const device = join(writable, 'null-device');
      const made = spawnSync('mknod', ['-m', '0666', device, 'c', '1', '3'], { encoding: 'utf8' });
      if (made.status !== 0) skipBecause(this, `mknod failed: ${made.stderr || made.error?.message}`);
      try {
        for (const [layer, spawner] of [
          ['full', bound],
          ['mounts alone', boundMountsAlone],
        ] as const) {
          const v = (await spawner.run<any>(escape('bound-objects.mjs'), { open: [device] })).value;
          expect(v.open[device], layer).to.equal('EACCES');
        }
      } finally {
        fs.rmSync(device, { force: true });
      }
    });

    it('a process it leaves behind dies with it: nothing of it writes into a writable path afterwards', async function () {
      const late = join(writable, 'written-after-the-job');
      const o = await attack(bound, ['fork-linger', late, 1500]);
      expect(o, 'the job forked').to.deep.include({ ok: true });
      await waitFor('no process of the job left', () => descendants(bound.pid).length === 0);
      expect(fs.existsSync(late)).to.equal(false);
    });

    it("cannot make a later job's plan bind a host path: symlinks it leaves in a writable path are not followed", async function () {
      const jobs = join(writable, 'jobs');
      fs.mkdirSync(jobs, { mode: 0o777 });
      fs.chmodSync(jobs, 0o777);
      fs.copyFileSync(fixture('paths.mjs'), join(jobs, 'paths.mjs'));
      // A file of the host's /var, which no job may see. The plan binds the node_modules
      // directories above a job module; a relative link named so, to a directory that both
      // roots have (/var, where `writable` is), would bind the host's whole /var into the next
      // job. A package.json link would bind a host file.
      const marker = join('/var/tmp', `nodespawner-marker-${process.pid}`);
      fs.writeFileSync(marker, 'the host /var', { mode: 0o644 });
      const links = {
        [join(writable, 'node_modules')]: relative(writable, '/var'),
        [join(jobs, 'package.json')]: '/etc/passwd',
      };
      try {
        const planted = (await bound.run<any>(escape('plant.mjs'), { links })).value;
        expect(Object.values(planted), 'the first job planted its links').to.deep.equal(['planted', 'planted']);
        const reads = [marker, join(jobs, 'package.json')];
        const v = (await bound.run<any>(join(jobs, 'paths.mjs'), { read: reads })).value;
        expect(shortened(v.read)).to.deep.equal(Object.fromEntries(reads.map((r) => [r, 'ERR ENOENT'])));
      } finally {
        fs.rmSync(jobs, { recursive: true, force: true });
        fs.rmSync(join(writable, 'node_modules'), { force: true });
        fs.rmSync(marker, { force: true });
      }
    });

    it('cannot write into a host mount beneath a read-only bind: read-only and nodev reach every mount in the tree (EROFS)', async function () {
      if (!isRoot) skipBecause(this, 'mounting a tmpfs on the host needs root');
      const sub = join(readOnly, 'submount');
      fs.mkdirSync(sub);
      const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=64k,mode=1777', 'nodespawner-test', sub], { encoding: 'utf8' });
      if (mounted.status !== 0) skipBecause(this, `mount failed: ${mounted.stderr || mounted.error?.message}`);
      try {
        const target = join(sub, 'escape-written');
        const v = (await bound.run<any>(fixture('paths.mjs'), { write: [target] })).value;
        expect(v.write[target], 'full').to.be.oneOf(['ERR EROFS', 'ERR EACCES']);
        const alone = (await boundMountsAlone.run<any>(fixture('paths.mjs'), { write: [target] })).value;
        expect(alone.write[target], 'mounts alone').to.equal('ERR EROFS');
        expect(fs.existsSync(join(sub, 'escape-written'))).to.equal(false);
      } finally {
        spawnSync('umount', [sub]);
      }
    });
  });

  describe('host objects by key, name or number: IPC, /dev/shm, /proc', function () {
    const host = () =>
      createRequire(import.meta.url)(probe).trySyscall as (name: string, ...args: Array<string | number>) => { ok: boolean; errno: number; result: number };
    const IPC_CREAT = 0o1000;
    const O_CREAT_RDWR = 0o100 | 2;
    const key = 0x4e530000 + (process.pid & 0xffff);
    const queue = `nodespawner-test-${process.pid}`;
    const shm = `/dev/shm/nodespawner-test-${process.pid}`;
    let made: { shm: number; msg: number } = { shm: -1, msg: -1 };

    before(function () {
      const call = host();
      const shmid = call('shmget', key, IPC_CREAT | 0o666);
      const msqid = call('msgget', key, IPC_CREAT | 0o666);
      const mq = call('mq_open', queue, O_CREAT_RDWR);
      for (const [what, r] of Object.entries({ shmget: shmid, msgget: msqid, mq_open: mq })) {
        if (!r.ok) throw new Error(`the host's ${what} failed: errno ${r.errno}`);
      }
      made = { shm: shmid.result, msg: msqid.result };
      fs.writeFileSync(shm, 'host shared memory', { mode: 0o666 });
      fs.chmodSync(shm, 0o666);
    });

    after(function () {
      const call = host();
      call('shmctl-rmid', made.shm);
      call('msgctl-rmid', made.msg);
      call('mq_unlink', queue);
      fs.rmSync(shm, { force: true });
    });

    // [attack, arguments]: each finds the host's object when nothing stands in the way.
    const ipc: Array<[string, Array<string | number>]> = [
      ['shmget', [key, 0]],
      ['msgget', [key, 0]],
      ['mq_open', [queue, 2]],
    ];

    for (const [name, args] of ipc) {
      it(`${name} of the host's object: killed by seccomp; without it, not found in the job's IPC namespace (ENOENT)`, async function () {
        expect(await attack(s.full, [name, ...args]), 'full').to.deep.equal({ killed: 'SIGSYS' });
        expect(refused(await attack(s.withoutSeccomp, [name, ...args]), name), 'withoutSeccomp').to.equal('ENOENT');
      });
    }

    it("cannot find the host's POSIX shared memory (/dev/shm is not in its root)", async function () {
      for (const layer of ['full', 'filesystemAlone']) {
        const v = (await s[layer].run<any>(fixture('paths.mjs'), { read: [shm], write: [shm] })).value;
        expect(v, layer).to.deep.include({ read: { [shm]: 'ERR ENOENT' }, write: { [shm]: 'ERR ENOENT' } });
      }
      expect(fs.readFileSync(shm, 'utf8')).to.equal('host shared memory');
    });

    it("cannot open the kernel's writable /proc files (sysrq-trigger, sysctls) for writing", async function () {
      const files = ['/proc/sysrq-trigger', '/proc/sys/kernel/hostname', '/proc/sys/vm/drop_caches', '/proc/sys/kernel/core_pattern'];
      const full = (await s.full.run<any>(escape('bound-objects.mjs'), { open: files })).value;
      // ENOENT: the kernel may not show a file in a procfs mounted from a user namespace.
      for (const f of files) expect(full.open[f], `full: ${f}`).to.be.oneOf(['EACCES', 'ENOENT']);
      const alone = (await s.filesystemAlone.run<any>(escape('bound-objects.mjs'), { open: files })).value;
      for (const f of files) expect(alone.open[f], `filesystemAlone: ${f}`).to.be.oneOf(['EACCES', 'EPERM', 'EROFS', 'ENOENT']);
    });
  });

  describe('the network', function () {
    let tcp: net.Server;
    let abstract: net.Server;
    let args: { tcp: { host: string; port: number }; unix: string };

    before(async function () {
      tcp = net.createServer((c) => c.end()).listen(0, '127.0.0.1');
      await new Promise((r) => tcp.once('listening', r));
      // An abstract unix socket belongs to a network namespace, not to the filesystem.
      const name = `\0nodespawner-escape-${process.pid}`;
      abstract = net.createServer((c) => c.end()).listen(name);
      await new Promise((r) => abstract.once('listening', r));
      args = { tcp: { host: '127.0.0.1', port: (tcp.address() as net.AddressInfo).port }, unix: name };
    });

    after(function () {
      tcp?.close();
      abstract?.close();
    });

    it("cannot reach a server on the host's loopback or an abstract unix socket of the host", async function () {
      const v = (await s.full.run<any>(escape('connect.mjs'), args)).value;
      // seccomp refuses the unix socket itself; the network namespace refuses both on its own.
      expect(v).to.deep.equal({ tcp: 'ENETUNREACH', unix: 'EAFNOSUPPORT' });
      const alone = (await s.userAlone.run<any>(escape('connect.mjs'), args)).value;
      expect(alone, 'the network namespace alone').to.deep.equal({ tcp: 'ENETUNREACH', unix: 'ECONNREFUSED' });
    });

    it("with network: 'host' reaches the host's loopback (no isolation), still not its abstract unix sockets (seccomp)", async function () {
      const v = (await s.hostNetwork.run<any>(escape('connect.mjs'), args)).value;
      expect(v).to.deep.equal({ tcp: 'connected', unix: 'EAFNOSUPPORT' });
    });

    it("with network: 'host' and without seccomp, Landlock's scope refuses the host's abstract unix sockets (EPERM, ABI 6)", async function () {
      const abi = s.hostNetworkWithoutSeccomp.info.landlockAbi;
      if (abi < 6)
        skipBecause(
          this,
          `Landlock ABI ${abi} has no scopes (6 and later do): only seccomp refuses the host's abstract sockets to a job on the host's network`,
        );
      const v = (await s.hostNetworkWithoutSeccomp.run<any>(escape('connect.mjs'), args)).value;
      expect(v).to.deep.equal({ tcp: 'connected', unix: 'EPERM' });
    });
  });

  it("cannot read the app's environment: only `env` reaches the job", async function () {
    expect(process.env[secretName], 'the secret is in the app').to.be.a('string');
    const v = (await s.full.run<any>(escape('environment.mjs'))).value;
    expect(v.env).to.deep.equal({ VISIBLE: 'yes' });
    for (const block of [v.self, v.pid1]) {
      if (Array.isArray(block)) expect(block.join('\n')).to.not.include(secretName);
      else expect(block).to.match(/^ERR /);
    }
  });

  it('finds no socket among its fds, and none of the pipes or sockets the zygote holds', async function () {
    const fds = (await s.full.run<Record<string, string>>(fixture('fds.mjs'))).value!;
    const zygote = new Set<string>();
    for (const fd of fs.readdirSync(`/proc/${s.full.pid}/fd`)) {
      try {
        zygote.add(fs.readlinkSync(`/proc/${s.full.pid}/fd/${fd}`));
      } catch {
        // closed meanwhile
      }
    }
    expect(
      Object.values(fds).filter((t) => t.startsWith('socket:')),
      'sockets',
    ).to.deep.equal([]);
    expect(
      Object.entries(fds).filter(([, t]) => /^(pipe|socket):/.test(t) && zygote.has(t)),
      'shared with the zygote',
    ).to.deep.equal([]);
  });

  it("cannot change the host's hostname: sethostname is refused and only ever touches the job's UTS namespace", async function () {
    const before = os.hostname();
    const full = await attack(s.full, ['sethostname', 'escaped']);
    if ('killed' in full) expect(full.killed).to.equal('SIGSYS');
    else expect(refused(full, 'sethostname')).to.equal('EPERM');
    expect(refused(await attack(s.withoutSeccomp, ['sethostname', 'escaped']), 'sethostname')).to.equal('EPERM');
    expect(os.hostname()).to.equal(before);
  });

  it('cannot observe another job: not its /tmp, not its process, not its memory', async function () {
    const ready = join(shared.path, 'a-ready');
    const stop = new AbortController();
    const a = pair.run(escape('secret-writer.mjs'), { secret: 'job A secret', ready }, { signal: stop.signal, timeout: 20_000 });
    a.catch(() => {}); // settled below
    try {
      await waitFor('job A to write its secret', () => fs.existsSync(ready));
      const { job } = await runningJob(pair.pid);
      const b = (await pair.run<any>(escape('peer.mjs'), { pid: job.pid })).value;
      // B's /tmp is its own tmpfs; its only entries are mount points of what the plan binds: the
      // directory both share, and the package itself when it lives under /tmp (a clone in /tmp).
      const mountPoints = [shared.path, packageRoot].filter((p) => p.startsWith('/tmp/')).map((p) => p.split('/')[2]);
      expect(b.tmp, "B's /tmp").to.have.members([...new Set(mountPoints)]);
      expect(b.tmp, "B's /tmp").to.not.include('secret');
      expect(b.secret).to.equal('ERR ENOENT');
      expect(b.proc, "B's /proc").to.deep.equal([1]);
      expect(b.signal, 'kill(A, 0)').to.equal('ERR ESRCH');
      expect(b.mem, `/proc/${job.pid}`).to.equal('ERR ENOENT');
    } finally {
      stop.abort();
    }
    await expectCode(a, 'ERR_ABORTED');
  });
});
