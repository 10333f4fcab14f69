// The typed face of the C++ addon (native/). Both the app side (lib/) and the zygote load it.
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';

/** Package root: dist/lib/native.js lives two levels below it. */
export const packageRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface ForkJobRequest {
  statusFd: number;
  stdoutFd: number;
  stderrFd: number;
  resultFd: number;
  payloadFd: number;
  controlFd: number;
  hostname: string;
  outerUid: number;
  outerGid: number;
  cloneFlags: number;
  uid: number;
  gid: number;
  mounts: Array<{ kind: number; source: string; target: string; writable: boolean; sizeBytes: number; content?: string }>;
  landlockHandled: number;
  landlockScoped: number;
  landlock: Array<{ path: string; access: number }>;
  seccomp: Uint8Array;
  cgroupDirs: string[];
  cgroupWrites: Array<{ path: string; value: string }>;
  cgroupProcs: string[];
  cgroupStats: string[];
  rlimits: Array<{ resource: number; limit: number }>;
  /** sandbox.network 'egress': the firewall the intermediate loads and the network stack it starts; null otherwise. */
  egress: { firewall: string; nft: string[]; stack: string[] } | null;
  receivedNs: bigint;
}

export interface ReceivedMessage {
  data: Buffer;
  fds: number[];
  truncated: boolean;
  receivedNs: bigint;
}

export interface MessageWatcher {
  close(): void;
  /** The watcher alone does not keep the event loop alive. */
  unref(): void;
  /** Undoes unref(). */
  ref(): void;
  /** No callback until resume(); what arrives meanwhile waits in the kernel (backpressure). */
  pause(): void;
  resume(): void;
}

export interface NativeBinding {
  // app side
  socketPair(): [number, number];
  pipe(): [number, number];
  memfdFromBuffers(name: string, parts: Uint8Array[]): number;
  memfdCreate(name: string): number;
  sendMessage(socket: number, data: Uint8Array, fds: number[]): void;
  close(fd: number): void;
  inheritableFds(): number[];
  pidfdSendSignal(pidfd: number, signal: number): boolean;
  /**
   * Watches a SOCK_SEQPACKET socket (a callback per datagram with its fds), or with `bytes` a pipe
   * (a callback per read); owns fd. The callback gets null once, at EOF or an error.
   */
  MessageWatcher: new (fd: number, onMessage: (data: Buffer | null, fds: number[]) => void, bytes?: boolean) => MessageWatcher;
  // zygote side
  /** Until serving(), the app's death (the zygote's parent death signal) removes cleanupDirs and ends the zygote. */
  zygoteInit(controlFd: number, appPid: number, cleanupDirs: string[]): number;
  /** no_new_privs, then the zygote's own seccomp filter (inherited by every job); an empty program installs nothing. */
  installZygoteFilter(program: Buffer): void;
  /** Before the first fork: the app's death is seen as EOF from now on. Whether the app is alive. */
  serving(appPid: number): boolean;
  /** Whether this process has a (live) child. */
  hasChildren(): boolean;
  recvRequest(fd: number): ReceivedMessage | null;
  /** Whether a read on fd would not block, waiting up to timeoutMs (default 0) for it. */
  readable(fd: number, timeoutMs?: number): boolean;
  forkJob(request: ForkJobRequest): { pid: number; errno?: number } | { child: true };
  listFds(): Array<[number, string]>;
  exit(code: number): never;
  landlockAbi(): number;
  getpid(): number;
  getppid(): number;
  /** The heap arena (native/arena.c) in this process, or null: it exists only in a zygote started with it. */
  heapArena(): {
    base: bigint;
    sizeBytes: number;
    takenBytes: number;
    freeRanges: number;
    fallbacks: number;
    lostBytes: number;
    dontforkDropped: number;
  } | null;
  /** With the heap arena and no mapping marked MADV_DONTFORK, forks stop undoing that mark first. Returns the count of marked mappings, or -errno. */
  skipForkMarksIfClean(): number;
  /** With the heap arena: collapses the anonymous 2 MiB extents with at least this percent of pages resident: bytes collapsed, or -errno. */
  collapseHeap(minResidentPercent: number): number;
  RLIMIT: { CORE: number; DATA: number; NPROC: number; CPU: number; FSIZE: number };
  CLONE: { NEWUSER: number; NEWPID: number; NEWNS: number; NEWNET: number; NEWUTS: number; NEWIPC: number; NEWCGROUP: number };
}

const require = createRequire(import.meta.url);

/**
 * A file the install provides: the one `npm install` built from source (build/Release), else the
 * prebuilt one shipped in the package for this platform (prebuilds/linux-x64, made by prebuildify).
 */
export function installedBinary(builtName: string, prebuiltName: string): string {
  const built = join(packageRoot, 'build', 'Release', builtName);
  const prebuilt = join(packageRoot, 'prebuilds', `${process.platform}-${process.arch}`, prebuiltName);
  return existsSync(built) || !existsSync(prebuilt) ? built : prebuilt;
}

/** The addon (Node-API 8: one binary for every Node version this package supports). */
export const addonPath = installedBinary('nodespawner.node', 'nodespawner.node');

function load(): NativeBinding {
  try {
    return require(addonPath) as NativeBinding;
  } catch (err) {
    const e = new Error(
      `nodespawner: cannot load the native addon at ${addonPath}: ${(err as Error).message}. ` +
        'The package ships it prebuilt for linux-x64; elsewhere `npm install` builds it from source (`npm rebuild nodespawner`), which needs python3, make and g++.',
    );
    (e as Error & { cause: unknown }).cause = err;
    throw e;
  }
}

export const native: NativeBinding = load();
