import { describe, expect, it } from 'vitest';
import { expectedVerdict, kernelProfile } from './expect.js';
import { buildCells } from './oow.js';
import { cellLogLines } from './runner.js';
import { cellNamespaces, hostRuleset, LAB_IFACE_RE } from './topology.js';
import { parseKmsgRecord } from '../host/kmsg.js';

describe('kernel profiles', () => {
  it('maps releases to profiles', () => {
    expect(kernelProfile('6.18.44-fc-v669').id).toBe('modern-challenge');
    expect(kernelProfile('6.1.0-13-amd64').id).toBe('modern');
    expect(kernelProfile('6.0.9').id).toBe('overshoot-invalid');
    expect(kernelProfile('5.15.70-generic').id).toBe('overshoot-invalid');
    expect(kernelProfile('5.15.0-91-generic').id).toBe('overshoot-invalid'); // distribution release: newest 5.15 stable assumed
    expect(kernelProfile('5.19.8').id).toBe('overshoot-invalid');
    expect(kernelProfile('5.14.21-150400.24.21-default').id).toBe('old');
    expect(kernelProfile('4.19.0-25-amd64').id).toBe('old');
    expect(kernelProfile('garbage').id).toBe('old');
  });
  it('expects the failure only where this kernel makes a packet INVALID and the fix does not stop it', () => {
    const modern = kernelProfile('6.18.0');
    const old = kernelProfile('5.10.0');
    expect(expectedVerdict(modern, 100000, 'none', true).verdict).toBe('reset');
    expect(expectedVerdict(modern, -100000, 'none', true).verdict).toBe('clean');
    expect(expectedVerdict(old, -100000, 'none', true).verdict).toBe('reset');
    expect(expectedVerdict(old, 100000, 'drop-input', true).verdict).toBe('clean');
    expect(expectedVerdict(old, 100000, 'drop-forward', true).verdict).toBe('reset');
    expect(expectedVerdict(old, 100000, 'be-liberal', true).verdict).toBe('clean');
    expect(expectedVerdict(old, 100000, 'none', false).verdict).toBe('clean');
  });
});

describe('cells and rules', () => {
  it('builds the matrix with unique ports and ids', () => {
    const cells = buildCells([100000, -100000], ['none', 'be-liberal'], true);
    expect(cells.map((c) => c.id)).toEqual(['nat/none/+100000', 'nat/be-liberal/+100000', 'control/+100000', 'nat/none/-100000', 'nat/be-liberal/-100000', 'control/-100000']);
    expect(new Set(cells.map((c) => c.port)).size).toBe(cells.length);
  });
  it('names interfaces within 15 characters and recognisably', () => {
    const ns = cellNamespaces('a1b2c3', 7);
    for (const i of [ns.bridge, ns.uplink, ns.vethHost]) {
      expect(i.length).toBeLessThanOrEqual(15);
      expect(i).toMatch(LAB_IFACE_RE);
    }
    expect(ns.host).toBe('ctp-lab-a1b2c3-7-h');
  });
  it('writes each mitigation as the rule shape it stands for', () => {
    expect(hostRuleset('none', 'b')).not.toMatch(/INVALID/);
    expect(hostRuleset('drop-input', 'b')).toMatch(/-A INPUT .*-j CTPROBE-INVALID\n-A CTPROBE-INVALID -m conntrack --ctstate INVALID .*-j DROP\n-A CTPROBE-INVALID -j RETURN/);
    expect(hostRuleset('drop-forward', 'b')).toMatch(/-A FORWARD -m conntrack --ctstate INVALID .*-j DROP/);
    expect(hostRuleset('none', 'ctb1')).toMatch(/MASQUERADE/);
    expect(hostRuleset('none', 'ctb1')).toMatch(/! -o ctb1 /);
  });
  it('attributes kernel log lines to a cell by interface and port', () => {
    const ns = cellNamespaces('abcdef', 1);
    const other = cellNamespaces('abcdef', 2);
    const line = (iface: string, port: number) =>
      parseKmsgRecord(`4,100,200,-;nf_ct_proto_6: 35498 bytes more than expected IN=${iface} OUT= MAC=aa SRC=198.51.100.2 DST=198.51.100.1 LEN=61 PROTO=TCP SPT=${port} DPT=4000 SEQ=1 ACK=2 WINDOW=502 ACK PSH URGP=0 `)!;
    const recs = [line(ns.uplink, 9101), line(other.uplink, 9101), line(ns.uplink, 9102), { ...line(ns.uplink, 9101), text: 'unrelated IN=x' }];
    const cell = { ifaces: [ns.bridge, ns.uplink, ns.vethHost], ports: [9101] };
    expect(cellLogLines(recs, cell)).toHaveLength(1);
    expect(cellLogLines(recs, cell)[0]).toMatch(/^nf_ct_proto_6: 35498 bytes more than expected/);
  });
  it('parses /dev/kmsg records', () => {
    expect(parseKmsgRecord('6,1234,5678,-;hello world\n SUBSYSTEM=x')).toEqual({ seq: 1234, usec: 5678, priority: 6, text: 'hello world' });
    expect(parseKmsgRecord('no semicolon')).toBeNull();
  });
});
