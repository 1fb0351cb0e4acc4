/**
 * `ctprobe audit`: reads, never changes. What this kernel does with out-of-window packets, the
 * conntrack sysctls, how the firewall handles ctstate INVALID, which platforms' rules are present,
 * conntrack's invalid counter, and the half-close leak window — as findings with a severity, a
 * plain explanation and the exact command that fixes them, with its trade-offs.
 */
import { profileForRelease } from '../conntrack/profile.js';
import { predictOutOfWindow } from '../conntrack/predict.js';
import { parseConntrackStatsText } from '../inspect/conntrack.js';
import { PrivilegeError } from '../errors.js';
import { isRoot } from './exec.js';
import { iptablesInvalidDrops, iptablesNat, nftInvalidDrops, nftNat, parseIptablesSave, recognisePlatforms, type InvalidDrop, type NatKind, type Platform } from './firewall.js';
import { Bundle } from './bundle.js';
import { readHost, type HostData, type SourceName } from './sources.js';
import type { Target } from './target.js';

export type Severity = 'high' | 'medium' | 'low' | 'info';

export interface Finding {
  id: string;
  severity: Severity;
  title: string;
  explanation: string;
  fix: { command: string; tradeoffs: string } | null;
}

export interface AuditReport {
  target: string;
  kernel: { release: string; profile: string; label: string; outOfWindow: string };
  sysctls: Record<string, number | null>;
  /** null: the firewall could not be read (see `unknown`). */
  firewall: {
    backends: string[];
    invalidDrops: InvalidDrop[];
    platforms: Platform[];
    nat: NatKind[];
    /** False when part of the firewall (iptables or nft) could not be read: what is listed is what was seen. */
    complete: boolean;
  } | null;
  conntrack: { invalid: number | null };
  /** What could not be read, and why: findings that would rest on it are not raised. */
  unknown: Array<{ what: string; why: string }>;
  findings: Finding[];
}

/**
 * What audit reads, as raw text: gathered live from a target, or (later) from a support bundle,
 * then analysed by `analyse`, which is pure. null = could not be read.
 */
export interface HostSnapshot {
  target: string;
  kernelRelease: string;
  sysctls: Record<string, number | null>;
  iptablesSave: { text: string; backend: 'iptables-nft' | 'iptables-legacy' } | null;
  nftJson: string | null;
  conntrackStats: string | null;
  unknown: Array<{ what: string; why: string }>;
}

const TRADEOFFS_DROP =
  'drops every INVALID packet to the host (also stray ones that a peer would otherwise answer); with asymmetric routing, where conntrack sees only one direction, legitimate packets can be INVALID and get dropped (Kubernetes issue 94861)';
const TRADEOFFS_LIBERAL =
  'conntrack stops judging TCP windows: out-of-window packets are tracked and NAT applies, so nothing is reset — but conntrack no longer flags broken or spoofed segments';

function outOfWindowSummary(rel: string): string {
  const p = profileForRelease(rel);
  const up = predictOutOfWindow(p, { offset: 100000, beLiberal: false });
  const down = predictOutOfWindow(p, { offset: -100000, beLiberal: false });
  const say = (r: typeof up) =>
    r.firstInvalidStep === null ? 'harmless' : r.firstInvalidStep === 'forged' ? 'the segment itself is INVALID → immediate RST from a NAT host' : `it poisons the window; the ${r.firstInvalidStep} is INVALID → delayed RST from a NAT host`;
  return `beyond the window: ${say(up)}; below the window: ${say(down)}`;
}

/** The sources audit reads (a support bundle holds them too). */
export const AUDIT_SOURCES = ['iptablesSave', 'iptablesVersion', 'nft', 'conntrackStats'] as const satisfies readonly SourceName[];

/** Read everything audit needs from a target; what cannot be read is recorded, not guessed. */
export function gather(t: Target): HostSnapshot {
  if (!isRoot()) throw new PrivilegeError("audit reads the firewall (iptables-save, nft) and conntrack's counters: run it as root (or with CAP_NET_ADMIN)");
  return snapshotOf(readHost(t, AUDIT_SOURCES));
}

/** Audit's view of what was read (live or from a bundle). */
export function snapshotOf(d: HostData): HostSnapshot {
  const unknown: HostSnapshot['unknown'] = [];
  const get = (n: SourceName, what: string): string | null => {
    const r = d.reads[n];
    if (!r) unknown.push({ what, why: 'not collected' });
    else if (r.text === null) unknown.push({ what, why: r.why });
    return r?.text ?? null;
  };
  const ipt = get('iptablesSave', 'iptables rules');
  const backend = /nf_tables/.test(d.reads.iptablesVersion?.text ?? '') ? 'iptables-nft' : 'iptables-legacy';
  // Without the nft tool there are no native nft rules to miss (iptables-nft rules show in
  // iptables-save): an empty ruleset, not an unknown one. A failing nft is unknown.
  const nftMissing = d.reads.nft?.why?.startsWith("'nft' not installed") ?? false;
  const nftJson = nftMissing ? '' : get('nft', 'nft ruleset');
  return {
    target: d.target,
    kernelRelease: d.kernelRelease,
    sysctls: d.sysctls,
    iptablesSave: ipt === null ? null : { text: ipt, backend },
    nftJson,
    conntrackStats: get('conntrackStats', 'conntrack counters'),
    unknown,
  };
}

export function audit(t: Target, o: AuditOptions = {}): AuditReport {
  return analyse(gather(t), o);
}

/** The same audit from a support bundle (`ctprobe collect`): what it could not collect is unknown. */
export async function auditBundle(path: string, o: AuditOptions = {}): Promise<AuditReport> {
  const b = await Bundle.open(path);
  try {
    return analyse(snapshotOf(b.hostData(AUDIT_SOURCES)), o);
  } finally {
    b.close();
  }
}

export interface AuditOptions {
  proxyIdleTimeoutS?: number | null;
}

/** Findings from a snapshot (pure). A finding that would rest on unknown data is not raised. */
export function analyse(snap: HostSnapshot, o: AuditOptions = {}): AuditReport {
  const rel = snap.kernelRelease;
  const p = profileForRelease(rel);
  const sysctls = snap.sysctls;
  const findings: Finding[] = [];
  const unknown = [...snap.unknown];
  let firewall: AuditReport['firewall'] = null;
  if (snap.iptablesSave || snap.nftJson !== null) {
    const backends: string[] = [];
    let drops: InvalidDrop[] = [];
    let platforms: Platform[] = [];
    const nat = new Set<NatKind>();
    if (snap.iptablesSave) {
      backends.push(snap.iptablesSave.backend);
      const tables = parseIptablesSave(snap.iptablesSave.text);
      drops = iptablesInvalidDrops(tables);
      platforms = recognisePlatforms(tables);
      iptablesNat(tables).forEach((k) => nat.add(k));
    }
    if (snap.nftJson !== null && snap.nftJson.trim()) {
      backends.push('nft');
      drops.push(...nftInvalidDrops(snap.nftJson).filter((d) => !drops.some((x) => x.backend === 'iptables' && d.table.endsWith(x.table))));
      nftNat(snap.nftJson).forEach((k) => nat.add(k));
    }
    drops.sort((a, b) => `${a.backend}${a.table}${a.chain}${a.position}`.localeCompare(`${b.backend}${b.table}${b.chain}${b.position}`));
    const complete = !unknown.some((u) => u.what === 'iptables rules' || u.what === 'nft ruleset');
    firewall = { backends, invalidDrops: drops, platforms, nat: [...nat].sort(), complete };
  }
  const invalid = snap.conntrackStats === null ? null : (parseConntrackStatsText(snap.conntrackStats).totals.invalid ?? 0);

  const liberal = sysctls.nf_conntrack_tcp_be_liberal === 1;
  if (liberal)
    findings.push({ id: 'be-liberal-on', severity: 'info', title: 'nf_conntrack_tcp_be_liberal=1', explanation: `Out-of-window packets are not marked INVALID here, so they are not reset. Trade-off: ${TRADEOFFS_LIBERAL}.`, fix: null });
  else if (sysctls.nf_conntrack_tcp_be_liberal === null) unknown.push({ what: 'nf_conntrack_tcp_be_liberal', why: 'not readable (is nf_conntrack loaded in this namespace?)' });
  // "Nothing drops INVALID" needs both rule sets: a drop may sit in the one that could not be read.
  const firewallComplete = snap.iptablesSave !== null && snap.nftJson !== null;
  if (firewall && firewallComplete && sysctls.nf_conntrack_tcp_be_liberal === 0) findings.push(...invalidDropFindings(firewall, p.label, rel));
  if (firewall)
    for (const d of firewall.invalidDrops)
      findings.push({ id: `invalid-drop-${d.backend}-${d.table.replace(/\s+/g, '-')}-${d.chain}-${d.position}`, severity: 'info', title: `INVALID DROP in ${d.backend} ${d.table}/${d.chain} rule ${d.position}${d.reachedFrom.length ? `, reached from ${d.reachedFrom.join(', ')}` : ', not reached from any built-in chain'}${d.ownedByCtprobe ? ' (added by ctprobe)' : ''}`, explanation: d.rule, fix: null });
  if (sysctls.nf_conntrack_log_invalid === 0)
    findings.push({ id: 'log-invalid-off', severity: 'low', title: 'the kernel does not say why packets are INVALID', explanation: 'nf_conntrack_log_invalid=0: INVALID packets are counted but not logged.', fix: { command: 'ctprobe invalid-log on   (sets net.netfilter.nf_conntrack_log_invalid=6)', tradeoffs: 'log lines for every INVALID TCP packet (rate-limited by the kernel); in containers also needs nf_log_all_netns=1 on the host' } });
  if (invalid !== null && invalid > 0)
    findings.push({ id: 'invalid-counter', severity: 'info', title: `conntrack counted ${invalid} INVALID packet(s)`, explanation: 'conntrack -S invalid, summed over CPUs, since the namespace was created.', fix: null });
  const cw = sysctls.nf_conntrack_tcp_timeout_close_wait ?? null;
  if (o.proxyIdleTimeoutS && cw !== null && cw < o.proxyIdleTimeoutS)
    findings.push({
      id: 'half-close-leak-window',
      severity: 'medium',
      title: `close_wait (${cw}s) is shorter than the proxy idle timeout (${o.proxyIdleTimeoutS}s)`,
      explanation: `When an upstream closes first and the application closes more than ${cw}s later, conntrack's CLOSE_WAIT entry has expired: the application's FIN is INVALID, never reaches the proxy, and the proxy's FIN-WAIT-2/CLOSE-WAIT sockets leak for up to ${o.proxyIdleTimeoutS}s (Istio 43297). 'ctprobe leaks' finds them.`,
      fix: { command: `sysctl -w net.netfilter.nf_conntrack_tcp_timeout_close_wait=${o.proxyIdleTimeoutS}   (or lower the proxy's idle_timeout)`, tradeoffs: 'longer close_wait keeps half-closed entries in the conntrack table longer (table size); a shorter idle_timeout closes idle long-lived connections' },
    });
  const order: Severity[] = ['high', 'medium', 'low', 'info'];
  findings.sort((a, b) => order.indexOf(a.severity) - order.indexOf(b.severity) || a.id.localeCompare(b.id));
  return {
    target: snap.target,
    kernel: { release: rel, profile: p.id, label: p.label, outOfWindow: outOfWindowSummary(rel) },
    sysctls,
    firewall,
    conntrack: { invalid },
    unknown,
    findings,
  };
}

/**
 * Whether an INVALID packet can be answered with a reset here depends on the NAT in use:
 * MASQUERADE/SNAT (Docker 1090: the reply is addressed to the host, so only a drop reached from
 * INPUT helps), DNAT/REDIRECT (Kubernetes 74839: the reply goes on to the pod or local app; a
 * FORWARD drop helps for pods). With no NAT nothing is mis-delivered, so nothing is raised.
 */
function invalidDropFindings(fw: NonNullable<AuditReport['firewall']>, label: string, rel: string): Finding[] {
  const reached = (hook: string) => fw.invalidDrops.some((d) => d.reachedFrom.includes(hook) || (d.reachedFrom.includes('PREROUTING') && d.table !== 'raw'));
  const input = reached('INPUT');
  const forward = reached('FORWARD');
  const snat = fw.nat.includes('masquerade') || fw.nat.includes('snat');
  const dnat = fw.nat.includes('dnat') || fw.nat.includes('redirect');
  const tradeoffs = `drop-invalid: ${TRADEOFFS_DROP}. be-liberal: ${TRADEOFFS_LIBERAL}.`;
  const behaviour = `On this kernel (${label}) an out-of-window segment through NAT does this: ${outOfWindowSummary(rel)}.`;
  if (!snat && !dnat) {
    if (input || forward) return [];
    return [{ id: 'no-nat', severity: 'info', title: 'no NAT rules here: an INVALID packet is not mis-delivered, nothing to reset', explanation: `No MASQUERADE, SNAT, DNAT or REDIRECT rule was found, so a packet conntrack marks INVALID still reaches the socket it is addressed to. ${behaviour}`, fix: null }];
  }
  if (snat && !input)
    return [
      {
        id: forward ? 'invalid-drop-forward-only' : 'no-invalid-drop',
        severity: forward ? 'medium' : 'high',
        title: forward ? 'INVALID packets are dropped in FORWARD only' : 'INVALID packets reach the host and are answered with RST',
        explanation: forward
          ? 'A FORWARD drop covers DNATed traffic to pods (kube-proxy), but replies to MASQUERADEd connections that conntrack marks INVALID are addressed to the host itself: they go through INPUT, reach its TCP stack and are reset.'
          : `This host masquerades (SNAT) and nothing drops ctstate INVALID before its TCP stack; be_liberal is off. ${behaviour} The host answers such packets with an RST its container never sent (Docker libnetwork 1090).`,
        fix: { command: 'ctprobe fix apply --method drop-invalid --chain INPUT   (or: --method be-liberal)', tradeoffs },
      },
    ];
  if (dnat && !input && !forward)
    return [
      {
        id: 'no-invalid-drop-dnat',
        severity: 'high',
        title: 'INVALID replies to DNATed connections are not dropped',
        explanation: `This host DNATs (a Service, or a REDIRECT) and nothing drops ctstate INVALID; be_liberal is off. ${behaviour} An INVALID reply is not reverse-NATed and the pod or app answers it with RST (Kubernetes 74839).`,
        fix: { command: 'ctprobe fix apply --method drop-invalid --chain FORWARD   (or: --method be-liberal)', tradeoffs },
      },
    ];
  return [];
}
