/**
 * The event contract between ctprobe's long-running peers (server, client, proxy, the lab's app
 * and upstream) and whoever reads their JSON lines (the lab, users' scripts). Versioned: every
 * line carries `v`; a reader refuses a version it does not know instead of guessing. Both sides
 * use these types, so a renamed field breaks the build, not a lab run.
 */
export const EVENT_VERSION = 1;

export type Verdict = 'reset' | 'clean' | 'open';
export type ConnPhase = 'handshake' | 'established' | 'peer-fin' | 'closing' | 'closed';
export type AttemptOutcome = 'ok' | 'reset' | 'timeout' | 'refused' | 'error';

export interface ProbeSummary {
  connections: number;
  injected: number;
  reset: number;
  clean: number;
  open: number;
  evicted: number;
  segments: number;
}

/** `ctprobe server`. */
export type ServerEvent =
  | { type: 'listening'; ts: number; port: number; bind: string; offset: number; count: number }
  | { type: 'established'; ts: number; conn: string }
  | { type: 'injected'; ts: number; conn: string; seq: number; ack: number; count: number; offset: number; bytes: number }
  | { type: 'fin'; ts: number; conn: string }
  | { type: 'reset'; ts: number; conn: string; seq: number; phase: ConnPhase }
  | { type: 'closed'; ts: number; conn: string; verdict: Verdict; ms: number }
  | ({ type: 'server-summary'; ts: number } & ProbeSummary);

export interface AttemptResult {
  attempt: number;
  outcome: AttemptOutcome;
  /** Local endpoint used, when the connection was established. */
  local: string | null;
  connectMs: number | null;
  totalMs: number;
  bytes: number;
  /** Who closed first: us after idle, or the server. */
  closedBy: 'client' | 'server' | null;
  /** After our FIN, the server's FIN did not arrive within the timeout. */
  closeStalled: boolean;
  error: string | null;
}

export interface ClientSummary {
  attempts: number;
  ok: number;
  reset: number;
  timeout: number;
  refused: number;
  error: number;
}

/** `ctprobe client`. */
export type ClientEvent = ({ type: 'attempt'; ts: number } & AttemptResult) | ({ type: 'client-summary'; ts: number } & ClientSummary);

/** `ctprobe proxy`. */
export type ProxyEvent =
  | { type: 'proxy-listening'; ts: number; port: number; idleTimeoutMs: number }
  | { type: 'accepted'; ts: number; id: number; app: string; upstream: string }
  | { type: 'half-close'; ts: number; id: number; from: 'app' | 'upstream' }
  | { type: 'idle-timeout'; ts: number; id: number; idleMs: number }
  | { type: 'pair-closed'; ts: number; id: number; reason: 'both-ended' | 'idle-timeout' | 'error' | 'stopped'; ms: number }
  | { type: 'proxy-error'; ts: number; id: number; side: 'app' | 'upstream'; message: string };

/** The half-close lab's upstream and app (src/lab/peers.ts). */
export type PeerEvent =
  | { type: 'upstream-listening'; ts: number; port: number }
  | { type: 'upstream-accepted'; ts: number; peer: string }
  | { type: 'upstream-fin'; ts: number; peer: string }
  | { type: 'connected'; ts: number; local: string; ms: number }
  | { type: 'connect-failed'; ts: number; error: string | null; ms: number }
  | { type: 'app-error'; ts: number; message: string }
  | { type: 'eof'; ts: number }
  | { type: 'app-fin'; ts: number }
  | { type: 'reuse'; ts: number; result: string | null; ms: number };

export type WireEvent = ServerEvent | ClientEvent | ProxyEvent | PeerEvent;
export type WireType = WireEvent['type'];

const TYPES: ReadonlySet<string> = new Set<WireType>([
  'listening', 'established', 'injected', 'fin', 'reset', 'closed', 'server-summary',
  'attempt', 'client-summary',
  'proxy-listening', 'accepted', 'half-close', 'idle-timeout', 'pair-closed', 'proxy-error',
  'upstream-listening', 'upstream-accepted', 'upstream-fin', 'connected', 'connect-failed', 'app-error', 'eof', 'app-fin', 'reuse',
]);

/** One JSON line: the type first, then the version, then the fields. */
export function encodeEvent(e: WireEvent): string {
  const { type, ...rest } = e;
  return JSON.stringify({ type, v: EVENT_VERSION, ...rest });
}

/** Parse one line; null for a line that is not an event of this version (stray output). */
export function decodeEvent(line: string): WireEvent | null {
  if (!line.startsWith('{')) return null;
  let o: unknown;
  try {
    o = JSON.parse(line);
  } catch {
    return null;
  }
  if (typeof o !== 'object' || o === null) return null;
  const { v, type } = o as { v?: unknown; type?: unknown };
  if (v !== EVENT_VERSION || typeof type !== 'string' || !TYPES.has(type)) return null;
  return o as WireEvent;
}

/** Narrow a decoded event to one type. */
export function isEvent<T extends WireType>(e: WireEvent, type: T): e is Extract<WireEvent, { type: T }> {
  return e.type === type;
}
