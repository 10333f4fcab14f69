// Compiles a Policy (policy.ts) to a classic BPF seccomp filter for x86_64:
//
//   ld arch; jeq AUDIT_ARCH_X86_64 or kill-process     any other calling convention dies
//   ld nr;   jge X32_SYSCALL_BIT then kill-process     so does the x32 ABI
//   a binary search over ranges of system-call numbers, each range ending in its action, or in
//   the argument tests of its one system call
//
// The program is built backwards, from the returns up, as Chromium's bpf_dsl CodeGen does:
// classic BPF only jumps forward, so every jump target already exists when its jump is made, and
// a conditional jump farther than 255 instructions goes through a `ja` (32-bit offset) trampoline
// placed just after it. Identical returns are shared while they are within reach.
import { AUDIT_ARCH_X86_64, SYSCALLS, X32_SYSCALL_BIT } from './syscalls.js';
import { BPF_MAXINSNS, Op, SeccompData, SeccompRet, verify } from './interpret.js';
import type { Instruction } from './interpret.js';
import { isConditional, kill } from './policy.js';
import type { Action, ArgTest, Conditional, Policy, Rule } from './policy.js';

export { BPF_MAXINSNS, SeccompRet } from './interpret.js';

/** A compiled filter: the instructions, and the bytes `prctl(PR_SET_SECCOMP)` / `seccomp(2)` take. */
export class SeccompProgram {
  constructor(readonly instructions: readonly Instruction[]) {}

  /** Number of instructions (`sock_fprog.len`). */
  get length(): number {
    return this.instructions.length;
  }

  /** The `struct sock_filter[]` array: 8 bytes per instruction, little-endian u16 code, u8 jt, u8 jf, u32 k. */
  toBuffer(): Buffer {
    const buf = Buffer.alloc(this.instructions.length * 8);
    this.instructions.forEach((insn, i) => {
      buf.writeUInt16LE(insn.code, i * 8);
      buf.writeUInt8(insn.jt, i * 8 + 2);
      buf.writeUInt8(insn.jf, i * 8 + 3);
      buf.writeUInt32LE(insn.k >>> 0, i * 8 + 4);
    });
    return buf;
  }
}

/** The SECCOMP_RET_* value of an action. */
export function actionValue(action: Action): number {
  switch (action.type) {
    case 'allow':
      return SeccompRet.ALLOW;
    case 'kill':
      return SeccompRet.KILL_PROCESS;
    case 'trap':
      return SeccompRet.TRAP;
    case 'errno':
      return (SeccompRet.ERRNO | action.errno) >>> 0;
  }
}

// ---------------------------------------------------------------------------------------------
// Validation. One error shape: Expected `<where>` to be <what>, got <value>.

const show = (x: unknown) => {
  let s: string;
  try {
    s = typeof x === 'bigint' ? `${x}n` : (JSON.stringify(x) ?? String(x));
  } catch {
    s = String(x);
  }
  return `\`${s}\` (${x === null ? 'null' : Array.isArray(x) ? 'array' : typeof x})`;
};
const isU32 = (n: unknown): n is number => typeof n === 'number' && Number.isInteger(n) && n >= 0 && n <= 0xffffffff;

function checkAction(action: unknown, where: string): asserts action is Action {
  const a = action as Action | null;
  if (typeof a !== 'object' || a === null || !['allow', 'kill', 'trap', 'errno'].includes(a.type)) {
    throw new TypeError(`Expected \`${where}\` to be an action (allow, kill, trap or errno(n)), got ${show(action)}`);
  }
  // The kernel clamps SECCOMP_RET_DATA to MAX_ERRNO; errno 0 would fake success without running the call.
  if (a.type === 'errno' && !(Number.isInteger(a.errno) && a.errno >= 1 && a.errno <= 4095)) {
    throw new TypeError(`Expected \`${where}.errno\` to be an integer from 1 to 4095, got ${show(a.errno)}`);
  }
}

function checkTest(test: ArgTest, where: string): void {
  if (typeof test !== 'object' || test === null) throw new TypeError(`Expected \`${where}\` to be an argument test, got ${show(test)}`);
  if (!(Number.isInteger(test.arg) && test.arg >= 0 && test.arg <= 5)) {
    throw new TypeError(`Expected \`${where}.arg\` to be an argument index from 0 to 5, got ${show(test.arg)}`);
  }
  const mask = test.mask ?? 0xffffffff;
  if (!isU32(mask)) throw new TypeError(`Expected \`${where}.mask\` to be a u32, got ${show(test.mask)}`);
  if (!Array.isArray(test.oneOf) || test.oneOf.length === 0) {
    throw new TypeError(`Expected \`${where}.oneOf\` to be a non-empty array of u32, got ${show(test.oneOf)}`);
  }
  for (const v of test.oneOf) {
    if (!isU32(v)) throw new TypeError(`Expected \`${where}.oneOf\` to hold u32 values, got ${show(v)}`);
    if ((v & mask) >>> 0 !== v) {
      throw new TypeError(`Expected \`${where}.oneOf\` values to lie inside mask 0x${mask.toString(16)}, got 0x${v.toString(16)}, which no argument can match`);
    }
  }
  if (test.upper !== 'ignored' && test.upper !== 'zero') {
    throw new TypeError(`Expected \`${where}.upper\` to be 'ignored' or 'zero', got ${show(test.upper)}`);
  }
}

function checkRule(rule: Rule, where: string): void {
  if (typeof rule === 'object' && rule !== null && isConditional(rule)) {
    if (!Array.isArray(rule.if)) throw new TypeError(`Expected \`${where}.if\` to be an array of clauses, got ${show(rule.if)}`);
    rule.if.forEach((clause, i) => {
      const tests: readonly unknown[] = Array.isArray(clause?.when) ? clause.when : [clause?.when];
      if (tests.length === 0) throw new TypeError(`Expected \`${where}.if[${i}].when\` to hold at least one test, got \`[]\``);
      tests.forEach((t: unknown, j: number) => checkTest(t as ArgTest, Array.isArray(clause.when) ? `${where}.if[${i}].when[${j}]` : `${where}.if[${i}].when`));
      checkAction(clause.then, `${where}.if[${i}].then`);
    });
    checkAction(rule.else, `${where}.else`);
  } else {
    checkAction(rule, where);
  }
}

// ---------------------------------------------------------------------------------------------
// Code generation.

/** A place to jump to: an emitted instruction (its index from the end of the program), or a return not yet emitted. */
type Target = number | { readonly ret: number };

const MAX_JUMP = 255;

/** Builds a program from its last instruction to its first. */
class Backwards {
  /** rev[i] is the i-th instruction counted from the end. */
  private readonly rev: Instruction[] = [];
  /** The most recent return of each value, by index from the end. */
  private readonly rets = new Map<number, number>();

  get size(): number {
    return this.rev.length;
  }

  /** Instructions between the next one pushed and `node`. */
  private distance(node: number): number {
    return this.rev.length - node - 1;
  }

  private push(insn: Instruction): number {
    this.rev.push(insn);
    if (this.rev.length > BPF_MAXINSNS * 4) {
      throw new RangeError(`Expected the seccomp policy to compile to at most ${BPF_MAXINSNS} instructions (BPF_MAXINSNS), got more than ${BPF_MAXINSNS * 4}`);
    }
    return this.rev.length - 1;
  }

  /** A fresh `ret`. */
  ret(value: number): number {
    const node = this.push({ code: Op.RET_K, jt: 0, jf: 0, k: value >>> 0 });
    this.rets.set(value >>> 0, node);
    return node;
  }

  /** An instruction within `reach` of the next one pushed that leads to `target`, pushing a return or a trampoline if needed. */
  private near(target: Target, reach: number): number {
    if (typeof target !== 'number') {
      const existing = this.rets.get(target.ret);
      return existing !== undefined && this.distance(existing) <= reach ? existing : this.ret(target.ret);
    }
    if (this.distance(target) <= reach) return target;
    return this.push({ code: Op.JA, jt: 0, jf: 0, k: this.distance(target) });
  }

  /** A conditional jump. The true side is placed first with one spare, so placing the false side cannot push it out of reach. */
  jump(code: number, k: number, whenTrue: Target, whenFalse: Target): number {
    const t = this.near(whenTrue, MAX_JUMP - 1);
    const f = this.near(whenFalse, MAX_JUMP);
    return this.push({ code, jt: this.distance(t), jf: this.distance(f), k: k >>> 0 });
  }

  /** A non-jump instruction, which falls through to `next`: `next` is placed right after it first (a return or a `ja`) unless it already is. */
  step(code: number, k: number, next: Target): number {
    this.near(next, 0);
    return this.push({ code, jt: 0, jf: 0, k: k >>> 0 });
  }

  /** `target` as an instruction: emits it if it is a return not yet placed right here. */
  materialize(target: Target): number {
    return this.near(target, 0);
  }

  /** The program, first instruction first. */
  finish(): Instruction[] {
    return this.rev.slice().reverse();
  }
}

/** One argument test: `pass` when it holds, `fail` otherwise. */
function emitTest(b: Backwards, test: ArgTest, pass: Target, fail: Target): number {
  const mask = (test.mask ?? 0xffffffff) >>> 0;
  let entry: number;
  if (test.oneOf.length === 1 && test.oneOf[0] === 0) {
    // (arg & mask) == 0: one jset.
    entry = b.jump(Op.JSET_K, mask, fail, pass);
  } else {
    let next: Target = fail;
    for (const value of [...test.oneOf].reverse()) next = b.jump(Op.JEQ_K, value, pass, next);
    entry = next as number;
    if (mask !== 0xffffffff) entry = b.step(Op.AND_K, mask, entry);
  }
  entry = b.step(Op.LD_W_ABS, SeccompData.argLow(test.arg), entry);
  if (test.upper === 'zero') {
    entry = b.jump(Op.JEQ_K, 0, entry, fail);
    entry = b.step(Op.LD_W_ABS, SeccompData.argHigh(test.arg), entry);
  }
  return entry;
}

/** The argument tests of one system call; each clause's tests run in order, the first clause that passes decides. */
function emitConditional(b: Backwards, rule: Conditional): Target {
  let next: Target = { ret: actionValue(rule.else) };
  for (const clause of [...rule.if].reverse()) {
    const tests = Array.isArray(clause.when) ? (clause.when as readonly ArgTest[]) : [clause.when as ArgTest];
    let pass: Target = { ret: actionValue(clause.then) };
    const fail = next;
    for (const test of [...tests].reverse()) pass = emitTest(b, test, pass, fail);
    next = pass;
  }
  return next;
}

/** A run of system-call numbers [start, next range's start) that all end the same way. */
interface Range {
  readonly start: number;
  /** A return value, or the system call whose conditional rule decides. */
  readonly leaf: { readonly ret: number } | { readonly name: string; readonly rule: Conditional };
}

function ranges(policy: Policy, defaultRet: number): Range[] {
  const leafAt = new Map<number, Range['leaf']>();
  for (const [name, rule] of Object.entries(policy.rules)) {
    if (rule === undefined) continue;
    const nr = SYSCALLS[name as keyof typeof SYSCALLS];
    if (isConditional(rule)) leafAt.set(nr, { name, rule });
    else if (actionValue(rule) !== defaultRet) leafAt.set(nr, { ret: actionValue(rule) });
  }
  const out: Range[] = [];
  const highest = Math.max(-1, ...leafAt.keys());
  for (let nr = 0; nr <= highest + 1; nr++) {
    const leaf = leafAt.get(nr) ?? { ret: defaultRet };
    const prev = out[out.length - 1];
    const same = prev && 'ret' in prev.leaf && 'ret' in leaf && prev.leaf.ret === leaf.ret;
    if (!same) out.push({ start: nr, leaf });
  }
  return out;
}

/** Binary search over ranges[lo, hi) on the number in A. */
function emitDispatch(b: Backwards, rs: readonly Range[], lo: number, hi: number): Target {
  if (hi - lo === 1) {
    const { leaf } = rs[lo];
    return 'ret' in leaf ? leaf : emitConditional(b, leaf.rule);
  }
  const mid = (lo + hi) >> 1;
  const above = emitDispatch(b, rs, mid, hi);
  const below = emitDispatch(b, rs, lo, mid);
  return b.jump(Op.JGE_K, rs[mid].start, above, below);
}

/**
 * Compiles a policy to a seccomp filter for x86_64, checked by {@link verify}.
 * @throws {TypeError} for a malformed policy, naming every unknown system call at once.
 * @throws {RangeError} if the filter would exceed BPF_MAXINSNS (4096) instructions.
 */
export function compile(policy: Policy): SeccompProgram {
  if (typeof policy !== 'object' || policy === null || typeof policy.rules !== 'object' || policy.rules === null) {
    throw new TypeError(`Expected \`policy\` to be an object with \`rules\`, got ${show(policy)}`);
  }
  const unknown = Object.keys(policy.rules).filter((name) => !Object.hasOwn(SYSCALLS, name));
  if (unknown.length > 0) {
    throw new TypeError(`Expected \`rules\` to name x86_64 system calls (lib/seccomp/syscalls.ts), got unknown ${unknown.map((n) => `\`${n}\``).join(', ')}`);
  }
  for (const [name, rule] of Object.entries(policy.rules)) if (rule !== undefined) checkRule(rule, `rules.${name}`);
  const defaultAction = policy.defaultAction ?? kill;
  checkAction(defaultAction, 'defaultAction');

  const b = new Backwards();
  const rs = ranges(policy, actionValue(defaultAction));
  const dispatch = b.materialize(emitDispatch(b, rs, 0, rs.length));
  // Written out rather than shared, so the head of every program is the same and easy to audit.
  const x32 = b.ret(SeccompRet.KILL_PROCESS);
  const nr = b.step(Op.LD_W_ABS, SeccompData.nr, b.jump(Op.JGE_K, X32_SYSCALL_BIT, x32, dispatch));
  const wrongArch = b.ret(SeccompRet.KILL_PROCESS);
  b.step(Op.LD_W_ABS, SeccompData.arch, b.jump(Op.JEQ_K, AUDIT_ARCH_X86_64, nr, wrongArch));

  if (b.size > BPF_MAXINSNS) {
    throw new RangeError(`Expected the seccomp policy to compile to at most ${BPF_MAXINSNS} instructions (BPF_MAXINSNS), got ${b.size}`);
  }
  const program = new SeccompProgram(Object.freeze(b.finish().map((insn) => Object.freeze(insn))));
  verify(program);
  return program;
}
