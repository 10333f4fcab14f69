// The zygote's heap arena (native/arena.c, spawner option heapArena): V8's heap pages packed in one
// range, its resident 2 MiB extents collapsed into huge pages before serving; the app's own
// LD_PRELOAD kept; the allocator's ranges handed back, reused and merged.
import fs from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import { Spawner } from '../lib/index.js';
import { arenaLibrary, zygotePreload } from '../lib/zygote-process.js';
import { addonPath } from '../lib/native.js';
import { fixture, runProgram, skipBecause, tempDir } from './helpers.js';

const addon = addonPath;

/** Private, writable, anonymous mappings of a process: what each fork copies page by page. */
function anonymousMappings(pid: number): number {
  return fs
    .readFileSync(`/proc/${pid}/maps`, 'utf8')
    .trim()
    .split('\n')
    .filter((line) => {
      const [, perms, , , inode, name] = line.split(/\s+/);
      return perms.startsWith('rw') && perms.endsWith('p') && inode === '0' && !name;
    }).length;
}

function anonHugePagesKb(pid: number): number {
  const m = /^AnonHugePages:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
  return m ? Number(m[1]) : 0;
}

/** The host's transparent huge page mode: always, madvise or never (MADV_COLLAPSE needs one of the first two). */
function thpMode(): string | null {
  try {
    return /\[(\w+)\]/.exec(fs.readFileSync('/sys/kernel/mm/transparent_hugepage/enabled', 'utf8'))?.[1] ?? null;
  } catch {
    return null;
  }
}

describe('the heap arena', function () {
  let withArena: Spawner;
  let without: Spawner;

  before(async function () {
    [withArena, without] = await Promise.all([Spawner.start({ concurrency: 1 }), Spawner.start({ concurrency: 1, heapArena: false })]);
  });

  after(async function () {
    await Promise.all([withArena?.close(), without?.close()]);
  });

  it('is on by default: the zygote preloads it and V8 heap pages land in it, in far fewer mappings', function () {
    expect(withArena.info.heapArena).to.equal(true);
    expect(withArena.info.heapArenaNote).to.equal(null);
    const zygoteMaps = fs.readFileSync(`/proc/${withArena.pid}/maps`, 'utf8');
    expect(zygoteMaps).to.include(arenaLibrary);
    const packed = anonymousMappings(withArena.pid);
    const scattered = anonymousMappings(without.pid);
    expect(packed, `anonymous mappings with the arena (${packed}) against without (${scattered})`).to.be.below(scattered * 0.75);
  });

  it('collapses the resident arena into huge pages before the zygote serves', function () {
    const mode = thpMode();
    if (mode === null || mode === 'never') {
      expect(withArena.info.hugePageBytes).to.equal(0);
      expect(withArena.info.heapArenaNote).to.include('MADV_COLLAPSE');
      skipBecause(this, `transparent huge pages are ${mode ?? 'not available'} on this host: only the note is checked`);
    }
    expect(withArena.info.hugePageBytes, 'bytes collapsed').to.be.above(0);
    expect(withArena.info.hugePageBytes % (2 * 2 ** 20)).to.equal(0);
    expect(anonHugePagesKb(withArena.pid), "the zygote's AnonHugePages").to.be.above(0);
  });

  it('keeps huge pages through hundreds of jobs: the zygote collapses its heap again between requests', async function () {
    const mode = thpMode();
    if (mode === null || mode === 'never') skipBecause(this, `transparent huge pages are ${mode ?? 'not available'} on this host`);
    // The zygote's own writes after each fork split the huge pages they touch: without collapsing
    // again, none were left after 500 jobs.
    for (let i = 0; i < 500; i++) await withArena.run(fixture('sum.mjs'), { values: [1, 2] });
    // Idle for 100 ms, the zygote collapses whatever split since it last did.
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(anonHugePagesKb(withArena.pid), "the zygote's AnonHugePages after 500 jobs").to.be.above(0);
  });

  it('is off with heapArena: false: no preload, no note, the same results', async function () {
    expect(without.info.heapArena).to.equal(false);
    expect(without.info.hugePageBytes).to.equal(0);
    expect(without.info.heapArenaNote).to.equal(null);
    expect(fs.readFileSync(`/proc/${without.pid}/maps`, 'utf8')).to.not.include('nodespawner_arena');
    const [a, b] = await Promise.all([withArena.run(fixture('arena-job.mjs'), {}), without.run(fixture('arena-job.mjs'), {})]);
    expect(a.value).to.deep.equal(b.value);
  });

  it("lets a job's V8 map and unmap many large pages through its copy of the arena", async function () {
    for (let i = 0; i < 3; i++) {
      const r = await withArena.run<{ sum: number; preload: string | null }>(fixture('arena-job.mjs'), {});
      expect(r.exitCode).to.equal(0);
      expect(r.value!.sum).to.equal((79 * 80) / 2);
      expect(r.value!.preload, 'the arena is not in the environment a job sees').to.equal(null);
    }
  });

  it("keeps the app's own LD_PRELOAD: loaded in the zygote and its jobs, and the only one they see", async function () {
    const library = ['/lib/x86_64-linux-gnu/libz.so.1', '/usr/lib/x86_64-linux-gnu/libz.so.1'].find((p) => fs.existsSync(p));
    if (!library) skipBecause(this, 'no libz.so.1 on this host to preload');
    const s = await Spawner.start({ concurrency: 1, env: { LD_PRELOAD: library! } });
    try {
      expect(s.info.heapArena).to.equal(true);
      const zygoteMaps = fs.readFileSync(`/proc/${s.pid}/maps`, 'utf8');
      expect(zygoteMaps).to.include(arenaLibrary);
      expect(zygoteMaps).to.include(fs.realpathSync(library!));
      const r = await s.run<{ preload: string; mapped: boolean }>(fixture('arena-job.mjs'), { library: fs.realpathSync(library!) });
      expect(r.value!.preload).to.equal(library);
      expect(r.value!.mapped).to.equal(true);
    } finally {
      await s.close();
    }
  });

  it('hands ranges back, reuses and merges them as V8 maps and unmaps pages', async function () {
    const run = await runProgram(process.execPath, ['--expose-gc', fixture('arena-churn.mjs'), addon], {
      env: { ...process.env, LD_PRELOAD: arenaLibrary },
      timeoutMs: 100_000,
    });
    expect(run.code, run.output).to.equal(0);
    const out = JSON.parse(run.stdout.trim().split('\n').pop()!);
    expect(out.before, 'the arena is active in a process that preloads it').to.not.equal(null);
    // 60 rounds of 16 MiB: without reuse the arena would have handed out close to 1 GiB more.
    expect(out.after.takenBytes - out.before.takenBytes, 'bytes still handed out after the churn').to.be.below(128 * 2 ** 20);
    expect(out.after.freeRanges, 'free ranges (merged)').to.be.below(64);
    expect(out.after.fallbacks).to.equal(0);
    expect(out.after.lostBytes).to.equal(0);
    expect(out.arenaMappings, 'mappings inside the arena').to.be.below(100);
    expect(out.sums).to.deep.equal(Array.from({ length: 60 }, (_, r) => 8 * r + 28));
  });

  it('never hands a range out twice: trims, double and overlapping unmaps, forks while another thread maps (a C check)', async function () {
    const dir = await tempDir();
    try {
      const binary = join(dir.path, 'arena-check');
      const cc = await runProgram('cc', ['-O2', '-o', binary, fixture('arena-check.c'), '-ldl', '-lpthread'], { timeoutMs: 100_000 });
      expect(cc.code, `cc failed: ${cc.output}`).to.equal(0);
      const run = await runProgram(binary, [], { env: { LD_PRELOAD: arenaLibrary }, timeoutMs: 100_000 });
      expect(run.code, run.output).to.equal(0);
      expect(run.stdout).to.match(/^ok /);
    } finally {
      await dir.remove();
    }
  });

  it('falls back to no arena, saying why, where LD_PRELOAD cannot carry its path or it is not built', function () {
    expect(zygotePreload(true, undefined, '/opt/my apps/arena.node')).to.deep.include({ value: undefined });
    expect(zygotePreload(true, undefined, '/opt/my apps/arena.node').note).to.include('space or colon');
    expect(zygotePreload(true, '/x/lib.so', '/opt/a:b/arena.node')).to.deep.include({ value: '/x/lib.so' });
    expect(zygotePreload(true, undefined, '/nonexistent/arena.node').note).to.include('not built');
    expect(zygotePreload(true, '/x/lib.so', arenaLibrary)).to.deep.equal({ value: `${arenaLibrary} /x/lib.so`, note: null });
    expect(zygotePreload(false, '/x/lib.so', arenaLibrary)).to.deep.equal({ value: '/x/lib.so', note: null });
  });
});
