// One zygote process as the app sees it: spawn it, wait until it reports ready (or why it cannot
// serve), and tell the owner once when it is gone.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { installedBinary, native, packageRoot } from './native.js';
import { T, decode, i64 } from './wire.js';
import type { Ready } from './wire.js';
import type { ResolvedSpawnerOptions } from './options.js';
import { StartError } from './errors.js';
import { unsearchableDir } from './sandbox.js';
import { compile } from './seccomp/compile.js';
import { defaultJobPolicy, trappingKills, zygotePolicy } from './seccomp/policy.js';

/**
 * Why a self-test child may not have found nodespawner's own files: jobs run as `uid` outside
 * their namespace, and a directory above the package that this user cannot search hides them.
 */
function accessHint(code: string, uid: number, gid: number): string {
  const blocked = code === 'SELF_TEST_FAILED' ? unsearchableDir(packageRoot, uid, gid) : null;
  if (!blocked) return '';
  return (
    ` Jobs run as uid ${uid} outside their namespace, and it cannot search ` +
    `${blocked.dir} (mode ${blocked.mode.toString(8).padStart(4, '0')}, owner ` +
    `${blocked.uid}:${blocked.gid}), above nodespawner's package at ${packageRoot}: make ` +
    `that directory searchable by others (chmod o+x) or install the package elsewhere.`
  );
}

const zygoteMain = join(packageRoot, 'dist', 'zygote', 'main.js');

/** V8/Node flags the zygote needs; DESIGN.md explains each. */
const zygoteFlags = [
  '--experimental-vm-modules', // the in-thread ESM linker for jobs (zygote/linker.ts)
  '--single-threaded', // a GC in a forked child must not wait for V8 worker threads it lacks
  // Feedback vectors for all the code the zygote runs, however rarely, so that children start with
  // its inline caches warm; switched back before serving (zygote/main.ts prepareHeap).
  '--no-lazy-feedback-allocation',
  '--experimental-import-meta-resolve', // resolving a job's bare imports from its own path
  '--disable-warning=ExperimentalWarning',
];

export interface ZygoteInfo {
  pid: number;
  nodeVersion: string;
  threads: number;
  preloaded: string[];
  rssBytes: number;
  selfTestMs: number;
  /** The kernel's Landlock ABI (0 or negative: unavailable; jobs then run without that layer). */
  landlockAbi: number;
  /** Files of the preloaded modules; their packages are bound read-only into every job. */
  preloadedFiles: string[];
  /** V8's heap pages are in the zygote's heap arena (spawner option `heapArena`). */
  heapArena: boolean;
  /** Bytes of the zygote's heap (the arena, malloc's large allocations) collapsed into transparent huge pages before serving. */
  hugePageBytes: number;
  /** Why the heap arena or its huge pages are missing although `heapArena` is on; null otherwise. */
  heapArenaNote: string | null;
}

/** The heap arena library (native/arena.c): a plain shared library, prebuilt in the package or built at install. */
export const arenaLibrary = installedBinary('nodespawner_arena.so', 'nodespawner_arena.so');

/**
 * The zygote's LD_PRELOAD: the heap arena first, then any preload the app put in `env`. Or, when
 * the arena cannot be preloaded, the app's alone and the reason.
 */
export function zygotePreload(heapArena: boolean, appPreload: string | undefined, library = arenaLibrary): { value: string | undefined; note: string | null } {
  if (!heapArena) return { value: appPreload, note: null };
  // The dynamic loader splits LD_PRELOAD at spaces and colons.
  if (/[\s:]/.test(library))
    return {
      value: appPreload,
      note: `the heap arena's path (${library}) has a space or colon, which ` + `LD_PRELOAD cannot carry: install the package at a path without them`,
    };
  if (!existsSync(library)) return { value: appPreload, note: `the heap arena is not built (${library} is missing): reinstall nodespawner` };
  return { value: appPreload ? `${library} ${appPreload}` : library, note: null };
}

/** Whether `id` exists in this process's user namespace (a root app in a container may lack nobody). */
function idMapped(kind: 'uid' | 'gid', id: number): boolean {
  try {
    return readFileSync(`/proc/self/${kind}_map`, 'utf8')
      .trim()
      .split('\n')
      .some((line) => {
        const [inside, , count] = line.trim().split(/\s+/).map(Number);
        return id >= inside && id < inside + count;
      });
  } catch {
    return false;
  }
}

/** The compiled filters, base64, compiled once per process: they depend on no option but whether seccomp is on. */
const seccompPrograms = (() => {
  let cached: { job: string; selfTest: string; zygote: string } | undefined;
  const b64 = (p: { toBuffer(): Buffer }) => p.toBuffer().toString('base64');
  return (on: boolean) => {
    cached ??= { job: b64(compile(defaultJobPolicy)), selfTest: b64(compile(trappingKills(defaultJobPolicy))), zygote: b64(compile(zygotePolicy)) };
    return on ? cached : { job: '', selfTest: '', zygote: cached.zygote };
  };
})();

/**
 * A start that outlasted `startTimeout` is first a matter of configuration (the option is too
 * short for this app's preloads), and only then possibly a host problem.
 */
function startTimeoutMessage(startTimeout: number, stderr: string): string {
  const tail = stderr.trim() === '' ? '' : ` The zygote's stderr: ${stderr.slice(-2000)}`;
  return (
    `the zygote did not become ready within startTimeout (${startTimeout} ms): preloading, warming up and the self-test took longer. ` +
    'Starting takes a few hundred ms on a typical host, more with large preloads: raise the spawner option `startTimeout` (default 60000). ' +
    `Only if it also times out with a generous startTimeout, check the preloads (one may ` +
    `wait for something that never settles) and run \`npx nodespawner doctor\`.${tail}`
  );
}

export class ZygoteProcess {
  private goneHandler: (why: string) => void = () => {};
  private isGone = false;

  private constructor(
    readonly child: ChildProcess,
    readonly controlFd: number,
    private readonly control: { close(): void; unref(): void },
    private readonly stderrTail: () => string,
    readonly info: ZygoteInfo,
  ) {}

  /** Spawns a zygote and resolves once it serves; rejects with a StartError that says why not. */
  static async start(o: ResolvedSpawnerOptions, cgroupParents: string[]): Promise<ZygoteProcess> {
    const euid = process.geteuid!();
    const seccomp = seccompPrograms(o.sandbox.seccomp);
    const preload = zygotePreload(o.heapArena, o.env.LD_PRELOAD);
    const env: Record<string, string> = { ...o.env, UV_USE_IO_URING: '0' };
    if (preload.value === undefined) delete env.LD_PRELOAD;
    else env.LD_PRELOAD = preload.value;
    const config = {
      appPid: process.pid,
      preload: o.preload,
      preloadBase: o.preloadBase,
      // The job's ids map to an unprivileged id outside: nobody for a root app, else the app's own.
      outerUid: euid === 0 && idMapped('uid', 65534) ? 65534 : euid,
      outerGid: euid === 0 && idMapped('gid', 65534) ? 65534 : process.getegid!(),
      selfTest: o.selfTest,
      heapArena: o.heapArena,
      // Restored in the zygote's process.env in place of the one that loaded the arena.
      appPreload: o.env.LD_PRELOAD ?? null,
      heapArenaNote: preload.note,
      // Closed by the zygote first thing: no fd the app leaked by mistake may reach a job.
      inheritedFds: native.inheritableFds().filter((fd) => fd > 3),
      // Compiled here, before any clone; every child only installs its filter, last.
      seccomp: seccomp.job,
      selfTestSeccomp: seccomp.selfTest,
      zygoteSeccomp: seccomp.zygote,
      // Removed by the zygote when the app dies without close(), however it ends.
      cgroupParents,
    };
    const [appEnd, zygoteEnd] = native.socketPair();
    let child: ChildProcess;
    try {
      child = spawn(process.execPath, [...zygoteFlags, zygoteMain, JSON.stringify(config)], {
        stdio: ['ignore', 'ignore', 'pipe', zygoteEnd],
        // libuv (before 1.49) must not open io_uring rings for file operations: the jobs' seccomp
        // policy kills io_uring_* calls. The zygote removes the variable once libuv has read it.
        env,
        cwd: '/',
      });
    } catch (e) {
      native.close(appEnd);
      native.close(zygoteEnd);
      throw new StartError(`cannot spawn the zygote: ${(e as Error).message}`, 'spawn', { cause: e });
    }
    native.close(zygoteEnd);
    let stderr = '';
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (s: string) => {
      stderr = (stderr + s).slice(-16384);
    });

    let onEvent: (data: Buffer | null) => void = () => {};
    const control = new native.MessageWatcher(appEnd, (data) => onEvent(data));
    const hint = 'Run `npx nodespawner doctor` on this host: it shows what is missing and the fix (see also docs/troubleshooting.md).';
    let ready: Ready;
    try {
      ready = await new Promise<Ready>((resolve, reject) => {
        const timer = setTimeout(() => reject(new StartError(startTimeoutMessage(o.startTimeout, stderr), 'timeout')), o.startTimeout);
        const fail = (e: Error) => {
          clearTimeout(timer);
          reject(e);
        };
        child.once('error', (e) => fail(new StartError(`cannot spawn the zygote: ${e.message}`, 'spawn', { cause: e })));
        child.once('exit', (code, sig) =>
          // Give the control socket a moment: a fatal report is more useful than the exit status.
          setTimeout(
            () => fail(new StartError(`the zygote exited during start (${sig ?? `code ${code}`}); stderr: ${stderr.slice(-2000)}. ${hint}`, 'exit')),
            50,
          ),
        );
        onEvent = (data) => {
          if (data === null) return;
          let ev;
          try {
            ev = decode(T.ZygoteEvent, data);
          } catch (e) {
            return fail(new StartError(`the zygote sent a malformed message: ${(e as Error).message}`, 'protocol'));
          }
          if (ev.fatal)
            return fail(
              new StartError(
                `the zygote could not start: ${ev.fatal.code}: ` + `${ev.fatal.message}.${accessHint(ev.fatal.code, config.outerUid, config.outerGid)} ${hint}`,
                ev.fatal.code,
              ),
            );
          if (ev.ready) {
            clearTimeout(timer);
            resolve(ev.ready);
          }
        };
      });
    } catch (e) {
      control.close();
      child.kill('SIGKILL');
      throw e;
    }
    const info: ZygoteInfo = {
      pid: ready.pid,
      nodeVersion: ready.nodeVersion,
      threads: ready.threads,
      preloaded: [...ready.preloaded],
      rssBytes: i64(ready.rssBytes),
      selfTestMs: ready.selfTestMs,
      landlockAbi: ready.landlockAbi,
      preloadedFiles: [...ready.preloadedFiles],
      heapArena: ready.heapArena,
      hugePageBytes: i64(ready.hugePageBytes),
      heapArenaNote: ready.heapArenaNote ?? null,
    };
    const z = new ZygoteProcess(child, appEnd, control, () => stderr, info);
    onEvent = (data) => {
      if (data === null) z.markGone('the zygote closed its control socket');
    };
    child.on('exit', (code, sig) => z.markGone(`the zygote exited (${sig ?? `code ${code}`})`));
    // An idle spawner does not keep the app alive (running jobs do); the zygote dies with the app.
    control.unref();
    child.unref();
    (child.stderr as unknown as { unref(): void }).unref();
    return z;
  }

  /** Called once, when the zygote dies or closes its socket. */
  onGone(handler: (why: string) => void): void {
    this.goneHandler = handler;
  }

  get gone(): boolean {
    return this.isGone;
  }

  private markGone(why: string): void {
    if (this.isGone) return;
    this.isGone = true;
    this.control.close();
    this.goneHandler(`${why}; stderr: ${this.stderrTail().slice(-2000)}`);
  }

  /** Ends the zygote: EOF on its control socket, SIGKILL if it lingers. Resolves once it exited. */
  async stop(): Promise<void> {
    const exited = new Promise<void>((resolve) => {
      if (this.child.exitCode !== null || this.child.signalCode !== null) return resolve();
      this.child.once('exit', () => resolve());
    });
    this.isGone = true;
    this.control.close();
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 2_000);
    await exited;
    clearTimeout(timer);
    this.child.stderr?.destroy();
  }
}
