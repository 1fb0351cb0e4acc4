/**
 * Following NAT as conntrack does: one conntrack entry has an ORIGINAL tuple (what the initiator's
 * packets carry before NAT) and a REPLY tuple (what the responder's packets carry before NAT);
 * conntrack finds an entry by exact tuple. A capture may show a packet before NAT, after it, or
 * both (`tcpdump -i any` on a NAT host), so explain sees up to four forms per entry:
 *
 *   ORIGINAL direction: orig (before NAT) and inv(reply) (after NAT)
 *   REPLY direction:    reply (before NAT) and inv(orig) (after NAT)
 *
 * A `Binding` is explain's view of one entry: the tuple the model's table keys it by (the form of
 * its first packet) and, once learned, its real orig/reply tuples. Mappings are learned from
 *  - copies: the same packet seen before and after NAT (`learnFromCopy`, SNAT/MASQUERADE, DNAT,
 *    NodePort with SNAT on a forwarding host);
 *  - the handshake: a SYN/ACK from another address or port acking an unanswered SYN (REDIRECT and
 *    OUTPUT DNAT of local traffic, seen only after NAT, e.g. on `lo`);
 *  - rules learned from earlier entries (the same DNAT target or masquerade address), for packets
 *    of a new entry that arrive before its handshake shows the mapping (a challenge ACK on port reuse);
 *  - a `conntrack -L` dump (orig and reply tuples as the kernel printed them).
 * A form seen after NAT is only taken for its entry if the capture shows that direction after NAT
 * (`post`); otherwise conntrack looks that tuple up as it is — e.g. the NAT host's own RST, which
 * carries the masquerade address but is a new packet ("invalid new" on 6.7+).
 * Pure: tuples in, bindings out.
 */
import type { CtEntry } from '../inspect/conntrack.js';
import { flowKey, type ConntrackTable, type ConntrackTracker } from './model.js';
import { State } from './states.js';
import { withBit } from '../util/bits.js';
import { tupleKey, v4TupleSlot } from './v4tuples.js';

export interface Tuple {
  src: string;
  sport: number;
  dst: string;
  dport: number;
}

/** A conntrack entry's two tuples (from `conntrack -L`). */
export interface NatMapping {
  orig: Tuple;
  reply: Tuple;
}

export interface Binding {
  /** The model table's key for this entry. */
  key: string;
  /** The tuple the model table treats as ORIGINAL (the form of the entry's first packet; its inverse for REPLY packets). */
  readonly canon: Tuple;
  /** conntrack's ORIGINAL tuple (canon until NAT is learned). */
  orig: Tuple;
  /** conntrack's REPLY tuple (inv(orig) until NAT is learned). */
  reply: Tuple;
  natted: boolean;
  /** Per direction (ORIGINAL, REPLY): the capture shows it after NAT (true), before NAT (false), not yet known (null). */
  post0: boolean | null;
  post1: boolean | null;
  /** The table entry this binding belongs to (a new entry under the same key is another binding). */
  tracker: ConntrackTracker;
  /** How the mapping was learned. */
  learnedFrom: 'copy' | 'handshake' | 'rule' | 'conntrack' | null;
  /**
   * The keys of its four forms registered for it, null when not (an entry's forms: ORIGINAL and
   * REPLY before NAT, and after it; a key the alias map gives this binding for is the last of
   * them registered, found by comparing — fields, not an alias object per key: with tens of
   * thousands of entries live, those were 90 bytes each).
   */
  keyOrig: string | null;
  keyReply: string | null;
  keyOrigAfter: string | null;
  keyReplyAfter: string | null;
  /** While unanswered: the ack its SYN/ACK must carry, as an int32 (a u32 above 2³¹ is a boxed number to V8). */
  synEnd: number | null;
  /** Per direction: its after-NAT form has the table's key (so it is always this entry's). */
  afterSameKey0: boolean;
  afterSameKey1: boolean;
  /** What the caller keeps for this entry (explain: its flow's summary), opaque here: found without a lookup. */
  owner: unknown;
  /** The same for the caller's capture-gap state of this entry: its slot (see gaps.ts), -1 before it has one, and the slot's generation then. */
  gaps: number;
  gapsGen: number;
  /** `orig` as text (what a packet through NAT was matched to): made once per orig, not per packet. */
  readonly origText: string;
  /** { orig, reply } once NAT is learned (null before): one object per mapping, not per packet. */
  readonly entry: { orig: Tuple; reply: Tuple } | null;
}

/** What only a binding whose NAT was learned (or whose after-NAT forms were registered) has. */
interface Learned {
  reply: Tuple | null;
  from: Binding['learnedFrom'];
  keyOrigAfter: string | null;
  keyReplyAfter: string | null;
  /** origText and entry, and the orig / reply they were made for */
  origText: string | null;
  textOf: Tuple | null;
  entry: { orig: Tuple; reply: Tuple } | null;
}

/** EntryBinding's flags: natted, post0 and post1 (two bits each: false, true, null), afterSameKey0 and 1. */
const NATTED = 1;
const POST0 = 1;
const POST1 = 3;
const POST_FALSE = 0;
const POST_TRUE = 1;
const POST_NULL = 2;
const SAME0 = 1 << 5;
const SAME1 = 1 << 6;
const postBits = (v: boolean | null): number => (v === null ? POST_NULL : v ? POST_TRUE : POST_FALSE);
const postOf = (bits: number, at: number): boolean | null => {
  const v = (bits >> at) & 3;
  return v === POST_NULL ? null : v === POST_TRUE;
};

/**
 * A binding as NatFollower makes it. It is its own canonical tuple (src, sport, dst, dport), and
 * its orig until NAT is learned; its reply is kept only once learned (until then the inverse of
 * orig, made when read: a cold path). An entry not NATed — most of them — has no tuple object
 * besides it (with tens of thousands of entries live, two tuples each were 112 bytes), its flags
 * are bits of one number and what NAT adds is in an object made when it is learned: 136 bytes, not 192.
 */
class EntryBinding implements Binding, Tuple {
  readonly src: string;
  readonly sport: number;
  readonly dst: string;
  readonly dport: number;
  orig: Tuple;
  keyOrig: string | null = null;
  keyReply: string | null = null;
  synEnd: number | null = null;
  owner: unknown = null;
  gaps = -1;
  gapsGen = 0;
  /** natted false, post0 false, post1 null, afterSameKey0 and 1 true */
  private bits = (POST_FALSE << POST0) | (POST_NULL << POST1) | SAME0 | SAME1;
  private learned: Learned | null = null;

  constructor(
    readonly key: string,
    t: Tuple,
    public tracker: ConntrackTracker,
  ) {
    this.src = t.src;
    this.sport = t.sport;
    this.dst = t.dst;
    this.dport = t.dport;
    this.orig = this;
  }

  get canon(): Tuple {
    return this;
  }

  private learn(): Learned {
    return (this.learned ??= { reply: null, from: null, keyOrigAfter: null, keyReplyAfter: null, origText: null, textOf: null, entry: null });
  }

  get origText(): string {
    const l = this.learn();
    if (l.textOf !== this.orig) {
      l.origText = tupleText(this.orig);
      l.textOf = this.orig;
    }
    return l.origText!;
  }

  get entry(): { orig: Tuple; reply: Tuple } | null {
    if (!this.natted) return null;
    const l = this.learn();
    const reply = this.reply;
    if (l.entry === null || l.entry.orig !== this.orig || l.entry.reply !== reply) l.entry = { orig: this.orig, reply };
    return l.entry;
  }

  get reply(): Tuple {
    return this.learned?.reply ?? inverse(this.orig);
  }
  set reply(t: Tuple) {
    this.learn().reply = t;
  }

  get learnedFrom(): Binding['learnedFrom'] {
    return this.learned === null ? null : this.learned.from;
  }
  set learnedFrom(v: Binding['learnedFrom']) {
    if (v !== null || this.learned !== null) this.learn().from = v;
  }

  get keyOrigAfter(): string | null {
    return this.learned === null ? null : this.learned.keyOrigAfter;
  }
  set keyOrigAfter(k: string | null) {
    if (k !== null || this.learned !== null) this.learn().keyOrigAfter = k;
  }

  get keyReplyAfter(): string | null {
    return this.learned === null ? null : this.learned.keyReplyAfter;
  }
  set keyReplyAfter(k: string | null) {
    if (k !== null || this.learned !== null) this.learn().keyReplyAfter = k;
  }

  get natted(): boolean {
    return (this.bits & NATTED) !== 0;
  }
  set natted(v: boolean) {
    this.bits = withBit(this.bits, NATTED, v);
  }

  get post0(): boolean | null {
    return postOf(this.bits, POST0);
  }
  set post0(v: boolean | null) {
    this.bits = (this.bits & ~(3 << POST0)) | (postBits(v) << POST0);
  }

  get post1(): boolean | null {
    return postOf(this.bits, POST1);
  }
  set post1(v: boolean | null) {
    this.bits = (this.bits & ~(3 << POST1)) | (postBits(v) << POST1);
  }

  get afterSameKey0(): boolean {
    return (this.bits & SAME0) !== 0;
  }
  set afterSameKey0(v: boolean) {
    this.bits = withBit(this.bits, SAME0, v);
  }

  get afterSameKey1(): boolean {
    return (this.bits & SAME1) !== 0;
  }
  set afterSameKey1(v: boolean) {
    this.bits = withBit(this.bits, SAME1, v);
  }
}

/** A binding's forms: bit 0 the direction (REPLY), AFTER and up: after NAT. */
const ORIG = 0;
const REPLY = 1;
const AFTER = 2;
const ORIG_AFTER = 2;
const REPLY_AFTER = 3;
type Form = 0 | 1 | 2 | 3;

/**
 * Which of b's forms the alias key k (registered for b) is: of forms with the same key (a
 * self-connection's tuple is its own inverse; not NATed, an after form is the form itself), the
 * one registered last — register's order read backwards — as the alias map's value would be.
 */
function formOf(b: Binding, k: string): Form {
  if (k === b.keyReply) return REPLY;
  if (k === b.keyOrig) return ORIG;
  if (k === b.keyReplyAfter) return REPLY_AFTER;
  return ORIG_AFTER;
}

function setPost(b: Binding, dir: 0 | 1, post: boolean): void {
  if (dir === 0) b.post0 = post;
  else b.post1 = post;
}

export interface Resolved {
  binding: Binding;
  dir: 0 | 1;
  /** The packet is in a NATed form (not conntrack's tuple for its direction, nor the plain inverse). */
  viaNat: boolean;
}

/** A tuple of one's own: `resolve` and `afterPacket` may be given a scratch tuple reused per packet. */
const own = (t: Tuple): Tuple => ({ src: t.src, sport: t.sport, dst: t.dst, dport: t.dport });
export const inverse = (t: Tuple): Tuple => ({ src: t.dst, sport: t.dport, dst: t.src, dport: t.sport });
const copyOf = (t: Tuple): Tuple => ({ src: t.src, sport: t.sport, dst: t.dst, dport: t.dport });
export const sameTuple = (a: Tuple, b: Tuple): boolean => a.src === b.src && a.sport === b.sport && a.dst === b.dst && a.dport === b.dport;

/** IPv4 text → int32 (as explain reads it from packets; a few addresses, seen millions of times: cached). */
const v4Cache = new Map<string, number>();
function v4Number(a: string): number {
  let n = v4Cache.get(a);
  if (n === undefined) {
    const p = a.split('.');
    n = (Number(p[0]) << 24) | (Number(p[1]) << 16) | (Number(p[2]) << 8) | Number(p[3]);
    if (v4Cache.size < 1 << 16) v4Cache.set(a, n);
  }
  return n;
}

/**
 * A directional key for a tuple: 6 UTF-16 units for IPv4 (cheap to build from packet bytes and to
 * hash, see `v4DirKey`), text for IPv6.
 */
export function dirKeyOf(t: Tuple): string {
  if (t.src.includes(':')) return `${t.src}|${t.sport}>${t.dst}|${t.dport}`;
  return v4DirKey(v4Number(t.src), t.sport, v4Number(t.dst), t.dport);
}

/** `dirKeyOf` from IPv4 addresses as int32 (the order of `v4FlowKey` is theirs). */
export function v4DirKey(a: number, pa: number, b: number, pb: number): string {
  return tupleKey(v4TupleSlot(a, pa, b, pb));
}

/** The same key for both directions of an IPv4 4-tuple (the model table's key). */
export function v4FlowKey(a: number, pa: number, b: number, pb: number): string {
  return a < b || (a === b && pa <= pb) ? v4DirKey(a, pa, b, pb) : v4DirKey(b, pb, a, pa);
}

/** The model table's key for a tuple (the same for both directions). */
export function flowKeyOf(t: Tuple): string {
  if (t.src.includes(':')) return flowKey({ src: t.src, srcPort: t.sport, dst: t.dst, dstPort: t.dport });
  return v4FlowKey(v4Number(t.src), t.sport, v4Number(t.dst), t.dport);
}

const dirKey = dirKeyOf;

/** Which of a tuple's four fields differ from `base` (bits: src, sport, dst, dport). */
function rewritten(base: Tuple, t: Tuple): number {
  return (base.src !== t.src ? 1 : 0) | (base.sport !== t.sport ? 2 : 0) | (base.dst !== t.dst ? 4 : 0) | (base.dport !== t.dport ? 8 : 0);
}

/** `a` rewrote every field `b` did, and more. */
function moreRewritten(base: Tuple, a: Tuple, b: Tuple): boolean {
  const ra = rewritten(base, a);
  const rb = rewritten(base, b);
  return ra !== rb && (ra & rb) === rb;
}
const endpoint = (addr: string, port: number): string => `${addr}|${port}`;
const host = (a: string) => (a.includes(':') ? `[${a}]` : a);
export const tupleText = (t: Tuple): string => `${host(t.src)}:${t.sport} → ${host(t.dst)}:${t.dport}`;

/** Unanswered SYNs remembered for handshake learning (see rememberSyn). */
export const MAX_PENDING_SYNS = 1 << 16;

export class NatFollower {
  /** Every registered form's key → its entry's binding (which form: `formOf`). */
  private readonly aliases = new Map<string, Binding>();
  /**
   * Unanswered SYNs by the ack their SYN/ACK must carry (seq + 1), as an int32: a small integer
   * key (a u32 key above 2³¹ is a number boxed in the map: a flood of SYNs keeps one each).
   */
  private readonly pendingSyn = new Map<number, Binding>();
  /** The bindings that entered pendingSyn, the last MAX_PENDING_SYNS of them (filled as SYNs come). */
  private synRing: Int32Array | null = null;
  private synRingAt = 0;
  private synRingFull = false;
  /** Learned DNAT/REDIRECT: original destination endpoint → translated destination. */
  private readonly dnat = new Map<string, { addr: string; port: number }>();
  /** Learned SNAT/MASQUERADE: translated source address → original source addresses. */
  private readonly snat = new Map<string, Set<string>>();
  /** conntrack -L: any of an entry's four forms → the entry. */
  private readonly dump = new Map<string, NatMapping>();
  /**
   * The packet clock: the caller sets it for each packet before `resolve` (a field, not an
   * argument: a number that is not a small integer is boxed when passed to a call V8 did not inline).
   */
  now = 0;
  /** `resolve`'s result, reused (valid until the next call). */
  private readonly result: Resolved = { binding: null as unknown as Binding, dir: 0, viaNat: false };

  constructor(
    private readonly table: ConntrackTable,
    mappings: readonly NatMapping[] = [],
  ) {
    for (const m of mappings) {
      if (sameTuple(m.orig, inverse(m.reply))) continue; // not NATed
      for (const t of [m.orig, m.reply, inverse(m.orig), inverse(m.reply)]) this.dump.set(dirKey(t), m);
    }
  }

  /**
   * The entry conntrack would find at `now` for a packet with tuple `t` (`ack32`: its ack as an
   * int32, `ack | 0`: never boxed), or null (a new lookup). The result is reused by the next call.
   */
  resolve(t: Tuple, flags: number, ack32: number, k: string = dirKey(t)): Resolved | null {
    // (the clock is read where it is used, not passed: fromAlias is not inlined, and a number that
    // is not a small integer passed to a call V8 did not inline is boxed — one per packet)
    const r = this.fromAlias(k);
    if (r) return r;
    // (learnForOrphan registers a form only when it binds, and then says so)
    if (this.learnForOrphan(t, flags, ack32)) return this.fromAlias(k);
    return null;
  }

  /**
   * The key `fromAlias` last found no binding for, null when it found one: no need to look again
   * in afterPacket (a new flow's first packet, each SYN of a flood).
   */
  private unaliased: string | null = null;

  /** After the table processed a packet that resolved to `r` (or to nothing, with tuple `t`, table key `key`). */
  afterPacket(r: Resolved | null, t: Tuple, key: string, synEnd: number | null, k?: string, entryKept = false): Binding | null {
    // `entryKept`: the caller knows the table neither replaced nor deleted the resolved entry
    // (no REPEAT, no delete): it is still the binding's, no lookup needed
    const tr = r && entryKept ? r.binding.tracker : this.table.byKey(key);
    if (r) {
      const b = r.binding;
      if (r.dir === 1) this.forgetSyn(b);
      if (tr === b.tracker) return b;
      if (tr && !tr.dead) {
        // NF_REPEAT: the entry was replaced by a new one for the same tuple; NAT is set up the same way.
        b.tracker = tr;
        return b;
      }
      this.drop(b);
      return null;
    }
    if (!tr || tr.dead || !tr.confirmed) return null;
    const dk = k ?? dirKey(t);
    const prev = dk === this.unaliased ? undefined : this.aliases.get(dk);
    this.unaliased = null;
    if (prev && prev.tracker === tr) return prev;
    const b = new EntryBinding(key, t, tr);
    this.registerPlain(b, dk);
    if (synEnd !== null && tr.state === State.SYN_SENT) {
      b.synEnd = synEnd | 0;
      this.rememberSyn(b);
    }
    if (this.dump.size) {
      const m = this.dump.get(dk);
      if (m) this.bind(b, m.orig, m.reply, 'conntrack');
    }
    return b;
  }

  /**
   * A copy of a packet whose first copy had tuple `first` and resolved to `b` in direction `dir`,
   * seen again with tuple `copy`: the difference is what NAT rewrote.
   */
  learnFromCopy(b: Binding, dir: 0 | 1, first: Tuple, copy: Tuple): void {
    // (`first` and `copy` may be the caller's scratch tuples: a binding keeps copies of them)
    if (sameTuple(first, copy) || b.tracker.dead) return;
    if (dir === 0 && sameTuple(first, b.canon)) {
      // Copies of one packet are NATed step by step (DNAT in PREROUTING, SNAT in POSTROUTING): the
      // copy with the most rewritten fields is the reply tuple's inverse (NodePort: both ends).
      if (b.natted) {
        if (b.learnedFrom !== 'copy') return;
        const r = b.reply;
        // the copy it was learned from (most copies in a NAT host's capture): nothing new
        if (copy.src === r.dst && copy.sport === r.dport && copy.dst === r.src && copy.dport === r.sport) return;
        if (!moreRewritten(first, copy, inverse(r))) return;
      }
      this.bind(b, copyOf(first), inverse(copy), 'copy');
    } else if (dir === 1 && !b.natted) this.bind(b, inverse(copy), copyOf(first), 'copy');
  }

  /**
   * Forget the bindings of entries gone from the table (expired at `now`, or deleted):
   * what explain remembers is bounded by the flow table, not by the capture.
   */
  sweep(now: number): void {
    for (const b of this.aliases.values()) if (b.tracker.dead || b.tracker.isExpired(now)) this.drop(b);
    for (const b of this.pendingSyn.values()) if (b.tracker.dead || b.tracker.isExpired(now)) this.forgetSyn(b);
  }

  /** Bindings remembered (for tests: bounded by the table). */
  get size(): number {
    return this.aliases.size;
  }

  private fromAlias(k: string): Resolved | null {
    const now = this.now;
    const b = this.aliases.get(k);
    if (!b) {
      this.unaliased = k;
      return null;
    }
    // (an entry the table replaced or removed is dead or expired: no table lookup needed)
    if (b.tracker.dead || b.tracker.isExpired(now)) {
      this.drop(b);
      this.unaliased = k;
      return null;
    }
    this.unaliased = null;
    const form = formOf(b, k);
    const dir = form & 1 ? 1 : 0;
    const after = form >= AFTER;
    const post = dir === 0 ? b.post0 : b.post1;
    if (after) {
      // Seen after NAT: the same packet as conntrack's only if this direction shows up after NAT here.
      if (post === false && !(dir === 0 ? b.afterSameKey0 : b.afterSameKey1)) return null;
      if (post === null) setPost(b, dir, true);
    } else if (post === null) setPost(b, dir, false);
    // via NAT: the packet's tuple is neither the entry's original tuple nor its plain inverse
    const r = this.result;
    r.binding = b;
    r.dir = dir;
    r.viaNat = b.natted && (dir === 0 ? after : !after);
    return r;
  }

  /** A packet that matches no entry: try what could tie it to one. */
  private learnForOrphan(t: Tuple, flags: number, ack32: number): boolean {
    // The handshake: a SYN/ACK acking an unanswered SYN, from another address/port or to one.
    if ((flags & 0x16) === 0x12) {
      const b = this.pendingSyn.get(ack32);
      if (this.liveUnnatted(b) && b.tracker.state === State.SYN_SENT) {
        const c = b.canon;
        if (t.dst === c.src && t.dport === c.sport) {
          // To the initiator, from elsewhere: the SYN was seen after DNAT/REDIRECT (local traffic,
          // e.g. on lo), the SYN/ACK after its reverse: orig = initiator → where it meant to go.
          if (this.bind(b, inverse(t), inverse(c), 'handshake')) return true;
        } else if (t.src === c.dst && t.sport === c.dport) {
          // From the responder, to elsewhere: SNAT/MASQUERADE, the SYN seen before it.
          if (this.bind(b, c, own(t), 'handshake')) return true;
        }
      }
    }
    // conntrack -L named this tuple's entry.
    const m = this.dump.size ? this.dump.get(dirKey(t)) : undefined;
    if (m) {
      for (const form of [m.orig, inverse(m.reply)]) {
        const b = this.aliases.get(dirKey(form));
        if (this.liveUnnatted(b) && this.bind(b, m.orig, m.reply, 'conntrack')) return true;
      }
    }
    // A reply from a known DNAT/REDIRECT destination to an entry that was sent to its target.
    const to = this.dnat.size ? this.dnat.get(endpoint(t.src, t.sport)) : undefined;
    if (to) {
      const b = this.aliases.get(dirKey({ src: t.dst, sport: t.dport, dst: to.addr, dport: to.port }));
      if (this.liveUnnatted(b) && this.bind(b, inverse(t), { src: to.addr, sport: to.port, dst: t.dst, dport: t.dport }, 'rule')) return true;
    }
    // A reply to a known masquerade address, for an entry from one of its original sources (same port).
    const sources = this.snat.size ? this.snat.get(t.dst) : undefined;
    if (sources) {
      for (const s of sources) {
        const b = this.aliases.get(dirKey({ src: s, sport: t.dport, dst: t.src, dport: t.sport }));
        if (this.liveUnnatted(b) && this.bind(b, b.canon, own(t), 'rule')) return true;
      }
    }
    return false;
  }

  /** `b` exists, is not NATed, and its entry is the table's, live now (a method, not a closure over the clock: none made per orphan packet). */
  private liveUnnatted(b: Binding | undefined): b is Binding {
    return !!b && !b.natted && !b.tracker.dead && !b.tracker.isExpired(this.now) && this.table.byKey(b.key) === b.tracker;
  }

  /** Give a binding its real tuples; the canonical form must be one of its ORIGINAL forms. */
  private bind(b: Binding, orig: Tuple, reply: Tuple, how: Binding['learnedFrom']): boolean {
    const canonIsOrig = sameTuple(b.canon, orig);
    if (!canonIsOrig && !sameTuple(b.canon, inverse(reply))) return false;
    this.unregister(b);
    b.orig = orig;
    b.reply = reply;
    b.natted = !sameTuple(orig, inverse(reply));
    b.post0 = !canonIsOrig;
    b.learnedFrom = b.natted ? how : null;
    b.afterSameKey0 = flowKeyOf(reply) === b.key;
    b.afterSameKey1 = flowKeyOf(orig) === b.key;
    this.register(b);
    this.forgetSyn(b);
    if (b.natted) {
      if (orig.dst !== reply.src || orig.dport !== reply.sport) this.dnat.set(endpoint(orig.dst, orig.dport), { addr: reply.src, port: reply.sport });
      if (orig.src !== reply.dst) {
        let s = this.snat.get(reply.dst);
        if (!s) this.snat.set(reply.dst, (s = new Set()));
        s.add(orig.src);
      }
    }
    return true;
  }

  private register(b: Binding): void {
    // Not NATed, the after-NAT forms are the tuples themselves: two keys, not four.
    // (in this order: of two forms with the same key, the later one is the key's, see formOf)
    if (b.natted) {
      this.registerForm(b, inverse(b.reply), ORIG_AFTER);
      this.registerForm(b, inverse(b.orig), REPLY_AFTER);
    }
    this.registerForm(b, b.orig, ORIG);
    this.registerForm(b, b.reply, REPLY);
  }

  /**
   * `register` of a new binding (not NATed), its ORIGINAL form's key `k` known: its REPLY form's
   * key from the same tuple turned round, no tuple made for it.
   */
  private registerPlain(b: EntryBinding, k: string): void {
    this.registerKey(b, k, ORIG);
    this.registerKey(b, b.src.includes(':') ? `${b.dst}|${b.dport}>${b.src}|${b.sport}` : v4DirKey(v4Number(b.dst), b.dport, v4Number(b.src), b.sport), REPLY);
  }

  private registerForm(b: Binding, t: Tuple, form: Form): void {
    this.registerKey(b, dirKey(t), form);
  }

  private registerKey(b: Binding, k: string, form: Form): void {
    const cur = this.aliases.get(k);
    if (cur && cur !== b && !cur.tracker.dead && !cur.tracker.isExpired(this.now)) {
      // A live entry's own tuple stays its own (the kernel refuses to confirm a clashing entry);
      // an after-NAT form never displaces another entry's form.
      if (formOf(cur, k) < AFTER || form >= AFTER) return;
    }
    this.aliases.set(k, b);
    if (form === ORIG) b.keyOrig = k;
    else if (form === REPLY) b.keyReply = k;
    else if (form === ORIG_AFTER) b.keyOrigAfter = k;
    else b.keyReplyAfter = k;
  }

  private unregister(b: Binding): void {
    this.unalias(b, b.keyOrig);
    this.unalias(b, b.keyReply);
    this.unalias(b, b.keyOrigAfter);
    this.unalias(b, b.keyReplyAfter);
    b.keyOrig = b.keyReply = b.keyOrigAfter = b.keyReplyAfter = null;
  }

  private unalias(b: Binding, k: string | null): void {
    if (k !== null && this.aliases.get(k) === b) this.aliases.delete(k);
  }

  private drop(b: Binding): void {
    this.unregister(b);
    this.forgetSyn(b);
  }

  /**
   * An unanswered SYN, for the SYN/ACK that may show its mapping. At most MAX_PENDING_SYNS: past
   * them the oldest is forgotten (a SYN/ACK answers within a round trip, not after tens of thousands
   * of newer SYNs — a SYN flood's: a map of every one was 28 bytes per entry and its inserts slowed).
   */
  private rememberSyn(b: Binding): void {
    // (a ring of the last MAX_PENDING_SYNS: a Map's oldest is slow to find once many were deleted;
    // it holds keys, not bindings, so it keeps no entry alive — a newer SYN with the same key, a
    // 1 in 2³² coincidence, goes with the older one)
    const ring = (this.synRing ??= new Int32Array(MAX_PENDING_SYNS));
    const at = this.synRingAt;
    if (this.synRingFull) {
      const oldest = this.pendingSyn.get(ring[at]!);
      if (oldest !== undefined) this.forgetSyn(oldest);
    }
    ring[at] = b.synEnd!;
    if (at + 1 === MAX_PENDING_SYNS) {
      this.synRingAt = 0;
      this.synRingFull = true;
    } else this.synRingAt = at + 1;
    this.pendingSyn.set(b.synEnd!, b);
  }

  private forgetSyn(b: Binding): void {
    if (b.synEnd === null) return;
    if (this.pendingSyn.get(b.synEnd) === b) this.pendingSyn.delete(b.synEnd);
    b.synEnd = null;
  }
}

/** The NAT mappings in `conntrack -L` entries (TCP entries whose reply tuple is not the original's inverse). */
export function natMappingsFromConntrack(entries: readonly CtEntry[]): NatMapping[] {
  const out: NatMapping[] = [];
  for (const e of entries) {
    if (e.protocol !== 'tcp') continue;
    const o = e.original;
    const r = e.reply;
    if (o.sport === null || o.dport === null || r.sport === null || r.dport === null) continue;
    const m = { orig: { src: o.src, sport: o.sport, dst: o.dst, dport: o.dport }, reply: { src: r.src, sport: r.sport, dst: r.dst, dport: r.dport } };
    if (!sameTuple(m.orig, inverse(m.reply))) out.push(m);
  }
  return out;
}
