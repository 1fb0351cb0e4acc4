/** The parsers' one-pass fast paths give exactly what the general parsers give, and the streaming detector what findLeaks gives. */
import { describe, expect, it } from 'vitest';
import { forEachConntrack, forEachConntrackOrigin, parseConntrack, parseConntrackLine, parseConntrackLineFast } from './conntrack.js';
import { endpointKey, findLeaks, LeakDetector } from './leaks.js';
import { splitEndpoint } from './lines.js';
import { forEachSs, parseSs, parseSsLine } from './ss.js';

const CT_LINES = [
  'tcp      6 431999 ESTABLISHED src=192.0.2.1 dst=203.0.113.7 sport=40000 dport=7777 src=127.0.0.1 dst=192.0.2.1 sport=15001 dport=40000 [ASSURED] mark=0 use=1',
  'tcp      6 119 SYN_SENT src=192.0.2.1 dst=203.0.113.7 sport=40000 dport=7777 [UNREPLIED] src=203.0.113.7 dst=192.0.2.1 sport=7777 dport=40000 mark=0 zone=3 use=1 id=77',
  'ipv4     2 tcp      6 54 CLOSE_WAIT src=172.29.73.7 dst=172.21.206.198 sport=44410 dport=7777 packets=3 bytes=180 src=127.0.0.1 dst=172.29.73.7 sport=15001 dport=44410 packets=2 bytes=120 [ASSURED] mark=0 zone=0 use=2',
  'ipv6     10 tcp      6 10 SYN_SENT2 src=2001:db8::1 dst=2001:db8::2 sport=1 dport=2 src=2001:db8::2 dst=2001:db8::1 sport=2 dport=1 mark=0 use=1',
  // not the common shape: the general parser answers
  'tcp      6 10 ESTABLISHED src=192.0.2.1 dst=203.0.113.7 sport=1 dport=2 src=203.0.113.7 dst=192.0.2.1 sport=2 dport=1 [ASSURED] mark=0 secctx=system_u:object_r use=1',
  'udp      17 29 src=192.0.2.1 dst=192.0.2.2 sport=53 dport=53 src=192.0.2.2 dst=192.0.2.1 sport=53 dport=53 mark=0 use=1',
];

describe('conntrack fast path', () => {
  it('parses the common shapes as the general parser does, and errs as it does', () => {
    for (const [i, l] of CT_LINES.entries()) expect(parseConntrackLineFast(l, i)).toEqual(parseConntrackLine(l, i));
    for (const bad of ['tcp 6 10 FOO src=1 dst=2 sport=1 dport=2 src=2 dst=1 sport=2 dport=1', 'tcp 6 x ESTABLISHED', 'tcp 6 10 ESTABLISHED src=1.2.3.4 dst=1 sport=1 dport=2'])
      expect(() => parseConntrackLineFast(bad, 9)).toThrow(/^line 9: /);
  });
  it('streams entries with their line numbers', async () => {
    const got: number[] = [];
    await forEachConntrack(['conntrack v1.4.7 (conntrack-tools): 2 flow entries', '', ...CT_LINES], (e) => got.push(e.line));
    expect(got).toEqual([3, 4, 5, 6, 7, 8]);
  });
});

describe('conntrack origins', () => {
  it('gives each entry’s protocol and original source as the full parse does, and errs as it does', async () => {
    const a: unknown[] = [];
    await forEachConntrackOrigin(CT_LINES, (p, s, port) => a.push([p, s, port]));
    expect(a).toEqual(CT_LINES.map((l) => parseConntrackLine(l)).map((e) => [e.protocol, e.original.src, e.original.sport]));
    await expect(forEachConntrackOrigin(['', 'tcp 6 x'], () => undefined)).rejects.toThrow(/^line 2: /);
  });
});

describe('ss fast path', () => {
  it('splits endpoints as before', () => {
    expect(splitEndpoint('192.0.2.1:80')).toEqual({ addr: '192.0.2.1', port: 80, scope: null });
    expect(splitEndpoint('*:*')).toEqual({ addr: '*', port: null, scope: null });
    expect(splitEndpoint('[::ffff:192.0.2.1]:443')).toEqual({ addr: '192.0.2.1', port: 443, scope: null });
    expect(splitEndpoint('[fe80::1]%eth0:22')).toEqual({ addr: 'fe80::1', port: 22, scope: 'eth0' });
    expect(splitEndpoint('192.0.2.1:8x')).toBeNull();
    expect(splitEndpoint('192.0.2.1:')).toBeNull();
  });
  it('reads one-process users tokens and rejoined ones alike', () => {
    const one = parseSsLine('ESTAB 0 0 127.0.0.1:15001 192.0.2.1:40000 users:(("envoy",pid=51435,fd=101)) uid:1337 ino:7 sk:1 <->');
    expect(one.users).toEqual([{ name: 'envoy', pid: 51435, fd: 101 }]);
    expect(one).toMatchObject({ uid: 1337, ino: 7, sk: '1', shutdown: '<->' });
    const two = parseSsLine('ESTAB 0 0 127.0.0.1:15001 192.0.2.1:40000 users:(("my proxy",pid=1,fd=2),("b",pid=3,fd=4)) ino:8');
    expect(two.users).toEqual([{ name: 'my proxy', pid: 1, fd: 2 }, { name: 'b', pid: 3, fd: 4 }]);
  });
  it('attaches continuation lines to the socket before them, skips headers', async () => {
    const got = await parseSs('State Recv-Q Send-Q Local Address:Port Peer Address:Port Process\nESTAB 0 0 192.0.2.1:1 192.0.2.2:2\n\t cubic wscale:7,7\n\nNetid State Recv-Q\ntcp ESTAB 0 0 192.0.2.1:3 192.0.2.2:4');
    expect(got.map((s) => [s.line, s.localPort, s.info])).toEqual([[2, 1, 'cubic wscale:7,7'], [6, 3, null]]);
    let n = 0;
    await forEachSs(['ESTAB 0 0 192.0.2.1:1 192.0.2.2:2'], () => n++);
    expect(n).toBe(1);
    // brief: only the local endpoint of the states the caller does not need whole; continuation
    // lines of a brief socket are skipped, garbage still fails with its line number
    const whole: number[] = [];
    const brief: Array<[string, number | null]> = [];
    const opts = { brief: { full: (st: string) => st === 'FIN-WAIT-2', onBrief: (l: string, p: number | null) => void brief.push([l, p]) } };
    await forEachSs(['ESTAB 0 0 192.0.2.1:1 192.0.2.2:2', '\t cubic', 'FIN-WAIT-2 0 0 127.0.0.1:15001 192.0.2.2:3 users:(("e",pid=1,fd=2))', 'tcp LISTEN 0 4096 *:22 *:*'], (s) => whole.push(s.line), opts);
    expect(whole).toEqual([3]);
    expect(brief).toEqual([['192.0.2.1', 1], ['*', 22]]);
    await expect(forEachSs(['ESTAB 0 0 192.0.2.1:1 192.0.2.2:2', 'ESTAB 0 0 192.0.2.1:1'], () => undefined, opts)).rejects.toThrow(/^line 2: /);
  });
});

describe('leak detector keys', () => {
  it('one number per IPv4 endpoint, text otherwise; spellings stay distinct', () => {
    expect(endpointKey('192.0.2.1', 80)).toBe((0xc0000201 * 65536) + 80);
    expect(endpointKey('0.0.0.0', 0)).toBe(0);
    expect(endpointKey('2001:db8::1', 80)).toBe('2001:db8::1|80');
    expect(endpointKey('192.0.2.01', 80)).toBe('192.0.2.01|80');
    expect(endpointKey('192.0.2.256', 80)).toBe('192.0.2.256|80');
    expect(endpointKey('1.2.3', 80)).toBe('1.2.3|80');
  });
  it('streamed gives what findLeaks gives', async () => {
    const ss = `tcp   CLOSE-WAIT  0  0  172.29.73.7:38072    172.21.206.198:7777         users:(("envoy",pid=51435,fd=135)) uid:201507 ino:2020910283 sk:a8d07 -->
tcp   FIN-WAIT-2  0  0     127.0.0.1:15001  172.29.73.7:44410        users:(("envoy",pid=51435,fd=121)) uid:201507 ino:2020910282 sk:a8d09 <--
tcp   FIN-WAIT-2  0  0     127.0.0.1:15001  [2001:db8::7]:44411        users:(("envoy",pid=51435,fd=122)) ino:2020910284 <--`;
    const sockets = await parseSs(ss);
    const d = new LeakDetector({ proxyPort: 15001 });
    for (const s of sockets) d.addSocket(s);
    expect(d.result()).toEqual(findLeaks(sockets, [], { proxyPort: 15001 }));
    expect(d.result().leaks).toHaveLength(1);
    expect(d.result().halfLeaks).toHaveLength(1);
    // sockets first, then conntrack checked against the candidates only
    const e = new LeakDetector({ proxyPort: 15001 });
    for (const s of sockets) e.addSocket(s);
    e.socketsDone();
    for (const c of await parseConntrack(CT_TRACKING_LEAK)) e.addConntrack(c);
    const r = e.result();
    expect([...r.leaks, ...r.halfLeaks].map((l) => l.app)).toEqual(['[2001:db8::7]:44411']); // the tracked one is cleared
    expect(e.conntrackEntries).toBe(2);
    expect(() => e.addSocket(sockets[0]!)).toThrow();
  });
});

const CT_TRACKING_LEAK = `tcp  6 54 CLOSE_WAIT src=172.29.73.7 dst=172.21.206.198 sport=44410 dport=7777 src=127.0.0.1 dst=172.29.73.7 sport=15001 dport=44410 [ASSURED] mark=0 use=1
tcp  6 54 CLOSE_WAIT src=172.29.73.7 dst=172.21.206.198 sport=38072 dport=7777 src=172.21.206.198 dst=172.29.73.7 sport=7777 dport=38072 [ASSURED] mark=0 use=1`;
