/**
 * Kernel profiles: which version of the TCP tracker's behaviour a kernel release has.
 * Four base profiles (old / overshoot-invalid / modern / modern-challenge); smaller changes between
 * 5.10 and 6.0 (5.12 messages, 5.14 RST handling, 5.17 SYN re-init) are feature bits on top.
 * Change history: /work/shared/notes/conntrack-tcp-model.md §6. Only 6.18 was checked on a real kernel.
 */
import { UsageError } from '../errors.js';

export type ProfileId = 'old' | 'overshoot-invalid' | 'modern' | 'modern-challenge';

export interface ProfileFeatures {
  /** 6.1+: window checks II, IV and the overshoot workaround return IGNORE (NF_ACCEPT, no state update). */
  ignoreVerdict: boolean;
  /** 6.1+: window messages carry the bound ("SEQ is over upper bound %u …"); checks ordered I, III, II, IV. */
  boundedMessages: boolean;
  /** Workaround for senders overshooting the receive window ("%u bytes more than expected"). */
  overshootWorkaround: 'none' | 'invalid' | 'ignore';
  /** 6.1+: an out-of-window FIN/RST answering a FIN/RST lowers the timeout (nf_tcp_handle_invalid). */
  handleInvalid: boolean;
  /** 6.2+: remember the ACK answering a SYN in SYN_SENT (last_ack) and let the RST to it through. */
  challengeAck: boolean;
  /** 5.14+: sysctl nf_conntrack_tcp_ignore_invalid_rst exists. */
  ignoreInvalidRstSysctl: boolean;
  /** 5.14+: RST handling when a tuple is re-used (closing-state shortcut, SYN guard, seq==0, RST → CLOSE timeout). */
  rstImprovements: boolean;
  /** 5.14+: a retransmitted SYN does not renew an entry stuck in SYN_SENT. */
  synSentNoRenew: boolean;
  /** ~5.12+: "packet (index %d) in dir %d ignored/invalid, state %s" instead of "invalid packet ignored in state %s" / "invalid state". */
  newStateMessages: boolean;
  /** 5.17+: re-init a direction for a retransmitted SYN or SYN/ACK with higher seq (SYN packets only); before: the old re-init rule. */
  synReinit: 'old' | 'modern';
  /** The first packet that cannot create an entry logs "invalid new" (6.1+ assumed; seen on 6.18; OLD only pr_debug). */
  logInvalidNew: boolean;
  /** tcp_options() keeps a direction's BE_LIBERAL flag (MODERN); OLD clears all flags. Exact change point unverified. */
  keepLiberalOnOptions: boolean;
  /** RST to a SYN we let through also requires last_dir != dir (newest copies; assumed for 6.2+). */
  rstSynLastDirCheck: boolean;
}

export interface KernelProfile {
  id: ProfileId;
  label: string;
  description: string;
  /** The release this profile was derived from, if any. */
  release: string | null;
  /** Set when the release string does not tell the whole story (distribution kernels with backports). */
  caveat: string | null;
  features: ProfileFeatures;
}

const MODERN_FEATURES: ProfileFeatures = {
  ignoreVerdict: true,
  boundedMessages: true,
  overshootWorkaround: 'ignore',
  handleInvalid: true,
  challengeAck: false,
  ignoreInvalidRstSysctl: true,
  rstImprovements: true,
  synSentNoRenew: true,
  newStateMessages: true,
  synReinit: 'modern',
  logInvalidNew: true,
  keepLiberalOnOptions: true,
  rstSynLastDirCheck: false,
};

const OLD_FEATURES: ProfileFeatures = {
  ignoreVerdict: false,
  boundedMessages: false,
  overshootWorkaround: 'none',
  handleInvalid: false,
  challengeAck: false,
  ignoreInvalidRstSysctl: false,
  rstImprovements: false,
  synSentNoRenew: false,
  newStateMessages: false,
  synReinit: 'old',
  logInvalidNew: false,
  keepLiberalOnOptions: false,
  rstSynLastDirCheck: false,
};

const BASES: Record<ProfileId, Omit<KernelProfile, 'release' | 'caveat'>> = {
  old: {
    id: 'old',
    label: '≤ 5.10 (and 5.15 ≤ .66, 5.19 ≤ .7)',
    description:
      'Every failed window check makes the packet INVALID (not de-NATed); messages without bounds ("SEQ is over the upper bound (over the window of the receiver)").',
    features: OLD_FEATURES,
  },
  'overshoot-invalid': {
    id: 'overshoot-invalid',
    label: '6.0, 5.15.67+, 5.19.8+',
    description:
      'Failed window checks are still INVALID; a segment overshooting the receive window is logged "%u bytes more than expected" and advances the sender\'s td_end (poisons the window) but stays INVALID.',
    features: {
      ...OLD_FEATURES,
      overshootWorkaround: 'invalid',
      newStateMessages: true,
      ignoreInvalidRstSysctl: true,
      rstImprovements: true,
      synSentNoRenew: true,
      synReinit: 'modern',
    },
  },
  modern: {
    id: 'modern',
    label: '6.1',
    description:
      'Below-window segments and stale ACKs are IGNOREd (keep conntrack, no state update); an overshooting segment is IGNOREd but poisons the window; only SEQ-over and ACK-over are INVALID; bounded messages; out-of-window FIN/RST lower the timeout.',
    features: MODERN_FEATURES,
  },
  'modern-challenge': {
    id: 'modern-challenge',
    label: '6.2+ (incl. 6.18)',
    description:
      'As 6.1, plus challenge-ACK handling during connection reuse (an ACK answering a SYN in SYN_SENT is remembered and the RST to it passes).',
    // 6.1 plus the 2023 challenge-ACK change and the extra direction test on an RST answering a SYN
    features: { ...MODERN_FEATURES, challengeAck: true, rstSynLastDirCheck: true },
  },
};

export const PROFILE_IDS: readonly ProfileId[] = ['old', 'overshoot-invalid', 'modern', 'modern-challenge'];

/** A base profile by id (the 5.10 behaviour for 'old'). */
export function profileById(id: ProfileId): KernelProfile {
  const b = BASES[id];
  return { ...b, features: { ...b.features }, release: null, caveat: null };
}

/** [major, minor, patch] of a `uname -r` string, or null. */
export function parseRelease(release: string): [number, number, number] | null {
  const m = /^\s*(\d+)\.(\d+)(?:\.(\d+))?/.exec(release);
  if (!m) return null;
  return [Number(m[1]), Number(m[2]), Number(m[3] ?? 0)];
}

function atLeast(v: [number, number, number], maj: number, min: number, patch = 0): boolean {
  if (v[0] !== maj) return v[0] > maj;
  if (v[1] !== min) return v[1] > min;
  return v[2] >= patch;
}

/**
 * The profile for a `uname -r` string ("6.18.44-fc-v669", "5.15.0-91-generic", "5.14.21-150400.24.21-default").
 * Unparseable strings give the 'old' profile with a caveat.
 */
export function profileForRelease(release: string): KernelProfile {
  const v = parseRelease(release);
  if (!v) {
    const p = profileById('old');
    p.release = release;
    p.caveat = `unrecognised release "${release}"; assuming the oldest behaviour`;
    return p;
  }
  let id: ProfileId;
  if (atLeast(v, 6, 2)) id = 'modern-challenge';
  else if (atLeast(v, 6, 1)) id = 'modern';
  else if (atLeast(v, 6, 0)) id = 'overshoot-invalid';
  else if (v[0] === 5 && v[1] === 15 && v[2] >= 67) id = 'overshoot-invalid';
  else if (v[0] === 5 && v[1] === 19 && v[2] >= 8) id = 'overshoot-invalid';
  else id = 'old';
  const p = profileById(id);
  p.release = release;
  if (id === 'old') {
    const f = p.features;
    if (atLeast(v, 5, 12)) f.newStateMessages = true;
    if (atLeast(v, 5, 14)) {
      f.ignoreInvalidRstSysctl = true;
      f.rstImprovements = true;
      f.synSentNoRenew = true;
    }
    if (atLeast(v, 5, 17)) f.synReinit = 'modern';
    if (atLeast(v, 5, 11)) p.label = `${v[0]}.${v[1]}.${v[2]} (old window checks)`;
    // Distribution kernels ("5.15.0-91-generic") hide the upstream stable level they are based on.
    const distro = v[2] === 0 && /^\d+\.\d+\.0-\d+/.test(release.trim());
    if (distro && v[0] === 5 && (v[1] === 15 || v[1] === 19)) {
      p.caveat =
        'distribution kernel: the upstream stable level is not in the release string; if it carries the 5.15.67 / 5.19.8 backport ("work around exceeded receive window") it behaves like overshoot-invalid';
    }
  }
  return p;
}

/** The profile for a command-line flag: a profile id ("old", "modern", …) or a release ("6.18", "5.10"). */
export function profileFromFlag(flag: string): KernelProfile {
  const f = flag.trim();
  if ((PROFILE_IDS as readonly string[]).includes(f)) return profileById(f as ProfileId);
  if (!parseRelease(f)) throw new UsageError(`--kernel: unknown kernel profile "${flag}" (use ${PROFILE_IDS.join(', ')} or a release like 6.18)`);
  return profileForRelease(f);
}
