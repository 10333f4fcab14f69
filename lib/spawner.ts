// The app side: starts the zygote, queues runs (p-queue), and owns every job's lifecycle.
import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import PQueue from 'p-queue';
import { native, packageRoot } from './native.js';
import { T, decode, i64 } from './wire.js';
import type { Ready } from './wire.js';
import { resolveRunOptions, resolveSpawnerOptions, expected } from './options.js';
import type { ResolvedSpawnerOptions, RunOptions, SpawnerOptions } from './options.js';
import { AbortError, ClosedError, NodespawnerError, QueueFullError, StartError, ZygoteGoneError } from './errors.js';
import { Job, encodePayload } from './job.js';
import { cloneFlags, jobGid, jobUid, landlockRules, mountPlan, packageDirOf } from './sandbox.js';
import { cgroupPlan, detectCgroups, parentDirs, prepareParents, removeParents } from './cgroups.js';
import type { CgroupSupport, Limits } from './cgroups.js';
import type { RunResult } from './job.js';

const zygoteMain = join(packageRoot, 'dist', 'zygote', 'main.js');

/** V8/Node flags the zygote needs; DESIGN.md explains each. */
const zygoteFlags = [
  '--single-threaded', // a GC in a forked child must not wait for V8 worker threads it lacks
  '--experimental-vm-modules', // the in-thread ESM linker for jobs
  '--experimental-import-meta-resolve', // resolving a job's bare imports from its own path
  '--disable-warning=ExperimentalWarning',
];

export interface ZygoteInfo {
  pid: number;
  nodeVersion: string;
  threads: number;
  preloaded: string[];
  rssBytes: number;
  selfTestMs: number;
  /** The kernel's Landlock ABI (0 or negative: unavailable; jobs then run without that layer). */
  landlockAbi: number;
  /** Files of the preloaded modules; their packages are bound read-only into every job. */
  preloadedFiles: string[];
}


let spawnerCount = 0;

/** Where per-job limits will be enforced; throws a StartError that says what to configure. */
function resolveLimits(o: ResolvedSpawnerOptions): CgroupSupport {
  if (o.sandbox.limits !== 'cgroup') return { version: 0, reason: `sandbox.limits is '${o.sandbox.limits}'` };
  const support = detectCgroups(`nodespawner-${process.pid}-${++spawnerCount}`, o.sandbox.cgroupRoot);
  if (support.version === 0) {
    throw new StartError(
      `per-job memory and process limits need cgroups, and ${support.reason}. ` +
        "To run with weaker limits instead, set sandbox.limits to 'rlimit' (or NODESPAWNER_LIMITS=rlimit): RLIMIT_DATA and RLIMIT_NPROC, no CPU quota, no out-of-memory report.",
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

/** Whether `id` exists in this process's user namespace (a root app in a container may lack nobody). */
function idMapped(kind: 'uid' | 'gid', id: number): boolean {
  try {
    return readFileSync(`/proc/self/${kind}_map`, 'utf8')
      .trim()
      .split('\n')
      .some((line) => {
        const [inside, , count] = line.trim().split(/\s+/).map(Number);
        return id >= inside && id < inside + count;
      });
  } catch {
    return false;
  }
}

export class Spawner extends EventEmitter {
  private readonly queue: PQueue;
  private readonly running = new Set<Job>();
  private waiting = 0;
  private nextId = 1;
  private closed = false;
  private gone: ZygoteGoneError | null = null;
  private closing: Promise<void> | null = null;
  private readonly rejectWaiting = new Set<(e: Error) => void>();
  private readonly preloadDirs: string[];

  private constructor(
    private readonly options: ResolvedSpawnerOptions,
    private readonly zygote: ChildProcess,
    private readonly controlFd: number,
    private readonly control: { close(): void; unref(): void },
    private readonly stderrTail: () => string,
    /** What the zygote reported when it became ready. */
    readonly info: ZygoteInfo,
    private readonly cgroups: CgroupSupport,
  ) {
    super();
    this.queue = new PQueue({ concurrency: options.concurrency });
    this.preloadDirs = [...new Set(info.preloadedFiles.map(packageDirOf))];
  }

  /** Starts a zygote: preloads modules, self-tests forking, and resolves once it serves. */
  static async start(options: SpawnerOptions = {}): Promise<Spawner> {
    const o = resolveSpawnerOptions(options);
    const euid = process.geteuid!();
    const config = {
      appPid: process.pid,
      preload: o.preload,
      preloadBase: o.preloadBase,
      // Root inside each job maps to an unprivileged id outside: nobody for a root app, else the app's own.
      outerUid: euid === 0 && idMapped('uid', 65534) ? 65534 : euid,
      outerGid: euid === 0 && idMapped('gid', 65534) ? 65534 : process.getegid!(),
      selfTest: o.selfTest,
      // Closed by the zygote first thing: no fd the app leaked by mistake may reach a job.
      inheritedFds: native.inheritableFds().filter((fd) => fd > 3),
      seccomp: '',
    };
    const cgroups = resolveLimits(o);
    const [appEnd, zygoteEnd] = native.socketPair();
    let zygote: ChildProcess;
    try {
      zygote = spawn(process.execPath, [...zygoteFlags, zygoteMain, JSON.stringify(config)], {
        stdio: ['ignore', 'ignore', 'pipe', zygoteEnd],
        env: o.env,
        cwd: '/',
      });
    } catch (e) {
      native.close(appEnd);
      native.close(zygoteEnd);
      throw new StartError(`cannot spawn the zygote: ${(e as Error).message}`, 'spawn', { cause: e });
    }
    native.close(zygoteEnd);
    let stderr = '';
    zygote.stderr!.setEncoding('utf8');
    zygote.stderr!.on('data', (s: string) => {
      stderr = (stderr + s).slice(-16384);
    });
    const stderrTail = () => stderr;

    let onEvent: (data: Buffer | null) => void = () => {};
    const control = new native.MessageWatcher(appEnd, (data) => onEvent(data));
    const hint = 'See the Requirements section of the nodespawner README.';
    let spawner: Spawner | undefined;
    try {
      const ready = await new Promise<Ready>((resolve, reject) => {
        const timer = setTimeout(() => reject(new StartError(`the zygote did not become ready within ${o.startTimeout} ms; stderr: ${stderr.slice(-2000)}`, 'timeout')), o.startTimeout);
        const fail = (e: Error) => {
          clearTimeout(timer);
          reject(e);
        };
        zygote.once('error', (e) => fail(new StartError(`cannot spawn the zygote: ${e.message}`, 'spawn', { cause: e })));
        zygote.once('exit', (code, sig) =>
          // Give the control socket a moment: a fatal report is more useful than the exit status.
          setTimeout(() => fail(new StartError(`the zygote exited during start (${sig ?? `code ${code}`}); stderr: ${stderr.slice(-2000)}`, 'exit')), 50),
        );
        onEvent = (data) => {
          if (data === null) return;
          let ev;
          try {
            ev = decode(T.ZygoteEvent, data);
          } catch (e) {
            return fail(new StartError(`the zygote sent a malformed message: ${(e as Error).message}`, 'protocol'));
          }
          if (ev.fatal) return fail(new StartError(`the zygote could not start: ${ev.fatal.code}: ${ev.fatal.message}. ${hint}`, ev.fatal.code));
          if (ev.ready) {
            clearTimeout(timer);
            resolve(ev.ready);
          }
        };
      });
      const info: ZygoteInfo = {
        pid: ready.pid,
        nodeVersion: ready.nodeVersion,
        threads: ready.threads,
        preloaded: [...ready.preloaded],
        rssBytes: i64(ready.rssBytes),
        selfTestMs: ready.selfTestMs,
        landlockAbi: ready.landlockAbi,
        preloadedFiles: [...ready.preloadedFiles],
      };
      spawner = new Spawner(o, zygote, appEnd, control, stderrTail, info, cgroups);
    } catch (e) {
      control.close();
      zygote.kill('SIGKILL');
      removeParents(cgroups);
      throw e;
    }
    const s = spawner;
    onEvent = (data) => {
      if (data === null) s.zygoteGone('the zygote closed its control socket');
    };
    zygote.on('exit', (code, sig) => s.zygoteGone(`the zygote exited (${sig ?? `code ${code}`})`));
    // An idle spawner does not keep the app alive (running jobs do); the zygote dies with the app.
    control.unref();
    zygote.unref();
    (zygote.stderr as unknown as { unref(): void }).unref();
    return s;
  }

  /** The zygote's pid. */
  get pid(): number {
    return this.info.pid;
  }

  /** Jobs waiting for a slot. */
  get queued(): number {
    return this.waiting;
  }

  /** Jobs running now. */
  get active(): number {
    return this.running.size;
  }

  /**
   * Runs the default export of the ES module at `module` (an absolute path or file: URL) in a fresh
   * sandboxed child, as `fn(args, ctx)`. Resolves with its result; rejects with a NodespawnerError.
   */
  run<V = unknown>(module: string | URL, args?: unknown, options?: RunOptions): Promise<RunResult<V>> {
    let modulePath: string;
    let payload: Buffer;
    let o;
    try {
      modulePath = module instanceof URL || (typeof module === 'string' && module.startsWith('file:')) ? fileURLToPath(module) : (module as string);
      if (typeof modulePath !== 'string' || !isAbsolute(modulePath)) throw expected('module', 'an absolute path or a file: URL', module);
      o = resolveRunOptions(options, this.options);
      payload = encodePayload(args, o.inputs);
    } catch (e) {
      return Promise.reject(e);
    }
    if (this.closed) return Promise.reject(new ClosedError());
    if (this.gone) return Promise.reject(this.gone);
    if (o.signal?.aborted) return Promise.reject(new AbortError(o.signal.reason));
    if (this.waiting >= this.options.maxQueue) return Promise.reject(new QueueFullError(this.options.maxQueue));

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
        this.rejectWaiting.delete(cancelWaiting);
        if (this.gone) {
          cleanup();
          return reject(this.gone);
        }
        const id = this.nextId++;
        job = new Job({
          controlFd: this.controlFd,
          id,
          modulePath,
          sandbox: this.sandboxRequest(id, modulePath, o.limits),
          cgroups: this.cgroups,
          payload,
          options: o,
          queuedAt,
        });
        this.running.add(job);
        try {
          resolve((await job.start()) as RunResult<V>);
        } catch (e) {
          reject(e);
        } finally {
          this.running.delete(job);
          cleanup();
        }
      });
    });
  }

  /** The sandbox half of a RunRequest: policy is decided here, the child only executes it. */
  private sandboxRequest(id: number, modulePath: string, limits: Limits) {
    const policy = this.options.sandbox;
    const rlimits = [{ resource: native.RLIMIT.CORE, limit: 0 }];
    if (policy.limits === 'rlimit') {
      if (limits.memoryLimit !== null) rlimits.push({ resource: native.RLIMIT.DATA, limit: limits.memoryLimit });
      if (limits.pids !== null) rlimits.push({ resource: native.RLIMIT.NPROC, limit: limits.pids });
    }
    const cgroups = cgroupPlan(this.cgroups, id, limits);
    const mounts = mountPlan(policy, modulePath, this.preloadDirs);
    const landlock = policy.landlock ? landlockRules(mounts, this.info.landlockAbi) : { handled: 0, rules: [] };
    return {
      hostname: policy.hostname,
      cloneFlags: cloneFlags(policy.network),
      uid: jobUid,
      gid: jobGid,
      mounts: mounts.map((m) => new T.MountOp(m)),
      landlockHandled: landlock.handled,
      landlock: landlock.rules.map((r) => new T.LandlockRule(r)),
      ...cgroups,
      cgroupWrites: cgroups.cgroupWrites.map((w) => new T.CgroupWrite(w)),
      rlimits: rlimits.map((l) => new T.Rlimit(l)),
    };
  }

  private zygoteGone(why: string): void {
    if (this.gone || this.closed) return;
    this.gone = new ZygoteGoneError(`${why}; stderr: ${this.stderrTail().slice(-2000)}`);
    this.control.close();
    for (const job of this.running) job.kill(this.gone);
    for (const reject of [...this.rejectWaiting]) reject(this.gone);
    void Promise.allSettled([...this.running].map((j) => j.promise)).then(() => removeParents(this.cgroups));
    this.emit('zygoteExit', this.gone);
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
    const jobs = [...this.running];
    for (const job of jobs) job.close();
    await Promise.allSettled(jobs.map((j) => j.promise));
    await this.queue.onIdle();
    const exited = new Promise<void>((resolve) => {
      if (this.zygote.exitCode !== null || this.zygote.signalCode !== null) return resolve();
      this.zygote.once('exit', () => resolve());
    });
    this.control.close(); // EOF on the control socket: the zygote exits
    const timer = setTimeout(() => this.zygote.kill('SIGKILL'), 2_000);
    await exited;
    clearTimeout(timer);
    this.zygote.stderr?.destroy();
    removeParents(this.cgroups);
  }
}

export { NodespawnerError };
