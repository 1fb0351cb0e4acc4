/**
 * Predict what conntrack on a NAT host does with the lab's out-of-window segment, by running the model
 * over a synthetic but realistic flow: client 192.0.2.2:40000 → server 198.51.100.2:9000, handshake with
 * window scale 7 + SACK-permitted + timestamps, then the server's forged PSH|ACK (4 bytes at
 * seq = server next + offset), the client's dup-ACK, the client's FIN, the server's ACK of it, the server's
 * FIN and the client's last ACK. The first INVALID packet ends the flow: it is not de-NATed, so the NAT
 * host's own stack answers it with RST.
 */
import { seqAdd } from '../packet/seq.js';
import { ConntrackTable, type Decision, type TcpPacketView } from './model.js';
import type { KernelProfile } from './profile.js';
import { TcpFlag } from './states.js';

export interface OowPrediction {
  /** The first packet conntrack marks INVALID (→ RST from the NAT host), or null if none. */
  firstInvalid: 'forged' | 'ack-of-fin' | null;
  /** The first INVALID packet of the flow whichever it is (firstInvalid only names the two expected ones). */
  firstInvalidStep: StepName | null;
  /** The kernel log texts, in order (what nf_conntrack_log_invalid=6 would print). */
  reasons: string[];
  summary: string;
  /** Every packet of the synthetic flow up to and including the first INVALID one. */
  steps: Array<{ step: StepName; decision: Decision }>;
}

export type StepName = 'syn' | 'synack' | 'ack' | 'forged' | 'dup-ack' | 'client-fin' | 'ack-of-fin' | 'server-fin' | 'last-ack';

export interface OowOptions {
  /** Forged seq = server next seq + offset (mod 2^32). */
  offset: number;
  /** net.netfilter.nf_conntrack_tcp_be_liberal on the NAT host. */
  beLiberal: boolean;
  /**
   * The client's raw window after the handshake (scale 7). 504 (= 64512 scaled) reproduces the measured
   * "35493 bytes more than expected" for +100000 on the 6.18 lab host.
   */
  clientWindow?: number;
}

const CLIENT = '192.0.2.2';
const SERVER = '198.51.100.2';
const CPORT = 40000;
const SPORT = 9000;
/** ISNs chosen so that the post-handshake numbers equal the ones in the notes (§7). */
const CLIENT_ISN = 2233498241;
const SERVER_ISN = 178314448;

function pkt(
  fromClient: boolean,
  seq: number,
  ack: number,
  flags: number,
  window: number,
  t: number,
  payloadLength = 0,
  options: TcpPacketView['options'] = { tsOnlyNopNop: true },
  dataOffset = 32,
): TcpPacketView {
  return {
    src: fromClient ? CLIENT : SERVER,
    dst: fromClient ? SERVER : CLIENT,
    srcPort: fromClient ? CPORT : SPORT,
    dstPort: fromClient ? SPORT : CPORT,
    seq: seq >>> 0,
    ack: ack >>> 0,
    flags,
    window,
    payloadLength,
    dataOffset,
    options,
    hasOptions: dataOffset > 20,
    tsSec: t,
  };
}

export function predictOutOfWindow(profile: KernelProfile, o: OowOptions): OowPrediction {
  const table = new ConntrackTable(profile, { beLiberal: o.beLiberal });
  const cwin = o.clientWindow ?? 504;
  const swin = 509;
  const C = seqAdd(CLIENT_ISN, 1); // client next seq after SYN
  const S = seqAdd(SERVER_ISN, 1); // server next seq after SYN/ACK
  const forgedSeq = seqAdd(S, o.offset);
  const { ACK, SYN, FIN, PSH } = TcpFlag;
  const off = o.offset | 0;
  // The client's TCP: in-window-exact data is ACKed; data ahead in its receive window is SACKed;
  // data below rcv_nxt gets a D-SACK; anything else a plain duplicate ACK.
  const clientRcvWin = cwin << 7;
  const forgedAccepted = off === 0;
  const clientAck = forgedAccepted ? seqAdd(S, 4) : S;
  let dupOpts: TcpPacketView['options'] = { tsOnlyNopNop: true };
  let dupDoff = 32;
  if ((off > 0 && off < clientRcvWin) || (off < 0 && off > -0x40000000)) {
    dupOpts = { sackBlocks: [[forgedSeq, seqAdd(forgedSeq, 4)]] };
    dupDoff = 44;
  }
  const steps: Array<[StepName, TcpPacketView]> = [
    ['syn', pkt(true, CLIENT_ISN, 0, SYN, 64240, 0, 0, { wscale: 7, sackPerm: true }, 40)],
    ['synack', pkt(false, SERVER_ISN, C, SYN | ACK, 65160, 0.0001, 0, { wscale: 7, sackPerm: true }, 40)],
    ['ack', pkt(true, C, S, ACK, cwin, 0.0002)],
    ['forged', pkt(false, forgedSeq, C, PSH | ACK, swin, 0.001, 4, {}, 20)],
    ['dup-ack', pkt(true, C, clientAck, ACK, cwin, 0.0011, 0, dupOpts, dupDoff)],
    ['client-fin', pkt(true, C, clientAck, FIN | ACK, cwin, 2.0, 0, dupOpts, dupDoff)],
    ['ack-of-fin', pkt(false, S, seqAdd(C, 1), ACK, swin, 2.0001)],
    ['server-fin', pkt(false, S, seqAdd(C, 1), FIN | ACK, swin, 2.0002)],
    ['last-ack', pkt(true, seqAdd(C, 1), seqAdd(S, 1), ACK, cwin, 2.0003)],
  ];

  const out: OowPrediction = { firstInvalid: null, firstInvalidStep: null, reasons: [], summary: '', steps: [] };
  let first: StepName | null = null;
  let firstReason: string | null = null;
  let forgedDecision: Decision | null = null;
  for (const [name, p] of steps) {
    const d = table.process(p);
    out.steps.push({ step: name, decision: d });
    if (d.logged && d.reason) out.reasons.push(d.reason);
    if (d.secondaryReason) out.reasons.push(d.secondaryReason);
    if (name === 'forged') forgedDecision = d;
    if (d.verdict === 'INVALID') {
      first = name;
      firstReason = d.reason;
      break;
    }
  }
  out.firstInvalidStep = first;
  out.firstInvalid = first === 'forged' || first === 'ack-of-fin' ? first : null;

  const fd = forgedDecision;
  const forgedText = fd
    ? `forged segment ${fd.verdict}${fd.reason ? ` ("${fd.reason}")` : fd.note ? ` (${fd.note})` : ''}`
    : 'forged segment not reached';
  if (first === 'forged') {
    out.summary = `${forgedText}: not de-NATed, the NAT host answers it with RST at once`;
  } else if (first === 'ack-of-fin') {
    out.summary = `${forgedText}, but it poisons the window; the server's ACK of the client's FIN is INVALID ("${firstReason ?? ''}") → not de-NATed → RST from the NAT host (delayed failure)`;
  } else if (first) {
    out.summary = `${forgedText}; first INVALID packet: ${first} ("${firstReason ?? ''}")`;
  } else {
    out.summary = `${forgedText}; nothing becomes INVALID, the connection closes cleanly`;
  }
  return out;
}

export interface PortReusePrediction {
  /** 'connected': the stale socket is reset and the retransmitted SYN connects; 'timeout': every SYN meets the stale socket's challenge ACK; 'depends': on the new ISN. */
  result: 'connected' | 'timeout' | 'depends';
  /** What conntrack logs for the challenge ACK and the RST (nf_conntrack_log_invalid). */
  reasons: string[];
  summary: string;
}

/**
 * Port reuse after the half-close leak: the app's new SYN from the leaked source port is redirected to
 * the proxy's stale FIN-WAIT-2 socket, which answers with a challenge ACK (seq/ack of the old
 * connection); the app answers it with RST (seq = the ACK's ack). If conntrack lets that RST through
 * (NAT applied) it reaches the stale socket and kills it, and the retransmitted SYN connects; if the
 * RST is INVALID it is not redirected, and every retransmitted SYN meets the stale socket again.
 * Whether the RST passes can depend on where the old sequence lies relative to the new ISN, so both
 * are tried.
 */
export function predictPortReuse(profile: KernelProfile): PortReusePrediction {
  const { SYN, ACK, RST } = TcpFlag;
  const isn = 2419291907;
  const outcomes: Array<{ rst: Decision; reasons: string[] }> = [];
  // the old connection's sequence numbers, above and below the new ISN (mod 2^32)
  for (const oldSeq of [seqAdd(isn, 60000000), seqAdd(isn, -60000000)]) {
    const table = new ConntrackTable(profile);
    const reasons: string[] = [];
    const syn: TcpPacketView['options'] = { wscale: 10, sackPerm: true };
    const log = (d: Decision) => {
      if (d.logged && d.reason) reasons.push(d.reason);
      return d;
    };
    log(table.process(pkt(true, isn, 0, SYN, 64240, 0, 0, syn, 40)));
    log(table.process(pkt(false, 2060252422, oldSeq, ACK, 64, 0.0001)));
    const rst = log(table.process(pkt(true, oldSeq, 0, RST, 0, 0.0002, 0, {}, 20)));
    outcomes.push({ rst: { ...rst }, reasons });
  }
  const passed = outcomes.map((o) => o.rst.verdict !== 'INVALID');
  const result = passed.every(Boolean) ? 'connected' : passed.some(Boolean) ? 'depends' : 'timeout';
  const reasons = outcomes[0]!.reasons;
  const summary =
    result === 'connected'
      ? 'the RST answering the stale socket’s challenge ACK is tracked and redirected: it resets the stale proxy socket and the retransmitted SYN connects'
      : result === 'timeout'
        ? `the RST answering the challenge ACK is INVALID ("${outcomes[0]!.rst.reason ?? ''}"): not redirected, the stale socket survives and connect times out`
        : 'whether the RST answering the challenge ACK passes depends on the new ISN relative to the old connection’s sequence: connect may time out';
  return { result, reasons, summary };
}
