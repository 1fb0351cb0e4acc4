/**
 * Line plumbing shared by the parsers. A source is a whole text, lines, or an async stream of
 * lines or of line batches (files are read in chunks and handed over a batch at a time: one
 * promise per batch, not per line, keeps 100k-line support bundles fast with bounded memory).
 */
import { createReadStream } from 'node:fs';
import { fileError } from '../errors.js';

export type LineSource = string | Iterable<string> | AsyncIterable<string | string[]>;

const BATCH = 4096;

export async function* lineBatches(src: LineSource): AsyncGenerator<string[]> {
  if (typeof src === 'string') {
    yield src.split('\n');
    return;
  }
  if (Symbol.iterator in Object(src)) {
    yield Array.isArray(src) ? src : [...(src as Iterable<string>)];
    return;
  }
  let batch: string[] = [];
  for await (const item of src as AsyncIterable<string | string[]>) {
    if (Array.isArray(item)) {
      if (batch.length) {
        yield batch;
        batch = [];
      }
      yield item;
    } else {
      batch.push(item);
      if (batch.length >= BATCH) {
        yield batch;
        batch = [];
      }
    }
  }
  if (batch.length) yield batch;
}

/** A file's lines in batches, read in chunks (bounded memory). */
export async function* fileLineBatches(path: string): AsyncGenerator<string[]> {
  let rest = '';
  const stream = createReadStream(path, { encoding: 'utf8', highWaterMark: 1 << 20 });
  try {
    for await (const chunk of stream) {
      const parts = (rest + (chunk as string)).split('\n');
      rest = parts.pop() ?? '';
      yield parts;
    }
  } catch (e) {
    // ENOENT, EISDIR, EACCES: one line naming the file and the fix.
    throw fileError(path, e);
  }
  if (rest) yield [rest];
}

/** Split "addr:port" as ss prints it: [v6]:port, [v6]%scope:port, *:*, 0.0.0.0:*. */
export function splitEndpoint(s: string): { addr: string; port: number | null; scope: string | null } | null {
  const i = s.lastIndexOf(':');
  if (i <= 0) return null;
  let addr = s.slice(0, i);
  let port: number | null = 0;
  if (i === s.length - 2 && s.charCodeAt(i + 1) === 42) port = null; // '*'
  else if (i === s.length - 1) return null;
  else {
    for (let k = i + 1; k < s.length; k++) {
      const d = s.charCodeAt(k) - 48;
      if (d < 0 || d > 9) return null;
      port = port * 10 + d;
    }
    if (s.length - i > 16) port = Number(s.slice(i + 1)); // beyond exact integer sums
  }
  // the common case: a plain address (no scope, brackets or mapped IPv4)
  const c0 = addr.charCodeAt(0);
  if (c0 !== 91 && c0 !== 58 && addr.indexOf('%') < 0) return { addr, port, scope: null };
  let scope: string | null = null;
  const pct = addr.indexOf('%');
  if (pct >= 0) {
    scope = addr.slice(pct + 1).replace(/\]$/, '');
    const before = addr.slice(0, pct);
    addr = before.startsWith('[') && !before.endsWith(']') ? `${before}]` : before;
  }
  if (addr.startsWith('[') && addr.endsWith(']')) addr = addr.slice(1, -1);
  if (addr.startsWith('::ffff:') && addr.includes('.')) addr = addr.slice(7);
  return { addr, port, scope };
}
