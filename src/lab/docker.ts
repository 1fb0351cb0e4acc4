/**
 * A real dockerd (Debian's docker.io) as a lab cell's client host. It runs inside the cell's
 * network namespace — started with `nsenter --net=/run/netns/NAME`, not `ip netns exec`, which
 * remounts /sys and leaves dockerd without its cgroup mounts ("Devices cgroup isn't mounted") —
 * with its own data root, exec root, pidfile, socket and cgroup parent, all named after the run
 * and cell, so that teardown and `lab clean` find everything it made: containers, images (in its
 * data root), containerd and its shims, mounts and cgroups.
 *
 * No image can be pulled: the client image is `docker import`ed from a rootfs holding Debian's
 * busybox-static; the client itself is ctprobe's own, run by this host's node from read-only bind
 * mounts, so the docker cells read the same event contract as the namespace lab.
 */
import { spawn } from 'node:child_process';
import { closeSync, copyFileSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { c as tarCreate } from 'tar';
import { LabError } from '../errors.js';
import { requireTool, run, runSync } from '../host/exec.js';
import { STATE_DIR } from '../host/statedir.js';
import { LAB_PREFIX } from './state.js';

/** Every dockerd of every run lives under here, one directory per cell: `<run>-<cell>`. */
export const DOCKER_DIR = `${STATE_DIR}/docker`;
export const CLIENT_IMAGE = 'ctprobe-lab-client:latest';
/** The ctprobe package (dist/, node_modules/) mounted read-only into client containers. */
export const PACKAGE_ROOT = fileURLToPath(new URL('../..', import.meta.url)).replace(/\/$/, '');

/** dockerd start-up (it also starts its own containerd) on a loaded 2-core machine. */
const DAEMON_START_MS = 60_000;

export interface DockerdPaths {
  dir: string;
  sock: string;
  pidfile: string;
  log: string;
  /** cgroup parent of its containers (absolute, one per daemon). */
  cgroupParent: string;
}

export function dockerdPaths(run: string, cell: number): DockerdPaths {
  const dir = `${DOCKER_DIR}/${run}-${cell}`;
  return { dir, sock: `${dir}/docker.sock`, pidfile: `${dir}/dockerd.pid`, log: `${dir}/dockerd.log`, cgroupParent: `/${LAB_PREFIX}${run}-${cell}` };
}

/** `dockerd --version`, e.g. "20.10.24+dfsg1". Throws MissingToolError naming docker.io. */
export function dockerVersion(): string {
  const out = runSync('dockerd', ['--version']).stdout;
  return /version ([^\s,]+)/i.exec(out)?.[1] ?? out.trim();
}

/** What the docker engine needs, checked before any cell starts. */
export function dockerPreflight(): void {
  for (const t of ['dockerd', 'docker', 'containerd', 'runc', 'nsenter', 'busybox', 'umount']) requireTool(t);
}

/** The docker client, talking to one lab daemon. */
export function docker(p: DockerdPaths, args: string[], timeoutMs = 60_000) {
  return run('docker', ['-H', `unix://${p.sock}`, ...args], { timeoutMs });
}

/**
 * Start dockerd inside `netns`; resolves once it answers on its socket. `extra` are more dockerd
 * flags (the cell's --bip). The daemon is its own process group, so a Ctrl-C reaches ctprobe
 * (which tears down in order) and not dockerd directly.
 */
export async function startDockerd(netns: string, p: DockerdPaths, extra: string[]): Promise<void> {
  mkdirSync(p.dir, { recursive: true });
  const args = [
    `--net=/run/netns/${netns}`, requireTool('dockerd'),
    '--data-root', `${p.dir}/data`, '--exec-root', `${p.dir}/exec`, '--pidfile', p.pidfile, '-H', `unix://${p.sock}`,
    '--cgroup-parent', p.cgroupParent, '--log-level', 'warn', ...extra,
  ];
  const log = openSync(p.log, 'a');
  const d = spawn(requireTool('nsenter'), args, { stdio: ['ignore', log, log], detached: true });
  closeSync(log);
  d.unref();
  const t0 = Date.now();
  while (Date.now() - t0 < DAEMON_START_MS) {
    if (d.exitCode !== null) break;
    const r = await docker(p, ['version', '--format', '{{.Server.Version}}'], 10_000).catch(() => null);
    if (r && r.status === 0) return;
    await sleep(200);
  }
  const tail = existsSync(p.log) ? readFileSync(p.log, 'utf8').trim().split('\n').filter((l) => /level=(error|fatal)|failed/i.test(l)).pop() : '';
  throw new LabError(`dockerd did not start in ${netns} within ${DAEMON_START_MS / 1000}s${tail ? `: ${tail.slice(0, 200)}` : ''} (log: ${p.log})`);
}

/**
 * The client image: Debian's busybox-static in an otherwise empty rootfs (/lib and /lib64 point
 * into /usr, which the client's container mounts read-only from the host for node's libraries).
 * The tarball is made once per run and imported into each daemon.
 */
export async function clientRootfs(run: string): Promise<string> {
  const tarball = `${DOCKER_DIR}/${run}-rootfs.tar`;
  if (existsSync(tarball)) return tarball;
  const root = `${DOCKER_DIR}/${run}-rootfs`;
  rmSync(root, { recursive: true, force: true });
  for (const d of ['bin', 'usr', 'etc', 'tmp', 'proc', 'sys', 'dev', 'ctprobe']) mkdirSync(`${root}/${d}`, { recursive: true });
  copyFileSync(requireTool('busybox'), `${root}/bin/busybox`);
  for (const l of ['sh', 'nc', 'ls', 'cat', 'ip']) symlinkSync('busybox', `${root}/bin/${l}`);
  symlinkSync('usr/lib', `${root}/lib`);
  symlinkSync('usr/lib64', `${root}/lib64`);
  writeFileSync(`${root}/etc/passwd`, 'root:x:0:0:root:/:/bin/sh\n');
  await tarCreate({ cwd: root, file: `${tarball}.part`, portable: true }, ['.']);
  rmSync(root, { recursive: true, force: true });
  renameSync(`${tarball}.part`, tarball);
  return tarball;
}

export async function importClientImage(p: DockerdPaths, tarball: string): Promise<void> {
  await docker(p, ['import', '--change', 'CMD ["/bin/sh"]', tarball, CLIENT_IMAGE]);
}

/** `docker run` arguments that run `ctprobe ARGS…` in a client container with this host's node. */
export function clientRunArgs(name: string, network: string[], ctprobeArgs: string[]): string[] {
  const node = process.execPath;
  // /usr for node and its libraries; the package and node's own directory unless /usr holds them.
  const mounts = ['/usr', PACKAGE_ROOT, dirname(node)].filter((m, i, all) => all.findIndex((o) => m === o || m.startsWith(`${o}/`)) === i);
  return [
    'run', '--rm', '--name', name, ...network,
    ...mounts.flatMap((m) => ['--mount', `type=bind,src=${m},dst=${m},readonly`]),
    CLIENT_IMAGE, node, `${PACKAGE_ROOT}/dist/cli/main.js`, ...ctprobeArgs,
  ];
}

/** Send a signal to a process that may have exited meanwhile. */
function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    /* gone */
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Pids of processes whose command line names `dir` (containerd and its shims, started by dockerd). */
function pidsNaming(dir: string): number[] {
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e) || Number(e) === process.pid) continue;
    try {
      // `${dir}/`: the daemon of cell 1 must not match cell 10's paths.
      if (readFileSync(`/proc/${e}/cmdline`, 'utf8').includes(`${dir}/`)) out.push(Number(e));
    } catch {
      /* gone */
    }
  }
  return out;
}

/** cgroup directories named `parent` in every mounted hierarchy (v1 controllers and v2). */
function cgroupDirs(parent: string): string[] {
  const roots = ['/sys/fs/cgroup', ...readdirSafe('/sys/fs/cgroup').map((h) => `/sys/fs/cgroup/${h}`)];
  return roots.map((r) => `${r}${parent}`).filter((d) => existsSync(`${d}/cgroup.procs`));
}

function readdirSafe(d: string): string[] {
  try {
    return readdirSync(d);
  } catch {
    return [];
  }
}

/** Every pid in a cgroup subtree. */
function cgroupPids(dir: string): number[] {
  const out: number[] = [];
  const walk = (d: string) => {
    try {
      out.push(...readFileSync(`${d}/cgroup.procs`, 'utf8').split('\n').filter(Boolean).map(Number));
    } catch {
      return;
    }
    for (const e of readdirSafe(d)) if (existsSync(`${d}/${e}/cgroup.procs`)) walk(`${d}/${e}`);
  };
  walk(dir);
  return out;
}

function rmdirTree(dir: string): void {
  for (const e of readdirSafe(dir)) if (existsSync(`${dir}/${e}/cgroup.procs`)) rmdirTree(`${dir}/${e}`);
  try {
    rmdirSync(dir);
  } catch {
    /* still busy or gone: lab clean retries */
  }
}

/** Mount points at or under `dir`, deepest first. */
function mountsUnder(dir: string): string[] {
  const out: string[] = [];
  for (const l of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const mp = l.split(' ')[4]?.replace(/\\040/g, ' ');
    if (mp && (mp === dir || mp.startsWith(`${dir}/`))) out.push(mp);
  }
  return out.sort((a, b) => b.length - a.length);
}

/**
 * Remove one lab dockerd and everything it made: its containers (`docker rm -f`, and a swarm
 * left), the daemon (SIGTERM, then SIGKILL), containerd and shims, container processes left in
 * its cgroups, mounts under its directory, the directory (data root: images, layers), and its
 * cgroups. Safe to call on a half-started or already stopped daemon.
 */
export async function removeDockerd(p: DockerdPaths): Promise<void> {
  const pid = existsSync(p.pidfile) ? Number(readFileSync(p.pidfile, 'utf8').trim()) : NaN;
  const alive = Number.isInteger(pid) && pid > 0 && pidAlive(pid);
  if (alive) {
    const ids = await docker(p, ['ps', '-aq'], 15_000).catch(() => null);
    const list = ids?.status === 0 ? ids.stdout.split('\n').filter(Boolean) : [];
    if (list.length) await docker(p, ['rm', '-f', ...list], 30_000).catch(() => null);
    await docker(p, ['swarm', 'leave', '--force'], 15_000).catch(() => null);
    signal(pid, 'SIGTERM');
    for (let i = 0; i < 150 && pidAlive(pid); i++) await sleep(100);
  }
  const kill = (pids: number[]) => pids.forEach((x) => signal(x, 'SIGKILL'));
  kill([...(alive && pidAlive(pid) ? [pid] : []), ...pidsNaming(p.dir)]);
  const cgroups = cgroupDirs(p.cgroupParent);
  kill(cgroups.flatMap(cgroupPids));
  if (cgroups.length || pidsNaming(p.dir).length) await sleep(200);
  for (const m of mountsUnder(p.dir)) await run('umount', ['-l', m], { allowFail: true });
  rmSync(p.dir, { recursive: true, force: true });
  for (const d of cgroupDirs(p.cgroupParent)) rmdirTree(d);
}

/** Lab dockerd directories present now, with their run id. */
export function labDockerds(): Array<{ run: string; paths: DockerdPaths }> {
  return readdirSafe(DOCKER_DIR)
    .map((e) => /^([0-9a-f]+)-(\d+)$/.exec(e))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ run: m[1]!, paths: dockerdPaths(m[1]!, Number(m[2])) }));
}

/** The run's client rootfs tarball (and a half-made rootfs), if any. */
export function removeRunFiles(run: string): string[] {
  const out: string[] = [];
  for (const f of [`${DOCKER_DIR}/${run}-rootfs.tar`, `${DOCKER_DIR}/${run}-rootfs.tar.part`, `${DOCKER_DIR}/${run}-rootfs`])
    if (existsSync(f)) {
      rmSync(f, { recursive: true, force: true });
      out.push(f);
    }
  return out;
}

/** Runs that left docker files behind (for `lab clean`). */
export function dockerRunsPresent(): string[] {
  return [...new Set(readdirSafe(DOCKER_DIR).map((e) => /^([0-9a-f]+)-/.exec(e)?.[1]).filter((r): r is string => !!r))];
}

/**
 * Last resort when the process exits without its teardown: stop the daemons (dockerd stops its
 * containers on SIGTERM); `lab clean` removes what is left.
 */
export function signalDockerdsSync(dirs: DockerdPaths[]): void {
  for (const p of dirs) {
    try {
      const pid = Number(readFileSync(p.pidfile, 'utf8').trim());
      if (pid > 0) signal(pid, 'SIGTERM');
    } catch {
      /* not started or gone */
    }
  }
}
