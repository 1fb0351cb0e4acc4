import { describe, expect, it } from 'vitest';
import { expectedK8s, kernelProfile } from './expect.js';
import { buildK8sCells, K8S_MITIGATIONS, serviceSpec } from './k8s.js';
import { kubeProxyIptables, kubeProxyNft } from './kubeproxy.js';

const spec = serviceSpec(4, 9100);
const invalidDrop = /^-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP$/m;

describe('kube-proxy rules per version', () => {
  it('v1.13 has no INVALID drop, v1.15 has it first in KUBE-FORWARD (PR 74840)', () => {
    expect(kubeProxyIptables(spec, 'v1.13', { beLiberal: false })).not.toMatch(/INVALID/);
    const v115 = kubeProxyIptables(spec, 'v1.15', { beLiberal: false });
    const forward = v115.split('\n').filter((l) => l.startsWith('-A KUBE-FORWARD'));
    expect(forward[0]).toMatch(invalidDrop);
    expect(v115).toMatch(/-A KUBE-NODEPORTS -p tcp -m comment --comment "default\/boom-server:" -m tcp --dport 30080 -j KUBE-MARK-MASQ/);
    expect(v115).toMatch(/-A KUBE-SEP-\w{16} -p tcp .*-j DNAT --to-destination 192\.0\.2\.130:9100/);
  });
  it('v1.29+ skips the drop when be_liberal is on (PR 120412) and uses KUBE-EXT chains', () => {
    expect(kubeProxyIptables(spec, 'v1.29', { beLiberal: false })).toMatch(invalidDrop);
    const liberal = kubeProxyIptables(spec, 'v1.29', { beLiberal: true });
    expect(liberal).not.toMatch(/INVALID/);
    expect(liberal).toMatch(/-A KUBE-NODEPORTS .*--dport 30080 -j KUBE-EXT-\w{16}/);
    expect(liberal).toMatch(/MASQUERADE --random-fully/);
  });
  it('names chains with kube-proxy’s hash, the same on every node', () => {
    const a = kubeProxyIptables(spec, 'v1.29', { beLiberal: false });
    const svc = /:(KUBE-SVC-[A-Z2-7]{16}) /.exec(a)?.[1];
    expect(svc).toBeDefined();
    expect(kubeProxyIptables(serviceSpec(4, 9100), 'v1.13', { beLiberal: false })).toContain(svc!);
    expect(kubeProxyIptables(serviceSpec(4, 9101), 'v1.13', { beLiberal: false })).toContain(svc!); // endpoint port changes KUBE-SEP only
  });
  it('nftables mode drops ct state invalid in chain forward unless be_liberal; IPv6 uses ip6 and dotted chain names', () => {
    expect(kubeProxyNft(spec, { beLiberal: false })).toMatch(/^add rule ip kube-proxy forward ct state invalid drop$/m);
    expect(kubeProxyNft(spec, { beLiberal: true })).not.toMatch(/invalid/);
    const v6 = kubeProxyNft(serviceSpec(6, 9100), { beLiberal: false });
    expect(v6).toMatch(/^add rule ip6 kube-proxy services ip6 daddr \. meta l4proto \. th dport vmap @service-ips$/m);
    expect(v6).toMatch(/endpoint-\w{8}-default\/boom-server\/tcp\/__2001\.db8\.c\.b\.\.2\/9100 meta l4proto tcp dnat to \[2001:db8:c:b::2\]:9100/);
  });
  it('adds the INPUT-only drop when asked', () => {
    expect(kubeProxyIptables(spec, 'v1.13', { beLiberal: false, inputDrop: true })).toMatch(/-A INPUT .*-j CTPROBE-INVALID\n-A CTPROBE-INVALID -m conntrack --ctstate INVALID/);
  });
});

describe('k8s-service expectations', () => {
  const modern = kernelProfile('6.18.0');
  const old = kernelProfile('5.10.0');
  it('ClusterIP: the pod resets without a FORWARD drop; an INPUT drop does not help', () => {
    expect(expectedK8s(modern, 'clusterip', K8S_MITIGATIONS.none.rules)).toMatchObject({ verdict: 'reset', resetBy: 'client-pod' });
    expect(expectedK8s(modern, 'clusterip', K8S_MITIGATIONS['drop-input'].rules)).toMatchObject({ verdict: 'reset', resetBy: 'client-pod' });
    expect(expectedK8s(old, 'clusterip', K8S_MITIGATIONS['kube-forward'].rules)).toMatchObject({ verdict: 'clean', resetBy: null });
  });
  it('NodePort: the node resets without a drop; INPUT or the server node’s FORWARD drop helps', () => {
    expect(expectedK8s(modern, 'nodeport', K8S_MITIGATIONS.none.rules)).toMatchObject({ verdict: 'reset', resetBy: 'client-node' });
    expect(expectedK8s(modern, 'nodeport', K8S_MITIGATIONS['drop-input'].rules).verdict).toBe('clean');
    expect(expectedK8s(modern, 'nodeport', K8S_MITIGATIONS.nftables.rules).verdict).toBe('clean');
    expect(expectedK8s(old, 'nodeport', K8S_MITIGATIONS['liberal-skip'].rules).verdict).toBe('clean');
  });
  it('builds cells per family × path × mitigation with unique ports', () => {
    const cells = buildK8sCells([4, 6], ['none', 'kube-forward']);
    expect(cells.map((c) => c.id)).toEqual(['clusterip/none', 'clusterip/kube-forward', 'nodeport/none', 'nodeport/kube-forward', 'clusterip/none/v6', 'clusterip/kube-forward/v6', 'nodeport/none/v6', 'nodeport/kube-forward/v6']);
    expect(new Set(cells.map((c) => c.port)).size).toBe(cells.length);
  });
});
