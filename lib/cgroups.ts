// Per-job resource limits with cgroups: which version this host offers, where the app may create
// job cgroups, and the directories, writes and stat files for one job. The native intermediate
// process only executes the plan (native/cgroups.cc).
import fs from 'node:fs';
import { join } from 'node:path';

export interface Limits {
  /** Bytes of memory for the job and all its descendants (page cache and kernel memory included). */
  memoryLimit: number | null;
  /** Processes and threads at most. */
  pids: number | null;
  /** CPUs' worth of time per period (0.5 = half a CPU), or null for no quota. */
  cpu: number | null;
}

export interface CgroupPlan {
  cgroupDirs: string[];
  cgroupWrites: Array<{ path: string; value: string }>;
  cgroupProcs: string[];
  cgroupStats: string[];
}

export interface CgroupStats {
  peakMemoryBytes: number | null;
  oomKills: number;
  cpuUs: number | null;
}

export type CgroupSupport =
  | { version: 1; parents: { memory: string; pids: string; cpu: string | null; cpuacct: string | null } }
  | { version: 2; parent: string }
  | { version: 0; reason: string };

const cpuPeriodUs = 100_000;

interface Hierarchy {
  controllers: string[];
  path: string;
}

/** /proc/self/cgroup: the app's cgroup in each hierarchy. */
function ownCgroups(): Hierarchy[] {
  return fs
    .readFileSync('/proc/self/cgroup', 'utf8')
    .trim()
    .split('\n')
    .map((line) => {
      const [, , controllers, path] = /^(\d+):([^:]*):(.*)$/.exec(line) ?? [];
      return { controllers: controllers ? controllers.split(',') : [], path: path ?? '/' };
    });
}

/** cgroup mounts from /proc/self/mountinfo: mount point and, for v1, its controllers. */
function cgroupMounts(): Array<{ point: string; version: 1 | 2; controllers: string[] }> {
  const out: Array<{ point: string; version: 1 | 2; controllers: string[] }> = [];
  for (const line of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const [left, right] = line.split(' - ');
    if (!right) continue;
    const [fstype, , superOptions] = right.split(' ');
    const point = left.split(' ')[4];
    if (fstype === 'cgroup2') out.push({ point, version: 2, controllers: [] });
    if (fstype === 'cgroup') out.push({ point, version: 1, controllers: (superOptions ?? '').split(',') });
  }
  return out;
}

function writableDir(dir: string): boolean {
  try {
    fs.accessSync(dir, fs.constants.W_OK | fs.constants.X_OK);
    return fs.statSync(dir).isDirectory();
  } catch {
    return false;
  }
}

/**
 * Finds where this app may create job cgroups. `tag` names the spawner's own parent cgroup
 * (one per zygote). `v2Root` is a delegated cgroup v2 directory given by the user.
 */
export function detectCgroups(tag: string, v2Root: string | null): CgroupSupport {
  let mounts: ReturnType<typeof cgroupMounts>;
  let own: Hierarchy[];
  try {
    mounts = cgroupMounts();
    own = ownCgroups();
  } catch (e) {
    return { version: 0, reason: `cannot read /proc/self/cgroup or mountinfo: ${(e as Error).message}` };
  }
  const v2 = mounts.find((m) => m.version === 2);
  if (v2) {
    const base = v2Root ?? join(v2.point, own.find((h) => h.controllers.length === 0)?.path ?? '/');
    let available: string[] = [];
    try {
      available = fs.readFileSync(join(base, 'cgroup.controllers'), 'utf8').trim().split(/\s+/).filter(Boolean);
    } catch {
      available = [];
    }
    // A root the user named is the only place for job cgroups: never the v1 hierarchies instead.
    if (v2Root !== null && !(available.includes('memory') && available.includes('pids'))) {
      return {
        version: 0,
        reason:
          `sandbox.cgroupRoot ${v2Root} does not offer the memory and pids controllers (its cgroup.controllers has ` +
          `${available.join(' ') || 'none'}): enable them in its ` +
          `parent's cgroup.subtree_control (systemd: Delegate=yes)`,
      };
    }
    if (available.includes('memory') && available.includes('pids')) {
      if (!writableDir(base)) {
        return {
          version: 0,
          reason: `cgroup v2 at ${base} is not writable by this user: delegate a ` + `subtree (systemd: Delegate=yes) and pass it as sandbox.cgroupRoot`,
        };
      }
      // Job cgroups get controllers only if `base` hands them down, which v2 allows only for a
      // cgroup without processes of its own (the root aside).
      let enabled: string[] = [];
      try {
        enabled = fs.readFileSync(join(base, 'cgroup.subtree_control'), 'utf8').trim().split(/\s+/);
      } catch {
        enabled = [];
      }
      if (!(enabled.includes('memory') && enabled.includes('pids'))) {
        return {
          version: 0,
          reason:
            `cgroup v2 at ${base} does not enable memory and pids for its children (cgroup.subtree_control): ` +
            `move the app into a leaf cgroup, enable them in ${base}, and pass ${base} as sandbox.cgroupRoot`,
        };
      }
      return { version: 2, parent: join(base, tag) };
    }
  }
  if (v2Root !== null) return { version: 0, reason: `sandbox.cgroupRoot is ${v2Root}, but no cgroup2 file system is mounted` };
  const v1 = (controller: string) => {
    const mount = mounts.find((m) => m.version === 1 && m.controllers.includes(controller));
    const mine = own.find((h) => h.controllers.includes(controller));
    if (!mount || !mine) return null;
    return { base: join(mount.point, mine.path), shared: mount.controllers.filter((c) => ['memory', 'pids', 'cpu', 'cpuacct'].includes(c)) };
  };
  const memory = v1('memory');
  const pids = v1('pids');
  if (memory && pids) {
    for (const h of [memory, pids]) {
      if (!writableDir(h.base)) {
        return {
          version: 0,
          reason:
            `cgroup v1 at ${h.base} is not writable by this user (uid ${process.geteuid!()}): ` +
            `run the app as root, or give it a writable memory and pids cgroup`,
        };
      }
    }
    const cpu = v1('cpu');
    const cpuacct = v1('cpuacct');
    return {
      version: 1,
      parents: {
        memory: join(memory.base, tag),
        pids: join(pids.base, tag),
        cpu: cpu && writableDir(cpu.base) ? join(cpu.base, tag) : null,
        // Often co-mounted with cpu ("cpu,cpuacct"): then the same directory.
        cpuacct: cpuacct && writableDir(cpuacct.base) ? join(cpuacct.base, tag) : null,
      },
    };
  }
  if (v2)
    return {
      version: 0,
      reason:
        `cgroup v2 is mounted at ${v2.point} but this app's cgroup offers no memory and pids controllers; ` +
        `delegate a subtree with them (systemd: Delegate=yes) and pass it as sandbox.cgroupRoot`,
    };
  return { version: 0, reason: 'no cgroup hierarchy with the memory and pids controllers is mounted' };
}

/** The spawner's parent cgroup directories (created at start, removed at close). */
export function parentDirs(s: CgroupSupport): string[] {
  if (s.version === 2) return [s.parent];
  if (s.version === 1) return [...new Set([s.parents.memory, s.parents.pids, s.parents.cpu, s.parents.cpuacct].filter((d): d is string => d !== null))];
  return [];
}

/** Enables the controllers a v2 parent hands to its job cgroups. */
export function prepareParents(s: CgroupSupport): void {
  for (const dir of parentDirs(s)) fs.mkdirSync(dir, { recursive: true });
  if (s.version === 2) {
    const available = fs.readFileSync(join(s.parent, 'cgroup.controllers'), 'utf8').trim().split(/\s+/);
    const wanted = ['memory', 'pids', 'cpu'].filter((c) => available.includes(c));
    fs.writeFileSync(join(s.parent, 'cgroup.subtree_control'), wanted.map((c) => `+${c}`).join(' '));
  }
}

/** The job cgroups under one of the spawner's cgroup directories; none when it cannot be read. */
export function jobCgroupDirs(parent: string): string[] {
  try {
    return fs
      .readdirSync(parent, { withFileTypes: true })
      .filter((e) => e.isDirectory())
      .map((e) => join(parent, e.name));
  } catch {
    return [];
  }
}

/** Removes job cgroups whose intermediate died before it could (the zygote was killed). */
export function removeLeftovers(s: CgroupSupport): void {
  for (const dir of parentDirs(s)) {
    for (const child of jobCgroupDirs(dir)) {
      try {
        fs.rmdirSync(child);
      } catch {
        // still busy: the spawner's close removes it
      }
    }
  }
}

/** Removes the spawner's cgroups: what jobs left, then the parents. */
export function removeParents(s: CgroupSupport): void {
  removeLeftovers(s);
  for (const dir of parentDirs(s)) {
    try {
      fs.rmdirSync(dir);
    } catch {
      // already gone
    }
  }
}

/** Directories, limit writes, procs files and stat files for job `id`. */
export function cgroupPlan(s: CgroupSupport, id: number, limits: Limits): CgroupPlan {
  const plan: CgroupPlan = { cgroupDirs: [], cgroupWrites: [], cgroupProcs: [], cgroupStats: [] };
  const job = (parent: string) => join(parent, `job-${id}`);
  if (s.version === 2) {
    const dir = job(s.parent);
    plan.cgroupDirs.push(dir);
    if (limits.memoryLimit !== null) {
      plan.cgroupWrites.push({ path: join(dir, 'memory.max'), value: String(limits.memoryLimit) });
      plan.cgroupWrites.push({ path: join(dir, 'memory.swap.max'), value: '0' });
    }
    if (limits.pids !== null) plan.cgroupWrites.push({ path: join(dir, 'pids.max'), value: String(limits.pids) });
    if (limits.cpu !== null) plan.cgroupWrites.push({ path: join(dir, 'cpu.max'), value: `${Math.round(limits.cpu * cpuPeriodUs)} ${cpuPeriodUs}` });
    plan.cgroupProcs.push(join(dir, 'cgroup.procs'));
    plan.cgroupStats.push(join(dir, 'memory.peak'), join(dir, 'memory.events'), join(dir, 'cpu.stat'));
    return plan;
  }
  if (s.version === 1) {
    const memory = job(s.parents.memory);
    const pids = job(s.parents.pids);
    plan.cgroupDirs.push(memory, pids);
    if (limits.memoryLimit !== null) {
      plan.cgroupWrites.push({ path: join(memory, 'memory.limit_in_bytes'), value: String(limits.memoryLimit) });
    }
    if (limits.pids !== null) plan.cgroupWrites.push({ path: join(pids, 'pids.max'), value: String(limits.pids) });
    plan.cgroupProcs.push(join(memory, 'cgroup.procs'), join(pids, 'cgroup.procs'));
    if (s.parents.cpu) {
      const cpu = job(s.parents.cpu);
      plan.cgroupDirs.push(cpu);
      if (limits.cpu !== null) {
        plan.cgroupWrites.push({ path: join(cpu, 'cpu.cfs_period_us'), value: String(cpuPeriodUs) });
        plan.cgroupWrites.push({ path: join(cpu, 'cpu.cfs_quota_us'), value: String(Math.round(limits.cpu * cpuPeriodUs)) });
      }
      plan.cgroupProcs.push(join(cpu, 'cgroup.procs'));
    }
    plan.cgroupStats.push(join(memory, 'memory.max_usage_in_bytes'), join(memory, 'memory.oom_control'));
    if (s.parents.cpuacct) {
      const acct = job(s.parents.cpuacct);
      if (s.parents.cpuacct !== s.parents.cpu) {
        plan.cgroupDirs.push(acct);
        plan.cgroupProcs.push(join(acct, 'cgroup.procs'));
      }
      plan.cgroupStats.push(join(acct, 'cpuacct.usage'));
    }
    return plan;
  }
  return plan;
}

function field(text: string, name: string): number | null {
  const m = new RegExp(`^${name}\\s+(\\d+)`, 'm').exec(text);
  return m ? Number(m[1]) : null;
}

/** Parses what the intermediate read back, in the order cgroupPlan() asked for. */
export function parseStats(s: CgroupSupport, raw: string[]): CgroupStats {
  const num = (t: string | undefined) => (t !== undefined && /^\d+\s*$/.test(t) ? Number(t.trim()) : null);
  if (s.version === 2) {
    const cpu = field(raw[2] ?? '', 'usage_usec');
    return { peakMemoryBytes: num(raw[0]), oomKills: field(raw[1] ?? '', 'oom_kill') ?? 0, cpuUs: cpu };
  }
  if (s.version === 1) {
    const acct = num(raw[2]);
    return { peakMemoryBytes: num(raw[0]), oomKills: field(raw[1] ?? '', 'oom_kill') ?? 0, cpuUs: acct === null ? null : Math.round(acct / 1000) };
  }
  return { peakMemoryBytes: null, oomKills: 0, cpuUs: null };
}
