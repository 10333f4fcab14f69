// The heap arena (spawner option heapArena) on and off, for an empty zygote and, unless
// --no-preload-heavy, one that preloads ~200 MiB. Every job forks the zygote, so what the arena
// changes is the cost of each copy of it: shown as jobs/s and machine CPU per job in a closed loop
// at concurrency 2, and as the round trip back to back, where a replacement child is often still
// being forked. The zygotes take turns, in rounds.
import { readFileSync } from 'node:fs';
import { openSpawner } from './contenders/nodespawner.js';
import type { NodespawnerInstance } from './contenders/nodespawner.js';
import { closedLoop, fixture, machineBusyMs, procKb, progress, sequential, summarize } from './util.js';
import type { Summary } from './util.js';

export interface ArenaSide {
  label: string;
  heapArena: boolean;
  hugePageBytes: number;
  /** Private writable anonymous mappings of the zygote at ready: what a fork copies page by page. */
  mappings: number;
  anonymousBytes: number;
  c1: Summary;
  perSec: number;
  machineMsPerJob: number;
}

function zygoteMaps(pid: number): { mappings: number; anonymousBytes: number } {
  const maps = readFileSync(`/proc/${pid}/maps`, 'utf8').trim().split('\n');
  const anon = maps.filter((line) => {
    const [, perms, , , inode, name] = line.split(/\s+/);
    return perms.startsWith('rw') && perms.endsWith('p') && inode === '0' && !name;
  });
  return { mappings: anon.length, anonymousBytes: procKb(`/proc/${pid}/status`).RssAnon ?? 0 };
}

export async function heapArena(iterations: number, warmup: number, heavy: boolean): Promise<ArenaSide[]> {
  const kinds: Array<[string, string[]]> = [['empty', []]];
  if (heavy) kinds.push(['~200 MiB preload', [fixture('heavy-preload.mjs')]]);
  const sides: Array<{ label: string; inst: NodespawnerInstance; on: boolean; maps: ReturnType<typeof zygoteMaps> }> = [];
  try {
    for (const [kind, preload] of kinds) {
      for (const on of [true, false]) {
        progress(`heap arena: starting a zygote (${kind}, heapArena: ${on})`);
        const inst = await openSpawner({ concurrency: 2, preload, heapArena: on, startTimeout: 180_000 });
        sides.push({ label: `${kind}, arena ${on ? 'on' : 'off'}`, inst, on, maps: zygoteMaps(inst.spawner.pid) });
      }
    }
    for (const s of sides) for (let i = 0; i < warmup; i++) await s.inst.run();
    const rounds = 3;
    const per = Math.max(1, Math.ceil(iterations / rounds));
    const c1 = sides.map(() => [] as number[]);
    const c2 = sides.map(() => ({ jobs: 0, wallMs: 0, machineMs: 0 }));
    for (let round = 0; round < rounds; round++) {
      for (let k = 0; k < sides.length; k++) {
        const j = (round + k) % sides.length; // rotate who goes first
        progress(`heap arena: round ${round + 1}/${rounds}: ${sides[j].label}`);
        const m1 = await sequential(sides[j].inst.run, per);
        c1[j].push(...m1.latencies);
        const machine0 = machineBusyMs();
        const m2 = await closedLoop(sides[j].inst.run, 2, 2 * per);
        c2[j].machineMs += machineBusyMs() - machine0;
        c2[j].wallMs += m2.wallMs;
        c2[j].jobs += m2.latencies.length;
      }
    }
    return sides.map((s, j) => ({
      label: s.label,
      heapArena: s.inst.spawner.info.heapArena,
      hugePageBytes: s.inst.spawner.info.hugePageBytes,
      mappings: s.maps.mappings,
      anonymousBytes: s.maps.anonymousBytes,
      c1: summarize(c1[j]),
      perSec: (c2[j].jobs / c2[j].wallMs) * 1000,
      machineMsPerJob: c2[j].machineMs / c2[j].jobs,
    }));
  } finally {
    for (const s of sides) await s.inst.close();
  }
}
