/**
 * `ctprobe audit`: reads, never changes. What this kernel does with out-of-window packets, the
 * conntrack sysctls, how the firewall handles ctstate INVALID, which platforms' rules are present,
 * conntrack's invalid counter, and the half-close leak window — as findings with a severity, a
 * plain explanation and the exact command that fixes them, with its trade-offs.
 */
import { release } from 'node:os';
import { profileForRelease } from '../conntrack/profile.js';
import { predictOutOfWindow } from '../conntrack/predict.js';
import { parseConntrackStatsText } from '../inspect/conntrack.js';
import { findTool } from './exec.js';
import { iptablesInvalidDrops, nftInvalidDrops, parseIptablesSave, recognisePlatforms, type InvalidDrop, type Platform } from './firewall.js';
import { readConntrackSysctls } from './sysctl.js';
import { describeTarget, runInTarget, type Target } from './target.js';

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
  firewall: { backends: string[]; invalidDrops: InvalidDrop[]; platforms: Platform[] };
  conntrack: { invalid: number | null; note: string | null };
  findings: Finding[];
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

export function audit(t: Target, o: { proxyIdleTimeoutS?: number | null } = {}): AuditReport {
  const rel = release();
  const p = profileForRelease(rel);
  const sysctls = readConntrackSysctls(t);
  const findings: Finding[] = [];
  const backends: string[] = [];
  let drops: InvalidDrop[] = [];
  let platforms: Platform[] = [];
  if (findTool('iptables-save')) {
    const r = runInTarget(t, 'iptables-save', [], { allowFail: true });
    if (r.status === 0) {
      backends.push(/nf_tables/.test(runInTarget(t, 'iptables', ['-V'], { allowFail: true }).stdout) ? 'iptables-nft' : 'iptables-legacy');
      const tables = parseIptablesSave(r.stdout);
      drops = iptablesInvalidDrops(tables);
      platforms = recognisePlatforms(tables);
    }
  }
  if (findTool('nft')) {
    const r = runInTarget(t, 'nft', ['-j', 'list', 'ruleset'], { allowFail: true });
    if (r.status === 0 && r.stdout.trim()) {
      backends.push('nft');
      drops.push(...nftInvalidDrops(r.stdout).filter((d) => !drops.some((x) => x.backend === 'iptables' && d.table.endsWith(x.table))));
    }
  }
  drops.sort((a, b) => `${a.backend}${a.table}${a.chain}${a.position}`.localeCompare(`${b.backend}${b.table}${b.chain}${b.position}`));

  let invalid: number | null = null;
  let note: string | null = null;
  if (findTool('conntrack')) {
    const r = runInTarget(t, 'conntrack', ['-S'], { allowFail: true });
    if (r.status === 0) invalid = parseConntrackStatsText(r.stdout).totals.invalid ?? 0;
    else note = `conntrack -S failed: ${r.stderr.trim().split('\n')[0] ?? ''}`;
  } else note = "'conntrack' not installed (apt-get install -y conntrack): invalid counters unknown";

  const liberal = sysctls.nf_conntrack_tcp_be_liberal === 1;
  const inputDrop = drops.some((d) => d.reachedFrom.includes('INPUT') || (d.reachedFrom.includes('PREROUTING') && d.table !== 'raw'));
  const forwardOnly = !inputDrop && drops.some((d) => d.reachedFrom.includes('FORWARD'));
  if (!liberal && !inputDrop) {
    findings.push({
      id: forwardOnly ? 'invalid-drop-forward-only' : 'no-invalid-drop',
      severity: forwardOnly ? 'medium' : 'high',
      title: forwardOnly ? 'INVALID packets are dropped in FORWARD only' : 'INVALID packets reach the host and are answered with RST',
      explanation: forwardOnly
        ? 'A FORWARD drop covers DNATed traffic to pods (kube-proxy), but replies to MASQUERADEd connections that conntrack marks INVALID are addressed to the host itself: they go through INPUT, reach its TCP stack and are reset.'
        : `Nothing drops ctstate INVALID before the host's TCP stack and be_liberal is off. On this kernel (${p.label}) an out-of-window segment through NAT does this: ${outOfWindowSummary(rel)}. The host answers such packets with an RST its container never sent (Docker libnetwork 1090, Kubernetes 74839).`,
      fix: { command: 'ctprobe fix apply --method drop-invalid --chain INPUT   (or: --method be-liberal)', tradeoffs: `drop-invalid: ${TRADEOFFS_DROP}. be-liberal: ${TRADEOFFS_LIBERAL}.` },
    });
  }
  if (liberal)
    findings.push({ id: 'be-liberal-on', severity: 'info', title: 'nf_conntrack_tcp_be_liberal=1', explanation: `Out-of-window packets are not marked INVALID here, so they are not reset. Trade-off: ${TRADEOFFS_LIBERAL}.`, fix: null });
  for (const d of drops)
    findings.push({ id: `invalid-drop-${d.backend}-${d.table.replace(/\s+/g, '-')}-${d.chain}-${d.position}`, severity: 'info', title: `INVALID DROP in ${d.backend} ${d.table}/${d.chain} rule ${d.position}${d.reachedFrom.length ? `, reached from ${d.reachedFrom.join(', ')}` : ', not reached from any built-in chain'}${d.ownedByCtprobe ? ' (added by ctprobe)' : ''}`, explanation: d.rule, fix: null });
  if ((sysctls.nf_conntrack_log_invalid ?? 0) === 0)
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
  if (note) findings.push({ id: 'conntrack-tool-missing', severity: 'low', title: 'conntrack counters unavailable', explanation: note, fix: { command: 'apt-get install -y conntrack', tradeoffs: 'none' } });
  const order: Severity[] = ['high', 'medium', 'low', 'info'];
  findings.sort((a, b) => order.indexOf(a.severity) - order.indexOf(b.severity) || a.id.localeCompare(b.id));
  return {
    target: describeTarget(t),
    kernel: { release: rel, profile: p.id, label: p.label, outOfWindow: outOfWindowSummary(rel) },
    sysctls,
    firewall: { backends, invalidDrops: drops, platforms },
    conntrack: { invalid, note },
    findings,
  };
}
