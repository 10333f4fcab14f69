// One apache-arrow is the rule: an input table made by another copy of the package (a second
// version beside nodespawner's, installed for real with npm) is refused with a clear error,
// never encoded into a broken stream that the job then blames on itself.
import fs from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { expect } from 'chai';
import { tableFromArrays } from 'apache-arrow';
import { InvalidArgumentError, Spawner } from '../lib/index.js';
import { fixture, packageRoot, rejection, skipBecause } from './helpers.js';

describe('input tables from another copy of apache-arrow', function () {
  let dir: string | null = null;
  let other: typeof import('apache-arrow') | null = null;
  let spawner: Spawner | null = null;

  before(async function () {
    this.timeout(300_000);
    if (process.env.NODESPAWNER_TEST_NESTED) return; // the privileged run installed and checked it
    dir = fs.mkdtempSync(join(tmpdir(), 'nodespawner-arrow-'));
    fs.writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'second-arrow', version: '1.0.0', private: true }));
    // The version nodespawner has (whose Symbol.hasInstance accepts the other copy's tables), from
    // npm's cache when it has it.
    const version = (JSON.parse(fs.readFileSync(join(packageRoot, 'node_modules', 'apache-arrow', 'package.json'), 'utf8')) as { version: string }).version;
    const install = spawnSync(
      'npm',
      ['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error', '--ignore-scripts', `apache-arrow@${version}`],
      {
        cwd: dir,
        encoding: 'utf8',
        timeout: 240_000,
        env: { ...process.env, npm_config_update_notifier: 'false' },
      },
    );
    if (install.status === 0)
      other = (await import(pathToFileURL(join(dir, 'node_modules', 'apache-arrow', 'Arrow.node.mjs')).href)) as typeof import('apache-arrow');
    else console.log(`      npm could not install a second apache-arrow: ${(install.error?.message ?? install.stderr).trim().split('\n').slice(-3).join(' ')}`);
    spawner = await Spawner.start({ concurrency: 1, prefork: 0 });
  });

  after(async function () {
    await spawner?.close();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('refuses a Table of another copy with ERR_INVALID_ARG, before running anything, though `instanceof` accepts it', async function () {
    if (process.env.NODESPAWNER_TEST_NESTED) skipBecause(this, 'the unprivileged re-run does not install a second apache-arrow: the privileged run did');
    if (!other) skipBecause(this, 'npm could not install a second copy of apache-arrow (see above)');
    const { Table } = await import('apache-arrow');
    const foreign = other.tableFromArrays({ amount: Int32Array.from([1, 2, 3]) });
    expect(foreign instanceof Table, 'apache-arrow Symbol.hasInstance accepts the other copy').to.equal(true);
    let spawned = 0;
    spawner!.on('spawn', () => spawned++);
    const e = await rejection(spawner!.run(fixture('inputs.mjs'), {}, { inputs: { sales: foreign } as never }));
    expect(e).to.be.instanceOf(InvalidArgumentError);
    expect(e.code).to.equal('ERR_INVALID_ARG');
    expect(e.message).to.include(
      'Expected `inputs.sales` to be a Table of the apache-arrow that nodespawner uses, got a Table of another copy of apache-arrow',
    );
    expect(e.message).to.include('peer dependency');
    expect(spawned).to.equal(0);
  });

  it('takes a Table of its own copy', async function () {
    if (process.env.NODESPAWNER_TEST_NESTED) skipBecause(this, 'the unprivileged re-run does not install a second apache-arrow: the privileged run did');
    const r = await spawner!.run(fixture('inputs.mjs'), {}, { inputs: { sales: tableFromArrays({ amount: Int32Array.from([1, 2, 3]) }) } });
    expect(r.value).to.deep.equal({ sales: { rows: 3, sum: 6, columns: ['amount'] } });
  });
});
