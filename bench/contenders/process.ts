// Runs one job as a process that writes the table to stdout as an Arrow IPC stream (cold node,
// bwrap): spawn, read stdout, wait for the exit, decode and check the table.
import { spawn } from 'node:child_process';
import { tableFromIPC } from 'apache-arrow';
import { checkTable } from '../util.js';

export function runProcess(file: string, argv: string[], who: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (err += s.slice(0, 4096)));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (code !== 0) return reject(new Error(`${who} exited with ${signal ?? `code ${code}`}: ${err.trim()}`));
      try {
        checkTable(tableFromIPC(Buffer.concat(out)), who);
        resolve();
      } catch (e) {
        reject(e);
      }
    });
  });
}
