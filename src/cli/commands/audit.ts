import { UsageError } from '../../errors.js';
import { audit, type AuditReport } from '../../host/audit.js';
import { TARGET_FLAGS, TARGET_HELP, targetFromFlags } from '../../host/target.js';
import { parseDuration } from '../../util/duration.js';
import { OUTPUT_FLAG, outputFormat, parseFlags, type Command } from '../command.js';

const help = `Usage: ctprobe audit [--netns NAME | --pid PID | --pod NAME] [--proxy-idle-timeout 1h] [-o text|json]

Reads a host (or a pod's network namespace) and changes nothing. Reports:
  - the kernel and what it does with out-of-window packets (from ctprobe's conntrack model);
  - the conntrack sysctls (be_liberal, loose, ignore_invalid_rst, log_invalid, TCP timeouts);
  - how the firewall handles ctstate INVALID (iptables-save, legacy or nf_tables, and nft):
    which DROP rules exist, in which chain and position, reached from INPUT / FORWARD / PREROUTING;
  - kube-proxy, Docker and Istio rule shapes it recognises;
  - conntrack's invalid counter (conntrack -S);
  - with --proxy-idle-timeout, whether close_wait is shorter than the proxy's idle timeout (the
    half-closed leak window of a service-mesh sidecar).
Each finding has a severity, an explanation in plain words, and the command that fixes it with
its trade-offs.

Flags:
${TARGET_HELP}
  --proxy-idle-timeout DUR  the sidecar's TCP idle timeout (Envoy's default is 1h)
  -o text|json      findings for people (default) or one stable JSON document

Exit codes: 0 no high-severity finding, 1 a high-severity finding, 2 cannot run.
`;

function text(r: AuditReport): string {
  const out = [`ctprobe audit — ${r.target}`, `kernel ${r.kernel.release} (profile ${r.kernel.profile}: ${r.kernel.label})`, `  out-of-window packets through NAT: ${r.kernel.outOfWindow}`];
  const s = r.sysctls;
  out.push(`conntrack: be_liberal=${s.nf_conntrack_tcp_be_liberal} loose=${s.nf_conntrack_tcp_loose} ignore_invalid_rst=${s.nf_conntrack_tcp_ignore_invalid_rst ?? 'n/a'} log_invalid=${s.nf_conntrack_log_invalid} close_wait=${s.nf_conntrack_tcp_timeout_close_wait}s invalid=${r.conntrack.invalid ?? 'unknown'}`);
  out.push(`firewall: ${r.firewall.backends.join(', ') || 'none readable'}; platforms: ${r.firewall.platforms.map((p) => p.name).join(', ') || 'none recognised'}`);
  out.push('');
  for (const f of r.findings) {
    out.push(`[${f.severity.toUpperCase()}] ${f.title}`);
    out.push(`    ${f.explanation}`);
    if (f.fix) out.push(`    fix: ${f.fix.command}`, `    trade-offs: ${f.fix.tradeoffs}`);
  }
  if (!r.findings.length) out.push('no findings');
  return out.join('\n');
}

export const auditCommand: Command = {
  name: 'audit',
  summary: 'read a host or pod: kernel behaviour, conntrack sysctls, INVALID handling, findings',
  help,
  async run(argv) {
    const { values, positionals } = parseFlags(argv, { ...TARGET_FLAGS, 'proxy-idle-timeout': { type: 'string' }, ...OUTPUT_FLAG });
    if (positionals.length) throw new UsageError(`audit takes no arguments (got '${positionals[0]}')`);
    const fmt = outputFormat(values.output);
    const target = targetFromFlags(values);
    const idle = values['proxy-idle-timeout'] ? parseDuration(values['proxy-idle-timeout'], '--proxy-idle-timeout') / 1000 : null;
    const r = audit(target, { proxyIdleTimeoutS: idle });
    process.stdout.write((fmt === 'json' ? JSON.stringify(r, null, 2) : text(r)) + '\n');
    return r.findings.some((f) => f.severity === 'high') ? 1 : 0;
  },
};
