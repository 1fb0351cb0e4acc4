import { describe, expect, it } from 'vitest';
import { ConntrackTable, ConntrackTracker, createDecision, formatReason, reasonArg, reasonForm, REASON_FORMS, setReason, type Sysctls, type TcpPacketView } from './model.js';
import { profileById, profileForRelease, type KernelProfile } from './profile.js';
import { CtFlag, State } from './states.js';

const FIN = 0x01;
const SYN = 0x02;
const RST = 0x04;
const PSH = 0x08;
const ACK = 0x10;

const CLI = '192.0.2.2';
const SRV = '198.51.100.2';

interface P {
  seq: number;
  ack?: number;
  flags: number;
  win?: number;
  len?: number;
  t?: number;
  wscale?: number;
  sackPerm?: boolean;
  sack?: Array<[number, number]>;
  noOpts?: boolean;
}

function pk(fromClient: boolean, o: P): TcpPacketView {
  let dataOffset = 32;
  let options: TcpPacketView['options'] = { tsOnlyNopNop: true };
  if (o.noOpts) {
    dataOffset = 20;
    options = {};
  } else if (o.wscale !== undefined || o.sackPerm) {
    dataOffset = 40;
    options = { wscale: o.wscale, sackPerm: o.sackPerm };
  } else if (o.sack) {
    dataOffset = 44;
    options = { sackBlocks: o.sack };
  }
  return {
    src: fromClient ? CLI : SRV,
    dst: fromClient ? SRV : CLI,
    srcPort: fromClient ? 40000 : 9000,
    dstPort: fromClient ? 9000 : 40000,
    seq: o.seq >>> 0,
    ack: (o.ack ?? 0) >>> 0,
    flags: o.flags,
    window: o.win ?? 502,
    payloadLength: o.len ?? 0,
    dataOffset,
    options,
    hasOptions: dataOffset > 20,
    tsSec: o.t ?? 0,
  };
}
const c = (o: P) => pk(true, o);
const s = (o: P) => pk(false, o);
const u = (x: number) => x >>> 0;

const MODERN = profileById('modern-challenge');
const OLD = profileById('old');
const OVERSHOOT = profileById('overshoot-invalid');

interface HS {
  cIsn?: number;
  sIsn?: number;
  cWin?: number;
  cWscale?: number | null;
  sWscale?: number | null;
}

/** A table with an ASSURED, ESTABLISHED flow; C/S = client/server next seq. */
function established(profile: KernelProfile, sysctls: Partial<Sysctls> = {}, o: HS = {}) {
  const cIsn = o.cIsn ?? 1_000_000;
  const sIsn = o.sIsn ?? 5_000_000;
  const cWs = o.cWscale === null ? undefined : (o.cWscale ?? 7);
  const sWs = o.sWscale === null ? undefined : (o.sWscale ?? 7);
  const table = new ConntrackTable(profile, sysctls);
  const d1 = table.process(c({ seq: cIsn, flags: SYN, win: 64240, wscale: cWs, sackPerm: true, t: 0 }));
  const d2 = table.process(s({ seq: sIsn, ack: u(cIsn + 1), flags: SYN | ACK, win: 65160, wscale: sWs, sackPerm: true, t: 0.001 }));
  const d3 = table.process(c({ seq: u(cIsn + 1), ack: u(sIsn + 1), flags: ACK, win: o.cWin ?? 502, t: 0.002 }));
  const ct = table.lookup(c({ seq: 0, flags: ACK }));
  if (!ct) throw new Error('no entry');
  return { table, ct, C: u(cIsn + 1), S: u(sIsn + 1), d: [d1, d2, d3] };
}

describe('handshake and close', () => {
  it('SYN, SYN/ACK, ACK → ESTABLISHED + ASSURED with the state timeouts', () => {
    const { ct, d } = established(MODERN);
    expect(d.map((x) => [x.verdict, x.dir, x.stateBefore, x.stateAfter, x.timeoutSec])).toEqual([
      ['ACCEPT', 'original', 'NONE', 'SYN_SENT', 120],
      ['ACCEPT', 'reply', 'SYN_SENT', 'SYN_RECV', 60],
      ['ACCEPT', 'original', 'SYN_RECV', 'ESTABLISHED', 432000],
    ]);
    expect(ct.assured).toBe(true);
    expect(ct.seenReply).toBe(true);
    expect(ct.expires).toBeCloseTo(0.002 + 432000);
  });

  it('ASSURED is only set once a reply was seen and the handshake completes', () => {
    const table = new ConntrackTable(MODERN);
    table.process(c({ seq: 100, flags: SYN, wscale: 7, sackPerm: true }));
    table.process(s({ seq: 900, ack: 101, flags: SYN | ACK, wscale: 7, sackPerm: true }));
    const ct = table.lookup(c({ seq: 0, flags: 0 }))!;
    expect(ct.seenReply).toBe(true);
    expect(ct.assured).toBe(false);
  });

  it('FIN/ACK close goes FIN_WAIT → CLOSE_WAIT → LAST_ACK → TIME_WAIT', () => {
    const { table, ct, C, S } = established(MODERN);
    const steps = [
      table.process(c({ seq: C, ack: S, flags: FIN | ACK, t: 1 })),
      table.process(s({ seq: S, ack: u(C + 1), flags: ACK, win: 509, t: 1.1 })),
      table.process(s({ seq: S, ack: u(C + 1), flags: FIN | ACK, win: 509, t: 1.2 })),
      table.process(c({ seq: u(C + 1), ack: u(S + 1), flags: ACK, t: 1.3 })),
    ];
    expect(steps.map((x) => [x.verdict, x.stateAfter, x.timeoutSec])).toEqual([
      ['ACCEPT', 'FIN_WAIT', 120],
      ['ACCEPT', 'CLOSE_WAIT', 60],
      ['ACCEPT', 'LAST_ACK', 30],
      ['ACCEPT', 'TIME_WAIT', 120],
    ]);
    expect(ct.seen[0].flags & CtFlag.CLOSE_INIT).toBeTruthy();
    expect(ct.seen[1].flags & CtFlag.CLOSE_INIT).toBeFalsy();
  });

  it('a new SYN on a TIME_WAIT entry kills it and starts a new one (REPEAT)', () => {
    const { table, C, S } = established(MODERN);
    table.process(c({ seq: C, ack: S, flags: FIN | ACK, t: 1 }));
    table.process(s({ seq: S, ack: u(C + 1), flags: FIN | ACK, t: 1.1 }));
    table.process(c({ seq: u(C + 1), ack: u(S + 1), flags: ACK, t: 1.2 }));
    expect(table.lookup(c({ seq: 0, flags: 0 }))!.stateName).toBe('TIME_WAIT');
    const d = table.process(c({ seq: u(C + 500000), flags: SYN, wscale: 7, sackPerm: true, t: 5 }));
    expect(d.repeat).toBe(true);
    expect(d.verdict).toBe('ACCEPT');
    expect(d.stateAfter).toBe('SYN_SENT');
    const ct = table.lookup(c({ seq: 0, flags: 0 }))!;
    expect(ct.seenReply).toBe(false);
    expect(ct.seen[0].tdEnd).toBe(u(C + 500001));
  });

  it('simultaneous open: SYN_SENT → SYN_SENT2 → SYN_RECV → ESTABLISHED', () => {
    const table = new ConntrackTable(MODERN);
    const states = [
      table.process(c({ seq: 100, flags: SYN, wscale: 7, sackPerm: true, t: 0 })),
      table.process(s({ seq: 900, flags: SYN, wscale: 7, sackPerm: true, t: 0.01 })),
      table.process(c({ seq: 100, ack: 901, flags: SYN | ACK, wscale: 7, sackPerm: true, t: 0.02 })),
      table.process(s({ seq: 900, ack: 101, flags: ACK, t: 0.03 })),
    ].map((d) => `${d.verdict}:${d.stateAfter}`);
    expect(states).toEqual(['ACCEPT:SYN_SENT', 'ACCEPT:SYN_SENT2', 'ACCEPT:SYN_RECV', 'ACCEPT:ESTABLISHED']);
    expect(table.lookup(c({ seq: 0, flags: 0 }))!.lastFlags & CtFlag.SIMULTANEOUS_OPEN).toBeTruthy();
  });

  it('resyncs from the annotations when a SYN/ACK answers an ignored SYN', () => {
    const { table, ct, C } = established(MODERN);
    const d1 = table.process(c({ seq: u(C + 777777), flags: SYN, win: 64240, wscale: 5, sackPerm: true, t: 1 }));
    expect(d1.verdict).toBe('IGNORE');
    expect(d1.reason).toBe('packet (index 0) in dir 0 ignored, state ESTABLISHED');
    const d2 = table.process(s({ seq: 42, ack: u(C + 777778), flags: SYN | ACK, win: 65160, wscale: 7, sackPerm: true, t: 1.1 }));
    expect(d2.verdict).toBe('ACCEPT');
    expect(d2.stateAfter).toBe('SYN_RECV');
    expect(ct.seen[0].tdEnd).toBe(u(C + 777778));
    expect(ct.seen[0].tdScale).toBe(5);
    expect(ct.seen[1].tdEnd).toBe(43);
  });
});

describe('window checks', () => {
  // After the handshake: server may send up to S + 502<<7 = S + 64256; client maxwin 64256; server maxwin 65160.
  it('I: SEQ over the upper bound is INVALID (bounded message on 6.1+, old wording before)', () => {
    for (const [p, reason] of [
      [MODERN, null],
      [OLD, 'SEQ is over the upper bound (over the window of the receiver)'],
      [OVERSHOOT, 'SEQ is over the upper bound (over the window of the receiver)'],
    ] as const) {
      const { table, ct, C, S } = established(p);
      const d = table.process(s({ seq: u(S + 200000), ack: C, flags: PSH | ACK, len: 4, t: 1 }));
      expect(d.verdict).toBe('INVALID');
      expect(d.check).toBe('I');
      expect(d.logged).toBe(true);
      expect(d.reason).toBe(reason ?? `SEQ is over upper bound ${u(S + 64256 + 1)} (over the window of the receiver)`);
      expect(ct.seen[1].tdEnd).toBe(S);
    }
  });

  it('I (overshoot): IGNORE + poisoned td_end on 6.1+, INVALID + poisoned on 6.0, INVALID untouched on old', () => {
    const m = established(MODERN);
    const dm = m.table.process(s({ seq: u(m.S + 100000), ack: m.C, flags: PSH | ACK, len: 4, t: 1 }));
    expect([dm.verdict, dm.reason, dm.check]).toEqual(['IGNORE', '35749 bytes more than expected', 'I']);
    expect(m.ct.seen[1].tdEnd).toBe(u(m.S + 100004));
    expect(m.ct.seen[1].flags & CtFlag.DATA_UNACKNOWLEDGED).toBeTruthy();

    const o6 = established(OVERSHOOT);
    const d6 = o6.table.process(s({ seq: u(o6.S + 100000), ack: o6.C, flags: PSH | ACK, len: 4, t: 1 }));
    expect([d6.verdict, d6.reason]).toEqual(['INVALID', '35749 bytes more than expected']);
    expect(o6.ct.seen[1].tdEnd).toBe(u(o6.S + 100004));

    const o = established(OLD);
    const d5 = o.table.process(s({ seq: u(o.S + 100000), ack: o.C, flags: PSH | ACK, len: 4, t: 1 }));
    expect([d5.verdict, d5.reason]).toEqual(['INVALID', 'SEQ is over the upper bound (over the window of the receiver)']);
    expect(o.ct.seen[1].tdEnd).toBe(o.S);
  });

  it('II: SEQ under the lower bound is IGNORE on 6.1+, INVALID before', () => {
    const m = established(MODERN);
    const dm = m.table.process(s({ seq: u(m.S - 100000), ack: m.C, flags: PSH | ACK, len: 4, t: 1 }));
    expect([dm.verdict, dm.check, dm.reason]).toEqual([
      'IGNORE',
      'II',
      `SEQ is under lower bound ${u(m.S - 64256 - 1)} (already ACKed data retransmitted)`,
    ]);
    const o = established(OLD);
    const d5 = o.table.process(s({ seq: u(o.S - 100000), ack: o.C, flags: PSH | ACK, len: 4, t: 1 }));
    expect([d5.verdict, d5.check, d5.reason]).toEqual(['INVALID', 'II', 'SEQ is under the lower bound (already ACKed data retransmitted)']);
  });

  it('III: ACK over the upper bound is INVALID on both', () => {
    const m = established(MODERN);
    const dm = m.table.process(c({ seq: m.C, ack: u(m.S + 10), flags: ACK, t: 1 }));
    expect([dm.verdict, dm.check, dm.reason]).toEqual(['INVALID', 'III', `ACK is over upper bound ${u(m.S + 1)} (ACKed data not seen yet)`]);
    const o = established(OLD);
    const d5 = o.table.process(c({ seq: o.C, ack: u(o.S + 10), flags: ACK, t: 1 }));
    expect([d5.verdict, d5.check, d5.reason]).toEqual(['INVALID', 'III', 'ACK is over the upper bound (ACKed data not seen yet)']);
  });

  it('IV: ACK under the lower bound is IGNORE on 6.1+, INVALID before', () => {
    const m = established(MODERN);
    const dm = m.table.process(c({ seq: m.C, ack: u(m.S - 70000), flags: ACK, t: 1 }));
    expect([dm.verdict, dm.check, dm.reason]).toEqual([
      'IGNORE',
      'IV',
      `ignored ACK under lower bound ${u(m.S - 66000 - 1)} (possible overly delayed)`,
    ]);
    const o = established(OLD);
    const d5 = o.table.process(c({ seq: o.C, ack: u(o.S - 70000), flags: ACK, t: 1 }));
    expect([d5.verdict, d5.check, d5.reason]).toEqual(['INVALID', 'IV', 'ACK is under the lower bound (possible overly delayed ACK)']);
  });

  it('checks in order I, III, II, IV on 6.1+ but I, II, III, IV before', () => {
    const m = established(MODERN);
    const bad = (S: number, C: number) => s({ seq: u(S - 100000), ack: u(C + 50), flags: PSH | ACK, len: 4, t: 1 });
    expect(m.table.process(bad(m.S, m.C)).check).toBe('III');
    const o = established(OLD);
    expect(o.table.process(bad(o.S, o.C)).check).toBe('II');
  });

  it('a SACK right edge beyond the data seen fails III; timestamp-only options are not parsed', () => {
    const m = established(MODERN);
    const d = m.table.process(c({ seq: m.C, ack: m.S, flags: ACK, sack: [[u(m.S + 10), u(m.S + 20)]], t: 1 }));
    expect(d.check).toBe('III');
    const d2 = m.table.process(c({ seq: m.C, ack: m.S, flags: ACK, t: 1 }));
    expect(d2.verdict).toBe('ACCEPT');
  });

  it('IGNORE changes nothing: no state change, no timeout refresh', () => {
    const m = established(MODERN);
    const before = m.ct.expires;
    const d = m.table.process(c({ seq: m.C, ack: u(m.S - 70000), flags: FIN | ACK, t: 50 }));
    expect(d.verdict).toBe('IGNORE');
    expect(d.timeoutSec).toBeNull();
    expect(d.stateAfter).toBe('ESTABLISHED');
    expect(m.ct.expires).toBe(before);
    expect(m.ct.seen[0].flags & CtFlag.CLOSE_INIT).toBeFalsy();
  });

  it('be_liberal (sysctl or per-direction flag) accepts failed checks without logging or window updates', () => {
    for (const p of [MODERN, OLD]) {
      const m = established(p, { beLiberal: true });
      const d = m.table.process(s({ seq: u(m.S + 200000), ack: m.C, flags: PSH | ACK, len: 4, t: 1 }));
      expect(d.verdict).toBe('ACCEPT');
      expect(d.logged).toBe(false);
      expect(d.reason).toBeNull();
      expect(d.check).toBe('I');
      expect(d.note).toMatch(/be_liberal/);
      expect(m.ct.seen[1].tdEnd).toBe(m.S);
    }
    const m = established(MODERN);
    m.ct.setLiberal(1);
    expect(m.table.process(s({ seq: u(m.S + 200000), ack: m.C, flags: PSH | ACK, len: 4, t: 1 })).verdict).toBe('ACCEPT');
    // only the liberal direction
    expect(m.table.process(c({ seq: m.C, ack: u(m.S + 10), flags: ACK, t: 1 })).verdict).toBe('INVALID');
  });

  it('window scaling: both sides scale by 7; without the client option the scales are cleared', () => {
    const m = established(MODERN);
    expect(m.ct.seen[0].tdScale).toBe(7);
    expect(m.ct.seen[1].tdMaxend).toBe(u(m.S + (502 << 7)));
    expect(m.table.process(s({ seq: u(m.S + 600), ack: m.C, flags: PSH | ACK, len: 4, t: 1 })).verdict).toBe('ACCEPT');

    const n = established(MODERN, {}, { cWscale: null });
    expect(n.ct.seen[0].tdScale).toBe(0);
    expect(n.ct.seen[1].tdScale).toBe(0);
    expect(n.ct.seen[1].tdMaxend).toBe(u(n.S + 502));
    const d = n.table.process(s({ seq: u(n.S + 600), ack: n.C, flags: PSH | ACK, len: 4, t: 1 }));
    expect([d.verdict, d.reason]).toEqual(['IGNORE', '103 bytes more than expected']);
  });

  it('sequence numbers crossing 2^32 are tracked like any others', () => {
    const cIsn = 0xfffffff0;
    const sIsn = 0xffffff00;
    const m = established(MODERN, {}, { cIsn, sIsn });
    let C = m.C;
    let S = m.S;
    const d1 = m.table.process(c({ seq: C, ack: S, flags: PSH | ACK, len: 100, t: 1 }));
    C = u(C + 100);
    expect(d1.verdict).toBe('ACCEPT');
    expect(m.ct.seen[0].tdEnd).toBe(C);
    expect(C).toBeLessThan(200); // wrapped
    const d2 = m.table.process(s({ seq: S, ack: C, flags: PSH | ACK, len: 1000, win: 509, t: 1.1 }));
    S = u(S + 1000);
    expect(d2.verdict).toBe('ACCEPT');
    expect(m.ct.seen[1].tdEnd).toBe(S);
    const d3 = m.table.process(c({ seq: C, ack: S, flags: ACK, t: 1.2 }));
    expect(d3.verdict).toBe('ACCEPT');
    // a stale ACK from before the wrap is IGNOREd (IV), one ahead of the data is INVALID (III)
    expect(m.table.process(c({ seq: C, ack: u(S - 70000), flags: ACK, t: 1.3 })).check).toBe('IV');
    const d4 = m.table.process(c({ seq: C, ack: u(S + 1), flags: ACK, t: 1.4 }));
    expect([d4.verdict, d4.reason]).toEqual(['INVALID', `ACK is over upper bound ${u(S + 1)} (ACKed data not seen yet)`]);
    const d5 = m.table.process(s({ seq: u(S + 200000), ack: C, flags: PSH | ACK, len: 4, t: 1.5 }));
    expect([d5.verdict, d5.reason]).toEqual(['INVALID', `SEQ is over upper bound ${u(S + (502 << 7) + 1)} (over the window of the receiver)`]);
  });
});

describe('RST handling', () => {
  it('an exact RST moves ESTABLISHED to CLOSE with the close timeout', () => {
    const m = established(MODERN);
    const d = m.table.process(c({ seq: m.C, flags: RST, t: 1, noOpts: true }));
    expect([d.verdict, d.stateAfter, d.timeoutSec]).toEqual(['ACCEPT', 'CLOSE', 10]);
  });

  it('an RST before the peer\'s highest ACK is INVALID "invalid rst" unless ignore_invalid_rst (5.14+)', () => {
    const m = established(MODERN);
    const d = m.table.process(c({ seq: u(m.C - 10), flags: RST, t: 1, noOpts: true }));
    expect([d.verdict, d.check, d.reason]).toEqual(['INVALID', 'rst', 'invalid rst']);

    const i = established(MODERN, { ignoreInvalidRst: true });
    const di = i.table.process(c({ seq: u(i.C - 10), flags: RST, t: 1, noOpts: true }));
    expect(di.verdict).toBe('ACCEPT');
    expect(di.stateAfter).toBe('ESTABLISHED'); // inexact: state kept for a challenge ACK
    expect(di.timeoutSec).toBe(10);

    // 5.10 has no such sysctl
    const o = established(OLD, { ignoreInvalidRst: true });
    expect(o.table.process(c({ seq: u(o.C - 10), flags: RST, t: 1, noOpts: true })).reason).toBe('invalid rst');
    // 5.14 has it
    const o14 = established(profileForRelease('5.14.21-150400.24.21-default'), { ignoreInvalidRst: true });
    expect(o14.table.process(c({ seq: u(o14.C - 10), flags: RST, t: 1, noOpts: true })).verdict).toBe('ACCEPT');
  });

  it('an inexact in-window RST keeps the state; an RST right after the sender\'s data closes', () => {
    const m = established(MODERN);
    const d = m.table.process(c({ seq: u(m.C + 100), flags: RST, t: 1, noOpts: true }));
    expect([d.verdict, d.stateAfter]).toEqual(['ACCEPT', 'ESTABLISHED']);

    const n = established(MODERN);
    n.table.process(c({ seq: n.C, ack: n.S, flags: PSH | ACK, len: 10, t: 1 }));
    const d2 = n.table.process(c({ seq: u(n.C + 10), flags: RST, t: 1.1, noOpts: true }));
    expect([d2.verdict, d2.stateAfter]).toEqual(['ACCEPT', 'CLOSE']);
  });

  it('an RST answering the first SYN deletes the entry', () => {
    const table = new ConntrackTable(MODERN);
    table.process(c({ seq: 100, flags: SYN, wscale: 7, sackPerm: true }));
    const d = table.process(s({ seq: 0, ack: 101, flags: RST | ACK, win: 0, t: 0.1, noOpts: true }));
    expect(d.verdict).toBe('ACCEPT');
    expect(d.deleted).toBe(true);
    expect(table.size).toBe(0);
  });

  it('port reuse: the RST answering a challenge ACK in SYN_SENT passes on 6.2+, 6.1.9+ and 5.10 (as measured), and the retransmitted SYN reopens', () => {
    const run = (p: KernelProfile) => {
      const table = new ConntrackTable(p);
      table.process(c({ seq: 1000, flags: SYN, wscale: 7, sackPerm: true, t: 0 }));
      const ch = table.process(s({ seq: 7000, ack: 999000, flags: ACK, win: 509, t: 0.001 }));
      const rst = table.process(c({ seq: 999000, flags: RST, t: 0.002, noOpts: true }));
      const syn = table.process(c({ seq: 1000, flags: SYN, wscale: 7, sackPerm: true, t: 1 }));
      return { ch, rst, syn };
    };
    const m = run(MODERN);
    expect([m.ch.verdict, m.ch.reason]).toEqual(['IGNORE', 'packet (index 3) in dir 1 ignored, state SYN_SENT']);
    expect([m.rst.verdict, m.rst.stateAfter]).toEqual(['ACCEPT', 'CLOSE']);
    expect([m.syn.repeat, m.syn.stateAfter]).toEqual([true, 'SYN_SENT']);
    // 6.1.192 (measured) carries the 6.1.9 backport; a 6.1 before it drops the RST (SEQ over the SYN's end)
    const m61 = run(profileForRelease('6.1.192'));
    expect([m61.rst.verdict, m61.syn.repeat]).toEqual(['ACCEPT', true]);
    const early61 = run(profileForRelease('6.1.4'));
    expect(early61.rst.verdict).toBe('INVALID');
    expect(early61.rst.reason).toBe('SEQ is over upper bound 1002 (over the window of the receiver)');
    // 5.10.223 (measured: connects): no challenge-ACK handling, but the old re-init rule and an
    // unseen reply direction let the RST through; the ignored ACK has the old wording
    const old = run(OLD);
    expect([old.ch.verdict, old.ch.reason]).toEqual(['IGNORE', 'invalid packet ignored in state SYN_SENT']);
    expect([old.rst.verdict, old.rst.reason, old.rst.stateAfter]).toEqual(['ACCEPT', null, 'CLOSE']);
    expect([old.syn.repeat, old.syn.stateAfter]).toEqual([true, 'SYN_SENT']);
  });
});

describe('new connections and flags', () => {
  it('loose pickup: an ACK starts an ESTABLISHED, liberal entry with the unack timeout', () => {
    const table = new ConntrackTable(MODERN);
    const d = table.process(c({ seq: 1000, ack: 5000, flags: ACK, t: 0 }));
    expect([d.verdict, d.stateAfter, d.timeoutSec]).toEqual(['ACCEPT', 'ESTABLISHED', 300]);
    const ct = table.lookup(c({ seq: 0, flags: 0 }))!;
    expect(ct.seen[0].flags & CtFlag.BE_LIBERAL).toBeTruthy();
    expect(ct.seen[1].flags & CtFlag.BE_LIBERAL).toBeTruthy();
    table.process(s({ seq: 5000, ack: 1000, flags: ACK, t: 0.1 }));
    expect(ct.assured).toBe(false);
    const d3 = table.process(c({ seq: 1000, ack: 5000, flags: PSH | ACK, len: 5, t: 0.2 }));
    expect(ct.assured).toBe(true);
    expect(d3.timeoutSec).toBe(300); // unacked data
  });

  it('loose=0: an ACK cannot start an entry (INVALID, nothing logged)', () => {
    const table = new ConntrackTable(MODERN, { loose: false });
    const d = table.process(c({ seq: 1000, ack: 5000, flags: ACK }));
    expect([d.verdict, d.check, d.reason, d.logged]).toEqual(['INVALID', 'loose', null, false]);
    expect(table.size).toBe(0);
    expect(table.invalidCount).toBe(1);
  });

  it('"invalid new" for a SYN/ACK, FIN or RST as first packet (logged from 6.7: yes on 6.12/6.18, not on 6.1.192 or 5.10)', () => {
    for (const flags of [SYN | ACK, FIN | ACK, RST]) {
      const table = new ConntrackTable(MODERN);
      const d = table.process(c({ seq: 1, ack: 2, flags }));
      expect([d.verdict, d.check, d.reason, d.logged]).toEqual(['INVALID', 'new', 'invalid new', true]);
      expect(table.size).toBe(0);
    }
    for (const p of [OLD, profileById('modern'), profileForRelease('6.6.30')]) {
      const d = new ConntrackTable(p).process(c({ seq: 1, ack: 2, flags: FIN | ACK }));
      expect([d.verdict, d.reason, d.logged]).toEqual(['INVALID', 'invalid new', false]);
    }
    expect(new ConntrackTable(profileForRelease('6.12.117+deb12-amd64')).process(c({ seq: 1, ack: 2, flags: RST })).logged).toBe(true);
  });

  it('invalid flag combinations are INVALID before anything else', () => {
    const m = established(MODERN);
    for (const flags of [SYN | FIN, FIN, 0, SYN | RST, PSH]) {
      const d = m.table.process(c({ seq: m.C, ack: m.S, flags, t: 1 }));
      expect([d.verdict, d.check, d.reason]).toEqual(['INVALID', 'flags', 'invalid tcp flag combination']);
    }
    expect(m.ct.stateName).toBe('ESTABLISHED');
    const t = new ConntrackTable(MODERN);
    expect(t.process(c({ seq: 1, flags: SYN | FIN })).check).toBe('flags');
    expect(t.size).toBe(0);
  });

  it('an impossible transition (sIV) is INVALID with the state in the message', () => {
    const m = established(MODERN);
    const d = m.table.process(c({ seq: m.C, ack: m.S, flags: SYN | ACK, t: 1 }));
    expect([d.verdict, d.check, d.reason]).toEqual(['INVALID', 'state', 'packet (index 1) in dir 0 invalid, state ESTABLISHED']);
    const o = established(OLD);
    expect(o.table.process(c({ seq: o.C, ack: o.S, flags: SYN | ACK, t: 1 })).reason).toBe('invalid state');
  });

  it('a truncated header is INVALID', () => {
    const p = c({ seq: 1, flags: SYN });
    p.dataOffset = 16;
    expect(new ConntrackTable(MODERN).process(p).reason).toBe('truncated packet');
  });
});

describe('timeouts', () => {
  it('expired entries are deleted before the packet; a late FIN is then "invalid new"', () => {
    const table = new ConntrackTable(MODERN, { timeouts: { close_wait: 2 } });
    table.process(c({ seq: 100, flags: SYN, wscale: 7, sackPerm: true, t: 0 }));
    table.process(s({ seq: 900, ack: 101, flags: SYN | ACK, wscale: 7, sackPerm: true, t: 0.01 }));
    table.process(c({ seq: 101, ack: 901, flags: ACK, t: 0.02 }));
    expect(table.process(s({ seq: 901, ack: 101, flags: FIN | ACK, t: 1 })).stateAfter).toBe('FIN_WAIT');
    const d = table.process(c({ seq: 101, ack: 902, flags: ACK, t: 1.01 }));
    expect([d.stateAfter, d.timeoutSec]).toEqual(['CLOSE_WAIT', 2]);
    expect(table.lookup(c({ seq: 0, flags: 0 }))!.isExpired(3.5)).toBe(true);
    const late = table.process(c({ seq: 101, ack: 902, flags: FIN | ACK, t: 5 }));
    expect([late.verdict, late.reason, late.stateBefore]).toEqual(['INVALID', 'invalid new', 'NONE']);
    expect(table.size).toBe(0);
  });

  it('a SYN retransmission does not renew SYN_SENT on 5.14+ and 5.10.166+ (backport), but does on older 5.10', () => {
    for (const [p, renew] of [
      [MODERN, false],
      [OLD, false],
      [profileForRelease('5.10.13'), true],
    ] as const) {
      const table = new ConntrackTable(p);
      table.process(c({ seq: 100, flags: SYN, wscale: 7, sackPerm: true, t: 0 }));
      const d = table.process(c({ seq: 100, flags: SYN, wscale: 7, sackPerm: true, t: 10 }));
      expect(d.verdict).toBe('ACCEPT');
      expect(table.lookup(c({ seq: 0, flags: 0 }))!.expires).toBe(renew ? 130 : 120);
    }
  });

  it('retransmissions beyond max_retrans use the max_retrans timeout; unacked data the unack one', () => {
    const m = established(MODERN, { timeouts: { max_retrans: 111, unacknowledged: 222 } });
    const data = c({ seq: m.C, ack: m.S, flags: PSH | ACK, len: 10, t: 1 });
    const ts = [1, 2, 3, 4].map(() => m.table.process(data).timeoutSec);
    expect(ts).toEqual([222, 222, 222, 111]);
    expect(m.ct.retrans).toBe(3);
  });

  it('a zero window uses the max_retrans timeout', () => {
    const m = established(MODERN, { timeouts: { max_retrans: 111 } });
    expect(m.table.process(c({ seq: m.C, ack: m.S, flags: ACK, win: 0, t: 1 })).timeoutSec).toBe(111);
    expect(m.table.process(c({ seq: m.C, ack: m.S, flags: ACK, win: 100, t: 2 })).timeoutSec).toBe(432000);
  });

  it('6.1+: an out-of-window RST answering an out-of-window FIN lowers the timeout (handleInvalid)', () => {
    const run = (p: KernelProfile) => {
      const m = established(p);
      const fin = m.table.process(c({ seq: m.C, ack: u(m.S + 1000), flags: FIN | ACK, t: 1 }));
      const rst = m.table.process(s({ seq: u(m.S + 200000), flags: RST, t: 2, noOpts: true }));
      return { m, fin, rst };
    };
    const { m, fin, rst } = run(MODERN);
    expect([fin.verdict, fin.check]).toEqual(['INVALID', 'III']);
    expect(fin.secondaryReason).toBeNull();
    expect(rst.verdict).toBe('INVALID');
    expect(rst.secondaryReason).toBe('packet (index 4, dir 1) response for index 2 lower timeout to 75000');
    expect(m.ct.expires).toBe(2 + 300);
    const o = run(OLD);
    expect(o.rst.secondaryReason).toBeNull();
    expect(o.m.ct.expires).toBeCloseTo(0.002 + 432000);
  });
});

describe('§7 replay: the observed 6.18 sequence with the notes\' numbers', () => {
  // S = 178314449, C = 2233498242, client window 504<<7 = 64512 ⇒ server td_maxend = 178378961.
  const opts: HS = { cIsn: 2233498241, sIsn: 178314448, cWin: 504 };

  it('forged +100000: IGNORE "35493 bytes more than expected", then IV twice, then III INVALID', () => {
    const { table, ct, C, S } = established(MODERN, {}, opts);
    expect([S, C]).toEqual([178314449, 2233498242]);
    expect(ct.seen[1].tdMaxend).toBe(178378961);
    const exp = ct.expires;

    const forged = table.process(s({ seq: u(S + 100000), ack: C, flags: PSH | ACK, len: 4, win: 509, t: 1, noOpts: true }));
    expect([forged.verdict, forged.reason, forged.logged, forged.timeoutSec]).toEqual(['IGNORE', '35493 bytes more than expected', true, null]);
    expect(ct.seen[1].tdEnd).toBe(178414453);
    expect(ct.seen[1].flags & CtFlag.DATA_UNACKNOWLEDGED).toBeTruthy();
    expect(ct.expires).toBe(exp);

    const dup = table.process(c({ seq: C, ack: S, flags: ACK, win: 504, t: 1.01 }));
    expect([dup.verdict, dup.reason]).toEqual(['IGNORE', 'ignored ACK under lower bound 178348452 (possible overly delayed)']);

    const fin = table.process(c({ seq: C, ack: S, flags: FIN | ACK, win: 504, t: 3 }));
    expect([fin.verdict, fin.reason, fin.stateAfter]).toEqual(['IGNORE', 'ignored ACK under lower bound 178348452 (possible overly delayed)', 'ESTABLISHED']);
    expect(ct.seen[0].tdEnd).toBe(C);
    expect(ct.seen[0].flags & CtFlag.CLOSE_INIT).toBeFalsy();

    const ackOfFin = table.process(s({ seq: S, ack: u(C + 1), flags: ACK, win: 509, t: 3.01 }));
    expect([ackOfFin.verdict, ackOfFin.check, ackOfFin.reason]).toEqual(['INVALID', 'III', 'ACK is over upper bound 2233498243 (ACKed data not seen yet)']);
    expect(ackOfFin.secondaryReason).toBeNull();
    const srvFin = table.process(s({ seq: S, ack: u(C + 1), flags: FIN | ACK, win: 509, t: 3.02 }));
    expect(srvFin.verdict).toBe('INVALID');
    expect(ct.stateName).toBe('ESTABLISHED');
    expect(table.invalidCount).toBe(2);
  });

  it('§8 on 5.10: the forged segment itself is INVALID and the window is untouched', () => {
    const { table, ct, C, S } = established(OLD, {}, opts);
    const d = table.process(s({ seq: u(S + 100000), ack: C, flags: PSH | ACK, len: 4, win: 509, t: 1, noOpts: true }));
    expect([d.verdict, d.reason]).toEqual(['INVALID', 'SEQ is over the upper bound (over the window of the receiver)']);
    expect(ct.seen[1].tdEnd).toBe(S);
    expect(table.process(c({ seq: C, ack: S, flags: FIN | ACK, win: 504, t: 3 })).stateAfter).toBe('FIN_WAIT');
  });

  it('§8 on 6.0: INVALID "bytes more than expected", and the poisoned window makes the client\'s ACK INVALID', () => {
    const { table, ct, C, S } = established(OVERSHOOT, {}, opts);
    const d = table.process(s({ seq: u(S + 100000), ack: C, flags: PSH | ACK, len: 4, win: 509, t: 1, noOpts: true }));
    expect([d.verdict, d.reason]).toEqual(['INVALID', '35493 bytes more than expected']);
    expect(ct.seen[1].tdEnd).toBe(178414453);
    const dup = table.process(c({ seq: C, ack: S, flags: ACK, win: 504, t: 1.01 }));
    expect([dup.verdict, dup.reason]).toEqual(['INVALID', 'ACK is under the lower bound (possible overly delayed ACK)']);
  });
});

describe('ConntrackTracker used directly', () => {
  it('works without a table and refuses packets after deletion', () => {
    const t = new ConntrackTracker(MODERN);
    expect(t.process(c({ seq: 1, flags: SYN }), 0).stateAfter).toBe('SYN_SENT');
    expect(t.confirmed).toBe(true);
    expect(t.process(s({ seq: 0, ack: 2, flags: RST | ACK, noOpts: true }), 1).deleted).toBe(true);
    expect(() => t.process(c({ seq: 1, flags: SYN }), 0)).toThrow();
    expect(t.state).toBe(State.CLOSE);
  });

  it('formats a window check\'s reason only when read, the same text as written out, in copies and JSON too', () => {
    const d = createDecision();
    setReason(d, 2, 4294967295);
    expect([reasonForm(d), reasonArg(d)]).toEqual([2, 4294967295]);
    expect(d.reason).toBe('SEQ is under lower bound 4294967295 (already ACKed data retransmitted)');
    expect(reasonForm(d)).toBe(2); // still its pieces for a renderer after being read
    expect((JSON.parse(JSON.stringify(d)) as { reason: string }).reason).toBe(d.reason);
    for (let f = 0; f < REASON_FORMS.length; f++) expect(formatReason(f, 7)).toBe(REASON_FORMS[f]![0] + '7' + REASON_FORMS[f]![1]);
    d.reason = 'invalid rst';
    expect([reasonForm(d), d.reason]).toEqual([-1, 'invalid rst']);
    // a plain object as a Decision gets the text at once
    const plain = JSON.parse(JSON.stringify(createDecision())) as ReturnType<typeof createDecision>;
    expect(Object.keys(plain)).toEqual(['verdict', 'dir', 'stateBefore', 'stateAfter', 'reason', 'logged', 'check', 'timeoutSec', 'secondaryReason', 'note', 'deleted', 'repeat']);
    setReason(plain, 0, 12);
    expect([reasonForm(plain), plain.reason]).toEqual([-1, 'SEQ is over upper bound 12 (over the window of the receiver)']);
  });

  it('reuses the Decision object it is given', () => {
    const t = new ConntrackTracker(MODERN);
    const out = t.process(c({ seq: 1, flags: SYN }), 0);
    const again = t.process(c({ seq: 1, flags: SYN, t: 1 }), 0, out);
    expect(again).toBe(out);
    expect(again.stateBefore).toBe('SYN_SENT');
  });
});

describe('nf_conntrack_max: a full table early-drops an unassured entry', () => {
  /** A packet of client port `port` (server 9000). */
  const from = (port: number, o: P): TcpPacketView => ({ ...c(o), srcPort: port });
  const to = (port: number, o: P): TcpPacketView => ({ ...s(o), dstPort: port });
  const syn = (port: number, t: number) => from(port, { seq: port * 1000, flags: SYN, t });
  /** A full handshake from `port`: its entry is ASSURED. */
  const assured = (table: ConntrackTable, port: number, t: number) => {
    table.process(syn(port, t));
    table.process(to(port, { seq: 7, ack: port * 1000 + 1, flags: SYN | ACK, t }));
    table.process(from(port, { seq: port * 1000 + 1, ack: 8, flags: ACK, t }));
    return table.lookup(from(port, { seq: 0, flags: 0 }))!;
  };

  it('drops the oldest unassured entry to make room, never an assured one; none to drop: the kernel drops the packet', () => {
    const table = new ConntrackTable(MODERN, { conntrackMax: 3 });
    const a = assured(table, 1000, 0);
    table.process(syn(1001, 1));
    const old = table.lookup(from(1001, { seq: 0, flags: 0 }))!;
    table.process(syn(1002, 2));
    expect([table.size, table.earlyDrops]).toEqual([3, 0]);
    // the 4th: the oldest unassured (1001) goes, the assured one stays
    expect(table.process(syn(1003, 3)).verdict).toBe('ACCEPT');
    expect([table.size, table.earlyDrops, old.dead, a.dead]).toEqual([3, 1, true, false]);
    expect(table.lookup(from(1001, { seq: 0, flags: 0 }))).toBeUndefined();
    // its next packet finds no entry: a SYN/ACK cannot start one
    expect(table.process(to(1001, { seq: 7, ack: 1001 * 1000 + 1, flags: SYN | ACK, t: 4 })).reason).toBe('invalid new');

    // every entry assured: nothing to drop, counted (the model tracks the new one anyway)
    const full = new ConntrackTable(MODERN, { conntrackMax: 2 });
    assured(full, 2000, 0);
    assured(full, 2001, 0);
    full.process(syn(2002, 1));
    expect([full.size, full.earlyDrops, full.tableFull]).toEqual([3, 0, 1]);
    // no limit (the default): nothing dropped
    const free = new ConntrackTable(MODERN);
    for (let p = 3000; p < 3100; p++) free.process(syn(p, 0));
    expect([free.size, free.earlyDrops, free.tableFull]).toEqual([100, 0, 0]);
  });

  it('removes an expired entry it meets without counting it; holds the table at its limit through a flood of SYNs', () => {
    const table = new ConntrackTable(MODERN, { conntrackMax: 2, timeouts: { syn_sent: 5 } });
    table.process(syn(1, 0));
    table.process(syn(2, 4));
    // at 6, entry 1 has expired (SYN_SENT 5 s): it goes, and no live entry is dropped
    table.process(syn(3, 6));
    expect([table.size, table.earlyDrops]).toEqual([2, 0]);
    expect(table.lookup(from(2, { seq: 0, flags: 0 }))).toBeDefined();

    const flood = new ConntrackTable(MODERN, { conntrackMax: 1000 });
    const keep = assured(flood, 65000, 0);
    for (let i = 0; i < 20_000; i++) {
      flood.process(syn(1 + (i % 60000), 1 + i / 1e4));
      if (i % 5000 === 4999) flood.gc(1 + i / 1e4);
    }
    expect([flood.size, flood.earlyDrops, keep.dead]).toEqual([1000, 20_000 - 999, false]);
  });
});
