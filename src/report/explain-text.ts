/**
 * `explain` for people: per packet that matters (IGNORE, INVALID, RST, FIN, a SYN that reopens a
 * closed entry — NF_REPEAT —, and the handshake of a connection that has any) two or three lines fitting 80 columns, every packet with `verbose`;
 * then a summary per connection. Sequence numbers are relative to each side's first (as tcpdump
 * prints them); the kernel's reasons quote absolute ones, as the kernel logs them.
 */
import type { ExplainedPacket, ExplainSummary } from '../conntrack/explain.js';
import { REASON_FORMS } from '../conntrack/model.js';
import type { ExplainHeader } from './explain.js';
import { BlockLog } from './block-log.js';
import { EndpointPairs, V4EndpointPairs } from './pair-cache.js';
import { tableFullSentences } from './explain-table.js';
import { endpointText, FlowTracker, rowReason, type Endpoint, type FlowTrace, type PacketRow } from './flows.js';
import { InternalError } from '../errors.js';
import { get16, get32, put32, readRecordHead, RECORD, RecordPieces, V4_RECORD, type ExpandRecord } from './offload.js';
import { putAscii, putBytes, putIPv4, putUint, type LineBytes } from './output.js';
import { colourOn, paint, wrapJoined, wrapText } from './text.js';

export type TimeStyle = 'relative' | 'wall' | 'epoch';

export interface ExplainTextOptions {
  verbose: boolean;
  time: TimeStyle;
  /** Show only INVALID packets, or IGNORE and INVALID ones (--only). */
  only: 'invalid' | 'ignored' | null;
}

const WIDTH = 80;
const HANDSHAKE_KEPT = 4;
/** A connection's renderer slot once one of its packets was shown (its handshake rows are not held). */
const SHOWN = Symbol('shown');

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

/**
 * `x.toFixed(6)` at b[at…], digit by digit when that is exact: x·10⁶ computed in doubles is within
 * 0.002 of the exact product below 2⁴³, so away from a tie (…5 in the 7th decimal) it rounds as
 * toFixed does. Anything else (ties, negative or large values) goes through toFixed itself.
 */
export function putFixed6(b: Uint8Array, at: number, x: number): number {
  if (x >= 0 && x < 8.7e6) {
    const scaled = x * 1e6;
    const frac = scaled - Math.floor(scaled);
    if (frac < 0.49 || frac > 0.51) {
      const n = Math.round(scaled);
      const sec = Math.floor(n / 1e6);
      return putSecMicro6(b, at, sec, n - sec * 1e6);
    }
  }
  return putAscii(b, at, x.toFixed(6));
}

/** endpointText at b[at…] (addresses and ports are ASCII). */
function putEndpoint(b: Uint8Array, at: number, e: { addr: string; port: number }): number {
  let u = at;
  const v6 = e.addr.includes(':');
  if (v6) b[u++] = 91; // '['
  u = putAscii(b, u, e.addr);
  if (v6) b[u++] = 93; // ']'
  b[u++] = 58; // ':'
  return putUint(b, u, e.port);
}

const ascii = (t: string): Uint8Array => Buffer.from(t, 'latin1');

/** `SRC:PORT > DST:PORT` of recent endpoint pairs, encoded once (see pair-cache.ts). */
const pairs = new EndpointPairs((b, at, src, srcPort, dst, dstPort) => {
  let u = putEndpoint(b, at, { addr: src, port: srcPort });
  b[u++] = 32;
  b[u++] = 62; // '>'
  b[u++] = 32;
  return putEndpoint(b, u, { addr: dst, port: dstPort });
});
const pairSlot = (src: { addr: string; port: number }, dst: { addr: string; port: number }): number => pairs.slot(src.addr, src.port, dst.addr, dst.port);
/** The output thread's side of an IPv4 record's pair (see T_V4): `A:P > B:Q` from the numbers. */
const v4Pairs = new V4EndpointPairs((b, at, src, srcPort, dst, dstPort) => {
  let u = putIPv4(b, at, src);
  b[u++] = 58; // ':'
  u = putUint(b, u, srcPort);
  b[u++] = 32;
  b[u++] = 62; // '>'
  b[u++] = 32;
  u = putIPv4(b, u, dst);
  b[u++] = 58;
  return putUint(b, u, dstPort);
});

/** A flag byte's text ("PSH|ACK"), encoded once. */
const flagTexts: (Uint8Array | undefined)[] = [];
const flagsBytes = (r: PacketRow): Uint8Array => (flagTexts[r.tcpFlags & 0xff] ??= ascii(r.flags));

/**
 * The rest of a head from `u` on (where `start` is the head's first byte): a space and
 * `[FLAGS] seq S ack A len L` (no ack when `ack` < 0), or, past 80 columns, that on a line of
 * its own. Returns the position after it.
 */
function putSegment(b: Uint8Array, start: number, u: number, flags: Uint8Array, seq: number, ack: number, len: number): number {
  b[u + 1] = 91; // '['
  return putSegmentAfterFlags(b, start, u, putBytes(b, u + 2, flags), seq, ack, len);
}

/** putSegment where '[' and the flags are written already (from u + 1 to w). */
function putSegmentAfterFlags(b: Uint8Array, start: number, u: number, w: number, seq: number, ack: number, len: number): number {
  const what = u + 1;
  w = putBytes(b, w, P_SEQ);
  w = putUint(b, w, seq);
  if (ack >= 0) {
    w = putBytes(b, w, P_ACK);
    w = putUint(b, w, ack);
  }
  w = putBytes(b, w, P_LEN);
  w = putUint(b, w, len);
  if (u - start + 1 + (w - what) <= WIDTH) {
    b[u] = 32;
    return w;
  }
  b.copyWithin(what + 4, what, w);
  b[u] = 10;
  b[u + 1] = b[u + 2] = b[u + 3] = b[u + 4] = 32;
  return w + 4;
}

/** `sec.micro` with six decimals (toFixed(6) of an exact microsecond value). */
function putSecMicro6(b: Uint8Array, at: number, sec: number, micro: number): number {
  const u = putUint(b, at, sec);
  b[u] = 46; // '.'
  for (let i = 6; i >= 1; i--) {
    const q = Math.floor(micro / 10);
    b[u + i] = 48 + micro - q * 10;
    micro = q;
  }
  return u + 7;
}

const P_SEQ = ascii('] seq ');
const P_ACK = ascii(' ack ');
const P_LEN = ascii(' len ');
const NEWLINE = ascii('\n');
/** Most a packet's head can take: two bracketed IPv6 endpoints, the flags, five numbers, a time. */
const HEAD_ROOM = 400;

/**
 * `\n    original NONE → SYN_SENT`: the meaning line of a plain accepted packet (no note, no NAT),
 * by direction and states, encoded once; null where it would not fit a line as it is.
 */
interface PlainMeaning {
  bytes: Uint8Array;
  /** Its number, for records. */
  id: number;
}
const plainMeanings = new Map<string, Map<string, Map<string, PlainMeaning | null>>>();
/** The last plain meaning per direction and what it was for. */
const lastPlain = { original: { before: '', after: '', m: null as PlainMeaning | null }, reply: { before: '', after: '', m: null as PlainMeaning | null } };
const plainMeaningList: PlainMeaning[] = [];

/**
 * The meaning line of an IGNORE or INVALID packet whose one word beyond its states is a window
 * check's reason around a number (retransmissions, mostly): wrapped and encoded once per kind and
 * width of the number (where lines break depends on its width, not its digits), as the bytes
 * before the number and after it; null where it cannot be cut so. The reason's text is never built.
 */
interface FormedMeaning {
  pre: Uint8Array;
  post: Uint8Array;
  /** Its number, for records. */
  id: number;
}
const formedMeanings = new Map<string, FormedMeaning | null>();
let formedMeaningCount = 0;

/** Stands for the number while the line is wrapped (a width of it; never in a meaning line). */
const HOLE = '\u0000';

const decimalWidth = (n: number): number => (n < 10 ? 1 : n < 100 ? 2 : n < 1000 ? 3 : n < 1e4 ? 4 : n < 1e5 ? 5 : n < 1e6 ? 6 : n < 1e7 ? 7 : n < 1e8 ? 8 : n < 1e9 ? 9 : 10);

/**
 * The last meaning made per kind (form, the widths of the number and the client) and what it was
 * made for: consecutive packets mostly ask for the one made last (the model's own strings,
 * compared by identity), no key text built.
 */
interface LastMeaning<M> {
  dir: string;
  before: string;
  after: string;
  verdict: string;
  form: number;
  width: number;
  clientWidth: number;
  logged: boolean;
  colour: boolean;
  /** Null: none for this row (look it up, then keepMeaning). */
  m: M | null;
}
const lastMeanings = <M>(): Array<LastMeaning<M>> => Array.from({ length: 64 }, () => ({ dir: '', before: '', after: '', verdict: '', form: 0, width: 0, clientWidth: 0, logged: false, colour: false, m: null }));

/** Row r's slot in `last`: by its kind (form, widths). */
const lastSlot = <M>(last: Array<LastMeaning<M>>, r: PacketRow, width: number, clientWidth: number): LastMeaning<M> => last[((r.reasonForm + 1) * 11 + width + clientWidth * 67) & 63]!;

/** Whether l holds a meaning made for what r is now. */
const madeFor = <M>(l: LastMeaning<M>, r: PacketRow, width: number, clientWidth: number, colour: boolean): boolean =>
  l.m !== null && l.dir === r.dir && l.before === r.stateBefore && l.after === r.stateAfter && l.verdict === r.verdict && l.form === r.reasonForm && l.width === width && l.clientWidth === clientWidth && l.logged === r.logged && l.colour === colour;

/** Keep m in l as the meaning made for what r is now; returns it. */
function keepMeaning<M>(l: LastMeaning<M>, r: PacketRow, width: number, clientWidth: number, colour: boolean, m: M | null): M | null {
  l.dir = r.dir;
  l.before = r.stateBefore;
  l.after = r.stateAfter;
  l.verdict = r.verdict;
  l.form = r.reasonForm;
  l.width = width;
  l.clientWidth = clientWidth;
  l.logged = r.logged;
  l.colour = colour;
  l.m = m;
  return m;
}
const lastFormed = lastMeanings<FormedMeaning>();
const lastNat = lastMeanings<NatMeaning>();

/**
 * A reply through NAT says whom it goes to: `reply (to CLIENT through NAT) …`. Its meaning line is
 * the plain or formed one cut around the client's endpoint as well (a NAT host's capture is half
 * such packets): made once per kind and width of the endpoint's text (a word: lines break where
 * they would for any word of its width), the endpoint's bytes a piece of their own by client.
 */
interface NatMeaning {
  /** Before the client, after it (plain: to the end; formed: to the number), and after the number (formed). */
  pre: Uint8Array;
  mid: Uint8Array;
  post: Uint8Array | null;
  /** Its number, for records. */
  id: number;
}
const natMeanings = new Map<string, NatMeaning | null>();
let natMeaningCount = 0;
/** Stands for the client's endpoint while a line is wrapped (never in a meaning line). */
const CLIENT_HOLE = '\u0001';
/** The client endpoints' texts, numbered (the first "address" is the client's, the second unused). */
const natClients = new EndpointPairs((b, at, addr, port) => putEndpoint(b, at, { addr, port }));
const natClientSlot = (flow: Pick<FlowTrace, 'client'>): number => natClients.slot(flow.client.addr, flow.client.port, '', 0);

/** The meaning of a plain (ACCEPT) or formed (IGNORE / INVALID) reply through NAT, cut around its client; null to write it whole. */
function natMeaning(r: PacketRow, flow: Pick<FlowTrace, 'client'>, clientWidth: number): NatMeaning | null {
  if (!r.natted || r.fromNatHost || r.note !== null || r.secondaryReason !== null) return null;
  const plain = r.verdict === 'ACCEPT';
  if (!plain && r.reasonForm < 0) return null;
  const width = plain ? 0 : decimalWidth(r.reasonArg);
  const colour = colourOn();
  const l = lastSlot(lastNat, r, width, clientWidth);
  if (madeFor(l, r, width, clientWidth, colour)) return l.m;
  const key = `${r.dir}|${r.stateBefore}|${r.stateAfter}|${r.verdict}|${r.reasonForm}|${width}|${r.logged}|${colour}|${clientWidth}`;
  let m = natMeanings.get(key);
  if (m === undefined) {
    // the line with holes as wide as the client's endpoint (a word: "\u0001…\u0001:0") and the number
    const client: Endpoint = { addr: CLIENT_HOLE.repeat(clientWidth - 2), port: 0 };
    const hole = HOLE.repeat(width);
    const row = plain ? r : { ...r, reasonForm: -1, reasonText: REASON_FORMS[r.reasonForm]![0] + hole + REASON_FORMS[r.reasonForm]![1] };
    const wrapped = '\n' + wrapJoined(meaningLine(row, { client, nat: null }), WIDTH, '    ');
    const c = wrapped.indexOf(CLIENT_HOLE);
    const n = plain ? -1 : wrapped.indexOf(hole, c + clientWidth);
    const ok = c >= 0 && wrapped.slice(c, c + clientWidth) === client.addr + ':0' && wrapped.indexOf(CLIENT_HOLE, c + clientWidth) < 0 && (plain ? !wrapped.includes(HOLE) : n >= 0 && wrapped.indexOf(HOLE, n + width) < 0 && !wrapped.slice(0, c).includes(HOLE));
    m = ok
      ? {
          pre: Buffer.from(wrapped.slice(0, c)),
          mid: Buffer.from(plain ? wrapped.slice(c + clientWidth) : wrapped.slice(c + clientWidth, n)),
          post: plain ? null : Buffer.from(wrapped.slice(n + width)),
          id: natMeaningCount++,
        }
      : null;
    if (m !== null && (m.pre.length > 512 || m.mid.length > 512 || (m.post?.length ?? 0) > 512)) m = null;
    if (natMeanings.size < 4096) natMeanings.set(key, m);
  }
  return keepMeaning(l, r, width, clientWidth, colour, m);
}

function formedMeaning(r: PacketRow, flow: FlowTrace): FormedMeaning | null {
  if (r.reasonForm < 0 || r.verdict === 'ACCEPT' || r.natted || r.fromNatHost || r.note !== null || r.secondaryReason !== null) return null;
  const width = decimalWidth(r.reasonArg);
  const colour = colourOn();
  const l = lastSlot(lastFormed, r, width, 0);
  if (madeFor(l, r, width, 0, colour)) return l.m;
  const key = `${r.reasonForm}|${width}|${r.dir}|${r.stateBefore}|${r.stateAfter}|${r.verdict}|${r.logged}|${colour}`;
  let m = formedMeanings.get(key);
  if (m === undefined) {
    const [pre, post] = REASON_FORMS[r.reasonForm]!;
    const hole = HOLE.repeat(width);
    const wrapped = '\n' + wrapJoined(meaningLine({ ...r, reasonForm: -1, reasonText: pre + hole + post }, flow), WIDTH, '    ');
    const at = wrapped.indexOf(hole);
    m = at >= 0 && wrapped.indexOf(HOLE, at + width) < 0 ? { pre: Buffer.from(wrapped.slice(0, at)), post: Buffer.from(wrapped.slice(at + width)), id: formedMeaningCount++ } : null;
    if (m !== null && (m.pre.length > 512 || m.post.length > 512)) m = null;
    if (formedMeanings.size < 4096) formedMeanings.set(key, m);
  }
  return keepMeaning(l, r, width, 0, colour, m);
}

/** The first line of a packet: where it goes, its flags, relative seq/ack, length. */
export function packetHead(r: PacketRow, time: string): string {
  const ack = r.relAck === null ? '' : ` ack ${r.relAck}`;
  const where = `#${r.index} ${time} ${endpointText(r.src)} > ${endpointText(r.dst)}`;
  const what = `[${r.flags}] seq ${r.relSeq}${ack} len ${r.len}`;
  // Long addresses (IPv6) push the segment to its own line rather than past 80 columns.
  return where.length + 1 + what.length <= WIDTH ? `${where} ${what}` : `${where}\n    ${what}`;
}

/** "A → B" for each state change (a few dozen), built once. */
const changes = new Map<string, string>();
function stateText(r: PacketRow): string {
  if (r.stateBefore === r.stateAfter) return r.stateAfter;
  const k = r.stateBefore + '>' + r.stateAfter;
  let t = changes.get(k);
  if (t === undefined) changes.set(k, (t = `${r.stateBefore} → ${r.stateAfter}`));
  return t;
}

/** What the packet is and what follows, in words (no colour): the lines after the head. */
export function packetMeaning(r: PacketRow, flow: Pick<FlowTrace, 'client' | 'nat'>): string[] {
  const consequence = invalidConsequence(r);
  return consequence === null ? [meaningLine(r, flow)] : [meaningLine(r, flow), consequence];
}

/** The first line of packetMeaning. */
function meaningLine(r: PacketRow, flow: Pick<FlowTrace, 'client' | 'nat'>): string {
  const extra = r.secondaryReason ? `; also "${r.secondaryReason}"` : r.note ? `; ${r.note}` : '';
  if (r.fromNatHost && r.tcpFlags & RST) {
    const cause = r.answers !== null ? `packet #${r.answers}` : 'a reply';
    return `${paint('RESET', 'red')} sent by the NAT host itself: ${cause} was INVALID, so not de-NATed; it reached the host's own TCP, which has no such connection and resets ${endpointText(flow.client)}'s connection at the server (conntrack: "invalid new", a RST with no entry)`;
  }
  const where = r.natted ? ` (to ${endpointText(flow.client)} through NAT)` : r.fromNatHost ? ' (from the NAT host itself)' : '';
  if (r.verdict === 'ACCEPT') return extra || where ? `${r.dir}${where} ${stateText(r)}${extra}` : r.dir + ' ' + stateText(r);
  const reason = rowReason(r);
  const quoted = reason ? ` "${reason}"${r.logged ? '' : ' (not logged on this kernel)'}` : '';
  if (r.verdict === 'IGNORE') return `${r.dir}${where} ${stateText(r)} ${paint('IGNORE', 'yellow')}${quoted}${extra} (passes; state not updated)`;
  return `${r.dir}${where} ${stateText(r)} ${paint('INVALID', 'red')}${quoted}${extra}`;
}

/** The second line of an INVALID packet's meaning: where it goes (null for any other packet). */
function invalidConsequence(r: PacketRow): string | null {
  if (r.verdict !== 'INVALID' || (r.fromNatHost && r.tcpFlags & RST)) return null;
  return r.natted
    ? 'not de-NATed: the NAT host takes it for itself and its TCP answers with RST (unless a ctstate INVALID DROP rule drops it)'
    : r.consequence.replace(/^INVALID: /, '');
}
const RST = 4;
const FIN = 1;
const SYN = 2;

/** A connection's lines in the closing summary: its peers, counts, final state, first INVALID. */
function connectionBlock(f: FlowTrace): string {
  const c = f.counts;
  let block = `  ${f.id}${f.nat ? ` via NAT ${endpointText(f.nat)}` : ''}`;
  const parts = [`${c.packets} packet${c.packets === 1 ? '' : 's'}: ${c.accept} accept, ${c.ignore} ignore, ${c.invalid ? paint(`${c.invalid} INVALID`, 'red') : '0 INVALID'}`];
  if (c.hostResets) parts.push(paint(`reset by the NAT host (${c.hostResets} RST)`, 'red'));
  parts.push(`final state ${f.finalState}`);
  block += '\n' + wrapJoined(parts.join('; '), WIDTH, '      ');
  const first = f.firstInvalid;
  if (first) block += '\n' + wrapJoined(`first INVALID #${first.index}: "${first.reason ?? ''}"`, WIDTH, '      ');
  return block;
}

/** PlainHeldRow's flags. */
const H_FROM_CLIENT = 1;
const H_HANDSHAKE = 2;
const H_MATTERS = 4;
const H_REPLY = 8;

/**
 * A held handshake row that says no more than its state change (nearly all of them: a
 * connection's SYN, SYN/ACK and ACK, accepted): its numbers and texts in 14 fields — seq and ack
 * as int32 (a u32 above 2³¹ would be a number boxed per row), the flags in one number — and what
 * such a row always has read from its class. A SYN flood holds one per connection, 16,000 live
 * connections three each: 144 bytes, not the 248 of a row's 28 fields and its boxed numbers.
 */
class PlainHeldRow implements PacketRow {
  readonly index: number;
  readonly tsSec: number;
  readonly src: Endpoint;
  readonly dst: Endpoint;
  readonly flags: string;
  readonly tcpFlags: number;
  private readonly seq32: number;
  private readonly ack32: number;
  readonly len: number;
  readonly relSeq: number;
  readonly relAck: number | null;
  readonly stateBefore: string;
  readonly stateAfter: string;
  readonly consequence: string;
  private readonly bits: number;
  constructor(r: PacketRow, flow: FlowTrace) {
    this.index = r.index;
    this.tsSec = r.tsSec;
    this.src = endpointLike(r.src, flow);
    this.dst = endpointLike(r.dst, flow);
    this.flags = r.flags;
    this.tcpFlags = r.tcpFlags;
    this.seq32 = r.seq | 0;
    this.ack32 = r.ack | 0;
    this.len = r.len;
    this.relSeq = r.relSeq;
    this.relAck = r.relAck;
    this.stateBefore = r.stateBefore;
    this.stateAfter = r.stateAfter;
    this.consequence = r.consequence;
    this.bits = (r.fromClient ? H_FROM_CLIENT : 0) | (r.handshake ? H_HANDSHAKE : 0) | (r.matters ? H_MATTERS : 0) | (r.dir === 'reply' ? H_REPLY : 0);
  }
  get seq(): number {
    return this.seq32 >>> 0;
  }
  get ack(): number {
    return this.ack32 >>> 0;
  }
  get dir(): 'original' | 'reply' {
    return this.bits & H_REPLY ? 'reply' : 'original';
  }
  get fromClient(): boolean {
    return (this.bits & H_FROM_CLIENT) !== 0;
  }
  get handshake(): boolean {
    return (this.bits & H_HANDSHAKE) !== 0;
  }
  get matters(): boolean {
    return (this.bits & H_MATTERS) !== 0;
  }
  get verdict(): 'ACCEPT' {
    return 'ACCEPT';
  }
  get reasonText(): null {
    return null;
  }
  get reasonForm(): number {
    return -1;
  }
  get reasonArg(): number {
    return 0;
  }
  get logged(): boolean {
    return false;
  }
  get note(): null {
    return null;
  }
  get secondaryReason(): null {
    return null;
  }
  get natted(): boolean {
    return false;
  }
  get fromNatHost(): boolean {
    return false;
  }
  get answers(): null {
    return null;
  }
  /** Is `r` such a row (so PlainHeldRow keeps all of it)? */
  static fits(r: PacketRow): boolean {
    return r.verdict === 'ACCEPT' && r.reasonText === null && r.reasonForm < 0 && r.reasonArg === 0 && !r.logged && r.note === null && r.secondaryReason === null && !r.natted && !r.fromNatHost && r.answers === null;
  }
}

/** A row to keep (the tracker's row of a packet it does not keep is reused). */
function keepRow(r: PacketRow, flow: FlowTrace): PacketRow {
  return PlainHeldRow.fits(r) ? new PlainHeldRow(r, flow) : copyRow(r, flow);
}

/** A row to keep (the tracker's row of a packet it does not keep is reused). */
function copyRow(r: PacketRow, flow: FlowTrace): PacketRow {
  // (every field named: its properties in the object, not a spread's out-of-object store — a
  // held handshake row per open connection, tens of thousands at once; its endpoints are the
  // connection's when they are the same: endpoints are replaced, never changed in place)
  return {
    index: r.index,
    tsSec: r.tsSec,
    src: endpointLike(r.src, flow),
    dst: endpointLike(r.dst, flow),
    flags: r.flags,
    tcpFlags: r.tcpFlags,
    seq: r.seq,
    ack: r.ack,
    len: r.len,
    relSeq: r.relSeq,
    relAck: r.relAck,
    dir: r.dir,
    fromClient: r.fromClient,
    stateBefore: r.stateBefore,
    stateAfter: r.stateAfter,
    verdict: r.verdict,
    reasonText: r.reasonText,
    reasonForm: r.reasonForm,
    reasonArg: r.reasonArg,
    logged: r.logged,
    note: r.note,
    secondaryReason: r.secondaryReason,
    natted: r.natted,
    consequence: r.consequence,
    fromNatHost: r.fromNatHost,
    answers: r.answers,
    handshake: r.handshake,
    matters: r.matters,
  };
}

/** An endpoint equal to e: the connection's client or server when it is one of them, else a copy. */
function endpointLike(e: Endpoint, flow: FlowTrace): Endpoint {
  if (e.addr === flow.client.addr && e.port === flow.client.port) return flow.client;
  if (e.addr === flow.server.addr && e.port === flow.server.port) return flow.server;
  return { addr: e.addr, port: e.port };
}

/**
 * The text stream: `packet` returns the lines to print now (maybe none, maybe a held-back
 * handshake first); `summary` returns the closing block.
 */
export class ExplainText {
  /** Connections closed (their entry gone): their summary blocks, by ordinal, as UTF-8 (on disk past 2 MiB: 160,000 connections' blocks were 16 MB). */
  private readonly closed = new BlockLog(1 << 20, 2);
  private readonly tracker = new FlowTracker(0, Infinity, (trace, ordinal) => {
    this.closed.put(ordinal, connectionBlock(trace));
    trace.renderer = null;
  });
  private t0: number | null = null;
  // A connection's `renderer` slot: null; the handshake rows held back (one row as itself, more as
  // an array of exactly them); or SHOWN once one of its packets was shown (no Map or Set by
  // connection: tens of thousands are open at once).
  private shown = 0;
  private seen = 0;

  constructor(private readonly o: ExplainTextOptions) {}

  /**
   * A packet's lines (its head, its meaning wrapped under it) written into `into`, no newline
   * after: packetHead and packetMeaning as bytes, numbers digit by digit, a plain accepted
   * packet's meaning as one encoded piece; only what carries prose is built as a string.
   */
  private renderInto(r: PacketRow, flow: FlowTrace, into: LineBytes, src4: number | null = null, dst4: number | null = null): void {
    if (into.records !== null && this.o.time === 'relative' && this.recordInto(r, flow, into, src4, dst4)) return;
    const b = into.room(HEAD_ROOM);
    const start = into.used;
    let u = start;
    b[u++] = 35; // '#'
    u = putUint(b, u, r.index);
    b[u++] = 32;
    const style = this.o.time;
    if (style === 'relative') {
      b[u++] = 43; // '+'
      u = putFixed6(b, u, r.tsSec - this.t0!);
    } else u = putAscii(b, u, timeText(style, r.tsSec, this.t0!));
    b[u++] = 32;
    u = pairs.copy(pairSlot(r.src, r.dst), b, u);
    into.used = putSegment(b, start, u, flagsBytes(r), r.relSeq, r.relAck ?? -1, r.len);
    const plain = this.plainMeaning(r);
    const formed = plain === null ? formedMeaning(r, flow) : null;
    const natClient = plain === null && formed === null && r.natted ? natClientSlot(flow) : -1;
    const nat = natClient >= 0 ? natMeaning(r, flow, natClients.lengthOf(natClient)) : null;
    if (plain !== null) into.bytes(plain.bytes);
    else if (formed !== null) {
      into.bytes(formed.pre);
      into.used = putUint(into.room(16), into.used, r.reasonArg);
      into.bytes(formed.post);
    } else if (nat !== null) {
      into.bytes(nat.pre);
      into.used = natClients.copy(natClient, into.room(EndpointPairs.STRIDE), into.used);
      into.bytes(nat.mid);
      if (nat.post !== null) {
        into.used = putUint(into.room(16), into.used, r.reasonArg);
        into.bytes(nat.post);
      }
    } else into.text('\n' + wrapJoined(meaningLine(r, flow), WIDTH, '    '));
    const consequence = invalidConsequence(r);
    if (consequence !== null) into.text('\n' + wrapJoined(consequence, WIDTH, '    '));
  }

  /** The encoded meaning line of a plain accepted packet, or null (see plainMeanings). */
  private plainMeaning(r: PacketRow): PlainMeaning | null {
    if (r.verdict !== 'ACCEPT' || r.natted || r.fromNatHost || r.note !== null || r.secondaryReason !== null) return null;
    // consecutive packets of a direction mostly repeat the last one (the model's strings: compared by identity)
    const last = r.dir === 'original' ? lastPlain.original : lastPlain.reply;
    if (last.before === r.stateBefore && last.after === r.stateAfter) return last.m;
    const m = this.plainMeaningOf(r);
    last.before = r.stateBefore;
    last.after = r.stateAfter;
    last.m = m;
    return m;
  }

  private plainMeaningOf(r: PacketRow): PlainMeaning | null {
    let byBefore = plainMeanings.get(r.dir);
    if (!byBefore) plainMeanings.set(r.dir, (byBefore = new Map()));
    let byAfter = byBefore.get(r.stateBefore);
    if (!byAfter) byBefore.set(r.stateBefore, (byAfter = new Map()));
    let m = byAfter.get(r.stateAfter);
    if (m === undefined) {
      const line = `${r.dir} ${stateText(r)}`;
      const wrapped = wrapJoined(line, WIDTH, '    ');
      m = wrapped === '    ' + line ? { bytes: Buffer.from('\n' + wrapped), id: plainMeaningList.length } : null;
      if (m) plainMeaningList.push(m);
      byAfter.set(r.stateAfter, m);
    }
    return m;
  }

  /**
   * A plain packet as a record for the output thread (see offload.ts and expandRecord): its
   * numbers, and the pieces it needs sent first. false: write its lines. `src4`, `dst4`: the
   * row's IPv4 addresses as numbers when known (the packet's own row: see T_V4).
   */
  private recordInto(r: PacketRow, flow: FlowTrace, into: LineBytes, src4: number | null, dst4: number | null): boolean {
    const meaning = this.plainMeaning(r);
    // (an IGNORE's formed meaning is all its lines; an INVALID has a consequence line too)
    const formed = meaning === null && r.verdict === 'IGNORE' ? formedMeaning(r, flow) : null;
    const natClient = meaning === null && formed === null && r.natted && r.verdict !== 'INVALID' ? natClientSlot(flow) : -1;
    const nat = natClient >= 0 ? natMeaning(r, flow, natClients.lengthOf(natClient)) : null;
    if (meaning !== null ? meaning.id > 0xffff : formed !== null ? formed.id > 0xffff : nat === null || nat.id > 0xffff) return false;
    const x = r.tsSec - this.t0!;
    if (!(x >= 0 && x < 8.7e6)) return false;
    const scaled = x * 1e6;
    const frac = scaled - Math.floor(scaled);
    if (!(frac < 0.49 || frac > 0.51)) return false;
    const n = Math.round(scaled);
    const sec = Math.floor(n / 1e6);
    const micro = n - sec * 1e6;
    const { index, relSeq, relAck, len } = r;
    if (index >>> 0 !== index || len >>> 0 !== len) return false; // integers in [0, 2³²)
    const session = into.records!;
    const b = into.room(RECORD_ROOM);
    const v4 = src4 !== null && dst4 !== null;
    const pair = v4 ? 0 : pairSlot(r.src, r.dst);
    const flags = r.tcpFlags & 0xff;
    let u = v4 ? into.used : pieces.putFrom(b, into.used, session, K_PAIR, pair, pairs.version(pair), pairs.bytesOf(pair), pairs.startOf(pair), pairs.lengthOf(pair));
    u = pieces.put(b, u, session, K_FLAGS, flags, 0, flagsBytes(r));
    let id: number;
    if (nat !== null) {
      id = nat.id;
      u = pieces.putFrom(b, u, session, K_NAT_CLIENT, natClient, natClients.version(natClient), natClients.bytesOf(natClient), natClients.startOf(natClient), natClients.lengthOf(natClient));
      u = pieces.put(b, u, session, K_NAT_PRE, id, 0, nat.pre);
      u = pieces.put(b, u, session, K_NAT_MID, id, 0, nat.mid);
      if (nat.post !== null) u = pieces.put(b, u, session, K_NAT_POST, id, 0, nat.post);
    } else {
      u = pieces.putTail(b, u, session, meaning, formed, MEANING_TABLES);
      id = meaning !== null ? meaning.id : formed!.id;
    }
    b[u++] = RECORD;
    b[u++] = (meaning !== null ? T_PACKET : formed !== null ? T_FORMED : nat!.post === null ? T_NAT_PACKET : T_NAT_FORMED) | (v4 ? V4_RECORD : 0);
    u = put32(b, u, index);
    u = put32(b, u, sec);
    u = put32(b, u, micro);
    if (v4) {
      u = put32(b, u, src4);
      u = put32(b, u, dst4);
      const sp = r.src.port;
      const dp = r.dst.port;
      b[u++] = sp;
      b[u++] = sp >>> 8;
      b[u++] = dp;
      b[u++] = dp >>> 8;
    } else {
      b[u++] = pair;
      b[u++] = pair >>> 8;
    }
    b[u++] = flags;
    u = put32(b, u, relSeq);
    b[u++] = relAck === null ? 0 : 1;
    u = put32(b, u, relAck ?? 0);
    u = put32(b, u, len);
    b[u++] = id;
    b[u++] = id >>> 8;
    if (meaning === null && (formed !== null || nat!.post !== null)) u = put32(b, u, r.reasonArg);
    if (nat !== null) {
      b[u++] = natClient;
      b[u++] = natClient >>> 8;
    }
    into.used = u;
    return true;
  }

  /** Connections held now (open ones: the closed are kept as their summary lines only). */
  get openConnections(): number {
    return this.tracker.openCount;
  }

  /** Let go of the connections whose entry is gone (explain's onSweep): see FlowTracker.sweep. */
  sweep(live: (key: string) => boolean): void {
    this.tracker.sweep(live);
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

  /**
   * Write the lines to print for this packet now into `into` (maybe a held-back handshake first),
   * without a newline after the last; false when there is nothing to print.
   */
  packetInto(p: ExplainedPacket, into: LineBytes): boolean {
    this.t0 ??= p.tsSec;
    this.seen++;
    const o = this.o;
    // whether it is shown, or may be held (a handshake's), from the packet: a row is made only then
    // (most packets of the default text: counted on their connection, nothing more)
    const verdict = p.decision.verdict;
    let show: boolean;
    if (o.only === 'invalid') show = verdict === 'INVALID';
    else if (o.only === 'ignored') show = verdict !== 'ACCEPT';
    // (NF_REPEAT: the kernel killed the tuple's entry and made another — port reuse, seen as it happens)
    else show = o.verbose || verdict !== 'ACCEPT' || (p.tcpFlags & (RST | FIN)) !== 0 || p.captureMissed > 0 || p.decision.repeat;
    const held = !show && !o.only && !o.verbose && ((p.tcpFlags & SYN) !== 0 || (p.decision.dir === 'original' && p.decision.stateBefore === 'SYN_RECV'));
    if (!show && !held) {
      this.tracker.add(p, false);
      return false;
    }
    const row = this.tracker.add(p);
    const flow = this.tracker.flow!;
    if (!show) {
      const h = flow.renderer;
      if (!o.only && !o.verbose && row.handshake && h !== SHOWN) {
        // (a SYN alone — a flood's every connection — held as itself; arrays of exactly the rows
        // held: an empty array pushed to grows room for 17)
        if (h === null || h === undefined) flow.renderer = keepRow(row, flow);
        else if (!Array.isArray(h)) flow.renderer = [h as PacketRow, keepRow(row, flow)];
        else if (h.length < HANDSHAKE_KEPT) flow.renderer = (h as PacketRow[]).concat(keepRow(row, flow));
      }
      return false;
    }
    const h = flow.renderer;
    if (h !== null && h !== undefined && h !== SHOWN) {
      for (const x of Array.isArray(h) ? (h as PacketRow[]) : [h as PacketRow]) {
        this.renderInto(x, flow, into);
        into.bytes(NEWLINE);
        this.shown++;
      }
      flow.renderer = null;
    }
    if (!o.verbose && !o.only) flow.renderer = SHOWN;
    this.renderInto(row, flow, into, p.src4, p.dst4);
    if (p.captureMissed) into.text('\n' + wrapJoined(`the capture missed ${p.captureMissed} bytes this packet acknowledges (not captured, but the kernel saw them: modelled as sent)`, WIDTH, '    '));
    this.shown++;
    return true;
  }

  /** packetInto as a string (one block per packet shown, joined by newlines), or null. */
  packet(p: ExplainedPacket): string | null {
    const c = new CollectedText();
    return this.packetInto(p, c) ? c.toString() : null;
  }

  /** The closing block as one string (see summaryLines). */
  summary(s: ExplainSummary): string {
    return [...this.summaryLines(s)].join('\n');
  }

  /**
   * The closing block, a connection at a time (a replay of a million connections is written as
   * it is read, never held as one text): what was not shown, each connection, the totals.
   */
  *summaryLines(s: ExplainSummary): Generator<string> {
    const hidden = this.seen - this.shown;
    if (hidden > 0 && !this.o.verbose)
      yield wrapJoined(`(${hidden} of ${this.seen} packets not shown: ${this.o.only ? `not ${this.o.only === 'invalid' ? 'INVALID' : 'IGNORE or INVALID'}` : 'accepted without FIN or RST'}; -v shows every packet)`, WIDTH);
    const count = this.tracker.count;
    yield `\nconnections (${count}):`;
    // in the order seen: closed ones as written when they closed, open ones now
    const open = new Map<number, FlowTrace>();
    for (const [trace, ordinal] of this.tracker.open()) open.set(ordinal, trace);
    try {
      for (let i = 0; i < count; i++) {
        const trace = open.get(i);
        yield trace ? connectionBlock(trace) : this.closed.get(i);
      }
    } finally {
      this.closed.close();
    }
    yield wrapJoined(`summary: ${s.tcp} TCP packets (${s.duplicates} duplicate copies, ${s.skipped} non-TCP skipped): ${s.accept} accept, ${s.ignore} ignore, ${s.invalid} INVALID`, WIDTH);
    // what the capture lost or reshaped, so no verdict is read as the kernel's that is not
    if (s.captureMissed) for (const f of s.flows) if (f.captureMissed) yield wrapJoined(`${f.flow}: the capture missed ${f.captureMissed} bytes`, WIDTH, '  ');
    if (s.captureMissed) yield wrapJoined(`the capture missed ${s.captureMissed} bytes (ACKed but never captured): a capture loss, not the kernel's — those bytes were modelled as sent`, WIDTH);
    if (s.lengthFromFrame) yield wrapJoined(`${s.lengthFromFrame} TSO/BIG TCP segments (IP length 0, captured on the sender) sized by their frame`, WIDTH);
    if (s.cutToSnaplen) yield wrapJoined(`${s.cutToSnaplen} records longer than the snaplen were cut to it`, WIDTH);
    for (const t of tableFullSentences(s)) yield wrapJoined(t, WIDTH);
    if (s.invalid)
      yield wrapJoined('INVALID packets are not de-NATed: behind NAT they reach the host itself and are answered with RST. Fixes: ctprobe fix apply --method drop-invalid | be-liberal (see ctprobe audit).', WIDTH);
  }
}

/** A LineBytes that keeps what is written, for packet(): a growing buffer. */
class CollectedText implements LineBytes {
  private buf = Buffer.alloc(1024);
  used = 0;
  readonly records = null;
  room(n: number): Uint8Array {
    if (this.used + n > this.buf.length) {
      const bigger = Buffer.alloc(2 * (this.used + n));
      this.buf.copy(bigger, 0, 0, this.used);
      this.buf = bigger;
    }
    return this.buf;
  }
  text(s: string): void {
    this.room(3 * s.length);
    this.used += this.buf.write(s, this.used, 'utf8');
  }
  bytes(b: Uint8Array): void {
    this.used = putBytes(this.room(b.length), this.used, b);
  }
  toString(): string {
    return this.buf.toString('utf8', 0, this.used);
  }
}

/*
 * Records (see offload.ts): a plain packet's lines as their numbers, expanded by the output
 * thread into the very bytes renderInto writes (relative time only). Its pieces (endpoint pair by
 * slot, flag text by byte, meaning by id) go before the first record naming them (RecordPieces):
 *   RECORD T_PACKET index u32, sec u32, micro u32, pair u16, flags u8, relSeq u32, hasAck u8, relAck u32, len u32, meaning u16
 * and an IGNORE with a formed meaning (see formedMeaning):
 *   RECORD T_FORMED  (the same), then the reason's number u32
 * and a reply through NAT whose meaning is cut around its client (see natMeaning):
 *   RECORD T_NAT_PACKET (as T_PACKET), then the client u16
 *   RECORD T_NAT_FORMED (as T_FORMED), then the client u16
 * An IPv4 packet's kind has V4_RECORD set, and its pair is its numbers, not a piece (see
 * offload.ts: readRecordHead reads what all records start with).
 */
const T_PACKET = 2;
const T_FORMED = 3;
const T_NAT_PACKET = 4;
const T_NAT_FORMED = 5;
const K_PAIR = 0;
const K_FLAGS = 1;
const K_MEANING = 2;
const K_FORMED_PRE = 3;
const K_FORMED_POST = 4;
const K_NAT_CLIENT = 5;
const K_NAT_PRE = 6;
const K_NAT_MID = 7;
const K_NAT_POST = 8;
const MEANING_TABLES = [K_MEANING, K_FORMED_PRE, K_FORMED_POST] as const;
const RECORD_ROOM = 4096;
const pieces = new RecordPieces(9);

/** This module, for an output thread to load expandRecord from. */
export const explainTextRecordsModule = new URL(import.meta.url);

/** The output thread's side: a record of recordInto back to the packet's lines. */
export const expandRecord: ExpandRecord = (b, at, out, got) => {
  const h = readRecordHead(b, at);
  const { kind, v4, index, sec, micro } = h;
  if (kind < T_PACKET || kind > T_NAT_FORMED) throw new InternalError(`explain: unknown record kind ${b[at + 1]}`);
  let r = h.next;
  const flags = b[r]!;
  const relSeq = get32(b, (r += 1));
  const hasAck = b[(r += 4)]!;
  const relAck = get32(b, (r += 1));
  const len = get32(b, (r += 4));
  const meaning = get16(b, (r += 4));
  r += 2;
  const o = out.room(HEAD_ROOM + 2200);
  const start = out.used;
  let u = start;
  o[u++] = 35; // '#'
  u = putUint(o, u, index);
  o[u++] = 32;
  o[u++] = 43; // '+'
  u = putSecMicro6(o, u, sec, micro);
  o[u++] = 32;
  u = v4 ? v4Pairs.copy(h.srcAddr, h.srcPort, h.dstAddr, h.dstPort, o, u) : got.copy(K_PAIR, h.pair, o, u);
  o[u + 1] = 91; // '['
  u = putSegmentAfterFlags(o, start, u, got.copy(K_FLAGS, flags, o, u + 2), relSeq, hasAck ? relAck : -1, len);
  if (kind === T_PACKET) {
    out.used = got.copy(K_MEANING, meaning, o, u);
    return r;
  }
  if (kind === T_FORMED) {
    u = got.copy(K_FORMED_PRE, meaning, o, u);
    u = putUint(o, u, get32(b, r));
    out.used = got.copy(K_FORMED_POST, meaning, o, u);
    return r + 4;
  }
  const formed = kind === T_NAT_FORMED;
  const client = get16(b, formed ? r + 4 : r);
  u = got.copy(K_NAT_PRE, meaning, o, u);
  u = got.copy(K_NAT_CLIENT, client, o, u);
  u = got.copy(K_NAT_MID, meaning, o, u);
  if (!formed) {
    out.used = u;
    return r + 2;
  }
  u = putUint(o, u, get32(b, r));
  out.used = got.copy(K_NAT_POST, meaning, o, u);
  return r + 6;
};
