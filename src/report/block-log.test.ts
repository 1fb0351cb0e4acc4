import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { PcapWriter } from '../capture/writer.js';
import { explainCapture } from '../conntrack/explain.js';
import { profileFromFlag } from '../conntrack/profile.js';
import { synthFlow } from '../conntrack/synth.js';
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
    expect(log.buffersMade).toBeLessThanOrEqual(3); // a spilled chunk's buffer is the next one's
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

describe("explain's flow rows in a BlockLog", () => {
  it('gives the same summary when the rows go to its file as when they stay in memory', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ctp-flowrows-'));
    dirs.push(dir);
    // 600 connections, 20 at a time, 200 s apart: each group's entries expire (TIME_WAIT) before the
    // next, so rows are final and written while the replay runs; every 7th is stuck ESTABLISHED
    // after its INVALID (final only at the end)
    const packets = Array.from({ length: 600 }, (_, i) =>
      synthFlow({ client: `192.0.2.${1 + (i % 200)}`, server: '198.51.100.2', clientPort: 20000 + i, serverPort: 9000, clientIsn: i * 7919, serverIsn: 4294960000 + i, segments: 3, ...(i % 7 === 0 ? { forgedOffset: 100000 } : {}), start: 200 * Math.floor(i / 20) }),
    )
      .flat()
      .sort((a, b) => a.ts - b.ts);
    const path = join(dir, 'flows.pcap');
    writeFileSync(path, PcapWriter.toBuffer(packets, { linkType: 101 }));
    const profile = profileFromFlag('6.18');
    const inMemory = await explainCapture(path, { profile });
    const rows = new BlockLog(512, 1, dir);
    const spilled = await explainCapture(path, { profile, flowRows: rows, flowRowsKept: 100 });
    expect(rows.spilled).toBeGreaterThan(10);
    expect(readdirSync(dir)).toEqual(['flows.pcap']);
    expect(spilled.flows.length).toBe(600);
    expect(spilled.flows.toArray()).toEqual(inMemory.flows.toArray());
    expect(spilled.flows.at(-1)).toEqual(inMemory.flows.at(-1));
    expect(inMemory.flows.toArray().filter((f) => f.finalState === 'ESTABLISHED' && f.firstInvalid !== null)).toHaveLength(86);
    rows.close();
  });
});
