import { describe, expect, it } from 'vitest';
import { attributeLine, reasonLabel, type NetnsView } from './attribute.js';
import { parseKernelLogLine } from './kernlog.js';
import { parseProcConntrackStat, parseProcTcp, PROC_TCP_STATE } from './procnet.js';

const line = (s: string) => parseKernelLogLine(s)!;

// A node as Kubernetes lays it out: every pod has an eth0; the host has one veth per pod.
const views: NetnsView[] = [
  { netns: 'host', pod: null, ifaces: [
    { name: 'lo', ifindex: 1, link: null, linkNetnsid: null, addrs: ['127.0.0.1/8'] },
    { name: 'eth0', ifindex: 2, link: null, linkNetnsid: null, addrs: ['198.51.100.10/24'] },
    { name: 'cni0', ifindex: 3, link: null, linkNetnsid: null, addrs: ['192.0.2.1/24'] },
    { name: 'veth1a', ifindex: 7, link: 2, linkNetnsid: 0, addrs: [] },
    { name: 'veth2b', ifindex: 8, link: 2, linkNetnsid: 1, addrs: [] },
  ] },
  { netns: '4026532001', pod: 'web-0', ifaces: [
    { name: 'lo', ifindex: 1, link: null, linkNetnsid: null, addrs: ['127.0.0.1/8'] },
    { name: 'eth0', ifindex: 2, link: 7, linkNetnsid: 0, addrs: ['192.0.2.11/24'] },
  ] },
  { netns: '4026532002', pod: 'api-0', ifaces: [
    { name: 'lo', ifindex: 1, link: null, linkNetnsid: null, addrs: ['127.0.0.1/8'] },
    { name: 'eth0', ifindex: 2, link: 8, linkNetnsid: 0, addrs: ['192.0.2.12/24'] },
  ] },
];

describe('attributeLine', () => {
  it('a pod line on eth0 (a name every pod has) goes to the pod holding the address', () => {
    const a = attributeLine(line('nf_ct_proto_6: invalid new IN= OUT=eth0 SRC=192.0.2.12 DST=203.0.113.2 LEN=52 PROTO=TCP SPT=4000 DPT=7777 ACK FIN'), views);
    expect(a).toMatchObject({ netns: '4026532002', pod: 'api-0', by: 'address' });
  });
  it("the host's eth0 is told from the pods' by its address", () => {
    const a = attributeLine(line('nf_ct_proto_6: ACK is over upper bound 1 (ACKed data not seen yet) IN=eth0 OUT= SRC=203.0.113.2 DST=198.51.100.10 PROTO=TCP SPT=9 DPT=9 ACK'), views);
    expect(a).toMatchObject({ netns: 'host', pod: null, by: 'address' });
  });
  it('a unique interface name decides alone; a host-side veth names the pod at its other end', () => {
    const a = attributeLine(line('nf_ct_proto_6: invalid new IN=veth1a OUT= SRC=192.0.2.11 DST=203.0.113.9 PROTO=TCP SPT=1 DPT=2 RST'), views);
    expect(a).toMatchObject({ netns: 'host', pod: 'web-0', peerNetns: '4026532001', by: 'interface' });
  });
  it('a forwarded packet matches by subnet; a bridge port (PHYSIN) narrows to its namespace', () => {
    const fwd = line('nf_ct_proto_6: ignored ACK under lower bound 5 (possible overly delayed) IN=cni0 OUT= PHYSIN=veth2b SRC=192.0.2.12 DST=203.0.113.2 PROTO=TCP SPT=1 DPT=2 ACK');
    expect(attributeLine(fwd, views)).toMatchObject({ netns: 'host', pod: 'api-0' });
  });
  it('lo lines are ambiguous until sockets decide; unknown interfaces are unattributed', () => {
    const lo = attributeLine(line('nf_ct_proto_6: invalid new IN=lo OUT= SRC=127.0.0.1 DST=127.0.0.1 PROTO=TCP SPT=1 DPT=2 RST'), views);
    expect(lo.by).toBe('ambiguous');
    expect(lo.candidates).toHaveLength(3);
    expect(attributeLine(line('nf_ct_proto_6: invalid new IN=nope0 OUT= SRC=1.2.3.4 DST=5.6.7.8 PROTO=TCP SPT=1 DPT=2 RST'), views)).toMatchObject({ netns: null, by: 'none' });
  });
  it('watching one namespace, a name match must be confirmed by an address (the host has a lo and an eth0 too)', () => {
    const pod = [views[1]!];
    const other = line('nf_ct_proto_6: invalid new IN=eth0 OUT= SRC=203.0.113.2 DST=198.51.100.10 PROTO=TCP SPT=1 DPT=2 RST');
    expect(attributeLine(other, pod, true).netns).toBeNull();
    expect(attributeLine(other, pod, false).netns).toBe('4026532001');
    // any namespace's lo: only its sockets can tell
    expect(attributeLine(line('nf_ct_proto_6: invalid new IN=lo OUT= SRC=127.0.0.1 DST=127.0.0.1 PROTO=TCP SPT=1 DPT=2 RST'), pod, true)).toMatchObject({ netns: null, by: 'ambiguous' });
    const mine = line('nf_ct_proto_6: invalid new IN=eth0 OUT= SRC=203.0.113.2 DST=192.0.2.11 PROTO=TCP SPT=1 DPT=2 RST');
    expect(attributeLine(mine, pod, true)).toMatchObject({ netns: '4026532001', by: 'address' });
  });
});

describe('reasonLabel', () => {
  it('turns per-packet numbers into N and keeps small enums', () => {
    expect(reasonLabel('ACK is over upper bound 4024384935 (ACKed data not seen yet)')).toBe('ACK is over upper bound N (ACKed data not seen yet)');
    expect(reasonLabel('35498 bytes more than expected')).toBe('N bytes more than expected');
    expect(reasonLabel('packet (index 3) in dir 1 ignored, state SYN_SENT')).toBe('packet (index 3) in dir 1 ignored, state SYN_SENT');
    expect(reasonLabel(null)).toBe('');
  });
});

describe('procnet', () => {
  it('sums /proc/net/stat/nf_conntrack over CPUs (hex), entries once', () => {
    const text = `entries  clashres found new invalid ignore delete chainlength insert insert_failed drop early_drop icmp_error  expect_new expect_create expect_delete search_restart
00000005  00000000 00000000 00000000 0000000a 00000000 00000000 00000000 00000000 00000001 00000000 00000002 00000000  00000000 00000000 00000000 00000000
00000005  00000000 00000000 00000000 00000010 00000000 00000000 00000000 00000000 00000000 00000003 00000000 00000000  00000000 00000000 00000000 00000000
`;
    expect(parseProcConntrackStat(text)).toMatchObject({ entries: 5, invalid: 26, insert_failed: 1, drop: 3, early_drop: 2 });
    expect(() => parseProcConntrackStat('hello\n1 2\n')).toThrow(/not \/proc\/net\/stat/);
  });
  it('reads /proc/net/tcp and tcp6 sockets (little-endian words)', () => {
    const t4 = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:3A99 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1337        0 169065 1
   3: 0100007F:3A99 017100CB:8350 05 00000000:00000000 00:00000000 00000000  1337        0 169083 1`;
    const s = parseProcTcp(t4, (st, port) => st === PROC_TCP_STATE.FIN_WAIT2 && port === 15001);
    expect(s).toEqual([{ local: '127.0.0.1', localPort: 15001, remote: '203.0.113.1', remotePort: 33616, state: 5, inode: 169083 }]);
    const t6 = `  sl  local_address                         remote_address                        st
   0: 00000000000000000000000000000000:3A99 00000000000000000000000000000000:0000 0A 0
   1: B80D0120000000000000000001000000:1F90 0000000000000000FFFF00000100007F:D431 01 0`;
    const s6 = parseProcTcp(t6);
    expect(s6[1]).toMatchObject({ local: '2001:db8::1', localPort: 8080, remote: '127.0.0.1', remotePort: 54321, state: 1 });
  });
});
