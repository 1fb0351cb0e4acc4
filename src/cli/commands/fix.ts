import { UsageError } from '../../errors.js';
import { applyFix, fixStatus, removeFix, type FixBackend, type FixChain, type FixMethod } from '../../host/fix.js';
import { TARGET_FLAGS, TARGET_HELP, targetFromFlags, describeTarget } from '../../host/target.js';
import { OUTPUT_FLAG, outputFormat, parseFlags, type Command } from '../command.js';

const help = `Usage: ctprobe fix apply|remove|status --method drop-invalid|be-liberal [--chain INPUT|FORWARD]
                   [--backend iptables|nft] [--netns NAME | --pid PID | --pod NAME] [--dry-run] [-o text|json]

The seed's MY-WORKAROUND chain, done right: idempotent (apply twice = once), reversible (after
apply + remove, iptables-save and nft list ruleset are as before, byte for byte), touching only
what ctprobe added, each change one transaction.
  drop-invalid  iptables: chain CTPROBE-INVALID (ctstate INVALID → DROP, RETURN) jumped to from
                position 1 of --chain, every rule commented "ctprobe", via iptables-restore --noflush;
                nft: table inet ctprobe with one base chain, via one nft -f.
                INPUT (default) is right for MASQUERADEd containers (libnetwork PR 2275): the INVALID
                reply is addressed to the host. FORWARD covers DNATed pod traffic (kube-proxy).
  be-liberal    net.netfilter.nf_conntrack_tcp_be_liberal=1; remove restores the previous value.
Trade-offs: dropping INVALID breaks asymmetric routing (Kubernetes 94861); be_liberal stops
conntrack from judging windows at all. See 'ctprobe audit'.

Flags:
  --method M        drop-invalid or be-liberal (status: both)
  --chain C         INPUT (default) or FORWARD, for drop-invalid
  --backend B       iptables (default) or nft, for drop-invalid
${TARGET_HELP}
  --dry-run         print the exact commands / ruleset text, change nothing
  -o text|json

Exit codes: 0 done (or nothing to do), 2 cannot run.
`;

export const fixCommand: Command = {
  name: 'fix',
  summary: 'apply / remove / show a workaround (INVALID drop chain, be_liberal), reversibly',
  help,
  async run(argv) {
    const { values, positionals } = parseFlags(argv, { method: { type: 'string' }, chain: { type: 'string' }, backend: { type: 'string' }, 'dry-run': { type: 'boolean' }, ...TARGET_FLAGS, ...OUTPUT_FLAG });
    const fmt = outputFormat(values.output);
    const action = positionals[0];
    if (!action || !['apply', 'remove', 'status'].includes(action) || positionals.length > 1) throw new UsageError('fix needs one of: apply, remove, status (see --help)');
    const method = values.method as FixMethod | undefined;
    if (action !== 'status' && method !== 'drop-invalid' && method !== 'be-liberal') throw new UsageError('--method must be drop-invalid or be-liberal');
    const chain = (values.chain ?? 'INPUT').toUpperCase() as FixChain;
    if (chain !== 'INPUT' && chain !== 'FORWARD') throw new UsageError(`--chain: '${values.chain}' is not INPUT or FORWARD`);
    const backend = (values.backend ?? 'iptables') as FixBackend;
    if (backend !== 'iptables' && backend !== 'nft') throw new UsageError(`--backend: '${values.backend}' is not iptables or nft`);
    const target = targetFromFlags(values);
    const w = (s: string) => process.stdout.write(s + '\n');
    if (action === 'status') {
      const s = fixStatus(target);
      if (fmt === 'json') w(JSON.stringify({ target: describeTarget(target), ...s }));
      else {
        w(`${describeTarget(target)}:`);
        w(`  drop-invalid: iptables ${s.dropInvalid.iptables.join(', ') || 'not applied'}; nft ${s.dropInvalid.nft.join(', ') || 'not applied'}`);
        w(`  be_liberal=${s.beLiberal.value ?? 'n/a'}${s.beLiberal.appliedByCtprobe ? ` (set by ctprobe; was ${s.beLiberal.previous})` : ''}`);
      }
      return 0;
    }
    const dryRun = Boolean(values['dry-run']);
    const r = action === 'apply' ? applyFix(target, method!, { chain, backend, dryRun }) : removeFix(target, method!, { dryRun });
    if (fmt === 'json') w(JSON.stringify({ target: describeTarget(target), action, method, dryRun, ...r }));
    else {
      w(`${describeTarget(target)}: ${r.message}`);
      if (dryRun || r.changed) for (const c of r.commands) w(c.trimEnd().split('\n').map((l) => `  ${l}`).join('\n'));
    }
    return 0;
  },
};
