/**
 * Constants and tables of the kernel's TCP connection tracker (net/netfilter/nf_conntrack_proto_tcp.c),
 * as data. Values follow the kernel's enum order so they can be compared with `<` like the kernel does.
 * Source: /work/shared/notes/conntrack-tcp-model.md §1, §2, §9.
 */

/** Conntrack TCP states (kernel `enum tcp_conntrack`), plus the table markers and timeout slots. */
export const State = {
  NONE: 0,
  SYN_SENT: 1,
  SYN_RECV: 2,
  ESTABLISHED: 3,
  FIN_WAIT: 4,
  CLOSE_WAIT: 5,
  LAST_ACK: 6,
  TIME_WAIT: 7,
  CLOSE: 8,
  /** Simultaneous open; the kernel's older name is LISTEN. */
  SYN_SENT2: 9,
  /** `sIV`: the transition is invalid. Also TCP_CONNTRACK_MAX. */
  MAX: 10,
  /** `sIG`: the packet is ignored (may signal a connection the tracker is out of sync with). */
  IGNORE: 11,
  /** Timeout slot: too many retransmissions / zero window (`max_retrans`). */
  RETRANS: 12,
  /** Timeout slot: unacknowledged data (`unacknowledged`). */
  UNACK: 13,
} as const;
export type StateValue = (typeof State)[keyof typeof State];

export const sIV = State.MAX;
export const sIG = State.IGNORE;

/** Number of real states (columns of the transition table). */
export const STATE_COUNT = 10;

/** State names exactly as the kernel prints them (`tcp_conntrack_names`, used in log lines and /proc). */
export const STATE_NAMES: readonly string[] = [
  'NONE',
  'SYN_SENT',
  'SYN_RECV',
  'ESTABLISHED',
  'FIN_WAIT',
  'CLOSE_WAIT',
  'LAST_ACK',
  'TIME_WAIT',
  'CLOSE',
  'SYN_SENT2',
];

/** Name of a state (markers get descriptive names that the kernel never prints). */
export function stateName(s: number): string {
  if (s === sIV) return 'INVALID';
  if (s === sIG) return 'IGNORE';
  return STATE_NAMES[s] ?? `STATE_${s}`;
}

/** Packet class (kernel `get_conntrack_index`). */
export const Idx = { SYN: 0, SYNACK: 1, FIN: 2, ACK: 3, RST: 4, NONE: 5 } as const;
export type IdxValue = (typeof Idx)[keyof typeof Idx];
export const IDX_NAMES: readonly string[] = ['SYN', 'SYNACK', 'FIN', 'ACK', 'RST', 'NONE'];

/** Direction: 0 = ORIGINAL (initiator → responder), 1 = REPLY. */
export const Dir = { ORIGINAL: 0, REPLY: 1 } as const;
export type DirValue = 0 | 1;

/** TCP header flag bits (as in the TCP header's flag byte). */
export const TcpFlag = { FIN: 0x01, SYN: 0x02, RST: 0x04, PSH: 0x08, ACK: 0x10, URG: 0x20, ECE: 0x40, CWR: 0x80 } as const;

/** Per-direction flags (`ip_ct_tcp_state.flags`) and `last_flags` bits. */
export const CtFlag = {
  WINDOW_SCALE: 0x01,
  SACK_PERM: 0x02,
  CLOSE_INIT: 0x04,
  BE_LIBERAL: 0x08,
  DATA_UNACKNOWLEDGED: 0x10,
  MAXACK_SET: 0x20,
  /** last_flags only: an RFC 5961 challenge ACK may follow (SYN seen in LAST_ACK). */
  EXP_CHALLENGE_ACK: 0x40,
  /** last_flags only: simultaneous open seen. */
  SIMULTANEOUS_OPEN: 0x80,
} as const;

// (no column ever moves to NONE, so it has no short name)
const sSS = State.SYN_SENT;
const sSR = State.SYN_RECV;
const sES = State.ESTABLISHED;
const sFW = State.FIN_WAIT;
const sCW = State.CLOSE_WAIT;
const sLA = State.LAST_ACK;
const sTW = State.TIME_WAIT;
const sCL = State.CLOSE;
const sS2 = State.SYN_SENT2;

/**
 * Transition table `TRANSITIONS[dir][idx][state]` (kernel `tcp_conntracks`), identical in 4.19 … 6.18.
 * Columns in enum order: NO SS SR ES FW CW LA TW CL S2.
 */
export const TRANSITIONS: readonly (readonly (readonly number[])[])[] = [
  // ORIGINAL
  [
    /* SYN    */ [sSS, sSS, sIG, sIG, sIG, sIG, sIG, sSS, sSS, sS2],
    /* SYNACK */ [sIV, sIV, sSR, sIV, sIV, sIV, sIV, sIV, sIV, sSR],
    /* FIN    */ [sIV, sIV, sFW, sFW, sLA, sLA, sLA, sTW, sCL, sIV],
    /* ACK    */ [sES, sIV, sES, sES, sCW, sCW, sTW, sTW, sCL, sIV],
    /* RST    */ [sIV, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL],
    /* NONE   */ [sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV],
  ],
  // REPLY
  [
    /* SYN    */ [sIV, sS2, sIV, sIV, sIV, sIV, sIV, sSS, sIV, sS2],
    /* SYNACK */ [sIV, sSR, sIG, sIG, sIG, sIG, sIG, sIG, sIG, sSR],
    /* FIN    */ [sIV, sIV, sFW, sFW, sLA, sLA, sLA, sTW, sCL, sIV],
    /* ACK    */ [sIV, sIG, sSR, sES, sCW, sCW, sTW, sTW, sCL, sIG],
    /* RST    */ [sIV, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL],
    /* NONE   */ [sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV],
  ],
];

/** Flat copy of TRANSITIONS for the hot path: index `dir*60 + idx*10 + state`. */
const FLAT = new Uint8Array(2 * 6 * STATE_COUNT);
for (let d = 0; d < 2; d++)
  for (let i = 0; i < 6; i++)
    for (let s = 0; s < STATE_COUNT; s++) FLAT[d * 60 + i * 10 + s] = TRANSITIONS[d]?.[i]?.[s] ?? sIV;

/** `tcp_conntracks[dir][idx][state]`. */
export function nextState(dir: DirValue, idx: number, state: number): number {
  if (state < 0 || state >= STATE_COUNT) return sIV;
  return FLAT[dir * 60 + idx * 10 + state] ?? sIV;
}

/** Packet class of a flag byte (kernel `get_conntrack_index`). */
export function flagIndex(flags: number): number {
  if (flags & TcpFlag.RST) return Idx.RST;
  if (flags & TcpFlag.SYN) return flags & TcpFlag.ACK ? Idx.SYNACK : Idx.SYN;
  if (flags & TcpFlag.FIN) return Idx.FIN;
  if (flags & TcpFlag.ACK) return Idx.ACK;
  return Idx.NONE;
}

/**
 * Valid flag combinations (kernel `tcp_valid_flags`), checked on the flag byte with ECE, CWR and PSH
 * masked out: SYN, SYN|URG, SYN|ACK, RST, RST|ACK, FIN|ACK, FIN|ACK|URG, ACK, ACK|URG.
 */
const VALID_FLAGS = new Uint8Array(256);
for (const f of [0x02, 0x22, 0x12, 0x04, 0x14, 0x11, 0x31, 0x10, 0x30]) VALID_FLAGS[f] = 1;

export function validFlagCombination(flags: number): boolean {
  return VALID_FLAGS[flags & 0xff & ~(TcpFlag.ECE | TcpFlag.CWR | TcpFlag.PSH)] === 1;
}

/** Sysctl names of the TCP timeouts (`net.netfilter.nf_conntrack_tcp_timeout_<name>`). */
export type TimeoutName =
  | 'syn_sent'
  | 'syn_recv'
  | 'established'
  | 'fin_wait'
  | 'close_wait'
  | 'last_ack'
  | 'time_wait'
  | 'close'
  | 'max_retrans'
  | 'unacknowledged';

/** Default timeouts in seconds (unchanged 4.19 … 6.18). */
export const DEFAULT_TIMEOUTS: Readonly<Record<TimeoutName, number>> = {
  syn_sent: 120,
  syn_recv: 60,
  established: 432000,
  fin_wait: 120,
  close_wait: 60,
  last_ack: 30,
  time_wait: 120,
  close: 10,
  max_retrans: 300,
  unacknowledged: 300,
};

/** SYN_SENT2 has no sysctl; always 2 minutes. */
export const SYN_SENT2_TIMEOUT = 120;

/**
 * Timeout table indexed by state slot (0..13), in seconds: NONE = syn_sent, SYN_SENT2 = 120,
 * RETRANS = max_retrans, UNACK = unacknowledged. Markers (MAX, IGNORE) get 0 and are never used.
 */
export function timeoutTable(overrides: Partial<Record<TimeoutName, number>> = {}): number[] {
  const t = { ...DEFAULT_TIMEOUTS, ...overrides };
  return [
    t.syn_sent, // NONE
    t.syn_sent,
    t.syn_recv,
    t.established,
    t.fin_wait,
    t.close_wait,
    t.last_ack,
    t.time_wait,
    t.close,
    SYN_SENT2_TIMEOUT,
    0, // MAX
    0, // IGNORE
    t.max_retrans,
    t.unacknowledged,
  ];
}
