// The examples in examples/ run as documented: each entry is started as its own process (it
// imports 'nodespawner' through the package's self-reference), and the HTTP server is driven with
// real requests, hostile ones included.
import fs from 'node:fs';
import { execFile } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { expect } from 'chai';
import { detectCgroups } from '../lib/cgroups.js';
import { stripsTypes } from '../lib/runtime.js';
import { packageRoot, skipBecause } from './helpers.js';

/**
 * The limits mode the examples run with: NODESPAWNER_LIMITS when set (the unprivileged re-run sets
 * 'rlimit'), else 'cgroup' where this user can create cgroups, else the rlimit fallback (and the
 * tests that need cgroups skip, saying so).
 */
function limitsMode(): 'cgroup' | 'rlimit' | 'none' {
  const env = process.env.NODESPAWNER_LIMITS;
  if (env === 'cgroup' || env === 'rlimit' || env === 'none') return env;
  return detectCgroups(`nodespawner-probe-${process.pid}`, null).version === 0 ? 'rlimit' : 'cgroup';
}

const limits = limitsMode();
if (limits !== 'cgroup' && !process.env.NODESPAWNER_LIMITS)
  console.log(`      (examples run with NODESPAWNER_LIMITS=${limits}: this user cannot create cgroups)`);

function example(...parts: string[]): string {
  return join(packageRoot, 'examples', ...parts);
}

/** Runs an example's entry as `node <file>` and resolves with its exit code and output. */
function runExample(file: string, timeout = 60_000): Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [file],
      { cwd: packageRoot, env: { ...process.env, NODESPAWNER_LIMITS: limits }, timeout, encoding: 'utf8' },
      (err, stdout, stderr) => {
        const e = err as (Error & { code?: number | string; signal?: string }) | null;
        resolve({ code: e ? (typeof e.code === 'number' ? e.code : null) : 0, signal: e?.signal ?? null, stdout, stderr });
      },
    );
  });
}

function expectSuccess(r: { code: number | null; signal: string | null; stdout: string; stderr: string }): void {
  expect(r.signal, `killed by ${r.signal}; stderr: ${r.stderr}`).to.equal(null);
  expect(r.code, `exit code ${r.code}; stdout: ${r.stdout}\nstderr: ${r.stderr}`).to.equal(0);
}

describe('examples', function () {
  it('hello: runs a job and prints its greeting and what the sandbox looks like', async function () {
    const r = await runExample(example('hello', 'index.mjs'));
    expectSuccess(r);
    const lines = r.stdout.split('\n');
    expect(lines[0]).to.equal('Hello, world!');
    expect(r.stdout).to.include('the job ran as pid 1, uid 1000, on host nodespawner');
    expect(r.stdout).to.include('its stdout: hello from inside the sandbox, world');
    expect(r.stdout).to.match(/round trip: \d+(\.\d+)? ms/);
  });

  it("typescript: the app and its job type-check together (defineJob carries the job's types)", async function () {
    const tsc = join(packageRoot, 'node_modules', 'typescript', 'bin', 'tsc');
    if (!fs.existsSync(tsc)) skipBecause(this, 'typescript (a devDependency) is not installed');
    const r = await new Promise<{ code: number; out: string }>((resolve) => {
      execFile(process.execPath, [tsc, '-p', example('typescript', 'tsconfig.json')], { cwd: packageRoot, encoding: 'utf8' }, (err, stdout, stderr) => {
        resolve({ code: err ? 1 : 0, out: stdout + stderr });
      });
    });
    expect(r.code, r.out).to.equal(0);
  });

  it('typescript: a TypeScript app runs a TypeScript job', async function () {
    if (!stripsTypes) skipBecause(this, `Node ${process.version} does not run TypeScript; test/20.run checks that such a job is refused`);
    const r = await runExample(example('typescript', 'index.mts'));
    expectSuccess(r);
    expect(r.stdout.trim()).to.equal('3 sales, total 90');
  });

  it('arrow-aggregate: an Arrow table in, an aggregated Arrow table out', async function () {
    const r = await runExample(example('arrow-aggregate', 'index.mjs'));
    expectSuccess(r);
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).to.equal('8 sales in, 3 regions out (columns: region, count, total, mean)');
    const rows = lines.slice(1).map((l) => l.split('\t'));
    expect(rows.map((row) => [row[0], Number(row[1]), Number(row[2])])).to.deep.equal([
      ['east', 2, 300],
      ['north', 3, 220],
      ['south', 2, 100],
    ]);
    expect(Number(rows[1][3])).to.be.closeTo(220 / 3, 1e-9);
  });

  it('abort-and-timeouts: timeouts, aborts of running and queued jobs, and a deadline', async function () {
    const r = await runExample(example('abort-and-timeouts', 'index.mjs'));
    expectSuccess(r);
    const out = r.stdout;
    expect(out).to.match(/^quick job: ok \{"tookMs":\d+\}$/m);
    expect(out).to.match(/^busy job over its timeout: ERR_TIMEOUT \(job timed out after 300 ms and was killed\)$/m);
    expect(out).to.match(/^running job aborted: ERR_ABORTED \(job was aborted; cause: Error: the user clicked cancel\)$/m);
    expect(out).to.match(/^queued job aborted: ERR_ABORTED \(job was aborted; cause: AbortError: /m);
    expect(out).to.match(/^the job ahead of it: ok \{"tookMs":\d+\}$/m);
    expect(out).to.match(/^deadline with AbortSignal\.timeout: ERR_ABORTED \(job was aborted; cause: TimeoutError: /m);
  });

  describe('http-server', function () {
    let service: { url: string; close(): Promise<void> };
    const leftovers = () => new Set(fs.readdirSync(tmpdir()).filter((n) => n.startsWith('nodespawner-http-')));
    let existing = new Set<string>();

    before(async function () {
      existing = leftovers();
      const { start } = (await import(pathToFileURL(example('http-server', 'index.mjs')).href)) as {
        start(o: object): Promise<{ url: string; close(): Promise<void> }>;
      };
      service = await start({ port: 0, timeout: 2_000, memoryLimit: 128 * 2 ** 20, concurrency: 4, spawner: { sandbox: { limits } } });
    });

    after(async function () {
      await service?.close();
    });

    async function post(source: string): Promise<{ status: number; body: any }> {
      const res = await fetch(`${service.url}/run`, { method: 'POST', body: source });
      return { status: res.status, body: await res.json() };
    }

    it('listens on 127.0.0.1 with an OS-chosen port', function () {
      expect(service.url).to.match(/^http:\/\/127\.0\.0\.1:\d+$/);
      expect(service.url).to.not.match(/:0$/);
    });

    it('runs a submitted job and answers with its value and stdout', async function () {
      const r = await post("console.log('computing'); export default () => ({ answer: 6 * 7, big: 2n ** 70n });");
      expect(r.status, JSON.stringify(r.body)).to.equal(200);
      expect(r.body.value).to.deep.equal({ answer: 42, big: '1180591620717411303424' });
      expect(r.body.stdout).to.equal('computing\n');
    });

    it('answers an Arrow table as rows, the job importing the warm apache-arrow', async function () {
      const r = await post("import { tableFromArrays } from 'apache-arrow'; export default () => tableFromArrays({ n: Int32Array.of(1, 2) });");
      expect(r.status, JSON.stringify(r.body)).to.equal(200);
      expect(r.body.value).to.deep.equal([{ n: 1 }, { n: 2 }]);
    });

    it('hostile code cannot read /etc/shadow', async function () {
      const r = await post("import fs from 'node:fs'; export default () => fs.readFileSync('/etc/shadow', 'utf8');");
      expect(r.status).to.equal(422);
      expect(r.body.error.code).to.equal('ERR_JOB_FAILED');
      expect(r.body.error.remoteCode).to.be.oneOf(['ENOENT', 'EACCES']);
      expect(JSON.stringify(r.body)).to.not.match(/root:[^:]*:\d+:/);
    });

    it('an infinite loop ends with ERR_TIMEOUT', async function () {
      const r = await post('export default () => { for (;;) {} };');
      expect(r.status).to.equal(422);
      expect(r.body.error.code).to.equal('ERR_TIMEOUT');
    });

    it('a memory hog ends with ERR_OUT_OF_MEMORY', async function () {
      if (limits !== 'cgroup') skipBecause(this, `the out-of-memory report needs cgroups, and the examples run with sandbox.limits '${limits}'`);
      const r = await post('export default () => { const keep = []; for (;;) keep.push(Buffer.alloc(16 * 2 ** 20, 1)); };');
      expect(r.status).to.equal(422);
      expect(r.body.error.code).to.equal('ERR_OUT_OF_MEMORY');
    });

    it('process.exit() ends the job without a result', async function () {
      const clean = await post('export default () => process.exit(0);');
      expect(clean.body.error.code).to.equal('ERR_INVALID_OUTPUT');
      const failing = await post('export default () => process.exit(3);');
      expect(failing.body.error.code).to.equal('ERR_JOB_CRASHED');
      expect(failing.body.error.message).to.include('code 3');
    });

    it('a job that throws, or does not parse, is ERR_JOB_FAILED with its message', async function () {
      const thrown = await post("export default () => { throw new TypeError('not today'); };");
      expect(thrown.status).to.equal(422);
      expect(thrown.body.error.code).to.equal('ERR_JOB_FAILED');
      expect(thrown.body.error.message).to.include('TypeError: not today');
      const broken = await post('export default ) =>');
      expect(broken.body.error.code).to.equal('ERR_JOB_FAILED');
      expect(broken.body.error.message).to.include('SyntaxError');
    });

    it('refuses other methods and paths', async function () {
      expect((await fetch(`${service.url}/run`)).status).to.equal(405);
      expect((await fetch(`${service.url}/elsewhere`, { method: 'POST', body: 'x' })).status).to.equal(404);
    });

    it('answers 8 concurrent clients, each with its own result', async function () {
      const answers = await Promise.all(
        Array.from({ length: 8 }, (_, i) =>
          post(`export default async () => { await new Promise((r) => setTimeout(r, 50)); return { client: ${i}, square: ${i} * ${i}, pid: process.pid }; };`),
        ),
      );
      answers.forEach((r, i) => {
        expect(r.status, JSON.stringify(r.body)).to.equal(200);
        expect(r.body.value).to.deep.equal({ client: i, square: i * i, pid: 1 });
      });
    });

    it('still serves after all that, and leaves no temp directory behind', async function () {
      const r = await post('export default () => "still here";');
      expect(r.body.value).to.equal('still here');
      const left = [...leftovers()].filter((n) => !existing.has(n));
      expect(left, 'temp directories left by the server').to.deep.equal([]);
    });
  });
});
