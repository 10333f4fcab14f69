// The zygote: preload, warm up, prove that forks work, then serve run requests from a
// synchronous loop (blocking read -> fork -> loop) so that no libuv handle exists while forking.
//
//   node --single-threaded ... dist/zygote/main.js '<config json>'   (control socket on fd 3)
import fs from 'node:fs';
import v8 from 'node:v8';
import vm from 'node:vm';
import zlib from 'node:zlib';
import crypto from 'node:crypto';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { native, packageRoot } from '../lib/native.js';
import { T, ResultTag, decode, encode, fromWire, i64, payloadParts, splitTimings, toWire } from '../lib/wire.js';
import type { RunRequest } from '../lib/wire.js';
import { SandboxSetupError, errnoNames } from '../lib/errors.js';
import { syscallName } from '../lib/seccomp/syscalls.js';
import { resultRehearsal, warmUp, warmValueCoding } from './warmup.js';
import { jobCgroupDirs } from '../lib/cgroups.js';

export interface ZygoteConfig {
  appPid: number;
  preload: string[];
  /** Directory that bare preload names resolve from first (the app's cwd). */
  preloadBase: string;
  outerUid: number;
  outerGid: number;
  selfTest: boolean;
  /** The app asked for the heap arena (spawner option heapArena). */
  heapArena: boolean;
  /** The LD_PRELOAD the app set in `env`, if any: the one jobs see. */
  appPreload: string | null;
  /** Why the app could not preload the arena, if it could not. */
  heapArenaNote: string | null;
  /** fds the app had without CLOEXEC when it spawned us: inherited by mistake, closed at once. */
  inheritedFds: number[];
  /** base64 of the compiled seccomp program every job installs; empty for none. */
  seccomp: string;
  /** The same policy with kills turned into traps, for the self-test; empty for none. */
  selfTestSeccomp: string;
  /** base64 of the zygote's own filter (lib/seccomp/policy.ts zygotePolicy), inherited by every job. */
  zygoteSeccomp: string;
  /** The spawner's cgroup directories (job cgroups are made below them): removed here if the app dies first. */
  cgroupParents: string[];
}

/** Always preloaded, from nodespawner's own dependencies: the instances the job runner uses. */
const builtinPreloads = ['apache-arrow', 'thrift'];

const config = JSON.parse(process.argv[2] ?? '{}') as ZygoteConfig;
// Read by libuv when it started; jobs see only the environment the app named.
delete process.env.UV_USE_IO_URING;
// Read by the dynamic loader when it started: jobs see the app's own LD_PRELOAD, if any.
if (config.appPreload === null || config.appPreload === undefined) delete process.env.LD_PRELOAD;
else process.env.LD_PRELOAD = config.appPreload;
for (const fd of config.inheritedFds ?? []) if (fd > 3) native.close(fd);
// Node 22+ creates process.stderr (a PipeWrap for the app's pipe) while loading node:util; it is
// created here on every version, so that the handles the zygote starts with are the same, and every
// child writes to its own stderr through it (fd 2 is the job's pipe there).
void process.stderr;
const resourcesAtStart = process.getActiveResourcesInfo();
const fdsAtStart = new Map(native.listFds());
// The job runner's own code (runChild, the post-fork hygiene, the linker's loading of files) runs
// in every child and not in the zygote, so V8 compiled it lazily in each child: before a preforked
// child is ready, and on the run's path without one (A/B with prefork: 0, importMs p50 2.55-2.92 ->
// 2.02-2.06 ms). It is compiled here, once; the job modules a child loads stay lazy. (V8 drops the
// bytecode of a function that has not run for 5 full GCs; the zygote did not get there in 4,500 jobs.)
v8.setFlagsFromString('--no-lazy');
const { Linker } = await import('./linker.js');
const { runChild } = await import('./child.js');
const { installInZygote } = await import('./hygiene.js');
v8.setFlagsFromString('--lazy');
const linker = new Linker();
/** The seccomp program the app compiled (struct sock_filter[]); every job installs it last. */
const seccomp = Buffer.from(config.seccomp ?? '', 'base64');
const selfTestSeccomp = Buffer.from(config.selfTestSeccomp ?? '', 'base64');
const preloadedFiles: string[] = [];
let control = -1;

function fatal(code: string, message: string): never {
  try {
    native.sendMessage(control, encode(T.ZygoteEvent, { fatal: { code, message } }), []);
  } catch {
    process.stderr.write(`nodespawner zygote: ${code}: ${message}\n`);
  }
  return native.exit(70);
}

function resolvePreload(spec: string, bases: string[]): string {
  if (spec.startsWith('/')) return pathToFileURL(spec).href;
  if (spec.startsWith('file:')) return spec;
  const errors: string[] = [];
  for (const base of bases) {
    try {
      return (import.meta as unknown as { resolve(s: string, p: string): string }).resolve(spec, pathToFileURL(join(base, 'noop.js')).href);
    } catch (err) {
      errors.push(`from ${base}: ${(err as Error).message}`);
    }
  }
  throw new Error(`cannot resolve ${JSON.stringify(spec)} (${errors.join('; ')})`);
}

async function preload(): Promise<string[]> {
  const loaded: string[] = [];
  const specs = [...builtinPreloads, ...config.preload.filter((s) => !builtinPreloads.includes(s))];
  for (const spec of specs) {
    const bases = builtinPreloads.includes(spec) ? [packageRoot] : [config.preloadBase, packageRoot];
    let url: string;
    let ns: Record<string, unknown>;
    try {
      url = resolvePreload(spec, bases);
      ns = (await import(url)) as Record<string, unknown>;
    } catch (err) {
      fatal('PRELOAD_FAILED', `preload ${JSON.stringify(spec)} failed: ${(err as Error)?.stack ?? String(err)}`);
    }
    await linker.addPreloaded([spec, url], ns);
    if (url.startsWith('file:')) preloadedFiles.push(fileURLToPath(url));
    loaded.push(spec);
  }
  return loaded;
}

/** Use the libuv threadpool once, so that the self-test proves forks work after the zygote did. */
async function touchThreadpool(): Promise<void> {
  await fs.promises.readFile('/proc/self/status');
  await promisify(zlib.gzip)(Buffer.from('warm'));
  await promisify(crypto.pbkdf2)('warm', 'salt', 1, 16, 'sha256');
}

interface JobFds {
  status: number;
  stdout: number;
  stderr: number;
  result: number;
  payload: number;
}

/** Forks one job. Returns true in the job child (which then runs the job), false in the zygote. */
function fork(req: RunRequest, fds: JobFds, receivedNs: bigint, filter = seccomp): boolean {
  const out = native.forkJob({
    statusFd: fds.status,
    stdoutFd: fds.stdout,
    stderrFd: fds.stderr,
    resultFd: fds.result,
    payloadFd: fds.payload,
    controlFd: control,
    hostname: req.hostname,
    outerUid: config.outerUid,
    outerGid: config.outerGid,
    cloneFlags: req.cloneFlags,
    uid: req.uid,
    gid: req.gid,
    mounts: req.mounts.map((m) => ({
      kind: m.kind,
      source: m.source,
      target: m.target,
      writable: m.writable,
      sizeBytes: i64(m.sizeBytes),
      content: m.content ?? undefined,
    })),
    landlockHandled: i64(req.landlockHandled),
    landlockScoped: i64(req.landlockScoped),
    landlock: req.landlock.map((r) => ({ path: r.path, access: i64(r.access) })),
    seccomp: filter,
    cgroupDirs: req.cgroupDirs,
    cgroupWrites: req.cgroupWrites.map((w) => ({ path: w.path, value: w.value })),
    cgroupProcs: req.cgroupProcs,
    cgroupStats: req.cgroupStats,
    rlimits: req.rlimits.map((l) => ({ resource: l.resource, limit: i64(l.limit), aboveInherited: l.aboveInherited === true })),
    egress: req.egress ? { firewall: req.egress.firewall, nft: req.egress.nft, stack: req.egress.stack } : null,
    receivedNs,
  });
  if ('child' in out) {
    void runChild(req, fds.result, fds.payload, linker, process.hrtime.bigint());
    return true;
  }
  return false;
}

function readAllFrom(fd: number): Buffer {
  const st = fs.fstatSync(fd);
  const buf = Buffer.alloc(st.size);
  if (st.size > 0) fs.readSync(fd, buf, 0, st.size, 0);
  return buf;
}

/** Forks the self-test job and checks what it reports. Returns null in the self-test child. */
function selfTest(): number | null {
  const t0 = process.hrtime.bigint();
  const [statusApp, statusZygote] = native.socketPair();
  const stdout = native.memfdCreate('nodespawner-selftest-stdout');
  const stderr = native.memfdCreate('nodespawner-selftest-stderr');
  const result = native.memfdCreate('nodespawner-selftest-result');
  const payload = native.memfdFromBuffers('nodespawner-selftest-payload', payloadParts(toWire(null), []));
  const keep = [fs.openSync(`/proc/self/fd/${stdout}`, 'r'), fs.openSync(`/proc/self/fd/${stderr}`, 'r'), fs.openSync(`/proc/self/fd/${result}`, 'r')];
  const flags = Object.values(native.CLONE).reduce((a, b) => a | b, 0);
  // Fork safety only: the sandbox layers are proven by the test suite, which runs this same job.
  const req: RunRequest = {
    id: 0,
    modulePath: join(packageRoot, 'dist', 'zygote', 'selftest-job.js'),
    hostname: 'nodespawner',
    cloneFlags: flags,
    uid: 1000,
    gid: 1000,
    mounts: [],
    landlockHandled: 0,
    landlockScoped: 0,
    landlock: [],
    cgroupDirs: [],
    cgroupWrites: [],
    cgroupProcs: [],
    cgroupStats: [],
    rlimits: [],
  };
  if (fork(req, { status: statusZygote, stdout, stderr, result, payload }, t0, selfTestSeccomp)) return null;
  let exited: { code: number; signal: number; seccompSyscall?: number | null } | undefined;
  let setup: string | undefined;
  for (;;) {
    const msg = native.recvRequest(statusApp);
    if (msg === null) break;
    msg.fds.forEach((fd) => native.close(fd));
    const ev = decode(T.JobEvent, msg.data);
    if (ev.setupFailed) setup = SandboxSetupError.from(ev.setupFailed).message;
    if (ev.exited) exited = ev.exited;
  }
  native.close(statusApp);
  const [out, err, withMarks] = keep.map((fd) => {
    const b = readAllFrom(fd);
    fs.closeSync(fd);
    return b;
  });
  const tail = err.toString('utf8').slice(-2000);
  if (setup) fatal('SELF_TEST_FAILED', `the self-test child could not be set up: ${setup}`);
  if (exited?.seccompSyscall !== undefined && exited.seccompSyscall !== null) {
    const nr = exited.seccompSyscall;
    fatal(
      'SELF_TEST_SECCOMP',
      `the job seccomp policy stopped syscall ${nr} (${syscallName(nr)}), which this Node ${process.version} makes in a forked child; stderr: ${tail}`,
    );
  }
  if (!exited || exited.code !== 0) {
    fatal('SELF_TEST_FAILED', `the self-test child exited with ${exited ? `code ${exited.code} signal ${exited.signal}` : 'no status'}; stderr: ${tail}`);
  }
  const res = splitTimings(withMarks).rest;
  if (res[0] !== ResultTag.Value) fatal('SELF_TEST_FAILED', `the self-test child returned no value; stdout: ${out.toString().slice(-500)} stderr: ${tail}`);
  const report = fromWire(decode(T.Value, res.subarray(1))) as { checks: Record<string, string> };
  const failed = Object.entries(report.checks).filter(([, v]) => v !== 'ok');
  if (failed.length > 0) {
    fatal('SELF_TEST_FAILED', `this Node build breaks forked children: ${failed.map(([k, v]) => `${k}: ${v}`).join('; ')}`);
  }
  return Number((process.hrtime.bigint() - t0) / 1_000_000n);
}

/** Android's preFork check: nothing a job could inherit beyond what Node itself opened. */
function preForkChecks(): void {
  for (const [fd, target] of native.listFds()) {
    if (fd === control || fdsAtStart.has(fd)) continue;
    fatal(
      'PRELOAD_LEFT_FD',
      `file descriptor ${fd} (${target}) was opened while preloading and is still open: every job would inherit it. Close it in the preloaded module`,
    );
  }
  const resources = process.getActiveResourcesInfo();
  for (const r of resourcesAtStart) {
    const i = resources.indexOf(r);
    if (i >= 0) resources.splice(i, 1);
  }
  if (resources.length > 0) {
    fatal(
      'PRELOAD_LEFT_HANDLES',
      `preloaded code left active resources (${resources.join(', ')}): every job would inherit them. Clear timers and close handles in the preloaded module`,
    );
  }
}

/**
 * The heap that every child copies, prepared last before serving:
 * 1. A full GC: children fault in far fewer pages.
 * 2. The GC discards optimized code of the warm-up (measured: the runner's value coding is back to
 *    unoptimized after it). Every child then compiled those paths itself, synchronously (the zygote
 *    is --single-threaded), in its run: a 20 KB result value took 15 ms in a child. So the value
 *    coding is warmed again. Not apache-arrow's table code: optimized for the warm-up's tables, it
 *    deoptimized and was compiled again in children whose tables differ (measured: slower). Only
 *    the runner's own encoding of a result table runs again, twice, on a tiny table: the GC also
 *    freed the writer's maps, and every child recompiled part of it (resultRehearsal).
 * 3. Two scavenges, so that the children start with an empty young generation.
 * 4. Feedback vectors back to V8's lazy allocation. The zygote starts with
 *    --no-lazy-feedback-allocation, so that every function it ran, even once (module loading,
 *    the post-fork hygiene, the runner), has its inline caches filled. V8 otherwise gives a
 *    function a feedback vector only after some calls, and every child ran such code through the
 *    generic, uncached lookups (measured: 3-13 % more jobs/s, jobMs -0.1 ms). A job's own code
 *    gets its feedback as in any Node process.
 * gc() stays off the jobs' global. V8's low-memory notification, which would release a further
 * ~15 MiB, is not used: it leaves the heap in a state in which a child's next full GC posts work to
 * the platform's worker threads, which a child does not have, and the child hangs.
 */
function prepareHeap(): HeapReport {
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc') as (options?: { type: 'minor' | 'major' }) => void;
  const rehearseResult = resultRehearsal();
  gc();
  rehearseResult();
  warmValueCoding(10);
  gc({ type: 'minor' });
  gc({ type: 'minor' });
  v8.setFlagsFromString('--lazy-feedback-allocation');
  return prepareArena();
}

interface HeapReport {
  heapArena: boolean;
  hugePageBytes: number;
  heapArenaNote: string | null;
}

/**
 * Last before serving, with the heap arena: forks stop undoing MADV_DONTFORK where nothing carries
 * it, and the resident 2 MiB extents of the arena (V8's heap) and of malloc's large allocations
 * (ArrayBuffer backing stores, say) become transparent huge pages, so that each fork copies one
 * page table entry for each instead of 512. Extents less than half resident are left alone: a
 * huge page would fill their holes with memory.
 */
function prepareArena(): HeapReport {
  if (!config.heapArena) return { heapArena: false, hugePageBytes: 0, heapArenaNote: null };
  if (config.heapArenaNote) return { heapArena: false, hugePageBytes: 0, heapArenaNote: config.heapArenaNote };
  if (native.heapArena() === null) {
    return {
      heapArena: false,
      hugePageBytes: 0,
      heapArenaNote:
        "the heap arena was preloaded but is not active: the dynamic loader refused it (see the zygote's stderr) or its address space reservation failed",
    };
  }
  // The arena drops MADV_DONTFORK, with which Node marks V8's heap. Unless something else marked a
  // mapping, forks need not undo the mark over the whole address space first (the self-test
  // forks without it).
  native.skipForkMarksIfClean();
  const collapsed = native.collapseHeap(50);
  if (collapsed < 0) {
    const name = errnoNames[-collapsed] ?? `errno ${-collapsed}`;
    return {
      heapArena: true,
      hugePageBytes: 0,
      heapArenaNote: `no huge pages: madvise(MADV_COLLAPSE) failed with ${name} (transparent huge pages set to never, or a kernel older than 6.1)`,
    };
  }
  return { heapArena: true, hugePageBytes: collapsed, heapArenaNote: null };
}

function threads(): number {
  const m = /^Threads:\s+(\d+)/m.exec(fs.readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) : -1;
}

/**
 * The zygote's own writes after a fork (its allocations, its GC) split the huge pages they touch,
 * since children share them: after a few hundred jobs none are left. So the heap is collapsed
 * again, which costs a few ms of the zygote's time: after every 16 forks when no request waits,
 * once the zygote has been idle for 100 ms, and at the latest after 64 forks (measured better
 * than 32 and 256 under load, and no worse than 8 and 16).
 */
const recollapse = { every: 16, idleMs: 100, latest: 64 };
let forksSinceCollapse = 0;

function maintainHeap(report: HeapReport): void {
  if (report.hugePageBytes === 0 || forksSinceCollapse === 0) return;
  if (forksSinceCollapse < recollapse.latest) {
    const wait = forksSinceCollapse >= recollapse.every ? 0 : recollapse.idleMs;
    if (native.readable(control, wait)) return;
  }
  forksSinceCollapse = 0;
  native.collapseHeap(50);
}

function serve(heap: HeapReport): void {
  for (;;) {
    maintainHeap(heap);
    const msg = native.recvRequest(control);
    if (msg === null) appGone(); // the app closed the control socket, or died
    const [status, stdout, stderr, result, payload] = msg.fds;
    let req: RunRequest;
    try {
      if (msg.truncated || msg.fds.length !== 5) throw new Error(`expected 5 fds, got ${msg.fds.length}`);
      req = decode(T.RunRequest, msg.data);
    } catch {
      // A malformed request from the app: dropping its fds closes its status socket.
      msg.fds.forEach((fd) => native.close(fd));
      continue;
    }
    let inChild: boolean;
    try {
      inChild = fork(req, { status, stdout, stderr, result, payload }, msg.receivedNs);
    } catch {
      // A request the native side refuses (bad field types): drop it, keep serving.
      msg.fds.forEach((fd) => native.close(fd));
      continue;
    }
    if (inChild) return;
    forksSinceCollapse++;
  }
}

const sleeper = new Int32Array(new SharedArrayBuffer(4));

/**
 * The app is gone, however it ended (close() aside, which ends its jobs first): every job and
 * preforked child in the spawner's cgroups is killed, their intermediates remove the job cgroups
 * and exit, and then the spawner's own cgroups are removed. Without cgroups there is nothing to
 * remove: the zygote's exit ends the intermediates, and they their jobs.
 */
function appGone(): never {
  const parents = config.cgroupParents ?? [];
  const deadline = Date.now() + 10_000;
  while (parents.length > 0 && Date.now() < deadline) {
    let left = 0;
    for (const parent of parents) {
      for (const dir of jobCgroupDirs(parent)) {
        let pids: string[] = [];
        try {
          pids = fs
            .readFileSync(join(dir, 'cgroup.procs'), 'utf8')
            .split('\n')
            .filter((p) => /^\d+$/.test(p));
        } catch {
          // removed meanwhile by its intermediate
        }
        for (const pid of pids) {
          try {
            process.kill(Number(pid), 'SIGKILL');
          } catch {
            // gone already
          }
        }
        try {
          fs.rmdirSync(dir);
        } catch {
          left++; // its processes are still exiting
        }
      }
    }
    // An intermediate forked for the last request may not have made its job's cgroups yet.
    if (left === 0 && !native.hasChildren()) break;
    Atomics.wait(sleeper, 0, 0, 5);
  }
  for (const parent of parents) {
    try {
      fs.rmdirSync(parent);
    } catch {
      // not ours to force: the app's next start, or the host, deals with it
    }
  }
  return native.exit(0);
}

async function main(): Promise<void> {
  try {
    control = native.zygoteInit(3, config.appPid, config.cgroupParents ?? []);
  } catch (err) {
    process.stderr.write(`nodespawner zygote: cannot start: ${(err as Error).message}\n`);
    native.exit(70);
  }
  try {
    native.installZygoteFilter(Buffer.from(config.zygoteSeccomp ?? '', 'base64'));
  } catch (err) {
    fatal('ZYGOTE_FILTER_FAILED', `cannot install the zygote's seccomp filter: ${(err as Error).message}`);
  }
  installInZygote();
  const preloaded = await preload();
  await touchThreadpool();
  await warmUp(linker);
  const heap = prepareHeap();
  // From the first fork on, the app's death is seen at the control socket (and cleaned up there).
  if (!native.serving(config.appPid)) appGone();
  // The self-test child is forked from the heap that every job will get.
  let selfTestMs = -1;
  if (config.selfTest) {
    const ms = selfTest();
    if (ms === null) return; // the self-test child
    selfTestMs = ms;
  }
  preForkChecks();
  try {
    native.sendMessage(
      control,
      encode(T.ZygoteEvent, {
        ready: {
          pid: process.pid,
          nodeVersion: process.version,
          threads: threads(),
          preloaded,
          rssBytes: process.memoryUsage.rss(),
          selfTestMs,
          landlockAbi: native.landlockAbi(),
          preloadedFiles,
          ...heap,
        },
      }),
      [],
    );
  } catch {
    appGone(); // the app died while we started
  }
  serve(heap);
}

void main();
