/**
 * Running system tools, optionally inside a named network namespace. The one place that
 * spawns ip/iptables/conntrack/ss…: a missing tool becomes a MissingToolError naming the
 * Debian package, a failure a CommandError with the tool's first stderr line.
 */
import { spawn, spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { CommandError, MissingToolError } from '../errors.js';

/** Debian package providing each tool ctprobe calls. */
export const TOOL_PACKAGE: Record<string, string> = {
  ip: 'iproute2',
  ss: 'iproute2',
  nstat: 'iproute2',
  iptables: 'iptables',
  'iptables-save': 'iptables',
  'iptables-restore': 'iptables',
  'iptables-legacy-save': 'iptables',
  'iptables-nft-save': 'iptables',
  uname: 'coreutils',
  timeout: 'coreutils',
  setpriv: 'util-linux',
  ip6tables: 'iptables',
  'ip6tables-save': 'iptables',
  'ip6tables-restore': 'iptables',
  nft: 'nftables',
  conntrack: 'conntrack',
  tcpdump: 'tcpdump',
  nc: 'netcat-openbsd',
  nsenter: 'util-linux',
  unshare: 'util-linux',
  dmesg: 'util-linux',
  sysctl: 'procps',
  tshark: 'tshark',
  dockerd: 'docker.io',
  docker: 'docker.io',
  containerd: 'containerd',
  runc: 'runc',
  busybox: 'busybox-static',
  umount: 'mount',
  hostname: 'hostname',
  cat: 'coreutils',
  'apt-get': 'apt',
  'apt-cache': 'apt',
  'dpkg-deb': 'dpkg',
  depmod: 'kmod',
  modprobe: 'kmod',
  'qemu-system-x86_64': 'qemu-system-x86',
  xz: 'xz-utils',
};

/**
 * Where a tool is looked for before PATH. Debian's docker client (docker.io) is the one that
 * matches Debian's dockerd; another docker CLI earlier on PATH (/usr/local/bin) may be a
 * different release or a stand-in.
 */
const PREFERRED_PATH: Record<string, string> = { docker: '/usr/bin/docker', dockerd: '/usr/sbin/dockerd', busybox: '/bin/busybox' };

const PATH_DIRS = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];
const found = new Map<string, string | null>();

/** Absolute path of a tool, or null. Looks in PATH and the sbin directories (root's tools). */
export function findTool(name: string): string | null {
  const hit = found.get(name);
  if (hit !== undefined) return hit;
  const dirs = [...(process.env.PATH ?? '').split(':').filter(Boolean), ...PATH_DIRS];
  let path: string | null = null;
  const preferred = PREFERRED_PATH[name];
  if (preferred)
    try {
      accessSync(preferred, constants.X_OK);
      path = preferred;
    } catch {
      /* fall back to PATH */
    }
  for (const d of path ? [] : dirs) {
    try {
      accessSync(`${d}/${name}`, constants.X_OK);
      path = `${d}/${name}`;
      break;
    } catch {
      /* next */
    }
  }
  found.set(name, path);
  return path;
}

/** Path of a tool, or throw a MissingToolError naming its Debian package. */
export function requireTool(name: string): string {
  const p = findTool(name);
  if (!p) throw new MissingToolError(name, TOOL_PACKAGE[name] ?? name);
  return p;
}

export interface RunOptions {
  /** Run inside this named network namespace (`ip netns exec NAME …`). */
  netns?: string;
  /** Text for the tool's standard input. */
  input?: string;
  /** Do not throw on a non-zero exit; return it. */
  allowFail?: boolean;
  timeoutMs?: number;
  /** Working directory of the tool (not with netns). */
  cwd?: string;
}

export interface RunResult {
  stdout: string;
  stderr: string;
  status: number;
}

function argvFor(tool: string, args: string[], netns?: string): [string, string[]] {
  const bin = requireTool(tool);
  if (!netns) return [bin, args];
  return [requireTool('ip'), ['netns', 'exec', netns, bin, ...args]];
}

/** Run a tool synchronously (setup/teardown paths, small outputs). */
export function runSync(tool: string, args: string[], opts: RunOptions = {}): RunResult {
  const [bin, argv] = argvFor(tool, args, opts.netns);
  const r = spawnSync(bin, argv, {
    input: opts.input,
    encoding: 'utf8',
    timeout: opts.timeoutMs ?? 30_000,
    maxBuffer: 512 * 1024 * 1024,
  });
  const res = { stdout: r.stdout ?? '', stderr: r.stderr ?? '', status: r.status ?? -1 };
  if (r.error) throw new CommandError(`${tool} ${args.join(' ')}`, r.error.message, null);
  if (res.status !== 0 && !opts.allowFail) throw new CommandError(`${tool} ${args.join(' ')}`, res.stderr, r.status);
  return res;
}

/** Run a tool asynchronously (lets parallel lab cells overlap). */
export function run(tool: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  const [bin, argv] = argvFor(tool, args, opts.netns);
  return new Promise((resolve, reject) => {
    const child = spawn(bin, argv, { stdio: ['pipe', 'pipe', 'pipe'], cwd: opts.cwd });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 30_000);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new CommandError(`${tool} ${args.join(' ')}`, e.message, null));
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      const res = { stdout, stderr, status: code ?? -1 };
      if (res.status !== 0 && !opts.allowFail) reject(new CommandError(`${tool} ${args.join(' ')}`, stderr, code));
      else resolve(res);
    });
    // A tool that exits before reading its input must surface as its own failure, not EPIPE.
    child.stdin.on('error', () => undefined);
    child.stdin.end(opts.input ?? '');
  });
}

/** True when running as root (effective uid 0). Capabilities are checked where they are used. */
export function isRoot(): boolean {
  return typeof process.geteuid === 'function' && process.geteuid() === 0;
}
