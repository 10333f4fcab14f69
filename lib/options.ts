// Options, their defaults, and validation. One error shape throughout:
//   Expected `timeout` to be a positive finite number, got `-1` (number)
import { statSync, statfsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import type { Table } from 'apache-arrow';
import { checkBindable } from './sandbox.js';
import type { SandboxPolicy } from './sandbox.js';
import type { Limits } from './cgroups.js';
import { InvalidOptionError } from './errors.js';
import { resolveDns, resolveEgress } from './egress.js';
import type { EgressOptions } from './egress.js';

/**
 * 'none': a network namespace of the job's own with nothing in it (a loopback that is down).
 * 'egress': public addresses through a userspace network stack (pasta or slirp4netns), with a
 * firewall in the job's namespace that refuses loopback, private, link-local, metadata and special
 * addresses and the host's own (docs/security-model.md). 'host': the host's network, loopback
 * services and all: no network isolation.
 */
export type NetworkMode = 'none' | 'egress' | 'host';

export interface SandboxOptions {
  /** The job's network (see {@link NetworkMode}); a run's `network` option overrides it. @default 'none' */
  network?: NetworkMode;
  /** What 'egress' jobs may reach beyond the defaults, and which stack links them. */
  egress?: EgressOptions;
  /** Resolvers in an 'egress' job's /etc/resolv.conf (1 to 3 addresses). @default ['1.1.1.1', '8.8.8.8', '2606:4700:4700::1111'] */
  dns?: string[];
  /**
   * Hostname inside the job's UTS namespace.
   * @default 'nodespawner'
   */
  hostname?: string;
  /**
   * Size limit of the job's writable /tmp (a tmpfs), in bytes.
   * @default 64 MiB
   */
  tmpSize?: number;
  /** Host paths (absolute, existing) bound read-only into every job's root at the same path. @default [] */
  readOnlyPaths?: string[];
  /** Host paths (absolute, existing) bound writable into every job's root at the same path. @default [] */
  writablePaths?: string[];
  /**
   * Give each job its own root (tmpfs + pivot_root) holding only what it needs. Turning a layer
   * off weakens the sandbox: it is for tests and debugging.
   * @default true
   */
  filesystem?: boolean;
  /** Landlock as a second filesystem layer, where the kernel has it. @default true */
  landlock?: boolean;
  /** The seccomp syscall filter. @default true */
  seccomp?: boolean;
  /**
   * Memory (bytes) for a job and all its descendants, enforced by its cgroup; an overrun kills the
   * job with ERR_OUT_OF_MEMORY.
   * @default 512 MiB
   */
  memoryLimit?: number;
  /** Processes and threads a job may have at once (its cgroup's pids.max). @default 128 */
  pids?: number;
  /** CPU quota in CPUs (0.5 = half of one CPU); `null` for none. @default null */
  cpu?: number | null;
  /**
   * How limits are enforced: 'cgroup' (v2 or v1, detected; start fails, saying what to configure,
   * where neither is usable), 'rlimit' (the weaker fallback: RLIMIT_DATA and RLIMIT_NPROC, no
   * CPU quota, no OOM report), or 'none'.
   * @default process.env.NODESPAWNER_LIMITS ?? 'cgroup'
   */
  limits?: 'cgroup' | 'rlimit' | 'none';
  /** A delegated cgroup v2 directory for job cgroups (systemd: Delegate=yes). @default the app's own cgroup */
  cgroupRoot?: string;
}

export interface SpawnerOptions {
  /** Modules imported once in the zygote (package names or absolute paths); apache-arrow and thrift always are. @default [] */
  preload?: string[];
  /** Directory that bare preload names resolve from. @default process.cwd() */
  preloadBase?: string;
  /** Jobs running at once. @default os.availableParallelism() */
  concurrency?: number;
  /** Jobs waiting at most; one more rejects with QueueFullError. @default Infinity */
  maxQueue?: number;
  /** Default wall-clock limit per job, in ms (queue time excluded). @default 30_000 */
  timeout?: number;
  /** Bytes of stdout / stderr kept per job; the rest is counted and dropped. @default 1 MiB */
  maxStdout?: number;
  maxStderr?: number;
  /** Bytes of result a job may send; more kills it. @default 64 MiB */
  maxResultBytes?: number;
  /**
   * What happens when a job writes more than maxStdout / maxStderr: 'truncate' keeps the first
   * bytes and lets the job run on (the rest is read and dropped); 'kill' ends it with ERR_OUTPUT_TOO_LARGE.
   * @default 'truncate'
   */
  outputOverflow?: 'truncate' | 'kill';
  sandbox?: SandboxOptions;
  /** The zygote's environment (jobs inherit it). The zygote holds no secrets: empty by default. @default {} */
  env?: Record<string, string>;
  /**
   * Children kept forked, sandboxed and with the job module imported, ready for the next run of a
   * module that has run before with the same output and limit options (the 8 most recent such
   * modules). A run that finds one skips the fork, the sandbox set-up and the import. The module's
   * top level therefore runs before its run is assigned, in the same sandbox. 0 turns this off.
   * A module whose preforked child ends before it gets a run (a top level that throws later, or one
   * that is not ready within `timeout`) is not preforked again.
   * @default the concurrency, at most 4
   */
  prefork?: number;
  /** ms a module's preforked children wait without a run before they end. @default 30_000 */
  preforkIdleTimeout?: number;
  /** ms to wait for the zygote to preload, self-test and report ready. @default 60_000 */
  startTimeout?: number;
  /** Fork a self-test child before serving and refuse to start if it fails. @default true */
  selfTest?: boolean;
  /**
   * Start the zygote with its heap arena (native/arena.c, through LD_PRELOAD): V8's heap pages in
   * one contiguous range, whose resident parts (and those of malloc's large allocations) become
   * transparent huge pages before the zygote serves. Every job forks the zygote, and this makes
   * each fork copy far fewer page table entries (docs/performance.md). Off, V8 maps its pages
   * where it likes. Jobs behave the same either way.
   * @default true
   */
  heapArena?: boolean;
}

export interface RunOptions {
  /** Wall-clock limit in ms, from the request to the child's exit. @default the spawner's `timeout` */
  timeout?: number;
  /** Cancels a queued job without starting it, or kills a running one. */
  signal?: AbortSignal;
  /** Arrow tables for the job, as `ctx.inputs.<name>`. */
  inputs?: Record<string, Table>;
  maxStdout?: number;
  maxStderr?: number;
  maxResultBytes?: number;
  outputOverflow?: 'truncate' | 'kill';
  /** Overrides `sandbox.memoryLimit` for this job. */
  memoryLimit?: number;
  /** Overrides `sandbox.pids` for this job. */
  pids?: number;
  /** Overrides `sandbox.cpu` for this job. */
  cpu?: number | null;
  /** Overrides `sandbox.network` for this job. */
  network?: NetworkMode;
}

export interface ResolvedSpawnerOptions {
  preload: string[];
  preloadBase: string;
  concurrency: number;
  maxQueue: number;
  timeout: number;
  maxStdout: number;
  maxStderr: number;
  maxResultBytes: number;
  outputOverflow: 'truncate' | 'kill';
  sandbox: SandboxPolicy;
  env: Record<string, string>;
  startTimeout: number;
  selfTest: boolean;
  heapArena: boolean;
  prefork: number;
  preforkIdleTimeout: number;
}

function show(x: unknown): string {
  let s: string;
  try {
    s = typeof x === 'bigint' ? `${x}n` : typeof x === 'string' || typeof x === 'number' ? String(x) : (JSON.stringify(x) ?? String(x));
  } catch {
    s = String(x);
  }
  return `\`${s}\` (${x === null ? 'null' : Array.isArray(x) ? 'array' : typeof x})`;
}

/** An InvalidOptionError (a TypeError with code ERR_INVALID_OPTION) in the one message shape. */
export function expected(name: string, what: string, got: unknown): InvalidOptionError {
  return new InvalidOptionError(expectedMessage(name, what, got));
}

export function expectedMessage(name: string, what: string, got: unknown): string {
  return `Expected \`${name}\` to be ${what}, got ${show(got)}`;
}

const networkModes: readonly NetworkMode[] = ['none', 'egress', 'host'];

/**
 * `sandbox.network` or a run's `network`. The booleans of earlier versions are refused with a
 * message that says what each became: `true` gave jobs the host's network, unisolated, which a
 * boolean did not make plain.
 */
function network(name: string, v: unknown, fallback: NetworkMode): NetworkMode {
  if (v === undefined) return fallback;
  if (typeof v === 'boolean') {
    const now = v ? "'host' (the host's network, no isolation) or 'egress'" : "'none'";
    throw new InvalidOptionError(`${expectedMessage(name, "'none', 'egress' or 'host'", v)}; \`${v}\` is now ${now}`);
  }
  if (!networkModes.includes(v as NetworkMode)) throw expected(name, "'none', 'egress' or 'host'", v);
  return v as NetworkMode;
}

function positive(name: string, v: unknown, fallback: number, allowInfinity = false): number {
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || Number.isNaN(v) || v <= 0 || (!allowInfinity && !Number.isFinite(v))) {
    throw expected(name, allowInfinity ? 'a positive number or Infinity' : 'a positive finite number', v);
  }
  return v;
}

function integer(name: string, v: unknown, fallback: number, allowInfinity = false): number {
  const n = positive(name, v, fallback, allowInfinity);
  if (Number.isFinite(n) && !Number.isInteger(n)) throw expected(name, 'a positive integer', v);
  return n;
}

function nonNegativeInteger(name: string, v: unknown, fallback: number): number {
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw expected(name, 'a non-negative integer (0 turns it off)', v);
  return v;
}

function overflow(name: string, v: unknown, fallback: 'truncate' | 'kill'): 'truncate' | 'kill' {
  if (v === undefined) return fallback;
  if (v !== 'truncate' && v !== 'kill') throw expected(name, "'truncate' or 'kill'", v);
  return v;
}

function onlyKeys(name: string, o: object, keys: string[]): void {
  for (const k of Object.keys(o)) {
    if (!keys.includes(k)) throw new InvalidOptionError(`Unknown option \`${name}${k}\`; known options are ${keys.join(', ')}`);
  }
}

const cgroup2Magic = 0x63677270;

/** `sandbox.cgroupRoot` must be a directory of a cgroup v2 hierarchy: job cgroups go there and nowhere else. */
function checkCgroupRoot(root: unknown): void {
  const what = 'a directory in a cgroup v2 hierarchy (a delegated subtree, such as /sys/fs/cgroup/app.slice/app.service)';
  if (typeof root !== 'string' || !root.startsWith('/')) throw expected('sandbox.cgroupRoot', what, root);
  let why: string | null = null;
  try {
    if (!statSync(root).isDirectory()) why = 'not a directory';
    else if (statfsSync(root).type !== cgroup2Magic) why = 'not in a cgroup2 file system';
  } catch (e) {
    why = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
  }
  if (why !== null) throw new InvalidOptionError(`${expectedMessage('sandbox.cgroupRoot', what, root)}: ${why}`);
}

const hostnamePattern = /^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$/;

export function resolveSpawnerOptions(o: SpawnerOptions = {}): ResolvedSpawnerOptions {
  if (typeof o !== 'object' || o === null) throw expected('options', 'an object', o);
  onlyKeys('', o, [
    'preload',
    'preloadBase',
    'concurrency',
    'maxQueue',
    'timeout',
    'maxStdout',
    'maxStderr',
    'maxResultBytes',
    'outputOverflow',
    'sandbox',
    'env',
    'startTimeout',
    'selfTest',
    'heapArena',
    'prefork',
    'preforkIdleTimeout',
  ]);
  const preload = o.preload ?? [];
  if (!Array.isArray(preload) || preload.some((p) => typeof p !== 'string' || p === ''))
    throw expected('preload', 'an array of module names or absolute paths', preload);
  for (const p of preload) {
    if (p.startsWith('.')) throw expected('preload', 'package names or absolute paths, not relative paths', p);
  }
  const sandbox = o.sandbox ?? {};
  if (typeof sandbox !== 'object' || sandbox === null) throw expected('sandbox', 'an object', sandbox);
  onlyKeys('sandbox.', sandbox, [
    'network',
    'egress',
    'dns',
    'hostname',
    'tmpSize',
    'readOnlyPaths',
    'writablePaths',
    'filesystem',
    'landlock',
    'seccomp',
    'memoryLimit',
    'pids',
    'cpu',
    'limits',
    'cgroupRoot',
  ]);
  const limits = sandbox.limits ?? (process.env.NODESPAWNER_LIMITS as SandboxOptions['limits']) ?? 'cgroup';
  if (!['cgroup', 'rlimit', 'none'].includes(limits as string)) throw expected('sandbox.limits', "'cgroup', 'rlimit' or 'none'", limits);
  if (sandbox.cgroupRoot !== undefined) checkCgroupRoot(sandbox.cgroupRoot);
  for (const k of ['filesystem', 'landlock', 'seccomp'] as const) {
    if (sandbox[k] !== undefined && typeof sandbox[k] !== 'boolean') throw expected(`sandbox.${k}`, 'a boolean', sandbox[k]);
  }
  const paths = (name: 'readOnlyPaths' | 'writablePaths') => {
    const v = sandbox[name] ?? [];
    if (!Array.isArray(v)) throw expected(`sandbox.${name}`, 'an array of absolute paths', v);
    return v.map((p) => checkBindable(`sandbox.${name}`, p));
  };
  const writablePaths = paths('writablePaths');
  const readOnlyPaths = paths('readOnlyPaths');
  for (const p of readOnlyPaths) {
    const w = writablePaths.find((d) => p === d || p.startsWith(d.endsWith('/') ? d : `${d}/`));
    if (w !== undefined)
      throw expected('sandbox.readOnlyPaths', `outside sandbox.writablePaths (jobs can write ${w}, so nothing in it is read-only to them)`, p);
  }
  const hostname = sandbox.hostname ?? 'nodespawner';
  if (typeof hostname !== 'string' || !hostnamePattern.test(hostname))
    throw expected('sandbox.hostname', 'a hostname of 1 to 63 letters, digits and hyphens', hostname);
  const env = o.env ?? {};
  if (typeof env !== 'object' || env === null || Object.values(env).some((v) => typeof v !== 'string')) throw expected('env', 'an object of strings', env);
  if (o.selfTest !== undefined && typeof o.selfTest !== 'boolean') throw expected('selfTest', 'a boolean', o.selfTest);
  if (o.heapArena !== undefined && typeof o.heapArena !== 'boolean') throw expected('heapArena', 'a boolean', o.heapArena);
  const preloadBase = o.preloadBase ?? process.cwd();
  const concurrency = integer('concurrency', o.concurrency, availableParallelism());
  const prefork = nonNegativeInteger('prefork', o.prefork, Math.min(concurrency, 4));
  if (typeof preloadBase !== 'string' || !preloadBase.startsWith('/')) throw expected('preloadBase', 'an absolute path', preloadBase);
  return {
    preload,
    preloadBase,
    concurrency,
    maxQueue: integer('maxQueue', o.maxQueue, Infinity, true),
    timeout: positive('timeout', o.timeout, 30_000),
    maxStdout: integer('maxStdout', o.maxStdout, 2 ** 20),
    maxStderr: integer('maxStderr', o.maxStderr, 2 ** 20),
    maxResultBytes: integer('maxResultBytes', o.maxResultBytes, 64 * 2 ** 20),
    outputOverflow: overflow('outputOverflow', o.outputOverflow, 'truncate'),
    sandbox: {
      network: network('sandbox.network', sandbox.network, 'none'),
      egress: resolveEgress(sandbox.egress),
      dns: resolveDns(sandbox.dns),
      hostname,
      tmpSize: integer('sandbox.tmpSize', sandbox.tmpSize, 64 * 2 ** 20),
      readOnlyPaths,
      writablePaths,
      filesystem: sandbox.filesystem ?? true,
      landlock: sandbox.landlock ?? true,
      seccomp: sandbox.seccomp ?? true,
      memoryLimit: integer('sandbox.memoryLimit', sandbox.memoryLimit, 512 * 2 ** 20),
      pids: integer('sandbox.pids', sandbox.pids, 128),
      cpu: sandbox.cpu === null || sandbox.cpu === undefined ? null : positive('sandbox.cpu', sandbox.cpu, 1),
      limits,
      cgroupRoot: sandbox.cgroupRoot ?? null,
    },
    env: { ...env },
    startTimeout: positive('startTimeout', o.startTimeout, 60_000),
    selfTest: o.selfTest ?? true,
    heapArena: o.heapArena ?? true,
    prefork,
    preforkIdleTimeout: positive('preforkIdleTimeout', o.preforkIdleTimeout, 30_000),
  };
}

export interface ResolvedRunOptions {
  timeout: number;
  signal: AbortSignal | undefined;
  inputs: Record<string, Table>;
  maxStdout: number;
  maxStderr: number;
  maxResultBytes: number;
  outputOverflow: 'truncate' | 'kill';
  limits: Limits;
  network: NetworkMode;
}

export function resolveRunOptions(o: RunOptions = {}, d: ResolvedSpawnerOptions): ResolvedRunOptions {
  if (typeof o !== 'object' || o === null) throw expected('options', 'an object', o);
  onlyKeys('', o, ['timeout', 'signal', 'inputs', 'maxStdout', 'maxStderr', 'maxResultBytes', 'outputOverflow', 'memoryLimit', 'pids', 'cpu', 'network']);
  if (o.signal !== undefined && !(o.signal instanceof AbortSignal)) throw expected('signal', 'an AbortSignal', o.signal);
  const inputs = o.inputs ?? {};
  if (typeof inputs !== 'object' || inputs === null || Array.isArray(inputs)) throw expected('inputs', 'an object of apache-arrow Tables', inputs);
  return {
    timeout: positive('timeout', o.timeout, d.timeout),
    signal: o.signal,
    inputs,
    maxStdout: integer('maxStdout', o.maxStdout, d.maxStdout),
    maxStderr: integer('maxStderr', o.maxStderr, d.maxStderr),
    maxResultBytes: integer('maxResultBytes', o.maxResultBytes, d.maxResultBytes),
    outputOverflow: overflow('outputOverflow', o.outputOverflow, d.outputOverflow),
    limits: {
      memoryLimit: integer('memoryLimit', o.memoryLimit, d.sandbox.memoryLimit),
      pids: integer('pids', o.pids, d.sandbox.pids),
      cpu: o.cpu === null ? null : o.cpu === undefined ? d.sandbox.cpu : positive('cpu', o.cpu, 1),
    },
    network: network('network', o.network, d.sandbox.network),
  };
}
