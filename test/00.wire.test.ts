// The wire layer alone: Thrift Value round trips, the bounded decoder against hostile bytes, and
// toWire's refusal of values that are not JSON-like. No processes.
import { expect } from 'chai';
import fs from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { T, WireError, decode, encode, encodeWithLibrary, fromWire, payloadParts, readPayload, toWire } from '../lib/wire.js';

const b = (...bytes: number[]) => Buffer.from(bytes);
const roundTrip = (x: unknown) => fromWire(decode(T.Value, encode(T.Value, toWire(x))));

// TBinaryProtocol field headers for union Value: type byte, then the i16 field id.
const LIST = 0x0f;
const STRUCT = 0x0c;
const STRING = 0x0b;
const MAP = 0x0d;
const BOOL = 0x02;
const STOP = 0x00;
const i32 = (n: number) => {
  const x = Buffer.alloc(4);
  x.writeInt32BE(n);
  return x;
};
/** A Value whose listValue (field 6) claims `count` elements. */
const listHeader = (count: number) => Buffer.concat([b(LIST, 0, 6, STRUCT), i32(count)]);

function expectWireError(f: () => unknown, pattern?: RegExp): WireError {
  let err: unknown;
  try {
    f();
  } catch (e) {
    err = e;
  }
  expect(err, 'expected a WireError').to.be.instanceOf(WireError);
  if (pattern) expect((err as Error).message).to.match(pattern);
  return err as WireError;
}

function expectTypeError(f: () => unknown, ...fragments: string[]): TypeError {
  let err: unknown;
  try {
    f();
  } catch (e) {
    err = e;
  }
  expect(err, 'expected a TypeError').to.be.instanceOf(TypeError);
  for (const s of fragments) expect((err as Error).message).to.include(s);
  return err as TypeError;
}

describe('wire: Thrift Value round trip', function () {
  it('round-trips scalars', function () {
    for (const x of [null, undefined, true, false, 0, 1, -1, 1.5, 2 ** 53, -(2 ** 60), 5e-324, '', 'text', 'héllo ✓ 𝄞', '\u0000']) {
      expect(roundTrip(x), String(x)).to.deep.equal(x);
    }
  });

  it('round-trips NaN and infinities', function () {
    expect(roundTrip([NaN, Infinity, -Infinity])).to.deep.equal([NaN, Infinity, -Infinity]);
  });

  it('round-trips bigints beyond 64 bits, negative ones included', function () {
    const values = [0n, 1n, -1n, 2n ** 64n + 1n, -(10n ** 40n), 123456789012345678901234567890n];
    const back = roundTrip(values) as bigint[];
    expect(back).to.deep.equal(values);
    for (const v of back) expect(typeof v).to.equal('bigint');
  });

  it('round-trips bytes as Uint8Array, only the bytes of a view', function () {
    const whole = Uint8Array.from([0, 1, 2, 3, 4, 5, 6, 7]);
    const back = roundTrip({ view: whole.subarray(2, 5), empty: new Uint8Array(0), buf: Buffer.from('hi') }) as Record<string, Uint8Array>;
    expect(back.view).to.be.instanceOf(Uint8Array);
    expect([...back.view]).to.deep.equal([2, 3, 4]);
    expect(back.empty).to.be.instanceOf(Uint8Array);
    expect(back.empty.length).to.equal(0);
    expect([...back.buf]).to.deep.equal([104, 105]);
  });

  it('round-trips nested objects and arrays, keeping key order and undefined members', function () {
    const x = {
      z: 1,
      a: [1, 'two', { three: [3, [4, [5]]] }, [], {}],
      nested: { deeper: { deepest: { ok: true, none: null, gone: undefined } } },
      big: 10n ** 20n,
      bytes: Uint8Array.of(255, 0, 127),
    };
    const back = roundTrip(x) as typeof x;
    expect(back).to.deep.equal(x);
    expect(Object.keys(back)).to.deep.equal(['z', 'a', 'nested', 'big', 'bytes']);
    expect(Object.keys(back.nested.deeper.deepest)).to.deep.equal(['ok', 'none', 'gone']);
  });

  it('accepts objects with a null prototype', function () {
    const x = Object.assign(Object.create(null) as object, { a: 1 });
    expect(roundTrip(x)).to.deep.equal({ a: 1 });
  });

  it('decodes "__proto__" as an own key, never as a prototype', function () {
    const back = roundTrip(JSON.parse('{"__proto__": {"polluted": true}, "x": 1}')) as Record<string, unknown>;
    expect(Object.getPrototypeOf(back)).to.equal(Object.prototype);
    expect(Object.keys(back)).to.deep.equal(['__proto__', 'x']);
    expect(({} as Record<string, unknown>).polluted).to.equal(undefined);
    expect((back as { polluted?: unknown }).polluted).to.equal(undefined);
  });

  it('handles a sparse array as JSON-like data (holes become undefined) or names the hole', function () {
    // eslint-disable-next-line no-sparse-arrays
    const sparse = [1, , 3];
    let back: unknown;
    try {
      back = roundTrip(sparse);
    } catch (e) {
      // Refusing is fine, but with the same message shape as every other refusal.
      expect(e).to.be.instanceOf(TypeError);
      expect((e as Error).message).to.match(/^Expected `args\[1\]`/);
      return;
    }
    expect(back).to.have.lengthOf(3);
    expect((back as unknown[])[0]).to.equal(1);
    expect((back as unknown[])[1]).to.equal(undefined);
    expect((back as unknown[])[2]).to.equal(3);
  });

  it('encodes every Struct the protocol uses and decodes it back', function () {
    const payload = readPayload(
      Buffer.concat(
        payloadParts(toWire({ n: 1 }), [
          { name: 't', ipc: Buffer.from([1, 2, 3]) },
          { name: 'u', ipc: Buffer.from([4]) },
        ]),
      ),
    );
    expect(fromWire(payload.args)).to.deep.equal({ n: 1 });
    expect(payload.inputs.map((i) => [i.name, [...i.ipc]])).to.deep.equal([
      ['t', [1, 2, 3]],
      ['u', [4]],
    ]);
    const req = decode(
      T.RunRequest,
      encode(T.RunRequest, {
        id: 7,
        modulePath: '/x.mjs',
        hostname: 'h',
        cloneFlags: 5,
        uid: 1000,
        gid: 1000,
        mounts: [new T.MountOp({ kind: 1, source: '/a', target: '/a', writable: false, sizeBytes: 0 })],
        landlockHandled: 7,
        landlockScoped: 3,
        landlock: [new T.LandlockRule({ path: '/a', access: 4 })],
        cgroupDirs: ['/sys/fs/cgroup/x'],
        cgroupWrites: [new T.CgroupWrite({ path: '/sys/fs/cgroup/x/pids.max', value: '8' })],
        cgroupProcs: ['/sys/fs/cgroup/x/cgroup.procs'],
        cgroupStats: ['/sys/fs/cgroup/x/memory.peak'],
        rlimits: [new T.Rlimit({ resource: 4, limit: 0 })],
      }),
    );
    expect(req.mounts[0].target).to.equal('/a');
    expect(req.landlock[0].path).to.equal('/a');
    expect(req.cgroupWrites[0].value).to.equal('8');
    expect(req.rlimits[0].resource).to.equal(4);
    expect({ ...req }).to.include({ id: 7, modulePath: '/x.mjs', hostname: 'h', cloneFlags: 5 });
    const err = decode(T.JobError, encode(T.JobError, { name: 'TypeError', message: 'm', stack: 's', code: 'E' }));
    expect({ ...err }).to.include({ name: 'TypeError', message: 'm', stack: 's', code: 'E' });
  });
});

describe("wire: the encoder writes the Thrift library's bytes", function () {
  const sample = {
    n: [0, 1, -1, 2 ** 31 + 5, -(2 ** 31) - 3, 1.5, 1 / 3, 5e-324, 1e300, -1e300, NaN, Infinity, -Infinity],
    s: ['', 'text', 'héllo ✓ 𝄞', '\u0000', 'x'.repeat(70_000)],
    big: [0n, -1n, 2n ** 64n + 1n, 7n ** 40n],
    bytes: new Uint8Array([0, 255, 128]),
    flags: [true, false, null, undefined],
    nested: { deep: [[{ a: [1, { b: 'c' }] }]] },
  };

  it('encodes a Value exactly as TBinaryProtocol does, past its first buffer growth', function () {
    const w = toWire(sample);
    const ours = encode(T.Value, w);
    expect(ours.length).to.be.greaterThan(70_000);
    expect(ours.equals(encodeWithLibrary(T.Value, w))).to.equal(true);
    expect(fromWire(decode(T.Value, ours))).to.deep.equal(sample);
  });

  it('encodes every struct the app sends exactly as TBinaryProtocol does, i64 fields included', function () {
    const fields = {
      id: 2 ** 31 - 1,
      modulePath: '/jobs/ünïcode.mjs',
      hostname: 'h',
      cloneFlags: 0x7e020000,
      uid: 1000,
      gid: 1000,
      mounts: [new T.MountOp({ kind: 3, source: '/a', target: '/b', writable: true, sizeBytes: 2 ** 40 })],
      landlockHandled: 2 ** 33 - 1,
      landlockScoped: 3,
      landlock: [new T.LandlockRule({ path: '/a', access: 0xfff })],
      cgroupDirs: ['/sys/fs/cgroup/x'],
      cgroupWrites: [new T.CgroupWrite({ path: '/sys/fs/cgroup/x/pids.max', value: '8' })],
      cgroupProcs: [],
      cgroupStats: ['/sys/fs/cgroup/x/memory.peak'],
      rlimits: [new T.Rlimit({ resource: 4, limit: -1 })],
      deferred: true,
    };
    expect(encode(T.RunRequest, fields).equals(encodeWithLibrary(T.RunRequest, fields))).to.equal(true);
    for (const v of [0, -1, 2 ** 40, -(2 ** 40), 2 ** 53 - 1, -(2 ** 53 - 1), 2 ** 53, 2 ** 62, 1.5]) {
      const ref = { name: 'i64', offset: v, length: 3 };
      expect(encode(T.InputRef, ref).equals(encodeWithLibrary(T.InputRef, ref)), String(v)).to.equal(true);
    }
    const err = { name: 'TypeError', message: 'm'.repeat(1000), stack: null, code: 'E' };
    expect(encode(T.JobError, err).equals(encodeWithLibrary(T.JobError, err))).to.equal(true);
  });

  it('keeps the sign of -0, which the library writer drops', function () {
    expect(Object.is(roundTrip(-0), -0)).to.equal(true);
    expect(Object.is(fromWire(decode(T.Value, encodeWithLibrary(T.Value, toWire(-0)))), 0)).to.equal(true);
  });
});

describe('wire: the bounded decoder rejects hostile input', function () {
  it('rejects a negative list size', function () {
    expectWireError(() => decode(T.Value, Buffer.concat([listHeader(-1), b(STOP)])), /-1/);
  });

  it('rejects a list count larger than the bytes that follow, without allocating it', function () {
    expectWireError(() => decode(T.Value, Buffer.concat([listHeader(0x7fffffff), b(STOP)])), /2147483647/);
    expectWireError(() => decode(T.Value, Buffer.concat([listHeader(1000), Buffer.alloc(999), b(STOP)])));
  });

  it('rejects a payload whose header or input references lie outside it', function () {
    const good = Buffer.concat(payloadParts(toWire(1), [{ name: 't', ipc: Buffer.from([1, 2, 3]) }]));
    expectWireError(() => readPayload(good.subarray(0, 3)));
    expectWireError(() => readPayload(good.subarray(0, good.length - 1)), /outside the payload/);
    const long = Buffer.from(good);
    long.writeUInt32LE(good.length);
    expectWireError(() => readPayload(long));
  });

  it('rejects negative and oversized map sizes', function () {
    // JobPayload { 1: Value{nullValue: true}, 2: map<string, binary> of -1 / 2^31-1 entries }
    for (const n of [-1, 0x7fffffff]) {
      const bytes = Buffer.concat([b(STRUCT, 0, 1, BOOL, 0, 1, 1, STOP), b(MAP, 0, 2, STRING, STRING), i32(n), b(STOP)]);
      expectWireError(() => decode(T.JobPayload, bytes));
    }
  });

  it('rejects negative and oversized string and binary lengths', function () {
    for (const field of [5, 8, 9]) {
      for (const n of [-2, 0x7ffffffe]) {
        expectWireError(() => decode(T.Value, Buffer.concat([b(STRING, 0, field), i32(n), b(STOP)])));
      }
    }
  });

  it('rejects nesting deeper than the limit before it exhausts the stack', function () {
    const level = Buffer.concat([listHeader(1)]);
    const deep = Buffer.concat(Array.from({ length: 100_000 }, () => level));
    expectWireError(() => decode(T.Value, deep), /nesting deeper than 64/);
  });

  it('rejects deep nesting in an unknown field too', function () {
    // Field 99 is unknown: the reader skips it, recursively.
    const nested = Buffer.concat([b(LIST, 0, 99), ...Array.from({ length: 10_000 }, () => Buffer.concat([b(LIST), i32(1)])), b(STOP)]);
    expectWireError(() => decode(T.Value, nested));
  });

  it('obeys its own limits: depth and number of values', function () {
    let v: unknown = 1;
    for (let i = 0; i < 10; i++) v = [v];
    const bytes = encode(T.Value, toWire(v));
    expect(decode(T.Value, bytes, { maxDepth: 64, maxNodes: 100 })).to.be.ok;
    expectWireError(() => decode(T.Value, bytes, { maxDepth: 5, maxNodes: 100 }), /nesting deeper than 5/);
    const many = encode(T.Value, toWire(Array.from({ length: 20 }, (_, i) => i)));
    expectWireError(() => decode(T.Value, many, { maxDepth: 64, maxNodes: 10 }), /more than 10 values/);
  });

  it('rejects trailing bytes', function () {
    const ok = encode(T.Value, toWire({ a: 1 }));
    expect(fromWire(decode(T.Value, ok))).to.deep.equal({ a: 1 });
    expectWireError(() => decode(T.Value, Buffer.concat([ok, b(0)])), /1 trailing bytes/);
  });

  it('rejects truncated input', function () {
    const ok = encode(T.Value, toWire('hello world'));
    for (let cut = 0; cut < ok.length; cut++) expectWireError(() => decode(T.Value, ok.subarray(0, cut)));
  });

  it('names the struct it was decoding in its messages', function () {
    const err = expectWireError(() => decode(T.Value, Buffer.concat([encode(T.Value, toWire(1)), b(0)])));
    expect(err.message).to.include('Value');
    const err2 = expectWireError(() => decode(T.JobError, b(STOP, STOP)));
    expect(err2.message).to.include('JobError');
  });

  it('fromWire rejects a Value with no field or two fields set', function () {
    expectWireError(() => fromWire(decode(T.Value, b(STOP))), /exactly one field set, got 0/);
    expectWireError(() => fromWire(decode(T.Value, b(BOOL, 0, 1, 1, BOOL, 0, 3, 1, STOP))), /exactly one field set, got 2/);
  });

  it('fromWire rejects a malformed bigint string', function () {
    for (const s of ['12a', '', '1e5', '--1', ' 1']) {
      const bytes = Buffer.concat([b(STRING, 0, 8), i32(Buffer.byteLength(s)), Buffer.from(s), b(STOP)]);
      expectWireError(() => fromWire(decode(T.Value, bytes)), /bigint/);
    }
  });

  it('fromWire rejects an object entry without a value', function () {
    // objectValue (field 7): list<Entry> of 1, the Entry with only its key.
    const bytes = Buffer.concat([b(LIST, 0, 7, STRUCT), i32(1), b(STRING, 0, 1), i32(1), Buffer.from('k'), b(STOP), b(STOP)]);
    expect(() => fromWire(decode(T.Value, bytes))).to.throw();
  });
});

describe('wire: toWire accepts only JSON-like values', function () {
  it('rejects a function, naming its path', function () {
    expectTypeError(() => toWire({ a: { b: [1, () => 1] } }), '`args.a.b[1]`', 'function');
  });

  it('rejects class instances, naming the class and the path', function () {
    class Point {
      constructor(readonly x = 1) {}
    }
    expectTypeError(() => toWire({ p: new Point() }), '`args.p`', 'Point');
    expectTypeError(() => toWire([new Date()]), '`args[0]`', 'Date');
    expectTypeError(() => toWire({ m: new Map() }), '`args.m`', 'Map');
    expectTypeError(() => toWire({ s: new Set() }), '`args.s`', 'Set');
    expectTypeError(() => toWire(new Int32Array(2)), '`args`', 'Int32Array');
  });

  it('rejects symbols', function () {
    expectTypeError(() => toWire({ s: Symbol('x') }), '`args.s`', 'symbol');
  });

  it('rejects cycles, naming where the cycle closes', function () {
    const o: { x: unknown[] } = { x: [] };
    o.x.push(o);
    expectTypeError(() => toWire(o), '`args.x[0]`', 'circular');
    const self: Record<string, unknown> = {};
    self.self = self;
    expectTypeError(() => toWire(self), '`args.self`', 'circular');
  });

  it('allows the same object twice when it is not a cycle', function () {
    const shared = { n: 1 };
    expect(roundTrip({ a: shared, b: shared })).to.deep.equal({ a: { n: 1 }, b: { n: 1 } });
  });

  it('rejects nesting deeper than 64', function () {
    let deep: unknown = 1;
    for (let i = 0; i < 100; i++) deep = [deep];
    expectTypeError(() => toWire(deep), 'nested at most 64 deep');
    let ok: unknown = 1;
    for (let i = 0; i < 60; i++) ok = [ok];
    expect(roundTrip(ok)).to.deep.equal(ok);
  });

  it('uses the path prefix it is given', function () {
    expectTypeError(() => toWire({ f() {} }, 'result'), '`result.f`');
  });
});

describe('wire: the generated Thrift code and its runtime', function () {
  const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
  const pkg = JSON.parse(fs.readFileSync(join(root, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };

  it('was made by the compiler version that scripts/gen-thrift.mjs requires', function () {
    const generated = fs.readFileSync(join(root, 'thrift', 'gen-js', 'nodespawner_types.cjs'), 'utf8');
    const made = /Autogenerated by Thrift Compiler \(([\d.]+)\)/.exec(generated)?.[1];
    const required = /const compilerVersion = '([\d.]+)'/.exec(fs.readFileSync(join(root, 'scripts', 'gen-thrift.mjs'), 'utf8'))?.[1];
    expect(made).to.be.a('string');
    expect(made).to.equal(required);
  });

  it('requires only packages that are dependencies of nodespawner', function () {
    const generated = fs.readFileSync(join(root, 'thrift', 'gen-js', 'nodespawner_types.cjs'), 'utf8');
    const required = [...generated.matchAll(/require\('([^']+)'\)/g)].map((m) => m[1]).filter((m) => !m.startsWith('.'));
    expect(required.length).to.be.greaterThan(0);
    for (const m of required) expect(pkg.dependencies, `the generated code requires ${m}`).to.have.property(m);
  });
});
