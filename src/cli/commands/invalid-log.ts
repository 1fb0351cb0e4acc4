import { UsageError } from '../../errors.js';
import { defineCommand, EXIT, TARGET_FLAG_TABLE } from '../command.js';

export const invalidLogCommand = defineCommand({
  name: 'invalid-log',
  usage: ['invalid-log on|off|status [--netns NAME | --pid PID | --pod NAME] [--method sysctl|log-rule] [--all-netns]', 'invalid-log watch [--duration DUR] [--only-conntrack] [-o text|json]', 'invalid-log show --from BUNDLE | --log-file F [--only-conntrack] [-o text|json]'],
  about: `Makes the kernel say why it marks packets INVALID, and reads what it says.
  on      sysctl method (default): net.netfilter.nf_conntrack_log_invalid=6 in the target
          namespace: the kernel prints "nf_ct_proto_6: <reason> …" for every INVALID TCP packet.
          log-rule method: mangle LOG rules with --prefix for ctstate INVALID TCP packets (the seed's
          ISTIO_*_INVALID rules), in ctprobe's own chain.
          Lines from a container's namespace are printed only when the root namespace's
          net.netfilter.nf_log_all_netns is 1: --all-netns sets it (and off restores it).
  off     restores what on changed, nothing else
  status  what is set, and whether lines from the target will actually be printed
  watch   follows the kernel log (/dev/kmsg, from now on) and prints each invalid-packet line as an
          event: source (nf_ct_proto_6 or the LOG prefix), reason, interfaces, addresses, ports,
          seq, ack, flags
  show    the same events from a support bundle's kernel log (ctprobe collect), or from a saved
          kernel log in any form (dmesg, dmesg -T, journalctl -k, syslog's kern.log)`,
  flags: {
    ...TARGET_FLAG_TABLE,
    method: { type: 'choice', arg: 'M', choices: ['sysctl', 'log-rule'], default: 'sysctl', help: 'how on makes the kernel log' },
    prefix: { type: 'string', arg: 'P', default: 'CTPROBE_INVALID', help: 'LOG prefix for log-rule' },
    'all-netns': { type: 'boolean', help: "also set the root namespace's nf_log_all_netns=1 (on), restored by off" },
    duration: { type: 'duration', defaultText: 'until Ctrl-C', help: 'watch: stop after this long' },
    'only-conntrack': { type: 'boolean', help: "watch/show: only conntrack's own lines, not LOG-target ones" },
    from: { type: 'string', arg: 'BUNDLE', help: "show: the invalid-packet lines of a support bundle's kernel log" },
    'log-file': { type: 'string', arg: 'F', help: 'show: the invalid-packet lines of a saved kernel log (dmesg, dmesg -T, journalctl -k, /var/log/kern.log, syslog)' },
  },
  exits: '0 done',
  interruptible: true,
  async run({ flags: f, args, out, signal }) {
    const action = args[0];
    const [{ invalidLinesFromBundle, invalidLinesFromFile, invalidLogOff, invalidLogOn, invalidLogStatus, watchInvalidLog }, { describeTarget, targetFromFlags }, { invalidLogChange, invalidLogLines, invalidLogStatusReport }] = await Promise.all([
      import('../../host/invalidlog.js'),
      import('../../host/target.js'),
      import('../../report/host.js'),
    ]);
    if (action === 'show') {
      if (!f.from === !f.logFile) throw new UsageError('invalid-log show needs one of --from BUNDLE or --log-file F (for the live log: invalid-log watch)');
      const n = f.logFile ? await invalidLinesFromFile(f.logFile, f.onlyConntrack, out.lines(invalidLogLines)) : await invalidLinesFromBundle(f.from!, f.onlyConntrack, out.lines(invalidLogLines));
      out.progress(`${n} line(s)`);
      return EXIT.ok;
    }
    if (action === 'watch') {
      out.progress(`watching the kernel log for invalid-packet lines${f.duration === undefined ? ' (Ctrl-C to stop)' : ''}…`);
      const n = await watchInvalidLog({ untilMs: f.duration === undefined ? Infinity : Date.now() + f.duration, onlyConntrack: f.onlyConntrack, signal }, out.lines(invalidLogLines));
      out.progress(`${n} line(s)`);
      return EXIT.ok;
    }
    if (action !== 'on' && action !== 'off' && action !== 'status') throw new UsageError('invalid-log needs one of: on, off, status, watch, show (see --help)');
    const t = targetFromFlags(f);
    const target = describeTarget(t);
    if (action === 'status') out.result(invalidLogStatusReport, { target, ...invalidLogStatus(t) });
    else out.result(invalidLogChange, { target, action, said: action === 'on' ? invalidLogOn(t, { method: f.method, prefix: f.prefix, allNetns: f.allNetns }) : invalidLogOff(t) });
    return EXIT.ok;
  },
});
