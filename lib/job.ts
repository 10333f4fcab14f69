// One job on the app side: its fds, what the child sends back (bounded), and the outcome.
import { constants as osConstants } from 'node:os';
import { RecordBatchReader, Table, tableToIPC } from 'apache-arrow';
import { native } from './native.js';
import type { MessageWatcher } from './native.js';
import { T, ResultTag, decode, encode, fromWire, i64, payloadParts, splitTimings, timingsFrameBytes, toWire } from './wire.js';
import { ByteQueue, Deframer } from './result-stream.js';
import type { ChildMarks, JobEvent, RunRequest } from './wire.js';
import type { ResolvedRunOptions } from './options.js';
import { parseStats } from './cgroups.js';
import type { CgroupSupport } from './cgroups.js';
import { expectedMessage } from './options.js';
import {
  AbortError,
  InvalidArgumentError,
  ClosedError,
  InvalidOutputError,
  JobCrashedError,
  OutOfMemoryError,
  OutputTooLargeError,
  JobFailedError,
  NodespawnerError,
  ResultTooLargeError,
  SandboxSetupError,
  TimeoutError,
  ZygoteGoneError,
} from './errors.js';

/**
 * Where a run's time went, in ms. requestMs + forkMs + cloneMs + runMs + reapMs = totalMs, and
 * runMs = specializeMs + importMs + jobMs + resultMs. A preforked child was forked, specialized
 * and had imported the module before the run was assigned to it: forkMs, cloneMs, specializeMs
 * and importMs are 0, and requestMs runs until the child has the payload.
 */
export interface RunTimings {
  /** run() -> request sent (waiting for a slot, and for a zygote). */
  queueMs: number;
  /** Request sent -> zygote received it (preforked: -> the waiting child received the payload). */
  requestMs: number;
  /** Zygote received -> intermediate process running (fork of the zygote). */
  forkMs: number;
  /** Intermediate running -> child released (clone into namespaces, id maps, cgroup). */
  cloneMs: number;
  /** The child's part: released (preforked: payload received) -> exited. */
  runMs: number;
  /** Released -> the job runner starts: mounts, pivot_root, ids, capabilities, Landlock, seccomp. */
  specializeMs: number;
  /** Runner started -> job module imported (post-fork hygiene, linking, the module's top level). */
  importMs: number;
  /** Module imported -> the job function returned: the payload decode and the job itself. All of runMs when the child reported no marks (it died first). */
  jobMs: number;
  /** Job returned -> child exited: encoding and writing the result, exit. */
  resultMs: number;
  /** Child exited -> result read and validated. */
  reapMs: number;
  /** Request sent -> settled. */
  totalMs: number;
}

export interface RunResult<V = unknown> {
  /** The Arrow table the job returned, if it returned one. */
  table?: Table;
  /** The value the job returned, if it was not a table. */
  value?: V;
  stdout: string;
  stderr: string;
  exitCode: number;
  durationMs: number;
  /** CPU time of the job's process (user + system), in ms. */
  cpuMs: number;
  /** Peak resident memory of the job's first process, in bytes (pages shared with the zygote included). */
  maxRssBytes: number;
  /** Peak memory charged to the job's cgroup (all its processes, private pages), or null without cgroups. */
  peakMemoryBytes: number | null;
  /** The run went to a preforked child (spawner option `prefork`). */
  preforked: boolean;
  timings: RunTimings;
}

/** Encodes the job's arguments and inputs: done at run() time so bad input rejects at once. */
export function encodePayload(args: unknown, inputs: Record<string, Table>): Uint8Array[] {
  const encoded: Array<{ name: string; ipc: Uint8Array }> = [];
  for (const [name, table] of Object.entries(inputs)) {
    checkInputTable(name, table);
    encoded.push({ name, ipc: tableToIPC(table, 'stream') });
  }
  let value;
  try {
    value = toWire(args);
  } catch (e) {
    throw e instanceof TypeError ? new InvalidArgumentError(e.message) : e;
  }
  return payloadParts(value, encoded);
}

/**
 * An input must be a Table of the apache-arrow that nodespawner itself loads. The prototype chain
 * decides, not `instanceof`: apache-arrow's Symbol.hasInstance also accepts the Tables of another
 * copy of the package, which our writer encodes into a broken stream.
 */
function checkInputTable(name: string, table: unknown): void {
  if (typeof table === 'object' && table !== null && Object.prototype.isPrototypeOf.call(Table.prototype, table)) return;
  const named = (x: unknown) => (x as { constructor?: { name?: unknown } }).constructor?.name === 'Table';
  if (Table.isTable(table) || (typeof table === 'object' && table !== null && named(table) && 'schema' in table && 'batches' in table)) {
    throw new InvalidArgumentError(
      `Expected \`inputs.${name}\` to be a Table of the apache-arrow that nodespawner uses, got a Table of another copy of apache-arrow. ` +
        'The app and nodespawner must share one apache-arrow (a peer dependency of nodespawner): install one version that satisfies both, ' +
        'so that npm keeps a single copy (`npm ls apache-arrow` lists them; `npm dedupe` merges them). A nodespawner installed from a folder or linked ' +
        'brings its own node_modules: remove its apache-arrow there.',
    );
  }
  throw new InvalidArgumentError(expectedMessage(`inputs.${name}`, 'an apache-arrow Table', table));
}

// First name wins: SIGABRT, not its alias SIGIOT.
const signalNames = Object.fromEntries(
  Object.entries(osConstants.signals)
    .reverse()
    .map(([name, n]) => [n, name]),
);

/** Keeps the first `limit` bytes of a stream and counts the rest. */
class Capture {
  private chunks: Buffer[] = [];
  size = 0;
  dropped = 0;
  constructor(
    private readonly limit: number,
    private readonly name: string,
  ) {}
  push(chunk: Buffer): void {
    const room = this.limit - this.size;
    if (room <= 0) {
      this.dropped += chunk.length;
      return;
    }
    const kept = chunk.length <= room ? chunk : chunk.subarray(0, room);
    this.chunks.push(kept);
    this.size += kept.length;
    this.dropped += chunk.length - kept.length;
  }
  text(): string {
    const s = Buffer.concat(this.chunks).toString('utf8');
    return this.dropped > 0 ? `${s}\n[nodespawner: ${this.name} truncated, ${this.dropped} more bytes dropped]` : s;
  }
  bytes(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

export interface JobChannel {
  controlFd: number;
  id: number;
  modulePath: string;
  /** The sandbox part of the request (lib/sandbox.ts). */
  sandbox: Omit<RunRequest, 'id' | 'modulePath'>;
  /** The job's arguments and inputs; absent for a preforked child, which gets them in assign(). */
  payload?: Uint8Array[];
  cgroups: CgroupSupport;
  options: ResolvedRunOptions;
  queuedAt: bigint;
  /** Called once the child exists (its pid in the zygote's PID namespace). */
  onSpawn?: (pid: number) => void;
  /** Deliver a streamed result (ResultTag.Stream) through `job.arrow` as it arrives. */
  streaming?: boolean;
}

/**
 * Runs one job: creates its fds, sends the request, collects output, decides the outcome.
 * Resolves or rejects exactly once, after every fd of the job is closed.
 */
export class Job {
  private readonly out: Capture;
  private readonly err: Capture;
  private readonly result: Capture;
  private resultOverflow = false;
  private watcher: MessageWatcher | undefined;
  /** Readers of the stdout, stderr and result pipes. */
  private streams: MessageWatcher[] = [];
  private openStreams = 0;
  private pidfd = -1;
  private started: JobEvent['started'] = null;
  private setupFailed: JobEvent['setupFailed'] = null;
  private exited: JobEvent['exited'] = null;
  private statusClosed = false;
  private killReason: NodespawnerError | null = null;
  private timer: NodeJS.Timeout | undefined;
  private graceTimer: NodeJS.Timeout | undefined;
  /** Bounds the wait for the intermediate's EOF after the run settled (see finish()). */
  private releaseTimer: NodeJS.Timeout | undefined;
  private sentAt = 0n;
  private done = false;
  private resolve!: (r: RunResult) => void;
  private reject!: (e: Error) => void;
  readonly promise: Promise<RunResult>;
  /**
   * Resolves once the job's intermediate is gone too (it removes the job's cgroups after the
   * run settled), or at once for a job that never reached the zygote.
   */
  readonly released: Promise<void>;
  private release!: () => void;

  /** Arrow IPC bytes of a streamed result, as they arrive (stream() only). */
  readonly arrow: ByteQueue | null;
  private resultReader: MessageWatcher | null = null;
  private resultBytes = 0;
  private resultTag = -1;
  private deframer: Deframer | null = null;
  /** Result bytes until it is known whether they start with the child's Timings frame. */
  private head: Buffer | null = Buffer.alloc(0);
  private marks: ChildMarks | null = null;

  /** Preforked: the app's end of the work socket (closed in finish()). */
  private work: { fd: number; watcher: { close(): void } } | null = null;
  /** A preforked child that has imported its module and waits for a run. */
  ready = false;
  /** A preforked child: ms from its request to its ready byte (its set-up and import). */
  readyMs: number | null = null;
  /** A preforked child: whether a run was assigned to it. */
  assigned = false;
  readonly preforked: boolean;

  get id(): number {
    return this.c.id;
  }

  constructor(private readonly c: JobChannel) {
    this.preforked = c.payload === undefined;
    this.arrow = c.streaming
      ? new ByteQueue(
          () => this.resultReader?.pause(),
          () => this.resultReader?.resume(),
        )
      : null;
    this.out = new Capture(c.options.maxStdout, 'stdout');
    this.err = new Capture(c.options.maxStderr, 'stderr');
    this.result = new Capture(c.options.maxResultBytes + 1, 'result');
    this.promise = new Promise((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
    this.released = new Promise((resolve) => (this.release = resolve));
  }

  start(): Promise<RunResult> {
    const fds: number[] = [];
    const appEnds: number[] = [];
    try {
      const [statusApp, statusZygote] = native.socketPair();
      appEnds.push(statusApp);
      fds.push(statusZygote);
      for (let i = 0; i < 3; i++) {
        const [r, w] = native.pipe();
        appEnds.push(r);
        fds.push(w);
      }
      if (this.c.payload) {
        fds.push(native.memfdFromBuffers(`nodespawner-job-${this.c.id}`, this.c.payload));
      } else {
        const [workApp, workChild] = native.socketPair();
        appEnds.push(workApp);
        fds.push(workChild);
      }
      const request = encode(T.RunRequest, { id: this.c.id, modulePath: this.c.modulePath, ...this.c.sandbox, deferred: this.preforked });
      this.sentAt = process.hrtime.bigint();
      native.sendMessage(this.c.controlFd, request, fds);
    } catch (e) {
      [...fds, ...appEnds].forEach((fd) => native.close(fd));
      const err = e as Error & { errno?: number };
      this.reject(err.errno === osConstants.errno.EPIPE || err.errno === osConstants.errno.ECONNRESET ? new ZygoteGoneError() : err);
      this.done = true;
      this.release();
      return this.promise;
    }
    fds.forEach((fd) => native.close(fd));
    const [statusApp, outR, errR, resR, workApp] = appEnds;
    this.watcher = new native.MessageWatcher(statusApp, (data, received) => this.onStatus(data, received));
    if (workApp !== undefined) {
      // The runner sends one byte here, once, when the module is imported. Job code can reach this
      // socket too (the module's top level runs first): anything else ends the child.
      const watcher = new native.MessageWatcher(workApp, (data, received) => {
        received.forEach((fd) => native.close(fd));
        if (data === null) return;
        if (!this.ready && data.length === 1 && data[0] === 1) {
          this.ready = true;
          this.readyMs = Number(process.hrtime.bigint() - this.sentAt) / 1e6;
          if (!this.assigned) clearTimeout(this.timer); // ready in time
          return;
        }
        this.kill(new InvalidOutputError('the job wrote to the socket its runner waits on'));
      });
      watcher.unref();
      this.work = { fd: workApp, watcher };
    }
    const overflowing = (capture: Capture, stream: 'stdout' | 'stderr', limit: number) => (b: Buffer) => {
      capture.push(b);
      if (capture.dropped > 0 && this.c.options.outputOverflow === 'kill') this.kill(new OutputTooLargeError(stream, limit));
    };
    this.readStream(outR, overflowing(this.out, 'stdout', this.c.options.maxStdout));
    this.readStream(errR, overflowing(this.err, 'stderr', this.c.options.maxStderr));
    this.resultReader = this.readStream(resR, (b) => this.onResult(b));
    // A preforked child gets the run's timeout once assigned; until then it has as long to get ready.
    this.armTimeout();
    // Until a run is assigned, a preforked child does not keep the app alive (as the zygote does not).
    if (this.preforked) this.setRef(false);
    return this.promise;
  }

  /** (Re)starts the run's timeout, from now. */
  private armTimeout(): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.kill(new TimeoutError(this.c.options.timeout)), this.c.options.timeout);
  }

  private setRef(ref: boolean): void {
    const handles: Array<{ ref(): unknown; unref(): unknown } | undefined> = [this.watcher, this.timer, ...this.streams];
    for (const h of handles) {
      if (h && ref) h.ref();
      else if (h) h.unref();
    }
  }

  /**
   * Gives a preforked child its run: the payload memfd goes over the work socket. Returns false,
   * and changes nothing, when the child cannot take it (it has exited); the caller then forks.
   */
  assign(run: Pick<JobChannel, 'payload' | 'options' | 'queuedAt' | 'onSpawn'>): boolean {
    if (!this.preforked || this.assigned || this.done || this.killReason || !this.work || this.statusClosed || this.exited) return false;
    let memfd = -1;
    let sentAt = 0n;
    try {
      memfd = native.memfdFromBuffers(`nodespawner-job-${this.c.id}`, run.payload!);
      sentAt = process.hrtime.bigint(); // before the send: the child may stamp its receipt first
      native.sendMessage(this.work.fd, Uint8Array.of(1), [memfd]);
    } catch {
      return false;
    } finally {
      if (memfd >= 0) native.close(memfd);
    }
    this.assigned = true;
    this.sentAt = sentAt;
    // The work socket stays open until the child is gone: closing it while its ready byte is still
    // unread here would reset the child's end, payload and all.
    Object.assign(this.c, { options: run.options, queuedAt: run.queuedAt, onSpawn: run.onSpawn });
    if (this.started) this.c.onSpawn?.(this.started.pid);
    this.armTimeout();
    this.setRef(true);
    return true;
  }

  /** Kills the job (and, as PID 1 of its namespace, everything it started); the outcome is `reason`. */
  kill(reason: NodespawnerError): void {
    if (this.done) return;
    if (this.killReason === null) this.killReason = reason;
    if (this.preforked && !this.assigned) this.setRef(true); // someone waits for its end now
    if (this.pidfd >= 0) native.pidfdSendSignal(this.pidfd, 9);
    // If the child cannot be reached (no pidfd yet and the zygote is stuck), give up after a grace.
    this.graceTimer ??= setTimeout(() => this.finish(), 5_000);
  }

  abort(reason: unknown): void {
    this.kill(new AbortError(reason));
  }

  close(): void {
    this.kill(new ClosedError());
  }

  private onResult(b: Buffer): void {
    if (this.head !== null) {
      const head: Buffer = Buffer.concat([this.head, b]);
      if (head[0] === ResultTag.Timings && head.length < timingsFrameBytes) {
        this.head = head;
        return;
      }
      const split = splitTimings(head);
      this.marks = split.marks;
      this.head = null;
      b = split.rest;
      if (b.length === 0) return;
    }
    this.resultBytes += b.length;
    if (this.resultBytes > this.c.options.maxResultBytes) {
      if (!this.resultOverflow) {
        this.resultOverflow = true;
        this.kill(new ResultTooLargeError(this.c.options.maxResultBytes));
      }
      return;
    }
    if (this.resultTag === -1 && b.length > 0) {
      this.resultTag = b[0];
      if (this.arrow && this.resultTag === ResultTag.Stream) {
        this.deframer = new Deframer((bytes) => this.arrow!.push(Buffer.from(bytes)), this.c.options.maxResultBytes);
        b = b.subarray(1);
      }
    }
    if (!this.deframer) return this.result.push(b);
    try {
      this.deframer.push(b);
    } catch (e) {
      this.kill(new InvalidOutputError(`job streamed malformed records: ${(e as Error).message}`));
    }
  }

  /** Reads a pipe until EOF (or a read error, taken as its end); owns fd. */
  private readStream(fd: number, onData: (b: Buffer) => void): MessageWatcher {
    const reader = new native.MessageWatcher(
      fd,
      (data) => {
        if (data !== null) return onData(data);
        this.openStreams--;
        this.maybeFinish();
      },
      true,
    );
    this.openStreams++;
    this.streams.push(reader);
    return reader;
  }

  private onStatus(data: Buffer | null, fds: number[]): void {
    if (data === null) {
      this.statusClosed = true;
      if (this.done) this.closeStatus();
      else this.maybeFinish();
      return;
    }
    let ev: JobEvent;
    try {
      ev = decode(T.JobEvent, data);
    } catch {
      fds.forEach((fd) => native.close(fd));
      return;
    }
    if (ev.started) {
      this.started = ev.started;
      this.c.onSpawn?.(ev.started.pid);
      if (fds.length === 1 && this.pidfd < 0) {
        this.pidfd = fds.shift()!;
        if (this.killReason) native.pidfdSendSignal(this.pidfd, 9);
      }
    }
    if (ev.setupFailed) this.setupFailed = ev.setupFailed;
    if (ev.exited) this.exited = ev.exited;
    fds.forEach((fd) => native.close(fd));
    this.maybeFinish();
  }

  /** The app is exiting: stop watching this job's sockets (no callback may run any more). */
  detach(): void {
    this.watcher?.close();
    this.watcher = undefined;
    for (const s of this.streams) s.close();
    this.closeWork();
  }

  private closeWork(): void {
    this.work?.watcher.close();
    this.work = null;
  }

  private closeStatus(): void {
    // Cleared at once: it would keep this job, its output and result bytes alive for 5 s.
    clearTimeout(this.releaseTimer);
    this.watcher?.close();
    this.watcher = undefined;
    this.release();
  }

  private maybeFinish(): void {
    if ((this.exited || this.statusClosed) && this.openStreams === 0) this.finish();
  }

  private finish(): void {
    if (this.done) return;
    this.done = true;
    clearTimeout(this.timer);
    clearTimeout(this.graceTimer);
    if (this.exited && !this.statusClosed && this.watcher) {
      // The intermediate removes the cgroups, then exits: released at its EOF (bounded).
      this.releaseTimer = setTimeout(() => this.closeStatus(), 5_000).unref();
    } else {
      this.closeStatus();
    }
    this.closeWork();
    for (const s of this.streams) s.close();
    if (this.head !== null && this.head.length > 0) this.result.push(this.head); // a cut-off Timings frame
    if (this.pidfd >= 0) native.close(this.pidfd);
    this.pidfd = -1;
    try {
      this.resolve(this.outcome());
    } catch (e) {
      this.reject(e as Error);
    }
    // The reader of a streamed result learns the outcome from `promise` once these bytes end.
    this.arrow?.end();
  }

  private outcome(): RunResult {
    const now = process.hrtime.bigint();
    const ms = (a: bigint, b: bigint) => Number(b - a) / 1e6;
    const stdout = this.out.text();
    const stderr = this.err.text();
    const ex = this.exited;
    const signal = ex && ex.signal > 0 ? (signalNames[ex.signal] ?? `signal ${ex.signal}`) : null;
    const details = { exitCode: ex ? ex.code : null, signal, stdout, stderr, durationMs: ms(this.sentAt, now) };
    if (this.setupFailed) {
      throw SandboxSetupError.from(this.setupFailed, details);
    }
    const stats = ex ? parseStats(this.c.cgroups, ex.cgroupStats ?? []) : null;
    if (stats && stats.oomKills > 0) throw new OutOfMemoryError(this.c.options.limits.memoryLimit, details);
    if (this.killReason) {
      Object.assign(this.killReason, { exitCode: details.exitCode, signal, stdout, stderr: stderr.slice(-4096), durationMs: details.durationMs });
      throw this.killReason;
    }
    if (!ex) throw new ZygoteGoneError('the zygote went away while the job was running', details);
    let bytes = this.result.bytes();
    let tag = this.deframer ? ResultTag.Stream : bytes.length > 0 ? bytes[0] : -1;
    let body = bytes.subarray(1);
    let streamed: 'ended' | 'cut' | null = null;
    if (tag === ResultTag.Stream) {
      // A streamed result: records of Arrow bytes, then the end, or the job's error.
      let state: Deframer['state'];
      let errorFrame: Buffer | null;
      let arrow: Buffer | null = null;
      try {
        if (this.deframer) {
          state = this.deframer.state;
          errorFrame = state === 'failed' ? Buffer.concat(this.deframer.errorFrame) : null;
        } else {
          const all = Deframer.collect(body, this.c.options.maxResultBytes);
          state = all.ended ? 'ended' : all.errorFrame ? 'failed' : 'data';
          errorFrame = all.errorFrame;
          arrow = all.arrow;
        }
      } catch (e) {
        throw new InvalidOutputError(`job streamed malformed records: ${(e as Error).message}`, details);
      }
      if (errorFrame) {
        bytes = errorFrame;
        tag = bytes.length > 0 ? bytes[0] : -1;
        body = bytes.subarray(1);
      } else {
        streamed = state === 'ended' ? 'ended' : 'cut';
        if (arrow) {
          tag = ResultTag.Table;
          body = arrow;
        }
      }
    }
    if (tag === ResultTag.Error) {
      let remote;
      try {
        const e = decode(T.JobError, body);
        remote = {
          name: String(e.name).slice(0, 200),
          message: String(e.message).slice(0, 10_000),
          stack: e.stack ? String(e.stack).slice(0, 20_000) : null,
          code: e.code ? String(e.code).slice(0, 200) : null,
        };
      } catch (e) {
        throw new InvalidOutputError(`job failed and its error report is malformed: ${(e as Error).message}`, details);
      }
      if (remote.code === 'ERR_INVALID_OUTPUT') throw new InvalidOutputError(`job returned a value that cannot be sent back: ${remote.message}`, details);
      throw new JobFailedError(remote, details);
    }
    if (ex.code !== 0 || signal) {
      throw new JobCrashedError(signal ? `job was killed by ${signal}` : `job exited with code ${ex.code}`, details);
    }
    const base = {
      stdout,
      stderr,
      exitCode: ex.code,
      durationMs: details.durationMs,
      // The cgroup counts every process of the job; rusage only the first.
      cpuMs: stats?.cpuUs != null ? stats.cpuUs / 1000 : (i64(ex.userCpuUs) + i64(ex.systemCpuUs)) / 1000,
      maxRssBytes: i64(ex.maxRssKb) * 1024,
      peakMemoryBytes: stats?.peakMemoryBytes ?? null,
      preforked: this.preforked,
      timings: this.timings(now),
    };
    if (streamed === 'cut') throw new InvalidOutputError('job exited before it ended its stream of batches', details);
    if (tag === ResultTag.Stream) return base; // stream(): the batches went to the reader
    if (tag === ResultTag.Table) {
      let table: Table;
      try {
        // A stream must start with its schema; tableFromIPC would read no message as an empty table.
        const reader = RecordBatchReader.from(body);
        if (!reader.open().schema) throw new Error('no schema message');
        table = new Table(reader.readAll());
        if (table.schema.fields.length === 0 && reader.schema.fields.length !== 0) throw new Error('schema lost');
      } catch (e) {
        throw new InvalidOutputError(`job returned a malformed Arrow table: ${(e as Error).message}`, details);
      }
      return { ...base, table };
    }
    if (tag === ResultTag.Value) {
      let value: unknown;
      try {
        value = fromWire(decode(T.Value, body));
      } catch (e) {
        throw new InvalidOutputError(`job returned a malformed value: ${(e as Error).message}`, details);
      }
      return { ...base, value };
    }
    if (tag === -1) throw new InvalidOutputError('job exited with code 0 without returning a result (did it call process.exit?)', details);
    throw new InvalidOutputError(`job result starts with unknown tag ${tag}`, details);
  }

  private timings(now: bigint): RunTimings {
    const s = this.started;
    const ms = (a: bigint, b: bigint) => Math.max(0, Number(b - a) / 1e6);
    const big = (v: unknown) => BigInt(Math.round(i64(v)));
    const exited = this.exited ? big(this.exited.exitedNs) : now;
    // The child's marks come from the job's process: each is clamped between the previous one and its exit.
    const m = this.marks;
    const clamp = (v: bigint | undefined, lo: bigint) => (v === undefined || v < lo ? lo : v > exited ? exited : v);
    let received: bigint, forked: bigint, released: bigint;
    if (this.preforked) {
      received = forked = released = clamp(m?.received, this.sentAt);
    } else {
      received = s ? big(s.receivedNs) : this.sentAt;
      forked = s ? big(s.forkedNs) : received;
      released = s ? big(s.releasedNs) : forked;
    }
    const started = clamp(m?.started, released);
    const imported = clamp(m?.imported, started);
    const returned = m ? clamp(m.returned, imported) : exited;
    return {
      queueMs: ms(this.c.queuedAt, this.sentAt),
      requestMs: ms(this.sentAt, received),
      forkMs: ms(received, forked),
      cloneMs: ms(forked, released),
      runMs: ms(released, exited),
      specializeMs: ms(released, started),
      importMs: ms(started, imported),
      jobMs: ms(imported, returned),
      resultMs: ms(returned, exited),
      reapMs: ms(exited, now),
      totalMs: ms(this.sentAt, now),
    };
  }
}
