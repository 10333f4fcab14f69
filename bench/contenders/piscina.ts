// A piscina pool of 2 worker threads running the same job function: no isolation at all (the job
// runs inside the app process), the in-process reference. piscina is a devDependency: skipped with
// a note where it is not installed.
import { pathToFileURL } from 'node:url';
import { tableFromIPC } from 'apache-arrow';
import { checkTable, fixture, thriftArgs } from '../util.js';
import type { Contender } from './types.js';

export const piscina: Contender = {
  key: 'piscina',
  label: 'piscina, 2 worker threads',
  isolation: 'none (in-process)',
  processPerJob: false,
  notes: [],
  async open() {
    let Piscina: typeof import('piscina').Piscina;
    try {
      ({ Piscina } = await import('piscina'));
    } catch (e) {
      return { skipped: `piscina is not installed (a devDependency: npm install -D piscina): ${(e as Error).message.split('\n')[0]}` };
    }
    const pool = new Piscina({ filename: pathToFileURL(fixture('job-worker.mjs')).href, minThreads: 2, maxThreads: 2, idleTimeout: 60_000 });
    return {
      run: async () => checkTable(tableFromIPC((await pool.run(thriftArgs())) as Uint8Array), 'piscina'),
      close: () => pool.destroy(),
    };
  },
};
