/**
 * Run a command as a user would and measure it: wall time, CPU time and peak RSS (VmHWM, sampled
 * from /proc every 10 ms, so a peak in the process's last 10 ms could be missed), with stdout
 * going to /dev/null, a file, a fast pipe (`cat`) or a deliberately slow reader.
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';

export type Stdout = 'null' | 'file' | 'pipe' | 'slow';

export interface Measured {
  ms: number;
  /** user + system CPU of the command itself, ms (last sample) */
  cpuMs: number;
  peakMB: number;
  code: number | null;
}

/** A reader that takes 64 KB per millisecond at most (≤ 64 MB/s): far slower than explain writes. */
const SLOW_READER = `
const fs = require('fs');
const b = Buffer.alloc(65536);
const step = () => {
  let n;
  try { n = fs.readSync(0, b, 0, b.length, null); } catch (e) { if (e.code === 'EAGAIN') return setTimeout(step, 1); throw e; }
  if (n > 0) setTimeout(step, 1);
};
step();`;

const TICK = 100; // USER_HZ on Linux

function sample(pid: number, m: { peakKB: number; cpuTicks: number }): void {
  try {
    const st = readFileSync(`/proc/${pid}/status`, 'utf8');
    const hwm = /VmHWM:\s+(\d+)/.exec(st);
    if (hwm) m.peakKB = Math.max(m.peakKB, Number(hwm[1]));
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    m.cpuTicks = Number(f[11]) + Number(f[12]); // utime + stime
  } catch {
    /* exited */
  }
}

export async function measure(argv: string[], stdout: Stdout, file = '/dev/null'): Promise<Measured> {
  const fd = stdout === 'file' || stdout === 'null' ? openSync(stdout === 'file' ? file : '/dev/null', 'w') : null;
  const t0 = performance.now();
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', fd ?? 'pipe', 'ignore'] });
  // (listen for the reader's end at once: it may close before the command's exit is handled)
  let readerClosed: Promise<unknown> | null = null;
  if (fd === null) {
    const args = stdout === 'slow' ? [process.execPath, '-e', SLOW_READER] : ['cat'];
    const reader = spawn(args[0]!, args.slice(1), { stdio: [child.stdout!, 'ignore', 'ignore'] });
    readerClosed = new Promise((resolve) => reader.on('close', resolve));
    child.stdout!.destroy(); // the reader has its own copy of the pipe
  }
  const m = { peakKB: 0, cpuTicks: 0 };
  const timer = setInterval(() => sample(child.pid!, m), 10);
  const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
  const ms = performance.now() - t0;
  clearInterval(timer);
  if (readerClosed) await readerClosed;
  if (fd !== null) closeSync(fd);
  return { ms, cpuMs: (m.cpuTicks * 1000) / TICK, peakMB: m.peakKB / 1024, code };
}
