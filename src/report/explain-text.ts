/**
 * `explain` for people: per packet that matters (IGNORE, INVALID, RST, FIN, and the handshake of a
 * connection that has any) two or three lines fitting 80 columns, every packet with `verbose`;
 * then a summary per connection. Sequence numbers are relative to each side's first (as tcpdump
 * prints them); the kernel's reasons quote absolute ones, as the kernel logs them.
 */
import type { ExplainedPacket, ExplainSummary } from '../conntrack/explain.js';
import type { ExplainHeader } from './explain.js';
import { endpointText, FlowTracker, hasFlag, type FlowTrace, type PacketRow } from './flows.js';
import { paint, wrapText } from './text.js';

export type TimeStyle = 'relative' | 'wall' | 'epoch';

export interface ExplainTextOptions {
  verbose: boolean;
  time: TimeStyle;
  /** Show only INVALID packets, or IGNORE and INVALID ones (--only). */
  only: 'invalid' | 'ignored' | null;
}

const WIDTH = 80;
const HANDSHAKE_KEPT = 4;

/** Time of day in UTC with microseconds: 14:35:12.594835. */
export function wallClock(tsSec: number): string {
  const d = new Date(Math.floor(tsSec) * 1000);
  const us = Math.round((tsSec - Math.floor(tsSec)) * 1e6);
  return `${d.toISOString().slice(11, 19)}.${String(Math.min(us, 999999)).padStart(6, '0')}`;
}

export function timeText(style: TimeStyle, tsSec: number, t0: number): string {
  if (style === 'epoch') return tsSec.toFixed(6);
  if (style === 'wall') return wallClock(tsSec);
  return `+${(tsSec - t0).toFixed(6)}`;
}

/** The first line of a packet: where it goes, its flags, relative seq/ack, length. */
export function packetHead(r: PacketRow, time: string): string {
  const ack = r.relAck === null ? '' : ` ack ${r.relAck}`;
  const where = `#${r.index} ${time} ${endpointText(r.src)} > ${endpointText(r.dst)}`;
  const what = `[${r.flags}] seq ${r.relSeq}${ack} len ${r.len}`;
  // Long addresses (IPv6) push the segment to its own line rather than past 80 columns.
  return where.length + 1 + what.length <= WIDTH ? `${where} ${what}` : `${where}\n    ${what}`;
}

const stateText = (r: PacketRow) => (r.stateBefore === r.stateAfter ? r.stateAfter : `${r.stateBefore} → ${r.stateAfter}`);

/** What the packet is and what follows, in words (no colour): the lines after the head. */
export function packetMeaning(r: PacketRow, flow: Pick<FlowTrace, 'client' | 'nat'>): string[] {
  const quoted = (s: string | null) => (s ? ` "${s}"${r.logged ? '' : ' (not logged on this kernel)'}` : '');
  const extra = r.secondaryReason ? `; also "${r.secondaryReason}"` : r.note ? `; ${r.note}` : '';
  if (r.fromNatHost && hasFlag(r.flags, 'RST')) {
    const cause = r.answers !== null ? `packet #${r.answers}` : 'a reply';
    return [
      `${paint('RESET', 'red')} sent by the NAT host itself: ${cause} was INVALID, so not de-NATed; it reached the host's own TCP, which has no such connection and resets ${endpointText(flow.client)}'s connection at the server (conntrack: "invalid new", a RST with no entry)`,
    ];
  }
  const where = r.natted ? ` (to ${endpointText(flow.client)} through NAT)` : r.fromNatHost ? ' (from the NAT host itself)' : '';
  if (r.verdict === 'ACCEPT') return [`${r.dir}${where} ${stateText(r)}${extra}`];
  if (r.verdict === 'IGNORE') return [`${r.dir}${where} ${stateText(r)} ${paint('IGNORE', 'yellow')}${quoted(r.reason)}${extra} (passes; state not updated)`];
  const consequence = r.natted
    ? 'not de-NATed: the NAT host takes it for itself and its TCP answers with RST (unless a ctstate INVALID DROP rule drops it)'
    : r.consequence.replace(/^INVALID: /, '');
  return [`${r.dir}${where} ${stateText(r)} ${paint('INVALID', 'red')}${quoted(r.reason)}${extra}`, consequence];
}

/** A row to keep (the tracker's row of a packet it does not keep is reused). */
function copyRow(r: PacketRow): PacketRow {
  return { ...r, src: { ...r.src }, dst: { ...r.dst } };
}

/**
 * The text stream: `packet` returns the lines to print now (maybe none, maybe a held-back
 * handshake first); `summary` returns the closing block.
 */
export class ExplainText {
  private readonly tracker = new FlowTracker(0);
  private t0: number | null = null;
  private readonly held = new Map<FlowTrace, PacketRow[]>();
  private readonly shownFlows = new Set<FlowTrace>();
  private shown = 0;
  private seen = 0;

  constructor(private readonly o: ExplainTextOptions) {}

  private render(r: PacketRow, flow: FlowTrace): string {
    const lines = [packetHead(r, timeText(this.o.time, r.tsSec, this.t0!))];
    for (const m of packetMeaning(r, flow)) lines.push(...wrapText(m, WIDTH, '    '));
    return lines.join('\n');
  }

  /** The first lines: what is replayed, under which kernel's rules. */
  header(h: ExplainHeader): string {
    const out = wrapText(`explain ${h.file} — modelling kernel ${h.kernel} (profile ${h.profile.id}: ${h.profile.label})`, WIDTH);
    if (h.profile.caveat) out.push(...wrapText(`note: ${h.profile.caveat}`, WIDTH, '  '));
    return out.join('\n');
  }

  /** How to read the lines that follow (after the header). */
  legend(t0: number): string {
    const time = this.o.time === 'relative' ? `time: seconds since the first packet (${wallClock(t0)} UTC)` : this.o.time === 'wall' ? 'time: of day, UTC' : 'time: seconds since the epoch';
    const which = this.o.only ? `only ${this.o.only === 'invalid' ? 'INVALID' : 'IGNORE and INVALID'} packets` : this.o.verbose ? 'every packet' : 'the packets that matter (-v: every packet)';
    return wrapText(`${time}; seq/ack relative to each side's first; ${which}`, WIDTH).join('\n');
  }

  packet(p: ExplainedPacket): string[] {
    this.t0 ??= p.tsSec;
    this.seen++;
    const { row, flow } = this.tracker.add(p);
    const o = this.o;
    let show: boolean;
    if (o.only === 'invalid') show = row.verdict === 'INVALID';
    else if (o.only === 'ignored') show = row.verdict !== 'ACCEPT';
    else show = o.verbose || row.matters || p.captureMissed > 0;
    if (!show) {
      if (!o.only && !o.verbose && row.handshake && !this.shownFlows.has(flow)) {
        const h = this.held.get(flow) ?? [];
        if (h.length < HANDSHAKE_KEPT) h.push(copyRow(row));
        this.held.set(flow, h);
      }
      return [];
    }
    const out: string[] = [];
    const h = this.held.get(flow);
    if (h) {
      for (const x of h) out.push(this.render(x, flow));
      this.shown += h.length;
      this.held.delete(flow);
    }
    this.shownFlows.add(flow);
    out.push(this.render(row, flow));
    if (p.captureMissed) out.push(...wrapText(`the capture missed ${p.captureMissed} bytes this packet acknowledges (not captured, but the kernel saw them: modelled as sent)`, WIDTH, '    '));
    this.shown++;
    return out;
  }

  summary(s: ExplainSummary): string {
    const out: string[] = [];
    const hidden = this.seen - this.shown;
    if (hidden > 0 && !this.o.verbose)
      out.push(...wrapText(`(${hidden} of ${this.seen} packets not shown: ${this.o.only ? `not ${this.o.only === 'invalid' ? 'INVALID' : 'IGNORE or INVALID'}` : 'accepted without FIN or RST'}; -v shows every packet)`, WIDTH));
    const flows = this.tracker.order;
    out.push('', `connections (${flows.length}):`);
    for (const f of flows) {
      const c = f.counts;
      out.push(`  ${f.id}${f.nat ? ` via NAT ${endpointText(f.nat)}` : ''}`);
      const parts = [`${c.packets} packet${c.packets === 1 ? '' : 's'}: ${c.accept} accept, ${c.ignore} ignore, ${c.invalid ? paint(`${c.invalid} INVALID`, 'red') : '0 INVALID'}`];
      if (c.hostResets) parts.push(paint(`reset by the NAT host (${c.hostResets} RST)`, 'red'));
      parts.push(`final state ${f.finalState}`);
      out.push(...wrapText(parts.join('; '), WIDTH, '      '));
      const first = f.firstInvalid;
      if (first) out.push(...wrapText(`first INVALID #${first.index}: "${first.reason ?? ''}"`, WIDTH, '      '));
    }
    out.push(...wrapText(`summary: ${s.tcp} TCP packets (${s.duplicates} duplicate copies, ${s.skipped} non-TCP skipped): ${s.accept} accept, ${s.ignore} ignore, ${s.invalid} INVALID`, WIDTH));
    // what the capture lost or reshaped, so no verdict is read as the kernel's that is not
    for (const f of s.flows) if (f.captureMissed) out.push(...wrapText(`${f.flow}: the capture missed ${f.captureMissed} bytes`, WIDTH, '  '));
    if (s.captureMissed) out.push(...wrapText(`the capture missed ${s.captureMissed} bytes (ACKed but never captured): a capture loss, not the kernel's — those bytes were modelled as sent`, WIDTH));
    if (s.lengthFromFrame) out.push(...wrapText(`${s.lengthFromFrame} TSO/BIG TCP segments (IP length 0, captured on the sender) sized by their frame`, WIDTH));
    if (s.cutToSnaplen) out.push(...wrapText(`${s.cutToSnaplen} records longer than the snaplen were cut to it`, WIDTH));
    if (s.invalid)
      out.push(...wrapText('INVALID packets are not de-NATed: behind NAT they reach the host itself and are answered with RST. Fixes: ctprobe fix apply --method drop-invalid | be-liberal (see ctprobe audit).', WIDTH));
    return out.join('\n');
  }
}
