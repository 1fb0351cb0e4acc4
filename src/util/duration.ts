import { UsageError } from '../errors.js';

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Parse "500ms", "3s", "1.5s", "2m", "1h" or a bare number of seconds into milliseconds. */
export function parseDuration(text: string, flag = 'duration'): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (!m) throw new UsageError(`${flag}: '${text}' is not a duration (try 500ms, 3s, 2m, 1h)`);
  const value = Number(m[1]);
  const unit = m[2] ?? 's';
  return Math.round(value * (UNIT_MS[unit] ?? 1000));
}

export function formatMs(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)}s`;
  if (ms < 3_600_000) return `${(ms / 60_000).toFixed(1)}m`;
  return ms % 3_600_000 === 0 ? `${ms / 3_600_000}h` : `${(ms / 3_600_000).toFixed(1)}h`;
}

export function parseIntFlag(text: string, flag: string, min = -Infinity, max = Infinity): number {
  if (!/^[+-]?\d+$/.test(text.trim())) throw new UsageError(`${flag}: '${text}' is not an integer`);
  const n = Number(text);
  if (n < min || n > max) throw new UsageError(`${flag}: ${n} is out of range (${min}..${max})`);
  return n;
}
