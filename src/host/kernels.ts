/**
 * Debian kernels for lab guests: resolve what the user asked for (`5.10`, `6.1`, `6.12`, an ABI
 * name such as `6.1.0-56`, a package version such as `6.1.158-1`, or a package name) to one
 * `linux-image-*-amd64` package, download it with apt into a cache, unpack it and run depmod.
 *
 * apt runs with a private configuration under the cache (its own sources list, lists and archive
 * dirs): the host's apt setup is read (for its mirror) and never changed, and bullseye — where the
 * 5.10 kernels live — is one of the private suites. Nothing is installed on the host.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { InputError, SystemError, UsageError } from '../errors.js';
import { requireTool, run } from './exec.js';

/** The Debian release that carries each kernel series (newest package of the series wins). */
export const KERNEL_SERIES: Readonly<Record<string, string>> = { '5.10': 'bullseye', '6.1': 'bookworm', '6.12': 'bookworm' };

export type KernelSpec =
  | { kind: 'series'; series: string }
  | { kind: 'abi'; abi: string } // 6.1.0-56, 6.12.117+deb12, 5.10.0-32
  | { kind: 'version'; version: string } // 6.1.158-1, 5.10.223-1
  | { kind: 'package'; name: string };

/** Parse `--kernel REL`; a bad one is a UsageError naming what is accepted. */
export function parseKernelSpec(s: string): KernelSpec {
  const t = s.trim();
  if (/^\d+\.\d+$/.test(t)) {
    if (!(t in KERNEL_SERIES)) throw new UsageError(`--kernel ${t}: no Debian release here carries ${t} (try ${Object.keys(KERNEL_SERIES).join(', ')}, an ABI name like 6.1.0-56, or --kernel-image)`);
    return { kind: 'series', series: t };
  }
  if (/^linux-image-[0-9][\w.+-]*-amd64$/.test(t)) return { kind: 'package', name: t };
  // ABI names: x.y.0-N (5.10, 6.1 style) or x.y.z+debNN (6.12 style), optionally with -amd64.
  const abi = /^(\d+\.\d+\.0-\d+|\d+\.\d+\.\d+\+deb\d+(?:u\d+)?)(?:-amd64)?$/.exec(t);
  if (abi) return { kind: 'abi', abi: abi[1]! };
  if (/^\d+\.\d+\.\d+-[\w.+~]+$/.test(t)) return { kind: 'version', version: t };
  throw new UsageError(`--kernel '${s}': expected a series (${Object.keys(KERNEL_SERIES).join(', ')}), an ABI name (6.1.0-56, 6.12.117+deb12), a Debian version (6.1.158-1) or a package name (linux-image-6.1.0-56-amd64)`);
}

/** The generic amd64 flavour only: not -rt, -cloud, -dbg or -unsigned. */
const GENERIC = /^linux-image-(\d+\.\d+\.\d+(?:-\d+|\+deb\d+(?:u\d+)?)?)-amd64$/;

/** `linux-image-X-amd64` names of the generic flavour in apt's output, newest last. */
export function pickGenericImages(searchOutput: string, series?: string): string[] {
  const names = searchOutput
    .split('\n')
    .map((l) => l.split(' - ')[0]!.trim())
    .filter((n) => GENERIC.test(n) && !n.includes('+bpo'));
  const inSeries = series ? names.filter((n) => GENERIC.exec(n)![1]!.startsWith(`${series}.`)) : names;
  return [...new Set(inSeries)].sort(compareVersions);
}

/** Natural order over the digit runs of two strings (6.1.0-9 < 6.1.0-56, 6.12.117 < 6.12.118). */
export function compareVersions(a: string, b: string): number {
  const pa = a.split(/(\d+)/);
  const pb = b.split(/(\d+)/);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const x = pa[i] ?? '';
    const y = pb[i] ?? '';
    if (x === y) continue;
    if (/^\d+$/.test(x) && /^\d+$/.test(y)) return Number(x) - Number(y);
    return x < y ? -1 : 1;
  }
  return 0;
}

/** Where ctprobe caches kernels: $XDG_CACHE_HOME/ctprobe or ~/.cache/ctprobe. */
export function cacheRoot(): string {
  const base = process.env.XDG_CACHE_HOME || join(homedir(), '.cache');
  return join(base, 'ctprobe');
}

/** A kernel ready to boot: its image, its modules (depmod run) and where it came from. */
export interface GuestKernel {
  /** `uname -r` of the kernel, e.g. 6.1.0-56-amd64. */
  release: string;
  vmlinuz: string;
  /** The directory holding modules.dep etc. (…/lib/modules/RELEASE). */
  modulesDir: string;
  /** Debian package and version; null for --kernel-image. */
  package: string | null;
  version: string | null;
  source: 'debian' | 'image';
}

/** The mirror of the host's Debian sources (deb822 or one-line format), for the private apt config. */
export function hostMirrors(sourcesText: string): { debian: string | null; security: string | null } {
  const uris = [...sourcesText.matchAll(/^\s*(?:URIs:\s*|deb\s+(?:\[[^\]]*\]\s+)?)(\S+)/gim)].map((m) => m[1]!.replace(/\/+$/, ''));
  const security = uris.find((u) => /\/debian-security$/.test(u)) ?? null;
  const debian = uris.find((u) => /\/debian$/.test(u)) ?? null;
  return { debian, security };
}

function readHostSources(): string {
  const texts: string[] = [];
  for (const f of ['/etc/apt/sources.list']) if (existsSync(f)) texts.push(readFileSync(f, 'utf8'));
  const dir = '/etc/apt/sources.list.d';
  if (existsSync(dir)) for (const f of readdirSync(dir)) if (/\.(list|sources)$/.test(f)) texts.push(readFileSync(join(dir, f), 'utf8'));
  return texts.join('\n');
}

const KEYRING = '/usr/share/keyrings/debian-archive-keyring.gpg';
/** Private lists older than this are refreshed before a lookup. */
const LISTS_MAX_AGE_MS = 24 * 3600_000;

/** The one-line sources of the private apt configuration. */
export function privateSources(m: { debian: string; security: string | null }): string {
  const line = (uri: string, suite: string) => `deb [signed-by=${KEYRING}] ${uri} ${suite} main`;
  const out = ['bullseye', 'bookworm', 'bookworm-updates'].map((s) => line(m.debian, s));
  if (m.security) out.push(line(m.security, 'bullseye-security'), line(m.security, 'bookworm-security'));
  return out.join('\n') + '\n';
}

class PrivateApt {
  readonly dir: string;
  constructor(root: string) {
    this.dir = join(root, 'apt');
  }
  private opts(): string[] {
    const d = this.dir;
    return [
      '-o', `Dir::Etc::SourceList=${d}/sources.list`, '-o', `Dir::Etc::SourceParts=${d}/sources.list.d`,
      '-o', `Dir::State::Lists=${d}/lists`, '-o', `Dir::Cache=${d}/cache`, '-o', 'APT::Sandbox::User=root',
      '-o', 'Acquire::Languages=none', '-o', 'Debug::NoLocking=1',
    ];
  }
  /** Write the sources and refresh the lists when missing or stale. */
  async ready(progress: (s: string) => void): Promise<void> {
    requireTool('apt-get');
    const hostSrc = readHostSources();
    const m = hostMirrors(hostSrc);
    if (!m.debian) throw new SystemError('no Debian mirror in /etc/apt/sources.list{,.d}: ctprobe fetches guest kernels through the host’s apt mirror (or pass --kernel-image PATH)');
    if (!existsSync(KEYRING)) throw new SystemError(`${KEYRING} missing: install it with 'apt-get install -y debian-archive-keyring'`);
    for (const sub of ['lists/partial', 'cache/archives/partial', 'sources.list.d']) mkdirSync(join(this.dir, sub), { recursive: true });
    const sources = privateSources({ debian: m.debian, security: m.security });
    const path = join(this.dir, 'sources.list');
    const same = existsSync(path) && readFileSync(path, 'utf8') === sources;
    if (!same) writeFileSync(path, sources);
    const stamp = join(this.dir, 'updated');
    if (same && existsSync(stamp) && Date.now() - statSync(stamp).mtimeMs < LISTS_MAX_AGE_MS) return;
    progress('kernel: refreshing the package lists (bullseye, bookworm)');
    await run('apt-get', [...this.opts(), '-qq', 'update'], { timeoutMs: 300_000 });
    writeFileSync(stamp, new Date().toISOString() + '\n');
  }
  async search(regex: string): Promise<string> {
    return (await run('apt-cache', [...this.opts(), 'search', '--names-only', regex], { timeoutMs: 60_000 })).stdout;
  }
  /** Candidate version of a package; null when apt does not know it. */
  async candidate(name: string): Promise<string | null> {
    const r = await run('apt-cache', [...this.opts(), 'policy', name], { allowFail: true, timeoutMs: 60_000 });
    const v = /Candidate:\s*(\S+)/.exec(r.stdout)?.[1];
    return v && v !== '(none)' ? v : null;
  }
  /** Versions of every generic image of a series (for a --kernel VERSION lookup). */
  async versions(names: string[]): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    if (!names.length) return out;
    const r = await run('apt-cache', [...this.opts(), 'show', '--no-all-versions', ...names], { allowFail: true, timeoutMs: 60_000 });
    for (const block of r.stdout.split(/\n\n+/)) {
      const p = /^Package: (\S+)/m.exec(block)?.[1];
      const v = /^Version: (\S+)/m.exec(block)?.[1];
      if (p && v) out.set(p, v);
    }
    return out;
  }
  /** Download one package into `dir`; returns the .deb path. */
  async download(name: string, dir: string): Promise<string> {
    mkdirSync(dir, { recursive: true });
    await run('apt-get', [...this.opts(), '-qq', 'download', name], { cwd: dir, timeoutMs: 600_000 });
    const deb = readdirSync(dir).find((f) => f.startsWith(`${name}_`) && f.endsWith('.deb'));
    if (!deb) throw new SystemError(`apt-get download ${name} produced no .deb`);
    return join(dir, deb);
  }
}

/** Resolve a spec to a package name with apt's help. */
async function resolvePackage(apt: PrivateApt, spec: KernelSpec): Promise<string> {
  if (spec.kind === 'package') return spec.name;
  if (spec.kind === 'abi') return `linux-image-${spec.abi}-amd64`;
  const series = spec.kind === 'series' ? spec.series : /^(\d+\.\d+)\./.exec(spec.version)![1]!;
  const names = pickGenericImages(await apt.search(`^linux-image-${series.replace('.', '\\.')}\\.`), series);
  if (spec.kind === 'series') {
    const newest = names.at(-1);
    if (!newest) throw new InputError(`no linux-image-${series}.*-amd64 package on the mirror (lists in ${apt.dir})`, `--kernel ${series}`);
    return newest;
  }
  const versions = await apt.versions(names);
  const hit = [...versions].find(([, v]) => v === spec.version);
  if (!hit) throw new InputError(`no generic amd64 kernel package with version ${spec.version} (known: ${[...new Set(versions.values())].sort(compareVersions).slice(-5).join(', ') || 'none'})`, `--kernel ${spec.version}`);
  return hit[0];
}

interface CacheMeta {
  release: string;
  package: string;
  version: string;
  fetchedAt: string;
}

/** Find the kernel image and modules of an unpacked package (lib/modules or usr/lib/modules). */
function locate(root: string): { release: string; vmlinuz: string; modulesDir: string } | null {
  for (const mods of ['lib/modules', 'usr/lib/modules']) {
    const dir = join(root, mods);
    if (!existsSync(dir)) continue;
    for (const rel of readdirSync(dir)) {
      const vmlinuz = [join(root, 'boot', `vmlinuz-${rel}`), join(root, 'usr/lib/modules', rel, 'vmlinuz')].find(existsSync);
      if (vmlinuz) return { release: rel, vmlinuz, modulesDir: join(dir, rel) };
    }
  }
  return null;
}

/**
 * Fetch (or find in the cache) a Debian kernel: download, `dpkg-deb -x`, `depmod -b`. The cache
 * entry appears atomically (unpacked in a temp dir, then renamed), so a killed fetch leaves none.
 */
export async function fetchDebianKernel(specText: string, progress: (s: string) => void): Promise<GuestKernel> {
  const spec = parseKernelSpec(specText);
  const root = cacheRoot();
  const kernels = join(root, 'kernels');
  mkdirSync(kernels, { recursive: true });
  // An exact package already in the cache needs no apt at all.
  const direct = spec.kind === 'abi' ? `linux-image-${spec.abi}-amd64` : spec.kind === 'package' ? spec.name : null;
  if (direct) {
    const hit = cached(kernels, direct);
    if (hit) return hit;
  }
  const apt = new PrivateApt(root);
  await apt.ready(progress);
  const pkg = await resolvePackage(apt, spec);
  const hit = cached(kernels, pkg);
  if (hit) {
    progress(`kernel: ${pkg} ${hit.version} (cached)`);
    return hit;
  }
  const version = await apt.candidate(pkg);
  if (!version) throw new InputError(`apt does not know ${pkg} (lists in ${apt.dir})`, `--kernel ${specText}`);
  requireTool('dpkg-deb');
  requireTool('depmod');
  const tmp = join(kernels, `.fetch-${process.pid}-${Date.now()}`);
  try {
    progress(`kernel: downloading ${pkg} ${version}`);
    const deb = await apt.download(pkg, tmp);
    progress(`kernel: unpacking ${pkg}`);
    const tree = join(tmp, 'root');
    await run('dpkg-deb', ['-x', deb, tree], { timeoutMs: 300_000 });
    const found = locate(tree);
    if (!found) throw new SystemError(`${pkg}: no vmlinuz and modules directory in the package`);
    await run('depmod', ['-b', found.modulesDir.replace(/\/(usr\/)?lib\/modules\/[^/]+$/, ''), found.release], { timeoutMs: 300_000 });
    rmSync(deb, { force: true });
    const meta: CacheMeta = { release: found.release, package: pkg, version, fetchedAt: new Date().toISOString() };
    writeFileSync(join(tree, 'ctprobe-kernel.json'), JSON.stringify(meta, null, 2) + '\n');
    const dest = join(kernels, pkg);
    rmSync(dest, { recursive: true, force: true });
    renameSync(tree, dest);
    return cached(kernels, pkg)!;
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

function cached(kernels: string, pkg: string): GuestKernel | null {
  const dir = join(kernels, pkg);
  const metaPath = join(dir, 'ctprobe-kernel.json');
  if (!existsSync(metaPath)) return null;
  try {
    const meta = JSON.parse(readFileSync(metaPath, 'utf8')) as CacheMeta;
    const found = locate(dir);
    if (!found) return null;
    return { release: found.release, vmlinuz: found.vmlinuz, modulesDir: found.modulesDir, package: meta.package, version: meta.version, source: 'debian' };
  } catch {
    return null;
  }
}

/**
 * `--kernel-image PATH`: a vmlinuz with its modules directory — PATH's release is read from the
 * modules dir beside it (`--kernel-modules DIR`, or lib/modules/<one release> next to the image).
 */
export async function localKernel(image: string, modules: string | null): Promise<GuestKernel> {
  if (!existsSync(image) || !statSync(image).isFile()) throw new InputError('no such kernel image (a vmlinuz file)', image);
  let dir = modules;
  if (!dir) {
    const guess = /vmlinuz-(.+)$/.exec(image)?.[1];
    const candidates = guess ? [`/lib/modules/${guess}`, join(image, '../../lib/modules', guess)] : [];
    dir = candidates.find((c) => existsSync(join(c, 'modules.dep')) || existsSync(join(c, 'modules.order'))) ?? null;
  }
  if (!dir || !existsSync(dir)) throw new InputError(`cannot find the modules of ${image}: pass --kernel-modules DIR (the lib/modules/RELEASE directory)`, image);
  const release = dir.replace(/\/+$/, '').split('/').at(-1)!;
  if (!existsSync(join(dir, 'modules.dep'))) {
    requireTool('depmod');
    await run('depmod', ['-b', dir.replace(/\/(usr\/)?lib\/modules\/[^/]+\/?$/, '') || '/', release], { timeoutMs: 300_000 });
  }
  return { release, vmlinuz: image, modulesDir: dir, package: null, version: null, source: 'image' };
}
