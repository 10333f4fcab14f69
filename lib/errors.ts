// Every way a run can fail, each with a stable `code` (see docs: README "Errors").
import { constants as osConstants } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** docs/troubleshooting.md of the installed package (dist/lib/errors.js lives two levels below its root). */
export const troubleshootingDoc = join(fileURLToPath(import.meta.url), '..', '..', '..', 'docs', 'troubleshooting.md');

/**
 * An option has the wrong type or value (spawner options, run options): thrown (or, from an async
 * call, rejected) before anything starts. A TypeError, as in p-queue and Node's own APIs.
 */
export class InvalidOptionError extends TypeError {
  readonly code = 'ERR_INVALID_OPTION';
  constructor(message: string) {
    super(message);
    this.name = 'InvalidOptionError';
  }
}

/** An argument of run() or stream() is wrong: the module, the job's `args`, an input table. */
export class InvalidArgumentError extends TypeError {
  readonly code = 'ERR_INVALID_ARG';
  constructor(message: string) {
    super(message);
    this.name = 'InvalidArgumentError';
  }
}

export interface RunFailureDetails {
  exitCode?: number | null;
  signal?: string | null;
  stdout?: string;
  stderr?: string;
  durationMs?: number;
  cause?: unknown;
}

export class NodespawnerError extends Error {
  readonly code: string;
  readonly exitCode: number | null;
  readonly signal: string | null;
  /** The tail of the child's stderr (at most 4 KiB). */
  readonly stderr: string;
  readonly stdout: string;
  readonly durationMs: number | null;

  /** The section of the installed package's docs/troubleshooting.md on this error (an absolute path and an anchor): cause and fix. */
  get help(): string {
    const anchors: Record<string, string> = {
      ERR_START: 'err_start-spawnerstart-failed',
      ERR_SANDBOX_SETUP: 'err_sandbox_setup-a-sandbox-step-failed',
    };
    return `${troubleshootingDoc}#${anchors[this.code] ?? this.code.toLowerCase()}`;
  }

  constructor(code: string, message: string, details: RunFailureDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = new.target.name;
    this.code = code;
    this.exitCode = details.exitCode ?? null;
    this.signal = details.signal ?? null;
    this.stderr = (details.stderr ?? '').slice(-4096);
    this.stdout = details.stdout ?? '';
    this.durationMs = details.durationMs ?? null;
  }
}

/** The zygote could not start: a preload failed, the self-test failed, the kernel lacks a feature. */
export class StartError extends NodespawnerError {
  constructor(
    message: string,
    readonly reason: string,
    details?: RunFailureDetails,
  ) {
    super('ERR_START', message, details);
  }
}

/** The job ran longer than `timeout`; it and all its descendants were killed. */
export class TimeoutError extends NodespawnerError {
  constructor(
    readonly timeout: number,
    details?: RunFailureDetails,
  ) {
    super('ERR_TIMEOUT', `job timed out after ${timeout} ms and was killed`, details);
  }
}

/** The job threw (or rejected); `remote` is what the child saw. */
export class JobFailedError extends NodespawnerError {
  constructor(
    readonly remote: { name: string; message: string; stack: string | null; code: string | null },
    details?: RunFailureDetails,
  ) {
    super('ERR_JOB_FAILED', `job failed: ${remote.name}: ${remote.message}`, details);
  }
}

/** The child exited non-zero or was killed by a signal without reporting an error. */
export class JobCrashedError extends NodespawnerError {
  constructor(message: string, details?: RunFailureDetails) {
    super('ERR_JOB_CRASHED', message, details);
  }
}

/** The child sent back something that is not a valid result. */
export class InvalidOutputError extends NodespawnerError {
  constructor(message: string, details?: RunFailureDetails) {
    super('ERR_INVALID_OUTPUT', message, details);
  }
}

/** The job (with its descendants) went over its memory limit and the kernel killed it (read from its cgroup's OOM events). */
export class OutOfMemoryError extends NodespawnerError {
  constructor(
    readonly limit: number | null,
    details?: RunFailureDetails,
  ) {
    super('ERR_OUT_OF_MEMORY', `job ran out of memory${limit === null ? '' : ` (memoryLimit ${limit} bytes)`} and was killed`, details);
  }
}

/** The child's result exceeded `maxResultBytes`; it was killed. */
export class ResultTooLargeError extends NodespawnerError {
  constructor(
    readonly limit: number,
    details?: RunFailureDetails,
  ) {
    super('ERR_RESULT_TOO_LARGE', `job result exceeded maxResultBytes (${limit} bytes); the job was killed`, details);
  }
}

/** What to check when a sandbox step fails for a reason that is about the host. */
export function setupHint(step: string): string {
  if (['clone', 'uid_map', 'gid_map', 'setgroups'].includes(step)) {
    return (
      '. This host does not let this user create user namespaces: check /proc/sys/user/max_user_namespaces ' +
      '(must be > 0), kernel.unprivileged_userns_clone (Debian/Ubuntu), kernel.apparmor_restrict_unprivileged_userns ' +
      "(Ubuntu 23.10+), and the container's seccomp profile (Docker's default blocks clone with namespace flags)"
    );
  }
  if (step === 'network stack') {
    return (
      ". sandbox.network 'egress' runs pasta (Debian package passt) or slirp4netns as the job's uid outside its namespace " +
      "(the app's own, or 65534 for a root app): that uid must be able to open /dev/net/tun (mode 0666 on most distributions), " +
      "and the app's capability bounding set must hold CAP_NET_ADMIN and CAP_SYS_ADMIN. `npx nodespawner doctor` checks both"
    );
  }
  if (step === 'firewall') {
    return (
      ". sandbox.network 'egress' loads an nftables ruleset (Debian package nftables) in the job's network namespace: the kernel needs nf_tables " +
      "(CONFIG_NF_TABLES, with inet, reject and set support), and the app's capability bounding set CAP_NET_ADMIN"
    );
  }
  return '';
}

/** The job wrote more than maxStdout / maxStderr with outputOverflow 'kill'; it was killed. */
export class OutputTooLargeError extends NodespawnerError {
  constructor(
    readonly stream: 'stdout' | 'stderr',
    readonly limit: number,
    details?: RunFailureDetails,
  ) {
    super('ERR_OUTPUT_TOO_LARGE', `job wrote more than ${limit} bytes to ${stream} and was killed (outputOverflow: 'kill')`, details);
  }
}

export const errnoNames: Record<number, string> = Object.fromEntries(Object.entries(osConstants.errno).map(([name, n]) => [n, name]));

/** A sandbox setup step failed before the job ran. */
export class SandboxSetupError extends NodespawnerError {
  /** From a failure as the native side reports it ({step, syscall, errnum, detail}). */
  static from(f: { step: string; syscall: string; errnum: number; detail?: string | null }, details?: RunFailureDetails): SandboxSetupError {
    return new SandboxSetupError(f.step, f.syscall, f.errnum, errnoNames[f.errnum] ?? `errno ${f.errnum}`, f.detail ?? '', details);
  }

  constructor(
    readonly step: string,
    readonly syscall: string,
    readonly errno: number,
    readonly errnoName: string,
    detail: string,
    details?: RunFailureDetails,
  ) {
    super('ERR_SANDBOX_SETUP', `sandbox setup failed at ${step}: ${syscall}: ${errnoName}${detail ? ` (${detail})` : ''}${setupHint(step)}`, details);
  }
}

/** The zygote died or closed its socket; in-flight jobs were lost. */
export class ZygoteGoneError extends NodespawnerError {
  constructor(message = 'the zygote process is gone', details?: RunFailureDetails) {
    super('ERR_ZYGOTE_GONE', message, details);
  }
}

/** `maxQueue` jobs were already waiting. */
export class QueueFullError extends NodespawnerError {
  constructor(readonly maxQueue: number) {
    super('ERR_QUEUE_FULL', `queue is full: ${maxQueue} jobs are already waiting (maxQueue)`);
  }
}

/** The run's AbortSignal fired; `cause` is the signal's reason. */
export class AbortError extends NodespawnerError {
  constructor(reason: unknown, details?: RunFailureDetails) {
    super('ERR_ABORTED', 'job was aborted', { ...details, cause: reason });
  }
}

/** The job module does not exist (or is not a file) where the app looked: refused before any fork. */
export class ModuleNotFoundError extends NodespawnerError {
  constructor(
    readonly modulePath: string,
    reason: string,
  ) {
    super('ERR_MODULE_NOT_FOUND', `job module ${modulePath} ${reason}`);
  }
}

/** The spawner was closed before or while the job ran. */
export class ClosedError extends NodespawnerError {
  constructor() {
    super('ERR_CLOSED', 'the spawner is closed');
  }
}

/** A TypeScript job module (`.ts`, `.mts`, `.cts`) on a Node that does not strip types. */
export class TypeScriptUnsupportedError extends NodespawnerError {
  constructor(readonly module: string) {
    super(
      'ERR_TYPESCRIPT_UNSUPPORTED',
      `job module ${module} is TypeScript, and Node ${process.version} does not run TypeScript ` +
        '(type stripping is on by default from Node 22.18 and in 24): run the app on Node 24 or 22.18+, or compile the job to JavaScript',
    );
  }
}
