// nodespawner with its default sandbox (every namespace, own root, Landlock, seccomp, cgroup), with
// and without preforked children.
import { Spawner } from '../../lib/index.js';
import type { RunResult } from '../../lib/index.js';
import { checkTable, fixture, jobArgs } from '../util.js';
import type { Contender, Instance } from './types.js';

export interface NodespawnerInstance extends Instance {
  spawner: Spawner;
  startMs: number;
}

export async function openSpawner(options: Parameters<typeof Spawner.start>[0] = {}): Promise<NodespawnerInstance> {
  const t0 = performance.now();
  const spawner = await Spawner.start({ concurrency: 2, ...options });
  const startMs = performance.now() - t0;
  const job = fixture('job.mjs');
  return {
    spawner,
    startMs,
    run: async (): Promise<RunResult> => {
      const r = await spawner.run(job, jobArgs);
      checkTable(r.table, 'nodespawner');
      return r;
    },
    close: () => spawner.close(),
  };
}

export const nodespawner: Contender = {
  key: 'nodespawner',
  label: 'nodespawner (default sandbox)',
  isolation: 'namespaces, seccomp, Landlock, cgroup',
  processPerJob: false,
  notes: [],
  open: () => openSpawner(),
};

/** The same without preforked children: every run forks, specializes and imports on the request path. */
export const nodespawnerForked: Contender = {
  key: 'nodespawner-fork',
  label: 'nodespawner, prefork: 0',
  isolation: 'the same',
  processPerJob: false,
  notes: [],
  open: () => openSpawner({ prefork: 0 }),
};

/**
 * The same job with sandbox.network 'egress' (a firewall and a userspace network stack per job):
 * skipped, saying why, where this host cannot give jobs egress.
 */
async function openEgress(options: Parameters<typeof Spawner.start>[0]): Promise<NodespawnerInstance | { skipped: string }> {
  let inst: NodespawnerInstance;
  try {
    inst = await openSpawner({ ...options, sandbox: { network: 'egress' } });
  } catch (e) {
    return { skipped: (e as Error).message };
  }
  try {
    await inst.run();
  } catch (e) {
    await inst.close();
    return { skipped: (e as Error).message };
  }
  return inst;
}

export const nodespawnerEgress: Contender = {
  key: 'nodespawner-egress',
  label: "nodespawner, network 'egress'",
  isolation: 'the same, public internet only',
  processPerJob: false,
  notes: [],
  open: () => openEgress({}),
};

/** Egress without preforked children: the firewall and the stack are set up on the request path. */
export const nodespawnerEgressForked: Contender = {
  key: 'nodespawner-egress-fork',
  label: "nodespawner, 'egress', prefork: 0",
  isolation: 'the same',
  processPerJob: false,
  notes: [],
  open: () => openEgress({ prefork: 0 }),
};
