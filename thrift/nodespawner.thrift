/*
 * Everything that crosses a process boundary in nodespawner.
 *
 *   app ──RunRequest (control socket, + fds)──▶ zygote
 *   app ──JobPayload (memfd)─────────────────▶ child
 *   zygote/intermediate ──ZygoteEvent / JobEvent (sockets)──▶ app
 *   child ──Value / JobError (result pipe, after a one-byte tag)──▶ app
 *   RemoteSpawner ──RemoteRequest (Redis, binary)──▶ worker ──RemoteReply (Redis list)──▶ RemoteSpawner
 *
 * JS code is generated from this file by `npm run gen:thrift` and never edited by hand.
 * native/wire.h writes the few JobEvent structs that the native intermediate process sends.
 */
namespace js nodespawner

/** A JSON-like value, plus bigint, bytes and undefined. Exactly one field is set. */
union Value {
  1: bool nullValue
  2: bool undefinedValue
  3: bool boolValue
  4: double numberValue
  5: string stringValue
  6: list<Value> listValue
  7: list<Entry> objectValue
  8: string bigintValue
  9: binary bytesValue
}

/** One own enumerable property of an object, in order. */
struct Entry {
  1: required string key
  2: required Value value
}

/** Where one Arrow input lies in the payload memfd, after the JobPayload. */
struct InputRef {
  1: required string name
  2: required i64 offset
  3: required i64 length
}

/**
 * What a job receives, in its payload memfd: u32le length, this struct, then the Arrow IPC
 * stream bytes of each input (written straight from the app's Arrow buffers, never copied into
 * this struct) where `inputs` says.
 */
struct JobPayload {
  1: required Value jobArgs
  2: required list<InputRef> inputs
}

/** One step of the child's filesystem plan (lib/sandbox.ts decides it; native/mounts.cc runs it). */
struct MountOp {
  /** 1 bind, 2 tmpfs, 3 proc, 4 device node (bind of a host device file), 5 file (written into the new root from `content`), 6 symlink */
  1: required i32 kind
  /** Host path (binds and devices); the link's text (symlinks). */
  2: required string source
  /** Absolute path inside the job's root. */
  3: required string target
  4: required bool writable
  /** tmpfs size limit. */
  5: required i64 sizeBytes
  /** A file's bytes (kind 5): a read-only file of the job's own, such as its /etc/resolv.conf. */
  6: optional string content
}

/**
 * sandbox.network 'egress' (lib/egress.ts decides it; native/egress.cc runs it): before the child
 * is released, the intermediate loads `firewall` with `nft` inside the job's user and network
 * namespaces, then starts `stack`, the userspace network stack, for the job's network namespace.
 */
struct EgressPlan {
  /** An nftables ruleset (nft -f). */
  1: required string firewall
  /** argv of nft, reading the ruleset from its stdin; the absolute path first. */
  2: required list<string> nft
  /** argv of pasta or slirp4netns, the absolute path first: fd 5 is the job's network namespace, fd 3 its ready pipe, fd 4 (slirp4netns --exit-fd) its end. */
  3: required list<string> stack
}

/** A Landlock path-beneath rule: `path` (inside the job's root) and its allowed access bits. */
struct LandlockRule {
  1: required string path
  2: required i64 access
}

/** One write into a cgroup control file (lib/cgroups.ts decides path and value). */
struct CgroupWrite {
  1: required string path
  2: required string value
}

struct Rlimit {
  1: required i32 resource
  2: required i64 limit
  /**
   * The limit counts from what the job inherits: for RLIMIT_DATA, the zygote's private data at the
   * fork (VmData), which the job holds from its first instruction (Node 24's V8 alone reserves more
   * than a typical memory limit).
   */
  3: optional bool aboveInherited
}

/** What the app asks the zygote for. The fds travel with it, in this order:
 *  status socket, stdout pipe, stderr pipe, result pipe, payload memfd. */
struct RunRequest {
  1: required i32 id
  2: required string modulePath
  3: required string hostname
  /** CLONE_NEW* flags for this job (policy is decided on the app side). */
  4: required i32 cloneFlags
  /** The job's uid and gid inside its namespace (mapped to the zygote's outer ids). */
  5: required i32 uid
  6: required i32 gid
  7: required list<MountOp> mounts
  /** Landlock access bits the ruleset handles; 0 turns Landlock off. */
  8: required i64 landlockHandled
  9: required list<LandlockRule> landlock
  /** Job cgroups the intermediate creates (in order) before releasing the child, then removes (in reverse). */
  10: required list<string> cgroupDirs
  /** Limits, written after the directories exist. */
  11: required list<CgroupWrite> cgroupWrites
  /** cgroup.procs files the child's pid is written to. */
  12: required list<string> cgroupProcs
  /** Files read after the child exited (peak memory, OOM kills, CPU), returned in Exited.cgroupStats. */
  13: required list<string> cgroupStats
  /** setrlimit() calls in the child (always RLIMIT_CORE 0; memory and process limits where cgroups are unavailable and the user asked for rlimits). */
  14: required list<Rlimit> rlimits
  /**
   * A preforked child: the fifth fd is a socket instead of the payload. The child specializes and
   * imports the job module, sends one byte (ready) on it, and waits for the payload memfd there.
   */
  15: optional bool deferred
  /** sandbox.network 'egress': the job's firewall and network stack. */
  16: optional EgressPlan egress
  /** Landlock scopes (LANDLOCK_SCOPE_* bits, ABI 6) of the job's domain; 0 for none. */
  17: required i64 landlockScoped
}

/** A job that threw: what the child saw. */
struct JobError {
  1: required string name
  2: required string message
  3: optional string stack
  4: optional string code
}

/** The zygote is ready to serve. */
struct Ready {
  1: required i32 pid
  2: required string nodeVersion
  3: required i32 threads
  4: required list<string> preloaded
  5: required i64 rssBytes
  6: required i32 selfTestMs
  /** Highest Landlock ABI of the kernel, or a negative errno when Landlock is unavailable. */
  7: required i32 landlockAbi
  /** File paths of the preloaded modules, whose packages every job's root binds read-only. */
  8: required list<string> preloadedFiles
  /** V8's heap pages are in the heap arena (native/arena.c). */
  9: required bool heapArena
  /** Bytes of the zygote's heap (the arena, malloc's large allocations) collapsed into transparent huge pages before serving. */
  10: required i64 hugePageBytes
  /** Why the arena or its huge pages are missing, when they are. */
  11: optional string heapArenaNote
}

/** The zygote cannot serve and is about to exit. */
struct Fatal {
  1: required string code
  2: required string message
}

union ZygoteEvent {
  1: Ready ready
  2: Fatal fatal
}

/** Sent by the native intermediate process on the job's status socket. */
struct Started {
  /** The child's pid in the zygote's PID namespace; its pidfd travels with this message. */
  1: required i32 pid
  /** Monotonic nanoseconds: request received, fork done, child released. */
  2: required i64 receivedNs
  3: required i64 forkedNs
  4: required i64 releasedNs
}

/** A sandbox setup step failed in the child (or in the intermediate); the job never ran. */
struct SetupFailed {
  1: required string step
  2: required string syscall
  3: required i32 errnum
  4: optional string detail
}

struct Exited {
  /** Exit code, or -1 when killed by a signal. */
  1: required i32 code
  /** Signal number, or 0. */
  2: required i32 signal
  3: required i64 userCpuUs
  4: required i64 systemCpuUs
  5: required i64 maxRssKb
  6: required i64 exitedNs
  /** Contents of RunRequest.cgroupStats, in order (each at most 4 KiB; empty if unreadable). */
  7: optional list<string> cgroupStats
  /** The system call a seccomp trap stopped (the zygote's self-test traps instead of killing). */
  8: optional i32 seccompSyscall
}

union JobEvent {
  1: Started started
  2: SetupFailed setupFailed
  3: Exited exited
}

// ---- nodespawner/bullmq: a run queued on one machine and done on another ------------------------

/**
 * Bytes that lie either in `bytes` (in Redis, inside the struct that holds this) or in the result
 * store, under the key the store gave. Exactly one field is set.
 */
union Blob {
  1: binary bytes
  2: string storeKey
}

/** One Arrow input of a remote run: its Arrow IPC stream bytes. */
struct RemoteInput {
  1: required string name
  2: required Blob ipc
}

/**
 * A queued run, as RemoteSpawner.run() writes it to Redis (a binary value with a time to live, under
 * the BullMQ job's id). The BullMQ job itself carries only the registered job's name: a worker runs
 * the module it registered under that name, never a path from the queue.
 */
struct RemoteRequest {
  1: required Value jobArgs
  2: required list<RemoteInput> inputs
  /** Wall-clock limit in ms; absent: the worker's spawner default. */
  3: optional i64 timeout
  /** The Redis list the worker pushes the RemoteReply to (one per RemoteSpawner). */
  4: required string replyTo
}

/** RunResult.timings, in ms. */
struct RemoteTimings {
  1: required double queueMs
  2: required double requestMs
  3: required double forkMs
  4: required double cloneMs
  5: required double runMs
  6: required double specializeMs
  7: required double importMs
  8: required double jobMs
  9: required double resultMs
  10: required double reapMs
  11: required double totalMs
}

/** A run that succeeded: RunResult, with its table (Arrow IPC stream) or value (a Thrift Value) as a Blob. */
struct RemoteResult {
  1: optional Blob table
  2: optional Blob value
  3: required string stdout
  4: required string stderr
  5: required i32 exitCode
  6: required double durationMs
  7: required double cpuMs
  8: required i64 maxRssBytes
  9: optional i64 peakMemoryBytes
  10: required bool preforked
  11: required RemoteTimings timings
}

/** A run that failed: the error's `code` names its class; the other fields rebuild it. */
struct RemoteError {
  1: required string code
  2: required string message
  3: optional i32 exitCode
  4: optional string signal
  5: required string stdout
  6: required string stderr
  7: optional double durationMs
  /** TimeoutError.timeout; the limit of OutOfMemoryError, ResultTooLargeError, OutputTooLargeError, ArgsTooLargeError; QueueFullError.maxQueue. */
  8: optional i64 limit
  /** OutputTooLargeError.stream; StartError.reason; UnknownJobError.jobName. */
  9: optional string detail
  /** JobFailedError.remote */
  10: optional JobError remote
  /** SandboxSetupError */
  11: optional SetupFailed setup
}

union RemoteOutcome {
  1: RemoteResult result
  2: RemoteError error
}

/** What a worker pushes to RemoteRequest.replyTo when a run has its final outcome. */
struct RemoteReply {
  1: required string jobId
  2: required RemoteOutcome outcome
}
