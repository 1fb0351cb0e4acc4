/**
 * Test helpers: real network namespaces with unique names (tests run in parallel), removed on
 * every path by the caller's afterAll/finally via `cleanup()`.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const CLI = `${ROOT}dist/cli/main.js`;
export const isRoot = process.geteuid?.() === 0;

export function hasTool(name: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${name} || test -x /usr/sbin/${name}`]).status === 0;
}

export function sh(cmd: string, allowFail = false): string {
  const r = spawnSync('sh', ['-c', cmd], { encoding: 'utf8' });
  if (r.status !== 0 && !allowFail) throw new Error(`${cmd}: ${r.stderr}`);
  return r.stdout;
}

/** A unique short name: interface names are limited to 15 characters. */
export function uniqueName(prefix: string): string {
  return `${prefix}${randomBytes(3).toString('hex')}`;
}

export class NetnsPair {
  readonly a: string;
  readonly b: string;
  private readonly procs: ChildProcess[] = [];
  constructor(
    prefix: string,
    readonly addrA = '198.51.100.1',
    readonly addrB = '198.51.100.2',
  ) {
    const id = uniqueName('');
    this.a = `${prefix}-${id}-a`;
    this.b = `${prefix}-${id}-b`;
    const va = `ctpt${id}a`;
    const vb = `ctpt${id}b`;
    sh(`ip netns add ${this.a} && ip netns add ${this.b}`);
    sh(`ip link add ${va} type veth peer name ${vb} && ip link set ${va} netns ${this.a} && ip link set ${vb} netns ${this.b}`);
    const cidr = (a: string) => (a.includes(':') ? `${a}/64 nodad` : `${a}/24`);
    sh(`ip -n ${this.a} addr add ${cidr(addrA)} dev ${va} && ip -n ${this.a} link set ${va} up && ip -n ${this.a} link set lo up`);
    sh(`ip -n ${this.b} addr add ${cidr(addrB)} dev ${vb} && ip -n ${this.b} link set ${vb} up && ip -n ${this.b} link set lo up`);
    this.vethB = vb;
  }
  readonly vethB: string;

  spawnIn(ns: string, cmd: string, args: string[]): ChildProcess {
    const p = spawn('ip', ['netns', 'exec', ns, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.procs.push(p);
    return p;
  }

  cleanup(): void {
    for (const p of this.procs) if (p.exitCode === null) p.kill('SIGKILL');
    sh(`ip netns del ${this.a}`, true);
    sh(`ip netns del ${this.b}`, true);
  }
}

/** Collect a child's stdout; resolve when it exits. */
export function collect(p: ChildProcess): Promise<{ out: string; err: string; code: number | null }> {
  return new Promise((resolve) => {
    let out = '';
    let err = '';
    p.stdout?.setEncoding('utf8').on('data', (d: string) => (out += d));
    p.stderr?.setEncoding('utf8').on('data', (d: string) => (err += d));
    p.on('close', (code) => resolve({ out, err, code }));
  });
}
