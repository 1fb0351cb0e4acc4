/**
 * One lab cell's topology, all inside namespaces this run creates (interfaces are created
 * directly in their namespaces, so nothing ever appears in the root namespace):
 *
 *   container (192.0.2.2) ─ veth ─ [bridge 192.0.2.1] client-host [uplink 198.51.100.1] ─ veth ─ server (198.51.100.2)
 *                                   MASQUERADE 192.0.2.0/24, ip_forward=1, conntrack
 *
 * The server namespace has no firewall and no conntrack: like the seed's server host, it does not
 * discard anything itself.
 */
import { InternalError } from '../errors.js';
import { requireTool, run } from '../host/exec.js';
import { sysctlScript } from '../host/sysctl.js';
import { parseConntrackStatsText } from '../inspect/conntrack.js';
import type { Mitigation } from './mitigations.js';
import { LAB_PREFIX } from './state.js';
import { TIME_SCALE } from './timing.js';

export const ADDR = {
  container: '192.0.2.2',
  bridge: '192.0.2.1',
  containerNet: '192.0.2.0/24',
  hostUplink: '198.51.100.1',
  server: '198.51.100.2',
} as const;

/** The same topology over IPv6 (RFC 3849 documentation prefix), /64s, ip6tables MASQUERADE. */
export const ADDR6 = {
  container: '2001:db8:2::2',
  bridge: '2001:db8:2::1',
  containerNet: '2001:db8:2::/64',
  hostUplink: '2001:db8:3::1',
  server: '2001:db8:3::2',
} as const;

/** The addresses of a cell of this IP family. */
export function addrOf(family: 4 | 6): { container: string; bridge: string; containerNet: string; hostUplink: string; server: string } {
  return family === 6 ? ADDR6 : ADDR;
}

export { MITIGATIONS, MITIGATION_HELP, type Mitigation } from './mitigations.js';

export interface CellNamespaces {
  container: string;
  host: string;
  server: string;
  /** The client host's interfaces, named per run and cell: every kernel log line names one
   * (IN=/OUT=), which attributes it to this cell even when several lab runs share the kernel. */
  bridge: string;
  uplink: string;
  vethHost: string;
}

/** Interface-name stems of lab interfaces (≤ 15 characters: 3 + 6-hex run + 2-digit cell). */
export const LAB_IFACE_RE = /^ct[abudvwy][0-9a-f]{6}\d{2}$/;

export function cellNamespaces(run: string, cell: number): CellNamespaces {
  const base = `${LAB_PREFIX}${run}-${cell}`;
  const id = `${run}${String(cell).padStart(2, '0')}`;
  return { container: `${base}-c`, host: `${base}-h`, server: `${base}-s`, bridge: `ctb${id}`, uplink: `ctu${id}`, vethHost: `ctv${id}` };
}

/** An iptables-restore document with the nat and filter tables' built-in chains and the given rules. */
export function iptablesRuleset(nat: string[], filter: string[]): string {
  return [
    '*nat', ':PREROUTING ACCEPT [0:0]', ':INPUT ACCEPT [0:0]', ':OUTPUT ACCEPT [0:0]', ':POSTROUTING ACCEPT [0:0]', ...nat, 'COMMIT',
    '*filter', ':INPUT ACCEPT [0:0]', ':FORWARD ACCEPT [0:0]', ':OUTPUT ACCEPT [0:0]', ...filter, 'COMMIT', '',
  ].join('\n');
}

/** The client-host's rules: NAT like docker0, plus the mitigation under test. */
export function hostRuleset(m: Mitigation, bridge = 'br0', family: 4 | 6 = 4): string {
  const nat = [`-A POSTROUTING -s ${addrOf(family).containerNet} ! -o ${bridge} -m comment --comment ctprobe-lab -j MASQUERADE`];
  const filter: string[] = [];
  if (m === 'drop-input') {
    // libnetwork PR 2275 style: a chain jumped to from INPUT.
    filter.push(
      ':CTPROBE-INVALID - [0:0]',
      '-A INPUT -m comment --comment ctprobe-lab -j CTPROBE-INVALID',
      '-A CTPROBE-INVALID -m conntrack --ctstate INVALID -m comment --comment ctprobe-lab -j DROP',
      '-A CTPROBE-INVALID -j RETURN',
    );
  } else if (m === 'drop-forward') {
    // kube-proxy style (KUBE-FORWARD).
    filter.push('-A FORWARD -m conntrack --ctstate INVALID -m comment --comment ctprobe-lab -j DROP');
  }
  return iptablesRuleset(nat, filter);
}

function hostSysctls(m: Mitigation, family: 4 | 6): Record<string, number> {
  return { [family === 6 ? 'net.ipv6.conf.all.forwarding' : 'net.ipv4.ip_forward']: 1, nf_conntrack_log_invalid: 6, nf_conntrack_tcp_be_liberal: m === 'be-liberal' ? 1 : 0 };
}

/** `CMD` with `body` as its standard input (a quoted here-document: nothing in it is expanded), `then` after it on its line (`&`). */
function withInput(cmd: string, body: string[], then = ''): string {
  const text = body.join('\n');
  if (/^CTPROBE_EOF$/m.test(text)) throw new InternalError('here-document body contains its delimiter');
  return `${cmd} <<'CTPROBE_EOF'${then}\n${text}\nCTPROBE_EOF`;
}

/**
 * The shell script that builds a cell: one `ip -batch` for the namespaces and links, then at the
 * same time one `ip -batch` per namespace for its addresses and routes, and in the NAT host its
 * rules (`iptables-restore`), its sysctls and the INVALID counter the cell starts from
 * (`conntrack -S`, the script's only output). A failed step names itself on stderr; the script
 * exits with the first failure's status.
 */
export function cellScript(ns: CellNamespaces, m: Mitigation, family: 4 | 6 = 4): string {
  const A = addrOf(family);
  const [plen, nodad] = family === 6 ? [64, ' nodad'] : [24, ''];
  const ip = requireTool('ip');
  // the rules and sysctls do not need the links: set them up at the same time (rules first: on a
  // fresh kernel they load nf_conntrack, which creates the net.netfilter sysctls)
  const hostRules = `${requireTool(family === 6 ? 'ip6tables-restore' : 'iptables-restore')} && ${sysctlScript(hostSysctls(m, family))} && { ${requireTool('conntrack')} -S || true; }`;
  if (hostRules.includes("'")) throw new InternalError('quote in the NAT host script');
  // The cell is up when the container's bridge port forwards (a definite state, not a delay).
  const forwarding = `${ip} -n ${ns.host} -d link show dev ${ns.vethHost} | grep -q 'state forwarding'`;
  const untilForwarding = `i=0; until ${forwarding}; do i=$((i+1)); if [ $i -ge ${500 * TIME_SCALE} ]; then echo 'bridge port ${ns.vethHost} not forwarding after ${5 * TIME_SCALE} s' >&2; exit 1; fi; sleep 0.01; done`;
  const jobs: Array<[string, string[], string, string?]> = [
    [`${ip} -n ${ns.container} -batch -`, ['link set lo up', 'link set eth0 up', `addr add ${A.container}/${plen} dev eth0${nodad}`, `route add default via ${A.bridge}`], `ip -n ${ns.container} -batch (container addresses)`],
    [`${ip} -n ${ns.server} -batch -`, ['link set lo up', 'link set eth0 up', `addr add ${A.server}/${plen} dev eth0${nodad}`], `ip -n ${ns.server} -batch (server addresses)`],
    [
      `${ip} -n ${ns.host} -batch -`, [
        'link set lo up',
        `link add ${ns.bridge} type bridge forward_delay 0 stp_state 0`,
        `link set ${ns.vethHost} master ${ns.bridge}`,
        `addr add ${A.bridge}/${plen} dev ${ns.bridge}${nodad}`,
        `addr add ${A.hostUplink}/${plen} dev ${ns.uplink}${nodad}`,
        `link set ${ns.bridge} up`,
        `link set ${ns.vethHost} up`,
        `link set ${ns.uplink} up`,
      ],
      `ip -n ${ns.host} -batch (NAT host links and addresses)`,
      ` && { ${untilForwarding}; }`,
    ],
    [`${ip} netns exec ${ns.host} sh -c '${hostRules}'`, hostRuleset(m, ns.bridge, family).trimEnd().split('\n'), `NAT host rules, sysctls, conntrack -S (in ${ns.host})`],
  ];
  return [
    withInput(`${ip} -batch -`, [
      ...[ns.container, ns.host, ns.server].map((n) => `netns add ${n}`),
      // The NAT host's ends get indexes their peers cannot have (each peer is 2, the first link
      // of its namespace). Were they equal, the kernel would take the veth for a physical device
      // (ifindex == iflink) and apply its carrier change only at linkwatch's next 1-per-second
      // run: the bridge port stays disabled meanwhile and drops the client's first SYN (a 1 s
      // retransmission, in most NATed cells when the client started at once).
      `link add ${ns.vethHost} netns ${ns.host} index 10 type veth peer name eth0 netns ${ns.container}`,
      `link add ${ns.uplink} netns ${ns.host} index 11 type veth peer name eth0 netns ${ns.server}`,
    ]),
    `rc=$?; if [ $rc -ne 0 ]; then echo 'ip -batch (namespaces and links) failed' >&2; exit $rc; fi`,
    ...jobs.map(([cmd, body, , then = ''], i) => `${withInput(cmd, body, `${then} &`)}\np${i}=$!`),
    'rc=0',
    ...jobs.map(([, , what], i) => `wait $p${i} || { s=$?; echo '${what} failed' >&2; [ $rc -ne 0 ] || rc=$s; }`),
    'exit $rc',
    '',
  ].join('\n');
}

/**
 * Create the cell's namespaces, links, addresses, NAT and mitigation with one spawn of the lab's
 * own (a shell running `cellScript`: 4 `ip -batch`, `iptables-restore`, `conntrack -S`; a node
 * process forks slowly and waits for its child's exec, so its spawns are what costs). Returns the
 * INVALID counter the cell starts from (null: unreadable).
 */
export async function createCell(ns: CellNamespaces, m: Mitigation, family: 4 | 6 = 4): Promise<number | null> {
  const r = await run('sh', ['-s'], { input: cellScript(ns, m, family) });
  try {
    return parseConntrackStatsText(r.stdout).totals.invalid ?? 0;
  } catch {
    return null;
  }
}
