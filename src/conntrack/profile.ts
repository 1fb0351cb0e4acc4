/**
 * Kernel profiles: which version of the TCP tracker's behaviour a kernel release has.
 * Four base profiles (old / overshoot-invalid / modern / modern-challenge) by how window failures
 * end; smaller changes (5.12 messages, 5.14 RST handling, 5.17 SYN re-init, 6.7 "invalid new"
 * logging) and stable backports are feature bits on top, chosen by the release.
 * What was measured on real kernels wins over the change history: every base profile names the
 * kernels it was checked on (/work/shared/notes/kernel-behaviour.md); change history:
 * /work/shared/notes/conntrack-tcp-model.md §6.
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
  /** 6.2+ and 6.1.9+ (stable backport, Jan 2023): remember the ACK answering a SYN in SYN_SENT (last_ack) and let the RST to it through. */
  challengeAck: boolean;
  /** 5.14+: sysctl nf_conntrack_tcp_ignore_invalid_rst exists. */
  ignoreInvalidRstSysctl: boolean;
  /** 5.14+: RST handling when a tuple is re-used (closing-state shortcut, SYN guard, seq==0, RST → CLOSE timeout). */
  rstImprovements: boolean;
  /** 5.14+, and stable 5.10.166+ / 4.19.272+ (backport queued Jan 2023): a retransmitted SYN does not renew an entry stuck in SYN_SENT. */
  synSentNoRenew: boolean;
  /** ~5.12+: "packet (index %d) in dir %d ignored/invalid, state %s" instead of "invalid packet ignored in state %s" / "invalid state". */
  newStateMessages: boolean;
  /** 5.17+: re-init a direction for a retransmitted SYN or SYN/ACK with higher seq (SYN packets only); before: the old re-init rule. */
  synReinit: 'old' | 'modern';
  /**
   * The first packet that cannot create an entry logs "invalid new" ("prefer tcp_error_log to pr_debug",
   * nf-next Oct 2023 → 6.7). Measured: not on 6.1.192, yes on 6.12.117 and 6.18; before 6.7 only pr_debug.
   */
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
  /**
   * Real kernels this base profile's behaviour was measured on (the lab's scenarios, with the kernel's
   * own log lines). Empty: modelled from the change history only.
   */
  checkedOn: readonly string[];
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
  logInvalidNew: false,
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
      'Every failed window check makes the packet INVALID (not de-NATed): a segment 100000 above or below the window resets at once; messages without bounds ("SEQ is under the lower bound (already ACKed data retransmitted)").',
    // the 5.10 features as measured (5.10.223 carries the SYN_SENT no-renew backport)
    features: { ...OLD_FEATURES, synSentNoRenew: true },
    checkedOn: ['5.10.223 (Debian linux-image-5.10.0-32-amd64, qemu guest)'],
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
    checkedOn: [],
  },
  modern: {
    id: 'modern',
    label: '6.1',
    description:
      'Below-window segments and stale ACKs are IGNOREd (keep conntrack, no state update); an overshooting segment is IGNOREd but poisons the window; only SEQ-over and ACK-over are INVALID; bounded messages; out-of-window FIN/RST lower the timeout; "invalid new" is not logged.',
    // 6.1 as measured: 6.1.192 carries the 6.1.9 challenge-ACK backport
    features: { ...MODERN_FEATURES, challengeAck: true },
    checkedOn: ['6.1.192 (Debian linux-image-6.1.0-56-amd64, qemu guest)'],
  },
  'modern-challenge': {
    id: 'modern-challenge',
    label: '6.2+ (incl. 6.12, 6.18)',
    description:
      'As 6.1, with challenge-ACK handling during connection reuse (an ACK answering a SYN in SYN_SENT is remembered and the RST to it passes); from 6.7 a packet that cannot start a connection is logged "invalid new".',
    // 6.1 plus the 2023 challenge-ACK change, the extra direction test on an RST answering a SYN, 6.7's log line
    features: { ...MODERN_FEATURES, challengeAck: true, rstSynLastDirCheck: true, logInvalidNew: true },
    checkedOn: ['6.12.117 (Debian 6.12.117+deb12, qemu guest)', '6.18.44 (the lab host)'],
  },
};

export const PROFILE_IDS: readonly ProfileId[] = ['old', 'overshoot-invalid', 'modern', 'modern-challenge'];

/** A base profile by id (the behaviour of the kernel it was checked on). */
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

/** The upstream version in a distribution kernel's `uname -v` ("#1 SMP Debian 6.1.192-1 (…)"), or null. */
export function upstreamFromVersion(version: string): [number, number, number] | null {
  const m = /\bDebian (\d+)\.(\d+)\.(\d+)/.exec(version);
  return m ? [Number(m[1]), Number(m[2]), Number(m[3])] : null;
}

function atLeast(v: [number, number, number], maj: number, min: number, patch = 0): boolean {
  if (v[0] !== maj) return v[0] > maj;
  if (v[1] !== min) return v[1] > min;
  return v[2] >= patch;
}

/** Stable level assumed for a distribution release that hides it ("5.10.0-32-amd64"): the newest. */
const NEWEST_STABLE = 9999;

/**
 * The profile for a `uname -r` string ("6.18.44-fc-v669", "6.12.117+deb12-amd64", "5.10.0-32-amd64",
 * "5.15.0-91-generic"). Distribution releases named X.Y.0-N hide the stable level their backports
 * come from: pass `uname -v` as `version` (Debian names the upstream version there); without it the
 * newest X.Y stable is assumed and the profile says so in `caveat`. Unparseable strings give the
 * 'old' profile with a caveat.
 */
export function profileForRelease(release: string, version?: string): KernelProfile {
  let v = parseRelease(release);
  if (!v) {
    const p = profileById('old');
    p.release = release;
    p.caveat = `unrecognised release "${release}"; assuming the oldest behaviour`;
    return p;
  }
  let caveat: string | null = null;
  // "5.10" names a series: its newest stable (what a user running 5.10 today has)
  if (/^\s*\d+\.\d+\s*$/.test(release)) v = [v[0], v[1], NEWEST_STABLE];
  else if (v[2] === 0 && /^\s*\d+\.\d+\.0-\d+/.test(release)) {
    const up = version ? upstreamFromVersion(version) : null;
    if (up && up[0] === v[0] && up[1] === v[1]) v = up;
    else {
      caveat = `distribution kernel: "${release}" does not name its ${v[0]}.${v[1]} stable level; assuming the newest ${v[0]}.${v[1]} stable with its backports (profiles are chosen by release; a distribution may also carry patches of its own)`;
      v = [v[0], v[1], NEWEST_STABLE];
    }
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
  p.caveat = caveat;
  const f = p.features;
  // Version bits: the base profile carries the behaviour of the kernel it was checked on.
  f.logInvalidNew = atLeast(v, 6, 7);
  if (id === 'modern') f.challengeAck = atLeast(v, 6, 1, 9);
  if (id === 'old') {
    f.synSentNoRenew = atLeast(v, 5, 14) || (v[0] === 5 && v[1] === 10 && v[2] >= 166) || (v[0] === 4 && v[1] === 19 && v[2] >= 272);
    if (atLeast(v, 5, 12)) f.newStateMessages = true;
    if (atLeast(v, 5, 14)) {
      f.ignoreInvalidRstSysctl = true;
      f.rstImprovements = true;
    }
    if (atLeast(v, 5, 17)) f.synReinit = 'modern';
    if (atLeast(v, 5, 11)) p.label = `${v[0]}.${v[1]}${v[2] === NEWEST_STABLE ? '' : `.${v[2]}`} (old window checks)`;
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
