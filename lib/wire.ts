// Encoding of everything that crosses a process boundary. The structs are generated from
// thrift/nodespawner.thrift (thrift/gen-js, never edited by hand); this file adds the typed facade,
// a bounded decoder for bytes that come from a child, and the JS <-> Value conversion.
import { createRequire } from 'node:module';
import thrift from 'thrift';
import type { RunTimings } from './job.js';

const require = createRequire(import.meta.url);

/* eslint-disable @typescript-eslint/no-explicit-any */
interface ThriftStruct {
  read(input: any): void;
  write(output: any): void;
}
type Ctor<T> = new (init?: Partial<T>) => T & ThriftStruct;

export interface WireValue {
  nullValue?: boolean | null;
  undefinedValue?: boolean | null;
  boolValue?: boolean | null;
  numberValue?: number | null;
  stringValue?: string | null;
  listValue?: WireValue[] | null;
  objectValue?: Array<{ key: string; value: WireValue }> | null;
  bigintValue?: string | null;
  bytesValue?: Buffer | null;
}
export interface JobPayload {
  jobArgs: WireValue;
  inputs: Array<{ name: string; offset: unknown; length: unknown }>;
}
export interface RunRequest {
  id: number;
  modulePath: string;
  hostname: string;
  cloneFlags: number;
  uid: number;
  gid: number;
  mounts: Array<{ kind: number; source: string; target: string; writable: boolean; sizeBytes: number; content?: string | null }>;
  landlockHandled: unknown;
  landlockScoped: unknown;
  landlock: Array<{ path: string; access: unknown }>;
  cgroupDirs: string[];
  cgroupWrites: Array<{ path: string; value: string }>;
  cgroupProcs: string[];
  cgroupStats: string[];
  rlimits: Array<{ resource: number; limit: unknown; aboveInherited?: boolean | null }>;
  /** A preforked child: the payload arrives later, over the socket in the payload's place. */
  deferred?: boolean | null;
  /** sandbox.network 'egress': the job's firewall and network stack. */
  egress?: EgressPlan | null;
}
export interface EgressPlan {
  firewall: string;
  nft: string[];
  stack: string[];
}
export interface JobError {
  name: string;
  message: string;
  stack?: string | null;
  code?: string | null;
}
export interface Ready {
  pid: number;
  nodeVersion: string;
  threads: number;
  preloaded: string[];
  rssBytes: unknown;
  selfTestMs: number;
  landlockAbi: number;
  preloadedFiles: string[];
  heapArena: boolean;
  hugePageBytes: unknown;
  heapArenaNote?: string | null;
}
export interface Fatal {
  code: string;
  message: string;
}
export interface ZygoteEvent {
  ready?: Ready | null;
  fatal?: Fatal | null;
}
export interface Started {
  pid: number;
  receivedNs: unknown;
  forkedNs: unknown;
  releasedNs: unknown;
}
export interface SetupFailed {
  step: string;
  syscall: string;
  errnum: number;
  detail?: string | null;
}
export interface Exited {
  code: number;
  signal: number;
  userCpuUs: unknown;
  systemCpuUs: unknown;
  maxRssKb: unknown;
  exitedNs: unknown;
  cgroupStats?: string[] | null;
  seccompSyscall?: number | null;
}
export interface JobEvent {
  started?: Started | null;
  setupFailed?: SetupFailed | null;
  exited?: Exited | null;
}
// nodespawner/bullmq (lib/bullmq/)
export interface Blob {
  bytes?: Buffer | null;
  storeKey?: string | null;
}
export interface RemoteRequest {
  jobArgs: WireValue;
  inputs: Array<{ name: string; ipc: Blob }>;
  timeout?: unknown;
  replyTo: string;
}
/** The run's phases as RunResult.timings has them (struct RemoteTimings has the same fields). */
export type RemoteTimings = RunTimings;
export interface RemoteResult {
  table?: Blob | null;
  value?: Blob | null;
  stdout: string;
  stderr: string;
  exitCode: number;
  durationMs: number;
  cpuMs: number;
  maxRssBytes: unknown;
  peakMemoryBytes?: unknown;
  preforked: boolean;
  timings: RemoteTimings;
}
export interface RemoteError {
  code: string;
  message: string;
  exitCode?: number | null;
  signal?: string | null;
  stdout: string;
  stderr: string;
  durationMs?: number | null;
  limit?: unknown;
  detail?: string | null;
  remote?: JobError | null;
  setup?: SetupFailed | null;
}
export interface RemoteReply {
  jobId: string;
  outcome: { result?: RemoteResult | null; error?: RemoteError | null };
}

const generated = require('../../thrift/gen-js/nodespawner_types.cjs') as {
  Value: Ctor<WireValue>;
  Entry: Ctor<{ key: string; value: WireValue }>;
  JobPayload: Ctor<JobPayload>;
  InputRef: Ctor<JobPayload['inputs'][number]>;
  RunRequest: Ctor<RunRequest>;
  MountOp: Ctor<RunRequest['mounts'][number]>;
  LandlockRule: Ctor<RunRequest['landlock'][number]>;
  CgroupWrite: Ctor<RunRequest['cgroupWrites'][number]>;
  Rlimit: Ctor<RunRequest['rlimits'][number]>;
  EgressPlan: Ctor<EgressPlan>;
  JobError: Ctor<JobError>;
  Ready: Ctor<Ready>;
  Fatal: Ctor<Fatal>;
  ZygoteEvent: Ctor<ZygoteEvent>;
  JobEvent: Ctor<JobEvent>;
  Blob: Ctor<Blob>;
  RemoteInput: Ctor<RemoteRequest['inputs'][number]>;
  RemoteRequest: Ctor<RemoteRequest>;
  RemoteTimings: Ctor<RemoteTimings>;
  RemoteResult: Ctor<RemoteResult>;
  RemoteError: Ctor<RemoteError>;
  RemoteOutcome: Ctor<RemoteReply['outcome']>;
  RemoteReply: Ctor<RemoteReply>;
  SetupFailed: Ctor<SetupFailed>;
};
export const T = generated;

/** The generated classes are anonymous: name them for error messages. */
const structNames = new Map<unknown, string>(Object.entries(generated).map(([name, ctor]) => [ctor, name]));

/**
 * Result-pipe framing: one tag byte, then the body. Table and Stream bodies are both an Arrow
 * IPC stream; Stream is written batch by batch while the job produces them.
 */
export const ResultTag = { Table: 1, Value: 2, Error: 3, Stream: 4, Timings: 5 } as const;

/**
 * The child's phase marks, sent before its result: tag 5 and four u64le CLOCK_MONOTONIC ns
 * (runner started, job module imported, payload received, job returned).
 */
export const timingsFrameBytes = 1 + 8 * 4;

export interface ChildMarks {
  started: bigint;
  imported: bigint;
  received: bigint;
  returned: bigint;
}

export function timingsFrame(m: ChildMarks): Buffer {
  const b = Buffer.alloc(timingsFrameBytes);
  b[0] = ResultTag.Timings;
  [m.started, m.imported, m.received, m.returned].forEach((v, i) => b.writeBigUInt64LE(v, 1 + 8 * i));
  return b;
}

/** Splits a leading Timings frame off result bytes; `marks` is null when there is none. */
export function splitTimings(bytes: Buffer): { marks: ChildMarks | null; rest: Buffer } {
  if (bytes.length < timingsFrameBytes || bytes[0] !== ResultTag.Timings) return { marks: null, rest: bytes };
  const at = (i: number) => bytes.readBigUInt64LE(1 + 8 * i);
  return { marks: { started: at(0), imported: at(1), received: at(2), returned: at(3) }, rest: bytes.subarray(timingsFrameBytes) };
}

/**
 * A Stream body is a sequence of records: u32le length N > 0 and N bytes of the Arrow IPC stream;
 * then u32le 0 (the end), or u32le 0xffffffff followed by an Error frame (tag 3 + JobError) when
 * the job failed part way.
 */
export const StreamRecord = { End: 0, Failed: 0xffffffff } as const;

/** Thrift i64 fields arrive as node-int64 objects. */
export function i64(v: unknown): number {
  if (typeof v === 'number') return v;
  if (v && typeof (v as { toNumber?: unknown }).toNumber === 'function') return (v as { toNumber(): number }).toNumber();
  return Number(v);
}

/**
 * Collects what the protocol writes in one growing buffer. Also the transport that the
 * library's own write methods (writeI64) write to. Zero-filled and never from Node's shared pool:
 * the bytes past the end of what was written belong to nothing else.
 */
class ByteSink {
  buf = Buffer.alloc(512);
  len = 0;
  reserve(n: number): void {
    if (this.len + n <= this.buf.length) return;
    const grown = Buffer.alloc(Math.max(this.buf.length * 2, this.len + n));
    this.buf.copy(grown, 0, 0, this.len);
    this.buf = grown;
  }
  write(bytes: Uint8Array): void {
    this.reserve(bytes.length);
    this.buf.set(bytes, this.len);
    this.len += bytes.length;
  }
}

/**
 * Thrift's binary protocol writing straight into a ByteSink. The library's TBinaryProtocol
 * allocates a Buffer per primitive through the deprecated `new Buffer()`; a 20 KB value took it
 * ~6 ms warm and ~90 ms in a fresh process. The bytes are the library's (every composite write
 * is its own code), except that -0 stays -0 (the library's writeDouble drops the sign).
 */
class EncodingProtocol extends (thrift as any).TBinaryProtocol {
  constructor(private readonly sink: ByteSink) {
    super(sink);
  }
  writeByte(b: number): void {
    const s = this.sink;
    s.reserve(1);
    s.buf[s.len++] = b & 0xff;
  }
  writeI16(v: number): void {
    const s = this.sink;
    s.reserve(2);
    s.buf[s.len++] = (v >> 8) & 0xff;
    s.buf[s.len++] = v & 0xff;
  }
  writeI32(v: number): void {
    const s = this.sink;
    s.reserve(4);
    s.buf[s.len++] = (v >> 24) & 0xff;
    s.buf[s.len++] = (v >> 16) & 0xff;
    s.buf[s.len++] = (v >> 8) & 0xff;
    s.buf[s.len++] = v & 0xff;
  }
  writeI64(v: unknown): void {
    // The library converts a number through node-int64, which allocates with new Buffer().
    if (typeof v !== 'number' || !Number.isSafeInteger(v)) return super.writeI64(v);
    const s = this.sink;
    s.reserve(8);
    s.len = s.buf.writeBigInt64BE(BigInt(v), s.len);
  }
  writeDouble(v: number): void {
    const s = this.sink;
    s.reserve(8);
    s.len = s.buf.writeDoubleBE(v, s.len);
  }
  writeStringOrBinary(name: string, encoding: BufferEncoding, arg: unknown): void {
    if (typeof arg === 'string') {
      const n = Buffer.byteLength(arg, encoding);
      this.writeI32(n);
      this.sink.reserve(n);
      this.sink.len += this.sink.buf.write(arg, this.sink.len, n, encoding);
    } else if (arg instanceof Uint8Array) {
      this.writeI32(arg.length);
      this.sink.write(arg);
    } else {
      throw new Error(`${name} called without a string/Buffer argument: ${String(arg)}`);
    }
  }
}

export function encode<T>(Struct: Ctor<T>, fields: Partial<T>): Buffer {
  const sink = new ByteSink();
  new Struct(fields).write(new EncodingProtocol(sink));
  return sink.buf.subarray(0, sink.len);
}

/** The same bytes through the library's own writer: the reference that tests compare with. */
export function encodeWithLibrary<T>(Struct: Ctor<T>, fields: Partial<T>): Buffer {
  let out: Buffer | undefined;
  const transport = new (thrift as any).TFramedTransport(undefined, (framed: Buffer) => {
    out = framed.subarray(4);
  });
  new Struct(fields).write(new (thrift as any).TBinaryProtocol(transport));
  transport.flush();
  return out!;
}

export interface DecodeLimits {
  /** Structs decoded at most (each costs ~100 bytes of heap per byte-sized input). */
  maxNodes: number;
  /** Nesting depth at most. */
  maxDepth: number;
}

export const defaultDecodeLimits: DecodeLimits = { maxNodes: 1_000_000, maxDepth: 64 };

export class WireError extends Error {}

/** TBinaryProtocol that refuses input whose shape could exhaust the reader's memory or stack. */
class BoundedProtocol extends (thrift as any).TBinaryProtocol {
  private depth = 0;
  private nodes = 0;
  constructor(
    transport: any,
    private readonly limits: DecodeLimits,
  ) {
    super(transport);
  }
  readStructBegin() {
    if (++this.depth > this.limits.maxDepth) throw new WireError(`nesting deeper than ${this.limits.maxDepth}`);
    if (++this.nodes > this.limits.maxNodes) throw new WireError(`more than ${this.limits.maxNodes} values`);
    return super.readStructBegin();
  }
  readStructEnd() {
    this.depth--;
    return super.readStructEnd();
  }
  private checkSize(size: number) {
    const t = (this as any).trans;
    const remaining = t.inBuf.length - t.readPos;
    if (!Number.isInteger(size) || size < 0 || size > remaining) throw new WireError(`container of ${size} elements in ${remaining} bytes`);
  }
  readListBegin() {
    const r = super.readListBegin();
    this.checkSize(r.size);
    return r;
  }
  readMapBegin() {
    const r = super.readMapBegin();
    this.checkSize(r.size);
    return r;
  }
  readSetBegin() {
    const r = super.readSetBegin();
    this.checkSize(r.size);
    return r;
  }
}

/** Decodes bytes of unknown origin. Throws WireError on anything malformed or oversized. */
export function decode<T>(Struct: Ctor<T>, bytes: Uint8Array, limits: DecodeLimits = defaultDecodeLimits): T {
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const transport = new (thrift as any).TFramedTransport(buf);
  const protocol = new BoundedProtocol(transport, limits);
  const out = new Struct();
  try {
    out.read(protocol);
  } catch (err) {
    if (err instanceof WireError) throw err;
    throw new WireError(`malformed ${structNames.get(Struct)}: ${(err as Error)?.message ?? String(err)}`);
  }
  if (transport.readPos !== buf.length) throw new WireError(`${buf.length - transport.readPos} trailing bytes after ${structNames.get(Struct)}`);
  return out;
}

// --- JS values <-> Value ------------------------------------------------------------------------

const maxValueDepth = 64;

function describe(x: unknown): string {
  if (x === null) return 'null';
  if (typeof x === 'object') return (x as object).constructor?.name ?? 'object with a null prototype';
  return typeof x;
}

/**
 * Converts a JSON-like value (plus undefined, bigint, Uint8Array) to its wire form. Throws a
 * TypeError naming the path of anything else: functions, symbols, class instances, cycles.
 */
export function toWire(x: unknown, path = 'args', depth = 0, ancestors: object[] = []): WireValue {
  // Instances, not plain objects: the generated writer does not convert list elements.
  return new T.Value(toFields(x, path, depth, ancestors));
}

function toFields(x: unknown, path: string, depth: number, ancestors: object[]): WireValue {
  if (depth > maxValueDepth) throw new TypeError(`Expected \`${path}\` to be nested at most ${maxValueDepth} deep`);
  switch (typeof x) {
    case 'undefined':
      return { undefinedValue: true };
    case 'boolean':
      return { boolValue: x };
    case 'number':
      return { numberValue: x };
    case 'string':
      return { stringValue: x };
    case 'bigint':
      return { bigintValue: x.toString() };
    case 'object': {
      if (x === null) return { nullValue: true };
      if (x instanceof Uint8Array) return { bytesValue: Buffer.from(x.buffer, x.byteOffset, x.byteLength) };
      if (ancestors.includes(x)) throw new TypeError(`Expected \`${path}\` to be JSON-like, got a circular reference`);
      ancestors.push(x);
      try {
        if (Array.isArray(x)) {
          // A loop, not map(): holes in sparse arrays become undefined.
          const list: WireValue[] = [];
          for (let i = 0; i < x.length; i++) list.push(toWire(x[i], `${path}[${i}]`, depth + 1, ancestors));
          return { listValue: list };
        }
        const proto = Object.getPrototypeOf(x);
        if (proto !== Object.prototype && proto !== null) {
          throw new TypeError(`Expected \`${path}\` to be JSON-like, got ${describe(x)}`);
        }
        return {
          objectValue: Object.keys(x).map(
            (key) => new T.Entry({ key, value: toWire((x as Record<string, unknown>)[key], `${path}.${key}`, depth + 1, ancestors) }),
          ),
        };
      } finally {
        ancestors.pop();
      }
    }
    default:
      throw new TypeError(`Expected \`${path}\` to be JSON-like, got ${describe(x)}`);
  }
}

/** Converts a decoded Value back to JS. Throws WireError unless exactly one field is set. */
export function fromWire(v: WireValue): unknown {
  let set = 0;
  let out: unknown;
  if (v.nullValue != null) {
    set++;
    out = null;
  }
  if (v.undefinedValue != null) {
    set++;
    out = undefined;
  }
  if (v.boolValue != null) {
    set++;
    out = v.boolValue;
  }
  if (v.numberValue != null) {
    set++;
    out = v.numberValue;
  }
  if (v.stringValue != null) {
    set++;
    out = v.stringValue;
  }
  if (v.bigintValue != null) {
    set++;
    if (!/^-?\d{1,10000}$/.test(v.bigintValue)) throw new WireError('malformed bigint');
    out = BigInt(v.bigintValue);
  }
  if (v.bytesValue != null) {
    set++;
    out = new Uint8Array(v.bytesValue);
  }
  if (v.listValue != null) {
    set++;
    out = v.listValue.map(fromWire);
  }
  if (v.objectValue != null) {
    set++;
    const o: Record<string, unknown> = {};
    for (const { key, value } of v.objectValue) {
      if (typeof key !== 'string' || value == null) throw new WireError('malformed object entry');
      Object.defineProperty(o, key, { value: fromWire(value), enumerable: true, writable: true, configurable: true });
    }
    out = o;
  }
  if (set !== 1) throw new WireError(`a Value must have exactly one field set, got ${set}`);
  return out;
}

/**
 * The payload memfd's parts: u32le length, the JobPayload, then each input's Arrow IPC bytes as
 * they are (the app's own buffers, written by the kernel).
 */
export function payloadParts(args: WireValue, inputs: Array<{ name: string; ipc: Uint8Array }>): Uint8Array[] {
  let offset = 0;
  const refs = inputs.map(({ name, ipc }) => {
    const ref = new T.InputRef({ name, offset, length: ipc.byteLength });
    offset += ipc.byteLength;
    return ref;
  });
  const head = encode(T.JobPayload, { jobArgs: args, inputs: refs });
  const length = Buffer.alloc(4);
  length.writeUInt32LE(head.length);
  return [length, head, ...inputs.map((i) => i.ipc)];
}

/** Reads a payload (the child's side): its arguments and a view of each input's bytes. */
export function readPayload(bytes: Buffer): { args: WireValue; inputs: Array<{ name: string; ipc: Buffer }> } {
  if (bytes.length < 4) throw new WireError('payload shorter than its header');
  const n = bytes.readUInt32LE(0);
  if (n > bytes.length - 4) throw new WireError('payload header longer than the payload');
  const p = decode(T.JobPayload, bytes.subarray(4, 4 + n));
  const data = bytes.subarray(4 + n);
  const inputs = p.inputs.map((r) => {
    const offset = i64(r.offset);
    const length = i64(r.length);
    if (!(offset >= 0 && length >= 0 && offset + length <= data.length)) throw new WireError(`input ${r.name} lies outside the payload`);
    return { name: r.name, ipc: data.subarray(offset, offset + length) };
  });
  return { args: p.jobArgs, inputs };
}
