/** `lab clean` after a SIGKILLed guest run: its qemu is killed and its run directory removed — and only its. */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { afterAll, describe, expect, it } from 'vitest';

const stateDir = mkdtempSync(`${tmpdir()}/ctp-state-`);
process.env.CTPROBE_STATE_DIR = stateDir;
const { leftoverGuests, removeGuest, guestStatePath } = await import('../state.js');

afterAll(() => rmSync(stateDir, { recursive: true, force: true }));

/** A stand-in for qemu whose command line names its run directory, as the real one does. */
function fakeQemu(dir: string) {
  return spawn('bash', ['-c', `exec -a "qemu-system-x86_64 -virtfs local,path=${dir}" sleep 60`], { stdio: 'ignore' });
}

describe('lab clean and guests', () => {
  it('kills the qemu of a dead owner and removes its directory; leaves a live owner’s guest alone', async () => {
    const deadDir = mkdtempSync(`${tmpdir()}/ctprobe-guest-dead-`);
    const liveDir = mkdtempSync(`${tmpdir()}/ctprobe-guest-live-`);
    const q1 = fakeQemu(deadDir);
    const q2 = fakeQemu(liveDir);
    const gone = new Promise((r) => q1.on('exit', r));
    try {
      await new Promise((r) => setTimeout(r, 200));
      // A dead owner: a process that has exited (its pid is not ours any more).
      const dead = spawn('true');
      await new Promise((r) => dead.on('exit', r));
      mkdirSync(stateDir, { recursive: true });
      writeFileSync(guestStatePath('aaaaaa'), JSON.stringify({ run: 'aaaaaa', pid: dead.pid, qemuPid: q1.pid, dir: deadDir }));
      writeFileSync(guestStatePath('bbbbbb'), JSON.stringify({ run: 'bbbbbb', pid: process.pid, qemuPid: q2.pid, dir: liveDir }));
      const left = leftoverGuests();
      expect(left.map((g) => g.run)).toEqual(['aaaaaa']);
      for (const g of left) removeGuest(g);
      await gone;
      expect(existsSync(deadDir)).toBe(false);
      expect(existsSync(guestStatePath('aaaaaa'))).toBe(false);
      expect(q2.exitCode).toBeNull();
      expect(existsSync(liveDir)).toBe(true);
    } finally {
      q1.kill('SIGKILL');
      q2.kill('SIGKILL');
      rmSync(liveDir, { recursive: true, force: true });
      rmSync(deadDir, { recursive: true, force: true });
    }
  });
  it('never kills a recycled pid that is not that run’s qemu', async () => {
    const dir = mkdtempSync(`${tmpdir()}/ctprobe-guest-x-`);
    const other = spawn('sleep', ['60'], { stdio: 'ignore' });
    try {
      removeGuest({ run: 'cccccc', pid: 1, qemuPid: other.pid!, dir });
      await new Promise((r) => setTimeout(r, 300));
      expect(other.exitCode).toBeNull();
      expect(other.signalCode).toBeNull();
      expect(existsSync(dir)).toBe(false);
    } finally {
      other.kill('SIGKILL');
    }
  });
});
