// Round-trip benchmark: a sandboxed nodespawner job that returns a 1,000-row Arrow table, against
// starting `node` cold for the same job. Prints figures; asserts nothing about speed.
//
//   npm run bench
//   npm run bench -- --iterations 500 --cold-iterations 50 --warmup 50
//   NODESPAWNER_BENCH_ITERATIONS=500 npm run bench
import { spawn } from 'node:child_process';
import { chmodSync, statSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { tableFromIPC } from 'apache-arrow';
import { Spawner } from '../lib/index.js';
import type { RunResult, RunTimings } from '../lib/index.js';
import { packageRoot } from '../lib/native.js';

const fixtures = join(packageRoot, 'bench', 'fixtures');
const jobPath = join(fixtures, 'job.mjs');
const cliPath = join(fixtures, 'job-cli.mjs');
const jobArgs = { n: 1000, scale: 1.5 };

function count(name: string, flag: string | undefined, env: string, fallback: number, min: number): number {
  const raw = flag ?? process.env[env];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) {
    console.error(`Expected \`${name}\` (--${name} or ${env}) to be an integer >= ${min}, got \`${raw}\``);
    process.exit(2);
  }
  return n;
}

const { values: flags } = parseArgs({
  options: {
    iterations: { type: 'string', short: 'n' },
    'cold-iterations': { type: 'string' },
    warmup: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
});
if (flags.help) {
  console.log(`usage: node dist/bench/roundtrip.js [--iterations N] [--cold-iterations N] [--warmup N]
  --iterations N       nodespawner runs at concurrency 1; 2*N runs at concurrency 2 (default 200, env NODESPAWNER_BENCH_ITERATIONS)
  --cold-iterations N  cold \`node job-cli.mjs\` runs (default 20, env NODESPAWNER_BENCH_COLD_ITERATIONS)
  --warmup N           unmeasured runs before each measurement (default 20, env NODESPAWNER_BENCH_WARMUP)`);
  process.exit(0);
}
const iterations = count('iterations', flags.iterations, 'NODESPAWNER_BENCH_ITERATIONS', 200, 1);
const coldIterations = count('cold-iterations', flags['cold-iterations'], 'NODESPAWNER_BENCH_COLD_ITERATIONS', 20, 1);
const warmup = count('warmup', flags.warmup, 'NODESPAWNER_BENCH_WARMUP', 20, 0);

/**
 * When the app runs as root, jobs run as uid 65534 outside their namespace: the job file must be
 * world-readable and every directory above it world-traversable.
 */
function makeJobReadable(): void {
  chmodSync(fixtures, 0o755);
  chmodSync(jobPath, 0o644);
  chmodSync(cliPath, 0o644);
  for (let dir = dirname(fixtures); ; dir = dirname(dir)) {
    if ((statSync(dir).mode & 0o001) === 0) {
      console.warn(`warning: ${dir} is not world-traversable; a job running as uid 65534 cannot read ${jobPath}`);
    }
    if (dir === dirname(dir)) break;
  }
}

// ---- statistics and printing ----

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length); // nearest rank
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1];
}

interface Summary {
  n: number;
  p50: number;
  p99: number;
  mean: number;
  min: number;
  max: number;
}

function summarize(samples: number[]): Summary {
  const s = [...samples].sort((a, b) => a - b);
  return { n: s.length, p50: percentile(s, 50), p99: percentile(s, 99), mean: s.reduce((a, b) => a + b, 0) / s.length, min: s[0], max: s[s.length - 1] };
}

const ms = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : '-');
const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;

/** A plain-text table: the first column (and any in `left`) left-aligned, the rest right-aligned. */
function table(header: string[], rows: string[][], left: number[] = []): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 || left.includes(i) ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ').trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

function check(r: RunResult): void {
  // Not a speed check: a benchmark of a job that does not do its work would measure nothing.
  const t = r.table;
  if (!t || t.numRows !== jobArgs.n || t.getChild('value')?.get(2) !== 2 * jobArgs.scale) {
    throw new Error(`the bench job returned an unexpected result: ${t ? `${t.numRows} rows` : JSON.stringify(r.value)}; stderr: ${r.stderr}`);
  }
}

// ---- the measurements ----

interface Sequential {
  latency: Summary;
  jobsPerSec: number;
  timings: RunTimings;
  cpuMs: number;
  maxRssBytes: number;
  zygoteRssBytes: number;
  zygoteStartMs: number;
}

async function sequential(): Promise<Sequential> {
  const t0 = performance.now();
  const spawner = await Spawner.start({ concurrency: 1 });
  const zygoteStartMs = performance.now() - t0;
  try {
    for (let i = 0; i < warmup; i++) check(await spawner.run(jobPath, jobArgs));
    const latencies: number[] = [];
    const results: RunResult[] = [];
    const start = performance.now();
    for (let i = 0; i < iterations; i++) {
      const t = performance.now();
      const r = await spawner.run(jobPath, jobArgs);
      latencies.push(performance.now() - t);
      results.push(r);
    }
    const wall = performance.now() - start;
    check(results[0]);
    const mean = (f: (r: RunResult) => number) => results.reduce((a, r) => a + f(r), 0) / results.length;
    const phases = Object.keys(results[0].timings) as (keyof RunTimings)[];
    const timings = Object.fromEntries(phases.map((k) => [k, mean((r) => r.timings[k])])) as unknown as RunTimings;
    return {
      latency: summarize(latencies),
      jobsPerSec: (iterations / wall) * 1000,
      timings,
      cpuMs: mean((r) => r.cpuMs),
      maxRssBytes: mean((r) => r.maxRssBytes),
      zygoteRssBytes: spawner.info.rssBytes,
      zygoteStartMs,
    };
  } finally {
    await spawner.close();
  }
}

async function concurrent(concurrency: number, runs: number): Promise<{ jobsPerSec: number; wallMs: number }> {
  const spawner = await Spawner.start({ concurrency });
  try {
    await Promise.all(Array.from({ length: Math.max(warmup, concurrency) }, () => spawner.run(jobPath, jobArgs).then(check)));
    const start = performance.now();
    await Promise.all(Array.from({ length: runs }, () => spawner.run(jobPath, jobArgs)));
    const wallMs = performance.now() - start;
    return { jobsPerSec: (runs / wallMs) * 1000, wallMs };
  } finally {
    await spawner.close();
  }
}

/** One cold `node job-cli.mjs`: spawn, read the Arrow stream from stdout, wait for exit. */
function coldOnce(): Promise<number> {
  return new Promise((resolve, reject) => {
    const t = performance.now();
    const child = spawn(process.execPath, [cliPath, JSON.stringify(jobArgs)], { stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (err += s));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      const elapsed = performance.now() - t;
      if (code !== 0) return reject(new Error(`node job-cli.mjs exited with ${signal ?? `code ${code}`}: ${err}`));
      const rows = tableFromIPC(Buffer.concat(out)).numRows;
      if (rows !== jobArgs.n) return reject(new Error(`node job-cli.mjs returned ${rows} rows`));
      resolve(elapsed);
    });
  });
}

async function cold(): Promise<Summary> {
  for (let i = 0; i < Math.min(2, warmup); i++) await coldOnce(); // page cache, not JIT: each run is a new process
  const samples: number[] = [];
  for (let i = 0; i < coldIterations; i++) samples.push(await coldOnce());
  return summarize(samples);
}

// ---- main ----

makeJobReadable();
const cpu = os.cpus();
console.log(`nodespawner round-trip benchmark`);
console.log(`node ${process.version}, ${os.type()} ${os.release()} ${os.arch()}, ${cpu.length} x ${cpu[0]?.model.trim() ?? 'unknown CPU'}`);
console.log(`job: ${jobPath} args ${JSON.stringify(jobArgs)} -> ${jobArgs.n}-row Arrow table (Int32 id, Float64 value)`);
console.log(`iterations: ${iterations} at concurrency 1, ${2 * iterations} at concurrency 2, ${coldIterations} cold node; warm-up ${warmup}\n`);

const benchStart = performance.now();
const seq = await sequential();
const par = await concurrent(2, 2 * iterations);
const coldNode = await cold();

console.log(
  table(
    ['round trip (ms)', 'runs', 'p50', 'p99', 'mean', 'min', 'max', 'jobs/s'],
    [
      ['nodespawner, concurrency 1', String(seq.latency.n), ms(seq.latency.p50), ms(seq.latency.p99), ms(seq.latency.mean), ms(seq.latency.min), ms(seq.latency.max), seq.jobsPerSec.toFixed(1)],
      ['nodespawner, concurrency 2', String(2 * iterations), '-', '-', '-', '-', '-', par.jobsPerSec.toFixed(1)],
      ['cold `node job-cli.mjs`', String(coldNode.n), ms(coldNode.p50), ms(coldNode.p99), ms(coldNode.mean), ms(coldNode.min), ms(coldNode.max), ((1000 / coldNode.mean)).toFixed(1)],
    ],
  ),
);
console.log(`\ncold node p50 / nodespawner p50: ${(coldNode.p50 / seq.latency.p50).toFixed(1)}x`);
console.log(`zygote: RSS ${mib(seq.zygoteRssBytes)} at ready, started in ${seq.zygoteStartMs.toFixed(0)} ms`);
console.log(`job child: mean CPU ${ms(seq.cpuMs)} ms, mean peak RSS ${mib(seq.maxRssBytes)} (counts pages shared with the zygote)`);

const t = seq.timings;
const phase: [keyof RunTimings, string][] = [
  ['queueMs', 'waiting in the queue'],
  ['requestMs', 'request sent -> zygote received'],
  ['forkMs', 'fork of the zygote'],
  ['cloneMs', 'clone into namespaces, id maps'],
  ['runMs', 'specialize, import, job, result write'],
  ['reapMs', 'child exited -> result read, validated'],
  ['totalMs', 'request sent -> settled'],
];
console.log(`\nwhere the time goes (mean over ${iterations} runs at concurrency 1):`);
console.log(table(['phase', 'ms', 'what'], phase.map(([k, what]) => [k, ms(t[k]), what]), [2]));
console.log(`\nbenchmark took ${((performance.now() - benchStart) / 1000).toFixed(1)} s`);
