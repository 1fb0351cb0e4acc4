import { describe, expect, it } from 'vitest';
import { FlowLedger } from './flow-ledger.js';
import { createDecision, setReason, type Decision } from './model.js';
import type { Binding } from './nat.js';

const tuple = (port: number) => ({ src: '192.0.2.1', sport: port, dst: '198.51.100.2', dport: 9000 });
const decision = (verdict: Decision['verdict'], reason?: (d: Decision) => void): Decision => {
  const d = createDecision();
  d.verdict = verdict;
  d.stateAfter = 'ESTABLISHED';
  reason?.(d);
  return d;
};

describe('FlowLedger', () => {
  it("keeps each flow's first INVALID: its index and its reason, as a window check's form and number or as text", () => {
    const l = new FlowLedger();
    const a = l.flowOf('a', null, tuple(1), false);
    const b = l.flowOf('b', null, tuple(2), false);
    const c = l.flowOf('c', null, tuple(3), false);
    l.count(a, decision('ACCEPT'), 0, 0);
    l.count(a, decision('INVALID', (d) => setReason(d, 1, 4294967295)), 0, 1);
    l.count(a, decision('INVALID', (d) => setReason(d, 0, 7)), 0, 2); // not the first
    l.count(b, decision('INVALID', (d) => (d.reason = 'invalid new')), 0, 5);
    l.count(b, decision('INVALID', (d) => setReason(d, 0, 7)), 0, 6);
    l.count(c, decision('IGNORE', (d) => setReason(d, 3, 12)), 0, 7);
    // many flows: the arrays grow and keep what was counted
    for (let i = 0; i < 100; i++) l.count(l.flowOf(`x${i}`, null, tuple(100 + i), false), decision('INVALID', (d) => (d.reason = null)), 0, 1000 + i);
    const flows = l.list();
    expect(flows.at(0)!.firstInvalid).toEqual({ index: 1, reason: 'ACK is over upper bound 4294967295 (ACKed data not seen yet)' });
    expect(flows.at(1)!.firstInvalid).toEqual({ index: 5, reason: 'invalid new' });
    expect(flows.at(2)!.firstInvalid).toBeNull();
    expect(flows.at(3)!.firstInvalid).toEqual({ index: 1000, reason: null });
    expect(flows.at(-1)!.firstInvalid).toEqual({ index: 1099, reason: null });
    expect([flows.at(0)!.invalid, flows.at(0)!.accept, flows.at(1)!.invalid, flows.at(2)!.ignore]).toEqual([2, 1, 2, 1]);
  });
});

describe('FlowLedger rows', () => {
  it('writes a row to its store once its entry is gone and reuses its slot: slots follow the flows live at once', () => {
    const written: number[] = [];
    const store = new Map<number, Buffer>();
    const l = new FlowLedger({
      putBytes: (n, src, length) => {
        written.push(n);
        store.set(n, Buffer.from(src.subarray(0, length))); // a copy: src is the ledger's scratch
      },
      getBytes: (n) => store.get(n)!,
    }, 100);
    // 10 generations of 50 flows; each generation's entries die before the next starts
    for (let g = 0; g < 10; g++) {
      const trackers = Array.from({ length: 50 }, () => ({ dead: false, isExpired: () => false }));
      for (let i = 0; i < 50; i++) {
        const key = `g${g}-${i}`;
        const binding = { key, tracker: trackers[i], owner: null, natted: false, learnedFrom: null } as unknown as Binding;
        const s = l.flowOf(key, binding, tuple(1000 + 50 * g + i), false);
        l.count(s, decision(i % 5 === 0 ? 'INVALID' : 'ACCEPT', (d) => (d.reason = i % 5 === 0 ? 'invalid new' : null)), 0, 100 * g + i);
        l.count(l.flowOf(key, binding, tuple(1000 + 50 * g + i), false), decision('ACCEPT'), 0, 100 * g + i + 50);
      }
      for (const t of trackers) t.dead = true;
      l.settleGone(g);
      // the first 100 flows keep their slots (nothing written); later ones are written once final
      expect(written).toHaveLength(Math.max(0, 50 * (g + 1) - 100));
    }
    expect(l.slots).toBe(150);
    const flows = l.list().toArray();
    expect(flows).toHaveLength(500);
    expect(flows.map((f) => f.flow)).toEqual(Array.from({ length: 500 }, (_, i) => `192.0.2.1:${1000 + i} → 198.51.100.2:9000`));
    expect(flows.every((f) => f.packets === 2)).toBe(true);
    expect(flows[5]!.firstInvalid).toEqual({ index: 5, reason: 'invalid new' });
    expect(flows[6]!.firstInvalid).toBeNull();
  });
});
