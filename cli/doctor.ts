// `npx nodespawner doctor`: checks this host for what nodespawner needs and prints, for each
// requirement, whether it works or is missing, and the exact fix. The decisive check is real: it
// starts a Spawner (with its fork self-test) and runs a probe job in the full sandbox.
//
//   nodespawner doctor [--json] [--limits cgroup|rlimit|none] [--cgroup-root <dir>]
//
// Exit code 0 when everything needed works, 1 when something is missing, 2 on bad arguments.
import fs from 'node:fs';
import os from 'node:os';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { detectCgroups } from '../lib/cgroups.js';
import { findEgressTools } from '../lib/egress.js';
import type { CgroupSupport } from '../lib/cgroups.js';
import type { Spawner as SpawnerClass, ZygoteInfo } from '../lib/index.js';
import type { NativeBinding } from '../lib/native.js';

type Status = 'works' | 'missing' | 'warning' | 'note';

interface Check {
  name: string;
  status: Status;
  detail: string;
  fix?: string;
}

interface Args {
  json: boolean;
  limits: 'cgroup' | 'rlimit' | 'none';
  cgroupRoot: string | null;
  network: 'none' | 'egress' | 'host';
}

const usage = `Usage: nodespawner doctor [--json] [--limits cgroup|rlimit|none] [--cgroup-root <dir>] [--network none|egress|host]

Checks this host for what nodespawner needs: Linux on x86_64, Node.js, the native addon, user
namespaces, the own root (mounts), seccomp, Landlock, cgroups, what running as root means, and
what sandbox.network 'egress' needs (optional).
It starts a spawner and runs a probe job in the full sandbox, then prints each requirement as
works / missing, with the fix. Exit code 0 when everything needed works, 1 otherwise.

  --json               print the checks as JSON
  --limits <mode>      the sandbox.limits your app uses (default: $NODESPAWNER_LIMITS or 'cgroup');
                       with 'rlimit' or 'none', unusable cgroups are a warning, not missing
  --cgroup-root <dir>  the sandbox.cgroupRoot your app passes (a delegated cgroup v2 directory)
  --network <mode>     the sandbox.network your app uses: none (default), egress or host; 'host' is a warning:
                       jobs then have the host's network, with no isolation
`;

function parseArgs(argv: string[]): Args | string {
  const env = process.env.NODESPAWNER_LIMITS;
  const a: Args = { json: false, limits: env === 'rlimit' || env === 'none' ? env : 'cgroup', cgroupRoot: null, network: 'none' };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--json') a.json = true;
    else if (arg === '--limits') {
      const v = argv[++i];
      if (v !== 'cgroup' && v !== 'rlimit' && v !== 'none') return `--limits takes cgroup, rlimit or none, got ${v}`;
      a.limits = v;
    } else if (arg === '--network') {
      const v = argv[++i];
      if (v !== 'none' && v !== 'egress' && v !== 'host') return `--network takes none, egress or host, got ${v}`;
      a.network = v;
    } else if (arg === '--cgroup-root') {
      const v = argv[++i];
      if (!v || !v.startsWith('/')) return `--cgroup-root takes an absolute path, got ${v}`;
      a.cgroupRoot = v;
    } else return `unknown argument ${arg}`;
  }
  return a;
}

function read(path: string): string | null {
  try {
    return fs.readFileSync(path, 'utf8').trim();
  } catch {
    return null;
  }
}

function statusField(text: string | null, name: string): string | null {
  const m = text ? new RegExp(`^${name}:\\s*(.*)$`, 'm').exec(text) : null;
  return m ? m[1].trim() : null;
}

const isRoot = process.geteuid?.() === 0;

/** Whether `id` exists in this process's user namespace (lib/zygote-process.ts makes the same check). */
function idMapped(kind: 'uid' | 'gid', id: number): boolean {
  return (read(`/proc/self/${kind}_map`) ?? '').split('\n').some((line) => {
    const [inside, , count] = line.trim().split(/\s+/).map(Number);
    return id >= inside && id < inside + count;
  });
}

/** Evidence that this process runs in a container, or null. */
function containerEvidence(): string | null {
  if (fs.existsSync('/.dockerenv')) return '/.dockerenv exists (Docker)';
  if (fs.existsSync('/run/.containerenv')) return '/run/.containerenv exists (Podman)';
  if (process.env.KUBERNETES_SERVICE_HOST) return 'KUBERNETES_SERVICE_HOST is set (Kubernetes)';
  const cg = read('/proc/1/cgroup') ?? '';
  const m = /(docker|kubepods|containerd|libpod|lxc|crio)/.exec(cg);
  if (m) return `/proc/1/cgroup mentions ${m[1]}`;
  if (read('/proc/1/environ')?.includes('container=')) return "PID 1's environment sets container=";
  return null;
}

/** The AppArmor label of this process ("unconfined", "docker-default (enforce)"), or null without AppArmor. */
function appArmorLabel(): string | null {
  const label = read('/proc/self/attr/apparmor/current') ?? read('/proc/self/attr/current');
  return label && label !== '' ? label.replace(/\0/g, '') : null;
}

/** Paths the container runtime mounted over inside /proc (masked or read-only): a new proc mount is then refused. */
function procOvermounts(): string[] {
  const out: string[] = [];
  for (const line of (read('/proc/self/mountinfo') ?? '').split('\n')) {
    const point = line.split(' ')[4];
    if (point && point.startsWith('/proc/')) out.push(point);
  }
  return out;
}

function kernelVersion(): [number, number] {
  const m = /^(\d+)\.(\d+)/.exec(os.release());
  return m ? [Number(m[1]), Number(m[2])] : [0, 0];
}

const probeJob = `// Written by nodespawner doctor: reports what the sandbox looks like from inside.
import fs from 'node:fs';
import os from 'node:os';

export default function probe() {
  const status = fs.readFileSync('/proc/self/status', 'utf8');
  const field = (name) => (new RegExp('^' + name + ':\\\\s*(.*)$', 'm').exec(status) ?? [])[1] ?? null;
  return {
    pid: process.pid,
    uid: process.getuid(),
    hostname: os.hostname(),
    seccomp: field('Seccomp'),
    noNewPrivs: field('NoNewPrivs'),
    capEff: field('CapEff'),
    hostRootVisible: fs.existsSync('/etc/passwd'),
    interfaces: Object.keys(os.networkInterfaces()),
  };
}
`;

interface ProbeReport {
  pid: number;
  uid: number;
  hostname: string;
  seccomp: string | null;
  noNewPrivs: string | null;
  capEff: string | null;
  hostRootVisible: boolean;
  interfaces: string[];
}

interface ProbeOutcome {
  limits: 'cgroup' | 'rlimit' | 'none';
  info: ZygoteInfo | null;
  report: ProbeReport | null;
  peakMemoryBytes: number | null;
  error: (Error & { code?: string; reason?: string; step?: string; syscall?: string; errnoName?: string }) | null;
  /** Where the error came from: starting the spawner, or running the probe job. */
  phase: 'start' | 'run' | null;
}

/** Starts a spawner (with its fork self-test) and runs the probe job in the full sandbox. */
async function probe(
  Spawner: typeof SpawnerClass,
  limits: 'cgroup' | 'rlimit' | 'none',
  cgroupRoot: string | null,
  jobFile: string,
  network: 'none' | 'egress' = 'none',
): Promise<ProbeOutcome> {
  const out: ProbeOutcome = { limits, info: null, report: null, peakMemoryBytes: null, error: null, phase: null };
  let spawner: SpawnerClass;
  try {
    spawner = await Spawner.start({
      selfTest: true,
      concurrency: 1,
      startTimeout: 30_000,
      sandbox: { limits, network, ...(cgroupRoot ? { cgroupRoot } : {}) },
    });
  } catch (e) {
    out.error = e as ProbeOutcome['error'];
    out.phase = 'start';
    return out;
  }
  out.info = spawner.info;
  try {
    const r = await spawner.run<ProbeReport>(jobFile, {}, { timeout: 15_000 });
    out.report = r.value ?? null;
    out.peakMemoryBytes = r.peakMemoryBytes;
  } catch (e) {
    out.error = e as ProbeOutcome['error'];
    out.phase = 'run';
  } finally {
    await spawner.close();
  }
  return out;
}

/** The sandbox step a failure names: from a SandboxSetupError, or from a self-test report in a StartError. */
function failedStep(e: ProbeOutcome['error']): { step: string; syscall: string; errno: string } | null {
  if (!e) return null;
  if (e.step) return { step: e.step, syscall: e.syscall ?? '', errno: e.errnoName ?? '' };
  const m = /sandbox setup failed at ([^:]+): ([^:]+): (\w+)/.exec(e.message);
  return m ? { step: m[1], syscall: m[2], errno: m[3] } : null;
}

const stepKinds: Record<string, string[]> = {
  userns: ['clone', 'uid_map', 'gid_map', 'setgroups', 'wait for id maps'],
  mounts: [
    'private mounts',
    'staging root',
    'pivot to staging',
    'new root',
    'proc',
    'tmpfs',
    'bind',
    'read-only bind',
    'read-only root',
    'detach host root',
    'enter new root',
    'mount point',
  ],
  cgroups: ['cgroup', 'cgroup limit', 'join cgroup'],
  seccomp: ['seccomp'],
  landlock: ['landlock'],
  keyring: ['session keyring'],
  hostname: ['hostname'],
};

function kindOf(step: string): string {
  for (const [kind, steps] of Object.entries(stepKinds)) if (steps.includes(step)) return kind;
  return 'other';
}

function describe(e: NonNullable<ProbeOutcome['error']>): string {
  const first = e.message.split('\n')[0];
  return `${e.code ?? e.name}${e.reason ? ` (${e.reason})` : ''}: ${first.length > 600 ? `${first.slice(0, 600)}...` : first}`;
}

/** Whether uid `uid` (no supplementary groups) may open /dev/net/tun for reading and writing, by its mode bits. */
function tunAccess(uid: number): string {
  let st: fs.Stats;
  try {
    st = fs.statSync('/dev/net/tun');
  } catch {
    return '/dev/net/tun is missing (the tun module: modprobe tun)';
  }
  const bits = st.uid === uid ? (st.mode >> 6) & 6 : st.mode & 6;
  const mode = (st.mode & 0o777).toString(8).padStart(4, '0');
  return bits === 6
    ? `/dev/net/tun (mode ${mode}) opens for uid ${uid}, the stack's`
    : `/dev/net/tun (mode ${mode}, owner ${st.uid}) does not open for uid ${uid}, as which the stack runs`;
}

function fmtBytes(n: number): string {
  return n >= 2 ** 20 ? `${(n / 2 ** 20).toFixed(1)} MiB` : `${n} bytes`;
}

export async function main(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(usage);
    return 0;
  }
  const args = parseArgs(argv);
  if (typeof args === 'string') {
    process.stderr.write(`nodespawner doctor: ${args}\n\n${usage}`);
    return 2;
  }
  const checks: Check[] = [];
  const add = (c: Check) => checks.push(c);
  const container = containerEvidence();
  const ownStatus = read('/proc/self/status');
  const ownSeccomp = statusField(ownStatus, 'Seccomp');
  const ownFilters = Number(statusField(ownStatus, 'Seccomp_filters') ?? '0');
  const apparmor = appArmorLabel();

  // --- Platform -------------------------------------------------------------------------------
  const linux = process.platform === 'linux';
  const x64 = process.arch === 'x64';
  add({
    name: 'platform',
    status: linux && x64 ? 'works' : 'missing',
    detail: `${os.type()} ${os.release()} on ${process.arch}`,
    fix: !linux
      ? 'nodespawner needs Linux (namespaces, seccomp, Landlock, cgroups). Run it on a Linux host or in a Linux VM.'
      : !x64
        ? 'nodespawner supports x86_64 only: its seccomp filter is compiled for that system-call table. Run it on an x86_64 host.'
        : undefined,
  });
  if (linux) {
    const [major, minor] = kernelVersion();
    const oldKernel = major < 5 || (major === 5 && minor < 2);
    add({
      name: 'kernel',
      status: oldKernel ? 'missing' : 'works',
      detail: `Linux ${os.release()}${oldKernel ? '' : major < 5 || (major === 5 && minor < 13) ? ' (Landlock needs 5.13 or later)' : ''}`,
      fix: oldKernel ? 'nodespawner clones jobs with CLONE_PIDFD, which needs Linux 5.2 or later. Upgrade the kernel.' : undefined,
    });
  }

  // --- Node.js ----------------------------------------------------------------------------------
  const [nodeMajor, nodeMinor] = process.versions.node.split('.').map(Number);
  const supported = nodeMajor === 24 || (nodeMajor === 22 && nodeMinor >= 15);
  const endOfLife = nodeMajor === 20 && nodeMinor >= 11;
  const install = "Install Node.js 24 LTS (https://nodejs.org, or your distribution's nodejs package), then reinstall nodespawner.";
  add({
    name: 'node',
    status: supported ? 'works' : endOfLife ? 'warning' : 'missing',
    detail: `Node.js ${process.version} at ${process.execPath} (supported: 24, and 22.15 or later${endOfLife ? '; 20 is past its end of life: it still works, without TypeScript job modules' : ''})`,
    fix: supported ? undefined : install,
  });

  // --- Native addon -----------------------------------------------------------------------------
  let addonError: Error | null = null;
  let native: NativeBinding | null = null;
  if (linux) {
    try {
      native = (await import('../lib/native.js')).native;
    } catch (e) {
      addonError = e as Error;
    }
  }
  add({
    name: 'native addon',
    status: native ? 'works' : 'missing',
    detail: native ? `${(await import('../lib/native.js')).addonPath} loads` : `cannot load: ${addonError?.message.split('\n')[0] ?? 'not Linux'}`,
    fix: native
      ? undefined
      : 'Rebuild it for this Node.js: `npm rebuild nodespawner` in your app (in a checkout: `npm run ' +
        'build`). node-gyp needs python3, make and g++ (Debian/Ubuntu: `apt-get install python3 make g++`).',
  });

  // --- Who runs the app -------------------------------------------------------------------------
  if (isRoot) {
    const nobody = idMapped('uid', 65534) && idMapped('gid', 65534);
    add({
      name: 'app user',
      status: nobody ? 'note' : 'warning',
      detail: nobody
        ? 'running as root: every job runs as uid/gid 65534 (nobody) outside its namespaces (1000 inside). Job ' +
          'files, their imports and every directory above them must be readable and traversable by uid 65534.'
        : 'running as root, and uid/gid 65534 does not exist in this user namespace: jobs ' +
          'map to uid/gid 0 outside their namespaces, the same root this app runs as.',
      fix: nobody
        ? 'Consider a dedicated unprivileged user for the app (see docs/deploy.md): then jobs run as ' +
          'that user and the app needs no root at all, provided user namespaces and cgroups work for it.'
        : 'Run the app as an unprivileged user, or map uid/gid 65534 into its user namespace.',
    });
  } else {
    add({
      name: 'app user',
      status: 'note',
      detail:
        `running as uid ${process.geteuid?.()}: every job runs as this same uid outside its ` +
        `namespaces (1000 inside). A job that escaped its sandbox would have this user's rights.`,
      fix: 'Give the app a dedicated user that owns nothing else (see docs/deploy.md).',
    });
  }

  // --- Containers ---------------------------------------------------------------------------------
  if (container) {
    add({
      name: 'container',
      status: 'note',
      detail:
        `this looks like a container: ${container}; seccomp ` +
        `${ownSeccomp === '2' ? `filter mode (${ownFilters} filter${ownFilters === 1 ? '' : 's'})` : ownSeccomp === '0' ? 'off' : (ownSeccomp ?? 'unknown')}; ` +
        `` +
        `` +
        `` +
        `AppArmor ${apparmor ?? 'not present'}. Container runtimes block what the sandbox ` +
        `needs by default; if a check below is missing, docs/deploy.md lists the flags.`,
    });
  }

  // --- cgroups (detection) -----------------------------------------------------------------------
  let cgroups: CgroupSupport | null = null;
  let subtreeGap: string | null = null;
  if (linux) {
    cgroups = detectCgroups(`nodespawner-doctor-${process.pid}`, args.cgroupRoot);
    if (cgroups.version === 2) {
      // Job cgroups get the controllers their parent's parent enables for its children.
      const base = join(cgroups.parent, '..');
      const enabled = (read(join(base, 'cgroup.subtree_control')) ?? '').split(/\s+/);
      const lacking = ['memory', 'pids'].filter((c) => !enabled.includes(c));
      if (lacking.length > 0) subtreeGap = `${base}/cgroup.subtree_control does not enable ${lacking.join(' and ')} for its children`;
    }
  }

  // --- The real thing: a spawner and a probe job -------------------------------------------------
  let first: ProbeOutcome | null = null;
  let sandbox: ProbeOutcome | null = null;
  let cgroupOutcome: ProbeOutcome | null = null;
  let egress: ProbeOutcome | null = null;
  let tmp: string | null = null;
  if (linux && x64 && (supported || endOfLife) && native) {
    const { Spawner } = await import('../lib/index.js');
    tmp = fs.mkdtempSync(join(os.tmpdir(), 'nodespawner-doctor-'));
    try {
      // Jobs of a root app run as uid 65534: the directory and the file must be readable by it.
      fs.chmodSync(tmp, 0o755);
      const jobFile = join(tmp, 'probe.mjs');
      fs.writeFileSync(jobFile, probeJob, { mode: 0o644 });
      fs.chmodSync(jobFile, 0o644);
      const cgroupsUsable = cgroups !== null && cgroups.version !== 0;
      first = await probe(Spawner, cgroupsUsable && args.limits === 'cgroup' ? 'cgroup' : args.limits === 'none' ? 'none' : 'rlimit', args.cgroupRoot, jobFile);
      const step = failedStep(first.error);
      const cgroupFailure =
        first.limits === 'cgroup' && first.error && (first.error.reason === 'cgroups' || (step !== null && kindOf(step.step) === 'cgroups'));
      if (first.limits === 'cgroup') cgroupOutcome = first;
      if (cgroupFailure) {
        // Prove the rest of the sandbox without cgroups.
        sandbox = await probe(Spawner, 'rlimit', null, jobFile);
      } else {
        sandbox = first;
      }
      // An 'egress' job (firewall and network stack, no traffic), where the sandbox itself works.
      if (!sandbox.error && !('missing' in findEgressTools(null))) egress = await probe(Spawner, sandbox.limits, args.cgroupRoot, jobFile, 'egress');
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  }

  const sandboxError = sandbox?.error ?? null;
  const sandboxStep = failedStep(sandboxError);
  const sandboxKind = sandboxStep ? kindOf(sandboxStep.step) : sandboxError ? 'other' : null;

  // --- User namespaces ----------------------------------------------------------------------------
  if (linux) {
    const maxUserNs = read('/proc/sys/user/max_user_namespaces');
    const usernsClone = read('/proc/sys/kernel/unprivileged_userns_clone');
    const apparmorRestrict = read('/proc/sys/kernel/apparmor_restrict_unprivileged_userns');
    const facts = [`user.max_user_namespaces = ${maxUserNs ?? 'absent'}`];
    if (usernsClone !== null) facts.push(`kernel.unprivileged_userns_clone = ${usernsClone}`);
    if (apparmorRestrict !== null) facts.push(`kernel.apparmor_restrict_unprivileged_userns = ${apparmorRestrict}`);
    // A quick second opinion, independent of nodespawner: util-linux unshare(1) with every namespace a job gets.
    const nsFlags = ['--user', '--map-root-user', '--pid', '--fork', '--mount', '--net', '--uts', '--ipc', '--cgroup'];
    const u = spawnSync('unshare', [...nsFlags, 'true'], { encoding: 'utf8', timeout: 10_000 });
    if (u.error) facts.push('unshare(1) not installed');
    else
      facts.push(
        u.status === 0
          ? '`unshare --user --pid --mount --net --uts --ipc --cgroup` works'
          : `\`unshare ${nsFlags.join(' ')} true\` fails: ${(u.stderr || `exit ${u.status}`).trim().split('\n')[0]}`,
      );
    const fixes: string[] = [];
    if (maxUserNs === '0') fixes.push('`sysctl -w user.max_user_namespaces=15000` (persist it in /etc/sysctl.d/99-nodespawner.conf)');
    if (usernsClone === '0' && !isRoot)
      fixes.push('`sysctl -w kernel.unprivileged_userns_clone=1` (Debian/Ubuntu ' + 'kernels; persist it in /etc/sysctl.d/), or run the app as root');
    if (apparmorRestrict === '1' && !isRoot) {
      fixes.push(
        `Ubuntu restricts unprivileged user namespaces: give node ` +
          `an AppArmor profile that allows them (an /etc/apparmor.d/ ` +
          `profile for ${process.execPath} with \`userns,\`), or ` +
          `\`sysctl -w kernel.apparmor_restrict_unprivileged_userns=0\``,
      );
    }
    if (container && ownSeccomp === '2') {
      fixes.push(
        "this container's seccomp profile (Docker's default, or Kubernetes' RuntimeDefault) " +
          'refuses clone with namespace flags: run it with a profile that allows them (`docker ' +
          'run --security-opt seccomp=nodespawner-seccomp.json`, Kubernetes `seccompProfile: ' +
          '{type: Localhost}`; docs/deploy.md shows how to make one), or seccomp=unconfined',
      );
    }
    let status: Status;
    let detail: string;
    if (!sandbox) {
      status = u.status === 0 ? 'works' : 'missing';
      detail = `not tried with a spawner (see above); ${facts.join('; ')}`;
    } else if (sandboxKind === 'userns') {
      status = 'missing';
      detail = `a job could not be given its namespaces: ${describe(sandboxError!)}; ${facts.join('; ')}`;
      if (fixes.length === 0) fixes.push('check the settings listed above, and the seccomp or AppArmor policy this process runs under');
    } else if (sandbox.info || sandbox.phase === 'run') {
      status = 'works';
      detail = `the spawner's self-test forked a child into new user, PID, mount, network, UTS, IPC and cgroup namespaces; ${facts.join('; ')}`;
      fixes.length = 0;
    } else {
      status = u.status === 0 ? 'works' : 'missing';
      detail = `${facts.join('; ')} (the spawner failed before it could tell: see below)`;
    }
    add({ name: 'user namespaces', status, detail, fix: fixes.length ? fixes.map((f) => `- ${f}`).join('\n') : undefined });
  }

  // --- The spawner and the probe job as a whole -------------------------------------------------
  if (sandbox) {
    if (sandboxError && sandboxKind !== 'userns') {
      const s = sandboxStep;
      let fix: string;
      if (sandboxKind === 'mounts' && s?.step === 'proc') {
        fix =
          'A new /proc cannot be mounted where the existing one has paths mounted over it' +
          (procOvermounts().length ? ` (here: ${procOvermounts().slice(0, 6).join(', ')}${procOvermounts().length > 6 ? ', ...' : ''})` : '') +
          '. Docker: `--security-opt systempaths=unconfined`; Kubernetes: `securityContext.procMount: Unmasked` with `hostUsers: false`. See docs/deploy.md.';
      } else if (sandboxKind === 'mounts') {
        fix =
          `The job's own root could not be built (${s?.syscall} refused with ${s?.errno}). ` +
          (apparmor && apparmor !== 'unconfined'
            ? `This process runs under AppArmor profile ${apparmor}, which may deny mount: Docker \`--security-opt ` +
              `apparmor=unconfined\` (or a profile that allows mount), Kubernetes \`appArmorProfile: {type: Unconfined}\`. `
            : '') +
          (ownSeccomp === '2' ? 'The seccomp profile this process runs under must allow mount, umount2 and pivot_root. ' : '') +
          'See docs/deploy.md and docs/troubleshooting.md.';
      } else if (sandboxKind === 'keyring' || sandboxKind === 'hostname') {
        fix =
          `The seccomp profile this process runs under refuses ${s?.syscall} (Docker's default refuses ` +
          `keyctl, and sethostname without CAP_SYS_ADMIN): use a profile that allows it (docs/deploy.md).`;
      } else if (sandboxKind === 'seccomp') {
        fix =
          "The kernel refused to install the jobs' seccomp filter: it needs CONFIG_SECCOMP_FILTER, " +
          'and a seccomp profile around this process that allows seccomp(2).';
      } else if (sandboxKind === 'landlock') {
        fix =
          'Landlock is present but refused the rules: report this with the output of `nodespawner ' +
          'doctor --json`. Meanwhile, `sandbox.landlock: false` runs jobs without that layer.';
      } else if (sandboxError.code === 'ERR_JOB_FAILED' && /EACCES|EPERM/.test(sandboxError.message)) {
        fix =
          `The job user cannot read a job file in ${os.tmpdir()}: ` +
          `${isRoot ? 'uid 65534 needs read access to job files and every directory above them' : 'check the permissions of the temp directory'} ` +
          `` +
          `` +
          `` +
          `` +
          `(TMPDIR picks another).`;
      } else if (
        sandboxError.reason === 'PRELOAD_FAILED' ||
        sandboxError.reason === 'SELF_TEST_FAILED' ||
        sandboxError.reason === 'exit' ||
        sandboxError.reason === 'timeout'
      ) {
        fix = 'See docs/troubleshooting.md under this reason.';
      } else {
        fix = 'See docs/troubleshooting.md for this error code.';
      }
      const name =
        {
          mounts: 'own root (mounts)',
          keyring: 'session keyring',
          hostname: 'hostname',
          seccomp: 'seccomp filter',
          landlock: 'landlock rules',
          cgroups: 'cgroups',
        }[sandboxKind ?? ''] ?? 'sandbox';
      add({
        name,
        status: 'missing',
        detail: `${sandbox.phase === 'start' ? 'Spawner.start() failed' : 'the probe job failed'}: ${describe(sandboxError)}`,
        fix,
      });
    } else if (sandbox.report) {
      const r = sandbox.report;
      const problems: string[] = [];
      if (r.pid !== 1) problems.push(`pid ${r.pid}, expected 1`);
      if (r.uid !== 1000) problems.push(`uid ${r.uid}, expected 1000`);
      if (r.noNewPrivs !== '1') problems.push('no_new_privs is not set');
      if (!/^0+$/.test(r.capEff ?? '')) problems.push(`capabilities ${r.capEff}`);
      if (r.hostRootVisible) problems.push("the host's /etc is visible");
      add({
        name: 'sandbox',
        status: problems.length ? 'missing' : 'works',
        detail:
          `started, its fork self-test passing (${sandbox.info?.selfTestMs ?? '?'} ms); ` +
          `a probe job ran as pid ${r.pid}, uid ${r.uid}, hostname ${r.hostname}, ` +
          `in its own root (the host's /etc ${r.hostRootVisible ? 'visible' : 'not visible'}), ` +
          `network interfaces [${r.interfaces.join(', ')}], no capabilities, no_new_privs` +
          (problems.length ? `; but: ${problems.join('; ')}` : ''),
        fix: problems.length ? 'The sandbox is not what it should be: please report this with the output of `nodespawner doctor --json`.' : undefined,
      });
    }
  }

  // --- seccomp ------------------------------------------------------------------------------------
  if (linux) {
    const actions = read('/proc/sys/kernel/seccomp/actions_avail');
    const own =
      ownSeccomp === '2'
        ? `this process already runs under ${ownFilters} seccomp filter${ownFilters === 1 ? '' : 's'} (a ` +
          `container runtime or systemd's SystemCallFilter=); nodespawner's filter is added on top in each job`
        : ownSeccomp === '0'
          ? 'this process runs without a seccomp filter'
          : `Seccomp: ${ownSeccomp ?? 'unknown'}`;
    const r = sandbox?.report;
    if (r) {
      const ok = r.seccomp === '2';
      add({
        name: 'seccomp',
        status: ok ? 'works' : 'missing',
        detail: ok ? `the probe job runs under nodespawner's filter (Seccomp: 2); ${own}` : `the probe job reports Seccomp: ${r.seccomp}; ${own}`,
        fix: ok ? undefined : 'The kernel needs CONFIG_SECCOMP_FILTER. Do not run with sandbox.seccomp: false in production.',
      });
    } else {
      const kernelHas = actions !== null && actions.includes('kill_process');
      add({
        name: 'seccomp',
        status: kernelHas ? (sandboxKind === 'seccomp' ? 'missing' : 'works') : 'missing',
        detail:
          `${actions === null ? 'the kernel has no seccomp filter support (/proc/sys/kernel/seccomp/actions_avail is absent)' : `kernel actions: ${actions}`}; ` +
          `` +
          `` +
          `` +
          `` +
          `` +
          `${own}; the kernel supports filters, but no job ran to prove it (see above)`,
        fix: kernelHas && sandboxKind !== 'seccomp' ? undefined : 'Use a kernel with CONFIG_SECCOMP_FILTER (4.14 or later for kill_process).',
      });
    }
  }

  // --- Landlock -----------------------------------------------------------------------------------
  if (native) {
    const abi = sandbox?.info?.landlockAbi ?? native.landlockAbi();
    const errno = abi < 0 ? -abi : 0;
    let why = '';
    let fix: string | undefined;
    if (abi <= 0) {
      if (errno === os.constants.errno.ENOSYS) {
        why = 'the kernel has no Landlock (it needs Linux 5.13+ with CONFIG_SECURITY_LANDLOCK)';
        fix = 'Use a kernel with CONFIG_SECURITY_LANDLOCK=y and landlock in its LSM list.';
      } else if (errno === os.constants.errno.EOPNOTSUPP) {
        why = 'the kernel has Landlock, but it was not enabled at boot';
        fix =
          "Add landlock to the kernel's lsm= boot parameter (for example " +
          'lsm=landlock,lockdown,yama,integrity,apparmor,bpf; keep ' +
          'the LSMs listed in /sys/kernel/security/lsm) and reboot.';
      } else {
        const name = Object.entries(os.constants.errno).find(([, n]) => n === errno)?.[0] ?? `errno ${errno}`;
        why = `landlock_create_ruleset fails with ${name}${ownSeccomp === '2' ? ', likely refused by the seccomp profile this process runs under' : ''}`;
        fix = 'Allow landlock_create_ruleset, landlock_add_rule and landlock_restrict_self in the seccomp profile around the app (recent Docker profiles do).';
      }
    }
    add({
      name: 'landlock',
      status: abi > 0 ? 'works' : 'warning',
      detail:
        abi > 0
          ? `ABI ${abi}: jobs get Landlock as a second filesystem layer`
          : `${why}; jobs run without this second filesystem layer (the own root still confines them)`,
      fix,
    });
  }

  // --- network ------------------------------------------------------------------------------------
  const networkModes = {
    none: { status: 'works' as Status, detail: "sandbox.network is 'none': each job has a network namespace of its own with only a loopback that is down" },
    egress: {
      status: 'works' as Status,
      detail: "sandbox.network is 'egress': jobs reach public addresses only, through a firewall in their own network namespace (see egress below)",
    },
    host: {
      status: 'warning' as Status,
      detail:
        "sandbox.network is 'host': jobs share the host's network namespace, with no network isolation. They reach every service " +
        "listening on the host's loopback, the LAN, and cloud metadata endpoints (169.254.169.254), with the host's addresses. (Unix sockets stay closed to them.)",
      fix:
        "Use sandbox.network 'none' (the default) unless jobs must reach the network, and 'egress' if they need the internet only. " +
        "Keep 'host' for a spawner whose jobs you trust with the host's network, behind a firewall of your own (docs/security-model.md).",
    },
  };
  add({ name: 'network', ...networkModes[args.network] });

  // --- heap arena ---------------------------------------------------------------------------------
  if (sandbox?.info) {
    const i = sandbox.info;
    const huge = `${(i.hugePageBytes / 2 ** 20).toFixed(0)} MiB`;
    add({
      name: 'heap arena',
      status: i.heapArena && i.hugePageBytes > 0 ? 'works' : 'note',
      detail: !i.heapArena
        ? `the zygote runs without its heap arena (${i.heapArenaNote ?? 'off'}): every fork copies V8's heap page by page`
        : i.hugePageBytes > 0
          ? `V8's heap is in one range, ${huge} of it in transparent huge pages: each fork copies far fewer page table entries`
          : `V8's heap is in one range, without huge pages: ${i.heapArenaNote ?? 'no 2 MiB extent was resident enough'}`,
      fix:
        i.heapArena && i.hugePageBytes > 0
          ? undefined
          : 'Optional, for speed: transparent huge pages not set to never (/sys/kernel/mm/transparent_hugepage/enabled), ' +
            'Linux 6.1+ for MADV_COLLAPSE, and the package at a path without spaces or colons.',
    });
  }

  // --- cgroups ------------------------------------------------------------------------------------
  if (cgroups) {
    const needed = args.limits === 'cgroup';
    const missingStatus: Status = needed ? 'missing' : 'warning';
    const optOut = needed
      ? "\nOr opt into the weaker fallback: sandbox.limits 'rlimit' (or NODESPAWNER_LIMITS=rlimit): " +
        'RLIMIT_DATA and RLIMIT_NPROC, no CPU quota, no out-of-memory report.'
      : '';
    const mode =
      `sandbox.limits is ` +
      `'${args.limits}'${needed ? '' : `: jobs run with ${args.limits === 'rlimit' ? 'rlimits' : 'no limits'} but the timeout, whatever cgroups offer`}`;
    if (cgroups.version === 0) {
      const v2 = /cgroup v2/.test(cgroups.reason);
      const fix = v2
        ? `Delegate a cgroup v2 subtree to the app's user (systemd: a service ` +
          `with Delegate=yes), run the app's process in a leaf of it, enable ` +
          `memory and pids for its children (cgroup.subtree_control), and pass ` +
          `it as sandbox.cgroupRoot: docs/deploy.md shows each step.${optOut}`
        : `Run the app as root, or start it in memory and pids cgroups (cgroup v1) that its user owns. As ` +
          `root, once: \`for c in memory pids cpu; do mkdir -p /sys/fs/cgroup/$c/nodespawner-app && chown -R ` +
          `${os.userInfo().username} /sys/fs/cgroup/$c/nodespawner-app; ` +
          `done\`; then, as the app's user: \`for c in memory ` +
          `pids cpu; do echo $$ > /sys/fs/cgroup/$c/nodespawner-app/cgroup.procs; done; exec node app.mjs\`.${optOut}`;
      add({ name: 'cgroups', status: missingStatus, detail: `${cgroups.reason}; ${mode}`, fix });
    } else {
      const under = (d: string | null) => (d === null ? null : join(d, '..'));
      const where =
        cgroups.version === 2
          ? `cgroup v2: job cgroups go under ${under(cgroups.parent)}`
          : `cgroup v1: job cgroups go under memory ${under(cgroups.parents.memory)}, pids ` +
            `${under(cgroups.parents.pids)}, cpu ${under(cgroups.parents.cpu) ?? 'none writable (no CPU quota)'}`;
      const failure =
        cgroupOutcome?.error && (cgroupOutcome.error.reason === 'cgroups' || kindOf(failedStep(cgroupOutcome.error)?.step ?? '') === 'cgroups')
          ? cgroupOutcome.error
          : null;
      if (failure || subtreeGap) {
        const base = cgroups.version === 2 ? join(cgroups.parent, '..') : '';
        add({
          name: 'cgroups',
          status: missingStatus,
          detail: `${where}; ${failure ? `but a job could not use them: ${describe(failure)}` : subtreeGap}; ${mode}`,
          fix:
            cgroups.version === 2
              ? `Enable the controllers for ${base}'s children: \`echo '+memory +pids +cpu' > ` +
                `${base}/cgroup.subtree_control\`. That works only while ${base} holds no processes itself: ` +
                `move the app into a child cgroup first (systemd 254+: DelegateSubgroup=app with ` +
                `Delegate=yes), and pass ${base} as sandbox.cgroupRoot. See docs/deploy.md.${optOut}`
              : `Make the cgroup directories above writable by this user (or run the app as root).${optOut}`,
        });
      } else {
        const proven =
          cgroupOutcome && !cgroupOutcome.error
            ? `; a probe job ran in its own ` +
              `cgroup${cgroupOutcome.peakMemoryBytes !== null ? ` (peak memory ${fmtBytes(cgroupOutcome.peakMemoryBytes)})` : ''}`
            : '';
        const noCpu = cgroups.version === 1 && cgroups.parents.cpu === null;
        add({
          name: 'cgroups',
          status: noCpu ? 'warning' : 'works',
          detail: `${where}${proven}${needed ? '' : `; ${mode}`}`,
          fix: noCpu
            ? 'No writable cpu controller: sandbox.cpu has no effect. Mount the cpu ' +
              'controller (cgroup v1) where this user can write, or move to cgroup v2.'
            : undefined,
        });
      }
    }
  }

  // --- sandbox.network 'egress' (optional) ---------------------------------------------------------
  if (linux) {
    const tools = findEgressTools(null);
    const jobUid = isRoot && idMapped('uid', 65534) ? 65534 : process.geteuid!();
    const tun = tunAccess(jobUid);
    const bounding = BigInt(`0x${statusField(read('/proc/self/status'), 'CapBnd') ?? '0'}`);
    const lackingCaps = (
      [
        ['CAP_NET_ADMIN', 12n],
        ['CAP_SYS_ADMIN', 21n],
      ] as const
    )
      .filter(([, bit]) => ((bounding >> bit) & 1n) === 0n)
      .map(([name]) => name);
    const facts = [
      'missing' in tools
        ? tools.missing.replace(/^sandbox.network 'egress' needs /, 'needs ').replace(/: apt-get.*$/, '')
        : `stack ${tools.stack} (${tools.stackPath}), firewall ${tools.nftPath}`,
      tun,
      lackingCaps.length > 0
        ? `the capability bounding set lacks ${lackingCaps.join(' and ')}`
        : 'the capability bounding set holds CAP_NET_ADMIN and CAP_SYS_ADMIN',
    ];
    const fixes: string[] = [];
    if ('missing' in tools)
      fixes.push(`\`${tools.missing.replace(/^.*: (apt-get .*)$/, '$1')}\` (or slirp4netns for passt), nothing else is fetched at run time`);
    if (!/^\/dev\/net\/tun \(mode \d+\) opens for uid/.test(tun))
      fixes.push(`let uid ${jobUid} open /dev/net/tun (\`chmod 0666 /dev/net/tun\`, the usual mode; in a container: --device /dev/net/tun)`);
    if (lackingCaps.length > 0)
      fixes.push(
        `run the app with ${lackingCaps.join(' and ')} in its bounding set (a container's default drops them: --cap-add ${lackingCaps.map((c) => c.replace('CAP_', '')).join(' --cap-add ')})`,
      );
    if (egress?.error) fixes.push(describe(egress.error));
    const proven = egress && !egress.error;
    add({
      name: 'egress (optional)',
      status: proven ? 'works' : 'missing' in tools ? 'note' : 'warning',
      detail: `sandbox.network 'egress': ${proven ? 'a probe job ran with its firewall and network stack; ' : ''}${facts.join('; ')}`,
      fix: fixes.length > 0 ? `Only for jobs with network 'egress': ${fixes.join('; ')}.` : undefined,
    });
  }

  // --- Transparent huge pages --------------------------------------------------------------------
  if (linux) {
    const thp = read('/sys/kernel/mm/transparent_hugepage/enabled');
    const mode = thp ? (/\[(\w+)\]/.exec(thp)?.[1] ?? thp) : null;
    add({
      name: 'transparent huge pages',
      status: 'note',
      detail:
        mode === null
          ? 'not available on this kernel'
          : `${mode} (${thp}). Forking copies the zygote's page tables, so a fork ` +
            `costs more the larger the zygote's resident memory. In modes always and ` +
            `madvise the zygote collapses its heap arena into huge pages itself (see ` +
            `heap arena above); never turns that off. nodespawner works with any mode.`,
      fix:
        mode === 'never'
          ? 'Optional, for speed: `echo madvise > /sys/kernel/mm/transparent_hugepage/enabled` ' + 'and measure with `npx nodespawner bench`.'
          : undefined,
    });
  }

  // --- Report -------------------------------------------------------------------------------------
  const missing = checks.filter((c) => c.status === 'missing');
  if (args.json) {
    process.stdout.write(`${JSON.stringify({ ok: missing.length === 0, checks }, null, 2)}\n`);
    return missing.length === 0 ? 0 : 1;
  }
  const label: Record<Status, string> = { works: 'works  ', missing: 'MISSING', warning: 'warning', note: 'note   ' };
  const lines = ['nodespawner doctor: what this host offers nodespawner, and the fix for each gap', ''];
  for (const c of checks) {
    lines.push(`${label[c.status]}  ${c.name}: ${c.detail}`);
    if (c.fix) for (const l of `fix: ${c.fix}`.split('\n')) lines.push(`         ${l}`);
  }
  lines.push('');
  lines.push(
    missing.length === 0
      ? 'Everything nodespawner needs works on this host.'
      : `Missing: ${missing.map((c) => c.name).join(', ')}. Fix ${missing.length === 1 ? 'it' : 'them'} as shown ` +
          `above, then run \`npx nodespawner doctor\` again. docs/deploy.md and docs/troubleshooting.md have more.`,
  );
  process.stdout.write(`${lines.join('\n')}\n`);
  return missing.length === 0 ? 0 : 1;
}
