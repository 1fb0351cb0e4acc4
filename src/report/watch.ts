/** The `watch` stream: one line per event (text for people, JSON lines with a `type`). */
import type { WatchEvent } from '../watch/agent.js';
import { jsonLine, type LineRenderer } from './output.js';

const who = (e: { netns: string | null; pod: string | null }) => (e.pod ? `pod ${e.pod} (netns ${e.netns})` : `netns ${e.netns ?? 'unknown'}`);

function startLine(e: Extract<WatchEvent, { type: 'watch-start' }>): string {
  const what = e.scope === 'all-netns' ? `all ${e.watching.length} network namespaces${e.unwatched ? ` (${e.unwatched} more over --max-netns)` : ''}` : e.watching[0] ? who(e.watching[0]) : 'nothing (the namespace is gone)';
  const cannot = e.limits.length ? `; cannot: ${e.limits.map((l) => `${l.says} — fix: ${l.fix}`).join('; ')}` : '; sees everything it needs';
  return `ctprobe watch: watching ${what} every ${e.intervalMs / 1000}s (conntrack statistics, half-close leaks, the kernel's invalid-packet log)${e.listen ? `, metrics on http://${e.listen}/metrics` : ''}${cannot}`;
}

function text(e: WatchEvent): string {
  switch (e.type) {
    case 'watch-start':
      return startLine(e);
    case 'invalid':
      return `INVALID ${who(e)}: ${e.source}${e.reason ? ` "${e.reason}"` : ''} ${e.src}:${e.sport ?? ''} → ${e.dst}:${e.dport ?? ''} [${e.flags.join(' ')}]${e.in ? ` in ${e.in}` : ''}${e.out ? ` out ${e.out}` : ''}${e.peerNetns ? ` (peer ${e.peerNetns})` : ''}`;
    case 'counter':
      return `counter ${who(e)}: conntrack ${e.counter} +${e.delta} (${e.total})`;
    case 'leak-appeared':
      return `LEAK ${who(e)}: proxy ${e.proxy}${e.process ? ` (${e.process}/${e.pid})` : ''} holds ${e.app} half-closed${e.upstream ? `, upstream ${e.upstream}` : ''}`;
    case 'leak-gone':
      return `leak gone ${who(e)}: ${e.app} after ${e.ageS}s (${e.why === 'closed' ? 'the proxy closed it' : 'the namespace is gone'})`;
    case 'netns-appeared':
      return `watching ${who(e)}${e.invalidLog === false ? ' (nf_conntrack_log_invalid off: counted, not explained)' : ''}`;
    case 'netns-gone':
      return `gone: ${who(e)}`;
    case 'lines-suppressed':
      return `${e.count} invalid-packet line(s) counted but not shown (--max-events)${e.missed ? `; ${e.missed} kernel log record(s) overwritten before read` : ''}`;
    case 'watch-error':
      return `error${e.netns ? ` in netns ${e.netns}` : ''}: ${e.message}`;
    case 'watch-stop':
      return `ctprobe watch stopped after ${e.cycles} cycle(s): ${e.lines} invalid-packet line(s), ${e.suppressed} not shown, ${e.missed} kernel log record(s) missed`;
  }
}

export const watchEvents: LineRenderer<WatchEvent> = {
  text,
  json: ({ type, ...body }) => jsonLine(type, body),
};
