/**
 * Scenario `k8s-service`: Kubernetes 74839 as a node sees it. Two nodes (namespaces) with a pod
 * bridge each, routed to each other (no overlay), both running the rules kube-proxy writes for one
 * Service (a ClusterIP and a NodePort) whose endpoint is the server pod on node B:
 *
 *   client pod ─ veth ─ [bridge] node A [uplink] ─ veth ─ [uplink] node B [bridge] ─ veth ─ server pod
 *                        kube-proxy rules, conntrack          kube-proxy rules, conntrack    (ctprobe server)
 *
 * The client pod connects to the ClusterIP (DNAT only: an INVALID reply is forwarded to the pod,
 * which resets) or to node A's NodePort (DNAT + masquerade: an INVALID reply is addressed to node
 * A itself, whose stack resets — Docker 1090 inside Kubernetes). Who sent the RST is read from a
 * capture on node A: an RST arriving from the pod's veth was sent by the pod; one that only leaves
 * the uplink was sent by the node.
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { forEachPacket } from '../capture/reader.js';
import { LabError } from '../errors.js';
import type { WireEvent } from '../events.js';
import { requireTool, run } from '../host/exec.js';
import { writeSysctlsIn } from '../host/sysctl.js';
import { ipv4ToString, ipv6ToString } from '../packet/address.js';
import { decodeIp, isPacketError } from '../packet/ip.js';
import { decodeTcp, TCP_RST } from '../packet/tcp.js';
import { expectedK8s, type ResetBy } from './expect.js';
import { kubeProxyIptables, kubeProxyNft, type ServiceSpec } from './kubeproxy.js';
import { DEFAULT_TIMING, type CellTiming } from './oow.js';
import { cellResult, type LabCellResult, type LabContext, type Scenario } from './scenario.js';
import { CLI_PATH, interfaceIndex, invalidCounter, jsonLines, spawnNode, startCapture, STARTUP_MS, waitFor } from './spawn.js';
import { LAB_PREFIX } from './state.js';

export type Family = 4 | 6;
export type ServicePath = 'clusterip' | 'nodeport';
export const SERVICE_PATHS: ServicePath[] = ['clusterip', 'nodeport'];

/** Addresses per family: documentation ranges only (RFC 5737, RFC 3849). */
export const K8S_ADDR = {
  4: {
    podA: '192.0.2.2', bridgeA: '192.0.2.1', podNetA: '192.0.2.0/25', podPrefix: 25,
    podB: '192.0.2.130', bridgeB: '192.0.2.129', podNetB: '192.0.2.128/25',
    clusterCIDR: '192.0.2.0/24',
    nodeA: '198.51.100.1', nodeB: '198.51.100.2', nodePrefix: 24,
    clusterIP: '203.0.113.10',
  },
  6: {
    podA: '2001:db8:c:a::2', bridgeA: '2001:db8:c:a::1', podNetA: '2001:db8:c:a::/64', podPrefix: 64,
    podB: '2001:db8:c:b::2', bridgeB: '2001:db8:c:b::1', podNetB: '2001:db8:c:b::/64',
    clusterCIDR: '2001:db8:c::/48',
    nodeA: '2001:db8:1::1', nodeB: '2001:db8:1::2', nodePrefix: 64,
    clusterIP: '2001:db8:5::10',
  },
} as const;

const SERVICE = { name: 'default/boom-server', port: 80, nodePort: 30080 } as const;

export { K8S_MITIGATIONS, K8S_MITIGATION_HELP, K8S_MITIGATION_NAMES, type K8sMitigation } from './mitigations.js';
import { K8S_MITIGATIONS, type K8sMitigation } from './mitigations.js';

export interface K8sCell {
  id: string;
  index: number;
  family: Family;
  path: ServicePath;
  mitigation: K8sMitigation;
  /** The server pod's port (the Service's targetPort), unique per cell. */
  port: number;
}

export function buildK8sCells(families: Family[], mitigations: K8sMitigation[], paths: ServicePath[] = SERVICE_PATHS, basePort = 9100): K8sCell[] {
  const cells: K8sCell[] = [];
  for (const family of families)
    for (const path of paths)
      for (const m of mitigations) cells.push({ id: `${path}/${m}${family === 6 ? '/v6' : ''}`, index: cells.length, family, path, mitigation: m, port: basePort + cells.length });
  return cells;
}

export function serviceSpec(family: Family, port: number): ServiceSpec {
  const a = K8S_ADDR[family];
  return { family, name: SERVICE.name, clusterIP: a.clusterIP, port: SERVICE.port, nodePort: SERVICE.nodePort, endpoint: { ip: a.podB, port }, clusterCIDR: a.clusterCIDR };
}

interface K8sNamespaces {
  clientPod: string;
  nodeA: string;
  nodeB: string;
  serverPod: string;
  /** Node A: pod bridge, client pod's veth, uplink. Node B: pod bridge, server pod's veth, uplink. */
  bridgeA: string;
  vethA: string;
  uplinkA: string;
  bridgeB: string;
  vethB: string;
  uplinkB: string;
}

function k8sNamespaces(run: string, cell: number): K8sNamespaces {
  const base = `${LAB_PREFIX}${run}-${cell}`;
  const id = `${run}${String(cell).padStart(2, '0')}`;
  return {
    clientPod: `${base}-cp`, nodeA: `${base}-na`, nodeB: `${base}-nb`, serverPod: `${base}-sp`,
    bridgeA: `ctb${id}`, vethA: `ctv${id}`, uplinkA: `ctu${id}`, bridgeB: `ctd${id}`, vethB: `ctw${id}`, uplinkB: `cty${id}`,
  };
}

async function createK8sCell(ns: K8sNamespaces, cell: K8sCell): Promise<void> {
  const a = K8S_ADDR[cell.family];
  const m = K8S_MITIGATIONS[cell.mitigation];
  const six = cell.family === 6;
  const addr = (ip: string, prefix: number) => `addr add ${ip}/${prefix} dev`;
  const nodad = six ? ' nodad' : '';
  await run('ip', ['-batch', '-'], { input: [ns.clientPod, ns.nodeA, ns.nodeB, ns.serverPod].map((n) => `netns add ${n}`).join('\n') + '\n' });
  // Fixed MACs and permanent neighbour entries: a warm cluster, where the first SYN is not held
  // back by neighbour discovery (an IPv6 SYN queued behind NDP went out twice, a second later).
  const mac = (role: number) => `02:c7:${(cell.index & 0xff).toString(16).padStart(2, '0')}:${role.toString(16).padStart(2, '0')}:00:01`;
  const MAC = { podA: mac(1), bridgeA: mac(2), uplinkA: mac(3), uplinkB: mac(4), bridgeB: mac(5), podB: mac(6) };
  await run('ip', ['-batch', '-'], {
    input: [
      // Node ends get indexes no peer has (as in topology.ts): a veth whose ifindex equals its
      // peer's is taken for a physical device and its carrier comes up only at linkwatch's next
      // 1-per-second run, while the bridge port drops the first SYN.
      `link add ${ns.vethA} netns ${ns.nodeA} index 10 type veth peer name eth0 netns ${ns.clientPod} address ${MAC.podA}`,
      `link add ${ns.vethB} netns ${ns.nodeB} index 10 type veth peer name eth0 netns ${ns.serverPod} address ${MAC.podB}`,
      `link add ${ns.uplinkA} netns ${ns.nodeA} index 11 address ${MAC.uplinkA} type veth peer name ${ns.uplinkB} netns ${ns.nodeB} index 12 address ${MAC.uplinkB}`,
    ].join('\n') + '\n',
  });
  const neigh = (ip: string, lladdr: string, dev: string) => `neigh replace ${ip} lladdr ${lladdr} dev ${dev} nud permanent`;
  const pod = (n: string, ip: string, gw: string, gwMac: string) =>
    run('ip', ['-n', n, '-batch', '-'], { input: ['link set lo up', 'link set eth0 up', `${addr(ip, a.podPrefix)} eth0${nodad}`, `route add default via ${gw}`, neigh(gw, gwMac, 'eth0')].join('\n') + '\n' });
  const node = (n: string, bridge: string, veth: string, uplink: string, gwIp: string, ip: string, otherPods: string, otherNode: string, m: { bridge: string; pod: string; podIp: string; otherUplink: string }) =>
    run('ip', ['-n', n, '-batch', '-'], {
      input: [
        'link set lo up',
        `link add ${bridge} address ${m.bridge} type bridge forward_delay 0 stp_state 0`,
        `link set ${veth} master ${bridge}`,
        `${addr(gwIp, a.podPrefix)} ${bridge}${nodad}`,
        `${addr(ip, a.nodePrefix)} ${uplink}${nodad}`,
        `link set ${bridge} up`,
        `link set ${veth} up`,
        `link set ${uplink} up`,
        `route add ${otherPods} via ${otherNode}`,
        neigh(m.podIp, m.pod, bridge),
        neigh(otherNode, m.otherUplink, uplink),
      ].join('\n') + '\n',
    });
  // Node sysctls first: the bridge and uplink must not start IPv6 autoconfiguration as a host.
  const fwd: Record<string, number> = six ? { 'net.ipv6.conf.all.forwarding': 1 } : { 'net.ipv4.ip_forward': 1 };
  await Promise.all([writeSysctlsIn(ns.nodeA, fwd), writeSysctlsIn(ns.nodeB, fwd)]);
  await Promise.all([
    pod(ns.clientPod, a.podA, a.bridgeA, MAC.bridgeA),
    pod(ns.serverPod, a.podB, a.bridgeB, MAC.bridgeB),
    node(ns.nodeA, ns.bridgeA, ns.vethA, ns.uplinkA, a.bridgeA, a.nodeA, a.podNetB, a.nodeB, { bridge: MAC.bridgeA, pod: MAC.podA, podIp: a.podA, otherUplink: MAC.uplinkB }),
    node(ns.nodeB, ns.bridgeB, ns.vethB, ns.uplinkB, a.bridgeB, a.nodeB, a.podNetA, a.nodeA, { bridge: MAC.bridgeB, pod: MAC.podB, podIp: a.podB, otherUplink: MAC.uplinkA }),
  ]);
  const spec = serviceSpec(cell.family, cell.port);
  for (const n of [ns.nodeA, ns.nodeB]) {
    if (m.mode === 'nftables') await run('nft', ['-f', '-'], { netns: n, input: kubeProxyNft(spec, { beLiberal: m.rules.beLiberal }) });
    else await run(six ? 'ip6tables-restore' : 'iptables-restore', [], { netns: n, input: kubeProxyIptables(spec, m.version!, { beLiberal: m.rules.beLiberal, inputDrop: m.rules.inputDrop }) });
    await writeSysctlsIn(n, { nf_conntrack_log_invalid: 6, nf_conntrack_tcp_be_liberal: m.rules.beLiberal ? 1 : 0 });
  }
}

export interface RstSeen {
  iface: string;
  /** 'in': arrived on that interface; 'out': sent out of it (SLL2 packet type). */
  dir: 'in' | 'out';
  src: string;
  dst: string;
}

const PACKET_OUTGOING = 4;

/**
 * Every RST in a capture of the client's node (tcpdump -i any, SLL2), and who sent it: one that
 * arrives on the client pod's veth came from the pod; one that only leaves (never arrived) came
 * from the node's own stack; one that arrives on the uplink came from the server's side.
 */
export async function rstOrigin(file: string, ifindex: Record<string, string>, podVeth: string, uplink: string): Promise<{ resetBy: ResetBy; rsts: RstSeen[] }> {
  const rsts: RstSeen[] = [];
  await forEachPacket(file, (rec) => {
    if (rec.ipOffset < 0 || rec.data.length < 20) return;
    const ip = decodeIp(rec.data, rec.ipOffset);
    if (isPacketError(ip) || ip.protocol !== 6) return;
    const tcp = decodeTcp(rec.data, ip.payloadOffset, rec.data.length);
    if (isPacketError(tcp) || !(tcp.flags & TCP_RST)) return;
    const sll2 = rec.linkType === 276;
    const iface = sll2 ? (ifindex[String(new DataView(rec.data.buffer, rec.data.byteOffset).getUint32(4))] ?? '?') : '?';
    const dir = sll2 && rec.data[10] === PACKET_OUTGOING ? 'out' : 'in';
    const a = ip.version === 4 ? ipv4ToString : ipv6ToString;
    rsts.push({ iface, dir, src: `${a(rec.data, ip.srcOffset)}:${tcp.srcPort}`, dst: `${a(rec.data, ip.dstOffset)}:${tcp.dstPort}` });
  });
  // The first RST in time names its sender; copies of it (forwarded, de-NATed) and answers follow.
  const first = rsts.find((r) => (r.iface === podVeth && r.dir === 'in') || r.iface === uplink);
  const resetBy: ResetBy = !first ? null : first.iface === podVeth ? 'client-pod' : first.dir === 'in' ? 'server-side' : 'client-node';
  return { resetBy, rsts };
}

/** Temp dirs of cells in progress: removed on any exit, also the runner's exit on SIGINT/SIGTERM. */
const tempDirs = new Set<string>();
process.on('exit', () => {
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
});

async function runK8sCell(cell: K8sCell, ctx: LabContext, t: CellTiming): Promise<LabCellResult> {
  const t0 = performance.now();
  const ns = k8sNamespaces(ctx.runId, cell.index);
  const a = K8S_ADDR[cell.family];
  const m = K8S_MITIGATIONS[cell.mitigation];
  // Before anything is created: a missing tool is one line naming its package.
  for (const tool of ['tcpdump', m.mode === 'nftables' ? 'nft' : cell.family === 6 ? 'ip6tables-restore' : 'iptables-restore']) requireTool(tool);
  ctx.track([ns.clientPod, ns.nodeA, ns.nodeB, ns.serverPod]);
  await createK8sCell(ns, cell);
  const [beforeA, beforeB] = await Promise.all([invalidCounter(ns.nodeA), invalidCounter(ns.nodeB)]);
  // Node A is always captured: who sent the RST is read from it, not assumed.
  const tmp = ctx.captureDir ? null : mkdtempSync(`${tmpdir()}/ctp-k8s-`);
  if (tmp) tempDirs.add(tmp);
  const capture = `${ctx.captureDir ?? tmp}/${cell.id.replace(/[/]/g, '_')}.pcap`;
  try {
    const ifindex = await interfaceIndex(ns.nodeA);
    const stopCapture = await startCapture(ns.nodeA, capture, 'tcp');

    const serverEvents: WireEvent[] = [];
    const server = spawnNode(ns.serverPod, CLI_PATH, [
      'server', '--port', String(cell.port), '--bind', a.podB, '--offset=100000',
      '--hold', `${t.holdMs}ms`, '--linger', `${t.lingerMs}ms`, '--connections', '1', '-o', 'json',
    ]);
    let serverErr = '';
    server.stderr?.setEncoding('utf8').on('data', (d: string) => (serverErr += d));
    const serverDone = jsonLines(server, (e) => serverEvents.push(e));
    if (!(await waitFor(server, serverEvents, (e) => e.type === 'listening', STARTUP_MS)))
      throw new LabError(`lab cell ${cell.id}: the server did not start: ${serverErr.trim().split('\n')[0] ?? 'no output'}`);

    const [host, port] = cell.path === 'clusterip' ? [a.clusterIP, SERVICE.port] : [a.nodeA, SERVICE.nodePort];
    const target = cell.family === 6 ? `[${host}]:${port}` : `${host}:${port}`;
    let client: string | null = null;
    const cl = spawnNode(ns.clientPod, CLI_PATH, ['client', target, '--count', '1', '--timeout', `${t.clientIdleMs}ms`, '--connect-timeout', '3s', '-o', 'json']);
    const clientDone = jsonLines(cl, (e) => {
      if (e.type === 'attempt') client = e.outcome;
    });
    const timer = setTimeout(() => {
      server.kill('SIGTERM');
      cl.kill('SIGTERM');
    }, t.cellTimeoutMs);
    await Promise.all([serverDone, clientDone]);
    clearTimeout(timer);
    // Node A's conntrack entries when the traffic has ended (still listed, in CLOSE or TIME_WAIT):
    // their orig/reply tuples name the NAT, for `ctprobe explain --conntrack-file`.
    const conntrackFile = ctx.captureDir ? capture.replace(/\.pcap$/, '.conntrack.txt') : null;
    if (conntrackFile) {
      const ct = await run('conntrack', ['-L', '-p', 'tcp'], { netns: ns.nodeA, allowFail: true });
      if (ct.status === 0) writeFileSync(conntrackFile, ct.stdout);
    }
    const captureDropped = await stopCapture();
    const [afterA, afterB] = await Promise.all([invalidCounter(ns.nodeA), invalidCounter(ns.nodeB)]);

    const closed = serverEvents.find((e) => e.type === 'closed' && (e.verdict === 'reset' || e.verdict === 'clean'));
    const verdict = closed?.type === 'closed' ? closed.verdict : 'timeout';
    const reset = serverEvents.find((e) => e.type === 'reset');
    const origin = await rstOrigin(capture, ifindex, ns.vethA, ns.uplinkA);
    const expected = expectedK8s(ctx.profile, cell.path, m.rules);
    return cellResult({
      id: cell.id,
      verdict,
      expected,
      resetBy: origin.resetBy,
      invalidBefore: beforeA,
      invalidAfter: afterA,
      startedAt: t0,
      namespaces: [ns.clientPod, ns.nodeA, ns.nodeB, ns.serverPod],
      ifaces: [ns.bridgeA, ns.vethA, ns.uplinkA, ns.bridgeB, ns.vethB, ns.uplinkB],
      ports: [cell.port, SERVICE.port, SERVICE.nodePort],
      addresses: [K8S_ADDR[cell.family].podA, K8S_ADDR[cell.family].podB, K8S_ADDR[cell.family].nodeA, K8S_ADDR[cell.family].nodeB, K8S_ADDR[cell.family].clusterIP],
      details: {
        family: cell.family,
        path: cell.path,
        mitigation: cell.mitigation,
        models: m.models,
        client,
        resetBy: origin.resetBy,
        expectedResetBy: expected.resetBy,
        // The server only sees an address: the pod's own through a ClusterIP, the node's through a NodePort.
        rstSourceAtServer: reset?.type === 'reset' ? reset.conn.split('-').pop() ?? null : null,
        rstsOnClientNode: origin.rsts,
        beLiberal: m.rules.beLiberal,
        ...(conntrackFile && existsSync(conntrackFile) ? { conntrackSnapshot: conntrackFile } : {}),
        invalidCountServerNode: beforeB === null || afterB === null ? null : afterB - beforeB,
      },
      capture: ctx.captureDir ? { capture, ifindex, captureDropped } : null,
    });
  } finally {
    if (tmp) {
      rmSync(tmp, { recursive: true, force: true });
      tempDirs.delete(tmp);
    }
  }
}

export function k8sScenario(families: Family[], mitigations: K8sMitigation[], timing: Partial<CellTiming> = {}): Scenario {
  const cells = buildK8sCells(families, mitigations);
  const t = { ...DEFAULT_TIMING, ...timing };
  return {
    name: 'k8s-service',
    what: 'Kubernetes 74839: a ClusterIP / NodePort with kube-proxy’s rules, two nodes; who resets, which kube-proxy protects',
    cells: cells.length,
    cellId: (i) => cells[i]!.id,
    runCell: (i, ctx) => runK8sCell(cells[i]!, ctx, t),
  };
}
