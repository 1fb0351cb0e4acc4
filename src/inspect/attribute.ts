/**
 * Which network namespace (and pod) a kernel invalid-packet line belongs to. The kernel does not
 * say: with nf_log_all_netns=1 every namespace's lines land in one log, naming only interfaces
 * (IN=/OUT=, per-namespace names: every pod has an eth0) and addresses. So, from the namespaces'
 * interface tables: the namespaces with an interface of that name; if several, those holding SRC
 * or DST (then those whose subnet holds one: forwarded packets); if still several, the caller may
 * ask the sockets (addresses/ports → socket owner). A line logged on a host-side veth also names
 * the pod at the other end (its peer: ifindex ↔ link index).
 */
import type { InvalidLogEvent } from './kernlog.js';

export interface IfaceView {
  name: string;
  ifindex: number;
  /** The peer's ifindex (veth), in another namespace when `linkNetnsid` is set. */
  link: number | null;
  linkNetnsid: number | null;
  /** Addresses with their prefix length ("192.0.2.1/24"). */
  addrs: string[];
}

export interface NetnsView {
  /** The namespace's label (an `ip netns` name, "host", or its inode). */
  netns: string;
  pod: string | null;
  ifaces: IfaceView[];
}

export type AttributedBy = 'interface' | 'address' | 'subnet' | 'socket' | 'ambiguous' | 'none';

export interface Attribution {
  netns: string | null;
  pod: string | null;
  by: AttributedBy;
  /** Candidates left when ambiguous (for the socket check). */
  candidates: NetnsView[];
  /** Logged on a host-side veth: the namespace at its other end. */
  peerNetns: string | null;
}

/** A bounded label for a kernel reason: the numbers that change per packet (≥ 3 digits) become N. */
export function reasonLabel(reason: string | null): string {
  if (!reason) return '';
  return reason.replace(/\d{3,}/g, 'N').slice(0, 96);
}

function v4(a: string): number | null {
  const m = /^(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(a);
  return m ? ((Number(m[1]) << 24) | (Number(m[2]) << 16) | (Number(m[3]) << 8) | Number(m[4])) >>> 0 : null;
}

function inSubnet(addr: string, cidr: string): boolean {
  const [net, len] = cidr.split('/');
  const a = v4(addr);
  const n = v4(net ?? '');
  const l = Number(len);
  if (a === null || n === null || !(l > 0)) return false;
  const mask = l >= 32 ? 0xffffffff : (0xffffffff << (32 - l)) >>> 0;
  return (a & mask) === (n & mask);
}

const bare = (cidr: string) => cidr.split('/')[0]!;

/** The namespace at the other end of a veth: the one interface whose pair of indexes mirrors it. */
function peerOf(view: NetnsView, iface: IfaceView, views: NetnsView[]): NetnsView | null {
  if (iface.link === null || iface.linkNetnsid === null) return null;
  const hits = views.filter((v) => v !== view && v.ifaces.some((i) => i.ifindex === iface.link && i.link === iface.ifindex && i.linkNetnsid !== null));
  return hits.length === 1 ? hits[0]! : null;
}

/**
 * `confirm`: the views are not all of the node's namespaces (one watched target), so a name match
 * alone proves nothing (the host has a lo and an eth0 too): an address or subnet must agree.
 */
export function attributeLine(e: Pick<InvalidLogEvent, 'in' | 'out' | 'physIn' | 'physOut' | 'src' | 'dst'>, views: NetnsView[], confirm = false): Attribution {
  const names = [e.in, e.out, e.physIn, e.physOut].filter((n): n is string => Boolean(n));
  let cands = names.length ? views.filter((v) => names.every((n) => v.ifaces.some((i) => i.name === n))) : views;
  let by: AttributedBy = names.length ? 'interface' : 'none';
  // loopback addresses are in every namespace: they tell nothing apart (sockets may)
  const addrs = [e.src, e.dst].filter((a): a is string => Boolean(a) && !/^(127\.|::1$)/.test(a!));
  const onNamed = (v: NetnsView) => (names.length ? v.ifaces.filter((i) => names.includes(i.name)) : v.ifaces);
  if (addrs.length && (cands.length > 1 || confirm)) {
    const exact = cands.filter((v) => onNamed(v).some((i) => i.addrs.some((c) => addrs.includes(bare(c)))));
    if (exact.length >= 1) [cands, by] = [exact, 'address'];
    else {
      const subnet = cands.filter((v) => onNamed(v).some((i) => i.addrs.some((c) => addrs.some((a) => inSubnet(a, c)))));
      if (subnet.length >= 1) [cands, by] = [subnet, 'subnet'];
    }
  }
  // unconfirmed: ambiguous (the caller may ask the sockets), not this namespace's by default
  if (confirm && cands.length && by !== 'address' && by !== 'subnet') return { netns: null, pod: null, by: 'ambiguous', candidates: cands, peerNetns: null };
  if (cands.length !== 1) return { netns: null, pod: null, by: cands.length ? 'ambiguous' : 'none', candidates: cands, peerNetns: null };
  const view = cands[0]!;
  let pod = view.pod;
  let peerNetns: string | null = null;
  for (const n of names) {
    const iface = view.ifaces.find((i) => i.name === n);
    const peer = iface ? peerOf(view, iface, views) : null;
    if (peer) {
      peerNetns = peer.netns;
      pod ??= peer.pod;
    }
  }
  return { netns: view.netns, pod, by, candidates: cands, peerNetns };
}
