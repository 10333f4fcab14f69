// Typed jobs: defineJob carries argument and result types into spawner.run (checked by tsc when
// the suite compiles: a @ts-expect-error that no longer errors fails the build), and checks
// arguments at run time before anything is queued.
import { expect } from 'chai';
import { Spawner, defineJob } from '../lib/index.js';
import type { JobArgs, JobContext, JobFunction, JobResult, RunResult } from '../lib/index.js';
import { fixture } from './helpers.js';

type Equal<X, Y> = (<T>() => T extends X ? 1 : 2) extends <T>() => T extends Y ? 1 : 2 ? true : false;
function assertType<T extends true>(_ok?: T): void {}

const sum = defineJob<{ values: number[] }, number>(fixture('sum.mjs'), {
  check(args) {
    const values = (args as { values?: unknown })?.values;
    if (!Array.isArray(values) || !values.every((v) => typeof v === 'number')) throw new TypeError('Expected `args.values` to be an array of numbers');
  },
});

// Compile-time checks.
assertType<Equal<JobArgs<typeof sum>, { values: number[] }>>();
assertType<Equal<JobResult<typeof sum>, number>>();
const typedJob: JobFunction<{ values: number[] }, number> = ({ values }, ctx: JobContext) => values.length + ctx.id;
void typedJob;
function compileOnly(spawner: Spawner) {
  // @ts-expect-error: args must have the job's type
  void spawner.run(sum, { values: ['1'] });
  // @ts-expect-error: a typed job needs its args
  void spawner.run(sum);
  const _p = spawner.run(sum, { values: [1] });
  assertType<Equal<typeof _p, Promise<RunResult<number>>>>();
  const _untyped = spawner.run(fixture('echo.mjs'), { anything: true });
  assertType<Equal<typeof _untyped, Promise<RunResult<unknown>>>>();
}
void compileOnly;

describe('typed jobs (defineJob)', function () {
  let spawner: Spawner;

  before(async function () {
    spawner = await Spawner.start({ selfTest: false });
  });

  after(async function () {
    await spawner?.close();
  });

  it('runs a typed job and types its value', async function () {
    const r = await spawner.run(sum, { values: [1, 2, 3.5] });
    const total: number | undefined = r.value;
    expect(total).to.equal(6.5);
  });

  it("rejects arguments that the job's check refuses, before queueing", async function () {
    const before = spawner.stats().completed;
    let err: unknown;
    try {
      await spawner.run(sum, { values: ['x'] } as unknown as { values: number[] });
    } catch (e) {
      err = e;
    }
    expect(err).to.be.instanceOf(TypeError);
    expect((err as Error).message).to.equal('Expected `args.values` to be an array of numbers');
    expect(spawner.stats().completed).to.equal(before);
  });

  it('refuses a relative module path in defineJob', function () {
    expect(() => defineJob('jobs/sum.mjs')).to.throw(TypeError, 'Expected `module` to be an absolute path or a file: URL');
  });
});
