// Sandbox policy for one job, decided here and executed by native/ in one ordered list:
// the clone flags, the job's ids, the filesystem plan (what is bound into the new root) and the
// Landlock rules that mirror it.
import { existsSync, realpathSync, statSync } from 'node:fs';
import { dirname, join, normalize } from 'node:path';
import { native, packageRoot } from './native.js';
import { InvalidOptionError } from './errors.js';
import { etcHosts, resolvConf } from './egress.js';
import type { ResolvedEgress } from './egress.js';
import type { NetworkMode } from './options.js';

/** The job's uid and gid inside its namespace (mapped to one unprivileged id outside). */
export const jobUid = 1000;
export const jobGid = 1000;

export const MountKind = { Bind: 1, Tmpfs: 2, Proc: 3, Device: 4, File: 5, Symlink: 6 } as const;

/**
 * Where binds that belong under the job's writable /tmp are mounted instead (each at this prefix
 * plus its host path), with a symlink at the host path: see {@link mountPlan}.
 */
export const relocatedBinds = '/.nodespawner';

export interface MountOp {
  kind: number;
  /** Host path (binds, devices); for a symlink, the link's text (a path inside the job's root). */
  source: string;
  /** Absolute path inside the job's root. */
  target: string;
  writable: boolean;
  sizeBytes: number;
  /** MountKind.File: the file's bytes. */
  content?: string;
}

export interface LandlockRule {
  path: string;
  access: number;
}

export interface SandboxPolicy {
  network: NetworkMode;
  egress: ResolvedEgress;
  dns: string[];
  hostname: string;
  tmpSize: number;
  readOnlyPaths: string[];
  writablePaths: string[];
  /** Layers, each on by default; turning one off is for tests and debugging. */
  filesystem: boolean;
  landlock: boolean;
  seccomp: boolean;
  memoryLimit: number;
  pids: number;
  cpu: number | null;
  limits: 'cgroup' | 'rlimit' | 'none';
  cgroupRoot: string | null;
}

export function cloneFlags(network: NetworkMode): number {
  const c = native.CLONE;
  return c.NEWUSER | c.NEWPID | c.NEWNS | c.NEWUTS | c.NEWIPC | c.NEWCGROUP | (network === 'host' ? 0 : c.NEWNET);
}

const devices = ['/dev/null', '/dev/zero', '/dev/random', '/dev/urandom'];

/** Directories whose whole content must not be bound for the sake of one job file in them. */
const sharedDirs = new Set(['/', '/tmp', '/var/tmp', '/dev', '/dev/shm', '/proc', '/sys', '/run', '/home', '/root']);

/**
 * Whether anyone may create entries in `dir` (a sticky /tmp, say). What such a directory holds
 * (a node_modules or package.json, or a symlink by that name to any path) is nobody's choice in
 * particular, so the plan binds nothing it finds there.
 */
function worldWritable(dir: string): boolean {
  try {
    return (statSync(dir).mode & 0o002) !== 0;
  } catch {
    return false;
  }
}

function nearestPackageJson(dir: string, untrusted: (dir: string) => boolean = worldWritable): string | null {
  for (let d = dir; ; d = dirname(d)) {
    const p = join(d, 'package.json');
    if (!untrusted(d) && existsSync(p)) return p;
    if (dirname(d) === d) return null;
  }
}

/** The directory holding a module's package.json (its package root), or the module's own directory. */
export function packageDirOf(file: string): string {
  const pkg = nearestPackageJson(dirname(file));
  return pkg && dirname(pkg) !== '/' ? dirname(pkg) : dirname(file);
}

function realpathOr(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return path; // gone: the child's bind reports it
  }
}

function isInside(path: string, dir: string): boolean {
  return path === dir || path.startsWith(dir.endsWith('/') ? dir : `${dir}/`);
}

/**
 * The job's filesystem: /proc of its own PID namespace, a size-limited writable /tmp, four device
 * nodes, and read-only binds of nodespawner itself, the preloaded packages, the job's directory,
 * the node_modules directories its imports resolve through and its package.json; plus what the
 * options add. Every bind is reachable at its host path. A job with `network` 'egress' also gets an
 * /etc/resolv.conf (sandbox.dns) and an /etc/hosts of its own, written before the binds so that a
 * bind of /etc covers them.
 *
 * A Landlock rule covers everything beneath its path, mounts included, and the job's /tmp has
 * every right. So no bind is mounted beneath /tmp: one whose host path is under /tmp (a job in a
 * temp directory, say) is mounted at {@link relocatedBinds} + its host path, and a symlink at
 * its host path in the job's /tmp leads there. Its Landlock rights are then its own (read-only:
 * no opening a host FIFO for writing), whatever the job does in /tmp.
 */
export function mountPlan(policy: SandboxPolicy, jobPath: string, preloadDirs: string[], network: NetworkMode = policy.network): MountOp[] {
  if (!policy.filesystem) return [];
  const ops: MountOp[] = [
    { kind: MountKind.Proc, source: '', target: '/proc', writable: false, sizeBytes: 0 },
    { kind: MountKind.Tmpfs, source: '', target: '/tmp', writable: true, sizeBytes: policy.tmpSize },
    ...devices.map((d) => ({ kind: MountKind.Device, source: d, target: d, writable: true, sizeBytes: 0 })),
  ];
  if (network === 'egress') {
    ops.push(
      { kind: MountKind.File, source: '', target: '/etc/resolv.conf', writable: false, sizeBytes: 0, content: resolvConf(policy.dns) },
      { kind: MountKind.File, source: '', target: '/etc/hosts', writable: false, sizeBytes: 0, content: etcHosts(policy.hostname) },
    );
  }
  // Nothing is bound from inside a writable path: a job could have left a symlink there, by any
  // name, to any host path, for the next job's plan to follow (what is there is in every job's
  // root anyway, writable, through the writable bind). Nor does the plan bind what it finds
  // (node_modules, package.json) in a directory anyone may write.
  const inWritable = (d: string) => policy.writablePaths.some((w) => isInside(d, w));
  const untrusted = (d: string) => inWritable(d) || worldWritable(d);
  const binds: Array<{ path: string; writable: boolean }> = [];
  const add = (path: string, writable: boolean) => {
    if (!writable && inWritable(path)) return;
    if (binds.some((b) => b.writable === writable && isInside(path, b.path))) return;
    binds.push({ path, writable });
  };
  add(packageRoot, false);
  for (const d of preloadDirs) add(d, false);
  const jobDir = dirname(jobPath);
  add(sharedDirs.has(jobDir) ? jobPath : jobDir, false);
  for (let d = jobDir; ; d = dirname(d)) {
    const nm = join(d, 'node_modules');
    if (!untrusted(d) && existsSync(nm)) add(nm, false);
    if (dirname(d) === d) break;
  }
  const pkg = nearestPackageJson(jobDir, untrusted);
  if (pkg) add(pkg, false);
  for (const p of policy.readOnlyPaths) add(p, false);
  for (const p of policy.writablePaths) add(p, true);
  // Parents before children, so that a nested bind lands inside its parent's bind.
  binds.sort((a, b) => a.path.length - b.path.length);
  const links: MountOp[] = [];
  for (const b of binds) {
    const relocate = b.path !== '/tmp' && isInside(b.path, '/tmp');
    const target = relocate ? relocatedBinds + b.path : b.path;
    // The source without symlinks: the child resolves it under the staging root, where an
    // absolute symlink would point elsewhere. The job still finds it at the path it was given.
    ops.push({ kind: MountKind.Bind, source: realpathOr(b.path), target, writable: b.writable, sizeBytes: 0 });
    // One link per outermost relocated bind; a nested one is reached through its parent's.
    const nested = binds.some((p) => p !== b && p.path.length < b.path.length && isInside(b.path, p.path));
    if (relocate && !nested) links.push({ kind: MountKind.Symlink, source: target, target: b.path, writable: false, sizeBytes: 0 });
  }
  return [...ops, ...links];
}

// Landlock access rights (linux/landlock.h), by ABI.
const LL = {
  EXECUTE: 1 << 0,
  WRITE_FILE: 1 << 1,
  READ_FILE: 1 << 2,
  READ_DIR: 1 << 3,
  TRUNCATE: 1 << 14,
  IOCTL_DEV: 1 << 15,
};

/** Landlock scopes (ABI 6): IPC the domain may not start with processes outside it. */
export const LandlockScope = { AbstractUnixSocket: 1 << 0, Signal: 1 << 1 } as const;

export function landlockHandled(abi: number): number {
  if (abi >= 5) return (1 << 16) - 1;
  if (abi >= 3) return (1 << 15) - 1;
  if (abi === 2) return (1 << 14) - 1;
  if (abi === 1) return (1 << 13) - 1;
  return 0;
}

/**
 * Landlock rules mirroring the mount plan: read where binds are read-only, all rights where
 * writable (symlinks get none: what they lead to has its own rule). For a bound file the child
 * keeps only the file rights among them (native/landlock.cc). From ABI 6 the job is also scoped:
 * it can neither connect to an abstract unix socket nor signal a process outside its domain.
 * `onHost`: the mount layer is off, so the rules name the binds' host paths.
 */
export function landlockRules(mounts: MountOp[], abi: number, onHost = false): { handled: number; scoped: number; rules: LandlockRule[] } {
  const handled = landlockHandled(abi);
  if (handled === 0) return { handled: 0, scoped: 0, rules: [] };
  const read = LL.READ_FILE | LL.READ_DIR;
  const device = LL.READ_FILE | LL.WRITE_FILE | LL.TRUNCATE | LL.IOCTL_DEV;
  const rules: LandlockRule[] = [{ path: '/', access: LL.READ_DIR }];
  for (const m of mounts) {
    if (m.kind === MountKind.Symlink) continue;
    const access = m.kind === MountKind.Device ? device : m.writable ? handled : read;
    rules.push({ path: onHost && m.kind === MountKind.Bind ? m.source : m.target, access: access & handled });
  }
  const scoped = abi >= 6 ? LandlockScope.AbstractUnixSocket | LandlockScope.Signal : 0;
  return { handled, scoped, rules };
}

/**
 * Whether a path given in options is an existing absolute path (binds of missing paths fail the
 * job) that the job's own root leaves to binds: not `/`, the job's `/tmp` or `/proc` (a bind
 * there would hide them, and take the job's every right on `/tmp`), nor where relocated binds go.
 */
export function checkBindable(name: string, path: unknown): string {
  if (typeof path !== 'string' || !path.startsWith('/')) throw new InvalidOptionError(`Expected \`${name}\` to hold absolute paths, got \`${String(path)}\``);
  const normal = normalize(path).replace(/(.)\/$/, '$1');
  if (normal === '/' || normal === '/tmp' || isInside(normal, '/proc') || isInside(normal, relocatedBinds)) {
    throw new InvalidOptionError(`Expected \`${name}\` to hold paths other than /, /tmp, /proc and ${relocatedBinds} (each job has its own), got \`${path}\``);
  }
  try {
    statSync(path);
  } catch (e) {
    throw new InvalidOptionError(`Expected \`${name}\` to hold existing paths: ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  return path;
}

/**
 * The first directory on the way to `path` (itself included) that the given ids cannot search by
 * its mode bits, or null. Jobs have no supplementary groups. ACLs are not read, so this only
 * explains a failure; it does not predict one.
 */
export function unsearchableDir(path: string, uid: number, gid: number): { dir: string; mode: number; uid: number; gid: number } | null {
  const parts = path.split('/').filter(Boolean);
  for (let i = 0; i <= parts.length; i++) {
    const dir = `/${parts.slice(0, i).join('/')}`;
    let st;
    try {
      st = statSync(dir);
    } catch {
      return null;
    }
    const bit = st.uid === uid ? 0o100 : st.gid === gid ? 0o010 : 0o001;
    if (uid !== 0 && (st.mode & bit) === 0) return { dir, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid };
  }
  return null;
}
