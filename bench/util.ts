// Shared by the benchmark's parts: statistics, formatting, the measuring loops and a view of /proc.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { encode, toWire, T } from '../lib/wire.js';
import { packageRoot } from '../lib/native.js';

export const fixtures = join(packageRoot, 'bench', 'fixtures');
export const fixture = (name: string) => join(fixtures, name);

/** The job every contender runs: a 1,000-row table (Int32 id, Float64 value = id * scale). */
export const jobArgs = { n: 1000, scale: 1.5 };

/** The job's arguments as every contender receives them: a Thrift-encoded Value (as nodespawner sends them). */
export function thriftArgs(): Buffer {
  return encode(T.Value, toWire(jobArgs));
}

/** Not a speed check: a benchmark of a job that does not do its work would measure nothing. */
export function checkTable(t: { numRows: number; getChild(name: string): { get(i: number): unknown } | null } | undefined, who: string): void {
  if (!t || t.numRows !== jobArgs.n || t.getChild('value')?.get(2) !== 2 * jobArgs.scale) {
    throw new Error(`${who}: the bench job returned an unexpected result (${t ? `${t.numRows} rows` : 'no table'})`);
  }
}

// ---- statistics ----

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length); // nearest rank
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1];
}

export interface Summary {
  n: number;
  p50: number;
  p90: number;
  p99: number;
  mean: number;
  min: number;
  max: number;
}

export function summarize(samples: number[]): Summary {
  const s = [...samples].sort((a, b) => a - b);
  const mean = s.length ? s.reduce((a, b) => a + b, 0) / s.length : NaN;
  return { n: s.length, p50: percentile(s, 50), p90: percentile(s, 90), p99: percentile(s, 99), mean, min: s[0] ?? NaN, max: s[s.length - 1] ?? NaN };
}

// ---- formatting ----

export const ms = (x: number, digits = 2) => (Number.isFinite(x) ? x.toFixed(digits) : '-');
export const mib = (bytes: number) => (Number.isFinite(bytes) ? `${(bytes / 2 ** 20).toFixed(1)} MiB` : '-');
export const ratio = (x: number) => (!Number.isFinite(x) ? '-' : x >= 10 ? `${x.toFixed(0)}x` : x >= 1 ? `${x.toFixed(1)}x` : `${x.toFixed(2)}x`);
export const rate = (x: number) => (!Number.isFinite(x) ? '-' : x >= 100 ? x.toFixed(0) : x.toFixed(1));

/** A plain-text table: the first column (and any in `left`) left-aligned, the rest right-aligned. */
export function table(header: string[], rows: string[][], left: number[] = []): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === 0 || left.includes(i) ? c.padEnd(widths[i]) : c.padStart(widths[i])))
      .join('  ')
      .trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

export const indent = (text: string, n = 2) =>
  text
    .split('\n')
    .map((l) => ' '.repeat(n) + l)
    .join('\n');

/** Progress goes to stderr, so that stdout holds only the report. */
export function progress(text: string): void {
  process.stderr.write(`  ${text}\n`);
}

// ---- measuring ----

/** One job, start to checked result; resolves with whatever the contender wants kept (RunResult for nodespawner). */
export type RunOne = () => Promise<unknown>;

export interface Measured {
  latencies: number[];
  extras: unknown[];
  wallMs: number;
}

/** `n` jobs one after another: latency of each and the wall time of all. */
export async function sequential(run: RunOne, n: number): Promise<Measured> {
  const latencies: number[] = [];
  const extras: unknown[] = [];
  const start = performance.now();
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    extras.push(await run());
    latencies.push(performance.now() - t);
  }
  return { latencies, extras, wallMs: performance.now() - start };
}

/**
 * `n` jobs, one at a time, each started `intervalMs` after the previous one started (or at once
 * if that one took longer): a light, steady load, as an app server sees between bursts.
 */
export async function paced(run: RunOne, n: number, intervalMs: number): Promise<Measured> {
  const latencies: number[] = [];
  const extras: unknown[] = [];
  const start = performance.now();
  for (let i = 0; i < n; i++) {
    const wait = start + i * intervalMs - performance.now();
    if (wait > 0) await sleep(wait);
    const t = performance.now();
    extras.push(await run());
    latencies.push(performance.now() - t);
  }
  return { latencies, extras, wallMs: performance.now() - start };
}

/** `total` jobs with `concurrency` of them in flight at all times (a closed loop). */
export async function closedLoop(run: RunOne, concurrency: number, total: number): Promise<Measured> {
  const latencies: number[] = [];
  const extras: unknown[] = [];
  let left = total;
  const start = performance.now();
  const lane = async () => {
    while (left > 0) {
      left--;
      const t = performance.now();
      extras.push(await run());
      latencies.push(performance.now() - t);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, lane));
  return { latencies, extras, wallMs: performance.now() - start };
}

export const sleep = (msec: number) => new Promise((r) => setTimeout(r, msec));

/** Busy CPU time of the whole machine so far, in ms (user, nice, system, irq, softirq of /proc/stat). */
export function machineBusyMs(): number {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const tick = 100; // USER_HZ
  return ((f[0] + f[1] + f[2] + f[5] + f[6]) / tick) * 1000;
}

// ---- /proc ----

export interface ProcInfo {
  pid: number;
  ppid: number;
  state: string;
}

function procInfo(pid: number): ProcInfo | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { pid, state: rest[0], ppid: Number(rest[1]) };
  } catch {
    return null;
  }
}

/** Live (not zombie) processes below `root`, with their depth (1 = child). */
export function descendants(root: number): Array<ProcInfo & { depth: number }> {
  const all = new Map<number, ProcInfo>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const p = procInfo(Number(name));
    if (p) all.set(p.pid, p);
  }
  const out: Array<ProcInfo & { depth: number }> = [];
  for (const p of all.values()) {
    if (p.state === 'Z' || p.pid === root) continue;
    let depth = 1;
    let cur = p;
    while (cur.ppid !== root && cur.ppid > 1 && depth < 64) {
      const parent = all.get(cur.ppid);
      if (!parent) break;
      cur = parent;
      depth++;
    }
    if (cur.ppid === root) out.push({ ...p, depth });
  }
  return out;
}

/** `Key: 123 kB` lines of /proc/<pid>/status or smaps_rollup, in bytes. */
export function procKb(path: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    const m = /^(\w+):\s+(\d+) kB/.exec(line);
    if (m) out[m[1]] = Number(m[2]) * 1024;
  }
  return out;
}
