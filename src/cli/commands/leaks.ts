import { UsageError } from '../../errors.js';
import { fileLineBatches } from '../../inspect/lines.js';
import { findTool } from '../../host/exec.js';
import { describeTarget, runInTarget, TARGET_FLAGS, TARGET_HELP, targetFromFlags } from '../../host/target.js';
import { parseConntrack, type CtEntry } from '../../inspect/conntrack.js';
import { findLeaks, type Leak } from '../../inspect/leaks.js';
import { parseSs } from '../../inspect/ss.js';
import { formatMs, parseDuration, parseIntFlag } from '../../util/duration.js';
import { OUTPUT_FLAG, outputFormat, parseFlags, type Command } from '../command.js';

const help = `Usage: ctprobe leaks [--netns NAME | --pid PID | --pod NAME] [--proxy-port 15001] [--idle-timeout 1h]
                     [--ss-file F [--conntrack-file F]] [-o text|json]

Finds the half-closed connection leak of a sidecar TCP proxy (Istio/Envoy TCPProxy on 15001, Istio
issue 43297): a proxy socket in FIN-WAIT-2 towards the application and its partner in CLOSE-WAIT
towards the upstream, owned by the same process, with no conntrack entry left for the
application's connection. It happens when the upstream closes first and the application closes
after conntrack's CLOSE_WAIT entry expired (nf_conntrack_tcp_timeout_close_wait, 60 s): the
application's FIN is INVALID, is not redirected, and never reaches the proxy. The pair lives until
the proxy's idle timeout (Envoy: 1 h), and the application's port, free again, may be reused.

Live: runs 'ss -tanoepi' and 'conntrack -L' in the target namespace. Offline (a support bundle):
--ss-file with the output of 'ss -tanoepi' (or 'ss -naoep') and --conntrack-file with 'conntrack -L'.

Flags:
${TARGET_HELP}
  --proxy-port N       the proxy's inbound port (default 15001)
  --idle-timeout DUR   the proxy's idle timeout, for how long a leak can live (default 1h)
  --ss-file F          read sockets from a file instead of running ss
  --conntrack-file F   read conntrack entries from a file (without it, offline mode cannot
                       rule out tracked connections and says so)
  -o text|json

Exit codes: 0 no leak, 1 leak found, 2 cannot run.
Example: ctprobe leaks --ss-file ss.txt --conntrack-file ct.txt
`;


function leakText(l: Leak, n: number): string {
  const p = l.process ? `${l.process.name} (pid ${l.process.pid}, fd ${l.process.fd})` : 'an unknown process';
  return [
    `${n}. ${p} holds a half-closed pair for application endpoint ${l.app}:`,
    `     FIN-WAIT-2 ${l.proxy} ↔ ${l.app}${l.closeWait ? `\n     CLOSE-WAIT ${l.closeWait.local}:${l.closeWait.localPort} → ${l.upstream}` : '\n     (no CLOSE-WAIT partner found: a half leak)'}`,
    `     it stays until the proxy's idle timeout: up to ${formatMs(l.maxRemainingS * 1000)} after the last data`,
    l.portReuseRisk ? `     port ${l.appPort} is free again: a new connection from it meets the stale socket (connect timeout before Linux 6.2)` : '',
  ]
    .filter(Boolean)
    .join('\n');
}

export const leaksCommand: Command = {
  name: 'leaks',
  summary: 'find half-closed sidecar-proxy socket leaks (FIN-WAIT-2 + CLOSE-WAIT, no conntrack entry)',
  help,
  async run(argv) {
    const { values, positionals } = parseFlags(argv, { ...TARGET_FLAGS, 'proxy-port': { type: 'string' }, 'idle-timeout': { type: 'string' }, 'ss-file': { type: 'string' }, 'conntrack-file': { type: 'string' }, ...OUTPUT_FLAG });
    if (positionals.length) throw new UsageError(`leaks takes no arguments (got '${positionals[0]}')`);
    const fmt = outputFormat(values.output);
    const proxyPort = values['proxy-port'] ? parseIntFlag(values['proxy-port'], '--proxy-port', 1, 65535) : 15001;
    const idleTimeoutS = values['idle-timeout'] ? parseDuration(values['idle-timeout'], '--idle-timeout') / 1000 : 3600;
    let source: string;
    let sockets;
    let entries: CtEntry[] | null = null;
    if (values['ss-file']) {
      if (values.netns || values.pid || values.pod) throw new UsageError('--ss-file reads a file: it does not combine with --netns/--pid/--pod');
      source = values['ss-file'];
      sockets = await parseSs(fileLineBatches(values['ss-file']));
      if (values['conntrack-file']) entries = await parseConntrack(fileLineBatches(values['conntrack-file']));
    } else {
      const t = targetFromFlags(values);
      source = describeTarget(t);
      sockets = await parseSs(runInTarget(t, 'ss', ['-tanoepi']).stdout);
      if (findTool('conntrack')) entries = await parseConntrack(runInTarget(t, 'conntrack', ['-L'], { allowFail: true }).stdout, { lenient: true });
    }
    const { leaks, halfLeaks } = findLeaks(sockets, entries, { proxyPort, idleTimeoutS });
    const w = (s: string) => process.stdout.write(s + '\n');
    if (fmt === 'json') {
      const j = (l: Leak) => ({ app: l.app, proxy: l.proxy, upstream: l.upstream, process: l.process, finWait2: { local: `${l.finWait2.local}:${l.finWait2.localPort}`, ino: l.finWait2.ino }, closeWait: l.closeWait ? { local: `${l.closeWait.local}:${l.closeWait.localPort}`, peer: l.upstream, ino: l.closeWait.ino } : null, maxRemainingS: l.maxRemainingS, portReuseRisk: l.portReuseRisk });
      w(JSON.stringify({ source, proxyPort, idleTimeoutS, sockets: sockets.length, conntrackEntries: entries?.length ?? null, leaks: leaks.map(j), halfLeaks: halfLeaks.map(j) }, null, 2));
    } else {
      w(`ctprobe leaks — ${source}: ${sockets.length} sockets, ${entries === null ? 'no conntrack data' : `${entries.length} conntrack entries`}, proxy port ${proxyPort}`);
      if (entries === null) w('note: without conntrack entries a pair whose connection is still tracked cannot be ruled out');
      if (!leaks.length && !halfLeaks.length) w('no half-closed proxy leaks');
      leaks.forEach((l, i) => w(leakText(l, i + 1)));
      halfLeaks.forEach((l, i) => w(leakText(l, leaks.length + i + 1)));
      if (leaks.length || halfLeaks.length) {
        w('');
        w('Why: the upstream closed first; conntrack’s CLOSE_WAIT entry expired before the application closed, so the');
        w('application’s FIN was INVALID, was not redirected to the proxy, and the proxy still waits for it.');
        w(`What to change: raise net.netfilter.nf_conntrack_tcp_timeout_close_wait above the longest time the application`);
        w('waits before closing a half-closed connection, and/or lower the proxy’s idle timeout (Envoy TCPProxy idle_timeout).');
        w('Reproduce it: ctprobe lab half-close-leak.');
      }
    }
    return leaks.length || halfLeaks.length ? 1 : 0;
  },
};
