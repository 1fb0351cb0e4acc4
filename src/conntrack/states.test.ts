import { describe, expect, it } from 'vitest';
import {
  DEFAULT_TIMEOUTS,
  Idx,
  STATE_NAMES,
  State,
  TRANSITIONS,
  flagIndex,
  nextState,
  sIG,
  sIV,
  stateName,
  timeoutTable,
  validFlagCombination,
} from './states.js';

describe('conntrack states and tables', () => {
  it('names states as the kernel prints them, in enum order', () => {
    expect(STATE_NAMES).toEqual([
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
    ]);
    expect(stateName(State.SYN_SENT2)).toBe('SYN_SENT2');
    expect(stateName(sIV)).toBe('INVALID');
  });

  it('has the two 6×10 transition tables as data', () => {
    expect(TRANSITIONS).toHaveLength(2);
    for (const dir of TRANSITIONS) {
      expect(dir).toHaveLength(6);
      for (const row of dir) expect(row).toHaveLength(10);
    }
  });

  it('transitions: handshake, close, and the special markers', () => {
    expect(nextState(0, Idx.SYN, State.NONE)).toBe(State.SYN_SENT);
    expect(nextState(1, Idx.SYNACK, State.SYN_SENT)).toBe(State.SYN_RECV);
    expect(nextState(0, Idx.ACK, State.SYN_RECV)).toBe(State.ESTABLISHED);
    expect(nextState(0, Idx.FIN, State.ESTABLISHED)).toBe(State.FIN_WAIT);
    expect(nextState(1, Idx.FIN, State.ESTABLISHED)).toBe(State.FIN_WAIT);
    expect(nextState(1, Idx.ACK, State.FIN_WAIT)).toBe(State.CLOSE_WAIT);
    expect(nextState(1, Idx.FIN, State.CLOSE_WAIT)).toBe(State.LAST_ACK);
    expect(nextState(0, Idx.ACK, State.LAST_ACK)).toBe(State.TIME_WAIT);
    // ACK pickup from NONE, but not in the reply direction
    expect(nextState(0, Idx.ACK, State.NONE)).toBe(State.ESTABLISHED);
    expect(nextState(1, Idx.ACK, State.NONE)).toBe(sIV);
    // ignored: SYN in ES (original), SYN/ACK in ES (reply), ACK in SYN_SENT (reply: challenge ACK)
    expect(nextState(0, Idx.SYN, State.ESTABLISHED)).toBe(sIG);
    expect(nextState(1, Idx.SYNACK, State.ESTABLISHED)).toBe(sIG);
    expect(nextState(1, Idx.ACK, State.SYN_SENT)).toBe(sIG);
    // SYN/ACK from the original direction is invalid except in SYN_RECV / SYN_SENT2
    expect(nextState(0, Idx.SYNACK, State.ESTABLISHED)).toBe(sIV);
    expect(nextState(0, Idx.SYNACK, State.SYN_SENT2)).toBe(State.SYN_RECV);
    // reply SYN in TIME_WAIT: server switched role
    expect(nextState(1, Idx.SYN, State.TIME_WAIT)).toBe(State.SYN_SENT);
    // simultaneous open
    expect(nextState(1, Idx.SYN, State.SYN_SENT)).toBe(State.SYN_SENT2);
    for (let s = 0; s < 10; s++) {
      expect(nextState(0, Idx.NONE, s)).toBe(sIV);
      expect(nextState(1, Idx.NONE, s)).toBe(sIV);
    }
    expect(nextState(0, Idx.RST, State.ESTABLISHED)).toBe(State.CLOSE);
    expect(nextState(0, Idx.RST, State.NONE)).toBe(sIV);
  });

  it('classifies flags like get_conntrack_index', () => {
    expect(flagIndex(0x02)).toBe(Idx.SYN);
    expect(flagIndex(0x12)).toBe(Idx.SYNACK);
    expect(flagIndex(0x11)).toBe(Idx.FIN);
    expect(flagIndex(0x18)).toBe(Idx.ACK);
    expect(flagIndex(0x14)).toBe(Idx.RST);
    expect(flagIndex(0x16)).toBe(Idx.RST);
    expect(flagIndex(0x00)).toBe(Idx.NONE);
  });

  it('accepts exactly the valid flag combinations (PSH/ECE/CWR ignored)', () => {
    for (const f of [0x02, 0x22, 0x12, 0x04, 0x14, 0x11, 0x31, 0x10, 0x30, 0x18, 0x19, 0xc2, 0x52]) {
      expect(validFlagCombination(f), f.toString(16)).toBe(true);
    }
    for (const f of [0x00, 0x01, 0x03, 0x06, 0x08, 0x13, 0x15, 0x20, 0x29, 0x3f, 0xff]) {
      expect(validFlagCombination(f), f.toString(16)).toBe(false);
    }
  });

  it('has the kernel default timeouts', () => {
    expect(DEFAULT_TIMEOUTS.established).toBe(432000);
    const t = timeoutTable({ close_wait: 2 });
    expect(t[State.NONE]).toBe(120);
    expect(t[State.SYN_RECV]).toBe(60);
    expect(t[State.CLOSE_WAIT]).toBe(2);
    expect(t[State.TIME_WAIT]).toBe(120);
    expect(t[State.CLOSE]).toBe(10);
    expect(t[State.SYN_SENT2]).toBe(120);
    expect(t[State.RETRANS]).toBe(300);
    expect(t[State.UNACK]).toBe(300);
  });
});
