import { describe, expect, it } from 'vitest';
import { endpointText } from './flows.js';
import { labText } from './matrix.js';
import { visibleLength, wrapJoined, wrapText } from './text.js';
import type { LabReport } from '../lab/runner.js';

describe('text for people', () => {
  it('wraps to the width, cutting a word longer than a line', () => {
    const lines = wrapText(`short words then ${'x'.repeat(200)} and more`, 80, '  ');
    for (const l of lines) expect(l.length).toBeLessThanOrEqual(80);
    expect(lines.join('').replace(/\s/g, '')).toBe(`shortwordsthen${'x'.repeat(200)}andmore`);
  });

  it('wraps as a word-by-word greedy fill does, on random texts (the slicing fast path)', () => {
    // the plain algorithm, word by word: what wrapText must keep giving
    const reference = (text: string, width: number, indent: string): string[] => {
      const room = Math.max(20, width - indent.length);
      const out: string[] = [];
      let line = '';
      for (let word of text.split(/ +/)) {
        while (visibleLength(word) > room) {
          if (line) out.push(indent + line);
          out.push(indent + word.slice(0, room));
          word = word.slice(room);
          line = '';
        }
        if (line && line.length + 1 + word.length > room) {
          out.push(indent + line);
          line = word;
        } else line = line ? `${line} ${word}` : word;
      }
      if (line || !out.length) out.push(indent + line);
      return out;
    };
    let seed = 7;
    const rand = (n: number) => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) % n);
    for (let k = 0; k < 3000; k++) {
      const words = Array.from({ length: rand(30) }, () => 'abcdefghij→'.repeat(1 + rand(12)).slice(0, 1 + rand(90)));
      const text = words.join(rand(10) ? ' ' : '  ') + (rand(20) ? '' : ' ');
      const indent = ' '.repeat(rand(8));
      const width = 20 + rand(70);
      expect(wrapText(text, width, indent), JSON.stringify([text, width, indent])).toEqual(reference(text, width, indent));
      expect(wrapJoined(text, width, indent)).toBe(reference(text, width, indent).join('\n'));
    }
  });

  it('writes IPv6 endpoints in brackets', () => {
    expect(endpointText({ addr: 'fd99::1', port: 52904 })).toBe('[fd99::1]:52904');
    expect(endpointText({ addr: '192.0.2.2', port: 80 })).toBe('192.0.2.2:80');
  });

  it('the lab text fits 80 columns, kernel lines included', () => {
    const log = 'nf_ct_proto_6: ACK is over upper bound 2788988483 (ACKed data not seen yet) IN=ctue1 OUT= SRC=198.51.100.2 DST=198.51.100.1';
    const cell = { id: 'nat/none/+100000', verdict: 'reset', expected: 'reset', match: true, why: 'the ACK of the client FIN is INVALID (window poisoned by the forged segment); not de-NATed, it reaches the host', invalidLog: [log], invalidCount: 2, ms: 3000, namespaces: [], ifaces: [], ports: [], addresses: [], details: { offset: 100000, mitigation: 'none', natted: true } };
    const r: LabReport = { kernel: '6.18.44', kernelVersion: '#1 SMP', logBackend: 'nf_log_syslog', logModulesLoaded: [], logWhy: null, profile: 'modern-challenge', profileLabel: '6.2+', profileSummary: 'x', scenario: 'oow-rst', engine: { name: 'netns', version: '6.18.44' }, run: 'abc', kernelLog: 'collected', cells: [cell], ms: 3000, kept: null };
    const text = labText(r);
    for (const l of text.split('\n')) expect(l.length, l).toBeLessThanOrEqual(80);
    expect(text.replace(/\n\s+/g, ' ')).toContain('kernel: nf_ct_proto_6: ACK is over upper bound 2788988483 (ACKed data not seen yet)');
  });
});
