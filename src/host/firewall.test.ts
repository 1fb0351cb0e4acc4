import { describe, expect, it } from 'vitest';
import { kubeProxyFromIptables, kubeProxyFromNft, nftInvalidDrops, parseIptablesSave } from './firewall.js';

const filter = (forward: string[], extraChains: string[] = []) =>
  ['*filter', ':INPUT ACCEPT [0:0]', ':FORWARD ACCEPT [0:0]', ':OUTPUT ACCEPT [0:0]', ':KUBE-FORWARD - [0:0]', ...extraChains, '-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD', ...forward, 'COMMIT', ''].join('\n');

describe('kube-proxy versions from its rules', () => {
  it('v1.30+: the PR 74840 drop with its nfacct counter', () => {
    const kp = kubeProxyFromIptables(parseIptablesSave(filter(['-A KUBE-FORWARD -m conntrack --ctstate INVALID -m nfacct --nfacct-name ct_state_invalid_dropped_pkts -j DROP'], [':KUBE-PROXY-FIREWALL - [0:0]'])));
    expect(kp).toMatchObject({ mode: 'iptables', layout: 'newer', invalidDrop: { chain: 'KUBE-FORWARD', nfacct: true }, skippedForBeLiberal: false });
    expect(kp!.versions).toMatch(/v1\.30\+/);
  });
  it('newer layout without the drop: skipped for be_liberal (v1.29+); older layout without it: before v1.15', () => {
    const newer = kubeProxyFromIptables(parseIptablesSave(filter(['-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT'])));
    expect(newer).toMatchObject({ layout: 'newer', invalidDrop: null, skippedForBeLiberal: true });
    const older = kubeProxyFromIptables(parseIptablesSave(filter(['-A KUBE-FORWARD -s 10.244.0.0/16 -m comment --comment "kubernetes forwarding conntrack pod source rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT'])));
    expect(older).toMatchObject({ layout: 'older', invalidDrop: null, skippedForBeLiberal: false });
    expect(older!.versions).toMatch(/before v1\.15/);
    expect(kubeProxyFromIptables(parseIptablesSave('*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n'))).toBeNull();
  });
  it('nftables mode: the drop sits in a regular chain, reached from the forward hook through a jump', () => {
    const rule = (chain: string, expr: unknown[]) => ({ rule: { family: 'ip', table: 'kube-proxy', chain, handle: 1, expr } });
    const doc = JSON.stringify({
      nftables: [
        { table: { family: 'ip', name: 'kube-proxy', handle: 1 } },
        { chain: { family: 'ip', table: 'kube-proxy', name: 'filter-forward', handle: 2, type: 'filter', hook: 'forward', prio: -101, policy: 'accept' } },
        { chain: { family: 'ip', table: 'kube-proxy', name: 'forward', handle: 3 } },
        rule('filter-forward', [{ jump: { target: 'forward' } }]),
        rule('forward', [{ match: { op: 'in', left: { ct: { key: 'state' } }, right: 'invalid' } }, { drop: null }]),
      ],
    });
    expect(nftInvalidDrops(doc)).toEqual([expect.objectContaining({ table: 'ip kube-proxy', chain: 'forward', reachedFrom: ['FORWARD'] })]);
    expect(kubeProxyFromNft(doc)).toEqual([expect.objectContaining({ mode: 'nftables', family: 'ip', invalidDrop: expect.objectContaining({ chain: 'forward' }) })]);
  });
});
