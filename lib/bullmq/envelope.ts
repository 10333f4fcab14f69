// A run's outcome as it crosses from a worker to a RemoteSpawner (RemoteReply in
// thrift/nodespawner.thrift): a RunResult, or the fields that rebuild the same typed error.
import { tableFromIPC } from 'apache-arrow';
import {
  AbortError,
  ClosedError,
  InvalidOutputError,
  JobCrashedError,
  JobFailedError,
  NodespawnerError,
  OutOfMemoryError,
  OutputTooLargeError,
  QueueFullError,
  ResultTooLargeError,
  SandboxSetupError,
  StartError,
  TimeoutError,
  ZygoteGoneError,
} from '../errors.js';
import type { RunFailureDetails } from '../errors.js';
import type { RunResult, RunTimings } from '../job.js';
import { T, decode, fromWire, i64 } from '../wire.js';
import type { Blob, RemoteError, RemoteResult } from '../wire.js';
import { ArgsTooLargeError, QueueUnavailableError, ResultStoreError, UnknownJobError, WorkerError } from './errors.js';

/** A worker's error as it travels. Errors that are not a NodespawnerError become ERR_WORKER. */
export function toRemoteError(e: unknown): RemoteError {
  if (!(e instanceof NodespawnerError)) e = new WorkerError(`the worker failed: ${(e as Error)?.message ?? String(e)}`);
  const err = e as NodespawnerError;
  const out: RemoteError = {
    code: err.code,
    message: err.message,
    exitCode: err.exitCode,
    signal: err.signal,
    stdout: err.stdout,
    stderr: err.stderr,
    durationMs: err.durationMs,
  };
  if (err instanceof TimeoutError) out.limit = err.timeout;
  else if (err instanceof OutOfMemoryError) out.limit = err.limit;
  else if (err instanceof ResultTooLargeError || err instanceof ArgsTooLargeError) out.limit = err.limit;
  else if (err instanceof QueueFullError) out.limit = err.maxQueue;
  else if (err instanceof OutputTooLargeError) Object.assign(out, { limit: err.limit, detail: err.stream });
  else if (err instanceof StartError) out.detail = err.reason;
  else if (err instanceof UnknownJobError) out.detail = err.jobName;
  else if (err instanceof JobFailedError) out.remote = new T.JobError(err.remote);
  else if (err instanceof SandboxSetupError) out.setup = new T.SetupFailed({ step: err.step, syscall: err.syscall, errnum: err.errno });
  return out;
}

/** Rebuilds the error a worker sent: the same class, code, fields and message. */
export function fromRemoteError(r: RemoteError): NodespawnerError {
  const d: RunFailureDetails = { exitCode: r.exitCode, signal: r.signal, stdout: r.stdout, stderr: r.stderr, durationMs: r.durationMs ?? undefined };
  const limit = r.limit == null ? null : i64(r.limit);
  let e: NodespawnerError;
  switch (r.code) {
    case 'ERR_TIMEOUT':
      e = new TimeoutError(limit ?? 0, d);
      break;
    case 'ERR_JOB_FAILED':
      e = new JobFailedError(
        { name: r.remote?.name ?? 'Error', message: r.remote?.message ?? '', stack: r.remote?.stack ?? null, code: r.remote?.code ?? null },
        d,
      );
      break;
    case 'ERR_JOB_CRASHED':
      e = new JobCrashedError(r.message, d);
      break;
    case 'ERR_INVALID_OUTPUT':
      e = new InvalidOutputError(r.message, d);
      break;
    case 'ERR_OUT_OF_MEMORY':
      e = new OutOfMemoryError(limit, d);
      break;
    case 'ERR_RESULT_TOO_LARGE':
      e = new ResultTooLargeError(limit ?? 0, d);
      break;
    case 'ERR_OUTPUT_TOO_LARGE':
      e = new OutputTooLargeError(r.detail === 'stderr' ? 'stderr' : 'stdout', limit ?? 0, d);
      break;
    case 'ERR_SANDBOX_SETUP':
      e = SandboxSetupError.from(r.setup ?? { step: 'unknown', syscall: 'unknown', errnum: 0 }, d);
      break;
    case 'ERR_ZYGOTE_GONE':
      e = new ZygoteGoneError(r.message, d);
      break;
    case 'ERR_QUEUE_FULL':
      e = new QueueFullError(limit ?? 0);
      break;
    case 'ERR_ABORTED':
      e = new AbortError(undefined, d);
      break;
    case 'ERR_CLOSED':
      e = new ClosedError();
      break;
    case 'ERR_START':
      e = new StartError(r.message, r.detail ?? 'unknown', d);
      break;
    case 'ERR_UNKNOWN_JOB':
      e = new UnknownJobError(r.detail ?? '', d);
      break;
    case 'ERR_ARGS_TOO_LARGE':
      e = new ArgsTooLargeError(0, limit ?? 0);
      break;
    case 'ERR_QUEUE_UNAVAILABLE':
      e = new QueueUnavailableError(r.message);
      break;
    case 'ERR_RESULT_STORE':
      e = new ResultStoreError(r.message);
      break;
    case 'ERR_WORKER':
      e = new WorkerError(r.message);
      break;
    default:
      e = new NodespawnerError(r.code, r.message, d);
  }
  e.message = r.message;
  return e;
}

const timingKeys = ['queueMs', 'requestMs', 'forkMs', 'cloneMs', 'runMs', 'specializeMs', 'importMs', 'jobMs', 'resultMs', 'reapMs', 'totalMs'] as const;

/** A RunResult as it travels, its table or value already placed in `body`. */
export function toRemoteResult(r: RunResult, body: Blob): RemoteResult {
  return {
    table: r.table ? body : null,
    value: r.table ? null : body,
    stdout: r.stdout,
    stderr: r.stderr,
    exitCode: r.exitCode,
    durationMs: r.durationMs,
    cpuMs: r.cpuMs,
    maxRssBytes: r.maxRssBytes,
    peakMemoryBytes: r.peakMemoryBytes,
    preforked: r.preforked,
    timings: new T.RemoteTimings(Object.fromEntries(timingKeys.map((k) => [k, r.timings[k]]))),
  };
}

/**
 * The RunResult on the RemoteSpawner's side. `elapsedMs` is run() to now here: what the worker did
 * not time (the queue, the transfers) becomes queueMs.
 */
export function fromRemoteResult(r: RemoteResult, body: Uint8Array, elapsedMs: number): RunResult {
  const timings = Object.fromEntries(timingKeys.map((k) => [k, Number(r.timings[k])])) as unknown as RunTimings;
  timings.queueMs = Math.max(0, elapsedMs - timings.totalMs);
  const out: RunResult = {
    stdout: r.stdout,
    stderr: r.stderr,
    exitCode: r.exitCode,
    durationMs: r.durationMs,
    cpuMs: r.cpuMs,
    maxRssBytes: i64(r.maxRssBytes),
    peakMemoryBytes: r.peakMemoryBytes == null ? null : i64(r.peakMemoryBytes),
    preforked: r.preforked,
    timings,
  };
  if (r.table) out.table = tableFromIPC(body);
  else out.value = fromWire(decode(T.Value, body));
  return out;
}
