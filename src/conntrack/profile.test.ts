import { describe, expect, it } from 'vitest';
import { parseRelease, PROFILE_IDS, profileById, profileForRelease, profileFromFlag, upstreamFromVersion } from './profile.js';

describe('kernel profiles', () => {
  it('maps uname -r strings to profiles', () => {
    expect(profileForRelease('6.18.44-fc-v669').id).toBe('modern-challenge');
    expect(profileForRelease('6.2.0').id).toBe('modern-challenge');
    expect(profileForRelease('6.1.0-13-amd64').id).toBe('modern');
    expect(profileForRelease('6.0.9').id).toBe('overshoot-invalid');
    expect(profileForRelease('5.15.70').id).toBe('overshoot-invalid');
    expect(profileForRelease('5.15.67').id).toBe('overshoot-invalid');
    expect(profileForRelease('5.15.66').id).toBe('old');
    expect(profileForRelease('5.19.8').id).toBe('overshoot-invalid');
    expect(profileForRelease('5.19.7').id).toBe('old');
    expect(profileForRelease('5.15.0-91-generic').id).toBe('overshoot-invalid'); // newest 5.15 stable assumed
    expect(profileForRelease('4.19.0-25-amd64').id).toBe('old');
    expect(profileForRelease('5.10.13').id).toBe('old');
    expect(profileForRelease('7.0.1').id).toBe('modern-challenge');
  });

  it('gives 5.14 the RST changes and ignore_invalid_rst but old window messages', () => {
    const p = profileForRelease('5.14.21-150400.24.21-default');
    expect(p.id).toBe('old');
    expect(p.features.ignoreInvalidRstSysctl).toBe(true);
    expect(p.features.rstImprovements).toBe(true);
    expect(p.features.boundedMessages).toBe(false);
    expect(p.features.ignoreVerdict).toBe(false);
    expect(p.features.overshootWorkaround).toBe('none');
    const old = profileForRelease('5.10.0');
    expect(old.features.ignoreInvalidRstSysctl).toBe(false);
    expect(old.features.rstImprovements).toBe(false);
  });

  it('describes each base profile by its features', () => {
    expect(profileById('old').features.overshootWorkaround).toBe('none');
    expect(profileById('overshoot-invalid').features.overshootWorkaround).toBe('invalid');
    expect(profileById('overshoot-invalid').features.ignoreVerdict).toBe(false);
    expect(profileById('modern').features.overshootWorkaround).toBe('ignore');
    expect(profileById('modern').features.handleInvalid).toBe(true);
    expect(profileById('modern').features.challengeAck).toBe(true); // 6.1.192: the 6.1.9 backport
    expect(profileById('modern').features.logInvalidNew).toBe(false);
    expect(profileById('modern-challenge').features.challengeAck).toBe(true);
    expect(profileById('modern-challenge').features.boundedMessages).toBe(true);
  });

  it('returns independent copies (mutating one does not leak)', () => {
    const a = profileById('modern');
    a.features.handleInvalid = false;
    expect(profileById('modern').features.handleInvalid).toBe(true);
  });

  it('flags distribution X.Y.0-N kernels and unparseable strings with a caveat', () => {
    expect(profileForRelease('5.15.0-91-generic').caveat).toMatch(/backport/);
    expect(profileForRelease('6.12.117+deb12-amd64').caveat).toBeNull();
    expect(profileForRelease('5.15.70').caveat).toBeNull();
    const g = profileForRelease('garbage');
    expect(g.id).toBe('old');
    expect(g.caveat).toMatch(/unrecognised/);
  });

  it('parses flags: release numbers or profile ids', () => {
    expect(profileFromFlag('6.18').id).toBe('modern-challenge');
    expect(profileFromFlag('6.1').id).toBe('modern');
    expect(profileFromFlag('5.10').id).toBe('old');
    expect(profileFromFlag('overshoot-invalid').id).toBe('overshoot-invalid');
    expect(() => profileFromFlag('newest')).toThrow(/unknown kernel profile/);
    expect(parseRelease('6.18')).toEqual([6, 18, 0]);
    expect(parseRelease('5.14.21-150400.24.21-default')).toEqual([5, 14, 21]);
  });

  it('follows what was measured on the four kernels (kernel-behaviour.md), not only the change history', () => {
    // Debian's own release strings of the measured guests, and this host
    const k510 = profileForRelease('5.10.0-32-amd64', '#1 SMP Debian 5.10.223-1 (2024-08-10)');
    const k61 = profileForRelease('6.1.0-56-amd64', '#1 SMP PREEMPT_DYNAMIC Debian 6.1.192-1');
    const k612 = profileForRelease('6.12.117+deb12-amd64');
    const k618 = profileForRelease('6.18.44-fc-v1272');
    expect([k510.id, k61.id, k612.id, k618.id]).toEqual(['old', 'modern', 'modern-challenge', 'modern-challenge']);
    expect(k510.caveat).toBeNull(); // the version string named the stable level
    // "invalid new": not on 5.10 (pr_debug) nor 6.1.192; logged on 6.12 and 6.18 (6.7+)
    expect([k510, k61, k612, k618].map((p) => p.features.logInvalidNew)).toEqual([false, false, true, true]);
    expect(profileForRelease('6.6.30').features.logInvalidNew).toBe(false);
    expect(profileForRelease('6.7.1').features.logInvalidNew).toBe(true);
    // challenge ACKs during port reuse: 6.2+, and 6.1 from the 6.1.9 backport
    expect([profileForRelease('6.1.4').features.challengeAck, k61.features.challengeAck]).toEqual([false, true]);
    // 5.10: old log wording, SYN_SENT no-renew backport from 5.10.166
    expect(k510.features.newStateMessages).toBe(false);
    expect([profileForRelease('5.10.13').features.synSentNoRenew, k510.features.synSentNoRenew]).toEqual([false, true]);
    // every profile says which real kernels it was checked on (none: change history only)
    expect(profileById('old').checkedOn.join()).toMatch(/5\.10\.223/);
    expect(profileById('modern').checkedOn.join()).toMatch(/6\.1\.192/);
    expect(profileById('modern-challenge').checkedOn.join()).toMatch(/6\.12\.117.*6\.18/);
    expect(profileById('overshoot-invalid').checkedOn).toEqual([]);
    for (const id of PROFILE_IDS) expect(Array.isArray(profileById(id).checkedOn)).toBe(true);
    expect(upstreamFromVersion('#1 SMP PREEMPT_DYNAMIC Debian 6.1.192-1 (2025-01-01)')).toEqual([6, 1, 192]);
    // --kernel 6.1 / 5.10 name a series: its newest stable, as measured
    expect(profileFromFlag('6.1').features.challengeAck).toBe(true);
    expect(profileFromFlag('5.10').features.synSentNoRenew).toBe(true);
    expect(profileFromFlag('5.10').label).toBe('≤ 5.10 (and 5.15 ≤ .66, 5.19 ≤ .7)');
    expect(upstreamFromVersion('#101-Ubuntu SMP Tue Nov 14 13:30:08 UTC 2023')).toBeNull();
  });
});
