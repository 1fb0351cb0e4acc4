import { describe, expect, it } from 'vitest';
import { EndpointPairs } from './pair-cache.js';

describe('EndpointPairs', () => {
  it('keeps two pairs per hash, refills the less recently used, and bumps a refilled slot\'s version', () => {
    let made = 0;
    const pairs = new EndpointPairs((src, sp, dst, dp) => (made++, Buffer.from(`${src}:${sp}>${dst}:${dp}`)));
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
