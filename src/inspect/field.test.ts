/**
 * Inputs from the field: real `ss`, conntrack and kernel-log output (test/fixtures/, see its
 * README for where each file comes from) parsed as a user brings it.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseConntrack, parseConntrackStats } from './conntrack.js';
import { parseKernelLogLine } from './kernlog.js';
import { findLeaks } from './leaks.js';
import { parseNstat } from './nstat.js';
import { parseSs, type SsStats } from './ss.js';

const fixture = (name: string) => readFileSync(new URL(`../../test/fixtures/${name}`, import.meta.url), 'utf8');

describe('ss from the field', () => {
  it('ss -naoep (iproute2 6.1): keeps TCP/UDP, skips and counts netlink, unix, packet, raw and mptcp', async () => {
    const stats: SsStats = { skipped: {} };
    const s = await parseSs(fixture('ss-naoep-6.1.txt'), { stats });
    expect(stats.skipped).toEqual({ nl: 11, p_raw: 1, p_dgr: 1, u_str: 3, u_seq: 2, u_dgr: 1, raw: 2, mptcp: 1 });
    expect(s.map((x) => x.netid)).toEqual(['udp', 'udp', 'tcp', 'tcp', 'tcp', 'tcp', 'tcp', 'tcp', 'tcp']);
    expect(s.find((x) => x.state === 'FIN-WAIT-2')).toMatchObject({ local: '192.0.2.1', localPort: 7777, peerPort: 41162, shutdown: '<--', users: [{ name: 'python3', fd: 5 }], cgroup: 'unreachable:1' });
    expect(s.find((x) => x.netid === 'udp' && x.state === 'ESTAB')).toMatchObject({ local: '2001:db8::1', localPort: 53, peer: '2001:db8::1', peerPort: 5353 });
    // the p_raw socket's continuation line is not glued to a TCP socket
    expect(s.every((x) => !x.info?.includes('cpy_thresh'))).toBe(true);
  });
  it('-e -i -m continuation lines belong to their socket', async () => {
    const s = await parseSs(fixture('ss-naoepeim-6.1.txt'));
    const fw2 = s.find((x) => x.state === 'FIN-WAIT-2')!;
    expect(fw2.info).toMatch(/skmem:\(r\d+,rb131072/);
    expect(fw2.info).toMatch(/wscale:10,10/);
    const t = await parseSs(fixture('ss-tanoepi-6.1.txt'));
    expect(t.map((x) => x.state)).toEqual(['LISTEN', 'LISTEN', 'FIN-WAIT-2', 'CLOSE-WAIT', 'LISTEN', 'ESTAB', 'ESTAB']);
    expect(t[0]!.info).toMatch(/tcp-ulp-mptcp/);
  });
  it('the old iproute2 layout (3.16): unbracketed IPv6, IPv4-mapped, users without pid=/fd=', async () => {
    const s = await parseSs(fixture('ss-tanoepi-3.16.txt'));
    expect(s.map((x) => `${x.local}|${x.localPort}|${x.peer}|${x.peerPort}`)).toEqual(['*|22|*|null', '10.0.2.15|22|10.0.2.2|51518', '10.0.2.15|8080|10.0.2.2|51600', '2001:db8:0:1::15|15001|2001:db8:0:1::7|44410', '::|22|::|null']);
    expect(s[1]!.users).toEqual([
      { name: 'sshd', pid: 1042, fd: 3 },
      { name: 'sshd', pid: 1040, fd: 3 },
    ]);
    expect(s[1]!.info).toMatch(/^cubic wscale:6,7/);
    expect(s[3]).toMatchObject({ state: 'FIN-WAIT-2', uid: 1337, users: [{ name: 'envoy', pid: 51435, fd: 121 }] });
  });
  it('ss without -n: says to use -n', async () => {
    await expect(parseSs(fixture('ss-ta-no-n.txt'))).rejects.toThrow(/^line 2: ss printed a service name instead of a port \('192\.0\.2\.1:bbs'\): collect it with 'ss -n'/);
  });
});

describe('conntrack from the field', () => {
  it('conntrack -L and /proc/net/nf_conntrack of the same table (6.18, acct on, zone 5, mark 42) agree, IPv6 included', async () => {
    const cli = await parseConntrack(fixture('conntrack-L-6.18.txt'));
    const proc = await parseConntrack(fixture('proc-nf_conntrack-6.18.txt'));
    expect(cli).toHaveLength(4);
    expect(proc).toHaveLength(4);
    const key = (e: (typeof cli)[0]) => `${e.original.src}:${e.original.sport}>${e.original.dst}:${e.original.dport}|${e.reply.src}|${e.state}|${e.original.packets}/${e.original.bytes}|${e.reply.packets}/${e.reply.bytes}|${e.mark}|${e.unreplied}`;
    expect(proc.map(key).sort()).toEqual(cli.map(key).sort());
    expect(proc.find((e) => e.l3 === 'ipv6')!.original.src).toBe('2001:db8:1::2');
    expect(cli.find((e) => e.original.dport === 7001)).toMatchObject({ unreplied: true, mark: 42, zone: 5, state: 'SYN_SENT', original: { packets: 1, bytes: 60 } });
  });
  it('[OFFLOAD] and [HW_OFFLOAD] without a timeout, secctx, labels, per-direction zones, -o timestamp', async () => {
    const e = await parseConntrack(fixture('conntrack-offload.txt'));
    expect(e.map((x) => [x.protocol, x.timeout, x.offload, x.state])).toEqual([
      ['tcp', null, 'sw', 'ESTABLISHED'],
      ['udp', null, 'hw', null],
      ['tcp', null, 'sw', 'ESTABLISHED'],
      ['tcp', null, 'sw', null],
      ['tcp', 431999, null, 'ESTABLISHED'],
      ['tcp', 86398, null, 'ESTABLISHED'],
      ['tcp', 119, null, 'SYN_SENT'],
    ]);
    expect(e[2]!.reply).toMatchObject({ src: '2001:db8:2::2', dst: '2001:db8:1::2', packets: 2, bytes: 152 });
    expect(e[4]).toMatchObject({ mark: 42, zone: 7, secctx: 'system_u:object_r:unlabeled_t:s0', original: { packets: 10, bytes: 1200 } });
    expect(e[5]).toMatchObject({ labels: 'eth-in,trusted', zone: null });
    expect(e[6]).toMatchObject({ unreplied: true, use: 1 });
  });
  it('an entry without a timeout that is not offloaded is an error naming the line', async () => {
    await expect(parseConntrack('tcp 6 ESTABLISHED src=192.0.2.2 dst=198.51.100.2 sport=1 dport=2 src=198.51.100.2 dst=192.0.2.2 sport=2 dport=1 [ASSURED] use=1')).rejects.toThrow(/^line 1: conntrack entry without a timeout/);
  });
  it('no false IPv6 leak: an expanded /proc entry tracks the compressed ss endpoint', async () => {
    const ss = `tcp FIN-WAIT-2 0 0 [2001:db8::5]:15001 [2001:db8::7]:44410 users:(("envoy",pid=9,fd=121)) ino:11 sk:1 <--
tcp CLOSE-WAIT 0 0 [2001:db8::5]:38072 [2001:db8:ffff::9]:7777 users:(("envoy",pid=9,fd=135)) ino:12 sk:2 -->`;
    const ct = 'ipv6     10 tcp      6 54 CLOSE_WAIT src=2001:0db8:0000:0000:0000:0000:0000:0007 dst=2001:0db8:ffff:0000:0000:0000:0000:0009 sport=44410 dport=7777 src=2001:0db8:0000:0000:0000:0000:0000:0005 dst=2001:0db8:0000:0000:0000:0000:0000:0007 sport=15001 dport=44410 [ASSURED] mark=0 zone=0 use=2';
    expect(findLeaks(await parseSs(ss), await parseConntrack(ct)).leaks).toEqual([]);
    expect(findLeaks(await parseSs(ss), []).leaks).toHaveLength(1);
  });
  it('conntrack -S and nstat -asz of a real namespace', async () => {
    const s = await parseConntrackStats(fixture('conntrack-S-6.18.txt'));
    expect(s.perCpu.length).toBeGreaterThanOrEqual(1);
    expect(Object.keys(s.totals)).toEqual(expect.arrayContaining(['found', 'invalid', 'clash_resolve', 'chaintoolong']));
    const n = await parseNstat(fixture('nstat-6.18.txt'));
    expect(n.size).toBeGreaterThan(100);
    expect(n.get('TcpExtTCPLostRetransmit')).toMatchObject({ value: 0 });
  });
});

describe('kernel log from the field', () => {
  it('the same conntrack line in every form: dmesg, dmesg -T/-x, /dev/kmsg, journalctl, syslog', () => {
    const lines = fixture('kernel-log-forms.txt').trim().split('\n');
    expect(lines).toHaveLength(11);
    for (const l of lines) {
      const e = parseKernelLogLine(l)!;
      expect(e, l).toMatchObject({ source: 'nf_ct_proto_6', reason: 'ACK is over upper bound 694987304 (ACKed data not seen yet)', in: 'ctu00d9ab00', src: '198.51.100.2', sport: 9100, seq: 2581744506, ack: 694987304, flags: ['ACK', 'FIN'] });
      expect(e.time, l).not.toBeNull();
    }
    expect(lines.map((l) => parseKernelLogLine(l)!.host)).toEqual([null, null, null, null, 'node-3', 'node-3', 'node-3', 'node-3', 'node-3', 'node-3', 'node-3']);
    expect(parseKernelLogLine(lines[4]!)!.time).toBe('Dec 05 14:10:09');
  });
  it('LOG prefixes (with spaces, glued to IN=), IPv6, 4.x–5.10 nf_ct_tcp texts, lines without IN=', () => {
    const ev = fixture('kernel-log-prefixes.txt').trim().split('\n').map(parseKernelLogLine);
    expect(ev.map((e) => e && [e.source, e.reason])).toEqual([
      ['ISTIO_OUTBOUND_INVALID', null],
      ['INVALID DROP', null],
      ['ctinv', null],
      ['ct invalid', null],
      ['nf_ct_tcp', 'ACK is over the upper bound (ACKed data not seen yet)'],
      ['nf_ct_tcp', 'SEQ is over the upper bound (over the window of the receiver)'],
      ['nf_ct_tcp', 'invalid packet ignored in state ESTABLISHED'],
      ['nf_ct_tcp', 'invalid state'],
      ['nf_ct_proto_6', 'SEQ is under the lower bound (already ACKed data retransmitted)'],
      ['nf_ct_tcp', 'bad TCP checksum'],
      null,
      null,
    ]);
    expect(ev[0]).toMatchObject({ host: 'node-7', time: 'Feb  4 16:10:09', out: 'eth0', sport: 44410 });
    expect(ev[3]).toMatchObject({ src: '2001:db8:2::2', dst: '2001:db8:1::2', sport: 7000, flags: ['ACK', 'PSH'] });
    expect(ev[8]).toMatchObject({ in: null, src: null, sport: null, time: '88.523456' });
  });
});
