// The machine a seccomp filter runs on: classic BPF instructions, struct seccomp_data, the
// SECCOMP_RET_* actions; a verifier holding programs to the kernel's rules, and an interpreter
// so tests can run a compiled policy against any system call without installing it.
//
// Only the subset the compiler emits is supported (and the verifier refuses the rest): ld [k]
// from seccomp_data, and/or with k, ja, jeq/jgt/jge/jset with k, ret k, tax, txa.

/** One `struct sock_filter`. */
export interface Instruction {
  /** Opcode (u16). */
  readonly code: number;
  /** Instructions to skip when a conditional jump is taken (u8). */
  readonly jt: number;
  /** Instructions to skip when a conditional jump is not taken (u8). */
  readonly jf: number;
  /** Operand (u32): an offset, a constant, a return value, or the distance of `ja`. */
  readonly k: number;
}

/** Opcodes (`BPF_CLASS | BPF_SIZE/OP | BPF_MODE/SRC` from <linux/filter.h>) this machine runs. */
export const Op = Object.freeze({
  /** A = *(u32 *)(seccomp_data + k) */
  LD_W_ABS: 0x20,
  /** A &= k */
  AND_K: 0x54,
  /** A |= k */
  OR_K: 0x44,
  /** pc += k (32-bit: the only way to jump farther than 255) */
  JA: 0x05,
  /** pc += A == k ? jt : jf */
  JEQ_K: 0x15,
  /** pc += A > k ? jt : jf (unsigned) */
  JGT_K: 0x25,
  /** pc += A >= k ? jt : jf (unsigned) */
  JGE_K: 0x35,
  /** pc += A & k ? jt : jf */
  JSET_K: 0x45,
  /** return k */
  RET_K: 0x06,
  /** X = A */
  TAX: 0x07,
  /** A = X */
  TXA: 0x87,
} as const);

/** `BPF_MAXINSNS`: the kernel refuses longer filters. */
export const BPF_MAXINSNS = 4096;

/** Byte offsets into `struct seccomp_data` (little-endian x86_64). */
export const SeccompData = Object.freeze({
  nr: 0,
  arch: 4,
  instructionPointerLow: 8,
  instructionPointerHigh: 12,
  /** Low 32 bits of `args[i]`. */
  argLow: (i: number) => 16 + 8 * i,
  /** High 32 bits of `args[i]`. */
  argHigh: (i: number) => 20 + 8 * i,
  /** `sizeof(struct seccomp_data)`. */
  size: 64,
});

/** Filter return values (`SECCOMP_RET_*`): the action in the high 16 bits, data in the low 16. */
export const SeccompRet = Object.freeze({
  KILL_PROCESS: 0x80000000,
  KILL_THREAD: 0x00000000,
  TRAP: 0x00030000,
  /** OR the errno (1..4095) into the low bits. */
  ERRNO: 0x00050000,
  USER_NOTIF: 0x7fc00000,
  TRACE: 0x7ff00000,
  LOG: 0x7ffc0000,
  ALLOW: 0x7fff0000,
  /** `SECCOMP_RET_ACTION_FULL` */
  ACTION_MASK: 0xffff0000,
  /** `SECCOMP_RET_DATA` */
  DATA_MASK: 0x0000ffff,
} as const);

const knownActions = new Set<number>([
  SeccompRet.KILL_PROCESS,
  SeccompRet.KILL_THREAD,
  SeccompRet.TRAP,
  SeccompRet.ERRNO,
  SeccompRet.USER_NOTIF,
  SeccompRet.TRACE,
  SeccompRet.LOG,
  SeccompRet.ALLOW,
]);

/** What the filter sees of a system call: `struct seccomp_data`. */
export interface SeccompInput {
  /** System-call number, as the u32 the filter loads. */
  nr: number;
  /** `AUDIT_ARCH_*` of the calling convention. */
  arch: number;
  /** @default 0n */
  instructionPointer?: bigint;
  /** Up to six register arguments, each taken modulo 2^64 (so -1n is 0xffff_ffff_ffff_ffff). Missing ones are 0. @default [] */
  args?: readonly bigint[];
}

/** A program as the compiler returns it, or its bare instructions. */
export type ProgramLike = readonly Instruction[] | { readonly instructions: readonly Instruction[] };

/** Thrown by {@link verify} and {@link interpret} for a program the kernel would refuse or that misbehaves. */
export class BpfError extends Error {
  override name = 'BpfError';
}

const instructionsOf = (p: ProgramLike): readonly Instruction[] => ('instructions' in p ? p.instructions : p);
const hex = (n: number) => `0x${n.toString(16)}`;
const isU = (n: number, bits: number) => Number.isInteger(n) && n >= 0 && n < 2 ** bits;
const isJump = (code: number) => code === Op.JEQ_K || code === Op.JGT_K || code === Op.JGE_K || code === Op.JSET_K;

/**
 * Holds a program to the rules the kernel (bpf_check_classic, seccomp_check_filter) enforces,
 * restricted to the opcodes this machine runs: 1..4096 instructions, known opcodes, aligned loads
 * inside seccomp_data, every jump landing inside the program, the last instruction a return, and
 * every return value a known SECCOMP_RET action. Since classic BPF only jumps forward, the last
 * two rules mean every path returns.
 * @throws {BpfError} naming the first offending instruction.
 */
export function verify(program: ProgramLike): void {
  const insns = instructionsOf(program);
  if (insns.length === 0) throw new BpfError('Expected a BPF program of at least 1 instruction, got 0');
  if (insns.length > BPF_MAXINSNS) {
    throw new BpfError(`Expected a BPF program of at most ${BPF_MAXINSNS} instructions (BPF_MAXINSNS), got ${insns.length}`);
  }
  insns.forEach((insn, pc) => {
    const at = `instruction ${pc} (${disassembleOne(insn)})`;
    if (!isU(insn.code, 16) || !isU(insn.jt, 8) || !isU(insn.jf, 8) || !isU(insn.k, 32)) {
      throw new BpfError(`${at}: code must be a u16, jt and jf u8, k a u32`);
    }
    const landsInside = (skip: number) => pc + 1 + skip < insns.length;
    switch (insn.code) {
      case Op.LD_W_ABS:
        if (insn.k % 4 !== 0 || insn.k >= SeccompData.size) {
          throw new BpfError(`${at}: loads must be 4-byte aligned inside seccomp_data (0..${SeccompData.size - 4}), got offset ${insn.k}`);
        }
        break;
      case Op.AND_K:
      case Op.OR_K:
      case Op.TAX:
      case Op.TXA:
        break;
      case Op.JA:
        if (!landsInside(insn.k)) throw new BpfError(`${at}: jumps past the end of the ${insns.length}-instruction program`);
        break;
      case Op.JEQ_K:
      case Op.JGT_K:
      case Op.JGE_K:
      case Op.JSET_K:
        if (!landsInside(insn.jt) || !landsInside(insn.jf)) {
          throw new BpfError(`${at}: jumps past the end of the ${insns.length}-instruction program`);
        }
        break;
      case Op.RET_K:
        if (!knownActions.has((insn.k & SeccompRet.ACTION_MASK) >>> 0)) {
          throw new BpfError(`${at}: returns ${hex(insn.k)}, which is no SECCOMP_RET action`);
        }
        break;
      default:
        throw new BpfError(`${at}: opcode ${hex(insn.code)} is not supported`);
    }
  });
  const last = insns[insns.length - 1];
  if (last.code !== Op.RET_K) {
    throw new BpfError(`instruction ${insns.length - 1} (${disassembleOne(last)}): the last instruction must be a return`);
  }
}

function load(data: SeccompInput, offset: number): number {
  const u64 = (x: bigint | undefined) => BigInt.asUintN(64, x ?? 0n);
  const word = (x: bigint, high: boolean) => Number(high ? x >> 32n : x & 0xffffffffn);
  if (offset === SeccompData.nr) return data.nr >>> 0;
  if (offset === SeccompData.arch) return data.arch >>> 0;
  if (offset === SeccompData.instructionPointerLow || offset === SeccompData.instructionPointerHigh) {
    return word(u64(data.instructionPointer), offset === SeccompData.instructionPointerHigh);
  }
  const i = (offset - 16) >> 3;
  return word(u64(data.args?.[i]), offset % 8 === 4);
}

/**
 * Runs a seccomp filter on one system call, as the kernel would, and returns the u32 it returns
 * (compare with {@link SeccompRet}; {@link describeAction} names it).
 * @throws {BpfError} for an unsupported opcode, a bad load, a jump out of the program, or falling
 * off its end without a return.
 */
export function interpret(program: ProgramLike, data: SeccompInput): number {
  const insns = instructionsOf(program);
  let a = 0;
  let x = 0;
  let pc = 0;
  const jump = (from: number, skip: number) => {
    const to = from + 1 + skip;
    if (to >= insns.length)
      throw new BpfError(`instruction ${from} (${disassembleOne(insns[from])}) jumps to ${to}, past the end of the ${insns.length}-instruction program`);
    return to;
  };
  for (;;) {
    if (pc >= insns.length) throw new BpfError(`ran off the end of the ${insns.length}-instruction program without a return`);
    const insn = insns[pc];
    switch (insn.code) {
      case Op.LD_W_ABS:
        if (insn.k % 4 !== 0 || insn.k >= SeccompData.size) throw new BpfError(`instruction ${pc}: bad load offset ${insn.k}`);
        a = load(data, insn.k);
        pc++;
        break;
      case Op.AND_K:
        a = (a & insn.k) >>> 0;
        pc++;
        break;
      case Op.OR_K:
        a = (a | insn.k) >>> 0;
        pc++;
        break;
      case Op.TAX:
        x = a;
        pc++;
        break;
      case Op.TXA:
        a = x;
        pc++;
        break;
      case Op.JA:
        pc = jump(pc, insn.k >>> 0);
        break;
      case Op.JEQ_K:
        pc = jump(pc, a === insn.k >>> 0 ? insn.jt : insn.jf);
        break;
      case Op.JGT_K:
        pc = jump(pc, a > insn.k >>> 0 ? insn.jt : insn.jf);
        break;
      case Op.JGE_K:
        pc = jump(pc, a >= insn.k >>> 0 ? insn.jt : insn.jf);
        break;
      case Op.JSET_K:
        pc = jump(pc, (a & insn.k) !== 0 ? insn.jt : insn.jf);
        break;
      case Op.RET_K:
        return insn.k >>> 0;
      default:
        throw new BpfError(`instruction ${pc}: opcode ${hex(insn.code)} is not supported`);
    }
  }
}

/** Names a filter return value: `allow`, `kill-process`, `errno(38)`, `trap`, ... */
export function describeAction(ret: number): string {
  const action = (ret & SeccompRet.ACTION_MASK) >>> 0;
  const data = ret & SeccompRet.DATA_MASK;
  switch (action) {
    case SeccompRet.ALLOW:
      return 'allow';
    case SeccompRet.KILL_PROCESS:
      return 'kill-process';
    case SeccompRet.KILL_THREAD:
      return 'kill-thread';
    case SeccompRet.TRAP:
      return 'trap';
    case SeccompRet.ERRNO:
      return `errno(${data})`;
    case SeccompRet.USER_NOTIF:
      return 'user-notif';
    case SeccompRet.TRACE:
      return `trace(${data})`;
    case SeccompRet.LOG:
      return 'log';
    default:
      return `unknown(${hex(ret >>> 0)})`;
  }
}

function operand(k: number): string {
  if (k === SeccompData.nr) return 'nr';
  if (k === SeccompData.arch) return 'arch';
  if (k === SeccompData.instructionPointerLow) return 'ip.lo';
  if (k === SeccompData.instructionPointerHigh) return 'ip.hi';
  if (k >= 16 && k < SeccompData.size && k % 4 === 0) return `args[${(k - 16) >> 3}].${k % 8 === 4 ? 'hi' : 'lo'}`;
  return `?${k}`;
}

function disassembleOne(insn: Instruction, pc?: number): string {
  const target = (skip: number) => (pc === undefined ? `+${skip}` : String(pc + 1 + skip));
  const k = hex(insn.k >>> 0);
  switch (insn.code) {
    case Op.LD_W_ABS:
      return `ld ${operand(insn.k)}`;
    case Op.AND_K:
      return `and #${k}`;
    case Op.OR_K:
      return `or #${k}`;
    case Op.TAX:
      return 'tax';
    case Op.TXA:
      return 'txa';
    case Op.JA:
      return `ja ${target(insn.k)}`;
    case Op.RET_K:
      return `ret ${describeAction(insn.k)}`;
    default: {
      const name = { [Op.JEQ_K]: 'jeq', [Op.JGT_K]: 'jgt', [Op.JGE_K]: 'jge', [Op.JSET_K]: 'jset' }[insn.code];
      if (name && isJump(insn.code)) return `${name} #${k} ? ${target(insn.jt)} : ${target(insn.jf)}`;
      return `.insn code=${hex(insn.code)} jt=${insn.jt} jf=${insn.jf} k=${k}`;
    }
  }
}

/** One line per instruction, `pc: mnemonic`, with jump targets as absolute indexes. For reading and for golden tests. */
export function disassemble(program: ProgramLike): string[] {
  return instructionsOf(program).map((insn, pc) => `${String(pc).padStart(4)}: ${disassembleOne(insn, pc)}`);
}
