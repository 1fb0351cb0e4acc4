export * from './lines.js';
export * from './ss.js';
export * from './conntrack.js';
export * from './nstat.js';
export * from './kernlog.js';
export * from './leaks.js';
export * from './procnet.js';
export * from './attribute.js';
