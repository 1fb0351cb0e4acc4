/** `bits` with `mask` set (`on`) or cleared: a flag kept as a bit of one number (an object's flags in one field). */
export const withBit = (bits: number, mask: number, on: boolean): number => (on ? bits | mask : bits & ~mask);
