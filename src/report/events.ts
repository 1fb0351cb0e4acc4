/** Event lines: JSON lines for machines, one readable line per event for people. */
import type { ProbeEvent } from '../probe/server.js';
import type { AttemptResult, ClientSummary } from '../probe/client.js';
import type { OutputFormat } from '../cli/command.js';

function clock(ts: number): string {
  return new Date(ts).toISOString().slice(11, 23);
}

export function formatProbeEvent(e: ProbeEvent, fmt: OutputFormat): string {
  if (fmt === 'json') return JSON.stringify(e);
  const t = clock(e.ts);
  switch (e.event) {
    case 'listening':
      return `${t} listening on ${e.bind}:${e.port}; forging ${e.count} segment(s) at next seq ${e.offset >= 0 ? '+' : ''}${e.offset} into each accepted connection`;
    case 'established':
      return `${t} ${e.conn} established`;
    case 'injected':
      return `${t} ${e.conn} injected ${e.count} segment(s) of ${e.bytes} bytes at seq ${e.seq} (next ${e.offset >= 0 ? '+' : ''}${e.offset}), ack ${e.ack}`;
    case 'fin':
      return `${t} ${e.conn} FIN from peer (still watching for a late RST)`;
    case 'reset':
      return `${t} ${e.conn} RST from peer (seq ${e.seq}, phase ${e.phase}) — RESET`;
    case 'closed':
      return `${t} ${e.conn} verdict ${e.verdict.toUpperCase()} after ${e.ms} ms`;
    case 'summary':
      return `${t} summary: ${e.connections} connection(s), ${e.reset} reset, ${e.clean} clean, ${e.open} open, ${e.injected} injected${e.evicted ? `, ${e.evicted} evicted` : ''}`;
  }
}

export function formatAttempt(r: AttemptResult, fmt: OutputFormat): string {
  if (fmt === 'json') return JSON.stringify({ event: 'attempt', ts: Date.now(), ...r });
  const timing = r.connectMs === null ? `${r.totalMs} ms` : `connect ${r.connectMs} ms, total ${r.totalMs} ms`;
  const extra = [r.local ? `from ${r.local}` : '', r.bytes ? `${r.bytes} bytes read` : '', r.closedBy ? `closed by ${r.closedBy}` : '', r.closeStalled ? 'server never finished closing' : '', r.error ?? '']
    .filter(Boolean)
    .join(', ');
  return `attempt ${r.attempt}: ${r.outcome.toUpperCase()} (${timing}${extra ? `; ${extra}` : ''})`;
}

export function formatClientSummary(s: ClientSummary, fmt: OutputFormat): string {
  if (fmt === 'json') return JSON.stringify({ event: 'summary', ts: Date.now(), ...s });
  return `summary: ${s.attempts} attempt(s): ${s.ok} ok, ${s.reset} reset, ${s.timeout} timeout, ${s.refused} refused, ${s.error} error`;
}
