/**
 * The scrape endpoint: GET /metrics (Prometheus text format, rendered by prom-client) and
 * GET /healthz (200 once the first cycle is done and cycles keep completing, else 503).
 */
import { createServer, type Server } from 'node:http';
import { SystemError, UsageError } from '../errors.js';
import type { WatchMetrics } from './metrics.js';

/** "ADDR:PORT", "[v6]:PORT" or ":PORT" (every address). */
export function parseListen(text: string): { host: string | undefined; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(text);
  const port = Number(m?.[3]);
  if (!m || !(port >= 1 && port <= 65535)) throw new UsageError(`--listen: '${text}' is not ADDR:PORT (e.g. 127.0.0.1:9464, [::1]:9464, :9464)`);
  return { host: m[1] ?? (m[2] || undefined), port };
}

export async function serveMetrics(listen: string, metrics: WatchMetrics, healthy: () => boolean): Promise<Server> {
  const { host, port } = parseListen(listen);
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (path === '/metrics') {
      metrics.render().then(
        (body) => res.writeHead(200, { 'content-type': metrics.contentType }).end(body),
        () => res.writeHead(500).end('metrics could not be rendered\n'),
      );
    } else if (path === '/healthz') {
      const ok = healthy();
      res.writeHead(ok ? 200 : 503, { 'content-type': 'text/plain' }).end(ok ? 'ok\n' : 'starting or stalled\n');
    } else res.writeHead(404, { 'content-type': 'text/plain' }).end('ctprobe watch: /metrics or /healthz\n');
  });
  server.keepAliveTimeout = 5000;
  server.headersTimeout = 10_000;
  server.requestTimeout = 10_000;
  server.maxConnections = 64;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) =>
      reject(e.code === 'EADDRINUSE' ? new UsageError(`--listen ${listen}: the address is in use (another exporter? choose another port)`) : e.code === 'EADDRNOTAVAIL' ? new UsageError(`--listen ${listen}: no such address here`) : new SystemError(`--listen ${listen}: ${e.message}`)),
    );
    server.listen(port, host, () => resolve());
  });
  return server;
}

export function closeServer(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}
