/**
 * The pictures in a real browser: `explain --html` of a NATed exchange with an INVALID reply and
 * the NAT host's RST, rendered by headless Chromium; the screenshot must show a drawing with the
 * INVALID packet in red (a blank page, checked too, shows nothing).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { PcapWriter } from '../src/capture/writer.js';
import { synthFlow } from '../src/conntrack/synth.js';
import { parseIP } from '../src/packet/address.js';
import { encodeIPv4 } from '../src/packet/ip.js';
import { encodeTcp, TCP_RST } from '../src/packet/tcp.js';
import { chromium, pngStats, screenshot } from './browser.js';
import { CLI } from './netns.js';

if (!chromium) console.warn('test/pictures: skipped — headless Chromium is not installed (apt-get install chromium; .ci/run installs it)');

const dir = mkdtempSync(`${tmpdir()}/ctp-pictures-`);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function natCapture(): string {
  const packets = synthFlow({ client: '192.0.2.2', server: '198.51.100.2', replyTo: '198.51.100.1', clientPort: 40000, serverPort: 9000, clientIsn: 1000, serverIsn: 7000, segments: 2, forgedOffset: 100000, start: 1000 });
  const nat = parseIP('198.51.100.1');
  const server = parseIP('198.51.100.2');
  const rst = encodeIPv4({ src: nat, dst: server, protocol: 6, id: 0 }, encodeTcp({ srcPort: 40000, dstPort: 9000, seq: 1002, ack: 0, flags: TCP_RST, window: 0 }, nat, server));
  packets.splice(packets.length - 1, 0, { ts: packets.at(-2)!.ts + 0.0001, data: rst });
  const path = `${dir}/nat.pcap`;
  writeFileSync(path, PcapWriter.toBuffer(packets, { linkType: 101 }));
  return path;
}

describe.skipIf(!chromium)('pictures in headless Chromium', () => {
  it('explain --html renders a diagram with the INVALID packet in red; a blank page does not pass', () => {
    const page = `${dir}/nat.html`;
    const r = spawnSync('node', [CLI, 'explain', natCapture(), '--kernel', '6.18', '--html', page], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(1); // an INVALID packet is a finding
    expect(r.stderr).toMatch(/wrote .*nat\.html: 1 sequence diagram/);
    expect(readFileSync(page, 'utf8')).toMatch(/ACK is over upper bound \d+ \(ACKed data not seen yet\)/);

    const shot = pngStats(screenshot(page, `${dir}/nat.png`));
    expect(shot.width).toBe(1200);
    expect(shot.colours).toBeGreaterThanOrEqual(3);
    expect(shot.nonWhite).toBeGreaterThan(0.01);
    expect(shot.red).toBeGreaterThan(0.0005); // the INVALID arrow, its reason and the RST

    writeFileSync(`${dir}/blank.html`, '<!DOCTYPE html><html><body></body></html>');
    const blank = pngStats(screenshot(`${dir}/blank.html`, `${dir}/blank.png`));
    expect(blank.nonWhite).toBeLessThan(0.001);
    expect(blank.red).toBe(0);
  });
});
