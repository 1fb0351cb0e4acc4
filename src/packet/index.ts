export * from './seq.js';
export * from './checksum.js';
export * from './address.js';
export * from './ip.js';
export * from './tcp.js';
