import { UsageError } from '../../errors.js';
import { defineCommand, EXIT, TARGET_FLAG_TABLE } from '../command.js';

export const auditCommand = defineCommand({
  name: 'audit',
  usage: ['audit [--netns NAME | --pid PID | --pod NAME] [--proxy-idle-timeout DUR] [-o text|json]', 'audit --from BUNDLE [-o text|json]'],
  about: `Reads a host (or a pod's network namespace) and changes nothing. Reports:
  - the kernel and what it does with out-of-window packets (from ctprobe's conntrack model);
  - the conntrack sysctls (be_liberal, loose, ignore_invalid_rst, log_invalid, TCP timeouts);
  - the NAT in use (MASQUERADE/SNAT, DNAT, REDIRECT) and how the firewall handles ctstate INVALID
    (iptables-save, legacy or nf_tables, and nft): which DROP rules exist, where, reached from
    INPUT / FORWARD / PREROUTING;
  - kube-proxy, Docker and Istio rule shapes it recognises;
  - conntrack's invalid counter (conntrack -S);
  - with --proxy-idle-timeout, whether close_wait is shorter than the proxy's idle timeout (the
    half-closed leak window of a service-mesh sidecar).
Each finding has a severity, an explanation in plain words, and the command that fixes it with
its trade-offs. Severity follows what is there: with no NAT nothing is mis-delivered, so a missing
INVALID drop is not a finding. What cannot be read is reported as unknown, and no finding rests on it.`,
  flags: {
    ...TARGET_FLAG_TABLE,
    'proxy-idle-timeout': { type: 'duration', help: "the sidecar's TCP idle timeout (Envoy's default is 1h)" },
    from: { type: 'string', arg: 'BUNDLE', help: "audit a support bundle ('ctprobe collect', .tar.gz or directory) instead of this host" },
  },
  exits: '0 no high-severity finding, 1 a high-severity finding',
  async run({ flags: f, args, out }) {
    if (args.length) throw new UsageError(`audit takes no arguments (got '${args[0]}')`);
    if (f.from && (f.netns || f.pid || f.pod)) throw new UsageError('--from reads a bundle: it does not combine with --netns/--pid/--pod');
    const [{ audit, auditBundle }, { targetFromFlags }, { auditReport }] = await Promise.all([import('../../host/audit.js'), import('../../host/target.js'), import('../../report/audit.js')]);
    const o = { proxyIdleTimeoutS: f.proxyIdleTimeout === undefined ? null : f.proxyIdleTimeout / 1000 };
    const r = f.from ? await auditBundle(f.from, o) : audit(targetFromFlags(f), o);
    out.result(auditReport, r);
    return r.findings.some((x) => x.severity === 'high') ? EXIT.finding : EXIT.ok;
  },
});
