import { describe, expect, it } from 'vitest';
import { predictOutOfWindow, predictPortReuse } from './predict.js';
import { profileById, profileForRelease, PROFILE_IDS } from './profile.js';

describe('predictOutOfWindow', () => {
  it('6.18 (+100000): forged IGNOREd, the ACK of the client FIN is INVALID — the measured sequence', () => {
    const r = predictOutOfWindow(profileForRelease('6.18.44-fc-v669'), { offset: 100000, beLiberal: false });
    expect(r.firstInvalid).toBe('ack-of-fin');
    expect(r.reasons).toEqual([
      '35493 bytes more than expected',
      'ignored ACK under lower bound 178348452 (possible overly delayed)',
      'ignored ACK under lower bound 178348452 (possible overly delayed)',
      'ACK is over upper bound 2233498243 (ACKed data not seen yet)',
    ]);
    expect(r.steps.find((x) => x.step === 'forged')?.decision.verdict).toBe('IGNORE');
    expect(r.summary).toMatch(/delayed/);
  });

  it('6.18 (−100000): IGNORE "SEQ is under lower bound", nothing INVALID', () => {
    const r = predictOutOfWindow(profileById('modern-challenge'), { offset: -100000, beLiberal: false });
    expect(r.firstInvalid).toBeNull();
    expect(r.firstInvalidStep).toBeNull();
    expect(r.reasons).toHaveLength(1);
    expect(r.reasons[0]).toMatch(/^SEQ is under lower bound \d+ \(already ACKed data retransmitted\)$/);
    expect(r.steps.at(-1)?.decision.stateAfter).toBe('TIME_WAIT');
  });

  it('6.1 behaves like 6.18 for this flow', () => {
    const a = predictOutOfWindow(profileById('modern'), { offset: 100000, beLiberal: false });
    expect(a.firstInvalid).toBe('ack-of-fin');
    expect(predictOutOfWindow(profileById('modern'), { offset: -100000, beLiberal: false }).firstInvalid).toBeNull();
  });

  it('old kernels: the forged segment itself is INVALID for ±100000', () => {
    const p = profileForRelease('5.10.0');
    const up = predictOutOfWindow(p, { offset: 100000, beLiberal: false });
    expect(up.firstInvalid).toBe('forged');
    expect(up.reasons).toEqual(['SEQ is over the upper bound (over the window of the receiver)']);
    const down = predictOutOfWindow(p, { offset: -100000, beLiberal: false });
    expect(down.firstInvalid).toBe('forged');
    expect(down.reasons).toEqual(['SEQ is under the lower bound (already ACKed data retransmitted)']);
  });

  it('6.0 / 5.15.67+: forged INVALID, logged as "bytes more than expected" for +100000', () => {
    const p = profileForRelease('5.15.70');
    const up = predictOutOfWindow(p, { offset: 100000, beLiberal: false });
    expect(up.firstInvalid).toBe('forged');
    expect(up.reasons).toEqual(['35493 bytes more than expected']);
    expect(predictOutOfWindow(p, { offset: -100000, beLiberal: false }).firstInvalid).toBe('forged');
  });

  it('be_liberal: never INVALID, nothing logged, on every profile', () => {
    for (const id of PROFILE_IDS) {
      for (const offset of [100000, -100000]) {
        const r = predictOutOfWindow(profileById(id), { offset, beLiberal: true });
        expect(r.firstInvalid, `${id} ${offset}`).toBeNull();
        expect(r.reasons).toEqual([]);
      }
    }
  });

  it('an in-window segment is harmless everywhere', () => {
    for (const id of PROFILE_IDS) {
      expect(predictOutOfWindow(profileById(id), { offset: 0, beLiberal: false }).firstInvalid).toBeNull();
    }
  });

  it('the offset wraps modulo 2^32', () => {
    const a = predictOutOfWindow(profileById('modern-challenge'), { offset: 100000 - 2 ** 32, beLiberal: false });
    expect(a.firstInvalid).toBe('ack-of-fin');
    expect(a.reasons[0]).toBe('35493 bytes more than expected');
  });
});

describe('predictPortReuse', () => {
  it('connects on the four measured kernels, with the kernel’s log line for the challenge ACK', () => {
    const k510 = predictPortReuse(profileForRelease('5.10.0-32-amd64'));
    expect(k510).toMatchObject({ result: 'connected', reasons: ['invalid packet ignored in state SYN_SENT'] });
    for (const r of ['6.1.0-56-amd64', '6.12.117+deb12-amd64', '6.18.44-fc-v1272']) {
      expect(predictPortReuse(profileForRelease(r))).toMatchObject({ result: 'connected', reasons: ['packet (index 3) in dir 1 ignored, state SYN_SENT'] });
    }
  });

  it('a 6.1 before the challenge-ACK backport may time out, depending on the ISN', () => {
    expect(predictPortReuse(profileForRelease('6.1.4')).result).toBe('depends');
  });
});
