// The app side: supervises the zygote, queues runs (p-queue), and owns every job's lifecycle.
import { EventEmitter } from 'node:events';
import { statSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { isAbsolute } from 'node:path';
import { fileURLToPath } from 'node:url';
import PQueue from 'p-queue';
import { native } from './native.js';
import { T } from './wire.js';
import { resolveRunOptions, resolveSpawnerOptions, expectedMessage } from './options.js';
import type { ResolvedSpawnerOptions, RunOptions, SpawnerOptions } from './options.js';
import {
  AbortError,
  ClosedError,
  InvalidArgumentError,
  InvalidOutputError,
  ModuleNotFoundError,
  NodespawnerError,
  QueueFullError,
  SandboxSetupError,
  StartError,
  TypeScriptUnsupportedError,
  ZygoteGoneError,
} from './errors.js';
import { isTypeScriptPath, stripsTypes } from './runtime.js';
import { RecordBatchReader } from 'apache-arrow';
import type { RecordBatch } from 'apache-arrow';
import { Job, encodePayload } from './job.js';
import type { JobChannel } from './job.js';
import { MountKind, cloneFlags, jobGid, jobUid, landlockRules, mountPlan, packageDirOf } from './sandbox.js';
import { findEgressTools, firewallRuleset, hostAddresses, stackArgv } from './egress.js';
import type { NetworkMode } from './options.js';
import type { EgressPlan } from './wire.js';
import { cgroupPlan, detectCgroups, parentDirs, prepareParents, removeLeftovers, removeParents } from './cgroups.js';
import type { CgroupSupport, Limits } from './cgroups.js';
import { ZygoteProcess } from './zygote-process.js';
import type { ZygoteInfo } from './zygote-process.js';
import type { RunResult } from './job.js';
import type { ResolvedRunOptions } from './options.js';
import { isJobRef } from './define.js';
import type { JobRef } from './define.js';
import { Window, phaseNames } from './stats.js';
import type { PhaseName, SpawnerStats } from './stats.js';

export type { ZygoteInfo };

/** What spawner.stream() returns: the batches as they come, and the job's result. */
export interface JobStream extends AsyncIterable<RecordBatch> {
  readonly result: Promise<RunResult>;
}

const osErrno = osConstants.errno;

let spawnerCount = 0;

/**
 * Spawners not closed yet. When the app exits without close(), their jobs' watchers are stopped
 * on 'exit': during Node's teardown a watcher must not call back into JavaScript.
 */
const liveSpawners = new Set<Spawner>();
let exitHookInstalled = false;

/** Module and options whose runs a preforked child can take: everything fixed before the payload. */
function preforkKey(modulePath: string, o: ResolvedRunOptions, streaming: boolean): string {
  return JSON.stringify([modulePath, streaming, o.maxStdout, o.maxStderr, o.maxResultBytes, o.outputOverflow, o.limits, o.network]);
}

/** Job modules (with their options) that keep preforked children: the most recently run. */
const preforkKeys = 8;

/** Preforked children of one module and options. */
interface PreforkSet {
  jobs: Job[];
  /** A child of this set ended before a run was assigned to it: the module is not preforked again. */
  coldOnly: boolean;
  idle: NodeJS.Timeout | undefined;
}

/** A job module must be a file the app can see: a missing one is refused here, without a fork. */
function checkModule(path: string): void {
  let st;
  try {
    st = statSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new ModuleNotFoundError(path, code === 'ENOENT' || code === 'ENOTDIR' ? 'does not exist' : `cannot be read: ${code ?? (e as Error).message}`);
  }
  if (!st.isFile()) throw new ModuleNotFoundError(path, 'is not a file');
}

/**
 * What the intermediate runs for an 'egress' job: the firewall (decided once per spawner: its
 * options and the host's addresses at start) and the stack's command line. A string says what the
 * host lacks.
 */
function egressPlan(o: ResolvedSpawnerOptions): EgressPlan | string {
  const tools = findEgressTools(o.sandbox.egress.stack);
  if ('missing' in tools) return tools.missing;
  return { firewall: firewallRuleset(o.sandbox.egress, hostAddresses()), nft: [tools.nftPath, '-f', '/dev/stdin'], stack: stackArgv(tools) };
}

/** Where per-job limits will be enforced; throws a StartError that says what to configure. */
function resolveLimits(o: ResolvedSpawnerOptions): CgroupSupport {
  if (o.sandbox.limits !== 'cgroup') return { version: 0, reason: `sandbox.limits is '${o.sandbox.limits}'` };
  const support = detectCgroups(`nodespawner-${process.pid}-${++spawnerCount}`, o.sandbox.cgroupRoot);
  if (support.version === 0) {
    throw new StartError(
      `per-job memory and process limits need cgroups, and ${support.reason}. ` +
        'To run with weaker limits instead, set sandbox.limits to ' +
        "'rlimit' (or NODESPAWNER_LIMITS=rlimit): RLIMIT_DATA " +
        'and RLIMIT_NPROC, no CPU quota, no out-of-memory report. Run `npx nodespawner doctor` to check this host.',
      'cgroups',
    );
  }
  try {
    prepareParents(support);
  } catch (e) {
    removeParents(support);
    throw new StartError(`cannot create the spawner's cgroups (${parentDirs(support).join(', ')}): ${(e as Error).message}`, 'cgroups', { cause: e });
  }
  return support;
}

export class Spawner extends EventEmitter {
  private readonly queue: PQueue;
  private readonly running = new Map<Job, ZygoteProcess>();
  private waiting = 0;
  private started = 0;
  private nextId = 1;
  private closed = false;
  private closing: Promise<void> | null = null;
  private readonly rejectWaiting = new Set<(e: Error) => void>();
  private zygote: ZygoteProcess | null = null;
  private restarting: Promise<ZygoteProcess> | null = null;
  private preloadDirs: string[] = [];
  private lastInfo!: ZygoteInfo;
  private completed = 0;
  private readonly failed = new Map<string, number>();
  private restarts = 0;
  private readonly waitWindow = new Window();
  private readonly runWindow = new Window();
  private readonly phaseWindows = Object.fromEntries(phaseNames.map((k) => [k, new Window()])) as Record<PhaseName, Window>;
  /** Preforked children by module and options, least recently used first. */
  private readonly prefork = new Map<string, PreforkSet>();
  /** Every preforked child not yet given a run, and the zygote it came from. */
  private readonly waitingChildren = new Map<Job, ZygoteProcess>();
  private preforkedRuns = 0;
  /** Since when no run has been in flight (null: one is). */
  private idleSince: bigint | null = process.hrtime.bigint();
  /** How long the last preforked child that was given a run took to get ready. */
  private replacementMs: number | null = null;
  /** Every job whose intermediate may still be cleaning up (its cgroups) after the run settled. */
  private readonly unreleased = new Set<Job>();
  /** For 'egress' runs, made at the first (at start when sandbox.network is 'egress'). */
  private egress: EgressPlan | string | null = null;

  private constructor(
    private readonly options: ResolvedSpawnerOptions,
    private readonly cgroups: CgroupSupport,
    zygote: ZygoteProcess,
  ) {
    super();
    this.queue = new PQueue({ concurrency: options.concurrency });
    this.adopt(zygote);
    liveSpawners.add(this);
    if (!exitHookInstalled) {
      exitHookInstalled = true;
      process.once('exit', () => {
        for (const s of liveSpawners) for (const job of s.unreleased) job.detach();
      });
    }
  }

  /** Starts a zygote: preloads modules, self-tests forking, and resolves once it serves. */
  static async start(options: SpawnerOptions = {}): Promise<Spawner> {
    const o = resolveSpawnerOptions(options);
    const egress = o.sandbox.network === 'egress' ? egressPlan(o) : null;
    if (typeof egress === 'string') throw new StartError(`${egress}. Run \`npx nodespawner doctor\` to check this host.`, 'egress');
    const cgroups = resolveLimits(o);
    try {
      const spawner = new Spawner(o, cgroups, await ZygoteProcess.start(o, parentDirs(cgroups)));
      spawner.egress = egress;
      return spawner;
    } catch (e) {
      removeParents(cgroups);
      throw e;
    }
  }

  /** What the current (or last) zygote reported when it became ready. */
  get info(): ZygoteInfo {
    return this.lastInfo;
  }

  /** The pid of the current (or last) zygote. */
  get pid(): number {
    return this.lastInfo.pid;
  }

  /** Jobs waiting for a slot. */
  get queued(): number {
    return this.waiting;
  }

  /** Jobs running now. */
  get active(): number {
    return this.started;
  }

  /**
   * Runs the default export of the ES module at `module` (an absolute path or file: URL) in a fresh
   * sandboxed child, as `fn(args, ctx)`. Resolves with its result; rejects with a NodespawnerError.
   */
  run<A, R>(job: JobRef<A, R>, args: A, options?: RunOptions): Promise<RunResult<R>>;
  run<V = unknown>(module: string | URL, args?: unknown, options?: RunOptions): Promise<RunResult<V>>;
  run<V = unknown>(module: string | URL | JobRef<unknown, unknown>, args?: unknown, options?: RunOptions): Promise<RunResult<V>> {
    return this.submit<V>(module, args, options, null);
  }

  /**
   * Runs a job that returns (or is) an iterator of apache-arrow RecordBatches and yields each batch
   * while the child is still producing the next. A slow consumer holds the child back (the pipe
   * fills and its writes block); the same limits apply. Breaking out of the loop kills the job.
   * `result` settles with the job's RunResult (without `table`), or rejects with its error, which
   * the iteration also throws at its end.
   */
  stream(module: string | URL | JobRef<unknown, unknown>, args?: unknown, options?: RunOptions): JobStream {
    let onJob!: (job: Job) => void;
    const jobReady = new Promise<Job>((resolve) => (onJob = resolve));
    const result = this.submit(module, args, options, onJob);
    result.catch(() => {}); // surfaced by the iteration, or by `result` to whoever awaits it
    return {
      result,
      async *[Symbol.asyncIterator]() {
        const job = await Promise.race([
          jobReady,
          result.then(
            () => null,
            () => null,
          ),
        ]);
        let finished = false;
        try {
          if (job && (await job.arrow!.hasData())) {
            let reader;
            try {
              reader = await RecordBatchReader.from(job.arrow!);
            } catch (e) {
              job.kill(new InvalidOutputError(`job streamed a malformed Arrow stream: ${(e as Error).message}`));
              throw e;
            }
            const iterator = reader[Symbol.asyncIterator]();
            for (;;) {
              let next;
              try {
                next = await iterator.next();
              } catch (e) {
                job.kill(new InvalidOutputError(`job streamed a malformed Arrow stream: ${(e as Error).message}`));
                break;
              }
              if (next.done) break;
              yield next.value as RecordBatch;
            }
          }
          const r = await result; // the job's own failure, if any, is thrown here
          if (r.value !== undefined) throw new InvalidOutputError('job returned a value, not RecordBatches: use run()');
          if (r.table) yield* r.table.batches; // a job that returned a whole Table
          finished = true;
        } finally {
          if (!finished) job?.abort(new Error('the consumer stopped reading the stream'));
        }
      },
    };
  }

  private submit<V>(
    module: string | URL | JobRef<unknown, unknown>,
    args: unknown,
    options: RunOptions | undefined,
    onJob: ((job: Job) => void) | null,
  ): Promise<RunResult<V>> {
    let modulePath: string;
    let payload: Uint8Array[];
    let o;
    try {
      if (isJobRef(module)) {
        module.check?.(args);
        module = module.path;
      }
      modulePath = module instanceof URL || (typeof module === 'string' && module.startsWith('file:')) ? fileURLToPath(module) : (module as string);
      if (typeof modulePath !== 'string' || !isAbsolute(modulePath))
        throw new InvalidArgumentError(expectedMessage('module', 'an absolute path or a file: URL', module));
      if (isTypeScriptPath(modulePath) && !stripsTypes) throw new TypeScriptUnsupportedError(modulePath);
      o = resolveRunOptions(options, this.options);
      payload = encodePayload(args, o.inputs);
      checkModule(modulePath);
      if (o.network === 'egress') {
        this.egress ??= egressPlan(this.options);
        if (typeof this.egress === 'string') throw new SandboxSetupError('network stack', 'execve', osErrno.ENOENT, 'ENOENT', this.egress);
      }
    } catch (e) {
      return Promise.reject(e);
    }
    const refuse = (e: NodespawnerError) => {
      this.countFailure(e);
      return Promise.reject(e);
    };
    if (this.closed) return refuse(new ClosedError());
    if (o.signal?.aborted) return refuse(new AbortError(o.signal.reason));
    if (this.waiting >= this.options.maxQueue) return refuse(new QueueFullError(this.options.maxQueue));

    const queuedAt = process.hrtime.bigint();
    const signal = o.signal;
    this.waiting++;
    let started = false;
    let cancelled: Error | null = null;
    let job: Job | undefined;
    return new Promise<RunResult<V>>((resolve, reject) => {
      const cancelWaiting = (e: Error) => {
        if (started || cancelled) return;
        cancelled = e;
        this.waiting--;
        this.rejectWaiting.delete(cancelWaiting);
        this.countFailure(e);
        reject(e);
      };
      this.rejectWaiting.add(cancelWaiting);
      const onAbort = () => (started ? job?.abort(signal!.reason) : cancelWaiting(new AbortError(signal!.reason)));
      signal?.addEventListener('abort', onAbort, { once: true });
      const cleanup = () => signal?.removeEventListener('abort', onAbort);
      void this.queue.add(async () => {
        if (cancelled) return;
        started = true;
        this.waiting--;
        const idleMs = this.runStarted();
        this.rejectWaiting.delete(cancelWaiting);
        let zygote: ZygoteProcess;
        try {
          zygote = await this.ensureZygote();
        } catch (e) {
          this.runEnded();
          cleanup();
          this.countFailure(e);
          return reject(e);
        }
        const streaming = onJob !== null;
        const key = this.options.prefork > 0 ? preforkKey(modulePath, o, streaming) : null;
        let id = 0;
        const onSpawn = (pid: number) => this.emit('spawn', { id, module: modulePath, pid });
        const forkJob = () => {
          const cold = this.newJob(zygote, modulePath, streaming, { payload, options: o, queuedAt, onSpawn });
          id = cold.id;
          this.running.set(cold, zygote);
          return cold;
        };
        // A stream's consumer holds on to its job: it only gets a child that is known to be set up.
        job = key === null ? undefined : this.takePreforked(key, zygote, streaming, (j) => j.assign({ payload, options: o, queuedAt, onSpawn }));
        if (job) {
          id = job.id;
          this.preforkedRuns++;
          this.running.set(job, zygote);
        } else {
          job = forkJob();
        }
        onJob?.(job);
        let running = job.preforked ? job.promise : job.start();
        // The replacement's fork, set-up and import compete with this run for the CPU. When runs
        // are spaced out (the spawner was idle for longer than a replacement takes to get ready,
        // this run is the only one, and another child of the module is there for the next run),
        // it is made once this run has settled.
        if (job.preforked && job.readyMs !== null) this.replacementMs = job.readyMs;
        const deferRefill =
          key !== null &&
          job.preforked &&
          this.started === 1 &&
          this.replacementMs !== null &&
          idleMs >= this.replacementMs &&
          (this.prefork.get(key)?.jobs.length ?? 0) > 0;
        if (key !== null && !deferRefill) this.refill(key, modulePath, o, streaming, zygote);
        if (job.preforked && !streaming) {
          // A child given the run before it was ready may turn out to have failed its set-up, which
          // reflects the host when it was forked; no job code ran. The run then forks a child now.
          const preforked = job;
          running = running.catch((e: unknown) => {
            if (!(e instanceof SandboxSetupError) || this.closed) throw e;
            this.running.delete(preforked);
            job = forkJob();
            return job.start();
          });
        }
        try {
          const r = await running;
          this.record(r.timings);
          this.completed++;
          this.emit('exit', { id, module: modulePath, code: null, exitCode: r.exitCode, signal: null, durationMs: r.durationMs });
          resolve(r as RunResult<V>);
        } catch (e) {
          const err = e as NodespawnerError;
          this.countFailure(err);
          this.emit('exit', {
            id,
            module: modulePath,
            code: err.code ?? 'ERR_UNKNOWN',
            exitCode: err.exitCode ?? null,
            signal: err.signal ?? null,
            durationMs: err.durationMs ?? null,
          });
          reject(e);
        } finally {
          this.running.delete(job);
          this.runEnded();
          cleanup();
          // After whoever awaits the run has had its result.
          if (deferRefill) setImmediate(() => this.refill(key!, modulePath, o, streaming, zygote));
        }
      });
    });
  }

  /**
   * Queue length, running jobs, completions and failures by code, restarts, and histograms of
   * queue wait and run time (ms) over the last 1,024 jobs.
   */
  stats(): SpawnerStats {
    const phases = Object.fromEntries(phaseNames.map((k) => [k, this.phaseWindows[k].histogram()])) as SpawnerStats['phases'];
    return {
      queued: this.waiting,
      running: this.started,
      completed: this.completed,
      failed: Object.fromEntries(this.failed),
      zygoteRestarts: this.restarts,
      preforked: { waiting: this.waitingChildren.size, ready: [...this.waitingChildren.keys()].filter((j) => j.ready).length, runs: this.preforkedRuns },
      wait: this.waitWindow.histogram(),
      run: this.runWindow.histogram(),
      phases,
    };
  }

  private record(t: RunResult['timings']): void {
    this.waitWindow.add(t.queueMs);
    this.runWindow.add(t.totalMs);
    for (const k of phaseNames) this.phaseWindows[k].add(t[k]);
  }

  /**
   * A job with the next id and its sandbox plan, followed until its intermediate is gone. With
   * `run`, it carries that run's payload; without, it is a preforked child waiting for one.
   */
  private newJob(zygote: ZygoteProcess, modulePath: string, streaming: boolean, run: Pick<JobChannel, 'payload' | 'options' | 'queuedAt' | 'onSpawn'>): Job {
    const id = this.nextId++;
    const job = new Job({
      controlFd: zygote.controlFd,
      id,
      modulePath,
      sandbox: this.sandboxRequest(id, modulePath, run.options.limits, run.options.network),
      cgroups: this.cgroups,
      streaming,
      ...run,
    });
    this.unreleased.add(job);
    void job.released.then(() => this.unreleased.delete(job));
    return job;
  }

  /** A preforked child for `key` that takes the run (`assign` returns true), if there is one. */
  private takePreforked(key: string, zygote: ZygoteProcess, readyOnly: boolean, assign: (job: Job) => boolean): Job | undefined {
    const set = this.prefork.get(key);
    if (!set) return undefined;
    // Ready ones first: the others are still being set up or importing the module.
    const order = [...set.jobs.filter((j) => j.ready), ...(readyOnly ? [] : set.jobs.filter((j) => !j.ready))];
    for (const job of order) {
      if (this.waitingChildren.get(job) !== zygote || !assign(job)) continue;
      set.jobs.splice(set.jobs.indexOf(job), 1);
      this.waitingChildren.delete(job);
      return job;
    }
    return undefined;
  }

  /** Counts a run in; returns how long no run had been in flight before it, in ms (0 if one was). */
  private runStarted(): number {
    const idleMs = this.idleSince === null ? 0 : Number(process.hrtime.bigint() - this.idleSince) / 1e6;
    this.idleSince = null;
    this.started++;
    return idleMs;
  }

  private runEnded(): void {
    this.started--;
    if (this.started === 0) this.idleSince = process.hrtime.bigint();
  }

  /**
   * Tops up the preforked children of `key` (the module just run, with its options) to `prefork`,
   * and forgets the least recently used module beyond `preforkKeys`. Policy: a module is preforked
   * once it has run; its children wait for `preforkIdleTimeout` without runs, then end.
   */
  private refill(key: string, modulePath: string, o: ResolvedRunOptions, streaming: boolean, zygote: ZygoteProcess): void {
    if (this.closed || this.zygote !== zygote) return;
    let set = this.prefork.get(key);
    if (set) this.prefork.delete(key); // re-inserted last: most recently used
    set ??= { jobs: [], coldOnly: false, idle: undefined };
    this.prefork.set(key, set);
    for (const [old] of this.prefork) {
      if (this.prefork.size <= preforkKeys) break;
      this.dropPrefork(old);
    }
    clearTimeout(set.idle);
    set.idle = setTimeout(() => this.dropPrefork(key), this.options.preforkIdleTimeout);
    set.idle.unref();
    while (!set.coldOnly && set.jobs.length < this.options.prefork) {
      // Until a run is assigned, the child has the spawner's timeout to get ready (a run's own may be far shorter).
      const options = { ...o, timeout: this.options.timeout, signal: undefined, inputs: {} };
      const job = this.newJob(zygote, modulePath, streaming, { payload: undefined, options, queuedAt: 0n });
      set.jobs.push(job);
      this.waitingChildren.set(job, zygote);
      const s = set;
      void job.start().then(
        () => this.preforkedEnded(s, job, null),
        (e: unknown) => this.preforkedEnded(s, job, e),
      );
    }
  }

  /** A preforked child ended. Unless it ran or we ended it (ClosedError), the module misbehaves when preforked. */
  private preforkedEnded(set: PreforkSet, job: Job, error: unknown): void {
    if (job.assigned) return;
    const i = set.jobs.indexOf(job);
    if (i >= 0) set.jobs.splice(i, 1);
    // Ended by us, or with its zygote (which may be noticed after the child's end): not the module's doing.
    const notItsDoing = error instanceof ZygoteGoneError || error instanceof ClosedError;
    if (this.waitingChildren.delete(job) && !notItsDoing) set.coldOnly = true;
  }

  /** Ends the preforked children of `key`. */
  private dropPrefork(key: string): void {
    const set = this.prefork.get(key);
    if (!set) return;
    this.prefork.delete(key);
    clearTimeout(set.idle);
    for (const job of set.jobs) job.close();
  }

  private countFailure(e: unknown): void {
    const code = (e as { code?: unknown })?.code;
    const key = typeof code === 'string' ? code : 'ERR_UNKNOWN';
    this.failed.set(key, (this.failed.get(key) ?? 0) + 1);
  }

  /** The sandbox half of a RunRequest: policy is decided here, the child only executes it. */
  private sandboxRequest(id: number, modulePath: string, limits: Limits, network: NetworkMode) {
    const policy = this.options.sandbox;
    const rlimits: Array<{ resource: number; limit: number; aboveInherited?: boolean }> = [{ resource: native.RLIMIT.CORE, limit: 0 }];
    if (policy.limits === 'rlimit') {
      if (limits.memoryLimit !== null) rlimits.push({ resource: native.RLIMIT.DATA, limit: limits.memoryLimit, aboveInherited: true });
      if (limits.pids !== null) rlimits.push({ resource: native.RLIMIT.NPROC, limit: limits.pids });
    }
    const cgroups = cgroupPlan(this.cgroups, id, limits);
    // Landlock mirrors the plan even when the mount layer is off (then it alone confines the job).
    const plan = mountPlan({ ...policy, filesystem: true }, modulePath, this.preloadDirs, network);
    const mounts = policy.filesystem ? plan : [];
    // Without the mount layer there is no root of the job's own to write files into.
    const landlockPlan = policy.filesystem ? plan : plan.filter((m) => m.kind !== MountKind.File);
    const landlock = policy.landlock ? landlockRules(landlockPlan, this.info.landlockAbi, !policy.filesystem) : { handled: 0, scoped: 0, rules: [] };
    const egress = network === 'egress' && this.egress !== null && typeof this.egress !== 'string' ? new T.EgressPlan(this.egress) : null;
    return {
      hostname: policy.hostname,
      cloneFlags: cloneFlags(network),
      egress,
      uid: jobUid,
      gid: jobGid,
      mounts: mounts.map((m) => new T.MountOp(m)),
      landlockHandled: landlock.handled,
      landlockScoped: landlock.scoped,
      landlock: landlock.rules.map((r) => new T.LandlockRule(r)),
      ...cgroups,
      cgroupWrites: cgroups.cgroupWrites.map((w) => new T.CgroupWrite(w)),
      rlimits: rlimits.map((l) => new T.Rlimit(l)),
    };
  }

  private adopt(z: ZygoteProcess): void {
    this.zygote = z;
    this.lastInfo = z.info;
    this.preloadDirs = [...new Set(z.info.preloadedFiles.map(packageDirOf))];
    z.onGone((why) => this.zygoteGone(z, why));
  }

  /** The serving zygote; after a crash, a new one (started once, however many runs wait). */
  private ensureZygote(): Promise<ZygoteProcess> {
    if (this.zygote) return Promise.resolve(this.zygote);
    this.restarting ??= (async () => {
      try {
        const previous = this.lastInfo.pid;
        prepareParents(this.cgroups);
        const z = await ZygoteProcess.start(this.options, parentDirs(this.cgroups));
        if (this.closed) {
          await z.stop();
          throw new ClosedError();
        }
        this.adopt(z);
        this.restarts++;
        this.emit('zygoteRestart', { previousPid: previous, pid: z.info.pid });
        return z;
      } finally {
        this.restarting = null;
      }
    })();
    return this.restarting;
  }

  /** The zygote died: jobs in flight on it fail, waiting jobs go to the next zygote. */
  private zygoteGone(z: ZygoteProcess, why: string): void {
    if (this.zygote !== z) return;
    this.zygote = null;
    void z.stop();
    const err = new ZygoteGoneError(why);
    const lost = [...this.running].filter(([, on]) => on === z).map(([job]) => job);
    for (const job of lost) job.kill(err);
    const waiting = [...this.waitingChildren].filter(([, on]) => on === z).map(([job]) => job);
    for (const job of waiting) job.close();
    lost.push(...waiting);
    // Intermediates die with the zygote before removing their jobs' cgroups.
    void Promise.allSettled(lost.map((j) => j.released)).then(() => removeLeftovers(this.cgroups));
    if (!this.closed) this.emit('zygoteExit', err);
  }

  /**
   * Rejects waiting jobs with ClosedError, kills running ones, ends the zygote, and resolves once
   * every process and fd is gone.
   */
  close(): Promise<void> {
    this.closing ??= this.doClose();
    return this.closing;
  }

  private async doClose(): Promise<void> {
    this.closed = true;
    for (const reject of [...this.rejectWaiting]) reject(new ClosedError());
    for (const key of [...this.prefork.keys()]) this.dropPrefork(key);
    const jobs = [...this.running.keys(), ...this.waitingChildren.keys()];
    for (const job of jobs) job.close();
    await Promise.allSettled(jobs.map((j) => j.promise));
    await this.queue.onIdle();
    await Promise.all([...this.unreleased].map((j) => j.released));
    await this.restarting?.catch(() => null);
    await this.zygote?.stop();
    this.zygote = null;
    removeParents(this.cgroups);
    liveSpawners.delete(this);
  }
}
