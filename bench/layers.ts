// What each sandbox layer costs: nodespawner with its default sandbox against the same with one
// layer turned off (options that exist for tests and debugging). Jobs go round-robin over the
// zygotes, one at a time, so that all of them see the same machine. The differences are the
// measured cost of a layer as a whole, not a phase the library times.
import type { SandboxOptions } from '../lib/index.js';
import type { RunResult } from '../lib/index.js';
import { openSpawner } from './contenders/nodespawner.js';
import type { NodespawnerInstance } from './contenders/nodespawner.js';
import { progress, summarize } from './util.js';
import type { Summary } from './util.js';

export interface LayerRow {
  label: string;
  latency: Summary;
  clone: Summary;
  run: Summary;
}

const variants: Array<[string, SandboxOptions]> = [
  ['default sandbox', {}],
  ["limits: 'rlimit' (no job cgroup)", { limits: 'rlimit' }],
  ["network: 'host' (no network namespace)", { network: 'host' }],
  ['filesystem: false (no own root)', { filesystem: false }],
  ['seccomp: false', { seccomp: false }],
];

export async function layers(iterations: number, warmup: number): Promise<LayerRow[]> {
  progress('sandbox layers: starting one zygote per variant');
  const insts: NodespawnerInstance[] = [];
  try {
    // prefork: 0, so that every layer's set-up is on the request path and shows in the round trip.
    for (const [, sandbox] of variants) insts.push(await openSpawner({ concurrency: 1, prefork: 0, sandbox }));
    for (let i = 0; i < warmup; i++) for (const inst of insts) await inst.run();
    const lat: number[][] = insts.map(() => []);
    const res: RunResult[][] = insts.map(() => []);
    for (let i = 0; i < iterations; i++) {
      for (let k = 0; k < insts.length; k++) {
        const j = (i + k) % insts.length; // rotate who goes first
        const t = performance.now();
        res[j].push((await insts[j].run()) as RunResult);
        lat[j].push(performance.now() - t);
      }
    }
    return variants.map(([label], j) => ({
      label,
      latency: summarize(lat[j]),
      clone: summarize(res[j].map((r) => r.timings.cloneMs)),
      run: summarize(res[j].map((r) => r.timings.runMs)),
    }));
  } finally {
    for (const inst of insts) await inst.close();
  }
}
