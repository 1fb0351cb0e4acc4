/** `audit`'s result for people (findings, wrapped to 80 columns) and for machines (one JSON document). */
import type { AuditReport } from '../host/audit.js';
import type { Renderer } from './output.js';
import { wrapText } from './text.js';

export const auditReport: Renderer<AuditReport> = {
  json: (r) => ({ type: 'audit', ...r }),
  text(r) {
    const out = [...wrapText(`ctprobe audit — ${r.target}`, 78), ...wrapText(`kernel ${r.kernel.release} (profile ${r.kernel.profile}: ${r.kernel.label})`, 78), ...wrapText(`out-of-window packets through NAT: ${r.kernel.outOfWindow}`, 78, '  ')];
    const s = r.sysctls;
    const v = (k: string, unit = '') => (s[k] === null || s[k] === undefined ? 'unknown' : `${s[k]}${unit}`);
    out.push(...wrapText(`conntrack: be_liberal=${v('nf_conntrack_tcp_be_liberal')} loose=${v('nf_conntrack_tcp_loose')} log_invalid=${v('nf_conntrack_log_invalid')}`, 78));
    out.push(...wrapText(`close_wait=${v('nf_conntrack_tcp_timeout_close_wait', 's')} ignore_invalid_rst=${v('nf_conntrack_tcp_ignore_invalid_rst')} invalid counter=${r.conntrack.invalid ?? 'unknown'}`, 78, '  '));
    if (r.firewall) {
      // a partial dump lists what it saw; "none" would be a conclusion it cannot draw
      const none = r.firewall.complete ? 'none' : 'none seen (firewall partly unknown)';
      out.push(...wrapText(`firewall: ${r.firewall.backends.join(', ') || (r.firewall.complete ? 'no rules' : 'only part read')}; NAT: ${r.firewall.nat.join(', ') || none}`, 78));
      out.push(...wrapText(`platforms recognised: ${r.firewall.platforms.map((p) => p.name).join(', ') || 'none'}`, 78, '  '));
      for (const k of r.firewall.kubeProxy) out.push(...wrapText(`kube-proxy (${k.family === 'ip' ? 'IPv4' : 'IPv6'}): ${k.versions}`, 78, '  '));
    } else out.push('firewall: unknown (could not be read)');
    if (r.protection) {
      const say = (p: { applies: boolean; protected: boolean | null; by: string[] }) =>
        !p.applies ? 'does not apply (no such NAT here)' : p.protected === null ? 'unknown' : p.protected ? `protected (${p.by.join('; ')})` : 'NOT protected';
      out.push(...wrapText(`Kubernetes 74839 (INVALID reply → pod resets a Service connection): ${say(r.protection.kubernetes74839)}`, 78));
      out.push(...wrapText(`Docker 1090 (INVALID reply → this node resets a masqueraded connection): ${say(r.protection.docker1090)}`, 78));
    }
    for (const u of r.unknown) out.push(...wrapText(`unknown: ${u.what} — ${u.why}`, 78, '  '));
    out.push('');
    for (const f of r.findings) {
      out.push(...wrapText(`[${f.severity.toUpperCase()}] ${f.title}`, 78));
      out.push(...wrapText(f.explanation, 78, '    '));
      if (f.fix) out.push(...wrapText(`fix: ${f.fix.command}`, 78, '    '), ...wrapText(`trade-offs: ${f.fix.tradeoffs}`, 78, '    '));
    }
    if (!r.findings.length) out.push('no findings');
    if (r.unknown.length) out.push('', 'Findings that would rest on what is unknown were not raised.');
    return out.join('\n');
  },
};
