/**
 * Support bundles: `collect` in a real namespace, then every analysis run from the bundle gives
 * the same answer as the same analysis run live (audit, leaks), and what could not be collected
 * stays unknown when read back.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { CLI, hasTool, isRoot, sh, uniqueName } from './netns.js';

const ready = isRoot && hasTool('iptables-save') && hasTool('conntrack') && hasTool('nft') && hasTool('tcpdump');
const made: string[] = [];
const dirs: string[] = [];
const procs: ChildProcess[] = [];
afterAll(() => {
  procs.forEach((p) => p.kill('SIGKILL'));
  made.forEach((n) => sh(`ip netns del ${n}`, true));
  dirs.forEach((d) => rmSync(d, { recursive: true, force: true }));
});
const ctp = (...args: string[]) => spawnSync('node', [CLI, ...args], { encoding: 'utf8', timeout: 60_000 });
const json = (r: { stdout: string }) => JSON.parse(r.stdout) as Record<string, any>;

describe.skipIf(!ready)('collect → --from', () => {
  it('audit and leaks from the bundle say what they say live; a capture replays with the bundle’s kernel', async () => {
    const n = uniqueName('ctp-t-bndl-');
    sh(`ip netns add ${n} && ip -n ${n} link set lo up`);
    made.push(n);
    // A masquerading host with no INVALID drop (a HIGH finding), and a TCP connection in it.
    sh(`ip netns exec ${n} iptables -t nat -A POSTROUTING -s 192.0.2.0/24 -j MASQUERADE`);
    const srv = spawn('ip', ['netns', 'exec', n, 'nc', '-lk', '127.0.0.1', '7401'], { stdio: 'ignore' });
    procs.push(srv);
    await sleep(300);
    // data every 0.2 s, so the bundle's 1 s capture holds packets to explain
    const cli = spawn('ip', ['netns', 'exec', n, 'sh', '-c', 'i=0; while [ $i -lt 300 ]; do echo x; sleep 0.2; i=$((i+1)); done | nc 127.0.0.1 7401'], { stdio: 'ignore' });
    procs.push(cli);
    await sleep(500);

    const d = mkdtempSync(`${tmpdir()}/ctp-bndl-`);
    dirs.push(d);
    const live = ctp('audit', '--netns', n, '-o', 'json');
    const liveLeaks = ctp('leaks', '--netns', n, '-o', 'json');
    const c = ctp('collect', '--netns', n, '-o', `${d}/b.tar.gz`, '--capture', '2s', '--json');
    expect(c.status, c.stderr).toBe(0);
    expect(json(c)).toMatchObject({ type: 'collect', out: `${d}/b.tar.gz` });

    const off = ctp('audit', '--from', `${d}/b.tar.gz`, '-o', 'json');
    expect(off.status).toBe(live.status);
    expect(live.status).toBe(1);
    const pick = (a: Record<string, any>) => ({ findings: (a.findings as Array<{ id: string; severity: string }>).map((x) => `${x.severity}:${x.id}`), nat: a.firewall.nat, drops: a.firewall.invalidDrops, unknown: a.unknown, sysctls: a.sysctls, kernel: a.kernel });
    expect(pick(json(off))).toEqual(pick(json(live)));
    expect(json(off).target).toMatch(/bundle/);

    const offLeaks = ctp('leaks', '--from', `${d}/b.tar.gz`, '-o', 'json');
    expect(offLeaks.status).toBe(liveLeaks.status);
    const lk = (a: Record<string, any>) => ({ sockets: a.sockets, conntrackEntries: a.conntrackEntries, leaks: a.leaks, halfLeaks: a.halfLeaks });
    expect(lk(json(offLeaks))).toEqual(lk(json(liveLeaks)));
    expect(json(offLeaks).sockets).toBeGreaterThanOrEqual(2);

    const ex = ctp('explain', '--from', `${d}/b.tar.gz`, '-o', 'json');
    expect(ex.status, ex.stderr).toBe(0);
    const header = JSON.parse(ex.stdout.split('\n')[0]!) as { type: string; kernel: string };
    expect(header).toMatchObject({ type: 'header', kernel: json(live).kernel.release });

    // the same packets explained from the bundle and from its capture file: the same verdicts
    sh(`mkdir ${d}/x && tar -xzf ${d}/b.tar.gz -C ${d}/x`);
    const direct = ctp('explain', `${d}/x/capture.pcap`, '--kernel', header.kernel, '-o', 'json');
    const body = (r: { stdout: string }) => r.stdout.split('\n').slice(1).join('\n');
    expect(body(ex)).toBe(body(direct));
    expect(json({ stdout: ex.stdout.trim().split('\n').at(-1)! }).tcp).toBeGreaterThan(0);
    // the table's limit modelled is the one the bundle's host had (nf_conntrack_max, read when collected)
    const manifest = JSON.parse(readFileSync(`${d}/x/manifest.json`, 'utf8')) as { sysctls: Record<string, number | null> };
    expect(manifest.sysctls.nf_conntrack_max).toBeGreaterThan(0);
    expect(json({ stdout: ex.stdout.trim().split('\n').at(-1)! }).conntrackMax).toBe(manifest.sysctls.nf_conntrack_max);
    // the bundle's real `ss -naoep` (netlink, unix… sockets included) gives the same leak answer
    const naoep = ctp('leaks', '--ss-file', `${d}/x/ss-naoep.txt`, '--conntrack-file', `${d}/x/conntrack-L.txt`, '-o', 'json');
    expect(naoep.status, naoep.stderr).toBe(offLeaks.status);
    expect({ leaks: json(naoep).leaks, halfLeaks: json(naoep).halfLeaks }).toEqual({ leaks: json(offLeaks).leaks, halfLeaks: json(offLeaks).halfLeaks });

    const show = ctp('invalid-log', 'show', '--from', `${d}/b.tar.gz`, '-o', 'json');
    expect(show.status, show.stderr).toBe(0);
    for (const l of show.stdout.split('\n').filter(Boolean)) expect(JSON.parse(l)).toMatchObject({ type: 'invalid' });
  });

  it('what could not be collected stays unknown, and a non-bundle is one line, exit 2', () => {
    const n = uniqueName('ctp-t-bndl-');
    sh(`ip netns add ${n}`);
    made.push(n);
    const d = mkdtempSync(`${tmpdir()}/ctp-bndl-`);
    dirs.push(d);
    expect(ctp('collect', '--netns', n, '-o', `${d}/dir`).status).toBe(0);
    // Pretend nft failed when it was collected: audit must not conclude from a partial dump.
    const m = JSON.parse(sh(`cat ${d}/dir/manifest.json`)) as { sources: Record<string, { ok: boolean; why: string | null }> };
    m.sources.nft = { ...m.sources.nft!, ok: false, why: 'nft -j list ruleset failed: Operation not permitted' };
    sh(`cat > ${d}/dir/manifest.json <<'EOF'\n${JSON.stringify(m)}\nEOF`);
    sh(`ip netns exec ${n} true`);
    const a = json(ctp('audit', '--from', `${d}/dir`, '-o', 'json'));
    expect(a.unknown).toContainEqual({ what: 'nft ruleset', why: 'nft -j list ruleset failed: Operation not permitted' });
    expect((a.findings as Array<{ id: string }>).some((f) => /invalid-drop|no-nat/.test(f.id))).toBe(false);
    // and says what it could not see instead of "NAT: none"
    expect(a.firewall?.complete).toBe(false);
    const text = ctp('audit', '--from', `${d}/dir`).stdout;
    expect(text).toMatch(/NAT: none seen \(firewall partly unknown\)/);
    expect(text).toMatch(/unknown: nft ruleset — nft -j list ruleset failed: Operation not permitted/);
    expect(text).toMatch(/Findings that would rest on what is unknown were not raised/);
    const bad = ctp('audit', '--from', '/etc/hostname');
    expect(bad.status).toBe(2);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
    expect(bad.stderr).toMatch(/not a ctprobe bundle/);
  });
});
