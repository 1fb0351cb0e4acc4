/**
 * What this kernel does with the lab's out-of-window segment, and so which verdict each cell
 * should show. The conntrack outcome comes from the model (src/conntrack) run with this kernel's
 * profile over the lab's flow; the mitigations then decide whether the NAT host's stack gets to
 * answer an INVALID packet with RST.
 */
import { predictOutOfWindow, type OowOptions, type OowPrediction } from '../conntrack/predict.js';
import { profileForRelease, type KernelProfile as ConntrackProfile } from '../conntrack/profile.js';
import type { Mitigation } from './topology.js';

/** How conntrack on the NAT host treats the forged segment and what follows it. */
export type OowOutcome =
  | 'invalid-immediate' // the forged segment itself is INVALID → not de-NATed → RST at once
  | 'invalid-delayed' // the forged segment is not INVALID but poisons the window; a later packet (the ACK of the client's FIN) is
  | 'harmless'; // nothing becomes INVALID

export interface KernelProfile {
  id: ConntrackProfile['id'];
  label: string;
  /** What out-of-window packets do here, in plain words. */
  summary: string;
  conntrack: ConntrackProfile;
  oow(offset: number, beLiberal?: boolean, nat?: OowOptions['nat']): { outcome: OowOutcome; reasons: string[]; deliveredTo: OowPrediction['invalidDeliveredTo'] };
}

/** `version` is `uname -v`: Debian names the upstream stable level there (6.1.0-57 is 6.1.192). */
export function kernelProfile(release: string, version?: string): KernelProfile {
  const p = profileForRelease(release, version);
  const oow = (offset: number, beLiberal = false, nat: OowOptions['nat'] = 'masquerade') => {
    const r = predictOutOfWindow(p, { offset, beLiberal, nat });
    const outcome: OowOutcome = r.firstInvalidStep === null ? 'harmless' : r.firstInvalidStep === 'forged' ? 'invalid-immediate' : 'invalid-delayed';
    return { outcome, reasons: r.reasons, deliveredTo: r.invalidDeliveredTo };
  };
  const describe = (o: OowOutcome) =>
    o === 'invalid-immediate' ? 'INVALID at once (RST from the NAT host)' : o === 'invalid-delayed' ? 'poisons the window; the ACK of the client FIN is INVALID (delayed RST)' : 'harmless';
  return {
    id: p.id,
    label: p.label,
    summary: `a segment 100000 beyond the window: ${describe(oow(100000).outcome)}; 100000 below: ${describe(oow(-100000).outcome)}${p.caveat ? ` (${p.caveat})` : ''}`,
    conntrack: p,
    oow,
  };
}

export type CellVerdict = 'reset' | 'clean' | 'timeout';

/** The verdict a cell should show on a kernel with this profile. */
export function expectedVerdict(p: KernelProfile, offset: number, mitigation: Mitigation, natted: boolean): { verdict: CellVerdict; why: string } {
  if (!natted) return { verdict: 'clean', why: 'no NAT: the client host owns the socket, so even an INVALID segment reaches it and is answered by TCP itself' };
  const { outcome, reasons } = p.oow(offset, mitigation === 'be-liberal');
  const said = reasons.length ? ` (model: ${reasons.map((r) => `"${r}"`).join(', ')})` : '';
  if (mitigation === 'be-liberal' && outcome === 'harmless') return { verdict: 'clean', why: `be_liberal: window checks never mark a packet INVALID${said}` };
  if (outcome === 'harmless') return { verdict: 'clean', why: `this kernel lets the segment pass without marking anything INVALID${said}` };
  const what = outcome === 'invalid-immediate' ? 'the forged segment is INVALID' : 'the ACK of the client FIN is INVALID (window poisoned by the forged segment)';
  if (mitigation === 'drop-input') return { verdict: 'clean', why: `${what}; addressed to the host itself, it is dropped in INPUT before the host's TCP can answer${said}` };
  if (mitigation === 'drop-forward') return { verdict: 'reset', why: `${what}; it is addressed to the host itself, so it never traverses FORWARD and the host answers with RST${said}` };
  return { verdict: 'reset', why: `${what}; not de-NATed, it reaches the host's own TCP, which answers with RST${said}` };
}

/** Who answers with RST in a k8s-service cell: the client pod, the client's node (its own stack), or nobody. */
export type ResetBy = 'client-pod' | 'client-node' | 'server-side' | null;

/** What a k8s-service cell's rules do with an INVALID packet (on every node, as kube-proxy runs on every node). */
export interface K8sRules {
  beLiberal: boolean;
  /** An INVALID drop reached from FORWARD (KUBE-FORWARD, or kube-proxy nftables' forward chain). */
  forwardDrop: boolean;
  /** An INVALID drop reached from INPUT only. */
  inputDrop: boolean;
}

/**
 * The verdict and the resetter a k8s-service cell should show. The server pod's INVALID reply
 * first crosses the server's node (forwarded: a FORWARD drop there stops it), then the client's
 * node: through a ClusterIP (DNAT only) it is forwarded to the client pod, which resets; through a
 * NodePort (DNAT + masquerade) it is addressed to the node itself, whose stack resets.
 */
export function expectedK8s(p: KernelProfile, path: 'clusterip' | 'nodeport', r: K8sRules, offset = 100000): { verdict: CellVerdict; resetBy: ResetBy; why: string } {
  const { outcome, reasons, deliveredTo } = p.oow(offset, r.beLiberal, path === 'nodeport' ? 'dnat+masquerade' : 'dnat');
  const said = reasons.length ? ` (model: ${reasons.map((x) => `"${x}"`).join(', ')})` : '';
  if (outcome === 'harmless')
    return { verdict: 'clean', resetBy: null, why: r.beLiberal ? `be_liberal: window checks never mark a packet INVALID${said}` : `this kernel lets the segment pass without marking anything INVALID${said}` };
  const what = outcome === 'invalid-immediate' ? 'the forged segment is INVALID' : 'the ACK of the client FIN is INVALID (window poisoned by the forged segment)';
  if (r.forwardDrop) return { verdict: 'clean', resetBy: null, why: `${what}; the server's node forwards it and drops it in FORWARD (kube-proxy runs on every node)${said}` };
  if (deliveredTo === 'nat-host') {
    if (r.inputDrop) return { verdict: 'clean', resetBy: null, why: `${what}; addressed to the client's node (NodePort masquerade), it is dropped in INPUT${said}` };
    return { verdict: 'reset', resetBy: 'client-node', why: `${what}; not de-NATed, it is addressed to the client's node (NodePort masquerade), whose own TCP answers with RST${said}` };
  }
  if (deliveredTo === 'client')
    return { verdict: 'reset', resetBy: 'client-pod', why: `${what}; not reverse-DNATed, it is forwarded to the client pod with the server pod's address, and the pod answers with RST${r.inputDrop ? ' (it never traverses INPUT, so the INPUT drop does not see it)' : ''}${said}` };
  return { verdict: 'reset', resetBy: 'server-side', why: `${what}; a client packet, forwarded un-NATed to the server side${said}` };
}
