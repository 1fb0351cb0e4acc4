/** Line plumbing shared by the parsers: whole text or an (async) iterable of lines. */
export type LineSource = string | Iterable<string> | AsyncIterable<string>;

export async function* linesOf(src: LineSource): AsyncGenerator<string> {
  if (typeof src === 'string') {
    for (const l of src.split('\n')) yield l;
    return;
  }
  for await (const l of src as AsyncIterable<string>) yield l;
}

/** Split "addr:port" as ss prints it: [v6]:port, v6%scope:port, *:*, 0.0.0.0:*. */
export function splitEndpoint(s: string): { addr: string; port: number | null; scope: string | null } | null {
  const i = s.lastIndexOf(':');
  if (i <= 0) return null;
  let addr = s.slice(0, i);
  const portText = s.slice(i + 1);
  const port = portText === '*' ? null : /^\d+$/.test(portText) ? Number(portText) : NaN;
  if (Number.isNaN(port)) return null;
  let scope: string | null = null;
  const pct = addr.indexOf('%');
  if (pct >= 0) {
    scope = addr.slice(pct + 1).replace(/\]$/, '');
    addr = addr.slice(0, pct) + (addr.startsWith('[') ? ']' : '');
  }
  if (addr.startsWith('[') && addr.endsWith(']')) addr = addr.slice(1, -1);
  if (addr.startsWith('::ffff:') && addr.includes('.')) addr = addr.slice(7);
  return { addr, port, scope };
}
