// The ways a remote run fails that a local one cannot, each with its `code`
// (docs/troubleshooting.md, "Errors of a remote run").
import { NodespawnerError } from '../errors.js';
import type { RunFailureDetails } from '../errors.js';

/** The queued job names no job the worker registered (startWorker's `jobs`). */
export class UnknownJobError extends NodespawnerError {
  constructor(
    readonly jobName: string,
    details?: RunFailureDetails,
  ) {
    super('ERR_UNKNOWN_JOB', `no job named \`${jobName}\` is registered with the worker (startWorker's \`jobs\`)`, details);
  }
}

/** The run's arguments, Thrift-encoded, are larger than `results.maxArgsBytes`; nothing was queued. */
export class ArgsTooLargeError extends NodespawnerError {
  constructor(
    readonly size: number,
    readonly limit: number,
  ) {
    super('ERR_ARGS_TOO_LARGE', `the job's arguments take ${size} bytes, over the limit of ${limit} (results.maxArgsBytes); pass large data as an Arrow input`);
  }
}

/** Redis could not be reached, or the connection was lost while the run was being queued. */
export class QueueUnavailableError extends NodespawnerError {
  constructor(message: string, cause?: unknown) {
    super('ERR_QUEUE_UNAVAILABLE', message, { cause });
  }
}

/** An input or result in the result store (or in Redis) could not be written or read: missing store, expired, or the store failed. */
export class ResultStoreError extends NodespawnerError {
  constructor(message: string, cause?: unknown) {
    super('ERR_RESULT_STORE', message, cause === undefined ? {} : { cause });
  }
}

/**
 * The worker could not finish the job for a reason that is not the job's: workers died while running
 * it more often than BullMQ's `maxStalledCount` allows, or the worker failed unexpectedly (the
 * message says how).
 */
export class WorkerError extends NodespawnerError {
  constructor(message: string) {
    super('ERR_WORKER', message);
  }
}
