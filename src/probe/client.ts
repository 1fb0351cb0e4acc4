/**
 * The client loop of the seed (`while true; do nc -w 3 HOST PORT; sleep 1; done`), bounded:
 * connect, read until the connection is idle for `timeout`, close, report, wait `interval`.
 */
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type { AttemptOutcome, AttemptResult, ClientSummary } from '../events.js';

export type { AttemptOutcome, AttemptResult, ClientSummary } from '../events.js';

export interface ClientOptions {
  host: string;
  port: number;
  intervalMs: number;
  timeoutMs: number;
  count: number;
  /** Connect timeout; defaults to timeoutMs (nc -w uses one value for both). */
  connectTimeoutMs?: number;
  /** Pin the source port (like `nc -p`). */
  localPort?: number;
}

function classify(err: NodeJS.ErrnoException): AttemptOutcome {
  if (err.code === 'ECONNRESET' || err.code === 'EPIPE') return 'reset';
  if (err.code === 'ECONNREFUSED') return 'refused';
  if (err.code === 'ETIMEDOUT') return 'timeout';
  return 'error';
}

/** One nc -w style attempt. Never rejects. */
export function attempt(n: number, o: ClientOptions): Promise<AttemptResult> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const r: AttemptResult = { attempt: n, outcome: 'ok', local: null, connectMs: null, totalMs: 0, bytes: 0, closedBy: null, closeStalled: false, error: null };
    const s = net.connect({ host: o.host, port: o.port, allowHalfOpen: true, ...(o.localPort ? { localPort: o.localPort } : {}) });
    let timer: NodeJS.Timeout | null = null;
    let done = false;
    const finish = (outcome?: AttemptOutcome, error?: string) => {
      if (done) return;
      done = true;
      if (timer) clearTimeout(timer);
      if (outcome) r.outcome = outcome;
      if (error) r.error = error;
      r.totalMs = Math.round(performance.now() - t0);
      s.destroy();
      resolve(r);
    };
    const arm = (ms: number, fn: () => void) => {
      if (timer) clearTimeout(timer);
      timer = setTimeout(fn, ms);
    };
    const connectMs = o.connectTimeoutMs ?? o.timeoutMs;
    arm(connectMs, () => finish('timeout', `connect timed out after ${connectMs} ms`));
    s.on('connect', () => {
      r.connectMs = Math.round(performance.now() - t0);
      r.local = `${s.localAddress}:${s.localPort}`;
      const idle = () => {
        // Idle for `timeout`: close our side, then give the server as long again to finish.
        r.closedBy ??= 'client';
        s.end();
        arm(o.timeoutMs, () => {
          r.closeStalled = true;
          finish('ok');
        });
      };
      arm(o.timeoutMs, idle);
      s.on('data', (d: Buffer) => {
        r.bytes += d.length;
        if (r.closedBy === null) arm(o.timeoutMs, idle);
      });
    });
    s.on('end', () => {
      // Server's FIN: answer with ours (nc exits on EOF).
      r.closedBy ??= 'server';
      s.end();
    });
    s.on('close', (hadError) => {
      if (!hadError) finish('ok');
    });
    s.on('error', (e: NodeJS.ErrnoException) => finish(classify(e), `${e.code ?? ''} ${e.message}`.trim()));
  });
}

/** Run `count` attempts with `interval` between them; `onResult` sees each one as it ends. */
export async function runClient(o: ClientOptions, onResult: (r: AttemptResult) => void, signal?: AbortSignal): Promise<AttemptResult[]> {
  const results: AttemptResult[] = [];
  for (let i = 1; i <= o.count; i++) {
    if (signal?.aborted) break;
    const r = await attempt(i, o);
    results.push(r);
    onResult(r);
    if (i < o.count && !signal?.aborted) await sleep(o.intervalMs, undefined, { signal }).catch(() => undefined);
  }
  return results;
}


export function summarize(results: AttemptResult[]): ClientSummary {
  const s: ClientSummary = { attempts: results.length, ok: 0, reset: 0, timeout: 0, refused: 0, error: 0 };
  for (const r of results) s[r.outcome]++;
  return s;
}
