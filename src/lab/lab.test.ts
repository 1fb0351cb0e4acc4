import { describe, expect, it } from 'vitest';
import { expectedVerdict, kernelProfile } from './expect.js';
import { buildCells } from './oow.js';
import { buildDockerCells } from './oow-docker.js';
import { clientRunArgs, dockerdPaths, PACKAGE_ROOT } from './docker.js';
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
  it('builds the docker matrix: Docker mitigations judged by the model as what they are (DOCKER-USER is FORWARD)', () => {
    const cells = buildDockerCells([100000], ['none', 'docker-user', 'drop-input'], true, true);
    expect(cells.map((c) => `${c.id}:${c.model}`)).toEqual(['docker/none/+100000:none', 'docker/docker-user/+100000:drop-forward', 'docker/drop-input/+100000:drop-input', 'swarm/none/+100000:none', 'control/+100000:none']);
    expect(cells.find((c) => c.id.startsWith('swarm'))!.via).toBe('swarm');
    expect(cells.at(-1)!.natted).toBe(false);
    expect(new Set(cells.map((c) => c.port)).size).toBe(cells.length);
    const modern = kernelProfile('6.18.0');
    expect(cells.map((c) => expectedVerdict(modern, c.offset, c.model, c.natted).verdict)).toEqual(['reset', 'reset', 'clean', 'reset', 'clean']);
  });
  it('runs the docker client read-only from the host, with paths per run and cell', () => {
    const p = dockerdPaths('a1b2c3', 4);
    expect(p.dir).toMatch(/\/docker\/a1b2c3-4$/);
    expect(p.cgroupParent).toBe('/ctp-lab-a1b2c3-4');
    const args = clientRunArgs('n', ['--network', 'host'], ['client', 'x:1']);
    expect(args).toContain(`type=bind,src=${PACKAGE_ROOT},dst=${PACKAGE_ROOT},readonly`);
    expect(args).toContain('type=bind,src=/usr,dst=/usr,readonly');
    expect(args.slice(-3)).toEqual([`${PACKAGE_ROOT}/dist/cli/main.js`, 'client', 'x:1']);
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
    const cell = { ifaces: [ns.bridge, ns.uplink, ns.vethHost], ports: [9101], addresses: ['198.51.100.2', '198.51.100.1', '192.0.2.2'] };
    expect(cellLogLines(recs, cell)).toHaveLength(1);
    expect(cellLogLines(recs, cell)[0]).toMatch(/^nf_ct_proto_6: 35498 bytes more than expected/);
  });
  it('attributes 5.10 lines (empty IN= and OUT=) by address and port', () => {
    // As 5.10.223 prints them: conntrack passes no interfaces to the logger.
    const line = (src: string, port: number, dst = '198.51.100.1') =>
      parseKmsgRecord(`4,100,200,-;nf_ct_proto_6: SEQ is over the upper bound (over the window of the receiver) IN= OUT= SRC=${src} DST=${dst} LEN=44 TOS=0x00 PREC=0x00 TTL=64 ID=0 DF PROTO=TCP SPT=${port} DPT=40000 SEQ=1 ACK=2 WINDOW=502 RES=0x00 ACK PSH URGP=0 `)!;
    const cell = { ifaces: ['ctu1234501'], ports: [9101], addresses: ['198.51.100.2', '198.51.100.1', '192.0.2.2'] };
    const recs = [line('198.51.100.2', 9101), line('198.51.100.2', 9102), line('203.0.113.9', 9101, '203.0.113.8')];
    expect(cellLogLines(recs, cell)).toEqual([recs[0]!.text.trim()]);
    // A line that does name an interface is judged by the interface, not the address.
    const named = { ...recs[0]!, text: recs[0]!.text.replace('IN= OUT=', 'IN=ctu9999901 OUT=') };
    expect(cellLogLines([named], cell)).toEqual([]);
  });
  it('parses /dev/kmsg records', () => {
    expect(parseKmsgRecord('6,1234,5678,-;hello world\n SUBSYSTEM=x')).toEqual({ seq: 1234, usec: 5678, priority: 6, text: 'hello world' });
    expect(parseKmsgRecord('no semicolon')).toBeNull();
  });
});
