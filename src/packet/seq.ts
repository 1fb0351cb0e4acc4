/**
 * 32-bit TCP sequence arithmetic with wrap-around (RFC 1982 style, as the kernel's before()/after()).
 * All inputs are treated as u32; results are u32 numbers in [0, 2^32).
 */

/** a − b as a signed 32-bit distance. */
export function seqDiff(a: number, b: number): number {
  return (a - b) | 0;
}

/** a is strictly before b (kernel `before(a, b)`). */
export function seqBefore(a: number, b: number): boolean {
  return ((a - b) | 0) < 0;
}

/** a is strictly after b (kernel `after(a, b)`). */
export function seqAfter(a: number, b: number): boolean {
  return ((b - a) | 0) < 0;
}

/** a + n modulo 2^32; n may be negative. */
export function seqAdd(a: number, n: number): number {
  return (a + n) >>> 0;
}

/** a − n modulo 2^32. */
export function seqSub(a: number, n: number): number {
  return (a - n) >>> 0;
}
