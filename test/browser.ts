/**
 * A real browser for the pictures: headless Chromium (Debian package `chromium`) takes a
 * screenshot of a page, and `pngStats` says whether something was drawn (no image library:
 * zlib and the PNG filters, as /work/shared/acceptance/png_stats.py does).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { inflateSync } from 'node:zlib';
import { hasTool } from './netns.js';

export const chromium = ['chromium', 'chromium-browser'].find(hasTool) ?? null;

/** Screenshot `page` (a file path) at width × height; returns the PNG's path. */
export function screenshot(page: string, out: string, width = 1200, height = 900): string {
  const profile = mkdtempSync(`${tmpdir()}/ctp-chromium-`);
  try {
    const r = spawnSync(
      chromium!,
      ['--headless', '--no-sandbox', '--disable-gpu', '--hide-scrollbars', `--user-data-dir=${profile}`, `--screenshot=${out}`, `--window-size=${width},${height}`, `file://${page}`],
      { encoding: 'utf8', timeout: 90_000 },
    );
    if (r.status !== 0) throw new Error(`chromium exited ${r.status}: ${r.stderr.slice(-400)}`);
    return out;
  } finally {
    rmSync(profile, { recursive: true, force: true });
  }
}

export interface PngStats {
  width: number;
  height: number;
  /** Distinct RGB colours. */
  colours: number;
  /** Fraction of pixels that are not near-white. */
  nonWhite: number;
  /** Fraction of pixels that are clearly red (INVALID and the host's RST are drawn red). */
  red: number;
}

export function pngStats(path: string): PngStats {
  const d = readFileSync(path);
  if (d.subarray(0, 8).toString('hex') !== '89504e470d0a1a0a') throw new Error(`${path}: not a PNG`);
  let i = 8;
  let width = 0;
  let height = 0;
  let colourType = 0;
  const idat: Buffer[] = [];
  while (i < d.length) {
    const n = d.readUInt32BE(i);
    const type = d.subarray(i + 4, i + 8).toString('latin1');
    const body = d.subarray(i + 8, i + 8 + n);
    if (type === 'IHDR') {
      width = body.readUInt32BE(0);
      height = body.readUInt32BE(4);
      if (body[8] !== 8) throw new Error('only 8-bit PNGs');
      colourType = body[9]!;
    } else if (type === 'IDAT') idat.push(body);
    i += 12 + n;
  }
  const bpp = colourType === 6 ? 4 : colourType === 2 ? 3 : 0;
  if (!bpp) throw new Error(`PNG colour type ${colourType} not supported`);
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * bpp;
  let prev = Buffer.alloc(stride);
  const colours = new Set<number>();
  let nonWhite = 0;
  let red = 0;
  for (let y = 0, p = 0; y < height; y++, p += stride + 1) {
    const filter = raw[p]!;
    const line = Buffer.from(raw.subarray(p + 1, p + 1 + stride));
    for (let x = 0; x < stride; x++) {
      const a = x >= bpp ? line[x - bpp]! : 0;
      const b = prev[x]!;
      const c = x >= bpp ? prev[x - bpp]! : 0;
      let v = line[x]!;
      if (filter === 1) v += a;
      else if (filter === 2) v += b;
      else if (filter === 3) v += (a + b) >> 1;
      else if (filter === 4) {
        const pa = Math.abs(b - c);
        const pb = Math.abs(a - c);
        const pc = Math.abs(a + b - 2 * c);
        v += pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      }
      line[x] = v & 255;
    }
    for (let x = 0; x < stride; x += bpp) {
      const [r, g, bl] = [line[x]!, line[x + 1]!, line[x + 2]!];
      colours.add((r << 16) | (g << 8) | bl);
      if (Math.min(r, g, bl) < 235) nonWhite++;
      if (r > 150 && g < 80 && bl < 80) red++;
    }
    prev = line;
  }
  return { width, height, colours: colours.size, nonWhite: nonWhite / (width * height), red: red / (width * height) };
}
