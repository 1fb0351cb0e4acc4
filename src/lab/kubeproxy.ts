/**
 * The rules kube-proxy writes for one Service, as text for iptables-restore / nft -f, per version.
 * Rule texts follow kube-proxy's own source (kubernetes/kubernetes pkg/proxy/iptables/proxier.go and
 * pkg/proxy/nftables/proxier.go) for the versions named below; only the parts that a ClusterIP +
 * NodePort Service with one endpoint and the INVALID handling need are written.
 *
 *   v1.13   iptables, before PR 74840: KUBE-FORWARD has no INVALID drop.
 *   v1.15   iptables, PR 74840 (commit a07169bc, "kube-proxy: Drop packets in INVALID state"):
 *           `-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP` first in KUBE-FORWARD.
 *   v1.29+  iptables, PR 120412: the same rule, written only when nf_conntrack_tcp_be_liberal is 0
 *           at kube-proxy's start (v1.30+ adds `-m nfacct --nfacct-name ct_state_invalid_dropped_pkts`
 *           when that counter exists; without it the rule is the one written here). KUBE-EXT-…
 *           chains, KUBE-POSTROUTING with RETURN / MARK / MASQUERADE --random-fully.
 *   nftables v1.30+ (PR 122663): table `kube-proxy`, `ct state invalid drop` in chain `forward`
 *           (jumped to from `filter-forward`, hook forward priority -101), also skipped when
 *           be_liberal is on.
 */
import { createHash } from 'node:crypto';
import { iptablesRuleset } from './topology.js';

export type KubeProxyVersion = 'v1.13' | 'v1.15' | 'v1.29';

export interface ServiceSpec {
  family: 4 | 6;
  /** namespace/name of the Service (port name empty, as in anfernee's boom-server). */
  name: string;
  clusterIP: string;
  port: number;
  nodePort: number;
  endpoint: { ip: string; port: number };
  /** kube-proxy --cluster-cidr (pod traffic from inside it is not masqueraded to a ClusterIP). */
  clusterCIDR: string;
}

const MASQ_MARK = '0x4000';
const DROP_MARK = '0x8000';

function base32(buf: Buffer): string {
  const abc = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = 0;
  let value = 0;
  let out = '';
  for (const b of buf) {
    value = (value << 8) | b;
    bits += 8;
    while (bits >= 5) {
      out += abc[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += abc[(value << (5 - bits)) & 31];
  return out;
}

/** kube-proxy's chain-name hash: base32(sha256(servicePortName + protocol [+ endpoint])). */
function chainHash(...parts: string[]): string {
  return base32(createHash('sha256').update(parts.join('')).digest());
}

const host = (s: ServiceSpec, ip: string) => `${ip}/${s.family === 4 ? 32 : 128}`;
const endpointText = (s: ServiceSpec) => (s.family === 4 ? `${s.endpoint.ip}:${s.endpoint.port}` : `[${s.endpoint.ip}]:${s.endpoint.port}`);

/** The user's own fix in the mirror image of Docker 1090: an INVALID drop reached from INPUT only. */
export const INPUT_DROP_RULES = [
  ':CTPROBE-INVALID - [0:0]',
  '-A INPUT -m comment --comment ctprobe-lab -j CTPROBE-INVALID',
  '-A CTPROBE-INVALID -m conntrack --ctstate INVALID -m comment --comment ctprobe-lab -j DROP',
  '-A CTPROBE-INVALID -j RETURN',
];

/**
 * iptables-restore input for one node, as kube-proxy of `version` writes it (iptables mode).
 * `beLiberal`: nf_conntrack_tcp_be_liberal when kube-proxy started (v1.29+ then skips the drop).
 */
export function kubeProxyIptables(s: ServiceSpec, version: KubeProxyVersion, o: { beLiberal: boolean; inputDrop?: boolean }): string {
  const svc = `KUBE-SVC-${chainHash(s.name, 'tcp').slice(0, 16)}`;
  const ext = `KUBE-EXT-${chainHash(s.name, 'tcp').slice(0, 16)}`;
  const sep = `KUBE-SEP-${chainHash(s.name, 'tcp', endpointText(s)).slice(0, 16)}`;
  const modern = version === 'v1.29';
  const c = (text: string) => `-m comment --comment "${text}"`;
  const nat: string[] = [
    ':KUBE-MARK-MASQ - [0:0]', ':KUBE-NODEPORTS - [0:0]', ':KUBE-POSTROUTING - [0:0]', ':KUBE-SERVICES - [0:0]', `:${svc} - [0:0]`, `:${sep} - [0:0]`,
    ...(modern ? [`:${ext} - [0:0]`] : [':KUBE-MARK-DROP - [0:0]']),
    `-A PREROUTING ${c('kubernetes service portals')} -j KUBE-SERVICES`,
    `-A OUTPUT ${c('kubernetes service portals')} -j KUBE-SERVICES`,
    `-A POSTROUTING ${c('kubernetes postrouting rules')} -j KUBE-POSTROUTING`,
    `-A KUBE-MARK-MASQ -j MARK --set-xmark ${MASQ_MARK}/${MASQ_MARK}`,
  ];
  const clusterIP = `-d ${host(s, s.clusterIP)} -p tcp ${c(`${s.name}${modern ? '' : ':'} cluster IP`)} -m tcp --dport ${s.port}`;
  if (modern) {
    nat.push(
      `-A KUBE-POSTROUTING -m mark ! --mark ${MASQ_MARK}/${MASQ_MARK} -j RETURN`,
      `-A KUBE-POSTROUTING -j MARK --set-xmark ${MASQ_MARK}/0x0`,
      `-A KUBE-POSTROUTING ${c('kubernetes service traffic requiring SNAT')} -j MASQUERADE --random-fully`,
      `-A KUBE-NODEPORTS -p tcp ${c(s.name)} -m tcp --dport ${s.nodePort} -j ${ext}`,
      `-A ${ext} ${c(`masquerade traffic for ${s.name} external destinations`)} -j KUBE-MARK-MASQ`,
      `-A ${ext} -j ${svc}`,
      `-A KUBE-SERVICES ${clusterIP} -j ${svc}`,
      `-A KUBE-SERVICES ${c('kubernetes service nodeports; NOTE: this must be the last rule in this chain')} -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS`,
      `-A ${svc} ! -s ${s.clusterCIDR} ${clusterIP} -j KUBE-MARK-MASQ`,
      `-A ${svc} ${c(`${s.name} -> ${endpointText(s)}`)} -j ${sep}`,
      `-A ${sep} -s ${host(s, s.endpoint.ip)} ${c(s.name)} -j KUBE-MARK-MASQ`,
      `-A ${sep} -p tcp ${c(s.name)} -m tcp -j DNAT --to-destination ${endpointText(s)}`,
    );
  } else {
    nat.push(
      `-A KUBE-MARK-DROP -j MARK --set-xmark ${DROP_MARK}/${DROP_MARK}`,
      `-A KUBE-POSTROUTING ${c('kubernetes service traffic requiring SNAT')} -m mark --mark ${MASQ_MARK}/${MASQ_MARK} -j MASQUERADE`,
      `-A KUBE-NODEPORTS -p tcp ${c(`${s.name}:`)} -m tcp --dport ${s.nodePort} -j KUBE-MARK-MASQ`,
      `-A KUBE-NODEPORTS -p tcp ${c(`${s.name}:`)} -m tcp --dport ${s.nodePort} -j ${svc}`,
      `-A KUBE-SERVICES ! -s ${s.clusterCIDR} ${clusterIP} -j KUBE-MARK-MASQ`,
      `-A KUBE-SERVICES ${clusterIP} -j ${svc}`,
      `-A KUBE-SERVICES ${c('kubernetes service nodeports; NOTE: this must be the last rule in this chain')} -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS`,
      `-A ${svc} ${c(`${s.name}:`)} -j ${sep}`,
      `-A ${sep} -s ${host(s, s.endpoint.ip)} ${c(`${s.name}:`)} -j KUBE-MARK-MASQ`,
      `-A ${sep} -p tcp ${c(`${s.name}:`)} -m tcp -j DNAT --to-destination ${endpointText(s)}`,
    );
  }
  const invalidDrop = version === 'v1.15' || (version === 'v1.29' && !o.beLiberal);
  const filter: string[] = [':KUBE-EXTERNAL-SERVICES - [0:0]', ':KUBE-FORWARD - [0:0]', ':KUBE-SERVICES - [0:0]'];
  if (modern) {
    filter.push(
      ':KUBE-NODEPORTS - [0:0]', ':KUBE-PROXY-CANARY - [0:0]', ':KUBE-PROXY-FIREWALL - [0:0]',
      `-A INPUT -m conntrack --ctstate NEW ${c('kubernetes load balancer firewall')} -j KUBE-PROXY-FIREWALL`,
      `-A INPUT ${c('kubernetes health check service ports')} -j KUBE-NODEPORTS`,
      `-A INPUT -m conntrack --ctstate NEW ${c('kubernetes externally-visible service portals')} -j KUBE-EXTERNAL-SERVICES`,
      `-A FORWARD -m conntrack --ctstate NEW ${c('kubernetes load balancer firewall')} -j KUBE-PROXY-FIREWALL`,
      `-A FORWARD ${c('kubernetes forwarding rules')} -j KUBE-FORWARD`,
      `-A FORWARD -m conntrack --ctstate NEW ${c('kubernetes service portals')} -j KUBE-SERVICES`,
      `-A FORWARD -m conntrack --ctstate NEW ${c('kubernetes externally-visible service portals')} -j KUBE-EXTERNAL-SERVICES`,
      `-A OUTPUT -m conntrack --ctstate NEW ${c('kubernetes load balancer firewall')} -j KUBE-PROXY-FIREWALL`,
      `-A OUTPUT -m conntrack --ctstate NEW ${c('kubernetes service portals')} -j KUBE-SERVICES`,
      ...(invalidDrop ? ['-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP'] : []),
      `-A KUBE-FORWARD ${c('kubernetes forwarding rules')} -m mark --mark ${MASQ_MARK}/${MASQ_MARK} -j ACCEPT`,
      `-A KUBE-FORWARD ${c('kubernetes forwarding conntrack rule')} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT`,
    );
  } else {
    filter.push(
      ':KUBE-FIREWALL - [0:0]',
      `-A INPUT -m conntrack --ctstate NEW ${c('kubernetes externally-visible service portals')} -j KUBE-EXTERNAL-SERVICES`,
      '-A INPUT -j KUBE-FIREWALL',
      `-A FORWARD ${c('kubernetes forwarding rules')} -j KUBE-FORWARD`,
      `-A OUTPUT -m conntrack --ctstate NEW ${c('kubernetes service portals')} -j KUBE-SERVICES`,
      '-A OUTPUT -j KUBE-FIREWALL',
      `-A KUBE-FIREWALL ${c('kubernetes firewall for dropping marked packets')} -m mark --mark ${DROP_MARK}/${DROP_MARK} -j DROP`,
      ...(invalidDrop ? ['-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP'] : []),
      `-A KUBE-FORWARD ${c('kubernetes forwarding rules')} -m mark --mark ${MASQ_MARK}/${MASQ_MARK} -j ACCEPT`,
      `-A KUBE-FORWARD -s ${s.clusterCIDR} ${c('kubernetes forwarding conntrack pod source rule')} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT`,
      `-A KUBE-FORWARD -d ${s.clusterCIDR} ${c('kubernetes forwarding conntrack pod destination rule')} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT`,
    );
  }
  if (o.inputDrop) filter.push(...INPUT_DROP_RULES);
  return iptablesRuleset(nat, filter);
}

/** An `nft -f` script for one node, as kube-proxy v1.30+ writes it in nftables mode. */
export function kubeProxyNft(s: ServiceSpec, o: { beLiberal: boolean }): string {
  const fam = s.family === 4 ? 'ip' : 'ip6';
  const addrType = s.family === 4 ? 'ipv4_addr' : 'ipv6_addr';
  const noLocalhost = s.family === 4 ? 'ip daddr != 127.0.0.0/8' : 'ip6 daddr != ::1';
  const t = `${fam} kube-proxy`;
  const base = `${chainHash(s.name, 'tcp').slice(0, 8)}-${s.name}/tcp/`;
  const svc = `service-${base}`;
  const ext = `external-${base}`;
  const ep = `endpoint-${chainHash(s.name, 'tcp', endpointText(s)).slice(0, 8)}-${s.name}/tcp/__${s.endpoint.ip.replace(/:/g, '.')}/${s.endpoint.port}`; // ':' is not legal in a chain name: kube-proxy writes '.'
  const q = (chain: string) => chain;
  const lines = [
    `add table ${t} { comment "rules for kube-proxy" ; }`,
    `add chain ${t} filter-input { type filter hook input priority -101 ; }`,
    `add chain ${t} filter-forward { type filter hook forward priority -101 ; }`,
    `add chain ${t} filter-output { type filter hook output priority -101 ; }`,
    `add chain ${t} nat-prerouting { type nat hook prerouting priority -100 ; }`,
    `add chain ${t} nat-output { type nat hook output priority -100 ; }`,
    `add chain ${t} nat-postrouting { type nat hook postrouting priority 100 ; }`,
    ...['forward', 'services', 'masquerading', 'mark-for-masquerade', q(svc), q(ext), q(ep)].map((c) => `add chain ${t} ${c}`),
    `add rule ${t} filter-forward jump forward`,
    `add rule ${t} nat-output jump services`,
    `add rule ${t} nat-prerouting jump services`,
    `add rule ${t} nat-postrouting jump masquerading`,
    `add rule ${t} mark-for-masquerade mark set mark or ${MASQ_MARK}`,
    `add rule ${t} masquerading mark and ${MASQ_MARK} == 0 return`,
    `add rule ${t} masquerading mark set mark xor ${MASQ_MARK}`,
    `add rule ${t} masquerading masquerade fully-random`,
    ...(o.beLiberal ? [] : [`add rule ${t} forward ct state invalid drop`]),
    `add map ${t} service-ips { type ${addrType} . inet_proto . inet_service : verdict ; comment "ClusterIP, ExternalIP and LoadBalancer IP traffic" ; }`,
    `add map ${t} service-nodeports { type inet_proto . inet_service : verdict ; comment "NodePort traffic" ; }`,
    `add rule ${t} services ${fam} daddr . meta l4proto . th dport vmap @service-ips`,
    `add rule ${t} services fib daddr type local ${noLocalhost} meta l4proto . th dport vmap @service-nodeports`,
    `add rule ${t} ${q(svc)} ${fam} daddr ${s.clusterIP} tcp dport ${s.port} ${fam} saddr != ${s.clusterCIDR} jump mark-for-masquerade`,
    `add rule ${t} ${q(svc)} numgen random mod 1 vmap { 0 : goto ${q(ep)} }`,
    `add rule ${t} ${q(ext)} jump mark-for-masquerade`,
    `add rule ${t} ${q(ext)} goto ${q(svc)}`,
    `add rule ${t} ${q(ep)} ${fam} saddr ${s.endpoint.ip} jump mark-for-masquerade`,
    `add rule ${t} ${q(ep)} meta l4proto tcp dnat to ${endpointText(s)}`,
    `add element ${t} service-ips { ${s.clusterIP} . tcp . ${s.port} : goto ${q(svc)} }`,
    `add element ${t} service-nodeports { tcp . ${s.nodePort} : goto ${q(ext)} }`,
  ];
  return lines.join('\n') + '\n';
}
