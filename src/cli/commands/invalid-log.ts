import { UsageError } from '../../errors.js';
import { KernelLog } from '../../host/kmsg.js';
import { invalidLogOff, invalidLogOn, invalidLogStatus } from '../../host/invalidlog.js';
import { describeTarget, TARGET_FLAGS, TARGET_HELP, targetFromFlags } from '../../host/target.js';
import { parseKernelLogLine } from '../../inspect/kernlog.js';
import { parseDuration } from '../../util/duration.js';
import { OUTPUT_FLAG, outputFormat, parseFlags, type Command } from '../command.js';

const help = `Usage: ctprobe invalid-log on|off|status [--netns NAME | --pid PID | --pod NAME]
                           [--method sysctl|log-rule] [--prefix P] [--all-netns]
       ctprobe invalid-log watch [--duration 30s] [--only-conntrack] [-o text|json]

Makes the kernel say why it marks packets INVALID, and reads what it says.
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

Flags:
${TARGET_HELP}
  --method M        sysctl (default) or log-rule
  --prefix P        LOG prefix for log-rule (default CTPROBE_INVALID)
  --all-netns       also set the root namespace's nf_log_all_netns=1 (on), restored by off
  --duration DUR    stop watching after this long (default: until Ctrl-C)
  -o text|json      text (default) or JSON lines

Exit codes: 0 done, 2 cannot run (not root, /dev/kmsg unreadable).
`;

export const invalidLogCommand: Command = {
  name: 'invalid-log',
  summary: 'turn conntrack’s invalid-packet logging on/off, and watch it as structured events',
  help,
  async run(argv) {
    const { values, positionals } = parseFlags(argv, { ...TARGET_FLAGS, method: { type: 'string' }, prefix: { type: 'string' }, 'all-netns': { type: 'boolean' }, duration: { type: 'string' }, 'only-conntrack': { type: 'boolean' }, ...OUTPUT_FLAG });
    const fmt = outputFormat(values.output);
    const action = positionals[0];
    const w = (s: string) => process.stdout.write(s + '\n');
    if (action === 'watch') {
      const klog = KernelLog.open();
      if (!klog) throw new UsageError('cannot read /dev/kmsg: run as root (or with CAP_SYSLOG)');
      const until = values.duration ? Date.now() + parseDuration(values.duration, '--duration') : Infinity;
      if (fmt === 'text') process.stderr.write(`watching the kernel log for invalid-packet lines${until === Infinity ? ' (Ctrl-C to stop)' : ''}…\n`);
      let stop = false;
      const onSig = () => (stop = true);
      process.once('SIGINT', onSig);
      process.once('SIGTERM', onSig);
      let n = 0;
      while (!stop && Date.now() < until) {
        for (const r of klog.drain()) {
          const e = parseKernelLogLine(r.text);
          if (!e || (values['only-conntrack'] && e.reason === null)) continue;
          n++;
          if (fmt === 'json') w(JSON.stringify({ event: 'invalid', usec: r.usec, ...e }));
          else w(`${e.source}${e.reason ? `: ${e.reason}` : ''} — ${e.proto ?? ''} ${e.src}:${e.sport ?? ''} → ${e.dst}:${e.dport ?? ''} [${e.flags.join(' ')}] seq ${e.seq ?? '-'} ack ${e.ack ?? '-'}${e.in ? ` in ${e.in}` : ''}${e.out ? ` out ${e.out}` : ''}`);
        }
        await new Promise((res) => setTimeout(res, 200));
      }
      klog.close();
      process.off('SIGINT', onSig);
      process.off('SIGTERM', onSig);
      if (fmt === 'text') process.stderr.write(`${n} line(s)\n`);
      return 0;
    }
    if (action !== 'on' && action !== 'off' && action !== 'status') throw new UsageError('invalid-log needs one of: on, off, status, watch (see --help)');
    const t = targetFromFlags(values);
    if (action === 'status') {
      const s = invalidLogStatus(t);
      if (fmt === 'json') w(JSON.stringify({ target: describeTarget(t), ...s }));
      else w(`${describeTarget(t)}: nf_conntrack_log_invalid=${s.logInvalid ?? 'n/a'}, LOG rules ${s.logRule === null ? 'none' : `prefix "${s.logRule}"`}, root nf_log_all_netns=${s.logAllNetns ?? 'n/a'} → ${s.effective ? 'invalid packets are logged' : 'nothing is logged from here'}${s.setByCtprobe ? ' (set by ctprobe)' : ''}`);
      return 0;
    }
    const method = values.method ?? 'sysctl';
    if (method !== 'sysctl' && method !== 'log-rule') throw new UsageError(`--method: '${method}' is not sysctl or log-rule`);
    const said = action === 'on' ? invalidLogOn(t, { method, prefix: values.prefix ?? 'CTPROBE_INVALID', allNetns: Boolean(values['all-netns']) }) : invalidLogOff(t);
    if (fmt === 'json') w(JSON.stringify({ target: describeTarget(t), action, said }));
    else for (const s of said) w(`${describeTarget(t)}: ${s}`);
    return 0;
  },
};
