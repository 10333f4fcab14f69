// sandbox.network 'egress', end to end, in a world of network namespaces the test builds and that
// has no route out of this machine: the app runs in one namespace whose only link is a veth pair
// into a second one that plays the internet. There, servers answer at a public-looking address,
// at private, carrier-grade NAT and metadata addresses, and a resolver at another public-looking
// address; the app itself serves on its loopback and on another address of its own. Every server
// answers, so a missing firewall rule shows as a connection that succeeds. Each available stack
// (pasta, slirp4netns) runs under a root app and under an unprivileged one (user nobody).
import fs from 'node:fs';
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { expect } from 'chai';
import { findEgressTools, firewallRuleset, parseCidr, refusedRanges } from '../lib/egress.js';
import { Spawner } from '../lib/index.js';
import { addonPath } from '../lib/native.js';
import { fixture, isRoot, packageRoot, skipBecause, waitFor, whyNobodyCannotRead } from './helpers.js';

const port = 8017;
const publicAddress = '93.184.216.34';
const resolver = '93.184.216.53';
/** Servers that a job must never reach, all listening in the test's "internet". */
const internal = ['10.17.0.1', '169.254.169.254', '192.168.17.1', '172.16.17.1', '100.64.17.1'];
/** The app's addresses: its veth (copied into the job's namespace by pasta) and another one. */
const appAddress = '93.184.216.2';
const appOtherAddress = '93.184.217.7';
const stackNames = ['pasta', 'passt', 'passt.avx2', 'slirp4netns'];

const probe = fixture(join('egress', 'probe.mjs'));
const appScript = fixture(join('egress', 'app.mjs'));
const sleeper = fixture('sleep.mjs');

function run(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr || r.error?.message}`);
}

/** The two namespaces, their servers, and a way to run the app inside. */
class World {
  readonly app = `ns17app${process.pid}`;
  readonly net = `ns17net${process.pid}`;
  private readonly servers: ChildProcess[] = [];

  async build(): Promise<void> {
    const ip = (...args: string[]) => run('ip', args);
    const veth = `ve${process.pid}`;
    ip('netns', 'add', this.app);
    ip('netns', 'add', this.net);
    ip('link', 'add', `${veth}a`, 'type', 'veth', 'peer', 'name', `${veth}b`);
    ip('link', 'set', `${veth}a`, 'netns', this.app);
    ip('link', 'set', `${veth}b`, 'netns', this.net);
    ip('-n', this.app, 'addr', 'add', `${appAddress}/24`, 'dev', `${veth}a`);
    ip('-n', this.app, 'addr', 'add', `${appOtherAddress}/32`, 'dev', 'lo');
    ip('-n', this.net, 'addr', 'add', '93.184.216.1/24', 'dev', `${veth}b`);
    for (const a of [publicAddress, resolver, ...internal]) ip('-n', this.net, 'addr', 'add', `${a}/32`, 'dev', 'lo');
    for (const ns of [this.app, this.net]) {
      ip('-n', ns, 'link', 'set', 'lo', 'up');
      ip('-n', ns, 'link', 'set', ns === this.app ? `${veth}a` : `${veth}b`, 'up');
    }
    ip('-n', this.app, 'route', 'add', 'default', 'via', '93.184.216.1');
    // The internet: TCP and UDP answers on every address, a resolver. The app: TCP on all of its own.
    await this.serve(this.net, { port, dns: [resolver], answer: publicAddress });
    await this.serve(this.app, { port, tcpOnly: true });
  }

  private async serve(ns: string, config: object): Promise<void> {
    const child = spawn('nsenter', [`--net=/run/netns/${ns}`, process.execPath, fixture(join('egress', 'world.mjs')), JSON.stringify(config)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    this.servers.push(child);
    await new Promise<void>((resolve, reject) => {
      child.stdout!.once('data', () => resolve());
      child.once('exit', (code) => reject(new Error(`the world's server in ${ns} exited with ${code}`)));
    });
  }

  /**
   * Starts the app (test/fixtures/egress/app.mjs) in the app namespace, in a mount namespace of its
   * own where /dev/net/tun is a node that everyone may open (the stack runs as the job's
   * unprivileged id: a deployment needs that, this machine's own node may be root's alone), as
   * root or as user nobody.
   */
  startApp(user: 'root' | 'nobody', options: object, runs: object[]): ChildProcess & { lines: string[] } {
    const tun =
      'mount --make-rprivate / && d=$(mktemp -d) && mount -t tmpfs tmpfs "$d" && mknod -m 666 "$d/tun" c 10 200 && mount --bind "$d/tun" /dev/net/tun && umount -l "$d" && rmdir "$d"';
    const as = user === 'nobody' ? ['/usr/bin/setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'] : [];
    const args = [
      `--net=/run/netns/${this.app}`,
      'unshare',
      '-m',
      'sh',
      '-c',
      `${tun} && exec "$@"`,
      '--',
      ...as,
      process.execPath,
      appScript,
      JSON.stringify(options),
      JSON.stringify(runs),
    ];
    const child = Object.assign(spawn('nsenter', args, { cwd: '/', stdio: ['pipe', 'pipe', 'inherit'], env: { ...process.env, HOME: '/tmp' } }), {
      lines: [] as string[],
    });
    let buffer = '';
    child.stdout!.on('data', (d) => {
      buffer += d;
      const parts = buffer.split('\n');
      buffer = parts.pop()!;
      child.lines.push(...parts);
    });
    return child;
  }

  /** Runs the app to its end; returns one parsed line per run. */
  async runApp(user: 'root' | 'nobody', options: object, runs: object[]): Promise<any[]> {
    const child = this.startApp(user, options, runs);
    const code = await new Promise((resolve) => child.once('exit', resolve));
    expect(child.lines.at(-1), `the app exited with ${code}: ${child.lines.join('\n')}`).to.equal('closed');
    return child.lines.slice(0, -1).map((l) => JSON.parse(l));
  }

  /** Stack processes (pasta, slirp4netns) whose network namespace is the app's. */
  stacks(): number[] {
    const appNet = `net:[${fs.statSync(`/run/netns/${this.app}`).ino}]`;
    const out: number[] = [];
    for (const name of fs.readdirSync('/proc')) {
      if (!/^\d+$/.test(name)) continue;
      try {
        if (!stackNames.includes(fs.readFileSync(`/proc/${name}/comm`, 'utf8').trim())) continue;
        if (fs.readlinkSync(`/proc/${name}/ns/net`) === appNet) out.push(Number(name));
      } catch {
        // gone meanwhile
      }
    }
    return out;
  }

  destroy(): void {
    for (const s of this.servers) s.kill('SIGKILL');
    for (const ns of [this.app, this.net]) spawnSync('ip', ['netns', 'del', ns]);
  }
}

const tcpTargets = [publicAddress, ...internal, '127.0.0.1', appAddress, appOtherAddress].map((h) => [h, port]);

function refusedTcp(out: { tcp: string[] }, hosts: string[]): void {
  for (const h of hosts) expect(out.tcp, `a connection to ${h}`).to.include(`${h}:${port} ECONNREFUSED`);
}

describe('egress', function () {
  describe('options', function () {
    it("accepts 'none', 'egress' and 'host', spawner-wide and per run, and nothing else", async function () {
      for (const network of ['no', true, 'egres']) {
        const e = await expectCodeSync(() => Spawner.start({ sandbox: { network: network as 'none' } }));
        expect(e.message).to.contain("to be 'none', 'egress' or 'host'");
      }
    });

    it('validates sandbox.egress and sandbox.dns, with code ERR_INVALID_OPTION', async function () {
      const bad: Array<[object, string]> = [
        [{ egress: { allow: ['10.0.0.1/8'] } }, 'without bits set below the prefix'],
        [{ egress: { allow: ['10.0.0.0/33'] } }, 'a prefix of at most 32'],
        [{ egress: { deny: ['example.com'] } }, 'CIDRs such as'],
        [{ egress: { deny: '10.0.0.0/8' } }, 'an array of CIDRs'],
        [{ egress: { allow: ['fe80::1%eth0'] } }, 'CIDRs such as'],
        [{ egress: { stack: 'vpnkit' } }, "'pasta' or 'slirp4netns'"],
        [{ egress: { proxy: 'x' } }, 'Unknown option `sandbox.egress.proxy`'],
        [{ dns: [] }, '1 to 3 IP addresses'],
        [{ dns: ['dns.google'] }, '1 to 3 IP addresses'],
      ];
      for (const [sandbox, message] of bad) {
        const e = await expectCodeSync(() => Spawner.start({ sandbox: sandbox as object }));
        expect(e.message, JSON.stringify(sandbox)).to.contain(message);
      }
    });

    it('parses CIDRs and addresses, IPv4 and IPv6, into canonical text', function () {
      expect(parseCidr('x', '10.1.2.3').text).to.equal('10.1.2.3/32');
      expect(parseCidr('x', '2001:db8::/32').text).to.equal('2001:db8:0:0:0:0:0:0/32');
      expect(parseCidr('x', '::ffff:10.0.0.0/104').text).to.equal('0:0:0:0:0:ffff:a00:0/104');
    });

    it('refuses at least the ranges the security model lists, in the ruleset the job gets', function () {
      const listed = [
        '0.0.0.0/8',
        '10.0.0.0/8',
        '100.64.0.0/10',
        '127.0.0.0/8',
        '169.254.0.0/16',
        '172.16.0.0/12',
        '192.0.0.0/24',
        '192.0.2.0/24',
        '192.88.99.0/24',
        '192.168.0.0/16',
        '198.18.0.0/15',
        '198.51.100.0/24',
        '203.0.113.0/24',
        '224.0.0.0/4',
        '240.0.0.0/4',
        '::1/128',
        '::ffff:0:0/96',
        '64:ff9b::/96',
        'fc00::/7',
        'fe80::/10',
        'ff00::/8',
      ];
      expect(refusedRanges).to.include.members(listed);
      const ruleset = firewallRuleset({ allow: [], deny: [], stack: null }, [parseCidr('x', '93.184.216.2')]);
      for (const r of [...listed, '93.184.216.2/32']) expect(ruleset).to.contain(parseCidr('x', r).text);
    });
  });

  describe('in namespaces of its own', function () {
    this.timeout(120_000);
    let world: World | null = null;
    const stacks: Array<'pasta' | 'slirp4netns'> = [];

    before(async function () {
      if (process.env.NODESPAWNER_TEST_NESTED)
        skipBecause(this, 'building the network namespaces needs root: the root run of this file runs the app as user nobody too');
      if (!isRoot) skipBecause(this, `building the test's network namespaces needs root (running as uid ${process.geteuid!()})`);
      for (const tool of ['ip', 'nsenter', 'unshare', 'mknod']) {
        if (spawnSync(tool, ['--version']).error) skipBecause(this, `${tool} is not installed (iproute2, util-linux, coreutils)`);
      }
      for (const s of ['pasta', 'slirp4netns'] as const) if (!('missing' in findEgressTools(s))) stacks.push(s);
      if (stacks.length === 0) skipBecause(this, (findEgressTools(null) as { missing: string }).missing);
      world = new World();
      try {
        await world.build();
      } catch (e) {
        world.destroy();
        world = null;
        throw e;
      }
    });

    after(function () {
      world?.destroy();
    });

    for (const stack of ['pasta', 'slirp4netns'] as const) {
      for (const user of ['root', 'nobody'] as const) {
        it(`reaches the public address and nothing else, through ${stack}, with the app as ${user}`, async function () {
          if (!stacks.includes(stack)) skipBecause(this, (findEgressTools(stack) as { missing: string }).missing);
          if (user === 'nobody') {
            const why = whyNobodyCannotRead([appScript, addonPath]);
            if (why) skipBecause(this, why);
          }
          const sandbox = { network: 'egress', egress: { stack }, dns: [resolver], ...(user === 'nobody' ? { limits: 'rlimit' } : {}) };
          const args = {
            tcp: tcpTargets,
            udp: [
              [publicAddress, port],
              ['10.17.0.1', port],
            ],
            lookup: ['svc.example.test'],
          };
          // The second run goes to a preforked child, made after the first.
          const [first, second] = await world!.runApp(user, { sandbox }, [
            { module: probe, args },
            { module: probe, args },
          ]);
          for (const r of [first, second]) {
            expect(r.error, JSON.stringify(r.error)).to.equal(undefined);
            const out = r.value;
            expect(out.tcp).to.include(`${publicAddress}:${port} hello from ${publicAddress}`);
            refusedTcp(out, [...internal, '127.0.0.1', appAddress, appOtherAddress]);
            expect(out.udp).to.deep.equal([`${publicAddress}:${port} echo from the world`, `10.17.0.1:${port} EPERM`]);
            expect(out.lookup).to.deep.equal([`svc.example.test ${publicAddress}`]);
            expect(out.resolvConf).to.equal(`nameserver ${resolver}\noptions edns0\n`);
            expect(out.hosts).to.equal('127.0.0.1\tlocalhost nodespawner\n::1\tlocalhost ip6-localhost ip6-loopback\n');
          }
          expect(second.preforked, 'the second run went to a preforked child').to.equal(true);
        });
      }
    }

    it('opens what sandbox.egress.allow names and closes what deny names (deny wins)', async function () {
      const sandbox = { network: 'egress', egress: { allow: ['10.17.0.1/32', '169.254.169.254', '93.184.216.0/24'], deny: [`${publicAddress}/32`] } };
      const [r] = await world!.runApp('root', { sandbox, prefork: 0 }, [{ module: probe, args: { tcp: tcpTargets } }]);
      const out = r.value;
      // The servers answer whoever the firewall lets through: a missing rule shows like this.
      expect(out.tcp).to.include.members([`10.17.0.1:${port} hello from 10.17.0.1`, `169.254.169.254:${port} hello from 169.254.169.254`]);
      refusedTcp(out, [publicAddress, '192.168.17.1', '127.0.0.1']);
    });

    it("takes the network per run: 'egress' for one run of a spawner whose default is 'none'", async function () {
      const runs = [
        { module: probe, args: { tcp: [[publicAddress, port]] }, options: { network: 'egress' } },
        { module: probe, args: { tcp: [[publicAddress, port]] } },
      ];
      const [egress, none] = await world!.runApp('root', { prefork: 0 }, runs);
      expect(egress.value.tcp).to.deep.equal([`${publicAddress}:${port} hello from ${publicAddress}`]);
      expect(none.value.tcp).to.deep.equal([`${publicAddress}:${port} ENETUNREACH`]);
      expect(none.value.resolvConf, "a job with network 'none' gets no /etc of its own").to.equal(undefined);
    });

    it('leaves the firewall out of reach of the job: seccomp refuses nf_tables sockets, and without seccomp the job lacks the capability', async function () {
      const probeAddon = join(packageRoot, 'test', 'native', 'build', 'Release', 'nodespawner_probe.node'); // npm run build:probe
      const nft = findEgressTools(null);
      if ('missing' in nft) skipBecause(this, nft.missing);
      const runs = [
        { module: probe, args: { probe: probeAddon, tcp: [['10.17.0.1', port]] } },
        { module: probe, args: { nft: [nft.nftPath, 'flush', 'ruleset'], tcp: [['10.17.0.1', port]] }, options: {} },
      ];
      const [full] = await world!.runApp('root', { sandbox: { network: 'egress' }, prefork: 0 }, runs.slice(0, 1));
      expect(full.value.socket).to.equal('EAFNOSUPPORT');
      refusedTcp(full.value, ['10.17.0.1']);
      // The capability layer alone: no seccomp, and the host's files (nft) in view.
      const bare = { network: 'egress', seccomp: false, filesystem: false, landlock: false };
      const [alone] = await world!.runApp('root', { sandbox: bare, prefork: 0 }, runs.slice(1));
      expect(alone.value.nft.status, `nft ran: ${JSON.stringify(alone.value.nft)}`).to.not.equal(0);
      expect(alone.value.nft.stderr).to.contain('Operation not permitted');
      refusedTcp(alone.value, ['10.17.0.1']);
    });

    it('ends the stack however the job ends: timeout, crash, and the app killed outright', async function () {
      const stack = stacks[0];
      const sandbox = { network: 'egress', egress: { stack } };
      const runs = [
        { module: sleeper, args: { ms: 60_000 }, options: { timeout: 1_000 } },
        { module: fixture('crash.mjs'), args: { how: 'abort' } },
        { pause: true },
      ];
      const app = world!.startApp('root', { sandbox, prefork: 0 }, runs);
      try {
        await waitFor('the app to pause after its runs', () => app.lines.includes('paused'), 60_000);
        expect(app.lines.slice(0, 2).map((l) => JSON.parse(l).error?.code)).to.deep.equal(['ERR_TIMEOUT', 'ERR_JOB_CRASHED']);
        await waitFor('no stack left in the app namespace after the runs', () => world!.stacks().length === 0);
      } finally {
        app.kill('SIGKILL');
      }
      const held = world!.startApp('root', { sandbox, prefork: 0 }, [{ module: sleeper, args: { ms: 60_000 }, hold: true }]);
      await waitFor('a stack serving the held job', () => world!.stacks().length === 1, 30_000);
      held.kill('SIGKILL');
      await waitFor('no stack left once the app is killed', () => world!.stacks().length === 0);
    });
  });
});

/** Runs `f`, which must throw synchronously or reject with a TypeError carrying ERR_INVALID_OPTION. */
async function expectCodeSync(f: () => unknown): Promise<TypeError & { code: string }> {
  let error: unknown;
  try {
    await f();
  } catch (e) {
    error = e;
  }
  expect(error, 'expected a TypeError').to.be.instanceOf(TypeError);
  expect((error as { code?: string }).code).to.equal('ERR_INVALID_OPTION');
  return error as TypeError & { code: string };
}
