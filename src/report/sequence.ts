/**
 * A connection as a sequence diagram (hand-made SVG): the client, the host whose conntrack saw the
 * packets (the NAT host when replies were translated) and the server as columns; one arrow per
 * packet with its flags, relative seq/ack and length, time going down; conntrack's state beside
 * the host's column; IGNORE dashed amber, INVALID red with the kernel's reason, and the NAT host's
 * own RST drawn from the host, as the reset it is.
 */
import { endpointText, hasFlag, rowReason, type FlowTrace, type PacketRow } from './flows.js';
import { html, num, type Markup } from './markup.js';
import { wrapText } from './text.js';
import { timeText, type TimeStyle } from './explain-text.js';

export const COLOURS = { accept: '#1f4e79', ignore: '#b35c00', invalid: '#c00000', reset: '#7a0019', grid: '#9aa5b1', text: '#1b1b1b', muted: '#555f6b' } as const;

const W = 1120;
const X_TIME = 12;
const X = { client: 180, host: 430, server: 680 } as const;
const X_NOTES = 718;
const NOTE_CHARS = 48;
const TOP = 92;
const ROW = 40;
const LINE = 14;
const GAP_S = 0.5;

export type PacketKind = 'accept' | 'ignore' | 'invalid' | 'reset';

export function kindOf(r: PacketRow): PacketKind {
  if (r.fromNatHost && hasFlag(r.flags, 'RST')) return 'reset';
  return r.verdict === 'INVALID' ? 'invalid' : r.verdict === 'IGNORE' ? 'ignore' : 'accept';
}

/** Where an arrow starts and ends. An INVALID reply that came through NAT stops at the host: it is not de-NATed. */
function span(r: PacketRow): { from: number; to: number; stopsAtHost: boolean } {
  if (r.fromNatHost) return { from: X.host, to: X.server, stopsAtHost: false };
  if (r.fromClient) return { from: X.client, to: X.server, stopsAtHost: false };
  if (r.natted && r.verdict === 'INVALID') return { from: X.server, to: X.host, stopsAtHost: true };
  return { from: X.server, to: X.client, stopsAtHost: false };
}

export function arrowLabel(r: PacketRow): string {
  const ack = r.relAck === null ? '' : ` ack ${r.relAck}`;
  return `${r.flags} seq ${r.relSeq}${ack} len ${r.len}`;
}

/** The notes beside a packet: its verdict, the kernel's words, what follows. */
export function packetNotes(r: PacketRow, flow: FlowTrace): string[] {
  const reason = rowReason(r);
  const quoted = reason ? `"${reason}"${r.logged ? '' : ' (not logged on this kernel)'}` : '';
  switch (kindOf(r)) {
    case 'reset':
      return [`RESET by the NAT host: ${r.answers !== null ? `#${r.answers}` : 'the reply'} was not de-NATed, so the host's own TCP got it, has no such connection, and resets ${endpointText(flow.client)}'s connection at the server`];
    case 'invalid':
      return [`INVALID ${quoted}`, r.natted ? 'not de-NATed: delivered to the NAT host itself' : 'untracked: no NAT applied'];
    case 'ignore':
      return [`IGNORE ${quoted}`, 'passes; conntrack state not updated'];
    default:
      return r.note ? [r.note] : [];
  }
}

const KIND_STYLE: Record<PacketKind, { colour: string; dash: string | null; width: number }> = {
  accept: { colour: COLOURS.accept, dash: null, width: 1.4 },
  ignore: { colour: COLOURS.ignore, dash: '6 4', width: 1.6 },
  invalid: { colour: COLOURS.invalid, dash: null, width: 2.4 },
  reset: { colour: COLOURS.reset, dash: null, width: 3 },
};

function partyBox(x: number, role: string, who: string, width: number): Markup {
  return html`<g class="party"><rect x="${num(x - width / 2)}" y="34" width="${num(width)}" height="40" rx="5" fill="#f3f5f8" stroke="${COLOURS.grid}"/><text x="${num(x)}" y="50" text-anchor="middle" font-weight="bold">${role}</text><text x="${num(x)}" y="66" text-anchor="middle" fill="${COLOURS.muted}" font-size="${who.length > 30 ? 10 : 12}">${who}</text></g>`;
}

export interface SequenceOptions {
  time: TimeStyle;
  /** The time origin for relative times (the first packet shown in the document). */
  t0: number;
}

interface Column {
  x: number;
  role: string;
  who: string;
}

interface Arrow {
  r: PacketRow;
  flow: FlowTrace;
  from: number;
  to: number;
  /** The arrow ends at this column with a cross: the packet goes no further (not de-NATed). */
  stopsAt: number | null;
  labelX: number;
  stateX: number;
}

interface Drawing {
  title: string;
  columns: Column[];
  /** The column whose conntrack judged the packets (drawn thick), when there is one. */
  conntrackX: number | null;
  arrows: Arrow[];
  omitted: number;
  hostName: string;
}

function draw(d: Drawing, o: SequenceOptions): Markup {
  const rows: Markup[] = [];
  const arrowIds = new Set<PacketKind>();
  const midX = d.columns[Math.floor(d.columns.length / 2)]!.x;
  let y = TOP + 20;
  let prevTs: number | null = null;
  for (const { r, flow, from, to, stopsAt, labelX, stateX } of d.arrows) {
    if (prevTs !== null && r.tsSec - prevTs >= GAP_S) {
      rows.push(html`<g class="gap"><text x="${num(midX)}" y="${num(y + 2)}" text-anchor="middle" fill="${COLOURS.muted}" font-style="italic">⋯ ${(r.tsSec - prevTs).toFixed(2)} s later ⋯</text></g>`);
      y += 24;
    }
    prevTs = r.tsSec;
    const kind = kindOf(r);
    arrowIds.add(kind);
    const st = KIND_STYLE[kind];
    const dirSign = to > from ? 1 : -1;
    const notes = packetNotes(r, flow).flatMap((n) => wrapText(n, NOTE_CHARS));
    const height = Math.max(ROW, 12 + notes.length * LINE);
    const state = r.fromNatHost ? `(no entry: the ${d.hostName}’s own packet)` : r.stateBefore === r.stateAfter ? r.stateAfter : `${r.stateBefore} → ${r.stateAfter}`;
    const title = `#${r.index} ${endpointText(r.src)} > ${endpointText(r.dst)} [${r.flags}] seq ${r.seq} ack ${r.ack} len ${r.len} — ${r.dir}, ${r.verdict}${rowReason(r) ? `: ${rowReason(r)}` : ''}`;
    rows.push(html`<g class="pkt ${kind}" data-index="${r.index}" data-verdict="${r.verdict}"><title>${title}</title>
<text x="${X_TIME}" y="${num(y + 4)}" fill="${COLOURS.muted}" font-size="11">#${r.index}  ${timeText(o.time, r.tsSec, o.t0)}</text>
<line class="arrow" x1="${num(from)}" y1="${num(y)}" x2="${num(stopsAt !== null ? to - dirSign * 10 : to - dirSign * 2)}" y2="${num(y)}" stroke="${st.colour}" stroke-width="${st.width}"${st.dash ? html` stroke-dasharray="${st.dash}"` : ''} marker-end="url(#head-${kind})"/>
<text class="label" x="${num(labelX)}" y="${num(y - 5)}" text-anchor="middle" fill="${st.colour}"${kind === 'accept' ? '' : html` font-weight="bold"`}>${arrowLabel(r)}</text>
<text class="state" x="${num(stateX + 6)}" y="${num(y + 14)}" font-size="10.5" fill="${COLOURS.muted}">${state}</text>
${stopsAt !== null ? html`<circle cx="${num(stopsAt)}" cy="${num(y)}" r="7" fill="#fff" stroke="${st.colour}" stroke-width="2"/><path d="M${num(stopsAt - 4)} ${num(y - 4)}l8 8m0 -8l-8 8" stroke="${st.colour}" stroke-width="2"/>` : ''}
${kind === 'reset' ? html`<text x="${num(from - 10)}" y="${num(y + 4)}" text-anchor="end" font-weight="bold" fill="${st.colour}">RESET ▶</text>` : ''}
${notes.map((n, i) => html`<text class="note" x="${X_NOTES}" y="${num(y + 4 + i * LINE)}" fill="${i === 0 && kind !== 'accept' ? st.colour : COLOURS.text}"${i === 0 && kind !== 'accept' ? html` font-weight="bold"` : ''}>${n}</text>`)}
</g>`);
    y += height;
  }
  if (d.omitted) {
    rows.push(html`<text x="${num(midX)}" y="${num(y)}" text-anchor="middle" fill="${COLOURS.muted}">… ${d.omitted} more packet(s) not drawn (choose fewer with --flow)</text>`);
    y += ROW;
  }
  const bottom = y;
  const height = bottom + 34;
  const spacing = d.columns.length > 1 ? d.columns[1]!.x - d.columns[0]!.x : 250;
  const markers = [...arrowIds].map((k) => html`<marker id="head-${k}" viewBox="0 0 10 10" refX="9" refY="5" markerUnits="userSpaceOnUse" markerWidth="10" markerHeight="10" orient="auto-start-reverse"><path d="M0 0L10 5L0 10z" fill="${KIND_STYLE[k].colour}"/></marker>`);
  const lifeline = (x: number) => html`<line x1="${x}" y1="74" x2="${x}" y2="${num(bottom)}" stroke="${COLOURS.grid}" stroke-width="${x === d.conntrackX ? 3 : 1}"/>`;
  const legend = ([['accept', 'ACCEPT (tracked)'], ['ignore', 'IGNORE (passes, state not updated)'], ['invalid', 'INVALID (kernel’s reason beside)'], ['reset', `the ${d.hostName}’s own RST`]] as const).map(
    ([k, text], i) => html`<g transform="translate(${12 + i * 265} ${num(height - 14)})"><line x1="0" y1="-4" x2="28" y2="-4" stroke="${KIND_STYLE[k].colour}" stroke-width="${KIND_STYLE[k].width}"${KIND_STYLE[k].dash ? html` stroke-dasharray="${KIND_STYLE[k].dash}"` : ''}/><text x="34" y="0" fill="${COLOURS.text}">${text}</text></g>`,
  );
  return html`<svg xmlns="http://www.w3.org/2000/svg" class="sequence" width="${W}" height="${num(height)}" viewBox="0 0 ${W} ${num(height)}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="12" role="img" aria-label="${`sequence diagram of ${d.title}`}">
<defs>${markers}</defs>
<rect width="100%" height="100%" fill="#fff"/>
<text x="${X_TIME}" y="20" font-size="14" font-weight="bold" fill="${COLOURS.text}">${d.title}</text>
<text x="${X_TIME}" y="${TOP}" fill="${COLOURS.muted}" font-size="11">#  time</text>
<text x="${X_NOTES}" y="${TOP}" fill="${COLOURS.muted}" font-size="11">verdict, the kernel’s reason, what follows</text>
${d.columns.map((c) => partyBox(c.x, c.role, c.who, Math.min(210, spacing - 12)))}
${d.columns.map((c) => lifeline(c.x))}
${rows}
${legend}
</svg>`;
}

/** One connection's diagram: a standalone <svg> (with its own xmlns, so it also stands as a file). */
export function sequenceSvg(flow: FlowTrace, o: SequenceOptions): Markup {
  const arrows = flow.rows.map((r): Arrow => {
    const { from, to, stopsAtHost } = span(r);
    // The label sits above the arrow, over the segment between the sender and the host.
    return { r, flow, from, to, stopsAt: stopsAtHost ? X.host : null, labelX: from === X.host ? (X.host + to) / 2 : (from + X.host) / 2, stateX: X.host };
  });
  const columns: Column[] = [
    { x: X.client, role: flow.nat ? 'container' : 'client', who: endpointText(flow.client) },
    { x: X.host, role: flow.nat ? 'NAT host (conntrack)' : 'conntrack (capture host)', who: flow.nat ? endpointText(flow.nat) : 'where the capture was taken' },
    { x: X.server, role: 'server', who: endpointText(flow.server) },
  ];
  return draw({ title: flow.id, columns, conntrackX: X.host, arrows, omitted: flow.omitted, hostName: 'NAT host' }, o);
}

/** A named party: the endpoints that are its (ADDR:PORT, ADDR:* or *:PORT). */
export interface Party {
  name: string;
  endpoints: string[];
}

/** Parse NAME=EP[,EP…] (EP: ADDR:PORT, [V6]:PORT, ADDR:*, *:PORT). */
export function parseParty(text: string): Party | null {
  const m = /^([^=]{1,40})=(.+)$/.exec(text.trim());
  if (!m) return null;
  const endpoints = m[2]!.split(',').map((e) => e.trim()).filter(Boolean);
  if (!endpoints.length || !endpoints.every((e) => /^(\[[0-9a-fA-F:.]+\]|[0-9a-fA-F.:]+|\*):(\d{1,5}|\*)$/.test(e))) return null;
  return { name: m[1]!.trim(), endpoints };
}

function partyOf(parties: Party[], e: { addr: string; port: number }): number {
  const exact = endpointText(e);
  const addr = e.addr.includes(':') ? `[${e.addr}]` : e.addr;
  for (const want of [exact, `${addr}:*`, `*:${e.port}`]) {
    const i = parties.findIndex((p) => p.endpoints.includes(want));
    if (i >= 0) return i;
  }
  return -1;
}

/**
 * Several connections in one diagram, one column per named party (app, proxy, upstream…): how a
 * proxy's two connections and the app's late FIN interleave. Endpoints no party names share a
 * column "other".
 */
export function partiesSvg(title: string, flows: FlowTrace[], parties: Party[], o: SequenceOptions): Markup {
  const rows = flows.flatMap((flow) => flow.rows.map((r) => ({ r, flow }))).sort((a, b) => a.r.index - b.r.index);
  const named = [...parties];
  const ends = rows.flatMap(({ r }) => [r.src, r.dst]);
  if (ends.some((e) => partyOf(parties, e) < 0)) named.push({ name: 'other', endpoints: [] });
  const n = named.length;
  const xs = named.map((_, i) => (n === 1 ? X.host : X.client - 60 + (i * (X.server + 20 - (X.client - 60))) / (n - 1)));
  const col = (e: { addr: string; port: number }) => {
    const i = partyOf(parties, e);
    return xs[i < 0 ? n - 1 : i]!;
  };
  const arrows = rows.map(({ r, flow }): Arrow => {
    const from = col(r.src);
    // A reply conntrack de-NATs goes on to the client; an INVALID one stops where it was addressed.
    const dstEnd = r.natted && r.verdict !== 'INVALID' ? flow.client : r.dst;
    let to = col(dstEnd);
    if (to === from) to = from + (from < X.server ? 40 : -40);
    const stop = r.natted && r.verdict === 'INVALID' ? to : null;
    return { r, flow, from, to, stopsAt: stop, labelX: (from + to) / 2, stateX: Math.min(from, to) };
  });
  const columns = named.map((p, i) => ({ x: xs[i]!, role: p.name, who: p.endpoints.join(', ') || 'unnamed endpoints' }));
  return draw({ title, columns, conntrackX: null, arrows, omitted: flows.reduce((a, f) => a + f.omitted, 0), hostName: 'host' }, o);
}
