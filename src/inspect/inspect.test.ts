import { afterAll, describe, expect, it } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { InputError } from '../errors.js';
import { parseConntrack, parseConntrackLine, parseConntrackStats } from './conntrack.js';
import { parseKernelLogLine } from './kernlog.js';
import { findLeaks } from './leaks.js';
import { parseNstat } from './nstat.js';
import { parseSs, parseSsLine } from './ss.js';

// The seed's own output (Istio 1.16, kernel 5.14).
const SEED_SS = `tcp   CLOSE-WAIT  0  0  172.29.73.7:38072    172.21.206.198:7777         users:(("envoy",pid=51435,fd=135)) uid:201507 ino:2020910283 sk:a8d07 -->
tcp   CLOSE-WAIT  0  0  172.29.73.7:44410    172.21.206.198:7777         users:(("nc",pid=129742,fd=3)) ino:2020879009 sk:a8d08 -->
tcp   FIN-WAIT-2  0  0     127.0.0.1:15001  172.29.73.7:44410        users:(("envoy",pid=51435,fd=121)) uid:201507 ino:2020910282 sk:a8d09 <--`;
const SEED_LEAK = `tcp   CLOSE-WAIT  0  0  172.29.73.7:38072    172.21.206.198:7777         users:(("envoy",pid=51435,fd=135)) uid:201507 ino:2020910283 sk:a8d07 -->
tcp   FIN-WAIT-2  0  0     127.0.0.1:15001  172.29.73.7:44410        users:(("envoy",pid=51435,fd=121)) uid:201507 ino:2020910282 sk:a8d09 <--`;
const SEED_CT = `tcp  6 54 CLOSE_WAIT src=172.29.73.7 dst=172.21.206.198 sport=44410 dport=7777 src=127.0.0.1 dst=172.29.73.7 sport=15001 dport=44410 [ASSURED] mark=0 use=1
tcp  6 54 CLOSE_WAIT src=172.29.73.7 dst=172.21.206.198 sport=38072 dport=7777 src=172.21.206.198 dst=172.29.73.7 sport=7777 dport=38072 [ASSURED] mark=0 use=1`;

describe('ss', () => {
  it('reads the seed’s lines: states, endpoints, users, inode, shutdown marks', async () => {
    const s = await parseSs(SEED_SS);
    expect(s).toHaveLength(3);
    expect(s[2]).toMatchObject({ netid: 'tcp', state: 'FIN-WAIT-2', local: '127.0.0.1', localPort: 15001, peer: '172.29.73.7', peerPort: 44410, uid: 201507, ino: 2020910282, sk: 'a8d09', shutdown: '<--', users: [{ name: 'envoy', pid: 51435, fd: 121 }] });
    const syn = parseSsLine('tcp   SYN-SENT    0  1  172.29.73.7:44410    172.21.206.198:7777         users:(("nc",pid=144426,fd=3)) timer:(on,1.684ms,2) ino:2024378629 sk:aa4e2 <->');
    expect(syn.timer).toEqual({ kind: 'on', time: '1.684ms', retrans: 2 });
    const la = parseSsLine('tcp   LAST-ACK    0  1  172.29.73.7:44410    172.21.206.198:7777         timer:(on,2.056ms,5) ino:0 sk:a8d08 ---');
    expect(la).toMatchObject({ state: 'LAST-ACK', users: [], shutdown: '---', ino: 0 });
  });
  it('reads IPv6, wildcards, scopes and -i continuation lines', async () => {
    const s = await parseSs(`State  Recv-Q Send-Q Local Address:Port Peer Address:Port Process
LISTEN 0      4096   [::]:22  [::]:*  users:(("sshd",pid=1,fd=3)) ino:1 sk:1 cgroup:/system.slice <->
ESTAB  0      0      [2001:db8::1]:9000 [2001:db8::2]:40000 ino:2 sk:2 <->
\t cubic wscale:7,7 rto:204 rtt:0.1/0.05 mss:1448
ESTAB  0      0      [fe80::1]%eth0:22 [fe80::2]%eth0:5000 ino:3 sk:3 <->
LISTEN 0 128 *:80 *:*`);
    expect(s.map((x) => [x.local, x.localPort, x.peer, x.peerPort])).toEqual([
      ['::', 22, '::', null],
      ['2001:db8::1', 9000, '2001:db8::2', 40000],
      ['fe80::1', 22, 'fe80::2', 5000],
      ['*', 80, '*', null],
    ]);
    expect(s[1]!.info).toMatch(/^cubic wscale:7,7/);
    expect(s[0]!.cgroup).toBe('/system.slice');
  });
  it('names the line it cannot read', async () => {
    await expect(parseSs('State Recv-Q\nESTAB 0 0 1.2.3.4:5 6.7.8.9:10\nhello world')).rejects.toThrow(/^line 3: not an ss socket line/);
    expect(() => parseSsLine('ESTAB 0 0 nonsense', 7)).toThrow(InputError);
  });
});

describe('conntrack', () => {
  it('reads -L, -o extended, -o id and /proc/net/nf_conntrack lines', async () => {
    const e = await parseConntrack(SEED_CT + '\nconntrack v1.4.7 (conntrack-tools): 2 flow entries have been shown.\n');
    expect(e).toHaveLength(2);
    expect(e[0]).toMatchObject({ protocol: 'tcp', protoNum: 6, timeout: 54, state: 'CLOSE_WAIT', assured: true, mark: 0, use: 1, original: { src: '172.29.73.7', sport: 44410, dport: 7777 }, reply: { src: '127.0.0.1', sport: 15001 } });
    const ext = parseConntrackLine('ipv4     2 tcp      6 117 SYN_SENT src=192.0.2.2 dst=198.51.100.2 sport=40000 dport=9000 packets=1 bytes=60 [UNREPLIED] src=198.51.100.2 dst=198.51.100.1 sport=9000 dport=40000 packets=0 bytes=0 mark=0 zone=3 use=2 id=3735928559');
    expect(ext).toMatchObject({ l3: 'ipv4', state: 'SYN_SENT', unreplied: true, zone: 3, id: 3735928559, original: { packets: 1, bytes: 60 }, reply: { dst: '198.51.100.1' } });
    const udp = parseConntrackLine('udp      17 29 src=192.0.2.2 dst=192.0.2.53 sport=5353 dport=53 src=192.0.2.53 dst=192.0.2.2 sport=53 dport=5353 mark=0 use=1');
    expect(udp.state).toBeNull();
    await expect(parseConntrack('tcp 6 x')).rejects.toThrow(/^line 1: /);
  });
  it('reads -S per CPU and totals', async () => {
    const s = await parseConntrackStats('cpu=0   \tfound=0 invalid=12 insert=0 insert_failed=0 drop=0 early_drop=0 error=3 search_restart=0\ncpu=1 found=1 invalid=4 insert=0 insert_failed=0 drop=0 early_drop=0 error=0 search_restart=2');
    expect(s.perCpu).toHaveLength(2);
    expect(s.totals).toMatchObject({ invalid: 16, error: 3, found: 1, search_restart: 2 });
  });
});

describe('nstat', () => {
  it('reads counters, tolerating the seed’s glyphs', async () => {
    const n = await parseNstat('#kernel\nTcpRetransSegs ￪        165172        0.0\nTcpExtTCPLostRetransmit ￪   826      0.0\nIpInReceives 5 0.0');
    expect(n.get('TcpRetransSegs')).toEqual({ name: 'TcpRetransSegs', value: 165172, rate: 0 });
    expect(n.get('TcpExtTCPLostRetransmit')!.value).toBe(826);
    await expect(parseNstat('#kernel\n???')).rejects.toThrow(/^line 2: not an nstat counter line/);
  });
});

describe('kernel log lines', () => {
  it('reads conntrack’s lines (real, from a 6.18 lab run)', () => {
    const e = parseKernelLogLine('nf_ct_proto_6: ACK is over upper bound 694987304 (ACKed data not seen yet) IN=ctu00d9ab00 OUT= MAC=1e:2a:5e:b0:75:6f:0e:6a:11:2f:52:2f:08:00 SRC=198.51.100.2 DST=198.51.100.1 LEN=52 TOS=0x00 PREC=0x00 TTL=64 ID=41262 DF PROTO=TCP SPT=9100 DPT=55982 SEQ=2581744506 ACK=694987304 WINDOW=64 RES=0x00 ACK FIN URGP=0 OPT (0101080ABF78B41977B55429) ')!;
    expect(e).toMatchObject({ source: 'nf_ct_proto_6', reason: 'ACK is over upper bound 694987304 (ACKed data not seen yet)', in: 'ctu00d9ab00', out: null, src: '198.51.100.2', dst: '198.51.100.1', sport: 9100, dport: 55982, seq: 2581744506, ack: 694987304, window: 64, ttl: 64, id: 41262, flags: ['ACK', 'FIN'] });
    const k = parseKernelLogLine('4,5871,2345678901,-;nf_ct_proto_6: invalid new IN= OUT=ctu00 SRC=198.51.100.1 DST=198.51.100.2 LEN=40 PROTO=TCP SPT=55982 DPT=9100 SEQ=694987304 ACK=0 WINDOW=0 RES=0x00 RST URGP=0 ')!;
    expect(k).toMatchObject({ reason: 'invalid new', in: null, out: 'ctu00', flags: ['RST'], time: '2345.678901' });
  });
  it('reads LOG-target lines with a prefix, with dmesg timestamps', () => {
    const e = parseKernelLogLine('[Sat Feb  4 16:10:09 2023] ISTIO_OUTBOUND_INVALID: IN= OUT=eth0 SRC=172.29.73.7 DST=172.21.206.198 LEN=52 TOS=0x00 PREC=0x00 TTL=64 ID=64473 DF PROTO=TCP SPT=44410 DPT=7777 WINDOW=31 RES=0x00 ACK FIN URGP=0 ')!;
    expect(e).toMatchObject({ source: 'ISTIO_OUTBOUND_INVALID', reason: null, out: 'eth0', sport: 44410, dport: 7777, flags: ['ACK', 'FIN'], time: 'Sat Feb  4 16:10:09 2023' });
    expect(parseKernelLogLine('[ 12.345] eth0: link up')).toBeNull();
  });
});

describe('fuzz: parsers only throw InputError', () => {
  it('survives garbage and truncations', async () => {
    const lines = [...SEED_SS.split('\n'), ...SEED_CT.split('\n')];
    for (let i = 0; i < 3000; i++) {
      const base = lines[i % lines.length]!;
      const g = i % 3 === 0 ? randomBytes(i % 120).toString('latin1') : base.slice(0, (i * 7) % base.length) + (i % 5 === 0 ? randomBytes(4).toString('latin1') : '');
      for (const f of [() => parseSsLine(g, i), () => parseConntrackLine(g, i)]) {
        try {
          f();
        } catch (e) {
          expect(e).toBeInstanceOf(InputError);
        }
      }
      expect(() => parseKernelLogLine(g)).not.toThrow();
    }
  });
});

describe('leak detector', () => {
  it('finds exactly the seed’s leaked pair', async () => {
    const { leaks, halfLeaks } = findLeaks(await parseSs(SEED_LEAK), [], { proxyPort: 15001 });
    expect(halfLeaks).toEqual([]);
    expect(leaks).toHaveLength(1);
    expect(leaks[0]).toMatchObject({ app: '172.29.73.7:44410', proxy: '127.0.0.1:15001', upstream: '172.21.206.198:7777', process: { name: 'envoy', pid: 51435, fd: 121 }, portReuseRisk: true });
    expect(findLeaks(await parseSs(SEED_LEAK), [], { ephemeral: [1024, 2048] }).leaks[0]!.portReuseRisk).toBe(false);
  });
  it('is not fooled by a tracked connection, open sockets or another process', async () => {
    expect(findLeaks(await parseSs(SEED_LEAK), await parseConntrack(SEED_CT)).leaks).toEqual([]); // entry still there: the FIN will pass
    const estab = SEED_LEAK.replace('FIN-WAIT-2', 'ESTAB');
    expect(findLeaks(await parseSs(estab), []).leaks).toEqual([]);
    const other = SEED_LEAK.replace('"envoy",pid=51435,fd=135', '"other",pid=7,fd=1');
    const r = findLeaks(await parseSs(other), []);
    expect(r.leaks).toEqual([]);
    expect(r.halfLeaks).toHaveLength(1);
  });
});

const root = process.geteuid?.() === 0;
const hasConntrack = spawnSync('sh', ['-c', 'command -v conntrack || test -x /usr/sbin/conntrack']).status === 0;
describe.skipIf(!root)('real output from a namespace', () => {
  const ns = `ctp-t-insp-${randomBytes(3).toString('hex')}`;
  afterAll(() => spawnSync('ip', ['netns', 'del', ns]));
  it('parses ss -tanoepi, ss -naoep and conntrack -L of live connections', async () => {
    spawnSync('ip', ['netns', 'add', ns]);
    spawnSync('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    spawnSync('ip', ['netns', 'exec', ns, 'iptables', '-A', 'OUTPUT', '-m', 'conntrack', '--ctstate', 'NEW,ESTABLISHED', '-j', 'ACCEPT']); // a conntrack match turns tracking on here
    const srv = spawn('ip', ['netns', 'exec', ns, 'node', '-e', "require('net').createServer(s=>s.on('data',()=>{})).listen(7777,'127.0.0.1',()=>{require('net').connect(7777,'127.0.0.1');require('net').connect(7777,'127.0.0.1')})"], { stdio: 'ignore' });
    try {
      await sleep(700);
      const tanoepi = spawnSync('ip', ['netns', 'exec', ns, 'ss', '-tanoepi'], { encoding: 'utf8' }).stdout;
      const s = await parseSs(tanoepi);
      expect(s.filter((x) => x.state === 'ESTAB')).toHaveLength(4);
      expect(s.find((x) => x.state === 'LISTEN')).toMatchObject({ localPort: 7777, users: [{ name: 'node' }] });
      expect(s.filter((x) => x.info !== null).length).toBeGreaterThan(0);
      const naoep = spawnSync('ip', ['netns', 'exec', ns, 'ss', '-naoep'], { encoding: 'utf8' }).stdout;
      expect((await parseSs(naoep, { lenient: true })).filter((x) => x.netid === 'tcp' && x.state === 'ESTAB')).toHaveLength(4);
      if (hasConntrack) {
        const ct = await parseConntrack(spawnSync('ip', ['netns', 'exec', ns, 'conntrack', '-L'], { encoding: 'utf8' }).stdout);
        expect(ct.filter((e) => e.protocol === 'tcp' && e.original.dport === 7777 && e.state === 'ESTABLISHED')).toHaveLength(2);
        const st = await parseConntrackStats(spawnSync('ip', ['netns', 'exec', ns, 'conntrack', '-S'], { encoding: 'utf8' }).stdout);
        expect(st.perCpu.length).toBeGreaterThan(0);
      }
      expect(findLeaks(s, [], { proxyPort: 7777 }).leaks).toEqual([]);
    } finally {
      srv.kill('SIGKILL');
    }
  });
});
