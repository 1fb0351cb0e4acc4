import { describe, expect, it } from 'vitest';
import { parseRelease, profileById, profileForRelease, profileFromFlag } from './profile.js';

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
    expect(profileForRelease('5.15.0-91-generic').id).toBe('old');
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
    expect(profileById('modern').features.challengeAck).toBe(false);
    expect(profileById('modern-challenge').features.challengeAck).toBe(true);
    expect(profileById('modern-challenge').features.boundedMessages).toBe(true);
  });

  it('returns independent copies (mutating one does not leak)', () => {
    const a = profileById('modern');
    a.features.handleInvalid = false;
    expect(profileById('modern').features.handleInvalid).toBe(true);
  });

  it('flags distribution 5.15.0-N kernels and unparseable strings with a caveat', () => {
    expect(profileForRelease('5.15.0-91-generic').caveat).toMatch(/backport/);
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
});
