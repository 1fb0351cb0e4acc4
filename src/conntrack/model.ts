/**
 * A pure model of the kernel's TCP connection tracker (net/netfilter/nf_conntrack_proto_tcp.c):
 * the per-packet entry (flag validity, new-connection setup incl. loose pickup, state transitions with
 * the IGNORE / REPEAT / TIME_WAIT / SYN_RECV / CLOSE special cases, RST checks), the window checks in
 * their OLD, overshoot-INVALID (6.0) and MODERN (6.1+) forms, handleInvalid, timeouts and be_liberal.
 * Behaviour per kernel comes from a KernelProfile. No I/O.
 * Spec: /work/shared/notes/conntrack-tcp-model.md §0–§9.
 */
import { InternalError } from '../errors.js';
import { withBit } from '../util/bits.js';
import { seqAfter as after, seqBefore as before } from '../packet/seq.js';
import type { KernelProfile, ProfileFeatures } from './profile.js';
import {
  CtFlag,
  Idx,
  State,
  TcpFlag,
  flagIndex,
  nextState,
  sIG,
  sIV,
  stateName,
  timeoutTable,
  validFlagCombination,
  type DirValue,
  type TimeoutName,
} from './states.js';

export interface TcpPacketView {
  src: string;
  dst: string;
  srcPort: number;
  dstPort: number;
  seq: number;
  ack: number;
  /** FIN=1 SYN=2 RST=4 PSH=8 ACK=16 URG=32 ECE=64 CWR=128 */
  flags: number;
  /** Raw (unscaled) window field. */
  window: number;
  payloadLength: number;
  /** TCP header length in bytes (20..60). */
  dataOffset: number;
  options: { wscale?: number; sackPerm?: boolean; sackBlocks?: Array<[number, number]>; tsOnlyNopNop?: boolean };
  hasOptions: boolean;
  /** Capture time in seconds (float). */
  tsSec: number;
}

export type Verdict = 'ACCEPT' | 'IGNORE' | 'INVALID';

/**
 * Which rule decided: 'I' SEQ over upper bound (incl. the overshoot workaround), 'II' SEQ under lower bound,
 * 'III' ACK over upper bound, 'IV' ACK under lower bound, 'state' transition table (sIG/sIV), 'new' first packet
 * cannot start a connection, 'loose' pickup refused (tcp_loose=0), 'rst' RST sequence check, 'flags' invalid
 * flag combination, 'truncated' bad header length, 'challenge-ack' RFC 5961 ACK in LAST_ACK, 'repeat' reopen of
 * a closed entry. null: nothing failed.
 */
export type CheckName = 'I' | 'II' | 'III' | 'IV' | 'state' | 'new' | 'loose' | 'rst' | 'flags' | 'truncated' | 'challenge-ack' | 'repeat';

export interface Decision {
  verdict: Verdict;
  dir: 'original' | 'reply';
  stateBefore: string;
  stateAfter: string;
  /** The kernel's own message for this packet (what nf_conntrack_log_invalid would print after "nf_ct_proto_6: "). */
  reason: string | null;
  /** Whether the kernel would log it with nf_conntrack_log_invalid=6. */
  logged: boolean;
  /** The rule that decided (also set when be_liberal turned a failed window check into ACCEPT). */
  check: CheckName | null;
  /** The timeout (seconds) the entry was refreshed to, or null when not refreshed. */
  timeoutSec: number | null;
  /** A second kernel log line for the same packet (handleInvalid lowering the timeout). */
  secondaryReason: string | null;
  /** The model's explanation where the kernel prints nothing (be_liberal, pickup refused, entry deleted …). */
  note: string | null;
  /** The entry was removed by this packet (RST before any reply, or reopen → REPEAT). */
  deleted: boolean;
  /** Kernel returned NF_REPEAT: the old entry was killed and the packet was looked up again as new. */
  repeat: boolean;
}

export interface Sysctls {
  /** nf_conntrack_tcp_be_liberal */
  beLiberal: boolean;
  /** nf_conntrack_tcp_loose (mid-stream pickup) */
  loose: boolean;
  /** nf_conntrack_tcp_ignore_invalid_rst (5.14+; ignored on profiles without it) */
  ignoreInvalidRst: boolean;
  /** nf_conntrack_tcp_max_retrans */
  maxRetrans: number;
  /** nf_conntrack_tcp_timeout_* overrides, seconds */
  timeouts: Partial<Record<TimeoutName, number>>;
  /** Kernel HZ, only used to print the jiffies in handleInvalid's message (250 on the 6.18 lab host). */
  hz?: number;
  /**
   * net.netfilter.nf_conntrack_max: the most entries the table holds (0: no limit, the model's
   * default). A new lookup past it early-drops an unassured entry to make room (see ConntrackTable).
   */
  conntrackMax?: number;
}

export const DEFAULT_SYSCTLS: Readonly<Sysctls> = {
  beLiberal: false,
  loose: true,
  ignoreInvalidRst: false,
  maxRetrans: 3,
  timeouts: {},
  hz: 250,
};

export function resolveSysctls(s: Partial<Sysctls> = {}): Sysctls {
  return { ...DEFAULT_SYSCTLS, ...s, timeouts: { ...(s.timeouts ?? {}) } };
}

/** Shared, resolved configuration (one per table; trackers keep a reference). */
export interface TrackerConfig {
  profile: KernelProfile;
  features: ProfileFeatures;
  sysctls: Sysctls;
  /** Timeout per state slot, seconds (see timeoutTable). */
  timeouts: number[];
}

export function makeTrackerConfig(profile: KernelProfile, sysctls: Partial<Sysctls> = {}): TrackerConfig {
  const s = resolveSysctls(sysctls);
  return { profile, features: profile.features, sysctls: s, timeouts: timeoutTable(s.timeouts) };
}

/** One direction's window state (kernel `ip_ct_tcp_state`). All u32 values are kept in [0, 2^32). */
export interface DirState {
  /** Highest seq+len (incl. SYN/FIN) seen from this direction. */
  tdEnd: number;
  /** Highest seq this direction may send (peer's ack + window). */
  tdMaxend: number;
  /** Largest (scaled) window this direction advertised. */
  tdMaxwin: number;
  /** Highest ack this direction sent (valid once MAXACK_SET). */
  tdMaxack: number;
  tdScale: number;
  flags: number;
}

/**
 * A DirState whose sequence numbers are kept as int32 and read as u32: to V8 an int32 is a small
 * integer held in the field itself, a u32 above 2^31 a number boxed on the heap — three boxes per
 * direction and entry, copied by each young collection the entry lives through.
 */
class DirStateRecord implements DirState {
  private end32 = 0;
  private maxend32 = 0;
  tdMaxwin = 0;
  private maxack32 = 0;
  tdScale = 0;
  flags = 0;
  get tdEnd(): number {
    return this.end32 >>> 0;
  }
  set tdEnd(v: number) {
    this.end32 = v | 0;
  }
  get tdMaxend(): number {
    return this.maxend32 >>> 0;
  }
  set tdMaxend(v: number) {
    this.maxend32 = v | 0;
  }
  get tdMaxack(): number {
    return this.maxack32 >>> 0;
  }
  set tdMaxack(v: number) {
    this.maxack32 = v | 0;
  }
  /** As a plain DirState would print (JSON, a test's diff). */
  toJSON(): DirState {
    return { tdEnd: this.tdEnd, tdMaxend: this.tdMaxend, tdMaxwin: this.tdMaxwin, tdMaxack: this.tdMaxack, tdScale: this.tdScale, flags: this.flags };
  }
}

function newDirState(): DirState {
  return new DirStateRecord();
}

function clearDirState(s: DirState, keepFlags = 0): void {
  s.tdEnd = 0;
  s.tdMaxend = 0;
  s.tdMaxwin = 0;
  s.tdMaxack = 0;
  s.tdScale = 0;
  s.flags &= keepFlags;
}

/**
 * A window check's message is formatted only when it is read: a replay meets a hundred thousand
 * IGNOREd retransmissions whose text nobody asks for (`--only invalid`, the default text), and a
 * renderer may write it from its pieces (`reasonForm`): the text before the number and after it.
 */
export const REASON_FORMS: ReadonlyArray<readonly [string, string]> = [
  ['SEQ is over upper bound ', ' (over the window of the receiver)'],
  ['ACK is over upper bound ', ' (ACKed data not seen yet)'],
  ['SEQ is under lower bound ', ' (already ACKed data retransmitted)'],
  ['ignored ACK under lower bound ', ' (possible overly delayed)'],
  ['', ' bytes more than expected'],
];
const R_SEQ_OVER = 0;
const R_ACK_OVER = 1;
const R_SEQ_UNDER = 2;
const R_ACK_UNDER = 3;
const R_OVERSHOT = 4;
export type ReasonForm = 0 | 1 | 2 | 3 | 4;
/** REASON_FORMS[form] around `arg`: the reason's text. */
export const formatReason = (form: number, arg: number): string => REASON_FORMS[form]![0] + arg + REASON_FORMS[form]![1];

/** The model's Decision: `reason` is a plain read and write; the model may set it as a form and a number. */
class DecisionRecord implements Decision {
  verdict: Verdict = 'ACCEPT';
  dir: 'original' | 'reply' = 'original';
  stateBefore = 'NONE';
  stateAfter = 'NONE';
  logged = false;
  check: CheckName | null = null;
  timeoutSec: number | null = null;
  secondaryReason: string | null = null;
  note: string | null = null;
  deleted = false;
  repeat = false;
  /** The reason's text, once formatted or when set as text. */
  private text: string | null = null;
  /** When the reason is REASON_FORMS[form] around `arg32 >>> 0` (-1: it is `text`). */
  form = -1;
  /** (a u32 kept as int32: to V8 a small integer, no number boxed per IGNORE or INVALID) */
  arg32 = 0;

  get reason(): string | null {
    if (this.text === null && this.form >= 0) this.text = formatReason(this.form, this.arg32 >>> 0);
    return this.text;
  }
  set reason(v: string | null) {
    this.text = v;
    this.form = -1;
  }
  setReasonForm(form: ReasonForm, arg32: number): void {
    this.text = null;
    this.form = form;
    this.arg32 = arg32;
  }
  /** Own enumerable properties, as a plain object would have (spread, JSON). */
  toJSON(): Decision {
    return { verdict: this.verdict, dir: this.dir, stateBefore: this.stateBefore, stateAfter: this.stateAfter, reason: this.reason, logged: this.logged, check: this.check, timeoutSec: this.timeoutSec, secondaryReason: this.secondaryReason, note: this.note, deleted: this.deleted, repeat: this.repeat };
  }
}

/** Sets a decision's reason as a form and its number (u32): formatted when read (a plain Decision gets the text now). */
export function setReason(d: Decision, form: ReasonForm, arg: number): void {
  setReason32(d, form, arg | 0);
}

/** setReason with the number as int32 (`u32 | 0`): passed to a call without boxing it. */
function setReason32(d: Decision, form: ReasonForm, arg32: number): void {
  if (d instanceof DecisionRecord) d.setReasonForm(form, arg32);
  else d.reason = formatReason(form, arg32 >>> 0);
}

/**
 * Which of REASON_FORMS a decision's reason is, around the number `reasonArg(d)` (u32), or -1
 * when it is other text or none: a renderer writes the pieces and the number instead of the text.
 */
export function reasonForm(d: Decision): number {
  return d instanceof DecisionRecord ? d.form : -1;
}
export function reasonArg(d: Decision): number {
  return d instanceof DecisionRecord ? d.arg32 >>> 0 : 0;
}
/** reasonArg as int32 (`reasonArg(d) | 0`), for a renderer that writes its bytes: nothing boxed. */
export function reasonArg32(d: Decision): number {
  return d instanceof DecisionRecord ? d.arg32 : 0;
}

export function createDecision(): Decision {
  return new DecisionRecord();
}

function resetDecision(d: Decision, dir: DirValue, before: string): void {
  d.verdict = 'ACCEPT';
  d.dir = dir === 0 ? 'original' : 'reply';
  d.stateBefore = before;
  d.stateAfter = before;
  d.reason = null;
  d.logged = false;
  d.check = null;
  d.timeoutSec = null;
  d.secondaryReason = null;
  d.note = null;
  d.deleted = false;
  d.repeat = false;
}

/** seq + payload + SYN + FIN, mod 2^32. */
export function segmentEnd(p: TcpPacketView): number {
  return (p.seq + p.payloadLength + (p.flags & TcpFlag.SYN ? 1 : 0) + (p.flags & TcpFlag.FIN ? 1 : 0)) >>> 0;
}

/** tcp_sack: the highest SACK right edge after `ack` (skipped for NOP,NOP,TIMESTAMP-only options). */
function sackRightEdge(p: TcpPacketView, ack: number): number {
  if (p.dataOffset <= 20 || p.options.tsOnlyNopNop) return ack;
  const blocks = p.options.sackBlocks;
  if (!blocks) return ack;
  let sack = ack;
  for (let i = 0; i < blocks.length; i++) {
    const b = blocks[i];
    if (b && after(b[1], sack)) sack = b[1] >>> 0;
  }
  return sack;
}

/** tcp_options: parse window scale / SACK-permitted into a direction (only when the header has options). */
function applyOptions(st: DirState, p: TcpPacketView, keepLiberal: boolean): void {
  if (p.dataOffset <= 20) return;
  st.tdScale = 0;
  st.flags = keepLiberal ? st.flags & CtFlag.BE_LIBERAL : 0;
  if (p.options.sackPerm) st.flags |= CtFlag.SACK_PERM;
  if (p.options.wscale !== undefined) {
    st.tdScale = Math.min(p.options.wscale, 14);
    st.flags |= CtFlag.WINDOW_SCALE;
  }
}

const W_ACCEPT = 0;
const W_IGNORE = 1;
const W_INVALID = 2;
type WindowResult = 0 | 1 | 2;

/** The kernel's log text for a window-check failure in the OLD (unbounded) wording. */
const OLD_MSG = {
  I: 'SEQ is over the upper bound (over the window of the receiver)',
  II: 'SEQ is under the lower bound (already ACKed data retransmitted)',
  III: 'ACK is over the upper bound (ACKed data not seen yet)',
  IV: 'ACK is under the lower bound (possible overly delayed ACK)',
} as const;


/**
 * One flow's conntrack TCP state (kernel `ip_ct_tcp` plus the status bits it uses and the timeout).
 * Feed packets with `process(pkt, dir)`; dir 0 = ORIGINAL (the flow's first packet's direction).
 */
/** ConntrackTracker's status bits. */
const SEEN_REPLY = 1;
const ASSURED = 2;
const FIXED_TIMEOUT = 4;
const CONFIRMED = 8;
const DEAD = 16;

export class ConntrackTracker {
  readonly cfg: TrackerConfig;
  /** ORIGINAL's and REPLY's (fields, not an array of them: 64 bytes less per entry; `seen` for a reader) */
  readonly seen0: DirState = newDirState();
  readonly seen1: DirState = newDirState();
  state: number = State.NONE;
  lastDir: DirValue = 0;
  retrans = 0;
  lastIndex: number = Idx.NONE;
  // (u32 kept as int32: see DirStateRecord)
  private lastSeq32 = 0;
  private lastAck32 = 0;
  private lastEnd32 = 0;
  lastWin = 0;
  lastWscale = 0;
  lastFlags = 0;
  /** The flags below, as bits of one number (a live entry's fields are what a big table costs). */
  private status = 0;
  /** IPS_SEEN_REPLY */
  get seenReply(): boolean {
    return (this.status & SEEN_REPLY) !== 0;
  }
  set seenReply(v: boolean) {
    this.status = withBit(this.status, SEEN_REPLY, v);
  }
  /** IPS_ASSURED */
  get assured(): boolean {
    return (this.status & ASSURED) !== 0;
  }
  set assured(v: boolean) {
    this.status = withBit(this.status, ASSURED, v);
  }
  /** IPS_FIXED_TIMEOUT */
  get fixedTimeout(): boolean {
    return (this.status & FIXED_TIMEOUT) !== 0;
  }
  set fixedTimeout(v: boolean) {
    this.status = withBit(this.status, FIXED_TIMEOUT, v);
  }
  /** The entry exists (first packet accepted). */
  get confirmed(): boolean {
    return (this.status & CONFIRMED) !== 0;
  }
  set confirmed(v: boolean) {
    this.status = withBit(this.status, CONFIRMED, v);
  }
  /** Killed (RST before reply, REPEAT); a dead tracker accepts no more packets. */
  get dead(): boolean {
    return (this.status & DEAD) !== 0;
  }
  set dead(v: boolean) {
    this.status = withBit(this.status, DEAD, v);
  }
  /** Absolute expiry time in seconds (packet clock). */
  expires = 0;
  /** In a table: the entry's ORIGINAL tuple (its first packet's), which tells a packet's direction. */
  origSrc = '';
  origDst = '';
  origSrcPort = 0;
  origDstPort = 0;

  constructor(profile: KernelProfile, sysctls: Partial<Sysctls> = {}, config?: TrackerConfig) {
    this.cfg = config ?? makeTrackerConfig(profile, sysctls);
  }

  get stateName(): string {
    return stateName(this.state);
  }

  /** [ORIGINAL, REPLY] (a new pair each read: for tests and reports, not the packet path). */
  get seen(): [DirState, DirState] {
    return [this.seen0, this.seen1];
  }

  /** Direction d's state. */
  side(d: number): DirState {
    return d === 0 ? this.seen0 : this.seen1;
  }

  get lastSeq(): number {
    return this.lastSeq32 >>> 0;
  }
  set lastSeq(v: number) {
    this.lastSeq32 = v | 0;
  }
  get lastAck(): number {
    return this.lastAck32 >>> 0;
  }
  set lastAck(v: number) {
    this.lastAck32 = v | 0;
  }
  get lastEnd(): number {
    return this.lastEnd32 >>> 0;
  }
  set lastEnd(v: number) {
    this.lastEnd32 = v | 0;
  }

  /** Remaining lifetime at `now`, seconds. */
  remaining(now: number): number {
    return this.expires - now;
  }

  isExpired(now: number): boolean {
    return this.confirmed && now >= this.expires;
  }

  /** Mark a direction BE_LIBERAL (as ctnetlink / nft / OVS can). */
  setLiberal(dir: DirValue): void {
    this.side(dir).flags |= CtFlag.BE_LIBERAL;
  }

  /**
   * Process one packet in direction `dir`. Writes into `out` (reused) if given.
   * A first packet that returns INVALID leaves the tracker unconfirmed (no entry exists).
   */
  process(p: TcpPacketView, dir: DirValue, out: Decision = createDecision()): Decision {
    const d = out;
    if (this.dead) throw new InternalError('conntrack entry was deleted; start a new tracker');
    resetDecision(d, dir, stateName(this.state));
    this.packet(p, dir, d);
    // The core sets SEEN_REPLY after any non-INVALID verdict for a reply-direction packet.
    if (d.verdict !== 'INVALID' && !this.dead) {
      this.confirmed = true;
      if (dir === 1) this.seenReply = true;
    }
    d.stateAfter = stateName(this.state);
    return d;
  }

  private invalid(d: Decision, check: CheckName, reason: string | null, logged: boolean): void {
    d.verdict = 'INVALID';
    d.check = check;
    d.reason = reason;
    d.logged = logged;
  }

  /** nf_conntrack_tcp_packet */
  private packet(p: TcpPacketView, dir: DirValue, d: Decision): void {
    const f = this.cfg.features;
    const sys = this.cfg.sysctls;

    // tcp_error
    if (p.dataOffset < 20 || p.dataOffset > 60) return this.invalid(d, 'truncated', 'truncated packet', true);
    if (!validFlagCombination(p.flags)) return this.invalid(d, 'flags', 'invalid tcp flag combination', true);

    if (!this.confirmed && !this.tcpNew(p, d)) return;

    let oldState = this.state;
    const idx = flagIndex(p.flags);
    let next = nextState(dir, idx, oldState);
    const seq = p.seq >>> 0;
    const ack = p.ack >>> 0;
    let skipWindow = false;

    if (next === State.SYN_SENT && oldState >= State.TIME_WAIT) {
      // Reopen from TIME_WAIT / CLOSE.
      if ((this.seen0.flags | this.seen1.flags) & CtFlag.CLOSE_INIT || (this.lastDir === dir && this.lastIndex === Idx.RST)) {
        this.dead = true;
        d.repeat = true;
        d.deleted = true;
        d.check = 'repeat';
        d.note = `reopening a closed connection in ${stateName(oldState)}: entry killed, packet looked up again (NF_REPEAT)`;
        return;
      }
      next = sIG; // falls through to the IGNORE handling
    }

    if (next === sIG) {
      if (idx === Idx.SYNACK && this.lastIndex === Idx.SYN && this.lastDir !== dir && ack === this.lastEnd) {
        // The SYN/ACK answers a SYN we let through: resync from the annotations.
        oldState = State.SYN_SENT;
        next = State.SYN_RECV;
        const s = this.side(this.lastDir);
        s.tdEnd = this.lastEnd;
        s.tdMaxend = this.lastEnd;
        s.tdMaxwin = this.lastWin === 0 ? 1 : this.lastWin;
        s.tdScale = this.lastWscale;
        this.lastFlags &= ~CtFlag.EXP_CHALLENGE_ACK;
        s.flags = this.lastFlags;
        clearDirState(this.side(dir), CtFlag.BE_LIBERAL);
      } else {
        this.lastIndex = idx;
        this.lastDir = dir;
        this.lastSeq = seq;
        this.lastEnd = segmentEnd(p);
        this.lastWin = p.window & 0xffff;
        if (idx === Idx.SYN && dir === 0) {
          this.lastFlags = 0;
          this.lastWscale = 0;
          if (p.dataOffset > 20) {
            if (p.options.wscale !== undefined) {
              this.lastFlags |= CtFlag.WINDOW_SCALE;
              this.lastWscale = Math.min(p.options.wscale, 14);
            }
            if (p.options.sackPerm) this.lastFlags |= CtFlag.SACK_PERM;
          }
          if (oldState === State.LAST_ACK) this.lastFlags |= CtFlag.EXP_CHALLENGE_ACK;
        }
        if (f.challengeAck && oldState === State.SYN_SENT && idx === Idx.ACK && dir === 1) this.lastAck = ack;
        d.verdict = 'IGNORE';
        d.check = 'state';
        d.logged = true;
        d.reason = f.newStateMessages
          ? `packet (index ${idx}) in dir ${dir} ignored, state ${stateName(oldState)}`
          : `invalid packet ignored in state ${stateName(oldState)}`;
        return;
      }
    } else if (next === sIV) {
      // (synproxy client keep-alive exception not modelled: no synproxy)
      return this.invalid(
        d,
        'state',
        f.newStateMessages ? `packet (index ${idx}) in dir ${dir} invalid, state ${stateName(oldState)}` : 'invalid state',
        true,
      );
    } else if (next === State.TIME_WAIT) {
      if (
        oldState === State.LAST_ACK &&
        idx === Idx.ACK &&
        this.lastDir !== dir &&
        this.lastIndex === Idx.SYN &&
        this.lastFlags & CtFlag.EXP_CHALLENGE_ACK
      ) {
        this.lastFlags &= ~CtFlag.EXP_CHALLENGE_ACK;
        d.verdict = 'IGNORE';
        d.check = 'challenge-ack';
        d.reason = 'challenge-ack ignored';
        d.logged = true;
        return;
      }
    } else if (next === State.SYN_SENT2) {
      this.lastFlags |= CtFlag.SIMULTANEOUS_OPEN;
    } else if (next === State.SYN_RECV) {
      if (dir === 1 && idx === Idx.ACK && this.lastFlags & CtFlag.SIMULTANEOUS_OPEN) next = State.ESTABLISHED;
    } else if (next === State.CLOSE && idx === Idx.RST) {
      const st = this.state;
      if (
        f.rstImprovements &&
        (st === State.FIN_WAIT || st === State.LAST_ACK || st === State.TIME_WAIT || st === State.CLOSE || st === State.CLOSE_WAIT)
      ) {
        skipWindow = true; // tuple may be re-used already: skip all checks
      } else {
        let done = false;
        const r = this.side(1 - dir);
        const established = this.state === State.ESTABLISHED && this.assured;
        if (r.flags & CtFlag.MAXACK_SET && (!f.rstImprovements || this.lastIndex !== Idx.SYN)) {
          if (f.rstImprovements && seq === 0 && !established) done = true;
          else if (before(seq, r.tdMaxack) && !(f.ignoreInvalidRstSysctl && sys.ignoreInvalidRst)) {
            return this.invalid(d, 'rst', 'invalid rst', true);
          } else if (!established || seq === r.tdMaxack) done = true;
          else if (this.lastIndex === Idx.ACK && this.lastDir === dir && seq === this.lastEnd) done = true;
          else {
            next = oldState; // inexact RST: keep state, allow a challenge ACK
            d.note = 'RST sequence does not match exactly: state kept to allow a challenge ACK';
          }
        }
        if (!done) {
          if (
            ((this.seenReply && this.lastIndex === Idx.SYN && (!f.rstSynLastDirCheck || this.lastDir !== dir)) ||
              (!this.assured && this.lastIndex === Idx.ACK)) &&
            ack === this.lastEnd
          ) {
            skipWindow = true; // RST to a SYN/ACK we let through
          } else if (
            f.challengeAck &&
            oldState === State.SYN_SENT &&
            this.lastIndex === Idx.ACK &&
            this.lastDir === 1 &&
            seq === this.lastAck
          ) {
            skipWindow = true; // RST answering a challenge ACK we let through
          }
        }
      }
    }

    if (!skipWindow) {
      const res = this.inWindow(dir, idx, p, d);
      if (res === W_IGNORE) {
        d.verdict = 'IGNORE';
        return;
      }
      if (res === W_INVALID) {
        d.verdict = 'INVALID';
        if (f.handleInvalid) this.handleInvalid(dir, idx, p.tsSec, d);
        return;
      }
    }

    // in_window:
    this.lastIndex = idx;
    this.lastDir = dir;
    this.state = next;
    if (oldState !== next && next === State.FIN_WAIT) this.side(dir).flags |= CtFlag.CLOSE_INIT;

    const to = this.cfg.timeouts;
    const toNext = to[next] ?? 0;
    const toRetrans = to[State.RETRANS] ?? 0;
    const toUnack = to[State.UNACK] ?? 0;
    let t: number;
    if (this.retrans >= sys.maxRetrans && toNext > toRetrans) t = toRetrans;
    else if (f.rstImprovements && idx === Idx.RST) t = to[State.CLOSE] ?? 0;
    else if ((this.seen0.flags | this.seen1.flags) & CtFlag.DATA_UNACKNOWLEDGED && toNext > toUnack) t = toUnack;
    else if (this.lastWin === 0 && toNext > toRetrans) t = toRetrans;
    else t = toNext;

    if (!this.seenReply) {
      if (p.flags & TcpFlag.RST) {
        this.dead = true;
        d.deleted = true;
        d.note = 'RST before any reply: entry deleted';
        return;
      }
      if (f.synSentNoRenew && idx === Idx.SYN && oldState === State.SYN_SENT) {
        d.note = 'SYN retransmission does not renew the SYN_SENT timeout';
        return;
      }
      if (next === State.ESTABLISHED && t > toUnack) t = toUnack;
    } else if (!this.assured && (oldState === State.SYN_RECV || oldState === State.ESTABLISHED) && next === State.ESTABLISHED) {
      this.assured = true;
    }
    this.expires = p.tsSec + t;
    d.timeoutSec = t;
  }

  /** tcp_new: set up the entry from its first packet. false ⇒ INVALID, no entry. */
  private tcpNew(p: TcpPacketView, d: Decision): boolean {
    const f = this.cfg.features;
    const idx = flagIndex(p.flags);
    const s = nextState(0, idx, State.NONE);
    if (s === sIV) {
      this.invalid(d, 'new', 'invalid new', f.logInvalidNew);
      if (!f.logInvalidNew) d.note = 'this kernel only pr_debug()s "invalid new"';
      return false;
    }
    const s0 = this.seen0;
    const s1 = this.seen1;
    clearDirState(s0);
    clearDirState(s1);
    this.state = State.NONE;
    this.lastDir = 0;
    this.retrans = 0;
    this.lastSeq = this.lastAck = this.lastEnd = this.lastWin = this.lastWscale = this.lastFlags = 0;
    if (s === State.SYN_SENT) {
      s0.tdEnd = segmentEnd(p);
      s0.tdMaxwin = p.window === 0 ? 1 : p.window & 0xffff;
      s0.tdMaxend = s0.tdEnd;
      applyOptions(s0, p, f.keepLiberalOnOptions);
    } else if (!this.cfg.sysctls.loose) {
      this.invalid(d, 'loose', null, false);
      d.note = 'mid-stream pickup refused: nf_conntrack_tcp_loose=0';
      return false;
    } else {
      s0.tdEnd = segmentEnd(p);
      s0.tdMaxwin = p.window === 0 ? 1 : p.window & 0xffff;
      s0.tdMaxend = (s0.tdEnd + s0.tdMaxwin) >>> 0;
      s0.flags = s1.flags = CtFlag.SACK_PERM | CtFlag.BE_LIBERAL;
    }
    this.lastIndex = Idx.NONE;
    return true;
  }

  /** Initialise a sender from a SYN or SYN/ACK (tcp_init_sender, or the pre-5.17 inline version). */
  private initSender(S: DirState, R: DirState, p: TcpPacketView, end: number, win: number, dir: DirValue): void {
    S.tdEnd = S.tdMaxend = end;
    S.tdMaxwin = win === 0 ? 1 : win;
    applyOptions(S, p, this.cfg.features.keepLiberalOnOptions);
    const onlyReply = this.cfg.features.synReinit === 'modern';
    if ((!onlyReply || dir === 1) && !(S.flags & CtFlag.WINDOW_SCALE && R.flags & CtFlag.WINDOW_SCALE)) {
      S.tdScale = 0;
      R.tdScale = 0;
    }
  }

  /** tcp_in_window */
  private inWindow(dir: DirValue, idx: number, p: TcpPacketView, d: Decision): WindowResult {
    // The kernel's before(a, b) and after(a, b) are written out here as ((a - b) | 0) < 0 and
    // ((b - a) | 0) < 0: V8 does not inline every call of this long function, and a call boxes each
    // u32 it is given (measured: 25 bytes of garbage per packet, 11 % of a replay's time).
    const f = this.cfg.features;
    const S = this.side(dir);
    const R = this.side(1 - dir);
    const isSyn = (p.flags & TcpFlag.SYN) !== 0;
    const isAck = (p.flags & TcpFlag.ACK) !== 0;
    const isRst = (p.flags & TcpFlag.RST) !== 0;
    let seq = p.seq >>> 0;
    let ack = p.ack >>> 0;
    let sack = ack;
    const rawWin = p.window & 0xffff;
    let win = rawWin;
    let end = segmentEnd(p);

    if (R.flags & CtFlag.SACK_PERM) sack = sackRightEdge(p, sack);
    // NAT sequence adjustment (seqadj) is 0 without helpers/synproxy: not modelled.

    if (S.tdMaxwin === 0) {
      if (isSyn) {
        this.initSender(S, R, p, end, win, dir);
        if (!isAck) return W_ACCEPT; // simultaneous open
      } else {
        // Mid-stream: trust the packet.
        S.tdEnd = end;
        const swin = (win << S.tdScale) >>> 0;
        S.tdMaxwin = swin === 0 ? 1 : swin;
        S.tdMaxend = (end + S.tdMaxwin) >>> 0;
        if (R.tdMaxwin === 0) {
          R.tdEnd = R.tdMaxend = sack;
        } else if (sack === ((R.tdEnd + 1) >>> 0)) {
          R.tdEnd = (R.tdEnd + 1) >>> 0; // reply to a keep-alive
        }
      }
    } else if (f.synReinit === 'modern') {
      if (isSyn && ((S.tdEnd - end) | 0) < 0 && (this.state === State.SYN_SENT || this.state === State.SYN_RECV)) {
        this.initSender(S, R, p, end, win, dir);
        if (dir === 1 && !isAck) return W_ACCEPT;
      }
    } else if (
      ((this.state === State.SYN_SENT && dir === 0) || (this.state === State.SYN_RECV && dir === 1)) &&
      ((S.tdEnd - end) | 0) < 0
    ) {
      // Pre-5.17 re-init (no SYN requirement).
      S.tdEnd = S.tdMaxend = end;
      S.tdMaxwin = win === 0 ? 1 : win;
      applyOptions(S, p, f.keepLiberalOnOptions);
    }

    if (!isAck) {
      ack = sack = R.tdEnd;
    } else if (isRst && ack === 0) {
      ack = sack = R.tdEnd; // broken stacks send RST|ACK with ack 0
    }
    if (isRst && seq === 0 && this.state === State.SYN_SENT) seq = end = S.tdEnd;

    const maxAckWin = S.tdMaxwin > 66000 ? S.tdMaxwin : 66000;
    const ackLowerBound = (R.tdEnd - maxAckWin - 1) >>> 0;
    const seqLowerBound = (S.tdEnd - R.tdMaxwin - 1) >>> 0;

    if (f.ignoreVerdict) {
      // MODERN: I, III, II, IV; II/IV/overshoot → IGNORE.
      if (!(((seq - (S.tdMaxend + 1)) | 0) < 0)) {
        const overshot = (end - S.tdMaxend + 1) >>> 0;
        const ackOk = ((ackLowerBound - sack) | 0) < 0;
        const inWin = R.tdMaxwin !== 0 && ((seqLowerBound - end) | 0) < 0;
        if (f.overshootWorkaround !== 'none' && inWin && ackOk && overshot <= R.tdMaxwin && ((sack - (R.tdEnd + 1)) | 0) < 0) {
          S.tdEnd = end;
          S.flags |= CtFlag.DATA_UNACKNOWLEDGED;
          return this.fail(S, d, f.overshootWorkaround === 'ignore' ? W_IGNORE : W_ACCEPT, 'I', R_OVERSHOT, overshot | 0);
        }
        return this.fail(S, d, W_INVALID, 'I', R_SEQ_OVER, (S.tdMaxend + 1) | 0);
      }
      if (!(((sack - (R.tdEnd + 1)) | 0) < 0)) {
        return this.fail(S, d, W_INVALID, 'III', R_ACK_OVER, (R.tdEnd + 1) | 0);
      }
      if (!(R.tdMaxwin === 0 || ((seqLowerBound - end) | 0) < 0)) {
        return this.fail(S, d, W_IGNORE, 'II', R_SEQ_UNDER, seqLowerBound | 0);
      }
      if (!(((ackLowerBound - sack) | 0) < 0)) {
        return this.fail(S, d, W_IGNORE, 'IV', R_ACK_UNDER, ackLowerBound | 0);
      }
    } else {
      // OLD (and 6.0's overshoot-INVALID variant): all-or-nothing, INVALID on failure.
      const seqOk = ((seq - (S.tdMaxend + 1)) | 0) < 0;
      const inWin = R.tdMaxwin === 0 || ((seqLowerBound - end) | 0) < 0;
      const ackHighOk = ((sack - (R.tdEnd + 1)) | 0) < 0;
      const ackLowOk = ((ackLowerBound - sack) | 0) < 0;
      if (!(seqOk && inWin && ackHighOk && ackLowOk)) {
        const check: CheckName = !seqOk ? 'I' : !inWin ? 'II' : !ackHighOk ? 'III' : 'IV';
        if (S.flags & CtFlag.BE_LIBERAL || this.cfg.sysctls.beLiberal) {
          d.check = check;
          d.note = `window check ${check} failed (${OLD_MSG[check]}); accepted because of be_liberal`;
          return W_ACCEPT; // window state untouched
        }
        if (f.overshootWorkaround !== 'none' && !seqOk) {
          const overshot = (end - S.tdMaxend + 1) >>> 0;
          if (inWin && ackLowOk && overshot <= R.tdMaxwin && ackHighOk) {
            S.tdEnd = end;
            S.flags |= CtFlag.DATA_UNACKNOWLEDGED;
            d.check = 'I';
            setReason32(d, R_OVERSHOT, overshot | 0);
            d.logged = true;
            return W_INVALID;
          }
        }
        d.check = check;
        d.reason = OLD_MSG[check];
        d.logged = true;
        return W_INVALID;
      }
    }

    // In window: update.
    if (!isSyn) win = (win << S.tdScale) >>> 0;
    const swin = (win + sack - ack) >>> 0;
    if (S.tdMaxwin < swin) S.tdMaxwin = swin;
    if (((S.tdEnd - end) | 0) < 0) {
      S.tdEnd = end;
      S.flags |= CtFlag.DATA_UNACKNOWLEDGED;
    }
    if (isAck) {
      if (!(S.flags & CtFlag.MAXACK_SET)) {
        S.tdMaxack = ack;
        S.flags |= CtFlag.MAXACK_SET;
      } else if (((S.tdMaxack - ack) | 0) < 0) {
        S.tdMaxack = ack;
      }
    }
    if (R.tdMaxwin !== 0 && ((S.tdMaxend - end) | 0) < 0) R.tdMaxwin = (R.tdMaxwin + end - S.tdMaxend) >>> 0;
    if (((R.tdMaxend - 1 - (sack + win)) | 0) < 0) {
      R.tdMaxend = (sack + win) >>> 0;
      if (win === 0) R.tdMaxend = (R.tdMaxend + 1) >>> 0;
    }
    if (ack === R.tdEnd) R.flags &= ~CtFlag.DATA_UNACKNOWLEDGED;
    if (idx === Idx.ACK) {
      if (this.lastDir === dir && this.lastSeq === seq && this.lastAck === ack && this.lastEnd === end && this.lastWin === rawWin) {
        this.retrans++;
      } else {
        this.lastDir = dir;
        this.lastSeq = seq;
        this.lastAck = ack;
        this.lastEnd = end;
        this.lastWin = rawWin;
        this.retrans = 0;
      }
    }
    return W_ACCEPT;
  }

  /**
   * nf_tcp_log_invalid: be_liberal turns any failure into ACCEPT (no log, window untouched).
   * `arg32`: the reason's number (u32) as int32, passed without boxing it.
   */
  private fail(S: DirState, d: Decision, result: WindowResult, check: CheckName, form: ReasonForm, arg32: number): WindowResult {
    d.check = check;
    if (S.flags & CtFlag.BE_LIBERAL || this.cfg.sysctls.beLiberal) {
      d.note = `window check ${check} failed (${formatReason(form, arg32 >>> 0)}); accepted because of be_liberal`;
      return W_ACCEPT;
    }
    if (result === W_ACCEPT) {
      d.note = formatReason(form, arg32 >>> 0); // only reachable with an 'accept' overshoot variant; not a released kernel
      return W_ACCEPT;
    }
    setReason32(d, form, arg32);
    d.logged = true;
    return result;
  }

  /** nf_tcp_handle_invalid (6.1+): an out-of-window FIN/RST answering a FIN/RST lowers the timeout. */
  private handleInvalid(dir: DirValue, idx: number, now: number, d: Decision): void {
    if (!this.assured || this.fixedTimeout) return;
    if (idx !== Idx.FIN && idx !== Idx.RST) return;
    if (this.lastDir !== dir && (this.lastIndex === Idx.FIN || this.lastIndex === Idx.RST)) {
      const remaining = this.expires - now;
      if (remaining < 120) return;
      const unack = this.cfg.timeouts[State.UNACK] ?? 300;
      if (remaining > unack) {
        const hz = this.cfg.sysctls.hz ?? 250;
        d.secondaryReason = `packet (index ${idx}, dir ${dir}) response for index ${this.lastIndex} lower timeout to ${unack * hz}`;
        this.expires = now + unack;
        d.timeoutSec = unack;
      }
    } else {
      this.lastIndex = idx;
      this.lastDir = dir;
    }
  }
}

export interface FlowEntry {
  key: string;
  /** The ORIGINAL tuple (first packet's). */
  src: string;
  dst: string;
  srcPort: number;
  dstPort: number;
  tracker: ConntrackTracker;
}

/** Canonical key of a TCP 4-tuple (same for both directions). */
export function flowKey(p: Pick<TcpPacketView, 'src' | 'dst' | 'srcPort' | 'dstPort'>): string {
  const a = `${p.src}|${p.srcPort}`;
  const b = `${p.dst}|${p.dstPort}`;
  return a < b ? `${a}>${b}` : `${b}>${a}`;
}

/**
 * A conntrack table of TCP flows keyed by 4-tuple. Direction is ORIGINAL when the packet matches the
 * tuple of the flow's first packet. An entry whose timeout has passed (by packet time) is deleted
 * before the packet is processed; the packet then starts a new entry.
 */
export class ConntrackTable {
  readonly cfg: TrackerConfig;
  /** By key, the entry (its tracker holds its ORIGINAL tuple: no object per entry besides it). */
  private readonly flows = new Map<string, ConntrackTracker>();
  /** Like `conntrack -S` invalid: packets that left untracked. */
  invalidCount = 0;
  ignoreCount = 0;
  /** nf_conntrack_max (0: no limit). */
  readonly max: number;
  /** Like `conntrack -S` early_drop: entries dropped to make room for a new one (the table was full). */
  earlyDrops = 0;
  /**
   * New lookups that found the table full with no unassured entry to drop: the kernel drops the
   * packet ("nf_conntrack: table full, dropping packet"); the model tracks it anyway.
   */
  tableFull = 0;
  /**
   * With a limit: the entries in the order they were made (keys beside them), from `evictFrom`
   * on — the candidates for an early drop, oldest first. An entry assured, replaced or gone is
   * skipped once met (ASSURED is never cleared); the list is compacted at `gc`.
   */
  private made: ConntrackTracker[] = [];
  private madeKeys: string[] = [];
  private evictFrom = 0;

  constructor(profile: KernelProfile, sysctls: Partial<Sysctls> = {}) {
    this.cfg = makeTrackerConfig(profile, sysctls);
    this.max = Math.max(0, Math.floor(sysctls.conntrackMax ?? 0));
  }

  get size(): number {
    return this.flows.size;
  }

  /** The live entry for a packet's 4-tuple (expired entries are still returned until a packet or gc removes them). */
  lookup(p: Pick<TcpPacketView, 'src' | 'dst' | 'srcPort' | 'dstPort'>, key: string = flowKey(p)): ConntrackTracker | undefined {
    return this.flows.get(key);
  }

  /** The entry stored under a table key (expired ones included). */
  byKey(key: string): ConntrackTracker | undefined {
    return this.flows.get(key);
  }

  *entries(): IterableIterator<FlowEntry> {
    for (const [key, t] of this.flows) yield { key, src: t.origSrc, dst: t.origDst, srcPort: t.origSrcPort, dstPort: t.origDstPort, tracker: t };
  }

  /** Delete every entry expired at `now`; returns how many. */
  gc(now: number): number {
    let n = 0;
    // forEach, not for…of over entries: no [key, value] array per entry, per sweep
    this.flows.forEach((t, k) => {
      if (t.isExpired(now)) {
        this.flows.delete(k);
        n++;
      }
    });
    if (this.max > 0) this.compactMade();
    return n;
  }

  /** Keep of the early-drop candidates only the entries still in the table and unassured (what they hold is bounded by the table, not the capture). */
  private compactMade(): void {
    let w = 0;
    for (let i = this.evictFrom; i < this.made.length; i++) {
      const t = this.made[i]!;
      const k = this.madeKeys[i]!;
      if (t.assured || t.dead || this.flows.get(k) !== t) continue;
      this.made[w] = t;
      this.madeKeys[w++] = k;
    }
    this.made.length = this.madeKeys.length = w;
    this.evictFrom = 0;
  }

  /**
   * The table is full (nf_conntrack_max) and a new lookup needs an entry: early_drop. The kernel
   * deletes the unassured entries of the first of 8 hash buckets (from the new tuple's, keyed by
   * a random seed) that has any — which ones, a capture cannot tell; the model drops the oldest
   * unassured entry (an expired one it meets is removed, and makes room: the kernel's gc keeps
   * expired entries out of its count). None: the kernel drops the packet (counted in `tableFull`).
   */
  private earlyDrop(now: number): void {
    while (this.evictFrom < this.made.length) {
      const i = this.evictFrom++;
      const t = this.made[i]!;
      const k = this.madeKeys[i]!;
      // (let go of it: the list does not keep what it passed)
      this.made[i] = undefined as unknown as ConntrackTracker;
      this.madeKeys[i] = '';
      if (t.dead || this.flows.get(k) !== t) continue;
      if (t.isExpired(now)) {
        // (the kernel's gc keeps expired entries out of its count: one gone makes room)
        this.flows.delete(k);
        if (this.flows.size < this.max) return;
        continue;
      }
      if (t.assured) continue;
      this.flows.delete(k);
      t.dead = true;
      this.earlyDrops++;
      if (this.evictFrom > 4096 && 2 * this.evictFrom > this.made.length) this.compactMade();
      return;
    }
    this.tableFull++;
  }

  /** `key` may be passed when the caller already computed flowKey(p) (hot replay loops). */
  process(p: TcpPacketView, out: Decision = createDecision(), key: string = flowKey(p)): Decision {
    let t = this.flows.get(key);
    if (t && t.isExpired(p.tsSec)) {
      this.flows.delete(key);
      t = undefined;
    }
    if (!t) return this.counted(this.processNew(key, p, out));
    const dir: DirValue = p.src === t.origSrc && p.srcPort === t.origSrcPort && p.dst === t.origDst && p.dstPort === t.origDstPort ? 0 : 1;
    return this.processIn(t, dir, p, out, key);
  }

  /**
   * `process` for a packet whose live entry the caller holds (`tracker`, stored under `key`, not
   * expired at the packet's time) and whose direction in it it knows: no lookup. A replay finds
   * the entry through its NAT binding anyway.
   */
  processIn(tracker: ConntrackTracker, dir: DirValue, p: TcpPacketView, out: Decision, key: string): Decision {
    let d = tracker.process(p, dir, out);
    if (d.repeat) {
      this.flows.delete(key);
      const note = d.note;
      d = this.processNew(key, p, out);
      d.repeat = true;
      d.note = d.note ? `${note}; ${d.note}` : note;
    } else if (d.deleted) {
      this.flows.delete(key);
    }
    return this.counted(d);
  }

  private counted(d: Decision): Decision {
    // (both touched for every packet: see explain.ts)
    this.invalidCount += d.verdict === 'INVALID' ? 1 : 0;
    this.ignoreCount += d.verdict === 'IGNORE' ? 1 : 0;
    return d;
  }

  private processNew(key: string, p: TcpPacketView, out: Decision): Decision {
    // (the kernel makes room before it knows whether the packet can start an entry)
    if (this.max > 0 && this.flows.size >= this.max) this.earlyDrop(p.tsSec);
    const t = new ConntrackTracker(this.cfg.profile, undefined, this.cfg);
    const d = t.process(p, 0, out);
    if (t.confirmed && !t.dead) {
      t.origSrc = p.src;
      t.origDst = p.dst;
      t.origSrcPort = p.srcPort;
      t.origDstPort = p.dstPort;
      this.flows.set(key, t);
      if (this.max > 0) {
        this.made.push(t);
        this.madeKeys.push(key);
      }
    }
    return d;
  }
}
