import { UsageError } from '../../errors.js';
import { defineCommand, EXIT, TARGET_FLAG_TABLE } from '../command.js';

export const fixCommand = defineCommand({
  name: 'fix',
  usage: ['fix apply|remove --method drop-invalid|be-liberal [--chain INPUT|FORWARD] [--backend iptables|nft] [--dry-run]', 'fix status [--netns NAME | --pid PID | --pod NAME] [-o text|json]'],
  about: `The seed's MY-WORKAROUND chain, done right: idempotent (apply twice = once), reversible (after
apply + remove, iptables-save and nft list ruleset are as before, byte for byte), touching only
what ctprobe added, each change one transaction.
  drop-invalid  iptables: chain CTPROBE-INVALID (ctstate INVALID → DROP, RETURN) jumped to from
                position 1 of --chain, every rule commented "ctprobe", via iptables-restore --noflush;
                nft: table inet ctprobe with one base chain, via one nft -f.
                INPUT (default) is right for MASQUERADEd containers (libnetwork PR 2275): the INVALID
                reply is addressed to the host. FORWARD covers DNATed pod traffic (kube-proxy).
  be-liberal    net.netfilter.nf_conntrack_tcp_be_liberal=1; remove restores the previous value.
Trade-offs: dropping INVALID breaks asymmetric routing (Kubernetes 94861); be_liberal stops
conntrack from judging windows at all. See 'ctprobe audit'.`,
  flags: {
    method: { type: 'choice', arg: 'M', choices: ['drop-invalid', 'be-liberal'], help: 'the workaround (status shows both)' },
    chain: { type: 'choice', arg: 'C', choices: ['INPUT', 'FORWARD'], default: 'INPUT', help: 'for drop-invalid: where the jump goes' },
    backend: { type: 'choice', arg: 'B', choices: ['iptables', 'nft'], default: 'iptables', help: 'for drop-invalid' },
    ...TARGET_FLAG_TABLE,
    'dry-run': { type: 'boolean', help: 'print the exact commands / ruleset text, change nothing' },
  },
  exits: '0 done (or nothing to do)',
  async run({ flags: f, args, out }) {
    const action = args[0];
    if ((action !== 'apply' && action !== 'remove' && action !== 'status') || args.length > 1) throw new UsageError('fix needs one of: apply, remove, status (see --help)');
    const [{ applyFix, fixStatus, removeFix }, { describeTarget, targetFromFlags }, { fixOutcome, fixStatusReport }] = await Promise.all([import('../../host/fix.js'), import('../../host/target.js'), import('../../report/host.js')]);
    const target = targetFromFlags(f);
    if (action === 'status') {
      out.result(fixStatusReport, { target: describeTarget(target), ...fixStatus(target) });
      return EXIT.ok;
    }
    if (!f.method) throw new UsageError(`fix ${action} needs --method drop-invalid or --method be-liberal`);
    const chain = f.chain as 'INPUT' | 'FORWARD';
    const r = action === 'apply' ? applyFix(target, f.method, { chain, backend: f.backend, dryRun: f.dryRun }) : removeFix(target, f.method, { dryRun: f.dryRun });
    out.result(fixOutcome, { target: describeTarget(target), action, method: f.method, dryRun: f.dryRun, ...r });
    return EXIT.ok;
  },
});
