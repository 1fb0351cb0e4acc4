/**
 * Support bundles: `ctprobe collect` reads every source of sources.ts from a host or pod (plus a
 * short capture when asked) into a directory or a .tar.gz with a manifest; `--from` reads one back
 * as the same HostData a live run sees, so audit, leaks, invalid-log and explain give the same
 * answers offline. A source that failed is recorded with why, and stays unknown when read back.
 */
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { errorText, fileError, InputError, PrivilegeError } from '../errors.js';
import { isRoot, requireTool, run } from './exec.js';
import { readHost, SOURCES, type HostData, type Read, type SourceName } from './sources.js';
import { describeTarget, type Target } from './target.js';

/** tar is loaded only to write or unpack a bundle: importing it cost every ctprobe start-up ~0.1 s (each lab cell starts two). */
const loadTar = () => import('tar');

export const BUNDLE_VERSION = 1;
const MANIFEST = 'manifest.json';
const CAPTURE = 'capture.pcap';

export interface Manifest {
  type: 'ctprobe-bundle';
  version: number;
  target: string;
  kernelRelease: string;
  collectedAt: string;
  sysctls: Record<string, number | null>;
  /** Per source: the file it is in, or why it could not be read. */
  sources: Partial<Record<SourceName, { file: string; command: string; ok: boolean; why: string | null }>>;
  capture: { file: string; seconds: number; ok: boolean; why: string | null } | null;
}

export interface CollectResult {
  out: string;
  target: string;
  files: number;
  failed: Array<{ what: string; why: string }>;
  capture: Manifest['capture'];
  bytes: number;
}

export type CollectProgress = { step: 'read' | 'capture' | 'pack'; what: string };

/** Read everything into `out` (a directory, or a .tar.gz / .tgz file). */
export async function collectBundle(t: Target, o: { out: string; captureMs: number | null; onProgress?: (p: CollectProgress) => void }): Promise<CollectResult> {
  if (!isRoot()) throw new PrivilegeError("collect reads the firewall, every process's sockets and the kernel log: run it as root");
  const tarball = /\.(tar\.gz|tgz)$/.test(o.out);
  const dir = tarball ? mkdtempSync(join(tmpdir(), 'ctprobe-collect-')) : o.out;
  const cleanup = () => tarball && rmSync(dir, { recursive: true, force: true });
  process.once('exit', cleanup);
  try {
    mkdirSync(dir, { recursive: true });
    o.onProgress?.({ step: 'read', what: `${Object.keys(SOURCES).length} sources from ${describeTarget(t)}` });
    const data = readHost(t, Object.keys(SOURCES) as SourceName[]);
    const manifest: Manifest = { type: 'ctprobe-bundle', version: BUNDLE_VERSION, target: data.target, kernelRelease: data.kernelRelease, collectedAt: new Date().toISOString(), sysctls: data.sysctls, sources: {}, capture: null };
    for (const [name, r] of Object.entries(data.reads) as Array<[SourceName, Read]>) {
      const s = SOURCES[name];
      if (r.text !== null) writeFileSync(join(dir, s.file), r.text);
      manifest.sources[name] = { file: s.file, command: [s.tool, ...s.args].join(' '), ok: r.text !== null, why: r.why };
    }
    if (o.captureMs) {
      o.onProgress?.({ step: 'capture', what: `tcpdump -i any for ${o.captureMs / 1000}s` });
      manifest.capture = await capture(t, join(dir, CAPTURE), o.captureMs);
    }
    writeFileSync(join(dir, MANIFEST), JSON.stringify(manifest, null, 2) + '\n');
    const files = Object.values(manifest.sources).filter((s) => s.ok).map((s) => s.file);
    if (manifest.capture?.ok) files.push(CAPTURE);
    files.push(MANIFEST);
    if (tarball) {
      o.onProgress?.({ step: 'pack', what: o.out });
      await (await loadTar()).c({ gzip: true, file: o.out, cwd: dir, portable: true }, files);
    }
    const failed = Object.entries(manifest.sources)
      .filter(([, s]) => !s.ok)
      .map(([n, s]) => ({ what: SOURCES[n as SourceName].what, why: s.why ?? '' }));
    return { out: o.out, target: data.target, files: files.length, failed, capture: manifest.capture, bytes: tarball ? statSync(o.out).size : files.reduce((n, f) => n + statSync(join(dir, f)).size, 0) };
  } finally {
    cleanup();
    process.off('exit', cleanup);
  }
}

async function capture(t: Target, file: string, ms: number): Promise<NonNullable<Manifest['capture']>> {
  requireTool('tcpdump');
  const netns = t.kind === 'netns' ? t.name : undefined;
  // tcpdump's own -G/-W would rotate; a bounded run with SIGINT at the end keeps the file whole.
  const args = ['-i', 'any', '-n', '-U', '-s', '262144', '-w', file, 'tcp'];
  const r = t.kind === 'pid' ? await run('nsenter', ['-t', String(t.pid), '-n', requireTool('timeout'), '-s', 'INT', `${ms / 1000}`, requireTool('tcpdump'), ...args], { allowFail: true, timeoutMs: ms + 10_000 }) : await run('timeout', ['-s', 'INT', `${ms / 1000}`, requireTool('tcpdump'), ...args], { netns, allowFail: true, timeoutMs: ms + 10_000 });
  const ok = r.status === 0 || r.status === 124;
  return { file: CAPTURE, seconds: ms / 1000, ok, why: ok ? null : `tcpdump failed: ${r.stderr.trim().split('\n').pop() ?? ''}` };
}

/** A bundle opened for reading: from a directory, or a .tar.gz extracted to a temp dir. */
export class Bundle {
  private constructor(
    readonly path: string,
    readonly dir: string,
    readonly manifest: Manifest,
    private readonly temp: boolean,
  ) {}

  static async open(path: string): Promise<Bundle> {
    let st;
    try {
      st = statSync(path);
    } catch (e) {
      throw fileError(path, e);
    }
    let dir = path;
    let temp = false;
    if (!st.isDirectory()) {
      dir = mkdtempSync(join(tmpdir(), 'ctprobe-bundle-'));
      temp = true;
      process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
      try {
        await (await loadTar()).x({ file: path, cwd: dir, strict: true });
      } catch (e) {
        rmSync(dir, { recursive: true, force: true });
        throw new InputError(`not a ctprobe bundle (.tar.gz or directory): ${errorText(e)}`, path);
      }
    }
    let manifest: Manifest;
    try {
      manifest = JSON.parse(readFileSync(join(dir, MANIFEST), 'utf8')) as Manifest;
    } catch {
      if (temp) rmSync(dir, { recursive: true, force: true });
      throw new InputError(`no readable ${MANIFEST}: not a bundle made by 'ctprobe collect'`, path);
    }
    if (manifest.type !== 'ctprobe-bundle' || manifest.version !== BUNDLE_VERSION) {
      if (temp) rmSync(dir, { recursive: true, force: true });
      throw new InputError(`bundle version ${String(manifest.version)} is not ${BUNDLE_VERSION}: collect it again with this ctprobe`, path);
    }
    return new Bundle(path, dir, manifest, temp);
  }

  /** The path of a source's file, or null (with why) when it was not collected. */
  file(name: SourceName): Read {
    const s = this.manifest.sources[name];
    if (!s) return { text: null, why: `not in the bundle ${basename(this.path)}` };
    if (!s.ok) return { text: null, why: s.why ?? 'failed when collected' };
    return { text: join(this.dir, s.file), why: null };
  }

  capturePath(): string | null {
    return this.manifest.capture?.ok ? join(this.dir, this.manifest.capture.file) : null;
  }

  /** The same HostData a live read of these sources gives. */
  hostData(names: readonly SourceName[]): HostData {
    const reads: HostData['reads'] = {};
    for (const n of names) {
      const f = this.file(n);
      reads[n] = f.text === null ? f : { text: readFileSync(f.text, 'utf8'), why: null };
    }
    return { target: `${this.manifest.target} (bundle ${basename(this.path)}, ${this.manifest.collectedAt})`, kernelRelease: this.manifest.kernelRelease, sysctls: this.manifest.sysctls, reads };
  }

  close(): void {
    if (this.temp) rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * The capture of a bundle, copied out to a temp file that lives until the process exits (the
 * bundle's own extraction is removed at once).
 */
export async function bundleCapture(path: string): Promise<{ file: string; kernelRelease: string; conntrackList: string | null; conntrackMax: number | null }> {
  const b = await Bundle.open(path);
  try {
    const c = b.capturePath();
    if (!c) throw new InputError(`the bundle has no capture: collect it with --capture 10s`, path);
    const dir = mkdtempSync(join(tmpdir(), 'ctprobe-capture-'));
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
    const out = join(dir, 'capture.pcap');
    copyFileSync(c, out);
    // conntrack -L of the same moment: NAT mappings explain cannot see in the capture
    const ct = b.file('conntrackList');
    const max = b.manifest.sysctls.nf_conntrack_max;
    return { file: out, kernelRelease: b.manifest.kernelRelease, conntrackList: ct.text === null ? null : readFileSync(ct.text, 'utf8'), conntrackMax: typeof max === 'number' ? max : null };
  } finally {
    b.close();
  }
}
