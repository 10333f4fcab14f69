// `node job-cli.mjs` started cold for every job: no isolation beyond a process of the app's user.
import { fixture, thriftArgs } from '../util.js';
import { runProcess } from './process.js';
import type { Contender } from './types.js';

export const cold: Contender = {
  key: 'cold',
  label: 'node job-cli.mjs (cold)',
  isolation: 'process',
  processPerJob: true,
  notes: [],
  async open() {
    const cli = fixture('job-cli.mjs');
    return {
      run: () => runProcess(process.execPath, [cli, thriftArgs().toString('base64')], 'node job-cli.mjs'),
      close: async () => {},
    };
  },
};
