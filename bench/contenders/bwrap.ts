// bubblewrap + node per job: `bwrap --unshare-all ... node job-cli.mjs`. Debian's bubblewrap,
// installed with apt-get when it is missing and we are root; skipped with a note otherwise.
import { spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { fixture, progress, thriftArgs } from '../util.js';
import { runProcess } from './process.js';
import type { Contender } from './types.js';

function which(name: string): string | null {
  for (const dir of (process.env.PATH || '/usr/local/bin:/usr/bin:/bin').split(delimiter)) {
    const file = join(dir, name);
    try {
      accessSync(file, constants.X_OK);
      return file;
    } catch {
      // not here
    }
  }
  return null;
}

const lastLine = (s: string) => s.trim().split('\n').filter(Boolean).pop() ?? '';

/** The path of bwrap, installing Debian's bubblewrap if needed and possible; or why not. */
function ensureBwrap(notes: string[]): { path: string } | { skipped: string } {
  const found = which('bwrap');
  if (found) return { path: found };
  if (process.geteuid?.() !== 0) return { skipped: 'bwrap is not installed, and installing it needs root (Debian: apt-get install bubblewrap)' };
  const apt = which('apt-get');
  if (!apt) return { skipped: 'bwrap is not installed and there is no apt-get to install it with' };
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const aptGet = (args: string[]) => spawnSync(apt, args, { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 300_000 });
  progress('bwrap is missing: apt-get install -y bubblewrap');
  let r = aptGet(['install', '-y', '--no-install-recommends', 'bubblewrap']);
  if (r.status !== 0) {
    progress('apt-get install failed; apt-get update, then again');
    const u = aptGet(['update']);
    if (u.status !== 0) return { skipped: `bwrap is not installed and apt-get update failed: ${lastLine(u.stderr || u.error?.message || '')}` };
    r = aptGet(['install', '-y', '--no-install-recommends', 'bubblewrap']);
  }
  const path = which('bwrap');
  if (r.status !== 0 || !path)
    return { skipped: `bwrap is not installed and apt-get install bubblewrap failed: ${lastLine(r.stderr || r.error?.message || '')}` };
  notes.push("bwrap was missing: this run installed Debian's bubblewrap with apt-get.");
  return { path };
}

export const bwrap: Contender = {
  key: 'bwrap',
  label: 'bwrap --unshare-all + node',
  isolation: 'namespaces (no seccomp, no cgroup)',
  processPerJob: true,
  notes: [],
  async open() {
    const got = ensureBwrap(this.notes);
    if ('skipped' in got) return got;
    const version = spawnSync(got.path, ['--version'], { encoding: 'utf8' }).stdout.trim();
    const cli = fixture('job-cli.mjs');
    const argv = ['--unshare-all', '--die-with-parent', '--ro-bind', '/', '/', '--dev', '/dev', '--proc', '/proc', '--tmpfs', '/tmp', process.execPath, cli];
    const run = () => runProcess(got.path, [...argv, thriftArgs().toString('base64')], 'bwrap');
    try {
      await run();
    } catch (e) {
      return { skipped: `${version || 'bwrap'} cannot run here: ${lastLine((e as Error).message)}` };
    }
    this.notes.push(`bwrap (${version}): ${got.path} ${argv.map((a) => (a === cli ? 'bench/fixtures/job-cli.mjs' : a)).join(' ')} <args>`);
    return { run, close: async () => {} };
  },
};
