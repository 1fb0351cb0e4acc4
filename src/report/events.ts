/** The reproducer's and the proxy's event streams: one readable line per event, or the contract's JSON line. */
import { encodeEvent, type ClientEvent, type ProxyEvent, type ServerEvent } from '../events.js';
import type { LineRenderer } from './output.js';

function clock(ts: number): string {
  return new Date(ts).toISOString().slice(11, 23);
}
const signed = (n: number) => (n >= 0 ? `+${n}` : `${n}`);

export const serverEvents: LineRenderer<ServerEvent> = {
  json: encodeEvent,
  text(e) {
    const t = clock(e.ts);
    switch (e.type) {
      case 'listening':
        return `${t} listening on ${e.bind}:${e.port}; forging ${e.count} segment(s) at next seq ${signed(e.offset)} into each accepted connection`;
      case 'established':
        return `${t} ${e.conn} established`;
      case 'injected':
        return `${t} ${e.conn} injected ${e.count} segment(s) of ${e.bytes} bytes at seq ${e.seq} (next ${signed(e.offset)}), ack ${e.ack}`;
      case 'fin':
        return `${t} ${e.conn} FIN from peer (still watching for a late RST)`;
      case 'reset':
        return `${t} ${e.conn} RST from peer (seq ${e.seq}, phase ${e.phase}) — RESET`;
      case 'closed':
        return `${t} ${e.conn} verdict ${e.verdict.toUpperCase()} after ${e.ms} ms`;
      case 'server-summary':
        return `${t} summary: ${e.connections} connection(s), ${e.reset} reset, ${e.clean} clean, ${e.open} open, ${e.injected} injected${e.evicted ? `, ${e.evicted} evicted` : ''}`;
    }
  },
};

export const clientEvents: LineRenderer<ClientEvent> = {
  json: encodeEvent,
  text(e) {
    if (e.type === 'client-summary')
      return `summary: ${e.attempts} attempt(s): ${e.ok} ok, ${e.reset} reset, ${e.timeout} timeout, ${e.refused} refused, ${e.error} error`;
    const timing = e.connectMs === null ? `${e.totalMs} ms` : `connect ${e.connectMs} ms, total ${e.totalMs} ms`;
    const extra = [e.local ? `from ${e.local}` : '', e.bytes ? `${e.bytes} bytes read` : '', e.closedBy ? `closed by ${e.closedBy}` : '', e.closeStalled ? 'server never finished closing' : '', e.error ?? '']
      .filter(Boolean)
      .join(', ');
    return `attempt ${e.attempt}: ${e.outcome.toUpperCase()} (${timing}${extra ? `; ${extra}` : ''})`;
  },
};

export const proxyEvents: LineRenderer<ProxyEvent> = {
  json: encodeEvent,
  text(e) {
    const t = clock(e.ts);
    switch (e.type) {
      case 'proxy-listening':
        return `${t} proxy listening on :${e.port}, idle timeout ${e.idleTimeoutMs} ms`;
      case 'accepted':
        return `${t} #${e.id} ${e.app} → ${e.upstream}`;
      case 'half-close':
        return `${t} #${e.id} FIN from ${e.from}, half-closing the other side`;
      case 'idle-timeout':
        return `${t} #${e.id} idle for ${e.idleMs} ms: closing`;
      case 'pair-closed':
        return `${t} #${e.id} closed (${e.reason}) after ${e.ms} ms`;
      case 'proxy-error':
        return `${t} #${e.id} ${e.side} error: ${e.message}`;
    }
  },
};
