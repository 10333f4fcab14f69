// child_process.fork per job: a small script that imports the job, takes the Thrift arguments and
// returns the Arrow IPC bytes over the IPC channel (advanced serialization), then exits.
import { fork as forkProcess } from 'node:child_process';
import { tableFromIPC } from 'apache-arrow';
import { checkTable, fixture, thriftArgs } from '../util.js';
import type { Contender } from './types.js';

function forkOnce(script: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = forkProcess(script, [], { serialization: 'advanced', stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
    let result: Uint8Array | undefined;
    let err = '';
    child.stderr!.setEncoding('utf8').on('data', (s: string) => (err += s.slice(0, 4096)));
    child.once('message', (m) => (result = m as Uint8Array));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (code !== 0) return reject(new Error(`forked job-fork.mjs exited with ${signal ?? `code ${code}`}: ${err.trim()}`));
      try {
        checkTable(result ? tableFromIPC(result) : undefined, 'child_process.fork');
        resolve();
      } catch (e) {
        reject(e);
      }
    });
    child.send(thriftArgs());
  });
}

export const fork: Contender = {
  key: 'fork',
  label: 'child_process.fork per job',
  isolation: 'process',
  processPerJob: true,
  notes: [],
  async open() {
    const script = fixture('job-fork.mjs');
    return { run: () => forkOnce(script), close: async () => {} };
  },
};
