/** `explain`'s stream: one line (or JSON line) per reported packet, then per-flow summaries and a total. */
import type { ReadProgress } from '../capture/reader.js';
import type { ExplainedPacket, ExplainSummary, FlowSummary } from '../conntrack/explain.js';
import { REASON_FORMS, reasonArg32, reasonForm } from '../conntrack/model.js';
import type { KernelProfile } from '../conntrack/profile.js';
import { InternalError } from '../errors.js';
import { get16, get32, put32, readRecordHead, RECORD, RecordPieces, V4_RECORD, type ExpandRecord } from './offload.js';
import { EndpointPairs, V4EndpointPairs } from './pair-cache.js';
import { tableFullSentences } from './explain-table.js';
import { jsonLine, putAscii, putBytes, putDecimal, putIPv4, putSecMicro, putU32, putUint, type LineBytes, type LineRenderer, type Output, type Renderer } from './output.js';

export interface ExplainHeader {
  file: string;
  kernel: string;
  profile: KernelProfile;
}

function packetText(p: ExplainedPacket): string {
  const d = p.decision;
  const head = `#${p.index} ${p.tsSec.toFixed(6)} ${p.src}:${p.srcPort} > ${p.dst}:${p.dstPort} [${p.flags}] seq ${p.seq} ack ${p.ack} len ${p.len}`;
  const nat = p.natMatchedTo ? ` (NAT: flow of ${p.natMatchedTo})` : '';
  const reason = d.reason ? ` "${d.reason}"${d.logged ? '' : ' (not logged on this kernel)'}` : '';
  const extra = d.secondaryReason ? `; also "${d.secondaryReason}"` : d.note ? `; ${d.note}` : '';
  const lost = p.captureMissed ? `\n    the capture missed ${p.captureMissed} bytes this packet acknowledges (not captured, but the kernel saw them: modelled as sent)` : '';
  return `${head}${nat}\n    ${d.dir} ${d.stateBefore} → ${d.stateAfter}  ${d.verdict}${reason}${extra}\n    ${p.consequence}${lost}`;
}

/**
 * JSON text of the strings a packet line repeats (flags, states, verdicts, reasons, notes,
 * consequences): quoted once, then looked up. Bounded: a capture with many distinct reasons
 * (they carry sequence numbers) quotes the rest each time.
 */
const quoted = new Map<string, string>();
function q(s: string | null): string {
  if (s === null) return 'null';
  let j = quoted.get(s);
  if (j === undefined) {
    j = JSON.stringify(s);
    if (quoted.size < 4096) quoted.set(s, j);
  }
  return j;
}

/** A nullable identifier-like string (check) as JSON: no escaping can be needed. */
const word = (s: string | null): string => (s === null ? 'null' : '"' + s + '"');

/** The part of a packet line after its numbers (from "dir" on), with natMatchedTo `natTo`. */
function tailJson(p: ExplainedPacket, natTo = p.natMatchedTo): string {
  const d = p.decision;
  return (
    ',"dir":"' + d.dir +
    '","stateBefore":"' + d.stateBefore +
    '","stateAfter":"' + d.stateAfter +
    '","verdict":"' + d.verdict +
    '","reason":' + q(d.reason) +
    ',"logged":' + d.logged +
    ',"check":' + word(d.check) +
    ',"secondaryReason":' + q(d.secondaryReason) +
    ',"note":' + q(d.note) +
    ',"natMatchedTo":' + q(natTo) +
    ',"consequence":' + q(p.consequence) +
    ',"captureMissed":' + p.captureMissed +
    '}'
  );
}

/**
 * The tail of the common packet (tracked, nothing to say: no reason, check, note or capture
 * loss), by direction, state before and state after, encoded once: a replay repeats a few dozen
 * of these a million times. A packet through NAT names the connection it was matched to: its
 * tail is the same cut around that name (`natSplit`: a NAT host's capture is all such packets).
 */
interface PlainTail {
  /** The tail with `"natMatchedTo":null`. */
  bytes: Uint8Array;
  /** Its number, for records (see packetRecord). */
  id: number;
  /** The bytes before the NAT name and after it (made when first needed). */
  nat: NatSplit | null;
}
interface NatSplit {
  pre: Uint8Array;
  post: Uint8Array;
}
const plainTails = new Map<string, Map<string, Map<string, PlainTail>>>();
const plainTailList: PlainTail[] = [];
const NO_TAIL: PlainTail = { bytes: new Uint8Array(0), id: -1, nat: null };
const NAT_NULL = Buffer.from(',"natMatchedTo":null');
/** `bytes` (a tail with `"natMatchedTo":null`) cut where the name goes: `null` is not in either part. */
function natSplit(bytes: Uint8Array): NatSplit {
  const at = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).lastIndexOf(NAT_NULL);
  if (at < 0) throw new InternalError('explain: a tail without natMatchedTo');
  const name = at + NAT_NULL.length - 4;
  return { pre: bytes.slice(0, name), post: bytes.slice(name + 4) };
}

/**
 * natMatchedTo's quoted texts (one per connection through NAT: the model makes it once per
 * mapping, so a lookup finds the same string), with numbers for records; at most MAX, then
 * started afresh (a number given to another text has a new version: sent again).
 */
class NatNames {
  static readonly MAX = 1 << 14;
  private readonly ids = new Map<string, number>();
  /** Their bytes, one after another in an arena (not a Buffer each: ~100 bytes of heap apiece). */
  private arena = new Uint8Array(1 << 16);
  private used = 0;
  private readonly starts = new Int32Array(NatNames.MAX);
  private readonly lengths = new Int32Array(NatNames.MAX);
  private readonly versions = new Uint32Array(NatNames.MAX);
  private next = 0;

  idOf(s: string): number {
    let id = this.ids.get(s);
    if (id === undefined) {
      if (this.next === NatNames.MAX) {
        this.ids.clear();
        this.next = 0;
        this.used = 0;
      }
      id = this.next++;
      this.ids.set(s, id);
      const bytes = Buffer.from(JSON.stringify(s));
      if (this.used + bytes.length > this.arena.length) {
        const grown = new Uint8Array(Math.max(2 * this.arena.length, this.used + bytes.length));
        grown.set(this.arena.subarray(0, this.used));
        this.arena = grown;
      }
      this.arena.set(bytes, this.used);
      this.starts[id] = this.used;
      this.lengths[id] = bytes.length;
      this.used += bytes.length;
      this.versions[id]!++;
    }
    return id;
  }
  /** Name id's bytes into b at u; returns the position after them. */
  copy(id: number, b: Uint8Array, u: number): number {
    const from = this.starts[id]!;
    const n = this.lengths[id]!;
    const a = this.arena;
    for (let k = 0; k < n; k++) b[u + k] = a[from + k]!;
    return u + n;
  }
  /** The arena holding id's bytes, from `startOf(id)`, `lengthOf(id)` of them (for records). */
  get bytes(): Uint8Array {
    return this.arena;
  }
  startOf(id: number): number {
    return this.starts[id]!;
  }
  lengthOf(id: number): number {
    return this.lengths[id]!;
  }
  version(id: number): number {
    return this.versions[id]!;
  }
}
const natNames = new NatNames();
/** The last plain tail per direction: consecutive packets of a replay mostly repeat it (the strings are the model's own, compared by identity). */
const lastTail = { original: { before: '', after: '', tail: NO_TAIL }, reply: { before: '', after: '', tail: NO_TAIL } };

/** The plain tail for p's states (its `bytes` are for a packet without natMatchedTo), or null when p's is not plain. */
function plainTail(p: ExplainedPacket): PlainTail | null {
  const d = p.decision;
  if (d.verdict !== 'ACCEPT' || d.check !== null || d.note !== null || d.secondaryReason !== null || d.deleted || p.captureMissed !== 0) return null;
  const last = d.dir === 'original' ? lastTail.original : lastTail.reply;
  if (last.before === d.stateBefore && last.after === d.stateAfter) return last.tail;
  let byBefore = plainTails.get(d.dir);
  if (!byBefore) plainTails.set(d.dir, (byBefore = new Map()));
  let byAfter = byBefore.get(d.stateBefore);
  if (!byAfter) byBefore.set(d.stateBefore, (byAfter = new Map()));
  let t = byAfter.get(d.stateAfter);
  if (t === undefined) {
    t = { bytes: Buffer.from(tailJson(p, null)), id: plainTailList.length, nat: null };
    plainTailList.push(t);
    byAfter.set(d.stateAfter, t);
  }
  last.before = d.stateBefore;
  last.after = d.stateAfter;
  last.tail = t;
  return t;
}

/**
 * The tail of a packet whose one word beyond a plain tail's is a window check's reason with its
 * number (most IGNOREs: retransmissions; the first INVALIDs): encoded once as the bytes before the
 * number and after it, per direction, states, verdict, check, form and consequence. The reason's
 * text is never built for it.
 */
interface FormedTail {
  pre: Uint8Array;
  /** After the number, with `"natMatchedTo":null`. */
  post: Uint8Array;
  /** Its number, for records (see packetRecord). */
  id: number;
  /** `post` cut where the NAT name goes (made when first needed). */
  nat: NatSplit | null;
}
const formedTails = new Map<string, FormedTail>();
let formedTailCount = 0;
/** The last formed tail per form and what it was for (compared by identity: the model's own strings). */
const lastFormed = REASON_FORMS.map(() => ({ dir: '', before: '', after: '', verdict: '', check: '' as string | null, logged: false, consequence: '', tail: null as FormedTail | null }));

function formedTail(p: ExplainedPacket): FormedTail | null {
  const d = p.decision;
  const form = reasonForm(d);
  if (form < 0 || d.note !== null || d.secondaryReason !== null || d.deleted || p.captureMissed !== 0) return null;
  const l = lastFormed[form]!;
  if (l.tail !== null && l.dir === d.dir && l.before === d.stateBefore && l.after === d.stateAfter && l.verdict === d.verdict && l.check === d.check && l.logged === d.logged && l.consequence === p.consequence) return l.tail;
  const key = `${form}|${d.dir}|${d.stateBefore}|${d.stateAfter}|${d.verdict}|${d.check}|${d.logged}|${p.consequence}`;
  let t = formedTails.get(key);
  if (t === undefined) {
    if (formedTails.size >= 4096) return null; // (consequences through NAT name addresses: bounded)
    // the generic tail, cut around the quoted reason: JSON escapes character by character, so
    // quote(PRE + n + POST) is quote(PRE) without its closing quote, n, quote(POST) without its opening one
    const full = tailJson(p, null);
    const at = full.indexOf(',"reason":' + q(d.reason)) + ',"reason":'.length;
    const after = at + q(d.reason).length;
    const [pre, post] = REASON_FORMS[form]!;
    t = { pre: Buffer.from(full.slice(0, at) + JSON.stringify(pre).slice(0, -1)), post: Buffer.from(JSON.stringify(post).slice(1) + full.slice(after)), id: formedTailCount++, nat: null };
    formedTails.set(key, t);
  }
  l.dir = d.dir;
  l.before = d.stateBefore;
  l.after = d.stateAfter;
  l.verdict = d.verdict;
  l.check = d.check;
  l.logged = d.logged;
  l.consequence = p.consequence;
  l.tail = t;
  return t;
}

/** The numbers and addresses that start a packet line (fixed ASCII words: no escaping needed). */
function headJson(p: ExplainedPacket): string {
  return (
    '{"type":"packet","index":' + p.index +
    ',"ts":' + p.tsSec +
    ',"src":"' + p.src + ':' + p.srcPort +
    '","dst":"' + p.dst + ':' + p.dstPort +
    '","flags":"' + p.flags +
    '","seq":' + p.seq +
    ',"ack":' + p.ack +
    ',"len":' + p.len
  );
}

/**
 * One packet as a JSON line, from precomputed pieces (as pino does): no intermediate object, no
 * generic JSON.stringify walk. Keys and their order are the contract (see README).
 */
function packetJson(p: ExplainedPacket): string {
  return headJson(p) + tailJson(p);
}

const ascii = (s: string): Uint8Array => Buffer.from(s, 'latin1');
const K_INDEX = ascii('{"type":"packet","index":');
const K_TS = ascii(',"ts":');
const K_ACK = ascii(',"ack":');
const K_LEN = ascii(',"len":');
/** Room for a head: the keys, two IPv6 addresses, ports, three u32 and a timestamp. */
const HEAD_MAX = 400;

/** `,"src":"ADDR:PORT","dst":"ADDR:PORT"` of recent endpoint pairs, encoded once (see pair-cache.ts). */
const K_SRC = ascii(',"src":"');
const K_DST = ascii('","dst":"');
const endpoints = new EndpointPairs((b, at, src, srcPort, dst, dstPort) => {
  let u = putBytes(b, at, K_SRC);
  u = putAscii(b, u, src);
  b[u++] = 58; // ':'
  u = putUint(b, u, srcPort);
  u = putBytes(b, u, K_DST);
  u = putAscii(b, u, dst);
  b[u++] = 58;
  u = putUint(b, u, dstPort);
  b[u++] = 34; // '"'
  return u;
});
const endpointsSlot = (p: ExplainedPacket): number => endpoints.slot(p.src, p.srcPort, p.dst, p.dstPort);

/** The output thread's side of an IPv4 record's endpoints (see R_V4): the same words around the numbers. */
const v4Endpoints = new V4EndpointPairs((b, at, src, srcPort, dst, dstPort) => {
  let u = putBytes(b, at, K_SRC);
  u = putIPv4(b, u, src);
  b[u++] = 58; // ':'
  u = putUint(b, u, srcPort);
  u = putBytes(b, u, K_DST);
  u = putIPv4(b, u, dst);
  b[u++] = 58;
  u = putUint(b, u, dstPort);
  b[u++] = 34; // '"'
  return u;
});

/** `,"flags":"PSH|ACK","seq":` by the flag byte, encoded once. */
const flagPieces: (Uint8Array | undefined)[] = [];
function flagsPiece(p: ExplainedPacket): Uint8Array {
  return (flagPieces[p.tcpFlags & 0xff] ??= ascii(`,"flags":"${p.flags}","seq":`));
}

/** The head written straight into the batch (numbers digit by digit, endpoints and flags as encoded pieces), then the tail. */
function packetJsonInto(p: ExplainedPacket, into: LineBytes): void {
  if (into.records !== null && packetRecord(p, into)) return;
  const b = into.room(HEAD_MAX);
  let u = putBytes(b, into.used, K_INDEX);
  u = putUint(b, u, p.index);
  u = putBytes(b, u, K_TS);
  // the timestamp as whole seconds and microseconds (small integers: nothing boxed for the call)
  const ts = p.tsSec;
  const sec = Math.floor(ts);
  const micro = Math.round((ts - sec) * 1e6);
  u = sec >= 0 && sec <= 0x7fffffff && micro < 1e6 && (sec * 1e6 + micro) / 1e6 === ts ? putSecMicro(b, u, sec, micro) : putDecimal(b, u, ts);
  u = endpoints.copy(endpointsSlot(p), b, u);
  u = putBytes(b, u, flagsPiece(p));
  // (as int32 when they are u32, as the decoder's always are: passed without boxing a number)
  u = p.seq >>> 0 === p.seq ? putU32(b, u, p.seq | 0) : putUint(b, u, p.seq);
  u = putBytes(b, u, K_ACK);
  u = p.ack >>> 0 === p.ack ? putU32(b, u, p.ack | 0) : putUint(b, u, p.ack);
  u = putBytes(b, u, K_LEN);
  into.used = putUint(b, u, p.len);
  const natTo = p.natMatchedTo;
  const tail = plainTail(p);
  if (tail) {
    if (natTo === null) into.bytes(tail.bytes);
    else natTailInto((tail.nat ??= natSplit(tail.bytes)), natTo, into);
    return;
  }
  const formed = formedTail(p);
  if (formed) {
    into.bytes(formed.pre);
    into.used = putU32(into.room(16), into.used, reasonArg32(p.decision));
    if (natTo === null) into.bytes(formed.post);
    else natTailInto((formed.nat ??= natSplit(formed.post)), natTo, into);
  } else tailInto(p, into);
}

function natTailInto(split: NatSplit, natTo: string, into: LineBytes): void {
  into.bytes(split.pre);
  const id = natNames.idOf(natTo);
  into.used = natNames.copy(id, into.room(natNames.lengthOf(id)), into.used);
  into.bytes(split.post);
}

/*
 * Records (see offload.ts): a plain packet's line as its numbers, expanded by the output thread
 * into the very bytes packetJsonInto writes. Its pieces (endpoints by slot, flags by byte, tail
 * by id) go before the first record that names them (RecordPieces):
 *   RECORD R_PACKET index u32, sec u32, micro u32, endpoints u16, flags u8, seq u32, ack u32, len u32, tail u16
 * and a packet with a formed tail (a reason around a number, see formedTail):
 *   RECORD R_FORMED  (the same), then the reason's number u32
 * and either through NAT (a NAT name by number, see NatNames: the tail is cut around it):
 *   RECORD R_NAT_PACKET (as R_PACKET), then the NAT name u16
 *   RECORD R_NAT_FORMED (as R_FORMED), then the NAT name u16
 * An IPv4 packet's kind has V4_RECORD set, and its endpoints are its numbers, not a piece (see
 * offload.ts: readRecordHead reads what all records start with).
 */
const R_PACKET = 2;
const R_FORMED = 3;
const R_NAT_PACKET = 4;
const R_NAT_FORMED = 5;
const P_ENDPOINTS = 0;
const P_FLAGS = 1;
const P_TAIL = 2;
const P_FORMED_PRE = 3;
const P_FORMED_POST = 4;
const P_NAT_NAME = 5;
const P_NAT_PRE = 6;
const P_NAT_POST = 7;
const P_NAT_FORMED_MID = 8;
const P_NAT_FORMED_POST = 9;
/** A record and the pieces it may need sent first. */
const RECORD_ROOM = 4096;
const pieces = new RecordPieces(10);

/** Write p as a record if it is a plain packet, or one with a formed tail, whose numbers fit one; false to write its line. */
function packetRecord(p: ExplainedPacket, into: LineBytes): boolean {
  const tail = plainTail(p);
  const formed = tail === null ? formedTail(p) : null;
  if (tail !== null ? tail.id > 0xffff || tail.bytes.length > 1024 : formed === null || formed.id > 0xffff || formed.pre.length > 1024 || formed.post.length > 1024) return false;
  const ts = p.tsSec;
  const sec = Math.floor(ts);
  const micro = Math.round((ts - sec) * 1e6);
  if (!(sec >= 0 && sec <= 0xffffffff && micro < 1e6 && (sec * 1e6 + micro) / 1e6 === ts)) return false;
  const { index, seq, ack, len } = p;
  // (x >>> 0 === x: an integer in [0, 2³²) — without `x % 1`, a floating-point remainder call per number)
  if (index >>> 0 !== index || seq >>> 0 !== seq || ack >>> 0 !== ack || len >>> 0 !== len) return false;
  const natTo = p.natMatchedTo;
  const natId = natTo === null ? -1 : natNames.idOf(natTo);
  if (natId >= 0 && natNames.lengthOf(natId) > 1024) return false;
  const session = into.records!;
  const b = into.room(RECORD_ROOM);
  const src4 = p.src4;
  const dst4 = p.dst4;
  const v4 = src4 !== null && dst4 !== null;
  const ep = v4 ? 0 : endpointsSlot(p);
  const flags = p.tcpFlags & 0xff;
  let u = v4 ? into.used : pieces.putFrom(b, into.used, session, P_ENDPOINTS, ep, endpoints.version(ep), endpoints.bytesOf(ep), endpoints.startOf(ep), endpoints.lengthOf(ep));
  u = pieces.put(b, u, session, P_FLAGS, flags, 0, flagsPiece(p));
  let id: number;
  if (tail !== null) {
    id = tail.id;
    if (natId < 0) u = pieces.put(b, u, session, P_TAIL, id, 0, tail.bytes);
    else {
      const split = (tail.nat ??= natSplit(tail.bytes));
      u = pieces.put(b, u, session, P_NAT_PRE, id, 0, split.pre);
      u = pieces.put(b, u, session, P_NAT_POST, id, 0, split.post);
    }
  } else {
    id = formed!.id;
    u = pieces.put(b, u, session, P_FORMED_PRE, id, 0, formed!.pre);
    if (natId < 0) u = pieces.put(b, u, session, P_FORMED_POST, id, 0, formed!.post);
    else {
      const split = (formed!.nat ??= natSplit(formed!.post));
      u = pieces.put(b, u, session, P_NAT_FORMED_MID, id, 0, split.pre);
      u = pieces.put(b, u, session, P_NAT_FORMED_POST, id, 0, split.post);
    }
  }
  if (natId >= 0) u = pieces.putFrom(b, u, session, P_NAT_NAME, natId, natNames.version(natId), natNames.bytes, natNames.startOf(natId), natNames.lengthOf(natId));
  b[u++] = RECORD;
  b[u++] = (tail !== null ? (natId < 0 ? R_PACKET : R_NAT_PACKET) : natId < 0 ? R_FORMED : R_NAT_FORMED) | (v4 ? V4_RECORD : 0);
  u = put32(b, u, index);
  u = put32(b, u, sec);
  u = put32(b, u, micro);
  if (v4) {
    u = put32(b, u, src4);
    u = put32(b, u, dst4);
    const sp = p.srcPort;
    const dp = p.dstPort;
    b[u++] = sp;
    b[u++] = sp >>> 8;
    b[u++] = dp;
    b[u++] = dp >>> 8;
  } else {
    b[u++] = ep;
    b[u++] = ep >>> 8;
  }
  b[u++] = flags;
  u = put32(b, u, seq);
  u = put32(b, u, ack);
  u = put32(b, u, len);
  b[u++] = id;
  b[u++] = id >>> 8;
  if (tail === null) u = put32(b, u, reasonArg32(p.decision));
  if (natId >= 0) {
    b[u++] = natId;
    b[u++] = natId >>> 8;
  }
  into.used = u;
  return true;
}

/** This module, for an output thread to load expandRecord from. */
export const explainRecordsModule = new URL(import.meta.url);

/** The output thread's side (offload.ts): a record of packetRecord back to the line's bytes. */
export const expandRecord: ExpandRecord = (b, at, out, got) => {
  const h = readRecordHead(b, at);
  const { kind, v4, index, sec, micro } = h;
  if (kind < R_PACKET || kind > R_NAT_FORMED) throw new InternalError(`explain: unknown record kind ${b[at + 1]}`);
  let r = h.next;
  const flags = b[r]!;
  const seq = get32(b, (r += 1));
  const ack = get32(b, (r += 4));
  const len = get32(b, (r += 4));
  const tail = get16(b, (r += 4));
  r += 2;
  const o = out.room(HEAD_MAX + 4200);
  let u = putBytes(o, out.used, K_INDEX);
  u = putUint(o, u, index);
  u = putBytes(o, u, K_TS);
  u = putSecMicro(o, u, sec, micro);
  u = v4 ? v4Endpoints.copy(h.srcAddr, h.srcPort, h.dstAddr, h.dstPort, o, u) : got.copy(P_ENDPOINTS, h.pair, o, u);
  u = got.copy(P_FLAGS, flags, o, u);
  u = putU32(o, u, seq | 0);
  u = putBytes(o, u, K_ACK);
  u = putU32(o, u, ack | 0);
  u = putBytes(o, u, K_LEN);
  u = putUint(o, u, len);
  if (kind === R_PACKET) {
    out.used = got.copy(P_TAIL, tail, o, u);
    return r;
  }
  if (kind === R_NAT_PACKET) {
    u = got.copy(P_NAT_PRE, tail, o, u);
    u = got.copy(P_NAT_NAME, get16(b, r), o, u);
    out.used = got.copy(P_NAT_POST, tail, o, u);
    return r + 2;
  }
  u = got.copy(P_FORMED_PRE, tail, o, u);
  u = putU32(o, u, get32(b, r) | 0);
  if (kind === R_FORMED) {
    out.used = got.copy(P_FORMED_POST, tail, o, u);
    return r + 4;
  }
  u = got.copy(P_NAT_FORMED_MID, tail, o, u);
  u = got.copy(P_NAT_NAME, get16(b, r + 4), o, u);
  out.used = got.copy(P_NAT_FORMED_POST, tail, o, u);
  return r + 6;
};

const K_REASON = ascii('","reason":');
const K_LOGGED_TRUE = ascii(',"logged":true,"check":');
const K_LOGGED_FALSE = ascii(',"logged":false,"check":');
const K_SECONDARY = ascii(',"secondaryReason":');
const K_NOTE = ascii(',"note":');
const K_NAT = ascii(',"natMatchedTo":');
const K_CONSEQUENCE = ascii(',"consequence":');
const K_MISSED = ascii(',"captureMissed":');
/** Where dir, states and verdict of a tail are the same (a few dozen combinations), encoded once. */
const tailHeads = new Map<string, Uint8Array>();

/** `tailJson` written in pieces (no line-long string built for each IGNORE or INVALID packet). */
function tailInto(p: ExplainedPacket, into: LineBytes): void {
  const d = p.decision;
  const id = d.dir + d.stateBefore + '>' + d.stateAfter + d.verdict;
  let head = tailHeads.get(id);
  if (head === undefined) {
    head = Buffer.from(`,"dir":"${d.dir}","stateBefore":"${d.stateBefore}","stateAfter":"${d.stateAfter}","verdict":"${d.verdict}`);
    if (tailHeads.size < 4096) tailHeads.set(id, head);
  }
  into.bytes(head);
  into.bytes(K_REASON);
  into.text(q(d.reason));
  into.bytes(d.logged ? K_LOGGED_TRUE : K_LOGGED_FALSE);
  into.text(word(d.check));
  into.bytes(K_SECONDARY);
  into.text(q(d.secondaryReason));
  into.bytes(K_NOTE);
  into.text(q(d.note));
  into.bytes(K_NAT);
  into.text(q(p.natMatchedTo));
  into.bytes(K_CONSEQUENCE);
  into.text(q(p.consequence));
  into.bytes(K_MISSED);
  into.used = putUint(into.room(16), into.used, p.captureMissed);
  into.bytes(CLOSE);
}
const CLOSE = ascii('}');

export const explainPackets: LineRenderer<ExplainedPacket> = { text: packetText, json: packetJson, jsonInto: packetJsonInto };

export const explainHeader: LineRenderer<ExplainHeader> = {
  text: (h) => `explain ${h.file} — modelling kernel ${h.kernel} (profile ${h.profile.id}: ${h.profile.label})${h.profile.caveat ? `\n  note: ${h.profile.caveat}` : ''}`,
  json: (h) => jsonLine('header', { file: h.file, kernel: h.kernel, profile: h.profile.id }),
};

function flowText(f: FlowSummary): string {
  return `  ${f.flow}${f.reply ? ` (NAT, reply ${f.reply})` : ''}: ${f.packets} packets, ${f.accept} accept, ${f.ignore} ignore, ${f.invalid} INVALID, final state ${f.finalState}${f.captureMissed ? `; the capture missed ${f.captureMissed} bytes` : ''}${f.firstInvalid ? `; first INVALID #${f.firstInvalid.index}: "${f.firstInvalid.reason ?? ''}"` : ''}`;
}

/** The end of the stream: per-flow lines and the total (a "document" of JSON lines in json mode). */
export const explainSummary: Renderer<ExplainSummary & { kernel: string; profile: string }> = {
  text(s) {
    const out = ['', `flows (${s.flows.length}):`];
    for (const f of s.flows) out.push(flowText(f));
    out.push(`summary: ${s.tcp} TCP packets (${s.duplicates} duplicate copies, ${s.skipped} non-TCP skipped): ${s.accept} accept, ${s.ignore} ignore, ${s.invalid} INVALID`);
    if (s.captureMissed) out.push(`the capture missed ${s.captureMissed} bytes (ACKed but never captured): a capture loss, not the kernel's — those bytes were modelled as sent`);
    if (s.lengthFromFrame) out.push(`${s.lengthFromFrame} TSO/BIG TCP segments (IP length 0, captured on the sender) sized by their frame`);
    if (s.cutToSnaplen) out.push(`${s.cutToSnaplen} records longer than the snaplen were cut to it`);
    out.push(...tableFullSentences(s));
    if (s.invalid) out.push('INVALID packets are not de-NATed: behind NAT they reach the host itself and are answered with RST. Fixes: ctprobe fix apply --method drop-invalid | be-liberal (see ctprobe audit).');
    return out.join('\n');
  },
  json(s) {
    const { flows: _f, ...rest } = s;
    return { type: 'summary', ...rest };
  },
};

/** jsonLine('flow', f), from its pieces: no object spread and generic walk per flow (a capture has tens of thousands). */
export function flowJson(f: FlowSummary): string {
  const first = f.firstInvalid;
  return (
    '{"type":"flow","flow":' + JSON.stringify(f.flow) +
    ',"reply":' + (f.reply === null ? 'null' : JSON.stringify(f.reply)) +
    ',"natLearnedFrom":' + word(f.natLearnedFrom) +
    ',"packets":' + JSON.stringify(f.packets) +
    ',"accept":' + JSON.stringify(f.accept) +
    ',"ignore":' + JSON.stringify(f.ignore) +
    ',"invalid":' + JSON.stringify(f.invalid) +
    ',"firstInvalid":' + (first === null ? 'null' : '{"index":' + JSON.stringify(first.index) + ',"reason":' + JSON.stringify(first.reason) + '}') +
    ',"finalState":' + q(f.finalState) +
    ',"captureMissed":' + JSON.stringify(f.captureMissed) +
    '}'
  );
}

const F_FLOW = ascii('{"type":"flow","flow":');
const F_REPLY = ascii(',"reply":');
const F_LEARNED = ascii(',"natLearnedFrom":');
const F_PACKETS = ascii(',"packets":');
const F_ACCEPT = ascii(',"accept":');
const F_IGNORE = ascii(',"ignore":');
const F_INVALID = ascii(',"invalid":');
const F_FIRST = ascii(',"firstInvalid":');
const F_FIRST_INDEX = ascii('{"index":');
const F_FIRST_REASON = ascii(',"reason":');
const F_FINAL = ascii('},"finalState":');
const F_FINAL_AFTER_NULL = ascii('null,"finalState":');
const F_MISSED = ascii(',"captureMissed":');

/**
 * A JSON string of `s` at b[u…] when no character needs escaping and all are ASCII or '→' (a flow's
 * tuple text: addresses, ports, the arrow): returns the position after it, or -1 (then write it
 * otherwise). Room: 3 bytes per character and the quotes.
 */
function putPlainJsonString(b: Uint8Array, u: number, s: string): number {
  b[u++] = 34; // '"'
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x20 && c < 0x7f && c !== 34 && c !== 92) b[u++] = c;
    else if (c === 0x2192) {
      // '→' in UTF-8
      b[u++] = 0xe2;
      b[u++] = 0x86;
      b[u++] = 0x92;
    } else return -1;
  }
  b[u++] = 34;
  return u;
}

/** A flow line's JSON words (`"ESTABLISHED"`, `"copy"`, `null`), encoded once. */
const wordPieces = new Map<string, Uint8Array>();
function wordPiece(json: string): Uint8Array {
  let p = wordPieces.get(json);
  if (p === undefined) {
    p = Buffer.from(json);
    if (wordPieces.size < 256) wordPieces.set(json, p);
  }
  return p;
}

/**
 * flowJson written into the batch: numbers digit by digit, the tuples and words as bytes (a
 * capture's tens of thousands of flow lines build no string; 20,000 of them took 30 ms with a
 * JSON text encoded per field).
 */
function flowJsonInto(f: FlowSummary, into: LineBytes): void {
  const reply = f.reply;
  const chars = f.flow.length + (reply === null ? 0 : reply.length);
  // (a line too long for one room, or text the byte writer does not take, goes the general way)
  if (chars <= 600) {
    const b = into.room(3 * chars + 64);
    let u = putPlainJsonString(b, putBytes(b, into.used, F_FLOW), f.flow);
    if (u >= 0) u = putBytes(b, u, F_REPLY);
    if (u >= 0) u = reply === null ? putBytes(b, u, K_NULL) : putPlainJsonString(b, u, reply);
    if (u >= 0) {
      into.used = putBytes(b, u, F_LEARNED);
      into.bytes(wordPiece(word(f.natLearnedFrom)));
      return flowCountsInto(f, into);
    }
  }
  into.bytes(F_FLOW);
  into.text(JSON.stringify(f.flow));
  into.bytes(F_REPLY);
  into.text(reply === null ? 'null' : JSON.stringify(reply));
  into.bytes(F_LEARNED);
  into.text(word(f.natLearnedFrom));
  flowCountsInto(f, into);
}

const K_NULL = ascii('null');

/** A flow line from its packet counts on. */
function flowCountsInto(f: FlowSummary, into: LineBytes): void {
  let b = into.room(64);
  let u = putBytes(b, into.used, F_PACKETS);
  u = putUint(b, u, f.packets);
  u = putBytes(b, u, F_ACCEPT);
  u = putUint(b, u, f.accept);
  u = putBytes(b, u, F_IGNORE);
  u = putUint(b, u, f.ignore);
  u = putBytes(b, u, F_INVALID);
  u = putUint(b, u, f.invalid);
  into.used = putBytes(b, u, F_FIRST);
  const first = f.firstInvalid;
  if (first === null) into.bytes(F_FINAL_AFTER_NULL);
  else {
    into.bytes(F_FIRST_INDEX);
    into.used = putUint(into.room(24), into.used, first.index);
    into.bytes(F_FIRST_REASON);
    into.text(JSON.stringify(first.reason));
    into.bytes(F_FINAL);
  }
  into.bytes(wordPiece(q(f.finalState)));
  b = into.room(40);
  u = putBytes(b, into.used, F_MISSED);
  u = putUint(b, u, f.captureMissed);
  into.used = putBytes(b, u, CLOSE);
}

/** The closing summary's per-flow lines. */
export const explainFlows: LineRenderer<FlowSummary> = { text: flowText, json: flowJson, jsonInto: flowJsonInto };

/**
 * The summary in JSON-lines mode: one `flow` line per flow (explainFlows, written as the flows
 * are read: a capture of a million flows is never held as a million summaries or strings), then
 * this, the `summary` line.
 */
/** A count as people read it: 950, 12.3k, 3.24M. */
function countText(n: number): string {
  if (n < 1e4) return String(Math.round(n));
  if (n < 1e6) return `${(n / 1e3).toFixed(n < 1e5 ? 1 : 0)}k`;
  return `${(n / 1e6).toFixed(n < 1e8 ? 2 : 0)}M`;
}

/** Where a replay is: how far into the capture, packets read, their rate, and (a file's) the time left at that rate. */
export function explainProgressLine(p: Readonly<ReadProgress>, seconds: number): string {
  const parts = ['explain:'];
  const f = p.fraction;
  if (f !== null) parts.push(`${Math.floor(100 * f)} % of the capture,`);
  parts.push(`${countText(p.packets)} packets`);
  if (seconds > 0) parts.push(`(${countText(p.packets / seconds)}/s)`);
  if (f !== null && f >= 0.02 && f < 1) {
    const left = Math.ceil((seconds * (1 - f)) / f);
    parts.push(`· about ${left < 90 ? `${left} s` : `${Math.round(left / 60)} min`} left`);
  }
  return parts.join(' ');
}

/**
 * What explain's CLI gives the replay after each chunk: after a second, then once a second, the
 * progress line on the terminal's status line (`Output.status`: only when stderr is a terminal
 * and stdout is not — a capture of millions of packets to a file or a pipe takes a while).
 * Cleared by the Output's flush.
 */
export function explainProgress(out: Output, now: () => number = () => performance.now()): (p: Readonly<ReadProgress>) => void {
  if (!out.showsStatus) return () => undefined;
  const t0 = now();
  let next = t0 + 1000;
  return (p) => {
    const t = now();
    if (t < next) return;
    next = t + 1000;
    out.status(explainProgressLine(p, (t - t0) / 1000));
  };
}

export function explainSummaryLine(s: ExplainSummary & { kernel: string; profile: string }): string {
  return JSON.stringify(explainSummary.json(s));
}
