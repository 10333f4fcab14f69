// The sandbox's own options and its setup errors: readOnlyPaths, writablePaths, what the job's
// root holds, and a failing setup step that rejects one run while the zygote keeps serving.
import { expect } from 'chai';
import fs from 'node:fs';
import { dirname, join } from 'node:path';
import { tmpdir } from 'node:os';
import { Spawner, SandboxSetupError } from '../lib/index.js';
import { expectCode, fixture } from './helpers.js';
import { MountKind, landlockRules, mountPlan, relocatedBinds, unsearchableDir } from '../lib/sandbox.js';
import type { SandboxPolicy } from '../lib/sandbox.js';

async function makeTempDir(prefix: string): Promise<string> {
  const d = fs.mkdtempSync(join(tmpdir(), prefix));
  fs.chmodSync(d, 0o755);
  return d;
}

describe('sandbox: the job root and its options', function () {
  let spawner: Spawner;
  let ro: string;
  let rw: string;
  let doomed: string;
  let pkg: string;
  let lone: string;
  const looseJob = join(tmpdir(), `nodespawner-loose-job-${process.pid}.mjs`);

  before(async function () {
    ro = await makeTempDir('nodespawner-ro-');
    rw = await makeTempDir('nodespawner-rw-');
    doomed = await makeTempDir('nodespawner-doomed-');
    fs.writeFileSync(join(ro, 'data.txt'), 'read me');
    fs.chmodSync(join(ro, 'data.txt'), 0o644);
    fs.chmodSync(rw, 0o777);
    // A job module straight in /tmp, one whose package.json is a directory above it, and a
    // readOnlyPaths entry that is a file: each is bound as a file.
    const job = "import fs from 'node:fs';\nexport default (file) => ({ answer: 42, file: file ? fs.readFileSync(file, 'utf8') : null });\n";
    fs.writeFileSync(looseJob, job, { mode: 0o644 });
    pkg = await makeTempDir('nodespawner-pkg-');
    fs.writeFileSync(join(pkg, 'package.json'), '{ "type": "module" }\n', { mode: 0o644 });
    fs.mkdirSync(join(pkg, 'src'), { mode: 0o755 });
    fs.writeFileSync(join(pkg, 'src', 'job.js'), job, { mode: 0o644 });
    lone = join(await makeTempDir('nodespawner-lone-'), 'lone.txt');
    fs.writeFileSync(lone, 'only me', { mode: 0o644 });
    fs.writeFileSync(join(dirname(lone), 'other.txt'), 'not me', { mode: 0o644 });
    spawner = await Spawner.start({ sandbox: { readOnlyPaths: [ro, doomed, lone], writablePaths: [rw] } });
  });

  after(async function () {
    await spawner?.close();
    for (const d of [ro, rw, doomed, pkg, dirname(lone), looseJob]) fs.rmSync(d, { recursive: true, force: true });
  });

  it('shows the job a root that holds only what it needs', async function () {
    const r = await spawner.run(fixture('paths.mjs'), { list: ['/', '/dev'] });
    const list = (r.value as { list: Record<string, string[]> }).list;
    expect(list['/']).to.include.members(['dev', 'proc', 'tmp']);
    expect(list['/']).to.not.include.members(['etc', 'usr', 'root', 'home', 'sys', 'var']);
    expect(list['/dev']).to.have.members(['null', 'zero', 'random', 'urandom']);
  });

  it('binds readOnlyPaths read-only and writablePaths writable, at the same paths', async function () {
    const r = await spawner.run(fixture('paths.mjs'), {
      read: [join(ro, 'data.txt')],
      write: [join(ro, 'new.txt'), join(rw, 'out.txt')],
    });
    const v = r.value as { read: Record<string, string>; write: Record<string, string> };
    expect(v.read[join(ro, 'data.txt')]).to.equal('read me');
    expect(v.write[join(ro, 'new.txt')]).to.equal('ERR EROFS');
    expect(v.write[join(rw, 'out.txt')]).to.equal('ok');
    expect(fs.readFileSync(join(rw, 'out.txt'), 'utf8')).to.equal('written');
  });

  it('binds single files: a job module in /tmp, a package.json above the job, a file in readOnlyPaths', async function () {
    const loose = await spawner.run(looseJob, lone);
    expect(loose.value).to.deep.equal({ answer: 42, file: 'only me' });
    // package.json says "type": "module": the .js module is linked as ESM
    const packaged = await spawner.run(join(pkg, 'src', 'job.js'), null);
    expect(packaged.value).to.deep.equal({ answer: 42, file: null });
    const r = await spawner.run(fixture('paths.mjs'), { read: [join(dirname(lone), 'other.txt')], list: [dirname(lone)] });
    const v = r.value as { read: Record<string, string>; list: Record<string, string[] | string> };
    expect(v.read[join(dirname(lone), 'other.txt')]).to.match(/^ERR /);
    expect(v.list[dirname(lone)]).to.deep.equal(['lone.txt']);
  });

  it('rejects sandbox paths that are relative or missing when the spawner starts', async function () {
    for (const bad of ['relative/path', '/no/such/nodespawner/path']) {
      let err: unknown;
      try {
        await Spawner.start({ sandbox: { readOnlyPaths: [bad] } });
      } catch (e) {
        err = e;
      }
      expect(err).to.be.instanceOf(TypeError);
      expect((err as Error).message).to.include('sandbox.readOnlyPaths');
    }
  });

  it('rejects a run whose setup fails with the step, syscall and errno, and keeps serving', async function () {
    fs.rmSync(doomed, { recursive: true, force: true });
    const e = await expectCode(spawner.run(fixture('echo.mjs'), 1), 'ERR_SANDBOX_SETUP');
    expect(e).to.be.instanceOf(SandboxSetupError);
    expect(e.step).to.equal('bind');
    expect(e.syscall).to.equal('stat');
    expect(e.errnoName).to.equal('ENOENT');
    expect(e.message).to.equal(`sandbox setup failed at bind: stat: ENOENT (${doomed})`);
    fs.mkdirSync(doomed);
    fs.chmodSync(doomed, 0o755);
    const r = await spawner.run(fixture('echo.mjs'), 2);
    expect((r.value as { echo: unknown }).echo).to.equal(2);
  });
});

describe('unsearchableDir (the hint when the self-test cannot reach the package)', function () {
  it('lays out the plan so that no Landlock rule with write rights lies above a read-only one, binds under /tmp included', function () {
    const [ro, rw, jobDir] = ['ro', 'rw', 'job'].map((p) => fs.mkdtempSync(join('/tmp', `nodespawner-plan-${p}-`)));
    const policy = { filesystem: true, tmpSize: 1, readOnlyPaths: [ro], writablePaths: [rw], network: 'none' } as unknown as SandboxPolicy;
    const plan = mountPlan(policy, join(jobDir, 'job.mjs'), []);
    for (const d of [ro, rw, jobDir]) fs.rmSync(d, { recursive: true });
    const { rules } = landlockRules(plan, 6);
    const write = 1 << 1;
    const inside = (p: string, d: string) => d === '/' || p === d || p.startsWith(`${d}/`);
    for (const r of rules.filter((x) => (x.access & write) === 0 && x.path !== '/')) {
      const above = rules.filter((w) => (w.access & write) !== 0 && w.path !== r.path && inside(r.path, w.path));
      expect(
        above.map((w) => w.path),
        `write rules above the read-only ${r.path}`,
      ).to.deep.equal([]);
    }
    // The binds under /tmp (ro, rw and the job's directory here) are reached through symlinks.
    for (const host of [ro, rw, jobDir]) {
      expect(plan).to.deep.include({ kind: MountKind.Symlink, source: relocatedBinds + host, target: host, writable: false, sizeBytes: 0 });
    }
  });

  it('names the first directory the job user cannot search, by its mode bits', function () {
    const top = fs.mkdtempSync(join(tmpdir(), 'nodespawner-search-'));
    try {
      const inner = join(top, 'a', 'b');
      fs.mkdirSync(inner, { recursive: true });
      const owner = fs.statSync(top);
      const stranger = owner.uid + 12345;
      fs.chmodSync(top, 0o700);
      expect(unsearchableDir(inner, stranger, owner.gid + 12345)).to.deep.equal({ dir: top, mode: 0o700, uid: owner.uid, gid: owner.gid });
      expect(unsearchableDir(inner, owner.uid, owner.gid)).to.equal(null); // the owner may
      fs.chmodSync(top, 0o710);
      expect(unsearchableDir(inner, stranger, owner.gid)).to.equal(null); // the group may
      fs.chmodSync(top, 0o701);
      expect(unsearchableDir(inner, stranger, owner.gid + 12345)).to.equal(null); // others may
    } finally {
      fs.rmSync(top, { recursive: true, force: true });
    }
  });
});
