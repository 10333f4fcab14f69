// The package as users get it: `npm pack`, then `npm install <tarball>` into a fresh project
// (which builds the addon from source with node-gyp), then a script there imports 'nodespawner',
// runs a job, and `nodespawner doctor` runs from the installed bin.
import fs from 'node:fs';
import { spawn, spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { detectCgroups } from '../lib/cgroups.js';
import { packageRoot, skipBecause } from './helpers.js';

/** The environment for npm and the consumer: without the variables of an npm script that runs us. */
function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/^npm_(package|lifecycle)_/.test(k) || k === 'npm_command' || k === 'INIT_CWD') continue;
    env[k] = v;
  }
  return { ...env, npm_config_update_notifier: 'false', npm_config_fund: 'false', npm_config_audit: 'false', ...extra };
}

function run(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv, timeout: number): Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeout);
    child.on('error', (e) => {
      stderr += String(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

const consumerScript = `import { Spawner } from 'nodespawner';

const spawner = await Spawner.start();
try {
  const r = await spawner.run(new URL('./job.mjs', import.meta.url), { n: 5 }, { timeout: 10_000 });
  console.log(JSON.stringify({ value: r.value, preloaded: spawner.info.preloaded }));
} finally {
  await spawner.close();
}
`;

// The project does not depend on apache-arrow itself: the job gets the zygote's preloaded instance.
const consumerJob = `import { tableFromArrays } from 'apache-arrow';

export default function job({ n }) {
  const t = tableFromArrays({ x: Int32Array.from({ length: n }, (_, i) => i + 1) });
  let sum = 0;
  for (const v of t.getChild('x')) sum += v;
  return { rows: t.numRows, sum, pid: process.pid };
}
`;

describe('the npm package', function () {
  let work: string | null = null;

  after(function () {
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  it('installs from its tarball in a fresh project, builds its addon, and runs a job there', async function () {
    this.timeout(600_000);
    if (process.env.NODESPAWNER_TEST_NESTED) skipBecause(this, 'the unprivileged re-run does not build and install the package a second time: the privileged run did');
    const npmVersion = spawnSync('npm', ['--version'], { encoding: 'utf8', timeout: 30_000 });
    if (npmVersion.error || npmVersion.status !== 0) skipBecause(this, `npm is not available: ${npmVersion.error?.message ?? npmVersion.stderr}`);
    const ping = spawnSync('npm', ['ping', '--fetch-retries=0', '--fetch-timeout=15000'], { encoding: 'utf8', timeout: 30_000 });
    if (ping.error || ping.status !== 0) skipBecause(this, `the npm registry is not reachable (npm ping: ${ping.error?.message ?? ping.stderr.split('\n').find((l) => /E[A-Z]{4,}|request to|fetch/.test(l)) ?? ping.stderr.trim().split('\n')[0]}): installing needs it`);
    for (const f of ['dist/lib/index.js', 'dist/zygote/main.js', 'dist/cli/main.js']) {
      if (!fs.existsSync(join(packageRoot, f))) throw new Error(`${f} is missing: build with \`npx tsc -p .\` first`);
    }
    const limits = process.env.NODESPAWNER_LIMITS ?? (detectCgroups(`nodespawner-probe-${process.pid}`, null).version === 0 ? 'rlimit' : 'cgroup');

    work = fs.mkdtempSync(join(tmpdir(), 'nodespawner-package-'));
    // The consumer's jobs run as uid 65534 when we are root: everything on their path must be readable by it.
    fs.chmodSync(work, 0o755);
    const env = cleanEnv({ NODESPAWNER_LIMITS: limits });

    // Pack what is built (`prepare` would recompile the working tree under our feet).
    const pack = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', work], packageRoot, env, 120_000);
    expect(pack.code, `npm pack failed: ${pack.stderr}`).to.equal(0);
    const [packed] = JSON.parse(pack.stdout.slice(pack.stdout.indexOf('['))) as Array<{ filename: string; files: Array<{ path: string }> }>;
    const files = packed.files.map((f) => f.path);
    for (const needed of ['package.json', 'README.md', 'binding.gyp', 'native/addon.cc', 'native/child.cc', 'dist/lib/index.js', 'dist/lib/index.d.ts', 'dist/zygote/main.js', 'dist/zygote/selftest-job.js', 'dist/cli/main.js', 'dist/cli/doctor.js', 'thrift/gen-js/nodespawner_types.cjs', 'docs/api.md', 'docs/troubleshooting.md', 'docs/deploy.md']) {
      expect(files, `the tarball lacks ${needed}`).to.include(needed);
    }
    expect(files.filter((f) => f.startsWith('dist/test/') || f.startsWith('build/') || f.startsWith('node_modules/') || f.startsWith('test/')), 'test files or build output in the tarball').to.deep.equal([]);
    const tarball = join(work, packed.filename);

    const project = join(work, 'consumer');
    fs.mkdirSync(project, { mode: 0o755 });
    fs.writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'nodespawner-consumer', version: '1.0.0', private: true, type: 'module' }, null, 2));
    const install = await run('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error', tarball], project, env, 540_000);
    expect(install.signal, 'npm install took too long').to.equal(null);
    expect(install.code, `npm install failed:\n${install.stdout}\n${install.stderr}`).to.equal(0);
    const installed = join(project, 'node_modules', 'nodespawner');
    expect(fs.existsSync(join(installed, 'build', 'Release', 'nodespawner.node')), 'the addon was built at install').to.equal(true);

    fs.writeFileSync(join(project, 'main.mjs'), consumerScript, { mode: 0o644 });
    fs.writeFileSync(join(project, 'job.mjs'), consumerJob, { mode: 0o644 });
    const main = await run(process.execPath, ['main.mjs'], project, env, 60_000);
    expect(main.code, `the consumer script failed:\n${main.stdout}\n${main.stderr}`).to.equal(0);
    const out = JSON.parse(main.stdout.trim().split('\n').pop()!);
    expect(out.value).to.deep.equal({ rows: 5, sum: 15, pid: 1 });
    expect(out.preloaded).to.include('apache-arrow');

    // The bin works from the installed package, and finds this host fit (the job above just ran).
    const doctor = await run(join(project, 'node_modules', '.bin', 'nodespawner'), ['doctor', '--json'], project, env, 120_000);
    const report = JSON.parse(doctor.stdout) as { ok: boolean; checks: Array<{ name: string; status: string; detail: string }> };
    expect(report.checks.filter((c) => c.status === 'missing'), `doctor found something missing:\n${doctor.stdout}\n${doctor.stderr}`).to.deep.equal([]);
    expect(doctor.code).to.equal(0);
    expect(report.ok).to.equal(true);
    expect(report.checks.find((c) => c.name === 'sandbox')?.status).to.equal('works');
  });
});
