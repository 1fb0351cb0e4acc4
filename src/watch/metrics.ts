/**
 * The Prometheus side of `watch`, through prom-client (it writes the exposition format). The agent
 * calls these methods; nothing else in ctprobe knows prom-client. Label cardinality is bounded:
 * reasons are normalised (numbers become N) and the number of label sets of the per-line counter
 * is capped (the rest count under reason="other"); a namespace's series are removed some time
 * after it is gone (so a last scrape still sees its final values).
 */
import { Counter, Gauge, Registry } from 'prom-client';

export const CONNTRACK_COUNTERS = ['invalid', 'insert_failed', 'drop', 'early_drop'] as const;
export type ConntrackCounter = (typeof CONNTRACK_COUNTERS)[number];

const NS = ['netns', 'pod'] as const;

export class WatchMetrics {
  readonly registry = new Registry();
  private readonly up = new Gauge({ name: 'ctprobe_up', help: '1 while ctprobe watch runs and its last cycle completed', registers: [this.registry] });
  private readonly conntrack: Record<ConntrackCounter, Counter<(typeof NS)[number]>>;
  private readonly invalidLines = new Counter({
    name: 'ctprobe_invalid_packets_total',
    help: 'Invalid-packet lines the kernel logged (nf_ct_proto_6 or a LOG rule), by namespace, pod and the kernel reason (numbers as N)',
    labelNames: ['netns', 'pod', 'source', 'reason'] as const,
    registers: [this.registry],
  });
  private readonly leaks = new Gauge({ name: 'ctprobe_halfclosed_leaks', help: 'Half-closed proxy sockets held in FIN-WAIT-2 with no conntrack entry left (the sidecar half-close leak)', labelNames: ['netns', 'pod', 'proxy_port'] as const, registers: [this.registry] });
  private readonly leakAge = new Gauge({ name: 'ctprobe_leak_age_seconds', help: 'Age of the oldest present half-closed leak since ctprobe first saw it', labelNames: ['netns', 'pod', 'proxy_port'] as const, registers: [this.registry] });
  private readonly logEnabled = new Gauge({ name: 'ctprobe_invalid_log_enabled', help: "1 when the kernel explains this namespace's INVALID packets in its log (nf_conntrack_log_invalid 6 or 255, and a logger that reaches ctprobe)", labelNames: NS, registers: [this.registry] });
  private readonly watched = new Gauge({ name: 'ctprobe_watched_namespaces', help: 'Network namespaces watched now', registers: [this.registry] });
  private readonly unwatched = new Gauge({ name: 'ctprobe_unwatched_namespaces', help: 'Network namespaces not watched because of --max-netns', registers: [this.registry] });
  private readonly linesSuppressed = new Counter({ name: 'ctprobe_invalid_events_suppressed_total', help: 'Invalid-packet lines counted but not emitted as events (rate limit --max-events)', registers: [this.registry] });
  private readonly recordsMissed = new Counter({ name: 'ctprobe_kernel_log_records_missed_total', help: 'Kernel log records overwritten before ctprobe read them (a flood beyond its read budget)', registers: [this.registry] });
  private readonly labelsCapped = new Counter({ name: 'ctprobe_label_sets_capped_total', help: 'Lines counted under reason="other" because the label-set cap was reached', registers: [this.registry] });
  private readonly cycleSeconds = new Gauge({ name: 'ctprobe_watch_cycle_seconds', help: 'Duration of the last watch cycle (statistics and leak scan of every namespace)', registers: [this.registry] });
  private readonly lineKeys = new Map<string, Set<string>>(); // netns → label keys of invalidLines
  private lineKeyCount = 0;

  constructor(private readonly maxLineSeries = 2000) {
    const c = (name: ConntrackCounter) =>
      new Counter({ name: `ctprobe_conntrack_${name}_total`, help: `conntrack's ${name} statistic of the namespace, summed over CPUs (/proc/net/stat/nf_conntrack)`, labelNames: NS, registers: [this.registry] });
    this.conntrack = { invalid: c('invalid'), insert_failed: c('insert_failed'), drop: c('drop'), early_drop: c('early_drop') };
    // The agent's own footprint, under the standard process_ names (prom-client's default set
    // also has nodejs_*_total gauges, which promtool rejects).
    new Gauge({ name: 'process_resident_memory_bytes', help: 'Resident memory size in bytes', registers: [this.registry], collect() { this.set(process.memoryUsage.rss()); } });
    new Gauge({ name: 'nodejs_heap_size_used_bytes', help: 'Process heap size used from Node.js in bytes', registers: [this.registry], collect() { this.set(process.memoryUsage().heapUsed); } });
    new Counter({
      name: 'process_cpu_seconds_total',
      help: 'User and system CPU time spent in seconds',
      registers: [this.registry],
      collect() {
        const u = process.cpuUsage();
        this.reset();
        this.inc((u.user + u.system) / 1e6);
      },
    });
  }

  setUp(v: boolean): void {
    this.up.set(v ? 1 : 0);
  }

  conntrackCounter(netns: string, pod: string | null, name: ConntrackCounter, delta: number): void {
    this.conntrack[name].inc({ netns, pod: pod ?? '' }, delta);
  }

  invalidLine(netns: string | null, pod: string | null, source: string, reason: string): void {
    const ns = netns ?? 'unknown';
    let keys = this.lineKeys.get(ns);
    const key = `${pod ?? ''}\0${source}\0${reason}`;
    if (!keys?.has(key)) {
      if (this.lineKeyCount >= this.maxLineSeries) {
        this.labelsCapped.inc();
        [source, reason] = ['other', 'other'];
      } else {
        if (!keys) this.lineKeys.set(ns, (keys = new Set()));
        keys.add(key);
        this.lineKeyCount++;
      }
    }
    this.invalidLines.inc({ netns: ns, pod: pod ?? '', source, reason });
  }

  leakState(netns: string, pod: string | null, proxyPort: number, count: number, oldestAgeS: number): void {
    const l = { netns, pod: pod ?? '', proxy_port: String(proxyPort) };
    this.leaks.set(l, count);
    this.leakAge.set(l, oldestAgeS);
  }

  invalidLogEnabled(netns: string, pod: string | null, v: boolean | null): void {
    if (v !== null) this.logEnabled.set({ netns, pod: pod ?? '' }, v ? 1 : 0);
  }

  namespaces(watched: number, unwatched: number): void {
    this.watched.set(watched);
    this.unwatched.set(unwatched);
  }

  suppressed(n: number): void {
    if (n > 0) this.linesSuppressed.inc(n);
  }

  missed(n: number): void {
    if (n > 0) this.recordsMissed.inc(n);
  }

  cycle(seconds: number): void {
    this.cycleSeconds.set(seconds);
  }

  /** Remove every series of a namespace that is gone. */
  forget(netns: string, pod: string | null, proxyPort: number): void {
    const l = { netns, pod: pod ?? '' };
    for (const c of Object.values(this.conntrack)) c.remove(l);
    this.logEnabled.remove(l);
    this.leaks.remove({ ...l, proxy_port: String(proxyPort) });
    this.leakAge.remove({ ...l, proxy_port: String(proxyPort) });
    const keys = this.lineKeys.get(netns);
    for (const k of keys ?? []) {
      const [p, source, reason] = k.split('\0');
      this.invalidLines.remove({ netns, pod: p!, source: source!, reason: reason! });
    }
    this.lineKeyCount -= keys?.size ?? 0;
    this.lineKeys.delete(netns);
  }

  render(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
