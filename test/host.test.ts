/**
 * audit / fix in real namespaces: each rule shape is recognised, the JSON is stable, fix
 * round-trips byte for byte on both backends, be_liberal is restored, --pod finds a namespace by
 * UTS hostname. Never touches the root namespace.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { CLI, hasTool, isRoot, sh, uniqueName } from './netns.js';
import { serviceSpec } from '../src/lab/k8s.js';
import { kubeProxyIptables, kubeProxyNft } from '../src/lab/kubeproxy.js';

const ready = isRoot && hasTool('iptables-save') && hasTool('nft');
const made: string[] = [];
const procs: ChildProcess[] = [];
afterAll(() => {
  procs.forEach((p) => p.kill('SIGKILL'));
  made.forEach((n) => sh(`ip netns del ${n}`, true));
});
function ns(): string {
  const n = uniqueName('ctp-t-host-');
  sh(`ip netns add ${n}`);
  made.push(n);
  return n;
}
const ctp = (...args: string[]) => spawnSync('node', [CLI, ...args], { encoding: 'utf8' });
const auditJson = (n: string) => JSON.parse(ctp('audit', '--netns', n, '-o', 'json').stdout) as { findings: Array<{ id: string; severity: string }>; firewall: { invalidDrops: Array<{ chain: string; reachedFrom: string[] }>; platforms: Array<{ name: string }> } };

describe.skipIf(!ready)('audit', () => {
  it('with no NAT, a missing INVALID drop is not a finding: nothing is mis-delivered', () => {
    const n = ns();
    sh(`ip netns exec ${n} iptables -A INPUT -s 203.0.113.0/24 -j ACCEPT`);
    const r = ctp('audit', '--netns', n, '-o', 'json');
    expect(r.status).toBe(0);
    const a = JSON.parse(r.stdout) as { type: string; findings: Array<{ id: string; severity: string }>; firewall: { nat: string[] } };
    expect(a.type).toBe('audit');
    expect(a.firewall.nat).toEqual([]);
    expect(a.findings.find((f) => f.id === 'no-nat')).toMatchObject({ severity: 'info' });
    expect(a.findings.some((f) => f.severity === 'high' || f.severity === 'medium')).toBe(false);
  });

  it('flags a missing INVALID drop on a masquerading host as high, and its JSON is stable', () => {
    const n = ns();
    sh(`ip netns exec ${n} iptables -A INPUT -s 203.0.113.0/24 -j ACCEPT`);
    sh(`ip netns exec ${n} iptables -t nat -A POSTROUTING -s 192.0.2.0/24 -j MASQUERADE`);
    const r = ctp('audit', '--netns', n, '-o', 'json');
    expect(r.status).toBe(1);
    const a = JSON.parse(r.stdout) as { findings: Array<{ id: string; severity: string }> };
    expect(a.findings[0]).toMatchObject({ id: 'no-invalid-drop', severity: 'high' });
    expect(ctp('audit', '--netns', n, '-o', 'json').stdout).toBe(r.stdout);
  });

  it('recognises kube-proxy, Docker and Istio rule shapes and where the drops sit', () => {
    const n = ns();
    const rules = [
      '*filter', ':INPUT ACCEPT [0:0]', ':FORWARD ACCEPT [0:0]', ':OUTPUT ACCEPT [0:0]', ':KUBE-FORWARD - [0:0]', ':DOCKER-INPUT - [0:0]', ':DOCKER - [0:0]',
      '-A INPUT -j DOCKER-INPUT', '-A FORWARD -j KUBE-FORWARD',
      '-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP',
      '-A DOCKER-INPUT -m conntrack --ctstate INVALID -j DROP', '-A DOCKER-INPUT -j RETURN', 'COMMIT',
      '*nat', ':PREROUTING ACCEPT [0:0]', ':INPUT ACCEPT [0:0]', ':OUTPUT ACCEPT [0:0]', ':POSTROUTING ACCEPT [0:0]', ':ISTIO_OUTPUT - [0:0]', ':ISTIO_REDIRECT - [0:0]',
      '-A OUTPUT -p tcp -j ISTIO_OUTPUT', '-A ISTIO_OUTPUT -j ISTIO_REDIRECT', '-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001', 'COMMIT',
      '*mangle', ':PREROUTING ACCEPT [0:0]', '-A PREROUTING -m conntrack --ctstate INVALID -j DROP', 'COMMIT', '',
    ].join('\n');
    spawnSync('ip', ['netns', 'exec', n, 'iptables-restore'], { input: rules });
    const a = auditJson(n);
    expect(a.firewall.platforms.map((p) => p.name).sort()).toEqual(['docker', 'istio', 'kube-proxy']);
    const drops = Object.fromEntries(a.firewall.invalidDrops.map((d) => [d.chain, d.reachedFrom]));
    expect(drops['KUBE-FORWARD']).toEqual(['FORWARD']);
    expect(drops['DOCKER-INPUT']).toEqual(['INPUT']);
    expect(drops['PREROUTING']).toEqual(['PREROUTING']);
    expect(a.findings.some((f) => f.severity === 'high')).toBe(false);
  });

  it('says a FORWARD-only drop does not cover replies to the host', () => {
    const n = ns();
    sh(`ip netns exec ${n} iptables -A FORWARD -m conntrack --ctstate INVALID -j DROP`);
    sh(`ip netns exec ${n} iptables -t nat -A POSTROUTING -s 192.0.2.0/24 -j MASQUERADE`);
    expect(auditJson(n).findings[0]).toMatchObject({ id: 'invalid-drop-forward-only', severity: 'medium' });
  });

  it('sees an nft ct state invalid drop', () => {
    const n = ns();
    spawnSync('ip', ['netns', 'exec', n, 'nft', '-f', '-'], { input: 'table inet filter {\n chain input {\n type filter hook input priority 0;\n ct state invalid drop\n }\n}\n' });
    const a = auditJson(n);
    expect(a.firewall.invalidDrops.some((d) => d.reachedFrom.includes('INPUT'))).toBe(true);
    expect(a.findings.some((f) => f.id === 'no-invalid-drop')).toBe(false);
  });
});

describe.skipIf(!ready)('fix', () => {
  for (const backend of ['iptables', 'nft'] as const) {
    it(`drop-invalid on ${backend}: idempotent, dry-run changes nothing, remove is byte-identical`, () => {
      const n = ns();
      sh(`ip netns exec ${n} iptables -A INPUT -s 198.51.100.0/24 -j ACCEPT`);
      spawnSync('ip', ['netns', 'exec', n, 'nft', '-f', '-'], { input: 'table ip mine {\n chain c {\n type filter hook output priority 0;\n counter\n }\n}\n' });
      const state = () => sh(`ip netns exec ${n} iptables-save | grep -v '^#'`) + '\n--\n' + sh(`ip netns exec ${n} nft list ruleset`);
      const before = state();
      ctp('fix', 'apply', '--method', 'drop-invalid', '--backend', backend, '--netns', n, '--dry-run');
      expect(state()).toBe(before);
      expect(ctp('fix', 'apply', '--method', 'drop-invalid', '--backend', backend, '--netns', n).status).toBe(0);
      const once = state();
      expect(once).not.toBe(before);
      ctp('fix', 'apply', '--method', 'drop-invalid', '--backend', backend, '--netns', n);
      expect(state()).toBe(once);
      expect(auditJson(n).findings.some((f) => f.id === 'no-invalid-drop')).toBe(false);
      expect(JSON.parse(ctp('fix', 'status', '--netns', n, '-o', 'json').stdout).dropInvalid[backend]).toEqual(['INPUT']);
      expect(ctp('fix', 'remove', '--method', 'drop-invalid', '--netns', n).status).toBe(0);
      expect(state()).toBe(before);
    });
  }

  it('be-liberal: sets 1 and restores the previous value', () => {
    const n = ns();
    sh(`ip netns exec ${n} iptables -t nat -A POSTROUTING -j ACCEPT`); // loads conntrack in the namespace
    const v = () => sh(`ip netns exec ${n} cat /proc/sys/net/netfilter/nf_conntrack_tcp_be_liberal`).trim();
    expect(v()).toBe('0');
    ctp('fix', 'apply', '--method', 'be-liberal', '--netns', n);
    expect(v()).toBe('1');
    expect(auditJson(n).findings.some((f) => f.id === 'be-liberal-on')).toBe(true);
    ctp('fix', 'remove', '--method', 'be-liberal', '--netns', n);
    expect(v()).toBe('0');
    expect(ctp('fix', 'remove', '--method', 'be-liberal', '--netns', n).stdout).toMatch(/nothing to restore/);
  });

  it('gives one-line errors for bad targets and flags', () => {
    const r = ctp('fix', 'apply', '--method', 'drop-invalid', '--netns', 'ctp-t-host-nosuch');
    expect(r.status).toBe(2);
    expect(r.stderr.trim()).toBe("ctprobe: no network namespace named 'ctp-t-host-nosuch' ('ip netns list' shows them)");
    expect(ctp('fix', 'apply', '--method', 'nope').stderr).toMatch(/^ctprobe: --method: 'nope' is not one of drop-invalid, be-liberal/);
    expect(ctp('audit', '--netns', 'a', '--pid', '1').stderr).toMatch(/at most one of --netns, --pid, --pod/);
  });
});

describe.skipIf(!ready || !hasTool('unshare'))('--pod', () => {
  it('finds a namespace by the UTS hostname of a process in it; no match and ambiguity are clear errors', async () => {
    const n = ns();
    const pod = uniqueName('ctp-pod-');
    sh(`ip netns exec ${n} iptables -A INPUT -m conntrack --ctstate INVALID -j DROP`);
    const p = spawn('ip', ['netns', 'exec', n, 'unshare', '--uts', 'sh', '-c', `hostname ${pod}; exec sleep 30`], { stdio: 'ignore' });
    procs.push(p);
    await sleep(500);
    const a = JSON.parse(ctp('audit', '--pod', pod, '-o', 'json').stdout) as { target: string; firewall: { invalidDrops: unknown[] } };
    expect(a.target).toMatch(new RegExp(`^pod ${pod} \\(pid \\d+\\)$`));
    expect(a.firewall.invalidDrops).toHaveLength(1); // the rule of that namespace, not the host's
    const none = ctp('audit', '--pod', 'ctp-no-such-pod');
    expect(none.status).toBe(2);
    expect(none.stderr).toMatch(/^ctprobe: no process has the hostname 'ctp-no-such-pod'/);
    const n2 = ns();
    const p2 = spawn('ip', ['netns', 'exec', n2, 'unshare', '--uts', 'sh', '-c', `hostname ${pod}; exec sleep 30`], { stdio: 'ignore' });
    procs.push(p2);
    await sleep(500);
    expect(ctp('audit', '--pod', pod).stderr).toMatch(/is used in 2 network namespaces/);
  });
});

describe.skipIf(!ready)('invalid-log on/off/status', () => {
  it('sysctl and LOG-rule methods turn on, report, and turn off leaving everything as it was', () => {
    const n = ns();
    sh(`ip netns exec ${n} iptables -A OUTPUT -m conntrack --ctstate NEW -j ACCEPT`);
    const state = () => sh(`ip netns exec ${n} iptables-save | grep -v '^#'`) + sh(`ip netns exec ${n} cat /proc/sys/net/netfilter/nf_conntrack_log_invalid`);
    const before = state();
    expect(ctp('invalid-log', 'on', '--netns', n).stdout).toMatch(/set nf_conntrack_log_invalid=6 \(was 0\)/);
    expect(ctp('invalid-log', 'on', '--netns', n, '--method', 'log-rule', '--prefix', 'MY_INVALID').stdout).toMatch(/prefix "MY_INVALID: "/);
    const st = JSON.parse(ctp('invalid-log', 'status', '--netns', n, '-o', 'json').stdout) as Record<string, unknown>;
    expect(st).toMatchObject({ logInvalid: 6, logRule: 'MY_INVALID: ', setByCtprobe: true });
    if (st.logAllNetns === 0) expect(st.effective).toBe(false); // lines from a namespace need nf_log_all_netns
    expect(sh(`ip netns exec ${n} iptables-save -t mangle`)).toMatch(/--ctstate INVALID .*-j LOG .*--log-prefix "MY_INVALID: "/);
    ctp('invalid-log', 'off', '--netns', n);
    expect(state()).toBe(before);
    expect(ctp('invalid-log', 'off', '--netns', n).stdout).toMatch(/nothing of ctprobe/);
  });
});

describe.skipIf(!ready)('audit recognises kube-proxy as the k8s-service lab writes it', () => {
  type KP = { mode: string; family: string; invalidDrop: { chain: string; nfacct: boolean } | null; skippedForBeLiberal: boolean; versions: string };
  type Prot = { applies: boolean; protected: boolean | null; by: string[] };
  type Audit = { findings: Array<{ id: string; severity: string }>; firewall: { kubeProxy: KP[] }; protection: { kubernetes74839: Prot; docker1090: Prot } };
  const spec4 = serviceSpec(4, 9100);
  function node(load: (n: string) => void, beLiberal: 0 | 1): { n: string; a: Audit; raw: string } {
    const n = ns();
    load(n);
    sh(`ip netns exec ${n} sh -c 'echo ${beLiberal} > /proc/sys/net/netfilter/nf_conntrack_tcp_be_liberal'`);
    const r = ctp('audit', '--netns', n, '-o', 'json');
    return { n, a: JSON.parse(r.stdout) as Audit, raw: r.stdout };
  }
  const ipt = (v: 'v1.13' | 'v1.15' | 'v1.29', o: { beLiberal: boolean; inputDrop?: boolean }, family: 4 | 6 = 4) => (n: string) =>
    spawnSync('ip', ['netns', 'exec', n, family === 4 ? 'iptables-restore' : 'ip6tables-restore'], { input: kubeProxyIptables(family === 4 ? spec4 : serviceSpec(6, 9100), v, o) });
  const ids = (a: Audit) => Object.fromEntries(a.findings.map((f) => [f.id, f.severity]));

  it('v1.13 (before PR 74840): unprotected against 74839 and 1090, both high; the JSON is stable', () => {
    const { n, a, raw } = node(ipt('v1.13', { beLiberal: false }), 0);
    expect(a.firewall.kubeProxy[0]).toMatchObject({ mode: 'iptables', family: 'ip', invalidDrop: null, skippedForBeLiberal: false });
    expect(a.firewall.kubeProxy[0]!.versions).toMatch(/before v1\.15/);
    expect(a.protection.kubernetes74839).toEqual({ applies: true, protected: false, by: [] });
    expect(a.protection.docker1090).toMatchObject({ applies: true, protected: false });
    expect(ids(a)).toMatchObject({ 'k8s-74839-unprotected': 'high', 'k8s-1090-unprotected': 'high' });
    expect(ctp('audit', '--netns', n, '-o', 'json').stdout).toBe(raw);
  });
  it('v1.15 (PR 74840): protected against 74839 by KUBE-FORWARD; 1090 medium (peers’ FORWARD drops cover remote endpoints only)', () => {
    const { a } = node(ipt('v1.15', { beLiberal: false }), 0);
    expect(a.firewall.kubeProxy[0]!.invalidDrop).toMatchObject({ chain: 'KUBE-FORWARD', nfacct: false });
    expect(a.protection.kubernetes74839).toEqual({ applies: true, protected: true, by: ['iptables filter/KUBE-FORWARD rule 1'] });
    expect(ids(a)).toMatchObject({ 'k8s-74839-protected': 'info', 'k8s-1090-unprotected': 'medium' });
  });
  it('v1.29+ with be_liberal on: the drop is skipped, be_liberal protects both; off again, a high finding', () => {
    const on = node(ipt('v1.29', { beLiberal: true }), 1).a;
    expect(on.firewall.kubeProxy[0]).toMatchObject({ invalidDrop: null, skippedForBeLiberal: true });
    expect(on.protection.kubernetes74839.by).toEqual(['nf_conntrack_tcp_be_liberal=1']);
    expect(on.protection.docker1090.protected).toBe(true);
    expect(on.findings.some((f) => f.severity === 'high' || f.severity === 'medium')).toBe(false);
    const off = node(ipt('v1.29', { beLiberal: true }), 0).a;
    expect(ids(off)).toMatchObject({ 'kube-proxy-drop-skipped-iptables-ip': 'high', 'k8s-74839-unprotected': 'high' });
  });
  it('nftables mode: the drop in chain forward is reached from the forward hook', () => {
    const { a } = node((n) => spawnSync('ip', ['netns', 'exec', n, 'nft', '-f', '-'], { input: kubeProxyNft(spec4, { beLiberal: false }) }), 0);
    expect(a.firewall.kubeProxy).toEqual([expect.objectContaining({ mode: 'nftables', family: 'ip', invalidDrop: expect.objectContaining({ chain: 'forward' }) })]);
    expect(a.protection.kubernetes74839).toEqual({ applies: true, protected: true, by: ['nft ip kube-proxy/forward rule 1'] });
  });
  it('an INPUT-only drop protects against 1090, not 74839', () => {
    const { a } = node(ipt('v1.13', { beLiberal: false, inputDrop: true }), 0);
    expect(a.protection.kubernetes74839.protected).toBe(false);
    expect(a.protection.docker1090).toEqual({ applies: true, protected: true, by: ['iptables filter/CTPROBE-INVALID rule 1'] });
  });
  it('IPv6 kube-proxy is read from ip6tables-save', () => {
    const { a } = node(ipt('v1.15', { beLiberal: false }, 6), 0);
    expect(a.firewall.kubeProxy).toEqual([expect.objectContaining({ mode: 'iptables', family: 'ip6' })]);
    expect(a.protection.kubernetes74839.by).toEqual(['ip6tables filter/KUBE-FORWARD rule 1']);
  });
});
