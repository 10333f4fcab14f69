// The floors, timed by tiny C programs compiled here with `cc`, with no Node:
// - fixtures/fork-floor.c: fork() + _exit() + waitpid() of a process as large as the zygote, what
//   any fork server of that size pays at least;
// - fixtures/sandbox-floor.c: the sandbox's processes, namespaces and job cgroups per job (the
//   zygote's fork, the intermediate's clone into new namespaces with id maps and the library's own
//   cgroup plan, the job's own root, the exits), with no job: what a sandboxing fork server pays
//   at least on this machine, and so the most jobs per second it can reach.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cgroupPlan, detectCgroups, parentDirs, prepareParents, removeParents } from '../lib/cgroups.js';
import type { CgroupSupport, Limits } from '../lib/cgroups.js';
import { resolveSpawnerOptions } from '../lib/options.js';
import { fixture } from './util.js';

export interface FloorResult {
  mib: number;
  thp: number;
  iterations: number;
  rssKiB: number;
  anonHugeKiB: number;
  p50: number;
  p99: number;
  mean: number;
  min: number;
  max: number;
}

export interface SandboxFloorResult {
  mib: number;
  jobs: number;
  concurrency: number;
  cgroups: boolean;
  netns: boolean;
  anon_huge_mib: number;
  jobs_per_s: number;
  p50_ms: number;
  p99_ms: number;
  mean_ms: number;
  machine_cpu_ms_per_job: number;
}

export interface Floor {
  run(mib: number, iterations: number, thp: boolean): FloorResult;
  /**
   * `jobs` sandboxed jobs, `concurrency` in flight, from a huge-page zygote of `mib` MiB, with the
   * default sandbox's job cgroups (where `cgroups` says why not, without) and network namespace.
   */
  sandbox(mib: number, jobs: number, concurrency: number, layers: { cgroups: boolean; netns: boolean }): SandboxFloorResult;
  /** null, or why the sandbox floor runs without job cgroups. */
  readonly cgroupsNote: string | null;
  close(): void;
}

/**
 * The default sandbox's job cgroups as sandbox-floor's plan file: the library's plan for a job,
 * with "{job}" where the job's id goes.
 */
function planFile(support: CgroupSupport, limits: Limits, path: string): void {
  const plan = cgroupPlan(support, 0, limits);
  const parents = parentDirs(support);
  const job = (p: string) => {
    const parent = parents.find((d) => p === join(d, 'job-0') || p.startsWith(`${join(d, 'job-0')}/`));
    if (parent === undefined || /\s/.test(p)) throw new Error(`a job cgroup path the plan file cannot hold: ${p}`);
    return `${join(parent, 'job-{job}')}${p.slice(join(parent, 'job-0').length)}`;
  };
  const lines = [
    ...plan.cgroupDirs.map((d) => `mkdir ${job(d)}`),
    ...plan.cgroupWrites.map((w) => `write ${job(w.path)} ${w.value}`),
    ...plan.cgroupProcs.map((p) => `procs ${job(p)}`),
    ...plan.cgroupStats.map((s) => `stat ${job(s)}`),
  ];
  writeFileSync(path, `${lines.join('\n')}\n`);
}

/** Compiles the floors' C programs; or says why it cannot. */
export function openFloor(): Floor | { skipped: string } {
  const dir = mkdtempSync(join(tmpdir(), 'nodespawner-bench-'));
  const cc = process.env.CC || 'cc';
  for (const name of ['fork-floor', 'sandbox-floor']) {
    const r = spawnSync(cc, ['-O2', '-o', join(dir, name), fixture(`${name}.c`)], { encoding: 'utf8' });
    if (r.status !== 0) {
      rmSync(dir, { recursive: true, force: true });
      return { skipped: `cannot compile bench/fixtures/${name}.c with ${cc}: ${(r.stderr || r.error?.message || '').trim().split('\n')[0]}` };
    }
  }
  const { sandbox } = resolveSpawnerOptions({});
  let support: CgroupSupport =
    sandbox.limits === 'cgroup'
      ? detectCgroups(`nodespawner-floor-${process.pid}`, sandbox.cgroupRoot)
      : { version: 0, reason: `the default sandbox has none here: sandbox.limits is '${sandbox.limits}' (NODESPAWNER_LIMITS)` };
  let cgroupsNote: string | null = support.version === 0 ? support.reason : null;
  if (support.version !== 0) {
    try {
      prepareParents(support);
      planFile(support, { memoryLimit: sandbox.memoryLimit, pids: sandbox.pids, cpu: sandbox.cpu }, join(dir, 'cgroups'));
    } catch (e) {
      removeParents(support);
      cgroupsNote = `cannot prepare the job cgroups: ${(e as Error).message}`;
      support = { version: 0, reason: cgroupsNote };
    }
  }
  const exec = (name: string, args: string[]) => {
    const r = spawnSync(join(dir, name), args, { encoding: 'utf8', timeout: 300_000 });
    if (r.status !== 0) throw new Error(`${name} failed: ${r.stderr || r.error?.message}`);
    return JSON.parse(r.stdout) as unknown;
  };
  return {
    run: (mib, iterations, thp) => exec('fork-floor', [String(mib), String(iterations), thp ? '1' : '0']) as FloorResult,
    sandbox(mib, jobs, concurrency, layers) {
      const plan = layers.cgroups && support.version !== 0 ? join(dir, 'cgroups') : '-';
      return exec('sandbox-floor', [String(mib), String(jobs), String(concurrency), '1', plan, ...(layers.netns ? [] : ['nonet'])]) as SandboxFloorResult;
    },
    cgroupsNote,
    close: () => {
      removeParents(support);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
