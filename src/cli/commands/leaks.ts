import { UsageError } from '../../errors.js';
import { DEFAULT_LEAK_OPTIONS as D } from '../../inspect/leaks.js';
import { defineCommand, EXIT, TARGET_FLAG_TABLE } from '../command.js';

export const leaksCommand = defineCommand({
  name: 'leaks',
  usage: ['leaks [--netns NAME | --pid PID | --pod NAME] [--proxy-port N] [--idle-timeout DUR] [-o text|json]', 'leaks --ss-file F [--conntrack-file F] | --from BUNDLE  [--proxy-port N] [-o text|json]'],
  about: `Finds the half-closed connection leak of a sidecar TCP proxy (Istio/Envoy TCPProxy on 15001, Istio
issue 43297): a proxy socket in FIN-WAIT-2 towards the application and its partner in CLOSE-WAIT
towards the upstream, owned by the same process, with no conntrack entry left for the
application's connection. It happens when the upstream closes first and the application closes
after conntrack's CLOSE_WAIT entry expired (nf_conntrack_tcp_timeout_close_wait, 60 s): the
application's FIN is INVALID, is not redirected, and never reaches the proxy. The pair lives until
the proxy's idle timeout (Envoy: 1 h), and the application's port, free again, may be reused.

Live (as root): runs 'ss -tanoepi' and 'conntrack -L' in the target namespace. Offline (a support
bundle): --ss-file with the output of 'ss -tanoepi' (or a whole host's 'ss -naoep': netlink, unix,
packet sockets are skipped and counted; old and new iproute2 layouts; always with -n) and
--conntrack-file with 'conntrack -L' or a copy of /proc/net/nf_conntrack (IPv6 compared as
addresses, expanded or not).`,
  flags: {
    ...TARGET_FLAG_TABLE,
    'proxy-port': { type: 'int', default: D.proxyPort, min: 1, max: 65535, help: "the proxy's inbound port" },
    'idle-timeout': { type: 'duration', default: D.idleTimeoutS * 1000, help: "the proxy's idle timeout, for how long a leak can live" },
    'ss-file': { type: 'string', arg: 'F', help: 'read sockets from a file instead of running ss' },
    from: { type: 'string', arg: 'BUNDLE', help: "read a support bundle ('ctprobe collect'): its ss -tanoepi and conntrack -L" },
    'conntrack-file': { type: 'string', arg: 'F', help: 'read conntrack entries from a file (without it, offline mode cannot rule out tracked connections and says so)' },
  },
  more: 'Example: ctprobe leaks --ss-file ss.txt --conntrack-file ct.txt',
  exits: '0 no leak, 1 leak found',
  async run({ flags: f, args, out }) {
    if (args.length) throw new UsageError(`leaks takes no arguments (got '${args[0]}')`);
    if (f.conntrackFile && !f.ssFile) throw new UsageError('--conntrack-file needs --ss-file');
    if (f.ssFile && (f.netns || f.pid || f.pod)) throw new UsageError('--ss-file reads a file: it does not combine with --netns/--pid/--pod');
    if (f.from && (f.ssFile || f.netns || f.pid || f.pod)) throw new UsageError('--from reads a bundle: it does not combine with --ss-file or --netns/--pid/--pod');
    const [{ leakReport }, { targetFromFlags }, { leakReport: render }] = await Promise.all([import('../../host/leaks.js'), import('../../host/target.js'), import('../../report/leaks.js')]);
    const src = f.from ? { kind: 'bundle' as const, path: f.from } : f.ssFile ? { kind: 'files' as const, ss: f.ssFile, conntrack: f.conntrackFile ?? null } : { kind: 'live' as const, target: targetFromFlags(f) };
    const r = await leakReport(src, { proxyPort: f.proxyPort, idleTimeoutS: f.idleTimeout / 1000 });
    out.result(render, r);
    return r.leaks.length || r.halfLeaks.length ? EXIT.finding : EXIT.ok;
  },
});
