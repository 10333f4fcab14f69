// sandbox.network 'egress': what a job may reach, decided here and executed by the intermediate
// process (native/egress.cc). Each job keeps its own network namespace. A userspace network stack
// that needs no root (pasta, from Debian's passt package, or slirp4netns) links it to the
// outside, with nothing mapped to the host's loopback; a firewall inside the namespace, loaded
// before the job runs, refuses loopback, private, link-local, metadata and special addresses and
// the host's own. The job holds no capabilities and cannot change it.
import { existsSync } from 'node:fs';
import { isIPv4, isIPv6 } from 'node:net';
import { networkInterfaces } from 'node:os';
import { expected } from './options.js';

/** Destinations refused unless `sandbox.egress.allow` opens them. */
export const refusedRanges: readonly string[] = Object.freeze([
  '0.0.0.0/8', // "this network"; 0.0.0.0 reaches the local host
  '10.0.0.0/8', // private
  '100.64.0.0/10', // carrier-grade NAT
  '127.0.0.0/8', // loopback
  '169.254.0.0/16', // link-local, cloud metadata (169.254.169.254)
  '172.16.0.0/12', // private
  '192.0.0.0/24', // IETF protocol assignments
  '192.0.2.0/24', // documentation
  '192.88.99.0/24', // 6to4 relay anycast
  '192.168.0.0/16', // private
  '198.18.0.0/15', // benchmarking
  '198.51.100.0/24', // documentation
  '203.0.113.0/24', // documentation
  '224.0.0.0/4', // multicast
  '240.0.0.0/4', // reserved, and the broadcast address 255.255.255.255
  '::/128', // unspecified; reaches the local host
  '::1/128', // loopback
  '::ffff:0:0/96', // IPv4-mapped: the IPv4 rules would not see these
  '64:ff9b::/96', // NAT64: IPv4 addresses behind a translator
  '64:ff9b:1::/48', // local-use NAT64
  '2001:db8::/32', // documentation
  '2002::/16', // 6to4: IPv4 addresses inside IPv6 ones
  'fc00::/7', // unique local (private)
  'fe80::/10', // link-local
  'ff00::/8', // multicast
]);

/** Resolvers a job gets by default: public ones, since a host's own resolver is often a private address. */
export const defaultDns: readonly string[] = Object.freeze(['1.1.1.1', '8.8.8.8', '2606:4700:4700::1111']);

export type EgressStackName = 'pasta' | 'slirp4netns';

export interface EgressOptions {
  /** Destinations (CIDRs or addresses) opened although refused by default: an internal service a job needs, say. @default [] */
  allow?: string[];
  /** More destinations to refuse; these win over `allow`. @default [] */
  deny?: string[];
  /** The userspace network stack. @default 'pasta' where installed, else 'slirp4netns' */
  stack?: EgressStackName;
}

/** An IPv4 or IPv6 network: its canonical text and its bits. */
export interface Cidr {
  family: 4 | 6;
  /** The network address as a number (host bits zero). */
  bits: bigint;
  prefix: number;
  text: string;
}

export interface ResolvedEgress {
  allow: Cidr[];
  deny: Cidr[];
  stack: EgressStackName | null;
}

function v4Bits(s: string): bigint {
  return s.split('.').reduce((acc, part) => (acc << 8n) | BigInt(Number(part)), 0n);
}

function v6Bits(s: string): bigint {
  let text = s;
  // A trailing dotted quad (::ffff:1.2.3.4) is the last 32 bits.
  const quad = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (quad) {
    const v = v4Bits(quad[1]);
    text = `${text.slice(0, quad.index)}${(v >> 16n).toString(16)}:${(v & 0xffffn).toString(16)}`;
  }
  const [head, tail] = text.includes('::') ? text.split('::') : [text, null];
  const parts = (p: string) => (p === '' ? [] : p.split(':'));
  const h = parts(head);
  const t = tail === null ? [] : parts(tail);
  const groups = tail === null ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  return groups.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g, 16)), 0n);
}

function v4Text(bits: bigint): string {
  return [24n, 16n, 8n, 0n].map((s) => ((bits >> s) & 0xffn).toString()).join('.');
}

function v6Text(bits: bigint): string {
  const groups = Array.from({ length: 8 }, (_, i) => ((bits >> BigInt(112 - 16 * i)) & 0xffffn).toString(16));
  return groups.join(':');
}

/**
 * Parses `10.0.0.0/8`, `2001:db8::/32`, or a bare address (one host). Throws a TypeError with
 * code ERR_INVALID_OPTION for anything else, including host bits set below the prefix.
 */
export function parseCidr(name: string, s: unknown): Cidr {
  const what = 'CIDRs such as `10.1.2.3/32` or `2001:db8::/32`, or addresses';
  if (typeof s !== 'string') throw expected(name, what, s);
  const [addr, prefixText, ...rest] = s.split('/');
  const family = isIPv4(addr) ? 4 : isIPv6(addr) && !addr.includes('%') ? 6 : 0;
  const max = family === 4 ? 32 : 128;
  if (family === 0 || rest.length > 0 || (prefixText !== undefined && !/^\d{1,3}$/.test(prefixText))) throw expected(name, what, s);
  const prefix = prefixText === undefined ? max : Number(prefixText);
  if (prefix > max) throw expected(name, `${what} (a prefix of at most ${max})`, s);
  const bits = family === 4 ? v4Bits(addr) : v6Bits(addr);
  const hostMask = (1n << BigInt(max - prefix)) - 1n;
  if ((bits & hostMask) !== 0n) throw expected(name, `${what}, without bits set below the prefix`, s);
  return { family, bits, prefix, text: `${family === 4 ? v4Text(bits) : v6Text(bits)}/${prefix}` };
}

export function parseCidrList(name: string, v: unknown): Cidr[] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) throw expected(name, 'an array of CIDRs', v);
  if (v.length > 4096) throw expected(name, 'at most 4,096 CIDRs', `${v.length} entries`);
  return v.map((s) => parseCidr(name, s));
}

export function resolveEgress(v: unknown): ResolvedEgress {
  if (v === undefined) return { allow: [], deny: [], stack: null };
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw expected('sandbox.egress', 'an object', v);
  const o = v as EgressOptions;
  for (const k of Object.keys(o)) {
    if (!['allow', 'deny', 'stack'].includes(k))
      throw Object.assign(new TypeError(`Unknown option \`sandbox.egress.${k}\`; known options are allow, deny, stack`), { code: 'ERR_INVALID_OPTION' });
  }
  if (o.stack !== undefined && o.stack !== 'pasta' && o.stack !== 'slirp4netns') throw expected('sandbox.egress.stack', "'pasta' or 'slirp4netns'", o.stack);
  return { allow: parseCidrList('sandbox.egress.allow', o.allow), deny: parseCidrList('sandbox.egress.deny', o.deny), stack: o.stack ?? null };
}

export function resolveDns(v: unknown): string[] {
  if (v === undefined) return [...defaultDns];
  const what = 'an array of 1 to 3 IP addresses (resolvers)';
  if (!Array.isArray(v) || v.length < 1 || v.length > 3) throw expected('sandbox.dns', what, v);
  for (const a of v) if (typeof a !== 'string' || !(isIPv4(a) || isIPv6(a)) || a.includes('%')) throw expected('sandbox.dns', what, a);
  return [...v];
}

// --- the programs ------------------------------------------------------------------------------

const searchDirs = ['/usr/bin', '/usr/sbin', '/bin', '/sbin', '/usr/local/bin', '/usr/local/sbin'];

function which(name: string): string | null {
  for (const d of searchDirs) if (existsSync(`${d}/${name}`)) return `${d}/${name}`;
  return null;
}

export interface EgressTools {
  stack: EgressStackName;
  stackPath: string;
  nftPath: string;
}

/** The Debian packages that provide each program. */
export const egressPackages = { pasta: 'passt', slirp4netns: 'slirp4netns', nft: 'nftables' } as const;

/** What this host has for egress: the stack (`preferred`, else pasta, else slirp4netns) and nft; or what is missing. */
export function findEgressTools(preferred: EgressStackName | null): EgressTools | { missing: string } {
  const nftPath = which('nft');
  const order: EgressStackName[] = preferred ? [preferred] : ['pasta', 'slirp4netns'];
  const found = order.map((s) => ({ stack: s, path: which(s) })).find((s) => s.path !== null);
  const wanted = preferred ? `${preferred} (Debian package ${egressPackages[preferred]})` : 'pasta (Debian package passt) or slirp4netns';
  const missing = [...(found ? [] : [wanted]), ...(nftPath ? [] : ['nft (Debian package nftables)'])];
  if (missing.length > 0 || !found || !nftPath) {
    const packages = [...(found ? [] : [preferred ? egressPackages[preferred] : 'passt']), ...(nftPath ? [] : ['nftables'])];
    return {
      missing: `sandbox.network 'egress' needs ${missing.join(' and ')}, which this host lacks (looked in ${searchDirs.join(', ')}): apt-get install ${packages.join(' ')}`,
    };
  }
  return { stack: found.stack, stackPath: found.path!, nftPath };
}

/**
 * The stack's command line. The intermediate gives it the job's network namespace as fd 5, a pipe
 * as fd 3, on which it reports ready, and (slirp4netns) the read end of a pipe as fd 4, whose EOF
 * ends it. It runs in the job's user namespace as the job's ids, outside its network namespace,
 * with CAP_NET_ADMIN and CAP_SYS_ADMIN there (for the tap device and its addresses).
 */
export function stackArgv(t: EgressTools): string[] {
  if (t.stack === 'pasta') {
    return [
      t.stackPath,
      '--quiet',
      '--foreground',
      // Addresses and routes copied from the host's interface, and the interface up, before ready.
      '--config-net',
      // The gateway's address is an ordinary remote address, not the host's loopback.
      '--no-map-gw',
      // Nothing forwarded in either direction: no inbound ports, and no port on the job's loopback
      // that leads to the host's.
      '-t',
      'none',
      '-u',
      'none',
      '-T',
      'none',
      '-U',
      'none',
      '--no-dhcp',
      '--no-dhcpv6',
      '--no-ra',
      '--pid',
      '/proc/self/fd/3',
      '--netns',
      '/proc/self/fd/5',
    ];
  }
  return [
    t.stackPath,
    '--configure',
    '--mtu=65520',
    // 10.0.2.2 is an ordinary (refused) address, not the host's loopback; no built-in resolver.
    '--disable-host-loopback',
    '--disable-dns',
    // A seccomp filter, as pasta has by itself. (Not --enable-sandbox: it needs root mapped in the
    // job's user namespace, where only the job's ids are.)
    '--enable-seccomp',
    '--ready-fd=3',
    '--exit-fd=4',
    '--netns-type=path',
    '/proc/self/fd/5',
    'tap0',
  ];
}

// --- the firewall --------------------------------------------------------------------------------

/** Addresses of this host's interfaces (the namespace the stack connects from): never reachable either. */
export function hostAddresses(): Cidr[] {
  const out: Cidr[] = [];
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) {
      if (a.family === 'IPv6' && a.address.includes('%')) continue;
      out.push(parseCidr('host address', a.address));
    }
  }
  return out;
}

function set(name: string, family: 4 | 6, cidrs: Cidr[]): string {
  const type = family === 4 ? 'ipv4_addr' : 'ipv6_addr';
  return `  set ${name} { type ${type}; flags interval; auto-merge; elements = { ${cidrs.map((c) => c.text).join(', ')} } }\n`;
}

/**
 * The job's nftables ruleset, in order: `deny` refused, `allow` accepted, then the refused ranges
 * and the host's addresses refused; everything else goes out. A refused TCP connect gets a reset
 * (ECONNREFUSED at once), anything else an ICMP "administratively prohibited" (UDP sends fail
 * with EPERM at once). The resets that answer the job's own loopback are let through, or a
 * refused connect to 127.0.0.1 would wait for its timeout.
 */
export function firewallRuleset(egress: ResolvedEgress, host: Cidr[]): string {
  const refused = [...refusedRanges.map((r) => parseCidr('refusedRanges', r)), ...host];
  const sets: string[] = [];
  const rules: string[] = ['    oifname "lo" tcp flags & rst == rst accept'];
  const add = (name: string, cidrs: Cidr[], verdict: string) => {
    for (const family of [4, 6] as const) {
      const of = cidrs.filter((c) => c.family === family);
      if (of.length === 0) continue;
      sets.push(set(`${name}${family}`, family, of));
      rules.push(`    ${family === 4 ? 'ip' : 'ip6'} daddr @${name}${family} ${verdict}`);
    }
  };
  add('denied', egress.deny, 'goto refuse');
  add('allowed', egress.allow, 'accept');
  add('refused', refused, 'goto refuse');
  return [
    'table inet nodespawner {\n',
    ...sets,
    '  chain refuse {\n    meta l4proto tcp reject with tcp reset\n    reject with icmpx type admin-prohibited\n  }\n',
    '  chain output {\n    type filter hook output priority 0; policy accept;\n',
    ...rules.map((r) => `${r}\n`),
    '  }\n}\n',
  ].join('');
}

// --- the job's /etc ------------------------------------------------------------------------------

export function resolvConf(dns: string[]): string {
  return `${dns.map((a) => `nameserver ${a}\n`).join('')}options edns0\n`;
}

/** The job's /etc/hosts: localhost and its own hostname, none of the host's entries. */
export function etcHosts(hostname: string): string {
  return `127.0.0.1\tlocalhost ${hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n`;
}
