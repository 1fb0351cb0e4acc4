/**
 * Test helpers for `ctprobe watch`: run it in a namespace of its own (its --listen port cannot
 * collide), read its JSON-line events, scrape its /metrics, stop it.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { CLI, sh, uniqueName } from './netns.js';

export type WatchEvent = Record<string, any>;

export class WatchProcess {
  readonly ns = uniqueName('ctpw-');
  readonly events: WatchEvent[] = [];
  p!: ChildProcess;
  stderr = '';
  private buf = '';
  exited!: Promise<number | null>;

  /** The namespace is made now; `start()` (called here unless `later`) runs watch in it. */
  constructor(
    private readonly args: string[],
    readonly port = 9464,
    later = false,
  ) {
    sh(`ip netns add ${this.ns} && ip -n ${this.ns} link set lo up`);
    if (!later) this.start();
  }

  start(): void {
    const args = this.args;
    const port = this.port;
    this.p = spawn('ip', ['netns', 'exec', this.ns, process.execPath, CLI, 'watch', '--listen', `127.0.0.1:${port}`, '-o', 'json', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.p.stdout!.setEncoding('utf8').on('data', (d: string) => {
      this.buf += d;
      let i: number;
      while ((i = this.buf.indexOf('\n')) >= 0) {
        const line = this.buf.slice(0, i);
        this.buf = this.buf.slice(i + 1);
        if (line.trim()) this.events.push(JSON.parse(line) as WatchEvent);
      }
    });
    this.p.stderr!.setEncoding('utf8').on('data', (d: string) => (this.stderr += d));
    this.exited = new Promise((resolve) => this.p.on('close', (code) => resolve(code)));
  }

  /** Wait until an event matches (or the timeout): the event, or undefined. */
  async waitFor(pred: (e: WatchEvent) => boolean, timeoutMs: number): Promise<WatchEvent | undefined> {
    for (const t0 = Date.now(); Date.now() - t0 < timeoutMs; await sleep(50)) {
      const hit = this.events.find(pred);
      if (hit) return hit;
      if (this.p.exitCode !== null) break;
    }
    return this.events.find(pred);
  }

  /** GET a path of the listener, from inside its namespace. */
  get(path: string): { status: number; body: string } {
    const r = spawnSync('ip', ['netns', 'exec', this.ns, 'curl', '-s', '--max-time', '5', '-w', '\n%{http_code}', `http://127.0.0.1:${this.port}${path}`], { encoding: 'utf8' });
    const at = r.stdout.lastIndexOf('\n');
    return { status: Number(r.stdout.slice(at + 1)), body: r.stdout.slice(0, at) };
  }

  async stop(): Promise<number | null> {
    if (this.p.exitCode === null) this.p.kill('SIGTERM');
    const code = await Promise.race([this.exited, sleep(10_000).then(() => 'timeout' as const)]);
    if (code === 'timeout') {
      this.p.kill('SIGKILL');
      return null;
    }
    return code;
  }

  cleanup(): void {
    if (this.p && this.p.exitCode === null) this.p.kill('SIGKILL');
    sh(`ip netns del ${this.ns}`, true);
  }
}

/** The value of one sample in a Prometheus text exposition, or null. */
export function sample(text: string, name: string, labels: Record<string, string>): number | null {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const close = line.lastIndexOf('}');
    const set = line.slice(name.length + 1, close);
    if (Object.entries(labels).every(([k, v]) => set.includes(`${k}="${v}"`))) return Number(line.slice(close + 1).trim());
  }
  return null;
}
