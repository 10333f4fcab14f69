// Shared by the test files: fixture paths, error expectations, and a view of /proc.
import fs from 'node:fs';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, chmod, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { packageRoot } from '../lib/native.js';
import { NodespawnerError } from '../lib/index.js';

export { packageRoot };

/** Absolute path of a job module (or preload) in test/fixtures. */
export function fixture(name: string): string {
  return join(packageRoot, 'test', 'fixtures', name);
}

export const isRoot = process.geteuid!() === 0;

/** Whether `id` exists in this process's user namespace (always, outside any user namespace). */
export function idMapped(kind: 'uid' | 'gid', id: number): boolean {
  return fs
    .readFileSync(`/proc/self/${kind}_map`, 'utf8')
    .trim()
    .split('\n')
    .some((line) => {
      const [inside, , count] = line.trim().split(/\s+/).map(Number);
      return id >= inside && id < inside + count;
    });
}

/** Resolves with what `p` rejected with; fails the test if it resolved. */
export async function rejection(p: Promise<unknown>): Promise<any> {
  let value: unknown;
  try {
    value = await p;
  } catch (e) {
    return e;
  }
  throw new Error(`expected a rejection, but the promise resolved with ${safeJson(value)}`);
}

/** Awaits a rejection that is a NodespawnerError with `code`; returns the error. */
export async function expectCode(p: Promise<unknown>, code: string): Promise<any> {
  const e = await rejection(p);
  expect(e, `expected ${code}, got: ${e?.stack ?? e}`).to.be.instanceOf(NodespawnerError);
  expect(e.code, `expected ${code}, got ${e.code}: ${e.message}\nstderr: ${e.stderr}`).to.equal(code);
  return e;
}

export function safeJson(x: unknown): string {
  try {
    return JSON.stringify(x, (_k, v) => (typeof v === 'bigint' ? `${v}n` : v)) ?? String(x);
  } catch {
    return String(x);
  }
}

/**
 * Polls `check` until it returns a truthy value. No deadline by default: how long the work takes
 * depends on the machine, and the test's timeout, a hang detector, ends a wait that never ends
 * (a failed test then prints what it waited for). `giveUpMs`, for a test that reports better by
 * going on without the value (what it leaked, say), rejects after that long instead.
 */
export async function waitFor<T>(what: string, check: () => T | undefined | null | false, giveUpMs = Infinity): Promise<T> {
  const deadline = Date.now() + giveUpMs;
  for (;;) {
    const v = check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what} after ${giveUpMs} ms`);
    waitingFor = what;
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** What the last waitFor() waited for, for a test that timed out (see the root hook below). */
let waitingFor: string | null = null;

export const mochaHooks = {
  beforeEach(): void {
    waitingFor = null;
  },
  afterEach(this: Mocha.Context): void {
    if (this.currentTest?.state === 'failed' && waitingFor) console.log(`      (the test was waiting for ${waitingFor})`);
  },
};

export interface ProcInfo {
  pid: number;
  ppid: number;
  state: string;
  /** Start time in clock ticks since boot: tells a process from a later one with the same pid. */
  start: string;
}

export function procInfo(pid: number): ProcInfo | null {
  let stat: string;
  try {
    stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // The command name may contain spaces and parentheses: fields start after the last ')'.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { pid, state: rest[0], ppid: Number(rest[1]), start: rest[19] };
}

export function processTable(): Map<number, ProcInfo> {
  const table = new Map<number, ProcInfo>();
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const info = procInfo(Number(name));
    if (info) table.set(info.pid, info);
  }
  return table;
}

/** Live (not zombie) processes below `root`, with their depth (1 = child). */
export function descendants(root: number): Array<ProcInfo & { depth: number }> {
  const table = processTable();
  const out: Array<ProcInfo & { depth: number }> = [];
  for (const p of table.values()) {
    if (p.state === 'Z' || p.pid === root) continue;
    let depth = 1;
    let cur = p;
    const seen = new Set<number>();
    while (cur.ppid !== root && cur.ppid > 1 && !seen.has(cur.ppid)) {
      seen.add(cur.ppid);
      const parent = table.get(cur.ppid);
      if (!parent) break;
      cur = parent;
      depth++;
    }
    if (cur.ppid === root) out.push({ ...p, depth });
  }
  return out;
}

/** True while `p` (as seen earlier) still exists and is not a zombie. */
export function stillAlive(p: ProcInfo): boolean {
  const now = procInfo(p.pid);
  return now !== null && now.start === p.start && now.state !== 'Z';
}

/**
 * Waits until a job runs under the zygote `zygotePid` (its grandchild: zygote -> intermediate ->
 * job) and returns the job's and the intermediate's process info.
 */
export async function runningJob(zygotePid: number): Promise<{ job: ProcInfo; intermediate: ProcInfo }> {
  return waitFor('a job process under the zygote', () => {
    const d = descendants(zygotePid);
    const job = d.find((p) => p.depth === 2);
    const intermediate = job && d.find((p) => p.pid === job.ppid);
    return job && intermediate ? { job, intermediate } : null;
  });
}

export function openFds(): Map<string, string> {
  const out = new Map<string, string>();
  for (const fd of fs.readdirSync('/proc/self/fd')) {
    try {
      out.set(fd, fs.readlinkSync(`/proc/self/fd/${fd}`));
    } catch {
      // the directory's own fd, closed by now
    }
  }
  return out;
}

/** A fresh directory in the temp dir that a job (mapped to another uid when the app is root) can read. */
export async function tempDir(): Promise<{ path: string; write(name: string, text: string): Promise<string>; remove(): Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), 'nodespawner-test-'));
  await chmod(path, 0o755);
  return {
    path,
    async write(name, text) {
      const file = join(path, name);
      await writeFile(file, text, { mode: 0o644 });
      return file;
    },
    remove: () => rm(path, { recursive: true, force: true }),
  };
}

/**
 * Why user nobody (through setpriv, when we are root) cannot run node on these files, or null if
 * it can: a checkout under a private home directory, for example.
 */
export function whyNobodyCannotRead(paths: string[]): string | null {
  const setpriv = '/usr/bin/setpriv';
  if (!fs.existsSync(setpriv)) return `${setpriv} is not installed`;
  const r = spawnSync(
    setpriv,
    [
      '--reuid=65534',
      '--regid=65534',
      '--clear-groups',
      process.execPath,
      '-e',
      'for (const p of JSON.parse(process.argv[1])) require("fs").accessSync(p, require("fs").constants.R_OK)',
      JSON.stringify(paths),
    ],
    {
      cwd: '/',
      encoding: 'utf8',
      timeout: 10_000,
    },
  );
  if (r.status === 0) return null;
  return `user nobody cannot run node on ${paths.join(', ')}: ${
    (r.stderr || r.error?.message || `exit ${r.status}`)
      .trim()
      .split('\n')
      .find((l) => /Error|denied|EACCES/.test(l)) ?? r.stderr
  }`;
}

/** Marks the running test as skipped, saying why (a skip must never be silent). */
export function skipBecause(ctx: Mocha.Context, reason: string): never {
  console.log(`      skipped: ${reason}`);
  ctx.skip();
}

export interface ProgramRun {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  /** stdout and stderr as they came, interleaved. */
  output: string;
}

/** Runs a program to its end, SIGKILLed after `timeoutMs`, and returns how it ended and what it printed. */
export function runProgram(file: string, args: string[], options: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs: number }): Promise<ProgramRun> {
  return new Promise((resolve) => {
    const child = spawn(file, args, { cwd: options.cwd, env: options.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    const run: ProgramRun = { code: null, signal: null, stdout: '', stderr: '', output: '' };
    child.stdout!.on('data', (d) => {
      run.stdout += d;
      run.output += d;
    });
    child.stderr!.on('data', (d) => {
      run.stderr += d;
      run.output += d;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ ...run, code, signal });
    });
  });
}

/** The anchors of docs/troubleshooting.md's headings, as GitHub makes them: lower case, punctuation dropped, spaces to hyphens. */
export function troubleshootingAnchors(): Set<string> {
  const doc = fs.readFileSync(join(packageRoot, 'docs', 'troubleshooting.md'), 'utf8');
  return new Set(
    doc
      .split('\n')
      .filter((l) => /^#{1,4} /.test(l))
      .map((l) =>
        l
          .replace(/^#+ /, '')
          .trim()
          .toLowerCase()
          .replace(/[^\w\- ]/g, '')
          .replace(/ /g, '-'),
      ),
  );
}
