/**
 * How much slower than a host this machine runs: a lab guest in software emulation sets
 * CTPROBE_LAB_TIME_SCALE (node starts in seconds there, not milliseconds). Bounds only, never
 * the scenario's own timing (delays, timeouts under test).
 */
export const TIME_SCALE = Math.min(20, Math.max(1, Number(process.env.CTPROBE_LAB_TIME_SCALE) || 1));

/** How long a peer may take to start (node start-up on a loaded 2-core machine can take seconds). */
export const STARTUP_MS = 20_000 * TIME_SCALE;
