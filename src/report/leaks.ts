/** `leaks`' result: each leaked pair, why it happens and what to change; or one JSON document. */
import type { LeakReport } from '../host/leaks.js';
import type { Leak } from '../inspect/leaks.js';
import { formatMs } from '../util/duration.js';
import type { Renderer } from './output.js';

function leakText(l: Leak, n: number): string {
  const p = l.process ? `${l.process.name} (pid ${l.process.pid}, fd ${l.process.fd})` : 'an unknown process';
  return [
    `${n}. ${p} holds a half-closed pair for application endpoint ${l.app}:`,
    `     FIN-WAIT-2 ${l.proxy} ↔ ${l.app}${l.closeWait ? `\n     CLOSE-WAIT ${l.closeWait.local}:${l.closeWait.localPort} → ${l.upstream}` : '\n     (no CLOSE-WAIT partner found: a half leak)'}`,
    `     it stays until the proxy's idle timeout: up to ${formatMs(l.maxRemainingS * 1000)} after the last data`,
    l.portReuseRisk ? `     port ${l.appPort} is free again: a new connection from it meets the stale socket` : '',
  ]
    .filter(Boolean)
    .join('\n');
}

const leakJson = (l: Leak) => ({
  app: l.app,
  proxy: l.proxy,
  upstream: l.upstream,
  process: l.process,
  finWait2: { local: `${l.finWait2.local}:${l.finWait2.localPort}`, ino: l.finWait2.ino },
  closeWait: l.closeWait ? { local: `${l.closeWait.local}:${l.closeWait.localPort}`, peer: l.upstream, ino: l.closeWait.ino } : null,
  maxRemainingS: l.maxRemainingS,
  portReuseRisk: l.portReuseRisk,
});

export const leakReport: Renderer<LeakReport> = {
  json: (r) => ({ type: 'leaks', source: r.source, proxyPort: r.proxyPort, idleTimeoutS: r.idleTimeoutS, sockets: r.sockets, skippedSockets: r.skippedSockets, conntrackEntries: r.conntrackEntries, leaks: r.leaks.map(leakJson), halfLeaks: r.halfLeaks.map(leakJson) }),
  text(r) {
    const out = [`ctprobe leaks — ${r.source}: ${r.sockets} sockets, ${r.conntrackEntries === null ? 'conntrack unknown' : `${r.conntrackEntries} conntrack entries`}, proxy port ${r.proxyPort}`];
    const skipped = Object.entries(r.skippedSockets);
    if (skipped.length) out.push(`skipped (not TCP/UDP): ${skipped.map(([k, v]) => `${v} ${k}`).join(', ')}`);
    if (r.conntrackEntries === null) out.push('note: without conntrack entries (--conntrack-file) a pair whose connection is still tracked cannot be ruled out');
    if (!r.leaks.length && !r.halfLeaks.length) out.push('no half-closed proxy leaks');
    [...r.leaks, ...r.halfLeaks].forEach((l, i) => out.push(leakText(l, i + 1)));
    if (r.leaks.length || r.halfLeaks.length)
      out.push(
        '',
        'Why: the upstream closed first; conntrack’s CLOSE_WAIT entry expired before the application closed, so',
        'the application’s FIN was INVALID, was not redirected to the proxy, and the proxy still waits for it.',
        'What to change: raise net.netfilter.nf_conntrack_tcp_timeout_close_wait above the longest time the',
        'application waits before closing a half-closed connection, and/or lower the proxy’s idle timeout',
        '(Envoy TCPProxy idle_timeout). Reproduce it: ctprobe lab half-close-leak.',
      );
    return out.join('\n');
  },
};
