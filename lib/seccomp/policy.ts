// Seccomp policy as data: actions, rules keyed by system-call name, named sets of rules (like
// Chromium's bpf_dsl policies and systemd's @sets), and the policy every job runs under.
// compile.ts turns a Policy into BPF; nothing here knows about instructions.
import type { SyscallName } from './syscalls.js';

/** What the kernel does with a system call. */
export type Action =
  | { readonly type: 'allow' }
  /** Do not run the call; it fails with this errno (1..4095). */
  | { readonly type: 'errno'; readonly errno: number }
  /** SECCOMP_RET_KILL_PROCESS: the whole process dies at once, as if by an uncatchable SIGSYS. */
  | { readonly type: 'kill' }
  /** SECCOMP_RET_TRAP: deliver a catchable SIGSYS to the calling thread. */
  | { readonly type: 'trap' };

export const allow: Action = Object.freeze({ type: 'allow' });
export const kill: Action = Object.freeze({ type: 'kill' });
export const trap: Action = Object.freeze({ type: 'trap' });
/** The call fails with `errno` without running. */
export const errno = (n: number): Action => Object.freeze({ type: 'errno', errno: n });

/** Linux errno values (the same on x86_64 as on every architecture but alpha, mips, parisc, sparc). */
export const Errno = Object.freeze({
  EPERM: 1,
  EINVAL: 22,
  ENOTTY: 25,
  ENOSYS: 38,
  ENOPROTOOPT: 92,
  EAFNOSUPPORT: 97,
} as const);

/** An index into `seccomp_data.args`. */
export type ArgIndex = 0 | 1 | 2 | 3 | 4 | 5;

/**
 * A test on one argument: it passes when `(low 32 bits of args[arg]) & mask` is one of `oneOf`.
 *
 * Only the low word is compared. That is exact for arguments the kernel itself truncates to 32
 * bits (every `int` and `unsigned int` parameter, and clone's flags, which kernel/fork.c reads
 * through `lower_32_bits()`): for those, set `upper: 'ignored'`. For a real 64-bit argument,
 * `upper: 'zero'` also requires the high word to be 0, else the test fails.
 */
export interface ArgTest {
  readonly arg: ArgIndex;
  /**
   * Bits of the low word that matter (u32).
   * @default 0xffffffff
   */
  readonly mask?: number;
  /** The masked low word must equal one of these (u32 each, at least one). */
  readonly oneOf: readonly number[];
  /** What the high 32 bits must be: `'ignored'` for 32-bit arguments, `'zero'` for 64-bit ones. No default: decide per argument. */
  readonly upper: 'ignored' | 'zero';
}

/** When every test in `when` passes (a single test, or all of a list), the call gets `then`. */
export interface Clause {
  readonly when: ArgTest | readonly ArgTest[];
  readonly then: Action;
}

/** Clauses tried in order, the first whose tests all pass decides; `else` if none does. */
export interface Conditional {
  readonly if: readonly Clause[];
  readonly else: Action;
}

/** What one system call gets: an action, or an action chosen by its arguments. */
export type Rule = Action | Conditional;

/** Rules keyed by system-call name. Names must be in syscalls.ts; compile() refuses others. An undefined rule is no rule. */
export type Rules = { readonly [name: string]: Rule | undefined };

/** A named group of rules, composable with {@link rules}. */
export type SyscallSet = Readonly<Partial<Record<SyscallName, Rule>>>;

export interface Policy {
  /** Rules by system-call name. */
  readonly rules: Rules;
  /**
   * What every system call without a rule gets (numbers this table does not know included).
   * @default kill
   */
  readonly defaultAction?: Action;
}

export const isConditional = (rule: Rule): rule is Conditional => 'if' in rule;

function sameRule(a: Rule, b: Rule): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/**
 * Merges sets into one. A system call may appear in several sets only with the same rule;
 * two different rules for one call throw, so a set can never quietly loosen another.
 */
export function rules(...sets: readonly Rules[]): Rules {
  const out: Record<string, Rule> = {};
  for (const set of sets) {
    for (const [name, rule] of Object.entries(set)) {
      if (rule === undefined) continue;
      if (name in out && !sameRule(out[name], rule)) {
        throw new TypeError(`Expected one rule for \`${name}\`, got two different ones: ${JSON.stringify(out[name])} and ${JSON.stringify(rule)}`);
      }
      out[name] = rule;
    }
  }
  return Object.freeze(out);
}

const allowAll = (...names: SyscallName[]): SyscallSet => Object.freeze(Object.fromEntries(names.map((n) => [n, allow])));

// ---------------------------------------------------------------------------------------------
// Constants the conditional rules test. Values from the kernel UAPI headers.

/** Namespace flags of clone(2), from <linux/sched.h>. All live in the low 32 bits. */
export const CloneFlag = Object.freeze({
  NEWTIME: 0x00000080,
  NEWNS: 0x00020000,
  NEWCGROUP: 0x02000000,
  NEWUTS: 0x04000000,
  NEWIPC: 0x08000000,
  NEWUSER: 0x10000000,
  NEWPID: 0x20000000,
  NEWNET: 0x40000000,
} as const);

/** Every CLONE_NEW* flag: 0x7e020080. */
export const NAMESPACE_FLAGS = Object.values(CloneFlag).reduce((a, b) => a | b, 0) >>> 0;

/** The flags glibc's pthread_create passes to clone(2) when clone3 is unavailable: VM|FS|FILES|SIGHAND|THREAD|SYSVSEM|SETTLS|PARENT_SETTID|CHILD_CLEARTID. */
export const THREAD_CLONE_FLAGS = 0x3d0f00;

/** ioctl requests a job may make (<asm-generic/ioctls.h>). */
export const IoctlRequest = Object.freeze({
  /** isatty(), tcgetattr(): Node asks for every stdio fd. */
  TCGETS: 0x5401,
  /** tcsetattr(): setRawMode(), and Node restoring a terminal's modes at exit. */
  TCSETS: 0x5402,
  TCSETSW: 0x5403,
  TCSETSF: 0x5404,
  /** Terminal size (process.stdout.columns). */
  TIOCGWINSZ: 0x5413,
  /** Bytes readable. */
  FIONREAD: 0x541b,
  /** Non-blocking mode: libuv's uv__nonblock() on Linux. */
  FIONBIO: 0x5421,
  FIONCLEX: 0x5450,
  FIOCLEX: 0x5451,
} as const);

/** prctl options a job may use (<linux/prctl.h>). */
export const PrctlOption = Object.freeze({
  PR_SET_PDEATHSIG: 1,
  PR_GET_PDEATHSIG: 2,
  PR_GET_DUMPABLE: 3,
  PR_SET_NAME: 15,
  PR_GET_NAME: 16,
  PR_GET_SECCOMP: 21,
  PR_CAPBSET_READ: 23,
  PR_SET_NO_NEW_PRIVS: 38,
  PR_GET_NO_NEW_PRIVS: 39,
  /** PR_SET_VMA ('SVMA'): naming anonymous mappings, which V8 and glibc may do. */
  PR_SET_VMA: 0x53564d41,
} as const);

/** Address families and socket levels (<linux/socket.h>, <linux/in.h>). */
export const Socket = Object.freeze({
  AF_UNIX: 1,
  AF_INET: 2,
  AF_INET6: 10,
  AF_NETLINK: 16,
  NETLINK_ROUTE: 0,
  /** `SOCK_TYPE_MASK`: socket's type argument also carries SOCK_NONBLOCK and SOCK_CLOEXEC. */
  SOCK_TYPE_MASK: 0xf,
  SOCK_STREAM: 1,
  SOCK_DGRAM: 2,
  SOCK_RAW: 3,
  SOCK_SEQPACKET: 5,
  SOL_IP: 0,
  SOL_SOCKET: 1,
  SOL_TCP: 6,
  SOL_IPV6: 41,
  TCP_ULP: 31,
  /** IPT_SO_SET_REPLACE / IP6T_SO_SET_REPLACE: the first ip(6)tables option; ADD_COUNTERS is 65. */
  IPT_BASE_CTL: 64,
} as const);

// ---------------------------------------------------------------------------------------------
// Named sets. Each allows one concern; the conditional rules explain themselves.

/** Reading, writing and managing file descriptors one already has; pipes. */
export const basicIo: SyscallSet = Object.freeze({
  ...allowAll(
    'read',
    'write',
    'readv',
    'writev',
    'pread64',
    'pwrite64',
    'preadv',
    'pwritev',
    'preadv2',
    'pwritev2',
    'lseek',
    'close',
    'close_range',
    'dup',
    'dup2',
    'dup3',
    'fcntl',
    'pipe',
    'pipe2',
    'sendfile',
    'copy_file_range',
    'splice',
    'tee',
  ),
  // ioctl reaches every driver behind every fd. A job only needs the terminal-mode requests Node
  // makes on stdio and the fd-flag requests libuv makes; not TIOCSTI (typing into a terminal), not
  // the SIOC* network configuration the job's CAP_NET_ADMIN would otherwise allow. Anything else
  // fails with EPERM rather than ENOTTY: Node asserts that a failing tcsetattr() fails with EPERM
  // (node.cc, ResetStdio) and aborts otherwise, and EPERM is what Docker's default profile answers,
  // so code is used to it.
  ioctl: {
    if: [{ when: { arg: 1, oneOf: Object.values(IoctlRequest), upper: 'ignored' }, then: allow }],
    else: errno(Errno.EPERM),
  },
});

/** The address space: mappings, their protection (PROT_EXEC included: V8 JITs), advice, memory policy, protection keys. */
export const memory: SyscallSet = allowAll(
  'brk',
  'mmap',
  'munmap',
  'mprotect',
  'madvise',
  'mremap',
  'msync',
  'pkey_alloc',
  'pkey_free',
  'pkey_mprotect',
  // NUMA policy for one's own memory: harmless, and allocators call them.
  'mbind',
  'set_mempolicy',
  'get_mempolicy',
);

/**
 * Files by path and by fd. The mount namespace (and later the private root) decides what is
 * reachable, not this set. mknod, the xattr calls, sync and syncfs are not included.
 */
export const files: SyscallSet = allowAll(
  'open',
  'openat',
  'openat2',
  'creat',
  'stat',
  'fstat',
  'lstat',
  'newfstatat',
  'statx',
  'statfs',
  'fstatfs',
  'access',
  'faccessat',
  'faccessat2',
  'readlink',
  'readlinkat',
  'getdents',
  'getdents64',
  'getcwd',
  'chdir',
  'fchdir',
  'umask',
  'mkdir',
  'mkdirat',
  'rmdir',
  'unlink',
  'unlinkat',
  'rename',
  'renameat',
  'renameat2',
  'link',
  'linkat',
  'symlink',
  'symlinkat',
  'chmod',
  'fchmod',
  'fchmodat',
  'chown',
  'fchown',
  'lchown',
  'fchownat',
  'truncate',
  'ftruncate',
  'fallocate',
  'fsync',
  'fdatasync',
  'flock',
  'fadvise64',
  'utime',
  'utimes',
  'utimensat',
  'futimesat',
);

/** Identity, limits and exit of the process itself. */
export const processSet: SyscallSet = Object.freeze({
  ...allowAll(
    'getpid',
    'getppid',
    'getuid',
    'geteuid',
    'getgid',
    'getegid',
    'getresuid',
    'getresgid',
    'getgroups',
    'getpgrp',
    'getpgid',
    'getsid',
    'capget',
    'exit',
    'exit_group',
    'wait4',
    'waitid',
    'getrlimit',
    'setrlimit',
    'prlimit64',
    'getrusage',
    'times',
    // Only this thread's FS/GS base and CPUID faulting: glibc sets TLS with it.
    'arch_prctl',
  ),
  // prctl is a grab bag; PR_SET_DUMPABLE, PR_SET_PTRACER, PR_SET_MM, PR_SET_SECUREBITS and the
  // capability-changing options are not for jobs. Others fail with EINVAL, the kernel's answer to
  // an option it does not know, so feature probes (V8's PR_SET_VMA on old kernels) fall back.
  prctl: {
    if: [{ when: { arg: 0, oneOf: Object.values(PrctlOption), upper: 'ignored' }, then: allow }],
    else: errno(Errno.EINVAL),
  },
  // Starting a program would leave the policy's reach only in theory (the filter is inherited),
  // but a job has no business running binaries. EPERM rather than kill: libuv forks first and
  // execs in the child, so child_process.spawn() rejects with a clean `spawn EPERM` instead of a
  // child dying of SIGSYS with no explanation.
  execve: errno(Errno.EPERM),
  execveat: errno(Errno.EPERM),
});

/** Threads and the futexes they sleep on; clone without namespace flags. */
export const threads: SyscallSet = Object.freeze({
  ...allowAll('futex', 'futex_waitv', 'set_robust_list', 'set_tid_address', 'rseq', 'gettid'),
  // clone's flags are a register, so the filter can read them: no CLONE_NEW* flag, or the process
  // dies like it would for unshare(). Only the low word is checked, deliberately: the kernel reads
  // the flags through lower_32_bits() (kernel/fork.c), every CLONE_NEW* flag is in the low word,
  // and glibc passes the flags as an int whose upper half is not guaranteed to be 0, so demanding
  // a zero high word could kill an ordinary pthread_create or fork.
  clone: {
    if: [{ when: { arg: 0, mask: NAMESPACE_FLAGS, oneOf: [0], upper: 'ignored' }, then: allow }],
    else: kill,
  },
  // clone3's flags are in a struct in memory, which seccomp cannot read. ENOSYS makes glibc (and
  // so libuv and V8 threads) fall back to clone, whose flags the rule above inspects.
  clone3: errno(Errno.ENOSYS),
});

/** Scheduling of one's own threads: yielding, affinity, nice values (lowering only without CAP_SYS_NICE in the initial namespace). */
export const scheduler: SyscallSet = Object.freeze({
  ...allowAll(
    'sched_yield',
    'sched_getaffinity',
    'sched_setaffinity',
    'sched_getparam',
    'sched_getscheduler',
    'sched_get_priority_max',
    'sched_get_priority_min',
    'sched_rr_get_interval',
    'sched_getattr',
    'getpriority',
    'setpriority',
    'getcpu',
  ),
  // Real-time policies could starve the host if RLIMIT_RTPRIO allows them. EPERM is the answer a
  // thread pool asking for a priority already expects to handle.
  sched_setscheduler: errno(Errno.EPERM),
  sched_setparam: errno(Errno.EPERM),
  sched_setattr: errno(Errno.EPERM),
});

/** Signal handling, and signals to processes (only ones in the job's PID namespace are visible). */
export const signals: SyscallSet = allowAll(
  'rt_sigaction',
  'rt_sigprocmask',
  'rt_sigreturn',
  'rt_sigsuspend',
  'rt_sigpending',
  'rt_sigtimedwait',
  'sigaltstack',
  'kill',
  'tgkill',
  'tkill',
  // Waiting for a signal; the child's fatal-signal handler waits here to be killed from outside.
  'pause',
  // The kernel's own continuation of a sleep interrupted by a signal.
  'restart_syscall',
);

/** Reading clocks and sleeping. Setting clocks is not here (see {@link denied}). */
export const time: SyscallSet = allowAll('clock_gettime', 'clock_getres', 'gettimeofday', 'time', 'nanosleep', 'clock_nanosleep');

/** Timers of one's own: timerfd, POSIX timers, itimers, alarm. */
export const timers: SyscallSet = allowAll(
  'timerfd_create',
  'timerfd_settime',
  'timerfd_gettime',
  'timer_create',
  'timer_settime',
  'timer_gettime',
  'timer_getoverrun',
  'timer_delete',
  'getitimer',
  'setitimer',
  'alarm',
);

/** The event loop: epoll, eventfd, poll, select; inotify for fs.watch. */
export const events: SyscallSet = allowAll(
  'epoll_create',
  'epoll_create1',
  'epoll_ctl',
  'epoll_wait',
  'epoll_pwait',
  'epoll_pwait2',
  'eventfd',
  'eventfd2',
  'poll',
  'ppoll',
  'select',
  'pselect6',
  'inotify_init',
  'inotify_init1',
  'inotify_add_watch',
  'inotify_rm_watch',
);

/**
 * Sockets. The network namespace decides what they reach. The job is root in its own user
 * namespace and so holds CAP_NET_ADMIN and CAP_NET_RAW over its private network namespace, which
 * opens the parts of the network stack most exploited from user namespaces; the two conditional
 * rules close the ones that are a register away.
 *
 * No unix socket of its own making: a unix socket reaches by path any socket file in the trees
 * bound into the job (its directory, node_modules, readOnlyPaths...) that the job's outside uid
 * may write, and neither a read-only mount nor Landlock refuses connect(); abstract ones belong
 * to the host's namespace under `network: 'host'`. A job only needs unix sockets for pairs within
 * itself, and a connected stream or seqpacket pair can address nothing else (connect() fails with
 * EISCONN, an address given to sendto() is refused or ignored). A datagram pair could: a
 * datagram socket may be re-connected, or given an address per sendto().
 */
export const network: SyscallSet = Object.freeze({
  ...allowAll(
    'connect',
    'bind',
    'listen',
    'accept',
    'accept4',
    'getsockname',
    'getpeername',
    'getsockopt',
    'sendto',
    'recvfrom',
    'sendmsg',
    'recvmsg',
    'sendmmsg',
    'recvmmsg',
    'shutdown',
  ),
  // IPv4 and IPv6 stream, datagram and seqpacket sockets; and NETLINK_ROUTE, which glibc's
  // getifaddrs() (os.networkInterfaces()) needs. Not AF_UNIX (above; glibc's attempts to reach
  // nscd then fail as on a host without it), AF_PACKET, raw IP, NETLINK_NETFILTER (nf_tables),
  // NETLINK_XFRM and the rest. EAFNOSUPPORT is what the kernel answers for a family it lacks, so
  // code probing for, say, IPv6 behaves.
  socket: {
    if: [
      {
        when: [
          { arg: 0, oneOf: [Socket.AF_INET, Socket.AF_INET6], upper: 'ignored' },
          { arg: 1, mask: Socket.SOCK_TYPE_MASK, oneOf: [Socket.SOCK_STREAM, Socket.SOCK_DGRAM, Socket.SOCK_SEQPACKET], upper: 'ignored' },
        ],
        then: allow,
      },
      {
        when: [
          { arg: 0, oneOf: [Socket.AF_NETLINK], upper: 'ignored' },
          { arg: 2, oneOf: [Socket.NETLINK_ROUTE], upper: 'ignored' },
        ],
        then: allow,
      },
    ],
    else: errno(Errno.EAFNOSUPPORT),
  },
  // Connected unix pairs (libuv's uv_pipe and uv_socketpair, Node's IPC channels), stream or
  // seqpacket only.
  socketpair: {
    if: [
      {
        when: [
          { arg: 0, oneOf: [Socket.AF_UNIX], upper: 'ignored' },
          { arg: 1, mask: Socket.SOCK_TYPE_MASK, oneOf: [Socket.SOCK_STREAM, Socket.SOCK_SEQPACKET], upper: 'ignored' },
        ],
        then: allow,
      },
    ],
    else: errno(Errno.EAFNOSUPPORT),
  },
  // Socket, TCP, IP and IPv6 options, but not the ones that reach ip(6)tables (x_tables, 64 and
  // up at the IP level, 64-65 at the IPv6 level), multicast routing (200 and up) or IPVS, nor
  // TCP_ULP (kernel TLS and friends). ENOPROTOOPT is the kernel's answer for an unknown option.
  setsockopt: {
    if: [
      {
        when: [
          { arg: 1, oneOf: [Socket.SOL_TCP], upper: 'ignored' },
          { arg: 2, oneOf: [Socket.TCP_ULP], upper: 'ignored' },
        ],
        then: errno(Errno.ENOPROTOOPT),
      },
      { when: { arg: 1, oneOf: [Socket.SOL_SOCKET, Socket.SOL_TCP], upper: 'ignored' }, then: allow },
      // optname < 64
      {
        when: [
          { arg: 1, oneOf: [Socket.SOL_IP], upper: 'ignored' },
          { arg: 2, mask: ~63 >>> 0, oneOf: [0], upper: 'ignored' },
        ],
        then: allow,
      },
      {
        when: [
          { arg: 1, oneOf: [Socket.SOL_IPV6], upper: 'ignored' },
          { arg: 2, oneOf: [Socket.IPT_BASE_CTL, Socket.IPT_BASE_CTL + 1], upper: 'ignored' },
        ],
        then: errno(Errno.ENOPROTOOPT),
      },
      // optname < 128
      {
        when: [
          { arg: 1, oneOf: [Socket.SOL_IPV6], upper: 'ignored' },
          { arg: 2, mask: ~127 >>> 0, oneOf: [0], upper: 'ignored' },
        ],
        then: allow,
      },
    ],
    else: errno(Errno.ENOPROTOOPT),
  },
});

/** Facts about the system and randomness. */
export const info: SyscallSet = allowAll('uname', 'sysinfo', 'getrandom');

/**
 * System calls a job never gets, listed so each refusal has its reason next to it. All kill the
 * process (the default action anyway, but listing them keeps them killed if the default ever
 * changes): a job making one of these is attacking the kernel or the sandbox, not probing for a
 * feature.
 */
export const denied: SyscallSet = Object.freeze({
  // io_uring bypasses seccomp for the operations it performs and has been the source of a long
  // run of kernel exploits. A job never gets a ring: making one fails with ENOSYS, which is what
  // libuv 1.49+ probes every new event loop with (a worker thread's, say) before it falls back to
  // epoll_ctl; the zygote's own filter gives the same answer before the job's is installed (see
  // zygotePolicy). Using a ring, which could then only be one the job was handed, kills.
  io_uring_setup: errno(Errno.ENOSYS),
  io_uring_enter: kill,
  io_uring_register: kill,
  // Reading or writing other processes.
  ptrace: kill,
  process_vm_readv: kill,
  process_vm_writev: kill,
  pidfd_getfd: kill,
  kcmp: kill,
  // Changing the filesystem view: the sandbox sets it up, the job lives in it.
  mount: kill,
  umount2: kill,
  pivot_root: kill,
  chroot: kill,
  fsopen: kill,
  fsconfig: kill,
  fsmount: kill,
  fspick: kill,
  move_mount: kill,
  open_tree: kill,
  mount_setattr: kill,
  // New namespaces from inside (a nested user namespace is the usual first step of a kernel
  // exploit) and joining others.
  unshare: kill,
  setns: kill,
  // Big kernel attack surfaces no job needs.
  bpf: kill,
  perf_event_open: kill,
  userfaultfd: kill,
  keyctl: kill,
  add_key: kill,
  request_key: kill,
  fanotify_init: kill,
  modify_ldt: kill,
  lookup_dcookie: kill,
  // Opening files by handle sidesteps path-based confinement.
  open_by_handle_at: kill,
  name_to_handle_at: kill,
  // Execution-domain flags (ADDR_NO_RANDOMIZE, READ_IMPLIES_EXEC) weaken exploit mitigations.
  // Node does not call personality(), not even the 0xffffffff query (checked with strace).
  personality: kill,
  // The machine, not the job: clocks, kernel, modules, swap, accounting, quotas, ports, consoles,
  // the kernel log.
  clock_settime: kill,
  clock_adjtime: kill,
  settimeofday: kill,
  adjtimex: kill,
  kexec_load: kill,
  kexec_file_load: kill,
  reboot: kill,
  init_module: kill,
  finit_module: kill,
  delete_module: kill,
  swapon: kill,
  swapoff: kill,
  acct: kill,
  quotactl: kill,
  quotactl_fd: kill,
  iopl: kill,
  ioperm: kill,
  vhangup: kill,
  syslog: kill,
});

/** The named sets, for building other policies. */
export const sets = Object.freeze({
  basicIo,
  memory,
  files,
  process: processSet,
  threads,
  scheduler,
  signals,
  time,
  timers,
  events,
  network,
  info,
  denied,
});

/**
 * The policy every job runs under: everything Node 20, 22 and 24 need to run a job (checked against strace
 * of the test suite's jobs), errno for calls well-behaved code probes, kill for everything else.
 */
export const defaultJobPolicy: Policy = Object.freeze({
  rules: rules(basicIo, memory, files, processSet, threads, scheduler, signals, time, timers, events, network, info, denied),
  defaultAction: kill,
});

/**
 * The zygote's own filter, installed once before it preloads anything, and inherited by every
 * intermediate and job: io_uring_setup fails with ENOSYS. libuv 1.49+ (Node 22, 24) always makes an
 * io_uring for batching epoll_ctl calls, and a job re-creates its event loop (uv_loop_fork) before
 * its own filter is installed, so without this the job would hold a ring made before seccomp and
 * die on its first io_uring_enter. With it, libuv falls back to epoll_ctl, and a ring never exists
 * in a job. The zygote keeps the ring it made at start-up (its serve loop does not use libuv).
 */
export const zygotePolicy: Policy = Object.freeze({
  rules: Object.freeze({ io_uring_setup: errno(Errno.ENOSYS) }),
  defaultAction: allow,
});

/**
 * The same policy, with every kill turned into a trap (a SIGSYS the job's native handler catches
 * and reports with the system call's number, then the job is killed from outside). Used for the
 * zygote's self-test, so that a runtime that needs a system call the policy lacks is told which.
 */
export function trappingKills(policy: Policy): Policy {
  const swap = (a: Action): Action => (a.type === 'kill' ? trap : a);
  const swapRule = (r: Rule): Rule => (isConditional(r) ? { if: r.if.map((c) => ({ when: c.when, then: swap(c.then) })), else: swap(r.else) } : swap(r));
  const out: Record<string, Rule> = {};
  for (const [name, rule] of Object.entries(policy.rules)) if (rule !== undefined) out[name] = swapRule(rule);
  return Object.freeze({ rules: Object.freeze(out), defaultAction: swap(policy.defaultAction ?? kill) });
}
