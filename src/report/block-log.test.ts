import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { BlockLog } from './block-log.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const text = (i: number) => `connection ${i} → ${'é'.repeat(i % 7)} ${'x'.repeat((i * 37) % 300)}\n  line two`;

describe('BlockLog', () => {
  it('gives back every text, in memory and from its file past `held` chunks, and leaves no file behind', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ctp-blocklog-'));
    dirs.push(dir);
    const log = new BlockLog(1024, 2, dir);
    // out of order, as connections close
    const order = Array.from({ length: 2000 }, (_, i) => (i * 7919) % 2000);
    for (const i of order) log.put(i, text(i));
    expect(log.spilled).toBeGreaterThan(100);
    expect(readdirSync(dir)).toEqual([]); // unlinked as soon as opened
    for (let i = 0; i < 2000; i++) expect(log.get(i)).toBe(text(i));
    // a text larger than a chunk
    const big = 'y'.repeat(5000);
    log.put(2000, big);
    log.put(2001, 'after');
    for (let i = 0; i < 3; i++) log.put(2002 + i, text(i).repeat(20)); // pushes the big one out to the file
    expect(log.get(2000)).toBe(big);
    expect(log.get(2001)).toBe('after');
    expect(log.get(5)).toBe(text(5));
    log.close();
    expect(readdirSync(dir)).toEqual([]);
  });

  it('keeps everything in memory when no file can be made', () => {
    const log = new BlockLog(1024, 1, '/nonexistent-dir-for-ctprobe');
    for (let i = 0; i < 300; i++) log.put(i, text(i));
    expect(log.spilled).toBe(0);
    for (let i = 0; i < 300; i++) expect(log.get(i)).toBe(text(i));
  });
});
