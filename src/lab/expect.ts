/**
 * What this kernel does with the lab's out-of-window segment, and so which verdict each cell
 * should show. The conntrack outcome per kernel comes from the kernel profile; the mitigations
 * then decide whether the NAT host's stack gets to answer an INVALID packet with RST.
 */
import type { Mitigation } from './topology.js';

/** How conntrack on the NAT host treats the forged segment and what follows it. */
export type OowOutcome =
  | 'invalid-immediate' // the forged segment itself is INVALID → not de-NATed → RST at once
  | 'invalid-delayed' // the forged segment is IGNOREd but poisons the window; the ACK of the client's FIN is INVALID → RST
  | 'harmless'; // IGNOREd, nothing becomes INVALID

export interface KernelProfile {
  id: 'old' | 'overshoot-invalid' | 'modern' | 'modern-challenge';
  label: string;
  /** What out-of-window packets do here, in plain words. */
  summary: string;
  oow(offset: number): OowOutcome;
}

function parseRelease(release: string): [number, number, number] {
  const m = /^(\d+)\.(\d+)(?:\.(\d+))?/.exec(release);
  return m ? [Number(m[1]), Number(m[2]), Number(m[3] ?? 0)] : [0, 0, 0];
}

const PROFILES: Record<KernelProfile['id'], KernelProfile> = {
  old: {
    id: 'old',
    label: '≤ 5.10 (and 5.15 < .67, 5.19 < .8)',
    summary: 'an out-of-window segment is INVALID at once, not de-NATed, and the NAT host answers it with RST',
    oow: () => 'invalid-immediate',
  },
  'overshoot-invalid': {
    id: 'overshoot-invalid',
    label: '6.0, 5.15.67+, 5.19.8+',
    summary: 'an out-of-window segment is still INVALID (logged "bytes more than expected") and also poisons the window',
    oow: () => 'invalid-immediate',
  },
  modern: {
    id: 'modern',
    label: '6.1',
    summary: 'a segment beyond the window is IGNOREd but poisons the window; the ACK of the client FIN is then INVALID and reset (delayed); one below the window is harmless',
    oow: (o) => (o > 0 ? 'invalid-delayed' : 'harmless'),
  },
  'modern-challenge': {
    id: 'modern-challenge',
    label: '6.2+',
    summary: 'a segment beyond the window is IGNOREd but poisons the window; the ACK of the client FIN is then INVALID and reset (delayed); one below the window is harmless',
    oow: (o) => (o > 0 ? 'invalid-delayed' : 'harmless'),
  },
};

export function kernelProfile(release: string): KernelProfile {
  const [maj, min, patch] = parseRelease(release);
  if (maj > 6 || (maj === 6 && min >= 2)) return PROFILES['modern-challenge'];
  if (maj === 6 && min === 1) return PROFILES.modern;
  if (maj === 6 && min === 0) return PROFILES['overshoot-invalid'];
  if (maj === 5 && min === 15 && patch >= 67) return PROFILES['overshoot-invalid'];
  if (maj === 5 && min === 19 && patch >= 8) return PROFILES['overshoot-invalid'];
  return PROFILES.old;
}

export type CellVerdict = 'reset' | 'clean' | 'timeout';

/** The verdict a cell should show on a kernel with this profile. */
export function expectedVerdict(p: KernelProfile, offset: number, mitigation: Mitigation, natted: boolean): { verdict: CellVerdict; why: string } {
  if (!natted) return { verdict: 'clean', why: 'no NAT: the client host owns the socket, so even an INVALID segment reaches it and is answered by TCP itself' };
  if (mitigation === 'be-liberal') return { verdict: 'clean', why: 'be_liberal: window checks never mark a packet INVALID' };
  const o = p.oow(offset);
  if (o === 'harmless') return { verdict: 'clean', why: 'this kernel IGNOREs the segment below the window; nothing becomes INVALID' };
  const what = o === 'invalid-immediate' ? 'the forged segment is INVALID' : 'the ACK of the client FIN is INVALID (window poisoned by the forged segment)';
  if (mitigation === 'drop-input') return { verdict: 'clean', why: `${what}; addressed to the host itself, it is dropped in INPUT before the host's TCP can answer` };
  if (mitigation === 'drop-forward') return { verdict: 'reset', why: `${what}; it is addressed to the host itself, so it never traverses FORWARD and the host answers with RST` };
  return { verdict: 'reset', why: `${what}; not de-NATed, it reaches the host's own TCP, which answers with RST` };
}
