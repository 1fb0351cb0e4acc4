/** The server's defaults, apart from the server so that `ctprobe server --help` (and every other command's start-up) does not load it. */
import type { ProbeServerOptions } from './server.js';

export const DEFAULT_SERVER_OPTIONS: ProbeServerOptions = {
  port: 9000,
  bind: '0.0.0.0',
  offset: 100000,
  count: 1,
  payload: 9,
  holdMs: 10_000,
  lingerMs: 1000,
  maxConnections: 65536,
};
