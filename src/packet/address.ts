/** IPv4/IPv6 addresses between their byte and text forms. */
import { isIPv4, isIPv6 } from 'node:net';
import { InputError } from '../errors.js';

export function ipv4ToString(b: Uint8Array, off = 0): string {
  return `${b[off]}.${b[off + 1]}.${b[off + 2]}.${b[off + 3]}`;
}

export function ipv6ToString(b: Uint8Array, off = 0): string {
  // RFC 5952: compress the longest run (≥2) of zero groups, the first of equal ones (no array, no
  // join: a replay formats the address of every new IPv6 tuple)
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (b[off + 2 * i] !== 0 || b[off + 2 * i + 1] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && b[off + 2 * j] === 0 && b[off + 2 * j + 1] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  let text = '';
  for (let i = 0; i < 8; i++) {
    if (i === bestStart) {
      text += '::';
      i += bestLen - 1;
      continue;
    }
    if (i > 0 && i !== bestStart + bestLen) text += ':';
    text += ((b[off + 2 * i]! << 8) | b[off + 2 * i + 1]!).toString(16);
  }
  return text;
}

export function parseIPv4(text: string): Uint8Array {
  if (!isIPv4(text)) throw new InputError(`'${text}' is not an IPv4 address`);
  return Uint8Array.from(text.split('.').map(Number));
}

export function parseIPv6(text: string): Uint8Array {
  if (!isIPv6(text)) throw new InputError(`'${text}' is not an IPv6 address`);
  const out = new Uint8Array(16);
  let s = text;
  let tail4: number[] | null = null;
  const m = /(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  if (m) {
    tail4 = m[1]!.split('.').map(Number);
    s = s.slice(0, -m[1]!.length) + '0:0';
  }
  const [head, rest] = s.split('::') as [string, string | undefined];
  const h = head ? head.split(':') : [];
  const t = rest !== undefined && rest !== '' ? rest.split(':') : [];
  const groups = rest === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  groups.forEach((g, i) => {
    const v = parseInt(g, 16);
    out[i * 2] = v >> 8;
    out[i * 2 + 1] = v & 0xff;
  });
  if (tail4) out.set(tail4, 12);
  return out;
}

/** Bytes of an address given as text (IPv4 or IPv6). */
export function parseIP(text: string): Uint8Array {
  return text.includes(':') ? parseIPv6(text) : parseIPv4(text);
}

/** Canonical text of an address as ss prints it (RFC 5952; an IPv4-mapped IPv6 address as IPv4). */
const canonCache = new Map<string, string>();
export function canonicalIp(text: string): string {
  if (!text.includes(':')) return text;
  let c = canonCache.get(text);
  if (c !== undefined) return c;
  if (!isIPv6(text)) return text;
  const b = parseIPv6(text);
  let mapped = b[10] === 0xff && b[11] === 0xff;
  for (let i = 0; i < 10 && mapped; i++) mapped = b[i] === 0;
  c = mapped ? ipv4ToString(b, 12) : ipv6ToString(b);
  if (canonCache.size < 1 << 16) canonCache.set(text, c);
  return c;
}
