// The package as users get it: prebuilt binaries for linux-x64 (`npm run prebuilds`), `npm pack`,
// then `npm install <tarball>` into a fresh project on a PATH without python, make or a compiler
// (the prebuilt addon and heap arena are used), then a script there imports 'nodespawner', runs a
// job, and `nodespawner doctor` runs from the installed bin. A second project installs the same
// tarball with --build-from-source: the fallback where no prebuilt binary fits.
import fs from 'node:fs';
import { spawn, spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { expect } from 'chai';
import { detectCgroups } from '../lib/cgroups.js';
import { packageRoot, skipBecause } from './helpers.js';
import { addonPath } from '../lib/native.js';
import { stripsTypes } from '../lib/runtime.js';

/** The environment for npm and the consumer: without the variables of an npm script that runs us. */
function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/^npm_(package|lifecycle)_/.test(k) || k === 'npm_command' || k === 'INIT_CWD') continue;
    env[k] = v;
  }
  return { ...env, npm_config_update_notifier: 'false', npm_config_fund: 'false', npm_config_audit: 'false', ...extra };
}

function run(
  cmd: string,
  args: string[],
  cwd: string,
  env: NodeJS.ProcessEnv,
  timeout: number,
): Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }> {
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
import { tableFromArrays } from 'apache-arrow';

const spawner = await Spawner.start();
try {
  const r = await spawner.run(new URL('./job.mjs', import.meta.url), { n: 5 }, { timeout: 10_000 });
  // An Arrow table in, from the app's apache-arrow (the package's peer: one copy), a table out.
  const sales = tableFromArrays({ amount: Float64Array.of(1.5, 2.5, 4) });
  const t = await spawner.run(new URL('./table-job.mjs', import.meta.url), { rate: 2 }, { inputs: { sales } });
  // A TypeScript job, where this Node strips types.
  const ts = process.features.typescript ? (await spawner.run(new URL('./typed-job.ts', import.meta.url), { values: [1, 2, 3] })).value : 'no type stripping';
  console.log(JSON.stringify({ value: r.value, table: [...t.table.getChild('scaled')], ts, preloaded: spawner.info.preloaded }));
} finally {
  await spawner.close();
}
`;

const consumerTableJob = `import { tableFromArrays } from 'apache-arrow';

export default function scale({ rate }, ctx) {
  return tableFromArrays({ scaled: Float64Array.from(ctx.inputs.sales.getChild('amount'), (a) => a * rate) });
}
`;

const consumerTypedJob = `import type { JobContext } from 'nodespawner';

export default function sum(args: { values: number[] }, ctx: JobContext): { sum: number; inputs: number } {
  return { sum: args.values.reduce((a: number, b: number) => a + b, 0), inputs: Object.keys(ctx.inputs).length };
}
`;

/** Writes the consumer's app and jobs into `dir`. */
function writeConsumer(dir: string): void {
  fs.writeFileSync(join(dir, 'main.mjs'), consumerScript, { mode: 0o644 });
  fs.writeFileSync(join(dir, 'job.mjs'), consumerJob, { mode: 0o644 });
  fs.writeFileSync(join(dir, 'table-job.mjs'), consumerTableJob, { mode: 0o644 });
  fs.writeFileSync(join(dir, 'typed-job.ts'), consumerTypedJob, { mode: 0o644 });
}

/** What the consumer must print: the TypeScript job's result where this Node strips types. */
const consumerExpected = (value: unknown) => ({ value, table: [3, 5, 8], ts: stripsTypes ? { sum: 6, inputs: 0 } : 'no type stripping' });

// The job gets the zygote's preloaded instance of apache-arrow (the package's peer dependency).
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

  it('runs `npx nodespawner doctor` inside a checkout without building the addon again', async function () {
    this.timeout(120_000);
    if (process.env.NODESPAWNER_TEST_NESTED) skipBecause(this, 'the unprivileged re-run does not run npx: the privileged run did');
    const cache = fs.mkdtempSync(join(tmpdir(), 'nodespawner-npx-cache-'));
    try {
      const addon = fs.statSync(addonPath);
      // npx installs the checkout itself (a link) into a cache of its own, running its install scripts.
      const r = await run(
        'npx',
        ['--yes', 'nodespawner', 'doctor', '--help'],
        packageRoot,
        cleanEnv({ npm_config_cache: cache, npm_config_loglevel: 'silly' }),
        100_000,
      );
      expect(r.code, `npx failed:\n${r.stdout}\n${r.stderr}`).to.equal(0);
      expect(r.stdout + r.stderr).to.include('Usage: nodespawner doctor');
      const scripts = (r.stdout + r.stderr).split('\n').filter((l) => /info run nodespawner@/.test(l));
      expect(scripts.join('\n'), 'npx ran no install script (is the log level silly?)').to.match(/ install /);
      expect(scripts.join('\n')).to.not.match(/node-gyp rebuild/);
      const after = fs.statSync(addonPath);
      expect([after.ino, after.mtimeMs], 'the addon was built again').to.deep.equal([addon.ino, addon.mtimeMs]);
    } finally {
      fs.rmSync(cache, { recursive: true, force: true });
    }
  });

  after(function () {
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  it(
    'installs from its tarball in a fresh project without a compiler (prebuilt ' + 'binaries) and runs a job there, and builds from source where asked',
    async function () {
      this.timeout(600_000);
      if (process.env.NODESPAWNER_TEST_NESTED)
        skipBecause(this, 'the unprivileged re-run does not build and install the package a second time: the privileged run did');
      const npmVersion = spawnSync('npm', ['--version'], { encoding: 'utf8', timeout: 30_000 });
      if (npmVersion.error || npmVersion.status !== 0) skipBecause(this, `npm is not available: ${npmVersion.error?.message ?? npmVersion.stderr}`);
      const ping = spawnSync('npm', ['ping', '--fetch-retries=0', '--fetch-timeout=15000'], { encoding: 'utf8', timeout: 30_000 });
      if (ping.error || ping.status !== 0)
        skipBecause(
          this,
          `the npm registry is not reachable (npm ping: ` +
            `${ping.error?.message ?? ping.stderr.split('\n').find((l) => /E[A-Z]{4,}|request ` + `to|fetch/.test(l)) ?? ping.stderr.trim().split('\n')[0]}): installing needs it`,
        );
      for (const f of ['dist/lib/index.js', 'dist/zygote/main.js', 'dist/cli/main.js']) {
        if (!fs.existsSync(join(packageRoot, f))) throw new Error(`${f} is missing: build with \`npx tsc -p .\` first`);
      }
      const limits = process.env.NODESPAWNER_LIMITS ?? (detectCgroups(`nodespawner-probe-${process.pid}`, null).version === 0 ? 'rlimit' : 'cgroup');

      work = fs.mkdtempSync(join(tmpdir(), 'nodespawner-package-'));
      // The consumer's jobs run as uid 65534 when we are root: everything on their path must be readable by it.
      fs.chmodSync(work, 0o755);
      const env = cleanEnv({ NODESPAWNER_LIMITS: limits });

      // The release step: the addon (Node-API, one binary for every Node version) and the heap arena, prebuilt.
      const prebuilt = join(packageRoot, 'prebuilds', 'linux-x64');
      if (!fs.existsSync(join(prebuilt, 'nodespawner.node')) || !fs.existsSync(join(prebuilt, 'nodespawner_arena.so'))) {
        const pb = await run('npm', ['run', 'prebuilds'], packageRoot, env, 300_000);
        expect(pb.code, `npm run prebuilds failed:\n${pb.stdout}\n${pb.stderr}`).to.equal(0);
      }

      // Pack what is built (`prepare` would recompile the working tree under our feet).
      const pack = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', work], packageRoot, env, 120_000);
      expect(pack.code, `npm pack failed: ${pack.stderr}`).to.equal(0);
      const [packed] = JSON.parse(pack.stdout.slice(pack.stdout.indexOf('['))) as Array<{ filename: string; files: Array<{ path: string }> }>;
      const files = packed.files.map((f) => f.path);
      for (const needed of [
        'package.json',
        'README.md',
        'LICENSE',
        'CHANGELOG.md',
        'binding.gyp',
        'native/addon.cc',
        'native/child.cc',
        'native/arena.c',
        'prebuilds/linux-x64/nodespawner.node',
        'prebuilds/linux-x64/nodespawner_arena.so',
        'dist/lib/index.js',
        'dist/lib/index.d.ts',
        'dist/zygote/main.js',
        'dist/zygote/selftest-job.js',
        'dist/cli/main.js',
        'dist/cli/doctor.js',
        'thrift/gen-js/nodespawner_types.cjs',
        'docs/api.md',
        'docs/troubleshooting.md',
        'docs/deploy.md',
      ]) {
        expect(files, `the tarball lacks ${needed}`).to.include(needed);
      }
      const unwanted = files.filter(
        (f) => /^(dist\/test|dist\/bench|bench|test|build|node_modules|scripts)\//.test(f) || f === 'native/probe.cc' || f.endsWith('.tsbuildinfo'),
      );
      expect(unwanted, 'tests, the benchmark, the probe addon or build output in the tarball').to.deep.equal([]);
      const tarball = join(work, packed.filename);

      // No compiler on the PATH: only node and sh (npm's own scripts find node-gyp, which then lacks python and make).
      const npmCli = fs.realpathSync(spawnSync('sh', ['-c', 'command -v npm'], { encoding: 'utf8' }).stdout.trim());
      const bare = join(work, 'bin');
      fs.mkdirSync(bare);
      fs.symlinkSync(process.execPath, join(bare, 'node'));
      fs.symlinkSync('/bin/sh', join(bare, 'sh'));
      const project = join(work, 'consumer');
      fs.mkdirSync(project, { mode: 0o755 });
      fs.writeFileSync(
        join(project, 'package.json'),
        JSON.stringify({ name: 'nodespawner-consumer', version: '1.0.0', private: true, type: 'module' }, null, 2),
      );
      const install = await run(
        process.execPath,
        [npmCli, 'install', '--no-audit', '--no-fund', '--loglevel=error', tarball],
        project,
        { ...env, PATH: bare },
        540_000,
      );
      expect(install.signal, 'npm install took too long').to.equal(null);
      expect(install.code, `npm install without a compiler failed:\n${install.stdout}\n${install.stderr}`).to.equal(0);
      const installed = join(project, 'node_modules', 'nodespawner');
      expect(fs.existsSync(join(installed, 'build')), 'something was compiled at install').to.equal(false);
      expect(fs.existsSync(join(project, 'node_modules', 'apache-arrow')), 'apache-arrow, the peer dependency, installed beside it').to.equal(true);
      expect(fs.existsSync(join(installed, 'node_modules', 'apache-arrow')), 'a second apache-arrow inside nodespawner').to.equal(false);
      expect(dirname(installed)).to.equal(join(project, 'node_modules'));

      writeConsumer(project);
      const main = await run(process.execPath, ['main.mjs'], project, env, 60_000);
      expect(main.code, `the consumer script failed:\n${main.stdout}\n${main.stderr}`).to.equal(0);
      const out = JSON.parse(main.stdout.trim().split('\n').pop()!);
      expect(out).to.deep.include(consumerExpected({ rows: 5, sum: 15, pid: 1 }));
      expect(out.preloaded).to.include('apache-arrow');

      // The bin works from the installed package, and finds this host fit (the job above just ran).
      const doctor = await run(join(project, 'node_modules', '.bin', 'nodespawner'), ['doctor', '--json'], project, env, 120_000);
      const report = JSON.parse(doctor.stdout) as { ok: boolean; checks: Array<{ name: string; status: string; detail: string }> };
      expect(
        report.checks.filter((c) => c.status === 'missing'),
        `doctor found something missing:\n${doctor.stdout}\n${doctor.stderr}`,
      ).to.deep.equal([]);
      expect(doctor.code).to.equal(0);
      expect(report.ok).to.equal(true);
      expect(report.checks.find((c) => c.name === 'sandbox')?.status).to.equal('works');
      expect(report.checks.find((c) => c.name === 'native addon')?.detail).to.include(join('prebuilds', 'linux-x64', 'nodespawner.node'));

      // The fallback: built from source by node-gyp, as where no prebuilt binary fits.
      const fromSource = join(work, 'from-source');
      fs.mkdirSync(fromSource, { mode: 0o755 });
      fs.writeFileSync(
        join(fromSource, 'package.json'),
        JSON.stringify({ name: 'nodespawner-consumer-2', version: '1.0.0', private: true, type: 'module' }, null, 2),
      );
      const built = await run(
        'npm',
        ['install', '--no-audit', '--no-fund', '--loglevel=error', tarball],
        fromSource,
        { ...env, npm_config_build_from_source: 'true' },
        540_000,
      );
      expect(built.code, `npm install --build-from-source failed:\n${built.stdout}\n${built.stderr}`).to.equal(0);
      const builtDir = join(fromSource, 'node_modules', 'nodespawner', 'build', 'Release');
      expect(
        fs
          .readdirSync(builtDir)
          .filter((f) => /\.(node|so)$/.test(f))
          .sort(),
      ).to.deep.equal(['nodespawner.node', 'nodespawner_arena.so']);
      writeConsumer(fromSource);
      const second = await run(process.execPath, ['main.mjs'], fromSource, env, 60_000);
      expect(second.code, `the consumer script failed:\n${second.stdout}\n${second.stderr}`).to.equal(0);
      expect(JSON.parse(second.stdout.trim().split('\n').pop()!)).to.deep.include(consumerExpected({ rows: 5, sum: 15, pid: 1 }));
    },
  );
});
