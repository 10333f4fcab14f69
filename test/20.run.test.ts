// spawner.run(): values and Arrow tables in and out, stdout/stderr, module resolution from any
// path with the zygote's warm preloads, and what a job sees of its sandbox.
import { tableFromArrays, Table } from 'apache-arrow';
import { expect } from 'chai';
import { Spawner } from '../lib/index.js';
import { stripsTypes } from '../lib/runtime.js';
import { expectCode, fixture, idMapped, isRoot, rejection, skipBecause, tempDir } from './helpers.js';

describe('spawner.run', function () {
  let spawner: Spawner;
  const preload = fixture('token-preload.mjs');

  before(async function () {
    spawner = await Spawner.start({ preload: [preload], concurrency: 2 });
  });

  after(async function () {
    await spawner?.close();
  });

  describe('TypeScript jobs', function () {
    it(
      stripsTypes ? 'runs a .mts job with its types stripped by Node' : 'refuses a .mts job on a Node that cannot strip types, before forking',
      async function () {
        const job = fixture('typed.mts');
        const inputs = { t: tableFromArrays({ a: Int32Array.of(1) }) };
        if (stripsTypes) {
          const r = await spawner.run<{ sum: number; inputs: string[] }>(job, { values: [1, 2, 3.5] }, { inputs });
          expect(r.value).to.deep.equal({ sum: 6.5, inputs: ['t'] });
        } else {
          const spawned: unknown[] = [];
          spawner.on('spawn', (e) => spawned.push(e));
          const e = await expectCode(spawner.run(job, { values: [1] }), 'ERR_TYPESCRIPT_UNSUPPORTED');
          expect(e.message).to.include(job).and.include('Node 24');
          expect(spawned, 'no child was forked').to.deep.equal([]);
        }
      },
    );

    it('runs a .ts job outside any package as an ES module, with the warm apache-arrow and a relative TypeScript import', async function () {
      if (!stripsTypes) skipBecause(this, `Node ${process.version} does not strip types: the test above checks the refusal`);
      const dir = await tempDir();
      try {
        await dir.write('scale.ts', 'export const scale = (xs: number[], k: number): number[] => xs.map((x: number) => x * k);\n');
        const job = await dir.write(
          'job.ts',
          [
            "import { tableFromArrays, Table } from 'apache-arrow';",
            "import { scale } from './scale.ts';",
            'type Args = { values: number[] };',
            'export default (args: Args): Table => tableFromArrays({ v: Float64Array.from(scale(args.values, 2)) });',
          ].join('\n'),
        );
        const r = await spawner.run(job, { values: [1, 2] });
        expect(r.table, 'a Table of the warm apache-arrow, recognised by the runner').to.be.instanceOf(Table);
        expect([...r.table!.getChild('v')!]).to.deep.equal([2, 4]);
      } finally {
        await dir.remove();
      }
    });
  });

  describe('values', function () {
    it('round-trips JSON-like arguments, bigint, Uint8Array and nested objects', async function () {
      const args = {
        int: 42,
        float: -1.25,
        text: 'héllo ✓',
        yes: true,
        nothing: null,
        missing: undefined,
        big: 123456789012345678901234567890n,
        negativeBig: -(2n ** 70n),
        bytes: Uint8Array.from([0, 1, 2, 253, 254, 255]),
        list: [1, 'two', [3, [4]], { five: 5 }],
        nested: { a: { b: { c: [true, null, { d: 'deep' }] } } },
        empty: {},
        emptyList: [],
      };
      const r = await spawner.run<{ echo: typeof args; kinds: Record<string, string> }>(fixture('echo.mjs'), args);
      expect(r.value!.echo).to.deep.equal(args);
      expect(r.value!.kinds).to.deep.equal({
        int: 'number',
        float: 'number',
        text: 'string',
        yes: 'boolean',
        nothing: 'null',
        missing: 'undefined',
        big: 'bigint',
        negativeBig: 'bigint',
        bytes: 'Uint8Array',
        list: 'array',
        nested: 'object',
        empty: 'object',
        emptyList: 'array',
      });
      expect(r.table).to.equal(undefined);
      expect(r.exitCode).to.equal(0);
    });

    it('passes a bare scalar, and undefined when no arguments are given', async function () {
      expect((await spawner.run(fixture('echo.mjs'), 7)).value).to.deep.equal({ echo: 7, kinds: {} });
      expect((await spawner.run(fixture('echo.mjs'))).value).to.deep.equal({ echo: undefined, kinds: {} });
    });

    it('rejects arguments that are not JSON-like before running anything, naming the path', async function () {
      const e = await rejection(spawner.run(fixture('echo.mjs'), { when: new Date() }));
      expect(e).to.be.instanceOf(TypeError);
      expect(e.message).to.include('`args.when`');
      expect(e.message).to.include('Date');
    });

    it('accepts a file: URL as the module', async function () {
      const r = await spawner.run(new URL(`file://${fixture('echo.mjs')}`), 'url');
      expect(r.value).to.deep.equal({ echo: 'url', kinds: {} });
    });

    it('reports durations and timings', async function () {
      const r = await spawner.run(fixture('echo.mjs'), 1);
      expect(r.durationMs).to.be.a('number').above(0);
      expect(r.cpuMs).to.be.a('number').at.least(0);
      expect(r.maxRssBytes).to.be.a('number').above(0);
      for (const k of ['queueMs', 'requestMs', 'forkMs', 'cloneMs', 'runMs', 'reapMs', 'totalMs'] as const) {
        expect(r.timings[k], k).to.be.a('number').at.least(0);
      }
    });
  });

  describe('Arrow tables', function () {
    it('returns an Arrow table of 1000 rows', async function () {
      const r = await spawner.run(fixture('table.mjs'), { n: 1000 });
      expect(r.value).to.equal(undefined);
      expect(r.table).to.be.instanceOf(Table);
      const t = r.table!;
      expect(t.numRows).to.equal(1000);
      expect(t.schema.fields.map((f) => f.name)).to.deep.equal(['id', 'half', 'label']);
      expect(t.getChild('id')!.get(999)).to.equal(999);
      expect(t.getChild('half')!.get(3)).to.equal(1.5);
      expect(t.getChild('label')!.get(500)).to.equal('row 500');
      let sum = 0;
      for (const v of t.getChild('id')!) sum += v as number;
      expect(sum).to.equal((999 * 1000) / 2);
    });

    it('returns an empty table with its schema', async function () {
      const r = await spawner.run(fixture('table.mjs'), { n: 0 });
      expect(r.table!.numRows).to.equal(0);
      expect(r.table!.schema.fields.map((f) => f.name)).to.deep.equal(['id', 'half', 'label']);
    });

    it('passes `inputs` tables to the job as ctx.inputs', async function () {
      const sales = tableFromArrays({ amount: Float64Array.from([1.5, 2.5, 3, 4]), region: ['n', 's', 'e', 'w'] });
      const costs = tableFromArrays({ amount: Int32Array.from({ length: 100 }, (_, i) => i) });
      const r = await spawner.run(fixture('inputs.mjs'), {}, { inputs: { sales, costs } });
      expect(r.value).to.deep.equal({
        sales: { rows: 4, sum: 11, columns: ['amount', 'region'] },
        costs: { rows: 100, sum: 4950, columns: ['amount'] },
      });
    });

    it('takes a table in and gives a table back', async function () {
      const sales = tableFromArrays({ amount: Float64Array.from({ length: 1000 }, (_, i) => i) });
      const r = await spawner.run(fixture('inputs.mjs'), { tableOut: true }, { inputs: { sales } });
      expect(r.table!.numRows).to.equal(1000);
      expect(r.table!.getChild('doubled')!.get(999)).to.equal(1998);
    });

    it('rejects an input that is not an Arrow table with a TypeError', async function () {
      const e = await rejection(spawner.run(fixture('inputs.mjs'), {}, { inputs: { sales: [1, 2, 3] as never } }));
      expect(e).to.be.instanceOf(TypeError);
      expect(e.message).to.include('`inputs.sales`');
    });
  });

  describe('stdout and stderr', function () {
    it('captures stdout and stderr separately', async function () {
      const r = await spawner.run(fixture('stdio.mjs'), { out: 'OUT-MARK\n', err: 'ERR-MARK\n' });
      expect(r.value).to.equal('done');
      expect(r.stdout).to.equal('console.log to stdout\nOUT-MARK\n');
      expect(r.stderr).to.equal('console.error to stderr\nERR-MARK\n');
    });

    it('keeps at most maxStdout bytes and says how much it dropped', async function () {
      const r = await spawner.run(fixture('stdio.mjs'), { out: 'x'.repeat(1000), repeat: 10, log: false }, { maxStdout: 100 });
      expect(r.value).to.equal('done');
      expect(r.stdout).to.equal(`${'x'.repeat(100)}\n[nodespawner: stdout truncated, 9900 more bytes dropped]`);
      expect(r.stderr).to.equal('');
    });

    it('keeps at most maxStderr bytes, independently of stdout', async function () {
      const r = await spawner.run(fixture('stdio.mjs'), { out: 'o', err: 'e'.repeat(500), repeat: 4, log: false }, { maxStderr: 1000 });
      expect(r.stdout).to.equal('oooo');
      expect(r.stderr).to.equal(`${'e'.repeat(1000)}\n[nodespawner: stderr truncated, 1000 more bytes dropped]`);
    });

    it('does not truncate output within the limit', async function () {
      const r = await spawner.run(fixture('stdio.mjs'), { out: 'y'.repeat(100), log: false }, { maxStdout: 100 });
      expect(r.stdout).to.equal('y'.repeat(100));
    });
  });

  describe('module resolution', function () {
    let dir: Awaited<ReturnType<typeof tempDir>>;

    before(async function () {
      dir = await tempDir();
      await dir.write('sibling.mjs', "export default 'sibling';\n");
      await dir.write(
        'job.mjs',
        `import { tableFromArrays, Table } from 'apache-arrow';
import * as warm from ${JSON.stringify(preload)};
import sibling from './sibling.mjs';
export default async function () {
  const dynamic = await import('apache-arrow');
  return {
    staticIsWarm: Table === warm.arrowTable,
    dynamicIsWarm: dynamic.Table === warm.arrowTable,
    token: warm.token,
    evaluatedInPid: warm.evaluatedInPid,
    evaluations: warm.evaluations(),
    rows: tableFromArrays({ x: Int32Array.of(1, 2, 3) }).numRows,
    sibling,
  };
}
`,
      );
    });

    after(async function () {
      await dir?.remove();
    });

    it("gives a job in a temp dir the zygote's warm apache-arrow by bare name, statically and by import()", async function () {
      const r = await spawner.run<Record<string, unknown>>(`${dir.path}/job.mjs`);
      expect(r.value).to.include({ staticIsWarm: true, dynamicIsWarm: true, rows: 3, sibling: 'sibling' });
    });

    it('serves a preloaded module by its absolute path from the zygote: the same instance in every job', async function () {
      const a = await spawner.run<Record<string, unknown>>(`${dir.path}/job.mjs`);
      const b = await spawner.run<Record<string, unknown>>(fixture('preload-token.mjs'), { preload });
      expect(a.value!.evaluatedInPid, 'evaluated in the zygote, not in the job').to.equal(spawner.pid);
      expect(a.value!.evaluations).to.equal(1);
      expect(a.value!.token).to.be.a('string').with.lengthOf(32);
      expect(b.value!.token, 'two jobs see the token drawn once in the zygote').to.equal(a.value!.token);
      expect(b.value!.evaluations).to.equal(1);
    });

    it('resolves relative ESM imports, import() and a .cjs module next to the job', async function () {
      const r = await spawner.run(fixture('relative.mjs'));
      expect(r.value).to.deep.equal({ triple: 21, whoami: 'helper.mjs', cjsKind: 'cjs', cjsAdd: 5, sameDynamic: true });
    });
  });

  describe('the sandbox as a job sees it', function () {
    let env: Record<string, unknown>;

    before(async function () {
      env = (await spawner.run<Record<string, unknown>>(fixture('environment.mjs'))).value!;
    });

    it('runs the job as PID 1 of its own PID namespace', function () {
      expect(env.pid).to.equal(1);
    });

    it("sets the hostname to 'nodespawner'", function () {
      expect(env.hostname).to.equal('nodespawner');
    });

    it('gives the job a network namespace with only a loopback that is down', function () {
      expect(env.netdev, '/proc/net/dev').to.deep.equal(['lo']);
      expect(env.interfaces, 'os.networkInterfaces() lists no address: lo is down').to.deep.equal([]);
      expect(env.connect).to.equal('ENETUNREACH');
    });

    it('runs the job as an unprivileged user inside (1000), mapped to an unprivileged user outside', function () {
      // A root app maps jobs to nobody (when its own user namespace has a nobody), any other app
      // to itself. Root of the job's namespace is not mapped at all.
      const nobody = isRoot && idMapped('uid', 65534) && idMapped('gid', 65534);
      const outerUid = nobody ? 65534 : process.geteuid!();
      const outerGid = nobody ? 65534 : process.getegid!();
      expect(env.uid).to.equal(1000);
      expect(env.euid).to.equal(1000);
      expect(env.gid).to.equal(1000);
      expect(env.uidMap, '/proc/self/uid_map').to.deep.equal([1000, outerUid, 1]);
      expect(env.gidMap, '/proc/self/gid_map').to.deep.equal([1000, outerGid, 1]);
      if (nobody || !isRoot) expect((env.uidMap as number[])[1], 'the job is not root outside').to.not.equal(0);
    });
  });

  describe('sandbox options', function () {
    let custom: Spawner;

    before(async function () {
      custom = await Spawner.start({ sandbox: { hostname: 'job-host', network: 'host' } });
    });

    after(async function () {
      await custom?.close();
    });

    it('sets the hostname from sandbox.hostname and shares the host network with network: "host"', async function () {
      const env = (await custom.run<Record<string, unknown>>(fixture('environment.mjs'))).value!;
      expect(env.hostname).to.equal('job-host');
      expect(env.interfaces, 'the host loopback is up and has addresses').to.include('lo');
      expect(env.pid, 'still its own PID namespace').to.equal(1);
    });

    it("takes a run's network over the spawner's, both ways", async function () {
      const isolated = (await custom.run<Record<string, unknown>>(fixture('environment.mjs'), undefined, { network: 'none' })).value!;
      expect(isolated.interfaces, "network: 'none' for this run").to.deep.equal([]);
      const shared = (await spawner.run<Record<string, unknown>>(fixture('environment.mjs'), undefined, { network: 'host' })).value!;
      expect(shared.interfaces, "network: 'host' for this run").to.include('lo');
    });

    it('refuses a boolean network for a run, naming what it became', async function () {
      const e = await rejection(custom.run(fixture('environment.mjs'), undefined, { network: true as never }));
      expect(e).to.be.instanceOf(TypeError);
      expect(e.code).to.equal('ERR_INVALID_OPTION');
      expect(e.message).to.include("`true` is now 'host'");
    });
  });
});
