// nodespawner/bullmq against a real Redis (a redis-server of our own on a unix socket, persistence
// off): worker processes (test/fixtures/bullmq/worker.mjs) and this process as the producer. The
// tests wait for events (a worker's log line, a run settling), never for a length of time.
import fs from 'node:fs';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { expect } from 'chai';
import { Redis } from 'ioredis';
import { Queue } from 'bullmq';
import { tableFromArrays } from 'apache-arrow';
import type { Table } from 'apache-arrow';
import * as core from '../lib/index.js';
import * as remoteApi from '../lib/bullmq/index.js';
import { FileResultStore, RemoteSpawner } from '../lib/bullmq/index.js';
import { findRedisServer, startRedisServer } from '../bench/redis-server.js';
import type { RedisServer } from '../bench/redis-server.js';
import { expectCode, fixture, packageRoot, rejection, runProgram, skipBecause, tempDir, troubleshootingAnchors, waitFor } from './helpers.js';

interface WorkerEvent {
  event: string;
  id?: string;
  name?: string;
  attemptsMade?: number;
  error?: string;
}

/** A worker process and the events it printed. */
class WorkerProcess {
  readonly events: WorkerEvent[] = [];
  readonly child: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: string | null }>;
  stderr = '';

  constructor(
    readonly name: string,
    config: object,
  ) {
    this.child = spawn(process.execPath, [fixture('bullmq/worker.mjs'), JSON.stringify({ ...config, name })], {
      cwd: packageRoot,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let partial = '';
    this.child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      const lines = (partial + d).split('\n');
      partial = lines.pop()!;
      for (const line of lines) this.events.push(JSON.parse(line) as WorkerEvent);
    });
    this.child.stderr!.setEncoding('utf8').on('data', (d: string) => (this.stderr += d));
    this.exited = new Promise((resolve) => this.child.once('exit', (code, signal) => resolve({ code, signal })));
  }

  has(event: string, name?: string): WorkerEvent[] {
    return this.events.filter((e) => e.event === event && (name === undefined || e.name === name));
  }

  async ready(): Promise<void> {
    await Promise.race([
      waitFor(`${this.name} ready`, () => this.has('ready').length > 0, 60_000),
      this.exited.then((e) => Promise.reject(new Error(`${this.name} exited (${e.signal ?? e.code}): ${this.stderr}`))),
    ]);
  }
}

/** The producer's store, counting what goes in and comes out. */
class CountingStore extends FileResultStore {
  puts = 0;
  gets = 0;
  override async put(bytes: Uint8Array, ttlMs: number): Promise<string> {
    this.puts++;
    return super.put(bytes, ttlMs);
  }
  override async get(key: string): Promise<Uint8Array | null> {
    this.gets++;
    return super.get(key);
  }
}

/** Waits until an async `check` holds (polling, bounded by `ms` only to fail rather than hang). */
async function until(what: string, check: () => Promise<boolean>, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what} after ${ms} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('nodespawner/bullmq', function () {
  this.timeout(120_000);
  const queue = 'jobs';
  let redis: RedisServer | null = null;
  let admin: Redis;
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let gateDir: string;
  let storeDir: string;
  let workers: WorkerProcess[] = [];
  let remote: RemoteSpawner;
  let bull: Queue;
  let gates = 0;
  let store: CountingStore;

  const startWorker = async (name: string) => {
    const w = new WorkerProcess(name, { socket: redis!.socket, queue, gateDir, storeDir });
    workers.push(w);
    await w.ready();
    return w;
  };
  /** A gate job's file: the job waits until it exists. */
  const gate = () => join(gateDir, `gate-${++gates}`);
  const open = (file: string) => fs.writeFileSync(file, '');
  /** Keys of nodespawner/bullmq (requests, reply lists) in Redis. */
  const ourKeys = () => admin.keys(`bull:*:nodespawner:*`);
  const storeFiles = () => fs.readdirSync(storeDir);

  before(async function () {
    const found = findRedisServer();
    if ('missing' in found) {
      if (process.env.CI === 'true') throw new Error(`these tests need redis-server, and CI=true: ${found.missing}`);
      skipBecause(this, found.missing);
    }
    redis = await startRedisServer(found.path);
    admin = new Redis({ path: redis.socket });
    dir = await tempDir();
    gateDir = join(dir.path, 'gates');
    storeDir = join(dir.path, 'store');
    fs.mkdirSync(gateDir, { mode: 0o755 });
    fs.mkdirSync(storeDir, { mode: 0o700 });
    store = new CountingStore(storeDir);
    await Promise.all([startWorker('worker1'), startWorker('worker2')]);
    remote = new RemoteSpawner({ queue, connection: { path: redis.socket }, results: { store } });
    bull = new Queue(queue, { connection: { path: redis.socket } });
  });

  after(async function () {
    await remote?.close();
    await bull?.close();
    for (const w of workers) w.child.kill('SIGKILL');
    await Promise.all(workers.map((w) => w.exited));
    admin?.disconnect();
    await redis?.stop();
    await dir?.remove();
  });

  it('runs a job on a worker: the same result shape as Spawner.run', async function () {
    const r = await remote.run('sum', { values: [1, 2, 3] });
    expect(r.value).to.deep.equal({ total: 6, big: 2n ** 70n });
    expect(r.stdout).to.equal('sum: 6\n');
    expect(r.stderr).to.equal('');
    expect(r.exitCode).to.equal(0);
    expect(r.table).to.equal(undefined);
    expect(Object.keys(r).sort()).to.deep.equal([
      'cpuMs',
      'durationMs',
      'exitCode',
      'maxRssBytes',
      'peakMemoryBytes',
      'preforked',
      'stderr',
      'stdout',
      'timings',
      'value',
    ]);
    expect(Object.keys(r.timings).sort()).to.deep.equal([
      'cloneMs',
      'forkMs',
      'importMs',
      'jobMs',
      'queueMs',
      'reapMs',
      'requestMs',
      'resultMs',
      'runMs',
      'specializeMs',
      'totalMs',
    ]);
    for (const v of Object.values(r.timings)) expect(v).to.be.a('number').and.to.be.at.least(0);
  });

  it('rejects with the same error classes and codes as Spawner.run', async function () {
    const e = await expectCode(remote.run('fail', { message: 'not today' }), 'ERR_JOB_FAILED');
    expect(e).to.be.instanceOf(core.JobFailedError);
    expect(e.message).to.equal('job failed: RangeError: not today');
    expect(e.remote).to.include({ name: 'RangeError', message: 'not today', code: 'E_FIXTURE' });
    expect(e.stderr).to.include('about to fail');
  });

  it('200 jobs from one producer over two workers: every table right, both workers used', async function () {
    const runs = Array.from({ length: 200 }, (_, seed) => remote.run('rows', { n: 50 + seed, seed }));
    const tables = (await Promise.all(runs)).map((r) => r.table as Table);
    const byWorker = new Map<number, number>();
    tables.forEach((t, seed) => {
      expect(t.numRows).to.equal(50 + seed);
      expect(Array.from(t.getChild('i')!.toArray())).to.deep.equal(Array.from({ length: 50 + seed }, (_, k) => k));
      expect(Array.from(t.getChild('v')!.toArray())).to.deep.equal(Array.from({ length: 50 + seed }, (_, k) => seed * 1000 + k / 4));
      const w = t.getChild('worker')!.get(0) as number;
      byWorker.set(w, (byWorker.get(w) ?? 0) + 1);
    });
    expect([...byWorker.keys()].sort()).to.deep.equal([1, 2]);
    expect(await ourKeys()).to.deep.equal([]);
  });

  it('an input and a result over the inline limit go through the file store, and nothing is left behind', async function () {
    const n = 300_000; // 2.4 MB of Float64, over the 1 MiB default
    const data = tableFromArrays({ x: Float64Array.from({ length: n }, (_, i) => i * 1.5) });
    const [puts, gets] = [store.puts, store.gets];
    const r = await remote.run('echo', {}, { inputs: { data } });
    expect(r.stdout).to.equal(`rows in: ${n}\n`);
    const x = r.table!.getChild('x')!.toArray() as Float64Array;
    expect(x.length).to.equal(n);
    expect(x.every((v, i) => v === i * 1.5)).to.equal(true);
    expect([store.puts - puts, store.gets - gets], 'the input stored by the producer, the result read from the store').to.deep.equal([1, 1]);
    // The client dropped the result as it read it; the worker drops the input just after it sent
    // the reply (not before: a reply that fails to send is retried, and the retry reads the input).
    await waitFor('the worker to drop the input', () => storeFiles().length === 0);
    // A small run travels inside Redis only.
    expect((await remote.run('echo', {}, { inputs: { data: tableFromArrays({ x: Float64Array.of(1) }) } })).table!.numRows).to.equal(1);
    expect([store.puts - puts, store.gets - gets]).to.deep.equal([1, 1]);
    expect(await ourKeys()).to.deep.equal([]);
  });

  it('a job past its timeout fails with ERR_TIMEOUT, without a retry', async function () {
    await expectCode(remote.run('spin', {}, { timeout: 300 }), 'ERR_TIMEOUT');
    const failed = await waitFor('the failed event', () => workers.flatMap((w) => w.has('failed', 'spin')).at(0));
    expect(failed.error).to.match(/^ERR_TIMEOUT/);
    expect(workers.flatMap((w) => w.has('active', 'spin'))).to.have.length(1);
    const counts = await bull.getJobCounts('wait', 'delayed', 'active', 'prioritized');
    expect(counts).to.deep.equal({ wait: 0, delayed: 0, active: 0, prioritized: 0 });
  });

  it('an unknown job name is ERR_UNKNOWN_JOB, and the jobs around it run', async function () {
    const good = Array.from({ length: 6 }, (_, i) => remote.run('sum', { values: [i, 1] }));
    const e = await expectCode(remote.run('no-such-job', {}), 'ERR_UNKNOWN_JOB');
    expect(e).to.be.instanceOf(remoteApi.UnknownJobError);
    expect(e.message).to.include('no job named `no-such-job` is registered');
    expect((await Promise.all(good)).map((r) => (r.value as { total: number }).total)).to.deep.equal([1, 2, 3, 4, 5, 6]);
  });

  it('an oversized argument is ERR_ARGS_TOO_LARGE before anything is queued, and the jobs around it run', async function () {
    const before = await bull.count();
    const good = Array.from({ length: 6 }, (_, i) => remote.run('sum', { values: [i, 2] }));
    const e = await expectCode(remote.run('sum', { values: [1], padding: 'x'.repeat(2 ** 20) }), 'ERR_ARGS_TOO_LARGE');
    expect(e.message).to.match(/arguments take \d+ bytes, over the limit of 1048576/);
    expect((await Promise.all(good)).map((r) => (r.value as { total: number }).total)).to.deep.equal([2, 3, 4, 5, 6, 7]);
    expect(await bull.count()).to.equal(before);
  });

  it('an aborted run rejects with ERR_ABORTED: a queued job is removed, a running one killed', async function () {
    const ac = new AbortController();
    ac.abort(new Error('never mind'));
    const early = await expectCode(remote.run('sum', { values: [1] }, { signal: ac.signal }), 'ERR_ABORTED');
    expect(early.cause.message).to.equal('never mind');

    // A queue with no worker: the job waits, and the abort removes it with its request.
    const idle = new RemoteSpawner({ queue: 'nobody-works-here', connection: { path: redis!.socket } });
    const idleQueue = new Queue('nobody-works-here', { connection: { path: redis!.socket } });
    try {
      const queued = new AbortController();
      const run = idle.run('sum', { values: [1] }, { signal: queued.signal });
      await until('the job queued', async () => (await idleQueue.count()) === 1);
      queued.abort();
      await expectCode(run, 'ERR_ABORTED');
      await until('the job removed', async () => (await idleQueue.count()) === 0 && (await ourKeys()).length === 0);
    } finally {
      await idleQueue.close();
      await idle.close();
    }

    // A running job: the worker kills it.
    const running = new AbortController();
    const before = workers.map((w) => w.has('active', 'gate').length);
    const run = remote.run('gate', { file: gate() }, { signal: running.signal });
    const runner = await waitFor('the gate job running', () => workers.find((w, i) => w.has('active', 'gate').length > before[i]));
    running.abort();
    await expectCode(run, 'ERR_ABORTED');
    const failed = await waitFor('the worker gave up the job', () => runner.has('failed', 'gate').at(0));
    expect(failed.error).to.match(/^ERR_ABORTED/);
    await until('its reply read and its keys gone', async () => (await ourKeys()).length === 0);
  });

  it('a lost Redis connection: runs in flight finish once it is back; without Redis, run() is ERR_QUEUE_UNAVAILABLE', async function () {
    const activeBefore = workers.map((w) => w.has('active', 'gate').length);
    const file = gate();
    const runs = [remote.run('gate', { file }), remote.run('gate', { file }), remote.run('gate', { file })];
    await waitFor('three gate jobs running', () => workers.reduce((a, w, i) => a + w.has('active', 'gate').length - activeBefore[i], 0) === 3);
    // Every connection but this one, the workers' and the producer's alike.
    const killed = Number(await admin.call('CLIENT', 'KILL', 'TYPE', 'normal')) + Number(await admin.call('CLIENT', 'KILL', 'TYPE', 'pubsub'));
    expect(killed).to.be.greaterThan(4);
    open(file);
    const results = await Promise.all(runs);
    expect(results.map((r) => (r.value as { host: string }).host)).to.satisfy((hosts: string[]) => hosts.every((h) => /^worker\d$/.test(h)));
    // Still serving afterwards.
    expect((await remote.run('sum', { values: [40, 2] })).value).to.deep.include({ total: 42 });

    const nowhere = new RemoteSpawner({ queue, connection: { path: join(dir.path, 'no-redis-here.sock') }, connectTimeout: 200 });
    try {
      const e = await expectCode(nowhere.run('sum', { values: [1] }), 'ERR_QUEUE_UNAVAILABLE');
      expect(e.message).to.match(/^Redis is not reachable/);
      expect(e).to.be.instanceOf(remoteApi.QueueUnavailableError);
    } finally {
      await nowhere.close();
    }
  });

  it('a worker killed with SIGKILL mid-job: the other worker finishes the job', async function () {
    const file = gate();
    const before = workers.map((w) => w.has('active', 'gate').length);
    const run = remote.run('gate', { file });
    const victim = await waitFor('the gate job running', () => workers.find((w, i) => w.has('active', 'gate').length > before[i]));
    victim.child.kill('SIGKILL');
    expect((await victim.exited).signal).to.equal('SIGKILL');
    workers = workers.filter((w) => w !== victim);
    open(file);
    const r = await run;
    expect((r.value as { host: string }).host).to.equal(workers[0].name);
    await startWorker('worker3');
  });

  it('SIGTERM drains a worker: its running job finishes and reports, nothing new starts there', async function () {
    const file = gate();
    const before = workers.map((w) => w.has('active', 'gate').length);
    const run = remote.run('gate', { file });
    const draining = await waitFor('the gate job running', () => workers.find((w, i) => w.has('active', 'gate').length > before[i]));
    const others = workers.filter((w) => w !== draining);
    draining.child.kill('SIGTERM');
    await waitFor('the worker closing', () => draining.has('closing').length > 0);
    // Every later job runs elsewhere: one that the draining worker's blocking fetch had already
    // taken goes back to the queue (it shows there as active, and never runs there).
    const later = await Promise.all(Array.from({ length: 4 }, (_, i) => remote.run('rows', { n: 3, seed: i })));
    expect(later.map((r) => r.table!.getChild('worker')!.get(0))).to.satisfy((ws: number[]) => ws.every((w) => others.some((o) => o.name === `worker${w}`)));
    open(file);
    expect(((await run).value as { host: string }).host).to.equal(draining.name);
    expect(await draining.exited).to.deep.equal({ code: null, signal: 'SIGTERM' });
    expect(await ourKeys()).to.deep.equal([]);
    expect(storeFiles()).to.deep.equal([]);
  });

  it('gives every error class of nodespawner/bullmq a `help` link to an existing troubleshooting section', function () {
    const anchors = troubleshootingAnchors();
    const classes = Object.values(remoteApi).filter((v) => typeof v === 'function' && v.prototype instanceof core.NodespawnerError) as Array<
      new (...a: never[]) => core.NodespawnerError
    >;
    expect(classes.map((c) => c.name).sort()).to.deep.equal([
      'ArgsTooLargeError',
      'QueueUnavailableError',
      'ResultStoreError',
      'UnknownJobError',
      'WorkerError',
    ]);
    for (const E of classes) {
      const e = new (E as unknown as new (...a: unknown[]) => core.NodespawnerError)('x', 1);
      expect([...anchors], `${E.name} (${e.code})`).to.include(e.help.split('#')[1]);
    }
  });

  it('examples/bullmq: a worker and a producer, as its README runs them', async function () {
    const env = { ...process.env, REDIS_SOCKET: redis!.socket };
    const worker = spawn(process.execPath, [join(packageRoot, 'examples', 'bullmq', 'worker.mjs')], {
      cwd: packageRoot,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    worker.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
    worker.stderr!.setEncoding('utf8').on('data', (d: string) => (out += d));
    const exited = new Promise<string | null>((resolve) => worker.once('exit', (_c, signal) => resolve(signal)));
    try {
      await waitFor('the example worker ready', () => / ready /.test(out), 60_000);
      const p = await runProgram(process.execPath, [join(packageRoot, 'examples', 'bullmq', 'producer.mjs'), '3'], {
        cwd: packageRoot,
        env,
        timeoutMs: 60_000,
      });
      expect(p.code, p.output).to.equal(0);
      expect(p.stdout).to.include('day 0: east 12625.0, north 12125.0, south 12875.0, west 12375.0 (1000 sales)');
      expect(p.stdout).to.match(/^day 2: /m);
      expect(p.stdout).to.include('an unregistered name: ERR_UNKNOWN_JOB');
    } finally {
      worker.kill('SIGTERM');
    }
    expect(await exited).to.equal('SIGTERM');
    expect(out).to.include('draining: running jobs finish, nothing new starts');
  });

  it('rejects a run with bad options before queueing it', async function () {
    expect((await rejection(remote.run('sum', {}, { timeout: -1 }))).message).to.equal('Expected `timeout` to be a positive finite number, got `-1` (number)');
    expect((await rejection(remote.run('sum', {}, { inputs: { t: [1] as never } }))).message).to.match(/^Expected `inputs.t` to be an apache-arrow Table/);
  });
});
