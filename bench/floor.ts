// The floor: fork() + _exit() + waitpid() of a process as large as the zygote, timed by a tiny C
// program (fixtures/fork-floor.c) compiled here with `cc`. No Node, no namespaces, no sandbox: what
// any fork server of that size pays at least.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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

export interface Floor {
  run(mib: number, iterations: number, thp: boolean): FloorResult;
  close(): void;
}

/** Compiles fork-floor.c; or says why it cannot. */
export function openFloor(): Floor | { skipped: string } {
  const dir = mkdtempSync(join(tmpdir(), 'nodespawner-bench-'));
  const binary = join(dir, 'fork-floor');
  const cc = spawnSync(process.env.CC || 'cc', ['-O2', '-o', binary, fixture('fork-floor.c')], { encoding: 'utf8' });
  if (cc.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    return { skipped: `cannot compile bench/fixtures/fork-floor.c with ${process.env.CC || 'cc'}: ${(cc.stderr || cc.error?.message || '').trim().split('\n')[0]}` };
  }
  return {
    run(mib, iterations, thp) {
      const r = spawnSync(binary, [String(mib), String(iterations), thp ? '1' : '0'], { encoding: 'utf8', timeout: 120_000 });
      if (r.status !== 0) throw new Error(`fork-floor failed: ${r.stderr || r.error?.message}`);
      return JSON.parse(r.stdout) as FloorResult;
    },
    close: () => rmSync(dir, { recursive: true, force: true }),
  };
}
