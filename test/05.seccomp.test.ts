// The seccomp layer alone: the syscall table, policy data, the BPF compiler and the interpreter
// that runs its output. Nothing is installed; every verdict comes from interpreting the compiled
// program, and the compiler is checked against a direct evaluation of the policy.
import { existsSync, readFileSync } from 'node:fs';
import { constants } from 'node:os';
import { expect } from 'chai';
import { AUDIT_ARCH_I386, AUDIT_ARCH_X86_64, SYSCALLS, X32_SYSCALL_BIT } from '../lib/seccomp/syscalls.js';
import type { SyscallName } from '../lib/seccomp/syscalls.js';
import {
  CloneFlag,
  Errno,
  NAMESPACE_FLAGS,
  THREAD_CLONE_FLAGS,
  allow,
  defaultJobPolicy,
  errno,
  isConditional,
  kill,
  rules,
  sets,
  trap,
  trappingKills,
  zygotePolicy,
} from '../lib/seccomp/policy.js';
import type { Action, ArgTest, Policy, Rule } from '../lib/seccomp/policy.js';
import { BPF_MAXINSNS, SeccompRet, actionValue, compile } from '../lib/seccomp/compile.js';
import { BpfError, Op, describeAction, disassemble, interpret, verify } from '../lib/seccomp/interpret.js';
import type { Instruction, SeccompInput } from '../lib/seccomp/interpret.js';

const program = compile(defaultJobPolicy);

/** What the default job filter returns for `name(...args)`, as text. */
function verdict(name: SyscallName | number, args: Array<bigint | number> = [], arch = AUDIT_ARCH_X86_64): string {
  const nr = typeof name === 'number' ? name : SYSCALLS[name];
  return describeAction(interpret(program, { nr, arch, args: args.map((a) => BigInt(a)) }));
}

/** The policy evaluated directly, without BPF: the reference the compiler must agree with. */
function reference(policy: Policy, data: SeccompInput): number {
  const fallback = actionValue(policy.defaultAction ?? kill);
  if (data.arch >>> 0 !== AUDIT_ARCH_X86_64 || data.nr >>> 0 >= X32_SYSCALL_BIT) return SeccompRet.KILL_PROCESS;
  const name = Object.keys(SYSCALLS).find((n) => SYSCALLS[n as SyscallName] === data.nr);
  const rule = name === undefined ? undefined : policy.rules[name];
  if (rule === undefined) return fallback;
  if (!isConditional(rule)) return actionValue(rule);
  const holds = (t: ArgTest) => {
    const arg = BigInt.asUintN(64, data.args?.[t.arg] ?? 0n);
    if (t.upper === 'zero' && arg >> 32n !== 0n) return false;
    const low = Number(arg & 0xffffffffn);
    return t.oneOf.includes((low & (t.mask ?? 0xffffffff)) >>> 0);
  };
  for (const clause of rule.if) {
    const tests = Array.isArray(clause.when) ? (clause.when as readonly ArgTest[]) : [clause.when as ArgTest];
    if (tests.every(holds)) return actionValue(clause.then);
  }
  return actionValue(rule.else);
}

function thrown(f: () => unknown): Error {
  try {
    f();
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected an error, got none');
}

const insn = (code: number, k: number, jt = 0, jf = 0): Instruction => ({ code, jt, jf, k });

describe('seccomp: the x86_64 syscall table', function () {
  it('has the well-known numbers and constants', function () {
    expect(SYSCALLS.read).to.equal(0);
    expect(SYSCALLS.write).to.equal(1);
    expect(SYSCALLS.mmap).to.equal(9);
    expect(SYSCALLS.clone).to.equal(56);
    expect(SYSCALLS.execve).to.equal(59);
    expect(SYSCALLS.ptrace).to.equal(101);
    expect(SYSCALLS.io_uring_setup).to.equal(425);
    expect(SYSCALLS.clone3).to.equal(435);
    expect(AUDIT_ARCH_X86_64).to.equal(0xc000003e);
    expect(X32_SYSCALL_BIT).to.equal(0x40000000);
  });

  it('matches <asm/unistd_64.h> where the header is installed', function () {
    const header = '/usr/include/x86_64-linux-gnu/asm/unistd_64.h';
    if (!existsSync(header)) this.skip();
    const fromHeader = Object.fromEntries([...readFileSync(header, 'utf8').matchAll(/^#define __NR_(\w+)\s+(\d+)\s*$/gm)].map((m) => [m[1], Number(m[2])]));
    expect({ ...SYSCALLS }).to.deep.equal(fromHeader);
  });
});

describe('seccomp: policy data', function () {
  it('computes the namespace flags from the CLONE_NEW* constants', function () {
    expect(NAMESPACE_FLAGS).to.equal(0x7e020080);
    expect(THREAD_CLONE_FLAGS & NAMESPACE_FLAGS).to.equal(0);
  });

  it('uses the errno values Node knows', function () {
    for (const [name, value] of Object.entries(Errno)) expect(value, name).to.equal(constants.errno[name as keyof typeof constants.errno]);
  });

  it('refuses two different rules for one system call when merging sets', function () {
    expect(rules({ read: allow }, { read: allow })).to.deep.equal({ read: allow });
    const err = thrown(() => rules({ read: allow }, { write: allow }, { read: errno(Errno.EPERM) }));
    expect(err).to.be.instanceOf(TypeError);
    expect(err.message).to.match(/^Expected one rule for `read`, got two different ones/);
  });

  it('kills every system call the design names as forbidden, explicitly', function () {
    const forbidden: SyscallName[] = [
      'io_uring_enter',
      'io_uring_register',
      'ptrace',
      'mount',
      'bpf',
      'keyctl',
      'perf_event_open',
      'userfaultfd',
      'unshare',
      'setns',
    ];
    for (const name of forbidden) expect(defaultJobPolicy.rules[name], name).to.deep.equal(kill);
    expect(defaultJobPolicy.defaultAction).to.deep.equal(kill);
    // A job never makes a ring: libuv's probe of every new event loop is refused as "not here".
    expect(defaultJobPolicy.rules.io_uring_setup).to.deep.equal(errno(Errno.ENOSYS));
  });

  it("the zygote's filter refuses io_uring_setup with ENOSYS and allows everything else", function () {
    const z = compile(zygotePolicy);
    const run = (nr: number) => describeAction(interpret(z, { nr, arch: AUDIT_ARCH_X86_64, args: [] }));
    expect(run(SYSCALLS.io_uring_setup)).to.equal(`errno(${Errno.ENOSYS})`);
    for (const name of ['io_uring_enter', 'read', 'clone', 'ptrace', 'mount'] as const) expect(run(SYSCALLS[name]), name).to.equal('allow');
  });

  it('the self-test policy traps exactly where the job policy kills, and allows the same', function () {
    const t = compile(trappingKills(defaultJobPolicy));
    const cases: Array<[SyscallName, Array<bigint | number>]> = [
      ['ptrace', []],
      ['read', []],
      ['io_uring_setup', []],
      ['clone', [THREAD_CLONE_FLAGS]],
      ['clone', [CloneFlag.NEWUSER]],
      ['execve', []],
    ];
    for (const [name, args] of cases) {
      const job = verdict(name, args);
      const self = describeAction(interpret(t, { nr: SYSCALLS[name], arch: AUDIT_ARCH_X86_64, args: args.map((a) => BigInt(a)) }));
      expect(self, `${name}(${args})`).to.equal(job === 'kill-process' ? 'trap' : job);
    }
    expect(describeAction(interpret(t, { nr: 9999, arch: AUDIT_ARCH_X86_64, args: [] })), 'an unknown number').to.equal('trap');
  });

  it('names only system calls the table knows in every set', function () {
    for (const [set, members] of Object.entries(sets)) {
      for (const name of Object.keys(members)) expect(SYSCALLS, `${set}.${name}`).to.have.property(name);
    }
  });
});

describe('seccomp: defaultJobPolicy through the interpreter', function () {
  it('compiles to at most BPF_MAXINSNS instructions', function () {
    expect(program.length).to.be.at.most(BPF_MAXINSNS);
    expect(() => verify(program)).not.to.throw();
  });

  it('starts with the architecture and x32 checks, exactly', function () {
    expect(program.instructions.slice(0, 6)).to.deep.equal([
      { code: 0x20, jt: 0, jf: 0, k: 4 }, //           ld [4]                  arch
      { code: 0x15, jt: 1, jf: 0, k: 0xc000003e }, //  jeq AUDIT_ARCH_X86_64 ? 3 : 2
      { code: 0x06, jt: 0, jf: 0, k: 0x80000000 }, //  ret KILL_PROCESS
      { code: 0x20, jt: 0, jf: 0, k: 0 }, //           ld [0]                  nr
      { code: 0x35, jt: 0, jf: 1, k: 0x40000000 }, //  jge X32_SYSCALL_BIT ? 5 : 6
      { code: 0x06, jt: 0, jf: 0, k: 0x80000000 }, //  ret KILL_PROCESS
    ]);
    expect(disassemble(program).slice(0, 6)).to.deep.equal([
      '   0: ld arch',
      '   1: jeq #0xc000003e ? 3 : 2',
      '   2: ret kill-process',
      '   3: ld nr',
      '   4: jge #0x40000000 ? 5 : 6',
      '   5: ret kill-process',
    ]);
    expect(program.toBuffer().subarray(0, 48).toString('hex')).to.equal(
      '2000000004000000' + '150001003e0000c0' + '0600000000000080' + '2000000000000000' + '3500000100000040' + '0600000000000080',
    );
  });

  it('serializes 8 little-endian bytes per instruction', function () {
    const buf = program.toBuffer();
    expect(buf.length).to.equal(program.length * 8);
    program.instructions.forEach((i, n) => {
      expect([buf.readUInt16LE(n * 8), buf[n * 8 + 2], buf[n * 8 + 3], buf.readUInt32LE(n * 8 + 4)]).to.deep.equal([i.code, i.jt, i.jf, i.k]);
    });
  });

  it('allows what every job needs', function () {
    for (const name of [
      'read',
      'write',
      'mmap',
      'mprotect',
      'munmap',
      'madvise',
      'mremap',
      'futex',
      'openat',
      'statx',
      'newfstatat',
      'getdents64',
      'readlink',
      'close',
      'epoll_pwait',
      'epoll_ctl',
      'eventfd2',
      'pipe2',
      'rt_sigaction',
      'rt_sigprocmask',
      'clock_gettime',
      'nanosleep',
      'getrandom',
      'rseq',
      'set_robust_list',
      'sched_getaffinity',
      'exit_group',
      'exit',
      'connect',
      'bind',
      'sendmsg',
      'recvmsg',
      'uname',
      'mbind',
      'set_mempolicy',
    ] as const) {
      expect(verdict(name), name).to.equal('allow');
    }
  });

  it('kills the process for the forbidden system calls', function () {
    for (const name of [
      'ptrace',
      'mount',
      'umount2',
      'pivot_root',
      'chroot',
      'unshare',
      'setns',
      'bpf',
      'keyctl',
      'add_key',
      'request_key',
      'io_uring_enter',
      'io_uring_register',
      'perf_event_open',
      'userfaultfd',
      'process_vm_readv',
      'process_vm_writev',
      'open_by_handle_at',
      'kexec_load',
      'kexec_file_load',
      'init_module',
      'finit_module',
      'delete_module',
      'reboot',
      'clock_settime',
      'settimeofday',
      'adjtimex',
      'personality',
      'fsopen',
      'move_mount',
      'swapon',
      'acct',
      'iopl',
      'ioperm',
      'syslog',
      'fanotify_init',
    ] as const) {
      expect(verdict(name), name).to.equal('kill-process');
    }
  });

  it('allows clone for threads and fork, and kills it with any namespace flag', function () {
    expect(verdict('clone', [THREAD_CLONE_FLAGS])).to.equal('allow');
    expect(verdict('clone', [0x01200011]), 'fork(): CHILD_SETTID|CHILD_CLEARTID|SIGCHLD').to.equal('allow');
    expect(verdict('clone', [0x4111]), 'vfork-style: VM|VFORK|SIGCHLD').to.equal('allow');
    expect(verdict('clone', [THREAD_CLONE_FLAGS | CloneFlag.NEWUSER])).to.equal('kill-process');
    for (const [name, flag] of Object.entries(CloneFlag)) expect(verdict('clone', [0x11 | flag]), name).to.equal('kill-process');
  });

  it('checks only the low word of clone flags, as the kernel reads them', function () {
    // glibc passes the flags as an int: the upper half may be anything, and the kernel drops it.
    expect(verdict('clone', [(0xdeadbeefn << 32n) | BigInt(THREAD_CLONE_FLAGS)])).to.equal('allow');
    expect(verdict('clone', [-1n])).to.equal('kill-process');
    expect(verdict('clone', [(1n << 60n) | BigInt(CloneFlag.NEWNET)])).to.equal('kill-process');
  });

  it('answers clone3 with ENOSYS, so glibc falls back to clone', function () {
    expect(verdict('clone3', [0n, 88n])).to.equal(`errno(${Errno.ENOSYS})`);
  });

  it('answers execve and execveat with EPERM, real-time scheduling with EPERM', function () {
    expect(verdict('execve')).to.equal('errno(1)');
    expect(verdict('execveat')).to.equal('errno(1)');
    expect(verdict('sched_setscheduler')).to.equal('errno(1)');
    expect(verdict('sched_getaffinity')).to.equal('allow');
  });

  it('kills other architectures, x32 and numbers it does not know', function () {
    expect(verdict('read', [], AUDIT_ARCH_I386)).to.equal('kill-process');
    expect(verdict(0, [], 0)).to.equal('kill-process');
    expect(verdict(X32_SYSCALL_BIT | 0)).to.equal('kill-process');
    expect(verdict(X32_SYSCALL_BIT | SYSCALLS.getpid)).to.equal('kill-process');
    expect(verdict(999)).to.equal('kill-process');
    expect(verdict(451), 'newer than the header').to.equal('kill-process');
    expect(verdict(0xffffffff)).to.equal('kill-process');
  });

  it('allows only the ioctl requests Node and libuv make, EPERM for the rest', function () {
    expect(verdict('ioctl', [1, 0x5401])).to.equal('allow'); // TCGETS
    expect(verdict('ioctl', [1, 0x5421])).to.equal('allow'); // FIONBIO
    expect(verdict('ioctl', [1, 0x5413])).to.equal('allow'); // TIOCGWINSZ
    expect(verdict('ioctl', [0, 0x5403])).to.equal('allow'); // TCSETSW
    expect(verdict('ioctl', [0, 0x5412])).to.equal(`errno(${Errno.EPERM})`); // TIOCSTI
    expect(verdict('ioctl', [3, 0x8914])).to.equal(`errno(${Errno.EPERM})`); // SIOCSIFFLAGS
  });

  it('allows a short list of prctl options, EINVAL for the rest', function () {
    expect(verdict('prctl', [15])).to.equal('allow'); // PR_SET_NAME
    expect(verdict('prctl', [0x53564d41])).to.equal('allow'); // PR_SET_VMA
    expect(verdict('prctl', [4])).to.equal(`errno(${Errno.EINVAL})`); // PR_SET_DUMPABLE
    expect(verdict('prctl', [35])).to.equal(`errno(${Errno.EINVAL})`); // PR_SET_MM
    expect(verdict('prctl', [0x59616d61])).to.equal(`errno(${Errno.EINVAL})`); // PR_SET_PTRACER
  });

  it('allows IP and route-netlink sockets, EAFNOSUPPORT for the rest, unix sockets included', function () {
    const NONBLOCK_CLOEXEC = 0o4000 | 0o2000000;
    const AFNOSUPPORT = `errno(${Errno.EAFNOSUPPORT})`;
    expect(verdict('socket', [2, 1 | NONBLOCK_CLOEXEC, 0])).to.equal('allow'); // AF_INET stream
    expect(verdict('socket', [10, 2, 17])).to.equal('allow'); // AF_INET6 dgram
    expect(verdict('socket', [1, 1 | NONBLOCK_CLOEXEC, 0])).to.equal(AFNOSUPPORT); // AF_UNIX stream (glibc asking nscd)
    expect(verdict('socket', [1, 5, 0])).to.equal(AFNOSUPPORT); // AF_UNIX seqpacket
    expect(verdict('socket', [1, 2, 0])).to.equal(AFNOSUPPORT); // AF_UNIX dgram
    expect(verdict('socket', [16, 3 | 0o2000000, 0])).to.equal('allow'); // AF_NETLINK NETLINK_ROUTE (getifaddrs)
    expect(verdict('socket', [16, 3, 12])).to.equal(`errno(${Errno.EAFNOSUPPORT})`); // NETLINK_NETFILTER
    expect(verdict('socket', [17, 3, 0x300])).to.equal(`errno(${Errno.EAFNOSUPPORT})`); // AF_PACKET
    expect(verdict('socket', [2, 3, 1])).to.equal(`errno(${Errno.EAFNOSUPPORT})`); // raw ICMP
  });

  it('allows connected unix pairs (stream, seqpacket), not datagram ones, which can be re-addressed', function () {
    const CLOEXEC = 0o2000000;
    const AFNOSUPPORT = `errno(${Errno.EAFNOSUPPORT})`;
    expect(verdict('socketpair', [1, 1 | CLOEXEC, 0])).to.equal('allow'); // AF_UNIX stream (uv_pipe)
    expect(verdict('socketpair', [1, 5, 0])).to.equal('allow'); // AF_UNIX seqpacket
    expect(verdict('socketpair', [1, 2, 0])).to.equal(AFNOSUPPORT); // AF_UNIX dgram
    expect(verdict('socketpair', [2, 1, 0])).to.equal(AFNOSUPPORT); // AF_INET
  });

  it('allows socket, TCP, IP and IPv6 options but not x_tables, multicast routing or TCP_ULP', function () {
    const NOPROTOOPT = `errno(${Errno.ENOPROTOOPT})`;
    expect(verdict('setsockopt', [3, 1, 2])).to.equal('allow'); // SO_REUSEADDR
    expect(verdict('setsockopt', [3, 6, 1])).to.equal('allow'); // TCP_NODELAY
    expect(verdict('setsockopt', [3, 6, 31])).to.equal(NOPROTOOPT); // TCP_ULP
    expect(verdict('setsockopt', [3, 0, 33])).to.equal('allow'); // IP_MULTICAST_TTL
    expect(verdict('setsockopt', [3, 0, 64])).to.equal(NOPROTOOPT); // IPT_SO_SET_REPLACE
    expect(verdict('setsockopt', [3, 0, 200])).to.equal(NOPROTOOPT); // MRT_INIT
    expect(verdict('setsockopt', [3, 41, 26])).to.equal('allow'); // IPV6_V6ONLY
    expect(verdict('setsockopt', [3, 41, 67])).to.equal('allow'); // IPV6_TCLASS
    expect(verdict('setsockopt', [3, 41, 64])).to.equal(NOPROTOOPT); // IP6T_SO_SET_REPLACE
    expect(verdict('setsockopt', [3, 41, 65])).to.equal(NOPROTOOPT); // IP6T_SO_SET_ADD_COUNTERS
    expect(verdict('setsockopt', [3, 41, 200])).to.equal(NOPROTOOPT); // MRT6_INIT
    expect(verdict('setsockopt', [3, 17, 103])).to.equal(NOPROTOOPT); // UDP_SEGMENT
  });

  it('allows every system call Node 20 jobs made under strace of the test suite', function () {
    // strace -f of test/20.run and test/40.forksafety, the job children after their setup.
    const seen: Array<[SyscallName, ...number[]]> = [
      ['munmap'],
      ['madvise'],
      ['mprotect'],
      ['mmap'],
      ['close'],
      ['read'],
      ['write'],
      ['openat'],
      ['epoll_pwait'],
      ['dup2'],
      ['getpid'],
      ['getppid'],
      ['futex'],
      ['readlink'],
      ['statx'],
      ['epoll_create1'],
      ['eventfd2'],
      ['pipe2'],
      ['exit_group'],
      ['ioctl', 1, 0x5401],
      ['ioctl', 1, 0x5421],
      ['fstat'],
      ['rt_sigprocmask'],
      ['epoll_ctl'],
      ['fcntl'],
      ['getdents64'],
      ['access'],
      ['newfstatat'],
      ['getrandom'],
      ['recvmsg'],
      ['socket', 16, 0o2000003, 0],
      ['socket', 2, 0o2004001, 0],
      ['sendto'],
      ['gettid'],
      ['tgkill'],
      ['getsockname'],
      ['rt_sigaction'],
      ['uname'],
      ['bind'],
      ['connect'],
      ['getuid'],
      ['getgid'],
      ['geteuid'],
      ['rt_sigreturn'],
      ['getsockopt'],
      ['kill'],
      // and Node itself outside the suite: threads (clone after clone3's ENOSYS), workers, sockets, fs
      ['clone', THREAD_CLONE_FLAGS],
      ['set_robust_list'],
      ['rseq'],
      ['brk'],
      ['lseek'],
      ['pread64'],
      ['sched_getaffinity'],
      ['getcwd'],
      ['sysinfo'],
      ['set_tid_address'],
      ['prlimit64'],
      ['getrusage'],
      ['capget'],
      ['getegid'],
      ['pkey_alloc'],
      ['shutdown'],
      ['listen'],
      ['accept4'],
      ['setsockopt', 3, 1, 2],
      ['mkdir'],
      ['rmdir'],
      ['rename'],
      ['unlink'],
      ['exit'],
      ['arch_prctl'],
    ];
    for (const [name, ...args] of seen) expect(verdict(name, args), `${name}(${args.join(', ')})`).to.equal('allow');
  });

  it('agrees with the policy evaluated directly, for every known system call', function () {
    const argSamples = [[], [0x5401], [1, 0x5401], [16, 3, 0], [2, 1, 0], [3, 41, 67], [3, 0, 64], [THREAD_CLONE_FLAGS], [0x10000011], [15], [4]];
    for (const nr of Object.values(SYSCALLS)) {
      for (const args of argSamples) {
        const data = { nr, arch: AUDIT_ARCH_X86_64, args: args.map(BigInt) };
        expect(interpret(program, data), `${nr}(${args})`).to.equal(reference(defaultJobPolicy, data));
      }
    }
  });
});

describe('seccomp: the compiler', function () {
  it('names every unknown system call it is given', function () {
    const err = thrown(() => compile({ rules: { read: allow, fork2: allow, open_sesame: kill } }));
    expect(err).to.be.instanceOf(TypeError);
    expect(err.message).to.equal('Expected `rules` to name x86_64 system calls (lib/seccomp/syscalls.ts), got unknown `fork2`, `open_sesame`');
  });

  it('refuses malformed actions and argument tests', function () {
    expect(thrown(() => compile({ rules: { read: errno(0) } })).message).to.match(/^Expected `rules\.read\.errno` to be an integer from 1 to 4095, got `0`/);
    expect(thrown(() => compile({ rules: { read: errno(4096) } })).message).to.match(/`rules\.read\.errno`/);
    expect(thrown(() => compile({ rules: { read: { type: 'maybe' } as unknown as Action } })).message).to.match(/^Expected `rules\.read` to be an action/);
    const bad = (test: Partial<ArgTest>) => compile({ rules: { clone: { if: [{ when: test as ArgTest, then: allow }], else: kill } } });
    expect(thrown(() => bad({ arg: 6 as 0, oneOf: [0], upper: 'ignored' })).message).to.match(
      /^Expected `rules\.clone\.if\[0\]\.when\.arg` to be an argument index from 0 to 5, got `6`/,
    );
    expect(thrown(() => bad({ arg: 0, oneOf: [], upper: 'ignored' })).message).to.match(/`rules\.clone\.if\[0\]\.when\.oneOf` to be a non-empty array/);
    expect(thrown(() => bad({ arg: 0, oneOf: [0x100000000], upper: 'ignored' })).message).to.match(/to hold u32 values/);
    expect(thrown(() => bad({ arg: 0, mask: 0xff, oneOf: [0x100], upper: 'ignored' })).message).to.match(
      /inside mask 0xff, got 0x100, which no argument can match/,
    );
    expect(thrown(() => bad({ arg: 0, oneOf: [0] })).message).to.match(/`rules\.clone\.if\[0\]\.when\.upper` to be 'ignored' or 'zero'/);
    expect(thrown(() => compile({ rules: {}, defaultAction: errno(-1) })).message).to.match(/`defaultAction\.errno`/);
  });

  it('compiles an empty policy to the checks and the default action', function () {
    const p = compile({ rules: {}, defaultAction: errno(Errno.EPERM) });
    expect(disassemble(p)).to.deep.equal([
      '   0: ld arch',
      '   1: jeq #0xc000003e ? 3 : 2',
      '   2: ret kill-process',
      '   3: ld nr',
      '   4: jge #0x40000000 ? 5 : 6',
      '   5: ret kill-process',
      '   6: ret errno(1)',
    ]);
  });

  it('supports masks, several values, a zero high word, trap and non-kill defaults', function () {
    const policy: Policy = {
      rules: {
        // (args[2] & 0xff00) in {0x100, 0x200}, and args[2] fits in 32 bits
        mmap: { if: [{ when: { arg: 2, mask: 0xff00, oneOf: [0x100, 0x200], upper: 'zero' }, then: allow }], else: trap },
        write: allow,
        getpid: kill,
      },
      defaultAction: errno(Errno.EPERM),
    };
    const p = compile(policy);
    const samples = [0n, 0x100n, 0x1ffn, 0x2ffn, 0x300n, 0x1_0000_0100n, -1n];
    for (const nr of [SYSCALLS.mmap, SYSCALLS.write, SYSCALLS.getpid, SYSCALLS.read, 500]) {
      for (const a of samples) {
        const data = { nr, arch: AUDIT_ARCH_X86_64, args: [0n, 0n, a] };
        expect(interpret(p, data), `${nr}(0, 0, ${a})`).to.equal(reference(policy, data));
      }
    }
    expect(describeAction(interpret(p, { nr: SYSCALLS.mmap, arch: AUDIT_ARCH_X86_64, args: [0n, 0n, 0x1_0000_0100n] }))).to.equal('trap');
    expect(disassemble(p).join('\n')).to.include('and #0xff00').and.to.include('ld args[2].hi');
  });

  it('reaches far targets through ja trampolines and stays correct', function () {
    // Every system call gets a rule, alternating actions, and every third one a long argument list:
    // the program is far longer than 255 instructions, so jumps to shared returns and subtrees go far.
    const many: Record<string, Rule> = {};
    const values = Array.from({ length: 20 }, (_, i) => i * 3 + 1);
    Object.keys(SYSCALLS).forEach((name, i) => {
      many[name] =
        i % 3 === 0
          ? { if: [{ when: { arg: 0, oneOf: values, upper: 'ignored' }, then: errno(i + 1) }], else: i % 2 ? allow : kill }
          : i % 2
            ? allow
            : errno(Errno.EPERM);
    });
    const policy: Policy = { rules: many, defaultAction: trap };
    const p = compile(policy);
    expect(p.length).to.be.above(1000).and.at.most(BPF_MAXINSNS);
    expect(
      p.instructions.some((i) => i.code === Op.JA),
      'uses ja',
    ).to.equal(true);
    for (const nr of [...Object.values(SYSCALLS), 451, 1000, X32_SYSCALL_BIT - 1]) {
      for (const a of [0n, 1n, 4n, 58n, 59n, 2n]) {
        const data = { nr, arch: AUDIT_ARCH_X86_64, args: [a] };
        expect(interpret(p, data), `${nr}(${a})`).to.equal(reference(policy, data));
      }
    }
  });

  it('refuses a policy longer than BPF_MAXINSNS with a clear error', function () {
    const huge: Record<string, Rule> = {};
    const values = Array.from({ length: 20 }, (_, i) => i + 1);
    for (const name of Object.keys(SYSCALLS)) huge[name] = { if: [{ when: { arg: 1, oneOf: values, upper: 'ignored' }, then: allow }], else: kill };
    const err = thrown(() => compile({ rules: huge }));
    expect(err).to.be.instanceOf(RangeError);
    expect(err.message).to.match(/^Expected the seccomp policy to compile to at most 4096 instructions \(BPF_MAXINSNS\), got \d+/);
  });
});

describe('seccomp: the verifier and the interpreter', function () {
  const ret = (k: number) => insn(Op.RET_K, k);
  const data = { nr: 1, arch: AUDIT_ARCH_X86_64 };

  it('refuses programs the kernel would refuse', function () {
    const refuses = (p: Instruction[], pattern: RegExp) => {
      const err = thrown(() => verify(p));
      expect(err).to.be.instanceOf(BpfError);
      expect(err.message).to.match(pattern);
    };
    refuses([], /at least 1 instruction, got 0/);
    refuses(
      Array.from({ length: 4097 }, () => ret(SeccompRet.ALLOW)),
      /at most 4096 instructions \(BPF_MAXINSNS\), got 4097/,
    );
    refuses([insn(Op.JEQ_K, 1, 1, 0), ret(SeccompRet.ALLOW)], /^instruction 0 \(jeq #0x1 \? \+1 : \+0\): jumps past the end/);
    refuses([insn(Op.JA, 5), ret(SeccompRet.ALLOW)], /^instruction 0 \(ja \+5\): jumps past the end/);
    refuses([insn(Op.LD_W_ABS, 0)], /the last instruction must be a return/);
    refuses([insn(Op.LD_W_ABS, 2), ret(SeccompRet.ALLOW)], /4-byte aligned inside seccomp_data/);
    refuses([insn(Op.LD_W_ABS, 64), ret(SeccompRet.ALLOW)], /4-byte aligned inside seccomp_data/);
    refuses([insn(0x61, 0), ret(SeccompRet.ALLOW)], /opcode 0x61 is not supported/);
    refuses([ret(0x12340000)], /returns 0x12340000, which is no SECCOMP_RET action/);
    refuses([insn(Op.JEQ_K, 1, 256, 0), ret(SeccompRet.ALLOW)], /jt and jf u8/);
  });

  it('refuses out-of-range jumps and missing returns while running', function () {
    expect(() => interpret([insn(Op.JA, 3), ret(0)], data)).to.throw(BpfError, /jumps to 4, past the end/);
    expect(() => interpret([insn(Op.LD_W_ABS, 0)], data)).to.throw(BpfError, /ran off the end of the 1-instruction program without a return/);
  });

  it('loads every field of seccomp_data and runs and, or, tax, txa and the jumps', function () {
    const input: SeccompInput = { nr: 7, arch: 9, instructionPointer: 0x1_0000_0002n, args: [0n, 0n, 0n, 0n, 0n, -2n] };
    const loadAndReturnA = (offset: number) =>
      interpret(
        [
          insn(Op.LD_W_ABS, offset),
          insn(Op.TAX, 0),
          insn(Op.LD_W_ABS, 0),
          insn(Op.TXA, 0),
          insn(Op.JEQ_K, 0xfffffffe, 0, 1),
          ret(SeccompRet.ERRNO | 1),
          insn(Op.JSET_K, 0xffffffff, 0, 1),
          ret(SeccompRet.ALLOW),
          ret(SeccompRet.TRAP),
        ],
        input,
      );
    expect(loadAndReturnA(0)).to.equal(SeccompRet.ALLOW); // nr 7
    expect(loadAndReturnA(56)).to.equal(SeccompRet.ERRNO | 1); // args[5].lo = 0xfffffffe
    expect(loadAndReturnA(60)).to.equal(SeccompRet.ALLOW); // args[5].hi = 0xffffffff
    expect(loadAndReturnA(16)).to.equal(SeccompRet.TRAP); // args[0].lo = 0
    const jumps = (code: number, k: number) =>
      interpret([insn(Op.LD_W_ABS, 0), insn(Op.OR_K, 0x80000000), insn(Op.AND_K, 0x80000007), insn(code, k, 0, 1), ret(1), ret(2)], input);
    expect(jumps(Op.JEQ_K, 0x80000007)).to.equal(1);
    expect(jumps(Op.JGT_K, 0x80000006)).to.equal(1); // unsigned comparison
    expect(jumps(Op.JGT_K, 0x80000007)).to.equal(2);
    expect(jumps(Op.JGE_K, 0x80000007)).to.equal(1);
    expect(jumps(Op.JGE_K, 0x80000008)).to.equal(2);
    expect(jumps(Op.JSET_K, 0x8)).to.equal(2);
    expect(describeAction(SeccompRet.ERRNO | 38)).to.equal('errno(38)');
    expect(describeAction(SeccompRet.KILL_PROCESS)).to.equal('kill-process');
  });
});
