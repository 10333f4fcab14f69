// --preload-heavy: a zygote that preloads ~200 MiB (fixtures/heavy-preload.mjs) against one that
// preloads nothing beyond apache-arrow and thrift. Jobs alternate between the two zygotes, one at
// a time, so that both see the same machine.
import type { RunResult, RunTimings } from '../lib/index.js';
import { openSpawner } from './contenders/nodespawner.js';
import { fixture, progress, summarize } from './util.js';
import type { Summary } from './util.js';

export interface HeavySide {
  rssBytes: number;
  startMs: number;
  latency: Summary;
  timings: Record<keyof RunTimings, number>;
}

export interface HeavyResult {
  iterations: number;
  empty: HeavySide;
  heavy: HeavySide;
}

function meanTimings(rs: RunResult[]): Record<keyof RunTimings, number> {
  const keys = Object.keys(rs[0].timings) as (keyof RunTimings)[];
  return Object.fromEntries(keys.map((k) => [k, rs.reduce((a, r) => a + r.timings[k], 0) / rs.length])) as Record<keyof RunTimings, number>;
}

export async function preloadHeavy(iterations: number, warmup: number): Promise<HeavyResult> {
  progress('preload-heavy: starting a zygote that preloads ~200 MiB');
  const empty = await openSpawner({ concurrency: 1 });
  try {
    const heavy = await openSpawner({ concurrency: 1, preload: [fixture('heavy-preload.mjs')], startTimeout: 180_000 });
    try {
      for (let i = 0; i < warmup; i++) {
        await empty.run();
        await heavy.run();
      }
      const sides = [empty, heavy].map(() => ({ latencies: [] as number[], results: [] as RunResult[] }));
      for (let i = 0; i < iterations; i++) {
        // Alternate which goes first, so neither always follows the other.
        const order = i % 2 === 0 ? [0, 1] : [1, 0];
        for (const s of order) {
          const inst = s === 0 ? empty : heavy;
          const t = performance.now();
          const r = (await inst.run()) as RunResult;
          sides[s].latencies.push(performance.now() - t);
          sides[s].results.push(r);
        }
      }
      const side = (inst: typeof empty, s: number): HeavySide => ({
        rssBytes: inst.spawner.info.rssBytes,
        startMs: inst.startMs,
        latency: summarize(sides[s].latencies),
        timings: meanTimings(sides[s].results),
      });
      return { iterations, empty: side(empty, 0), heavy: side(heavy, 1) };
    } finally {
      await heavy.close();
    }
  } finally {
    await empty.close();
  }
}
