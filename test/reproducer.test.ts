/**
 * ctprobe server + client across two real namespaces joined by a veth (no NAT): the forged
 * segment reaches the client namespace at seq = server next + 100000 with a valid checksum,
 * and the verdict is clean.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { setTimeout as sleep } from 'node:timers/promises';
import { CLI, collect, hasTool, isRoot, NetnsPair, sh } from './netns.js';

const ready = isRoot && hasTool('tcpdump') && hasTool('ip');

describe.skipIf(!ready)('reproducer across two namespaces', () => {
  const pair = ready ? new NetnsPair('ctp-t-repro') : null;
  afterAll(() => pair?.cleanup());

  it('forges at next+100000, the client host accepts the checksum, verdict clean', async () => {
    const p = pair!;
    const td = p.spawnIn(p.b, 'tcpdump', ['-i', p.vethB, '-n', '-S', '-l', '-U', 'tcp port 9400']);
    const tdOut = collect(td);
    await sleep(600);
    const srv = p.spawnIn(p.a, 'node', [CLI, 'server', '--port', '9400', '--offset', '100000', '--hold', '5s', '--linger', '500ms', '--connections', '2', '-o', 'json']);
    const srvOut = collect(srv);
    await sleep(700);
    const cli = p.spawnIn(p.b, 'node', [CLI, 'client', `${p.addrA}:9400`, '--count', '2', '--timeout', '500ms', '--interval', '100ms', '-o', 'json']);
    const cliRes = await collect(cli);
    const srvRes = await srvOut;
    await sleep(200);
    td.kill('SIGINT');
    const dump = (await tdOut).out;

    const events = srvRes.out.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    const closed = events.filter((e) => e.type === 'closed');
    expect(events.filter((e) => e.type === 'established')).toHaveLength(2);
    expect(closed.map((e) => e.verdict)).toEqual(['clean', 'clean']);
    expect(events.some((e) => e.type === 'reset')).toBe(false);
    expect(srvRes.code).toBe(0);
    const summary = events.find((e) => e.type === 'server-summary')!;
    expect(summary).toMatchObject({ connections: 2, injected: 2, reset: 0, clean: 2 });

    // Every injected seq must appear in the client namespace as a P. segment from the server.
    const injected = events.filter((e) => e.type === 'injected');
    for (const inj of injected) expect(dump).toMatch(new RegExp(`${p.addrA}\\.9400 > .*Flags \\[P\\.\\], seq ${inj.seq as number}:`));
    // And that seq is the server's SYN/ACK ISN + 1 + 100000 (mod 2^32).
    const synack = [...dump.matchAll(/Flags \[S\.\], seq (\d+),/g)].map((m) => Number(m[1]));
    expect(synack).toHaveLength(2);
    expect(injected.map((e) => e.seq).sort()).toEqual(synack.map((s) => (s + 1 + 100000) % 2 ** 32).sort());
    // The client's stack checked the forged segment's TCP checksum and found it right.
    const csum = sh(`ip netns exec ${p.b} nstat -az TcpInCsumErrors`);
    expect(csum).toMatch(/TcpInCsumErrors\s+0\b/);
    // The client answered the out-of-window segment with a duplicate ACK (it was not dropped as corrupt).
    expect(cliRes.out).toMatch(/"outcome":"ok"/);
  });

  it('bounds its connection table and counts evictions', async () => {
    const p = pair!;
    const srv = p.spawnIn(p.a, 'node', [CLI, 'server', '--port', '9402', '--table-size', '1', '--hold', '2s', '--linger', '200ms', '-o', 'json']);
    const srvOut = collect(srv);
    await sleep(700);
    await collect(p.spawnIn(p.b, 'node', [CLI, 'client', `${p.addrA}:9402`, '--count', '3', '--timeout', '200ms', '--interval', '50ms', '-o', 'json']));
    await sleep(300);
    srv.kill('SIGTERM');
    const events = (await srvOut).out.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    const summary = events.find((e) => e.type === 'server-summary')!;
    expect(summary.connections).toBe(3);
    expect(summary.evicted).toBeGreaterThanOrEqual(2);
  });

  it('refuses to run without privileges, with one clear line', async () => {
    const r = sh(`setpriv --reuid=65534 --regid=65534 --clear-groups node ${CLI} server --port 9401 2>&1; echo "exit=$?"`, true);
    expect(r).toMatch(/^ctprobe: raw sockets need root or CAP_NET_RAW/m);
    expect(r).toMatch(/exit=2/);
    expect(r).not.toMatch(/at .*\.js:\d+/);
  });
});

describe.skipIf(!ready)('reproducer over IPv6', () => {
  const pair = ready ? new NetnsPair('ctp-t-repro6', '2001:db8::1', '2001:db8::2') : null;
  afterAll(() => pair?.cleanup());

  it('forges at next+100000 into an IPv6 connection with a valid checksum', async () => {
    const p = pair!;
    const td = p.spawnIn(p.b, 'tcpdump', ['-i', p.vethB, '-n', '-S', '-l', '-U', 'tcp port 9410']);
    const tdOut = collect(td);
    await sleep(600);
    const srv = p.spawnIn(p.a, 'node', [CLI, 'server', '--port', '9410', '--bind', '2001:db8::1', '--hold', '3s', '--linger', '300ms', '--connections', '1', '-o', 'json']);
    const srvOut = collect(srv);
    await sleep(700);
    await collect(p.spawnIn(p.b, 'node', [CLI, 'client', '[2001:db8::1]:9410', '--count', '1', '--timeout', '400ms', '-o', 'json']));
    const events = (await srvOut).out.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    await sleep(200);
    td.kill('SIGINT');
    const dump = (await tdOut).out;
    const inj = events.find((e) => e.type === 'injected')!;
    const isn = Number(/Flags \[S\.\], seq (\d+),/.exec(dump)?.[1]);
    expect(inj.seq).toBe((isn + 1 + 100000) % 2 ** 32);
    expect(dump).toMatch(new RegExp(`2001:db8::1\\.9410 > .*Flags \\[P\\.\\], seq ${inj.seq as number}:`));
    expect(events.find((e) => e.type === 'closed')?.verdict).toBe('clean');
    expect(sh(`ip netns exec ${p.b} nstat -az TcpInCsumErrors`)).toMatch(/TcpInCsumErrors\s+0\b/);
  });
});
