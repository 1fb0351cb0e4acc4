/**
 * The Internet checksum (RFC 1071) and the TCP pseudo-header sums for IPv4 and IPv6.
 * Sums are accumulated as plain numbers (no allocation) and folded at the end.
 */

/** One's-complement 16-bit sum of bytes[start, end), added to `sum` (unfolded). */
export function sum16(bytes: Uint8Array, start = 0, end = bytes.length, sum = 0): number {
  let i = start;
  for (; i + 1 < end; i += 2) sum += (bytes[i]! << 8) | bytes[i + 1]!;
  if (i < end) sum += bytes[i]! << 8; // odd length: pad with a zero byte
  return sum;
}

/** Fold a 32-bit+ sum to 16 bits and complement it. */
export function finish(sum: number): number {
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return ~sum & 0xffff;
}

/** Internet checksum of a byte range. {0x55} → 0xffaa. */
export function internetChecksum(bytes: Uint8Array, start = 0, end = bytes.length): number {
  return finish(sum16(bytes, start, end));
}

/** Pseudo-header sum for TCP over IPv4 (src, dst: 4 bytes each). */
export function pseudoSumV4(src: Uint8Array, dst: Uint8Array, protocol: number, length: number): number {
  return sum16(src, 0, 4) + sum16(dst, 0, 4) + protocol + length;
}

/** Pseudo-header sum for TCP over IPv6 (src, dst: 16 bytes each; upper-layer length is 32 bits). */
export function pseudoSumV6(src: Uint8Array, dst: Uint8Array, nextHeader: number, length: number): number {
  return sum16(src, 0, 16) + sum16(dst, 0, 16) + Math.floor(length / 0x10000) + (length & 0xffff) + nextHeader;
}

/** TCP checksum of a segment (header with checksum field zero or not — the field is skipped). */
export function tcpChecksum(segment: Uint8Array, src: Uint8Array, dst: Uint8Array): number {
  const len = segment.length;
  let sum = src.length === 16 ? pseudoSumV6(src, dst, 6, len) : pseudoSumV4(src, dst, 6, len);
  sum = sum16(segment, 0, 16, sum); // up to the checksum field
  sum = sum16(segment, 18, len, sum); // after it
  return finish(sum);
}

/** True when a received segment's checksum is right (sum over everything folds to 0xffff). */
export function tcpChecksumOk(segment: Uint8Array, src: Uint8Array, dst: Uint8Array): boolean {
  const len = segment.length;
  const sum = src.length === 16 ? pseudoSumV6(src, dst, 6, len) : pseudoSumV4(src, dst, 6, len);
  return finish(sum16(segment, 0, len, sum)) === 0;
}
