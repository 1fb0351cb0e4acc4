import { describe, expect, it } from 'vitest';
import { EndpointPairs } from './pair-cache.js';

describe('EndpointPairs', () => {
  it('keeps two pairs per hash, refills the less recently used, and bumps a refilled slot\'s version', () => {
    let made = 0;
    const pairs = new EndpointPairs((b, at, src, sp, dst, dp) => (made++, at + Buffer.from(b.buffer, b.byteOffset).write(`${src}:${sp}>${dst}:${dp}`, at, 'latin1')));
    const text = (i: number) => Buffer.from(pairs.piece(i)).toString();
    const a = pairs.slot('192.0.2.1', 40000, '198.51.100.2', 9000);
    // two more pairs sharing its two slots (same ports hash, other addresses)
    const b = pairs.slot('192.0.2.7', 40000, '198.51.100.2', 9000);
    expect(b >> 1).toBe(a >> 1);
    expect(b).not.toBe(a);
    expect([text(a), text(b)]).toEqual(['192.0.2.1:40000>198.51.100.2:9000', '192.0.2.7:40000>198.51.100.2:9000']);
    expect(pairs.slot('192.0.2.1', 40000, '198.51.100.2', 9000)).toBe(a); // a hit: nothing made
    expect(made).toBe(2);
    const versionB = pairs.version(b);
    const c = pairs.slot('192.0.2.9', 40000, '198.51.100.2', 9000); // evicts b, the less recent
    expect(c).toBe(b);
    expect(pairs.version(c)).toBe(versionB + 1);
    expect(text(c)).toBe('192.0.2.9:40000>198.51.100.2:9000');
    expect(pairs.slot('192.0.2.1', 40000, '198.51.100.2', 9000)).toBe(a);
    expect(made).toBe(3);
    expect(Math.max(a, b, c)).toBeLessThan(EndpointPairs.SLOTS);
  });
});

describe('EndpointPairs sizing', () => {
  it('grows while lookups miss, keeps every piece right across growth, and counts versions on', () => {
    const pairs = new EndpointPairs((b, at, src, sp, dst, dp) => at + Buffer.from(b.buffer, b.byteOffset).write(`${src}:${sp}>${dst}:${dp}`, at, 'latin1'));
    const text = (i: number) => Buffer.from(pairs.piece(i)).toString();
    pairs.slot('192.0.2.1', 1, '198.51.100.2', 9000);
    expect(pairs.slots).toBe(EndpointPairs.MIN_SLOTS);
    const first = pairs.slot('192.0.2.1', 1, '198.51.100.2', 9000);
    const v0 = pairs.version(first);
    // 8,000 pairs live at once, round and round: a small cache misses nearly every lookup
    for (let round = 0; round < 12; round++) for (let port = 1; port <= 8000; port++) {
      const s = pairs.slot('192.0.2.1', port, '198.51.100.2', 9000);
      if (port % 997 === 0) expect(text(s)).toBe(`192.0.2.1:${port}>198.51.100.2:9000`);
    }
    expect(pairs.slots).toBeGreaterThanOrEqual(8192);
    expect(pairs.slots).toBeLessThanOrEqual(EndpointPairs.SLOTS);
    const again = pairs.slot('192.0.2.1', 1, '198.51.100.2', 9000);
    expect(text(again)).toBe('192.0.2.1:1>198.51.100.2:9000');
    if (again === first) expect(pairs.version(again)).toBeGreaterThan(v0); // refilled since: a new version
  });

  it('stays small while a few pairs repeat', () => {
    const pairs = new EndpointPairs((b, at) => at);
    for (let i = 0; i < 200000; i++) pairs.slot('192.0.2.1', 1 + (i % 500), '198.51.100.2', 9000);
    expect(pairs.slots).toBe(EndpointPairs.MIN_SLOTS);
  });

  it('stays small when pairs are looked up a few times each and never again (text shows a few packets per connection)', () => {
    const pairs = new EndpointPairs((b, at) => at);
    // 60,000 connections, 200 live at once, each pair looked up 3 times while it is live
    for (let c = 0; c < 60000; c += 200) for (let k = 0; k < 3; k++) for (let i = c; i < c + 200; i++) pairs.slot(`192.0.2.${1 + (i % 250)}`, 1024 + (i % 60000), '198.51.100.2', 9000);
    expect(pairs.slots).toBe(EndpointPairs.MIN_SLOTS);
  });

  it('keeps a piece longer than its slot whole', () => {
    const long = 'x'.repeat(300);
    const pairs = new EndpointPairs((b, at, src) => at + Buffer.from(b.buffer, b.byteOffset).write(src, at, 'latin1'));
    const s = pairs.slot(long, 1, 'y', 2);
    expect(Buffer.from(pairs.piece(s)).toString()).toBe(long);
  });
});
