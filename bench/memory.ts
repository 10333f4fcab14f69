// Memory: the zygote's resident size, and what one running job costs on top of it (the private
// pages of the job process and of its intermediate, from /proc/<pid>/smaps_rollup).
import { readFileSync } from 'node:fs';
import type { Spawner } from '../lib/index.js';
import { checkTable, descendants, fixture, jobArgs, procKb, sleep, summarize } from './util.js';

export interface ZygoteMemory {
  pid: number;
  readyRssBytes: number;
  vmRssBytes: number;
  vmHwmBytes: number;
  privateDirtyBytes: number;
  mappings: number;
}

export interface JobMemory {
  samples: number;
  /** Medians over the samples. */
  job: { privateDirty: number; privateClean: number; pss: number; rss: number };
  /** The smallest and largest private dirty of the samples. */
  privateDirtyRange: [number, number];
  intermediate: { privateDirty: number; pss: number };
}

export function zygoteMemory(spawner: Spawner): ZygoteMemory {
  const pid = spawner.pid;
  const status = procKb(`/proc/${pid}/status`);
  const rollup = procKb(`/proc/${pid}/smaps_rollup`);
  return {
    pid,
    readyRssBytes: spawner.info.rssBytes,
    vmRssBytes: status.VmRSS,
    vmHwmBytes: status.VmHWM,
    privateDirtyBytes: rollup.Private_Dirty,
    mappings: readFileSync(`/proc/${pid}/maps`, 'utf8').trim().split('\n').length,
  };
}

/**
 * Runs `samples` jobs that build the bench table and then sleep; while each sleeps, reads the job
 * process (the zygote's grandchild: zygote -> intermediate -> job) and the intermediate.
 */
export async function jobMemory(spawner: Spawner, samples: number): Promise<JobMemory> {
  const holdMs = 600;
  const pairs: Array<[Record<string, number>, Record<string, number>]> = [];
  for (let i = 0; i < samples; i++) {
    // The run's own process, named by its spawn event: preforked children wait under the zygote too.
    let spawned = 0;
    const onSpawn = (e: { pid: number }) => (spawned = e.pid);
    spawner.once('spawn', onSpawn);
    const pending = spawner.run(fixture('hold.mjs'), { ...jobArgs, holdMs });
    const deadline = Date.now() + 5_000;
    let found: { job: number; intermediate: number } | null = null;
    while (!found && Date.now() < deadline) {
      const j = spawned ? descendants(spawner.pid).find((p) => p.pid === spawned) : undefined;
      if (j) found = { job: j.pid, intermediate: j.ppid };
      else await sleep(1);
    }
    spawner.off('spawn', onSpawn);
    if (!found) throw new Error('memory: no job process appeared under the zygote');
    await sleep(holdMs / 2); // well past specialize, import and the table: the job is sleeping now
    try {
      pairs.push([procKb(`/proc/${found.job}/smaps_rollup`), procKb(`/proc/${found.intermediate}/smaps_rollup`)]);
    } catch {
      // gone already (a very slow machine): this sample is lost
    }
    checkTable((await pending).table, 'memory hold job');
  }
  if (pairs.length === 0) throw new Error('memory: no job could be sampled');
  const med = (rows: Array<Record<string, number>>, k: string) => summarize(rows.map((r) => r[k] ?? NaN)).p50;
  const job = pairs.map((p) => p[0]);
  const mid = pairs.map((p) => p[1]);
  return {
    samples: pairs.length,
    job: { privateDirty: med(job, 'Private_Dirty'), privateClean: med(job, 'Private_Clean'), pss: med(job, 'Pss'), rss: med(job, 'Rss') },
    privateDirtyRange: [Math.min(...job.map((r) => r.Private_Dirty)), Math.max(...job.map((r) => r.Private_Dirty))],
    intermediate: { privateDirty: med(mid, 'Private_Dirty'), pss: med(mid, 'Pss') },
  };
}
