// The benchmark: one job (Thrift args in, a 1,000-row Arrow table computed with apache-arrow out),
// run every way there is, side by side in one run: `node` started cold, child_process.fork per job,
// bwrap + node per job, a piscina worker pool (no isolation), and nodespawner with its default
// sandbox. Then the floor (fork + exit of a process as large as the zygote), memory, where a
// nodespawner job's time goes, and a zygote with a ~200 MiB preload against an empty one.
// Prints figures; asserts nothing about time.
//
//   npm run bench                      (= node dist/cli/main.js bench; also `npx nodespawner bench`)
//   npm run bench -- --quick
//   npm run bench -- --iterations 500 --cold-iterations 50 --warmup 50
import { warmChecks } from './warm-checks.js';
import { otherNodes, summaryLine, summaryOf, summaryTable, writeDocs } from './summary.js';
import type { Summary as NodeSummary } from './summary.js';
import { chmodSync, statSync } from 'node:fs';
import os from 'node:os';
import { dirname, relative } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Table, tableFromIPC, tableToIPC } from 'apache-arrow';
import type { RunResult, RunTimings } from '../lib/index.js';
import { packageRoot } from '../lib/native.js';
import { T, decode, encode, fromWire, toWire } from '../lib/wire.js';
import { bwrap } from './contenders/bwrap.js';
import { cold } from './contenders/cold.js';
import { fork } from './contenders/fork.js';
import { nodespawner, nodespawnerEgress, nodespawnerEgressForked, nodespawnerForked } from './contenders/nodespawner.js';
import type { NodespawnerInstance } from './contenders/nodespawner.js';
import { piscina } from './contenders/piscina.js';
import type { Contender, Instance } from './contenders/types.js';
import { openFloor } from './floor.js';
import type { Floor, FloorResult, SandboxFloorResult } from './floor.js';
import { jobMemory, zygoteMemory } from './memory.js';
import type { JobMemory } from './memory.js';
import { preloadHeavy } from './preload-heavy.js';
import { layers } from './layers.js';
import { heapArena } from './heap-arena.js';
import { inFlight, queueBench } from './bullmq.js';
import type { HeavyResult } from './preload-heavy.js';
import {
  checkTable,
  closedLoop,
  fixture,
  fixtures,
  jobArgs,
  machineBusyMs,
  mib,
  ms,
  indent,
  progress,
  rate,
  ratio,
  sequential,
  paced,
  summarize,
  table,
  thriftArgs,
} from './util.js';
import type { Measured, Summary } from './util.js';

/** The light load: one job every this many ms. */
const lightInterval = 25;

const contenders: Contender[] = [nodespawner, nodespawnerForked, nodespawnerEgress, nodespawnerEgressForked, piscina, fork, cold, bwrap];

const usage = `usage: nodespawner bench [options]      (npm run bench -- [options])
  --quick               a short run (~30 s): fewer iterations, one memory sample
  -n, --iterations N    jobs per in-process or nodespawner contender at concurrency 1, 2*N at
                        concurrency 2 (default 200, --quick 40; env NODESPAWNER_BENCH_ITERATIONS)
  --cold-iterations N   the same for contenders that start a process per job: cold node, fork,
                        bwrap (default 30, --quick 8; env NODESPAWNER_BENCH_COLD_ITERATIONS)
  --warmup N            unmeasured jobs first (default 20, --quick 5; at most 3 for the process-per-job
                        contenders; env NODESPAWNER_BENCH_WARMUP)
  --only LIST           contenders to run, comma-separated: ${contenders.map((c) => c.key).join(',')}
  --no-preload-heavy    skip the ~200 MiB preload comparison (--preload-heavy, on by default)
  --heavy-iterations N  jobs per zygote in that comparison (default: --iterations)
  --no-layers           skip the cost of each sandbox layer (--layers, on by default; --iterations
                        jobs per variant, --quick 20)
  --no-bullmq           skip the runs through a BullMQ queue (nodespawner/bullmq; --bullmq, on by
                        default; needs redis-server; --iterations jobs one at a time, twice that
                        with 4 in flight, per row)
  --no-heap-arena       skip the heap arena on against off (--heap-arena, on by default; half of
                        --iterations back to back and twice that at concurrency 2, --quick 20)
  --summary             only the contenders and the light load, then one summary line (what a run
                        on each other Node does for the per-version table)
  --write-docs          write the per-version summary table into docs/performance.md
  -h, --help`;

class UsageError extends Error {}

interface Config {
  iterations: number;
  coldIterations: number;
  warmup: number;
  heavy: boolean;
  heavyIterations: number;
  layers: boolean;
  layerIterations: number;
  arena: boolean;
  bullmq: boolean;
  arenaIterations: number;
  only: Set<string>;
  memorySamples: number;
  floorIterations: number;
  sandboxFloorJobs: number;
  quick: boolean;
  summary: boolean;
  writeDocs: boolean;
}

function parse(argv: string[]): Config | null {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      options: {
        iterations: { type: 'string', short: 'n' },
        'cold-iterations': { type: 'string' },
        warmup: { type: 'string' },
        quick: { type: 'boolean' },
        only: { type: 'string' },
        'preload-heavy': { type: 'boolean' },
        'no-preload-heavy': { type: 'boolean' },
        'heavy-iterations': { type: 'string' },
        layers: { type: 'boolean' },
        'no-layers': { type: 'boolean' },
        'heap-arena': { type: 'boolean' },
        'no-heap-arena': { type: 'boolean' },
        summary: { type: 'boolean' },
        'write-docs': { type: 'boolean' },
        bullmq: { type: 'boolean' },
        'no-bullmq': { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  if (values.help) return null;
  const quick = values.quick ?? false;
  const count = (name: string, flag: string | undefined, env: string | null, fallback: number, min: number): number => {
    const raw = flag ?? (env ? process.env[env] : undefined);
    if (raw === undefined || raw === '') return fallback;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min)
      throw new UsageError(`Expected \`${name}\` (--${name}${env ? ` or ${env}` : ''}) to be an integer >= ${min}, got \`${raw}\``);
    return n;
  };
  const iterations = count('iterations', values.iterations, 'NODESPAWNER_BENCH_ITERATIONS', quick ? 40 : 200, 1);
  const only = new Set(
    (values.only ?? contenders.map((c) => c.key).join(','))
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
  );
  for (const k of only)
    if (!contenders.some((c) => c.key === k))
      throw new UsageError(`Unknown contender \`${k}\` in --only; expected some of ${contenders.map((c) => c.key).join(',')}`);
  return {
    iterations,
    coldIterations: count('cold-iterations', values['cold-iterations'], 'NODESPAWNER_BENCH_COLD_ITERATIONS', quick ? 8 : 30, 1),
    warmup: count('warmup', values.warmup, 'NODESPAWNER_BENCH_WARMUP', quick ? 5 : 20, 0),
    heavy: values['no-preload-heavy'] ? false : true,
    layers: values['no-layers'] ? false : true,
    layerIterations: quick ? 20 : iterations,
    arena: values['no-heap-arena'] ? false : true,
    bullmq: values['no-bullmq'] ? false : true,
    arenaIterations: quick ? 20 : Math.ceil(iterations / 2),
    heavyIterations: count('heavy-iterations', values['heavy-iterations'], null, quick ? 20 : iterations, 1),
    only,
    memorySamples: quick ? 1 : 3,
    floorIterations: quick ? 50 : 200,
    sandboxFloorJobs: quick ? 200 : 1000,
    quick,
    summary: values.summary ?? false,
    writeDocs: values['write-docs'] ?? false,
  };
}

/**
 * When the app runs as root, jobs run as uid 65534 outside their namespace: the job files must be
 * world-readable and every directory above them world-traversable.
 */
function makeJobsReadable(): string[] {
  const warnings: string[] = [];
  try {
    chmodSync(fixtures, 0o755);
    for (const f of ['job.mjs', 'hold.mjs']) chmodSync(fixture(f), 0o644);
  } catch (e) {
    warnings.push(`cannot make ${fixtures} readable to the job user: ${(e as Error).message}`);
  }
  for (let dir = dirname(fixtures); ; dir = dirname(dir)) {
    if ((statSync(dir).mode & 0o001) === 0) warnings.push(`${dir} is not world-traversable; a job running as uid 65534 cannot read ${fixture('job.mjs')}`);
    if (dir === dirname(dir)) break;
  }
  return warnings;
}

/**
 * The sandbox floor: the default sandbox's processes, namespaces and job cgroups per job, in C,
 * at concurrency 1 and 2, and at concurrency 2 without the layers that cost the most. Returns the
 * default sandbox's figures at concurrency 2.
 */
function sandboxFloorSection(floor: Floor, size: number, jobs: number, out: (s?: string) => void): SandboxFloorResult | null {
  const variants = [
    { label: 'the default sandbox, concurrency 1', concurrency: 1, cgroups: true, netns: true },
    { label: 'the default sandbox', concurrency: 2, cgroups: true, netns: true },
    { label: 'without the network namespace', concurrency: 2, cgroups: true, netns: false },
    { label: 'without job cgroups', concurrency: 2, cgroups: false, netns: true },
    { label: 'without either', concurrency: 2, cgroups: false, netns: false },
  ].filter((v) => v.cgroups || floor.cgroupsNote === null);
  let results;
  try {
    results = variants.map((v) => {
      progress(`sandbox floor: ${v.label}`);
      return { v, r: floor.sandbox(size, jobs, v.concurrency, v) };
    });
  } catch (e) {
    out(`sandbox floor: failed: ${(e as Error).message.trim()}`);
    out();
    return null;
  }
  const huge = results[0].r.anon_huge_mib;
  out(`sandbox floor: the sandbox's own steps for each job in C, with no Node and no job (bench/fixtures/sandbox-floor.c). A ${size} MiB`);
  out(
    `  process (${huge >= size - 2 ? 'in huge pages' : `${huge} MiB of it in huge pages`}) forks ` +
      `an intermediate, which clones the job into new user, pid, mount, net, uts, ipc and cgroup`,
  );
  if (floor.cgroupsNote === null) {
    out(`  namespaces, writes its id maps and puts it in the default sandbox's job cgroups (lib/cgroups.ts); the job pivots into a`);
    out(`  tmpfs root with its own /proc and exits; the intermediate reads the cgroups' figures and removes them. ${jobs} jobs each,`);
  } else {
    out(`  namespaces and writes its id maps; the job pivots into a tmpfs root with its own /proc and exits. No job cgroups:`);
    out(`  ${floor.cgroupsNote}. ${jobs} jobs each,`);
  }
  out(`  concurrency 2 unless said; latency is fork to reap, without preforking`);
  out(
    indent(
      table(
        ['variant', 'jobs/s', 'machine CPU/job', 'p50 ms', 'p99 ms'],
        results.map(({ v, r }) => [v.label, rate(r.jobs_per_s), `${ms(r.machine_cpu_ms_per_job)} ms`, ms(r.p50_ms), ms(r.p99_ms)]),
      ),
    ),
  );
  out();
  return results[1].r;
}

/** Splits `n` into `parts` near-equal counts. */
const split = (n: number, parts: number) => Array.from({ length: parts }, (_, i) => Math.floor(n / parts) + (i < n % parts ? 1 : 0));

interface Row {
  c: Contender;
  inst: Instance | null;
  skipped?: string;
  c1: Measured[];
  c2: Measured[];
  /** CPU over the concurrency-2 rounds: this process, and the whole machine (busy time in /proc/stat). */
  cpu2?: { appMs: number; machineMs: number; jobs: number };
}

const merge = (ms_: Measured[]): Measured => ({
  latencies: ms_.flatMap((m) => m.latencies),
  extras: ms_.flatMap((m) => m.extras),
  wallMs: ms_.reduce((a, m) => a + m.wallMs, 0),
});
const perSec = (m: Measured) => (m.latencies.length / m.wallMs) * 1000;

/** The job itself in this (warm) process: Thrift decode, table, Arrow IPC encode and decode. */
/** `once` (which returns the ms it took) 50 times to warm up, then `n` measured times. */
async function timeWarm(once: () => Promise<number>, n: number): Promise<Summary> {
  for (let i = 0; i < 50; i++) await once();
  const samples: number[] = [];
  for (let i = 0; i < n; i++) samples.push(await once());
  return summarize(samples);
}

async function inProcess(n: number): Promise<Summary> {
  const job = (await import(fixture('job.mjs'))).default as (a: unknown) => Promise<Parameters<typeof tableToIPC>[0]>;
  return timeWarm(async () => {
    const t = performance.now();
    const table = await job(fromWire(decode(T.Value, thriftArgs())));
    checkTable(tableFromIPC(tableToIPC(table, 'stream')), 'in-process');
    return performance.now() - t;
  }, n);
}

/**
 * Jobs that return other shapes than the benchmark's table: what the runner's coding costs in a
 * child for them (a value is Thrift, a string column is apache-arrow's Utf8 builders).
 */
const shapes = [
  { fixture: 'job.mjs', args: jobArgs, returns: 'the benchmark table: 1000 rows, Int32 + Float64' },
  { fixture: 'job-strings.mjs', args: { n: 500 }, returns: 'a table: 500 rows, Utf8 + Float64 (vectorFromArray)' },
  { fixture: 'job-value.mjs', args: { n: 200 }, returns: 'a value: 200 objects of 4 fields (~20 KB of Thrift)' },
];

/** The shape's job in this warm process, with the encoding and decoding a run does. */
async function shapeInProcess(shape: (typeof shapes)[number], n: number): Promise<Summary> {
  const job = (await import(fixture(shape.fixture))).default as (a: unknown) => Promise<unknown>;
  return timeWarm(async () => {
    const t = performance.now();
    const out = await job(shape.args);
    if (out instanceof Table) tableFromIPC(tableToIPC(out, 'stream'));
    else fromWire(decode(T.Value, encode(T.Value, toWire(out, 'result'))));
    return performance.now() - t;
  }, n);
}

export async function main(argv: string[]): Promise<number> {
  let parsed: Config | null;
  try {
    parsed = parse(argv);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    process.stderr.write(`${e.message}\n\n${usage}\n`);
    return 2;
  }
  if (!parsed) {
    console.log(usage);
    return 0;
  }
  const cfg = parsed;
  const benchStart = performance.now();
  const out = (s = '') => console.log(s);
  const warnings = makeJobsReadable();
  const cpu = os.cpus();
  const rel = (p: string) => relative(packageRoot, p);
  out(`nodespawner benchmark: one job, run every way`);
  out(`command: nodespawner bench${argv.length ? ` ${argv.join(' ')}` : ''}`);
  out(
    `machine: ${cpu.length} x ${cpu[0]?.model.trim() ?? 'unknown CPU'}, ${(os.totalmem() / 2 ** 30).toFixed(1)} ` +
      `GiB RAM, ${os.type()} ${os.release()} ${os.arch()}, node ${process.version}`,
  );
  out(
    `job: ${rel(fixture('job.mjs'))}: args ${JSON.stringify(jobArgs)} Thrift-encoded ` +
      `in, a ${jobArgs.n}-row table (Int32 id, Float64 value) built with apache-arrow out`,
  );
  out(`     as Arrow IPC, decoded and checked in this process, for every contender`);
  const rounds = Math.min(3, cfg.coldIterations, cfg.iterations);
  out(`runs: concurrency 1: ${cfg.iterations} jobs (in-process and nodespawner), ${cfg.coldIterations} (a process per job); concurrency 2: twice that;`);
  out(`      warm-up ${cfg.warmup} (at most 3 for a process per job); in ${rounds} round${rounds > 1 ? 's' : ''}, contenders taking turns`);
  out(
    `load average at start: ${os
      .loadavg()
      .map((x) => x.toFixed(2))
      .join(' ')} (1, 5, 15 min; other work on the machine skews every figure)`,
  );
  if (process.env.NODESPAWNER_LIMITS) warnings.push(`NODESPAWNER_LIMITS=${process.env.NODESPAWNER_LIMITS} changes nodespawner's default sandbox`);
  for (const w of warnings) out(`warning: ${w}`);
  out();

  // ---- contenders, side by side ----
  const rows: Row[] = [];
  const lightP50 = new Map<Contender, number>();
  let summary: NodeSummary | null = null;
  try {
    for (const c of contenders.filter((c) => cfg.only.has(c.key))) {
      progress(`opening ${c.label}`);
      const got = await c.open();
      rows.push('skipped' in got ? { c, inst: null, skipped: got.skipped, c1: [], c2: [] } : { c, inst: got, c1: [], c2: [] });
    }
    const live = rows.filter((r) => r.inst);
    const nsOpen = rows.find((r) => r.c === nodespawner && r.inst);
    let freshMemory: JobMemory | null = null;
    if (nsOpen) {
      progress('memory: sampling a running job of the fresh zygote');
      freshMemory = await jobMemory((nsOpen.inst as NodespawnerInstance).spawner, 1);
    }
    const n1 = (r: Row) => (r.c.processPerJob ? cfg.coldIterations : cfg.iterations);
    const warm = (r: Row) => (r.c.processPerJob ? Math.min(3, cfg.warmup) : cfg.warmup);
    for (const r of live) {
      progress(`warming up ${r.c.label}`);
      for (let i = 0; i < warm(r); i++) await r.inst!.run();
    }
    for (let round = 0; round < rounds; round++) {
      for (const r of live) {
        progress(`round ${round + 1}/${rounds}: ${r.c.label}, concurrency 1`);
        r.c1.push(await sequential(r.inst!.run, split(n1(r), rounds)[round]));
      }
    }
    for (const r of live) await closedLoop(r.inst!.run, 2, Math.min(4, 2 * warm(r) || 2)); // both lanes warm
    for (let round = 0; round < rounds; round++) {
      for (const r of live) {
        progress(`round ${round + 1}/${rounds}: ${r.c.label}, concurrency 2`);
        const app0 = process.cpuUsage();
        const machine0 = machineBusyMs();
        const m = await closedLoop(r.inst!.run, 2, split(2 * n1(r), rounds)[round]);
        const app = process.cpuUsage(app0);
        r.cpu2 ??= { appMs: 0, machineMs: 0, jobs: 0 };
        r.cpu2.appMs += (app.user + app.system) / 1000;
        r.cpu2.machineMs += machineBusyMs() - machine0;
        r.cpu2.jobs += m.latencies.length;
        r.c2.push(m);
      }
    }

    const ns = rows.find((r) => r.c === nodespawner && r.inst);
    const nsC1 = ns ? summarize(merge(ns.c1).latencies) : null;
    const tableRows = rows.map((r) => {
      if (!r.inst) return [r.c.label, r.c.isolation, '-', '-', '-', '-', '-', '-', '-', 'skipped'];
      const c1 = merge(r.c1);
      const c2 = merge(r.c2);
      const s = summarize(c1.latencies);
      return [
        r.c.label,
        r.c.isolation,
        String(s.n),
        ms(s.p50),
        ms(s.p99),
        ms(s.mean),
        rate(perSec(c1)),
        rate(perSec(c2)),
        ms(summarize(c2.latencies).p50),
        nsC1 ? ratio(s.p50 / nsC1.p50) : '-',
      ];
    });
    out(`round trip: the job's start to its checked table in this process`);
    out(
      table(['contender', 'isolation', 'runs', 'p50 ms', 'p99 ms', 'mean ms', 'jobs/s c=1', 'jobs/s c=2', 'p50 ms c=2', 'p50 / nodespawner'], tableRows, [1]),
    );
    out(
      `(p50, p99 and mean at concurrency 1; jobs/s at concurrency 1 and 2 (c=2: two jobs ` +
        `in flight at all times); p99 of fewer than 100 runs is their slowest or near it)`,
    );
    out(
      `CPU per job at concurrency 2: this process (run(), decoding and checking the ` +
        `result) / the whole machine (busy time in /proc/stat, every process and the kernel):`,
    );
    out(
      `  ${rows
        .filter((r) => r.cpu2)
        .map((r) => `${r.c.key} ${ms(r.cpu2!.appMs / r.cpu2!.jobs)} / ${ms(r.cpu2!.machineMs / r.cpu2!.jobs)} ms`)
        .join('; ')}`,
    );
    for (const r of rows) {
      if (r.skipped) out(`skipped ${r.c.key}: ${r.skipped}`);
      for (const note of r.c.notes) out(`${r.c.key}: ${note}`);
    }
    out();

    // ---- a light, steady load: what a job costs when the spawner is not saturated ----
    const light = live.filter((r) => !r.c.processPerJob);
    if (light.length > 0) {
      const interval = lightInterval;
      const n = cfg.quick ? 40 : 100;
      const got = new Map<Row, Measured[]>(light.map((r) => [r, []]));
      for (let round = 0; round < 2; round++) {
        for (const r of round === 0 ? light : [...light].reverse()) {
          progress(`light load, round ${round + 1}/2: ${r.c.label}`);
          got.get(r)!.push(await paced(r.inst!.run, n / 2, interval));
        }
      }
      out(`round trip at a light load: one job every ${interval} ms (${1000 / interval} jobs/s), one at a time, ${n} jobs each`);
      out(
        table(
          ['contender', 'p50 ms', 'p90 ms', 'p99 ms', 'mean ms', 'preforked'],
          light.map((r) => {
            const m = merge(got.get(r)!);
            const s = summarize(m.latencies);
            lightP50.set(r.c, s.p50);
            const pre = r.c.key.startsWith('nodespawner') ? `${(m.extras as RunResult[]).filter((x) => x.preforked).length}/${m.extras.length}` : '-';
            return [r.c.label, ms(s.p50), ms(s.p90), ms(s.p99), ms(s.mean), pre];
          }),
        ),
      );
      out();
    }

    const coldRun = rows.find((r) => r.c === cold && r.inst);
    summary = {
      node: process.version,
      p50Ms: nsC1?.p50 ?? NaN,
      lightP50Ms: lightP50.get(nodespawner) ?? NaN,
      piscinaLightP50Ms: lightP50.get(piscina) ?? NaN,
      coldP50Ms: coldRun ? summarize(merge(coldRun.c1).latencies).p50 : NaN,
      jobsPerSec: ns ? perSec(merge(ns.c2)) : NaN,
    };
    if (cfg.summary) {
      out(summaryLine(summary));
      return 0;
    }

    // ---- nodespawner: other result shapes, at the same light load ----
    if (ns) {
      const spawner = (ns.inst as NodespawnerInstance).spawner;
      const n = cfg.quick ? 20 : 60;
      const shapeRows: string[][] = [];
      for (const shape of shapes) {
        progress(`result shapes: ${shape.fixture}`);
        const job = fixture(shape.fixture);
        for (let i = 0; i < 5; i++) await spawner.run(job, shape.args);
        const m = await paced(() => spawner.run(job, shape.args), n, lightInterval);
        const rs = m.extras as RunResult[];
        if (rs.some((r) => !(r.table ? r.table.numRows === shape.args.n : (r.value as { count?: number } | undefined)?.count === shape.args.n))) {
          throw new Error(`${shape.fixture} returned an unexpected result`);
        }
        const p50 = (f: (t: RunTimings) => number) => ms(summarize(rs.map((r) => f(r.timings))).p50);
        const s = summarize(m.latencies);
        const local = await shapeInProcess(shape, cfg.quick ? 50 : 200);
        shapeRows.push([shape.fixture, shape.returns, ms(s.p50), ms(s.p90), p50((t) => t.jobMs), p50((t) => t.resultMs), ms(local.p50)]);
      }
      out(`other result shapes: nodespawner (default sandbox), one job every ${lightInterval} ms, ${n} jobs each (bench/fixtures/)`);
      out(table(['job', 'returns', 'p50 ms', 'p90 ms', 'jobMs p50', 'resultMs p50', 'in this process p50'], shapeRows, [1]));
      out(`  in this process: the same job, warm, with the result's encoding and decoding`);
      out();
    }

    // ---- nodespawner: memory, breakdown ----
    let zygoteRssMiB = 0;
    if (ns) {
      const inst = ns.inst as NodespawnerInstance;
      const c1 = merge(ns.c1).extras as RunResult[];
      const c2 = merge(ns.c2).extras as RunResult[];
      progress('memory: sampling running jobs');
      const z = zygoteMemory(inst.spawner);
      const jm = await jobMemory(inst.spawner, cfg.memorySamples);
      zygoteRssMiB = Math.ceil(z.vmRssBytes / 2 ** 20);
      const mean = (rs: RunResult[], f: (r: RunResult) => number | null) => rs.reduce((a, r) => a + (f(r) ?? NaN), 0) / rs.length;
      out(`memory`);
      out(
        `  zygote (pid ${z.pid}, started in ${inst.startMs.toFixed(0)} ms): RSS ${mib(z.readyRssBytes)} ` +
          `at ready (spawner.info.rssBytes); now VmRSS ${mib(z.vmRssBytes)}, VmHWM ${mib(z.vmHwmBytes)},`,
      );
      out(`    private dirty ${mib(z.privateDirtyBytes)}, ${z.mappings} mappings`);
      const served = inst.spawner.stats().completed;
      out(`  a running job (bench/fixtures/hold.mjs: builds the table, then sleeps; read from /proc/<pid>/smaps_rollup 300 ms in):`);
      const memRows: string[][] = [];
      for (const [zygote, m] of [
        ['fresh', freshMemory],
        [`after ${served - jm.samples} jobs`, jm],
      ] as const) {
        if (!m) continue;
        const range = m.samples > 1 ? ` (${(m.privateDirtyRange[0] / 2 ** 20).toFixed(1)}-${(m.privateDirtyRange[1] / 2 ** 20).toFixed(1)})` : '';
        memRows.push([zygote, String(m.samples), `${mib(m.job.privateDirty)}${range}`, mib(m.job.pss), mib(m.job.rss), mib(m.intermediate.privateDirty)]);
      }
      out(indent(table(['zygote', 'samples', 'job private dirty', 'job PSS', 'job RSS', 'intermediate private dirty'], memRows), 4));
      out(
        `  per job, means over the concurrency-1 runs: cgroup peak ` +
          `${mib(mean(c1, (r) => r.peakMemoryBytes))} (r.peakMemoryBytes), peak ` +
          `RSS ${mib(mean(c1, (r) => r.maxRssBytes))} (r.maxRssBytes, counts ` +
          `shared pages), CPU ${ms(mean(c1, (r) => r.cpuMs))} ms (r.cpuMs)`,
      );
      out();

      const phases: [string, string][] = [
        ['queueMs', 'run() -> request sent'],
        ['requestMs', 'request sent -> zygote received it (preforked: -> the waiting child has the payload)'],
        ['forkMs', 'zygote: fork of the zygote -> intermediate running'],
        ['cloneMs', 'intermediate: clone into namespaces, id maps, cgroup -> child released'],
        ['runMs', "the child's part, = the next four"],
        ['  specializeMs', 'child: mounts, pivot_root, ids, capabilities, Landlock, seccomp'],
        ['  importMs', 'child: post-fork hygiene, the job module linked and evaluated'],
        ['  jobMs', 'child: payload decode, the job function'],
        ['  resultMs', 'child: result encode and write, exit (tearing down its address space)'],
        ['reapMs', 'child exited -> result read, decoded, validated'],
        ['totalMs', 'request sent -> settled'],
      ];
      const forkedRow = rows.find((r) => r.c === nodespawnerForked && r.inst);
      const forked = forkedRow ? (merge(forkedRow.c1).extras as RunResult[]) : null;
      const col = (rs: RunResult[], k: string) => summarize(rs.map((r) => r.timings[k.trim() as keyof RunTimings]));
      out(
        `where a nodespawner job's time goes (r.timings; ${c1.length} runs at concurrency ` +
          `1, ${c2.length} at concurrency 2; and the concurrency-1 runs with prefork: 0)`,
      );
      out(
        table(
          ['phase', 'mean', 'p50', 'p99', 'mean c=2', 'prefork: 0 mean', 'p50', 'what'],
          phases.map(([k, what]) => [
            k,
            ms(col(c1, k).mean),
            ms(col(c1, k).p50),
            ms(col(c1, k).p99),
            ms(col(c2, k).mean),
            forked ? ms(col(forked, k).mean) : '-',
            forked ? ms(col(forked, k).p50) : '-',
            what,
          ]),
          [7],
        ),
      );
      const sumMeans = (['requestMs', 'forkMs', 'cloneMs', 'runMs', 'reapMs'] as const).reduce((a, k) => a + col(c1, k).mean, 0);
      out(
        `  requestMs..reapMs add up to totalMs (${ms(sumMeans)} vs ${ms(col(c1, 'totalMs').mean)} ` +
          `ms mean); the round trip above adds run() itself: argument encoding, the queue, settling.`,
      );
      const pre = (rs: RunResult[]) => rs.filter((r) => r.preforked).length;
      out(
        `  runs that went to a preforked child (forkMs, cloneMs, specializeMs, importMs are 0 for them): ` +
          `${pre(c1)} of ${c1.length} at concurrency 1, ${pre(c2)} of ${c2.length} at concurrency 2.`,
      );
      const ip = await inProcess(cfg.quick ? 100 : 500);
      out(
        `  For scale, the job alone in this warm process (Thrift decode, table, Arrow ` +
          `IPC encode and decode): p50 ${ms(ip.p50, 3)} ms, mean ${ms(ip.mean, 3)} ms.`,
      );
      out();
    }

    // ---- through a BullMQ queue ----
    if (cfg.bullmq && cfg.only.has('nodespawner')) {
      const q = await queueBench(cfg.quick ? 40 : cfg.iterations, Math.min(cfg.warmup, 10));
      if ('skipped' in q) {
        out(`through a BullMQ queue: skipped: ${q.skipped}`);
      } else {
        out(`through a BullMQ queue (nodespawner/bullmq): RemoteSpawner.run() to worker processes on this machine (each a Spawner of`);
        out(`  concurrency 2 taking 2 jobs at once), Redis on a unix socket, beside Spawner.run() here (concurrency 2)`);
        out(
          indent(
            table(
              ['path', 'p50 ms', 'p99 ms', 'mean ms', 'jobs/s c=1', `jobs/s, ${inFlight} in flight`],
              q.map((r) => [r.label, ms(r.c1.p50), ms(r.c1.p99), ms(r.c1.mean), rate(1000 / r.c1.mean), rate(r.perSec)]),
              [0],
            ),
          ),
        );
      }
      out();
    }

    // ---- sandbox layers ----
    if (cfg.layers && cfg.only.has('nodespawner')) {
      const lr = await layers(cfg.layerIterations, Math.min(cfg.warmup, 10));
      const base = lr[0];
      out(`what each sandbox layer costs: nodespawner with one layer off (options for tests and debugging), ${cfg.layerIterations} jobs each,`);
      out(`  concurrency 1, the zygotes taking turns; a layer's cost as a whole (negative: faster without it), not a phase the library times`);
      out(
        indent(
          table(
            ['variant', 'p50 ms', 'p99 ms', 'mean ms', 'p50 - default', 'cloneMs p50', 'cloneMs p99', 'runMs p50'],
            lr.map((r) => [
              r.label,
              ms(r.latency.p50),
              ms(r.latency.p99),
              ms(r.latency.mean),
              r === base ? '-' : `${r.latency.p50 >= base.latency.p50 ? '+' : ''}${ms(r.latency.p50 - base.latency.p50)}`,
              ms(r.clone.p50),
              ms(r.clone.p99),
              ms(r.run.p50),
            ]),
          ),
        ),
      );
      out();
    }

    // ---- the floor ----
    const opened = openFloor();
    const floor = 'skipped' in opened ? null : opened;
    if ('skipped' in opened) {
      out(`floor: skipped: ${opened.skipped}`);
      out();
    }
    let sandboxFloor: SandboxFloorResult | null = null;
    const floorAt = floor && ((mibs: number) => ({ small: floor.run(mibs, cfg.floorIterations, false), thp: floor.run(mibs, cfg.floorIterations, true) }));
    const floorLine = (f: FloorResult, what: string) =>
      `  ${what.padEnd(32)} p50 ${ms(f.p50, 3)} ms, p99 ${ms(f.p99, 3)}, mean ${ms(f.mean, 3)}, min ` +
      `${ms(f.min, 3)} (RSS ${mib(f.rssKiB * 1024)}, ${mib(f.anonHugeKiB * 1024)} in huge pages)`;
    try {
      if (floorAt) {
        const size = zygoteRssMiB || 60;
        progress(`floor: fork+exit of a ${size} MiB process`);
        const f = floorAt(size);
        out(
          `floor: fork() + _exit() + waitpid() of a C process of ${size} MiB touched ` +
            `memory${zygoteRssMiB ? " (the zygote's VmRSS)" : ''}, ` +
            `${cfg.floorIterations} forks (bench/fixtures/fork-floor.c)`,
        );
        out(floorLine(f.small, '4 KiB pages (MADV_NOHUGEPAGE):'));
        out(floorLine(f.thp, 'transparent huge pages:'));
        const empty = floor!.run(0, cfg.floorIterations, false);
        out(floorLine(empty, 'an empty process, for scale:'));
        out();
        sandboxFloor = sandboxFloorSection(floor!, size, cfg.sandboxFloorJobs, out);
      }

      // ---- preload-heavy ----
      let heavy: HeavyResult | null = null;
      if (cfg.heavy) {
        heavy = await preloadHeavy(cfg.heavyIterations, Math.min(cfg.warmup, 10));
        const h = heavy;
        const sideRow = (name: string, s: HeavyResult['empty']) => [
          name,
          mib(s.rssBytes),
          s.startMs.toFixed(0),
          ms(s.latency.p50),
          ms(s.latency.p99),
          ms(s.latency.mean),
          ms(s.timings.forkMs),
          ms(s.timings.cloneMs),
          ms(s.timings.runMs),
          ms(s.timings.reapMs),
        ];
        out(`preload-heavy: a zygote preloading ~200 MiB of live data (${rel(fixture('heavy-preload.mjs'))}) against one preloading nothing`);
        out(`  beyond apache-arrow and thrift; concurrency 1, ${h.iterations} jobs each, the two zygotes taking turns`);
        out(
          table(
            ['zygote', 'RSS at ready', 'start ms', 'p50 ms', 'p99 ms', 'mean ms', 'forkMs', 'cloneMs', 'runMs', 'reapMs'],
            [sideRow('empty', h.empty), sideRow('~200 MiB preload', h.heavy)],
          ),
        );
        out(
          `  per job, heavy / empty: p50 ${ratio(h.heavy.latency.p50 / h.empty.latency.p50)}, mean ` +
            `${ratio(h.heavy.latency.mean / h.empty.latency.mean)} (phases are means of r.timings)`,
        );
        if (floorAt) {
          const size = Math.ceil(h.heavy.rssBytes / 2 ** 20);
          progress(`floor: fork+exit of a ${size} MiB process`);
          const f = floorAt(size);
          out(`  floor at that size (${size} MiB):`);
          out(floorLine(f.small, '4 KiB pages (MADV_NOHUGEPAGE):'));
          out(floorLine(f.thp, 'transparent huge pages:'));
        }
        out();
      }

      // ---- the heap arena ----
      if (cfg.arena && cfg.only.has('nodespawner')) {
        const sides = await heapArena(cfg.arenaIterations, Math.min(cfg.warmup, 10), cfg.heavy);
        out(`the heap arena (spawner option heapArena): V8's heap pages in one range, collapsed into huge pages before serving, against`);
        out(
          `  V8's own placement; the zygotes taking turns in 3 rounds: ${cfg.arenaIterations} ` +
            `jobs back to back and ${2 * cfg.arenaIterations} at concurrency 2 each`,
        );
        out(
          indent(
            table(
              ['zygote', 'anon mappings', 'anon RSS', 'huge pages', 'p50 ms c=1', 'p99 ms c=1', 'mean ms c=1', 'jobs/s c=2', 'machine CPU/job'],
              sides.map((s) => [
                s.label,
                String(s.mappings),
                mib(s.anonymousBytes),
                s.heapArena ? mib(s.hugePageBytes) : '-',
                ms(s.c1.p50),
                ms(s.c1.p99),
                ms(s.c1.mean),
                rate(s.perSec),
                `${ms(s.machineMsPerJob)} ms`,
              ]),
              [0],
            ),
          ),
        );
        for (let i = 0; i + 1 < sides.length; i += 2) {
          const [on, off] = [sides[i], sides[i + 1]];
          out(
            `  ${on.label.replace(/, arena on$/, '')}: arena on / off: ` +
              `jobs/s ${ratio(on.perSec / off.perSec)}, machine CPU ` +
              `per job ${ratio(on.machineMsPerJob / off.machineMsPerJob)}, ` +
              `p50 back to back ${ratio(on.c1.p50 / off.c1.p50)}`,
          );
        }
        out(
          `  (anon mappings: the zygote's private writable anonymous mappings at ready, ` +
            `which a fork copies entry by entry; huge pages: collapsed before serving)`,
        );
        out();
      }

      // ---- targets ----
      const coldRow = rows.find((r) => r.c === cold && r.inst);
      const coldP50 = coldRow ? summarize(merge(coldRow.c1).latencies).p50 : NaN;
      const nsC2 = ns ? perSec(merge(ns.c2)) : NaN;
      const verdict = (measured: number, ok: (x: number) => boolean) => (!Number.isFinite(measured) ? 'not measured' : ok(measured) ? 'met' : 'not met');
      const heavyRatio = heavy ? heavy.heavy.latency.p50 / heavy.empty.latency.p50 : NaN;
      out(`targets from the issue (a report, not a test: nothing here fails the run)`);
      out(
        table(
          ['target', 'measured', ''],
          [
            ['round trip p50 <= 1 ms', nsC1 ? `${ms(nsC1.p50)} ms` : '-', verdict(nsC1?.p50 ?? NaN, (x) => x <= 1)],
            ['round trip p99 <= 5 ms', nsC1 ? `${ms(nsC1.p99)} ms` : '-', verdict(nsC1?.p99 ?? NaN, (x) => x <= 5)],
            ['>= 1,000 jobs/s at concurrency 2', `${rate(nsC2)} jobs/s`, verdict(nsC2, (x) => x >= 1000)],
            ['>= 100x faster than cold node (p50)', `${ratio(coldP50 / (nsC1?.p50 ?? NaN))}`, verdict(coldP50 / (nsC1?.p50 ?? NaN), (x) => x >= 100)],
            ['200 MiB preload <= 1.5x slower (p50)', `${ratio(heavyRatio)}`, verdict(heavyRatio, (x) => x <= 1.5)],
          ],
          [2],
        ),
      );
      if (sandboxFloor) {
        // A lower bound on what one sandboxed job costs the machine: the sandbox's own steps, plus the
        // job and the coding of its arguments and result with no sandbox at all (piscina's workers).
        const f = sandboxFloor;
        const pool = rows.find((r) => r.c === piscina && r.cpu2);
        const jobMs = pool ? pool.cpu2!.machineMs / pool.cpu2!.jobs : NaN;
        const cpuMsPerSecond = os.cpus().length * 1000;
        out(
          `  1,000 jobs/s at concurrency 2 on ${os.cpus().length} CPUs needs at most ` +
            `${ms(cpuMsPerSecond / 1000)} ms of machine CPU per job. The sandbox floor above takes`,
        );
        out(
          `  ${ms(f.machine_cpu_ms_per_job)} ms (${rate(f.jobs_per_s)} jobs/s) with no Node and no ` +
            `job${Number.isFinite(jobMs) ? `, and the job with its arguments and result coded, in piscina's workers,` : '.'}`,
        );
        if (Number.isFinite(jobMs)) {
          const least = f.machine_cpu_ms_per_job + jobMs;
          out(
            `  ${ms(jobMs)} ms: ${ms(least)} ms together, so at most ${rate(cpuMsPerSecond / least)} ` +
              `jobs/s for a fork server with this sandbox and an intermediate per job here.`,
          );
        }
        if (Number.isFinite(nsC2)) out(`  nodespawner's ${rate(nsC2)} jobs/s are ${((nsC2 / f.jobs_per_s) * 100).toFixed(0)} % of the floor's.`);
      }
      out();
    } finally {
      floor?.close();
    }
  } finally {
    for (const r of rows) await r.inst?.close();
  }
  if (summary) {
    const others = otherNodes();
    const per: NodeSummary[] = [summary];
    out();
    out(`per Node version: the figures above for ${process.version}, and a short run (--quick) of the same contenders on each other supported Node`);
    for (const node of others) {
      const got = summaryOf(node, progress);
      if (typeof got === 'string') out(`  ${node}: ${got}`);
      else per.push(got);
    }
    if (others.length === 0) out('  (no other Node found: `npm run test:all` installs Node 22 and 24; or name them in NODESPAWNER_BENCH_NODES)');
    const md = summaryTable(per);
    out(md);
    if (cfg.writeDocs) {
      const machine = `${os.cpus().length} × ${os.cpus()[0]?.model.trim() ?? 'unknown CPU'}, ${os.type()} ${os.release()}`;
      const context = `Measured by \`npm run bench -- --write-docs\` on ${machine}, on ${new Date().toISOString().slice(0, 10)}; the first row in full, the others with \`--quick\`.`;
      out(writeDocs(md, context) ? 'written into docs/performance.md' : 'docs/performance.md has no summary markers: not written');
    }
  }
  out();
  out(`warm code in children (V8's own view, which differs between Node versions: reported here, not asserted by the tests)`);
  try {
    for (const c of await warmChecks()) out(`  ${c.ok ? 'ok    ' : 'NOT OK'} ${c.name}: ${c.detail}`);
  } catch (e) {
    out(`  failed to run: ${(e as Error).message}`);
  }
  out(
    `benchmark took ${((performance.now() - benchStart) / 1000).toFixed(1)} s; load average at the end: ${os
      .loadavg()
      .map((x) => x.toFixed(2))
      .join(' ')}`,
  );
  return 0;
}

// Also runnable on its own: node dist/bench/roundtrip.js [options]
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main(process.argv.slice(2)).then(
    (code) => (process.exitCode = code),
    (e) => {
      console.error(e);
      process.exitCode = 1;
    },
  );
}
