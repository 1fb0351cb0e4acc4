/**
 * From explain's packet stream to what a person reads: which connection a packet belongs to (the
 * NAT host's own RST joins the connection it resets), sequence numbers relative to each side's
 * first, the handshake, and which packets matter. Shared by the text stream and the diagrams.
 */
import type { ExplainedPacket } from '../conntrack/explain.js';
import { formatReason, reasonArg, reasonForm } from '../conntrack/model.js';

export interface Endpoint {
  addr: string;
  port: number;
}

/** A packet as the renderers keep it (explain reuses its objects; this is a copy). */
export interface PacketRow {
  index: number;
  tsSec: number;
  src: Endpoint;
  dst: Endpoint;
  flags: string;
  /** The TCP flag byte (FIN 1, SYN 2, RST 4, PSH 8, ACK 16). */
  tcpFlags: number;
  seq: number;
  ack: number;
  len: number;
  /** Sequence number relative to the first one seen from this side (its SYN's, usually). */
  relSeq: number;
  /** Acknowledgement relative to the other side's first sequence number; null without ACK. */
  relAck: number | null;
  dir: 'original' | 'reply';
  /** From the client's side of the connection (the client, or the NAT host in its place). */
  fromClient: boolean;
  stateBefore: string;
  stateAfter: string;
  verdict: 'ACCEPT' | 'IGNORE' | 'INVALID';
  /**
   * The kernel's reason: read it with `rowReason`. A window check's reason is kept as its form
   * (model.ts REASON_FORMS, -1 for none) and number, its text built only when asked (a replay
   * has a hundred thousand IGNOREs); any other reason is `reasonText`.
   */
  reasonText: string | null;
  reasonForm: number;
  reasonArg: number;
  logged: boolean;
  note: string | null;
  secondaryReason: string | null;
  /** A reply matched to its connection through NAT (addressed to the NAT host). */
  natted: boolean;
  /** explain's consequence (NAT-aware: where an INVALID packet goes). */
  consequence: string;
  /** Sent by the NAT host itself: its TCP answering a packet conntrack left un-translated. */
  fromNatHost: boolean;
  /** The INVALID packet this host's packet answers (its index), when known. */
  answers: number | null;
  handshake: boolean;
  /** IGNORE, INVALID, RST or FIN: what a person needs to see. */
  matters: boolean;
}

export interface FlowTrace {
  /** "client → server", endpoints as a person reads them. */
  id: string;
  client: Endpoint;
  server: Endpoint;
  /** The NAT host's address and port for this connection, when replies showed it. */
  nat: Endpoint | null;
  rows: PacketRow[];
  /** Rows not kept (a diagram has room for `maxRows`). */
  omitted: number;
  counts: { packets: number; accept: number; ignore: number; invalid: number; hostResets: number };
  finalState: string;
  /** The first INVALID packet that is not the NAT host's own. */
  firstInvalid: { index: number; reason: string | null } | null;
  /** What a renderer keeps with the connection while it is open (text: its held handshake rows); null at first. */
  renderer?: unknown;
}

/** A row's reason, as the kernel words it (null: none). */
export function rowReason(r: PacketRow): string | null {
  return r.reasonForm >= 0 ? formatReason(r.reasonForm, r.reasonArg) : r.reasonText;
}

/** `addr:port`, IPv6 in brackets. */
export function endpointText(e: Endpoint): string {
  return e.addr.includes(':') ? `[${e.addr}]:${e.port}` : `${e.addr}:${e.port}`;
}

const epKey = (a: string, p: number) => `${a}|${p}`;

/** What a tracker that keeps no rows gives every connection (read only: nothing is pushed to it). */
const NO_ROWS: PacketRow[] = [];

/**
 * A connection as the tracker follows it: its trace (what renderers read) and the tracker's own
 * state, one object. Tens of thousands may be open at once, so it is kept small: its `id` is made
 * when read (a diagram's title, a summary block — three strings per connection were ~100 bytes),
 * its counts are its own fields (`counts` is itself), and a tracker that keeps no rows gives it
 * a shared empty list.
 */
class TrackedFlow implements FlowTrace {
  nat: Endpoint | null = null;
  omitted = 0;
  packets = 0;
  accept = 0;
  ignore = 0;
  invalid = 0;
  hostResets = 0;
  finalState = '';
  firstInvalid: { index: number; reason: string | null } | null = null;
  // the tracker's
  /** The first sequence number seen from each side, as int32. */
  isnClient: number | null = null;
  isnServer: number | null = null;
  lastInvalidToNat: number | null = null;
  /** Its key in natAlias, once the NAT host's address is known. */
  alias: string | null = null;
  /** Its conntrack entry's row in explain's summary (ExplainedPacket.flow); -1 before a packet of the entry. */
  entryFlow = -1;
  renderer: unknown = null;
  constructor(
    public client: Endpoint,
    public server: Endpoint,
    public rows: PacketRow[],
    /** Among the first `maxFlows`: its rows are kept. */
    readonly kept: boolean,
    /** Its place in the capture's order of connections (0 = the first seen). */
    readonly ordinal: number,
  ) {}

  get id(): string {
    return `${endpointText(this.client)} → ${endpointText(this.server)}`;
  }

  get counts(): FlowTrace['counts'] {
    return this;
  }
}

function setEndpoint(e: Endpoint, addr: string, port: number): Endpoint {
  e.addr = addr;
  e.port = port;
  return e;
}

const FLAG_BIT = { FIN: 1, SYN: 2, RST: 4, PSH: 8, ACK: 16 } as const;
/** Flag texts ("PSH|ACK") to their bits: a capture has a few dozen of them. */
const flagBits = new Map<string, number>();

export function hasFlag(flags: string, f: keyof typeof FLAG_BIT): boolean {
  let bits = flagBits.get(flags);
  if (bits === undefined) {
    bits = 0;
    for (const name of flags.split('|')) bits |= FLAG_BIT[name as keyof typeof FLAG_BIT] ?? 0;
    if (flagBits.size < 1024) flagBits.set(flags, bits);
  }
  return (bits & FLAG_BIT[f]) !== 0;
}

/**
 * What a tracker does with a connection whose conntrack entry is gone (see `sweep`): given its
 * trace and place in the order of connections, once.
 */
export type OnFlowClosed = (trace: FlowTrace, ordinal: number) => void;

/**
 * Groups explain's packets into connections, in arrival order. `add` returns the kept row and its
 * flow; `maxRows` bounds what one flow keeps (rows past it are counted, not kept).
 */
export class FlowTracker {
  private flows = new Map<string, TrackedFlow>();
  // NAT host endpoint + server endpoint → flow key
  private natAlias = new Map<string, string>();
  /**
   * The first `maxFlows` connections' traces, in the order seen (`count` says how many there were
   * in all; none kept when closed flows go to `onClosed`). Later ones are traced while their entry
   * lives (see `sweep`), then forgotten.
   */
  readonly order: FlowTrace[] = [];
  /** Connections seen (their ordinals are 0 … count − 1). */
  count = 0;
  /** The row of a packet not kept, reused. */
  private readonly scratch = { src: { addr: '', port: 0 }, dst: { addr: '', port: 0 } } as PacketRow;

  /**
   * `maxRows` per connection; rows of connections after the first `maxFlows` are counted, not
   * kept. With `onClosed`, a connection swept away (its entry gone) is handed to it and forgotten:
   * the tracker then holds what the kernel's table holds, and `order` stays empty.
   */
  constructor(
    private readonly maxRows = Infinity,
    private readonly maxFlows = Infinity,
    private readonly onClosed: OnFlowClosed | null = null,
  ) {}

  /** Close the connections whose entry `live` says is gone (a packet of the same tuple later starts a new one). */
  sweep(live: (key: string) => boolean): void {
    // forEach: no [key, value] array per entry, per sweep
    this.flows.forEach((f, key) => {
      if (!live(key)) this.close(key, f);
    });
  }

  private close(key: string, f: TrackedFlow): void {
    this.flows.delete(key);
    if (f.alias !== null && this.natAlias.get(f.alias) === key) this.natAlias.delete(f.alias);
    this.onClosed?.(f, f.ordinal);
  }

  /** How many connections are not closed. */
  get openCount(): number {
    return this.flows.size;
  }

  /** The connections not closed yet, with their ordinals. */
  *open(): Generator<[FlowTrace, number]> {
    for (const f of this.flows.values()) yield [f, f.ordinal];
  }

  /** The flow of the packet `add` was last given. */
  flow: FlowTrace | null = null;

  /**
   * Add a packet; its flow is `this.flow` after. The row returned is a new one when the flow keeps
   * it; otherwise it is a scratch row, valid until the next call (copy it, src and dst included,
   * to keep it). Nothing is allocated for a packet of a known connection that is not kept.
   */
  add(p: ExplainedPacket): PacketRow;
  /** `needRow` false (a tracker that keeps no rows): the connection is followed, no row is made (null). */
  add(p: ExplainedPacket, needRow: boolean): PacketRow | null;
  add(p: ExplainedPacket, needRow = true): PacketRow | null {
    const d = p.decision;
    const bits = p.tcpFlags;
    let fromNatHost = false;
    // Through NAT: the client is the entry's original source, the server whoever answers (the
    // backend behind DNAT, the proxy behind REDIRECT), the NAT host the SNAT address if any.
    const e = p.entry;
    const snatted = e !== null && (e.reply.dst !== e.orig.src || e.reply.dport !== e.orig.sport);
    const toNatHost = snatted && d.dir === 'reply' && p.dst === e.reply.dst && p.dstPort === e.reply.dport;
    // the NAT host's own packets have no entry: they join the connection whose NAT address they carry
    const aliased = e === null && this.natAlias.size ? this.natAlias.get(`${epKey(p.src, p.srcPort)}>${epKey(p.dst, p.dstPort)}`) : undefined;
    if (aliased !== undefined) fromNatHost = true;
    // one connection = one conntrack entry (explain's key), even before its NAT mapping was learned
    const key = fromNatHost ? aliased! : p.entryKey;
    let f = this.flows.get(key);
    if (f !== undefined && !fromNatHost && f.entryFlow !== p.flow && f.entryFlow >= 0) {
      // a new conntrack entry for the same tuple (NF_REPEAT, or after the last one expired): the
      // connection is over, as when its entry is swept
      this.close(key, f);
      f = undefined;
    }
    if (f && e && (f.client.addr !== e.orig.src || f.client.port !== e.orig.sport || f.server.addr !== e.reply.src || f.server.port !== e.reply.sport)) {
      // NAT learned after the connection's first packets: name its peers as the entry does
      f.client = { addr: e.orig.src, port: e.orig.sport };
      f.server = { addr: e.reply.src, port: e.reply.sport };
    }
    if (!f) {
      let client: Endpoint;
      let server: Endpoint;
      if (e) {
        client = { addr: e.orig.src, port: e.orig.sport };
        server = { addr: e.reply.src, port: e.reply.sport };
      } else if (d.dir === 'original') {
        client = { addr: p.src, port: p.srcPort };
        server = { addr: p.dst, port: p.dstPort };
      } else {
        client = { addr: p.dst, port: p.dstPort };
        server = { addr: p.src, port: p.srcPort };
      }
      f = new TrackedFlow(client, server, this.maxRows === 0 ? NO_ROWS : [], this.count < this.maxFlows, this.count++);
      this.flows.set(key, f);
      if (!this.onClosed && f.ordinal < this.maxFlows) this.order.push(f);
    }
    const t = f;
    this.flow = t;
    if (!fromNatHost) t.entryFlow = p.flow;
    if (snatted && !t.nat) {
      t.nat = { addr: e.reply.dst, port: e.reply.dport };
      f.alias = `${epKey(t.nat.addr, t.nat.port)}>${epKey(t.server.addr, t.server.port)}`;
      this.natAlias.set(f.alias, key);
    }
    // the client as this packet names it: the entry's, else by the packet's direction
    const fromClient =
      fromNatHost ||
      (e !== null ? p.src === e.orig.src && p.srcPort === e.orig.sport : d.dir === 'original' ? true : p.src === p.dst && p.srcPort === p.dstPort);
    // (kept as int32: a u32 above 2³¹ is a boxed number per connection; the differences below are mod 2³² anyway)
    if (fromClient) f.isnClient ??= p.seq | 0;
    else f.isnServer ??= p.seq | 0;
    const own = fromClient ? f.isnClient! : f.isnServer!;
    const other = fromClient ? f.isnServer : f.isnClient;
    if (!needRow && this.maxRows === 0) {
      this.countPacket(t, p, fromNatHost, toNatHost);
      t.omitted++;
      return null;
    }
    const ackFlag = (bits & FLAG_BIT.ACK) !== 0;
    const keep = f.kept && t.rows.length < this.maxRows;
    const row: PacketRow = keep ? ({ src: { addr: p.src, port: p.srcPort }, dst: { addr: p.dst, port: p.dstPort } } as PacketRow) : this.scratch;
    if (!keep) {
      setEndpoint(row.src, p.src, p.srcPort);
      setEndpoint(row.dst, p.dst, p.dstPort);
    }
    row.index = p.index;
    row.tsSec = p.tsSec;
    row.flags = p.flags;
    row.seq = p.seq;
    row.ack = p.ack;
    row.len = p.len;
    row.relSeq = (p.seq - own) >>> 0;
    row.relAck = !ackFlag ? null : other === null ? p.ack : (p.ack - other) >>> 0;
    row.dir = d.dir;
    row.fromClient = fromClient;
    row.stateBefore = d.stateBefore;
    row.stateAfter = d.stateAfter;
    row.verdict = d.verdict;
    const form = reasonForm(d);
    row.reasonForm = form;
    row.reasonArg = form >= 0 ? reasonArg(d) : 0;
    row.reasonText = form >= 0 ? null : d.reason;
    row.logged = d.logged;
    row.note = d.note;
    row.secondaryReason = d.secondaryReason;
    row.natted = toNatHost;
    row.consequence = p.consequence;
    row.fromNatHost = fromNatHost;
    row.answers = fromNatHost ? f.lastInvalidToNat : null;
    row.tcpFlags = bits;
    row.handshake = (bits & FLAG_BIT.SYN) !== 0 || (d.dir === 'original' && d.stateBefore === 'SYN_RECV');
    row.matters = d.verdict !== 'ACCEPT' || (bits & (FLAG_BIT.RST | FLAG_BIT.FIN)) !== 0;
    this.countPacket(t, p, fromNatHost, toNatHost);
    if (keep) t.rows.push(row);
    else t.omitted++;
    return row;
  }

  /** Count a packet of connection t: its verdict, the NAT host's resets, the last INVALID to the NAT host, the state it leaves. */
  private countPacket(t: TrackedFlow, p: ExplainedPacket, fromNatHost: boolean, toNatHost: boolean): void {
    const d = p.decision;
    if (toNatHost && d.verdict === 'INVALID') t.lastInvalidToNat = p.index;
    t.packets++;
    if (fromNatHost && p.tcpFlags & FLAG_BIT.RST) t.hostResets++;
    if (d.verdict === 'INVALID') {
      t.invalid++;
      if (!fromNatHost) t.firstInvalid ??= { index: p.index, reason: d.reason };
    } else if (d.verdict === 'IGNORE') t.ignore++;
    else t.accept++;
    // The NAT host's own packets have no entry of their own: the connection's state is the reply's.
    if (!fromNatHost) t.finalState = d.stateAfter;
  }
}
