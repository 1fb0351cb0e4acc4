import { statSync } from 'node:fs';
import { release } from 'node:os';
import { setFlagsFromString } from 'node:v8';
import { UsageError } from '../../errors.js';
import type { Verdict } from '../../conntrack/model.js';
import { DEFAULT_CONNTRACK_MAX, hostConntrackMax } from '../../host/conntrack-max.js';
import type { TimeStyle } from '../../report/explain-text.js';
import { defineCommand, EXIT } from '../command.js';

const MAX_ROWS_PER_DIAGRAM = 600;
const MAX_DIAGRAMS = 60;
/** A capture this large gets an output thread for its JSON lines (a small one is done before it would start). */
const OFFLOAD_FROM_BYTES = 4 << 20;
/** V8 settings for a replay (set at run time: the bin has no node flags; again after a worker starts, which resets them). */
function tuneV8(): void {
  // Memory: a replay's per-packet garbage dies young and what lives (the flow table) is old
  // anyway, so V8's young generation need not grow to 3 × 16 MB (V8 reads this flag each time it
  // would grow the young generation; set before the replay allocates). A worker thread booting
  // resets flags set at run time: set again once it runs (the young generation may have grown
  // to 2 MB per semi-space meanwhile: measured, no further).
  // And the old generation: what a replay promotes is per-flow state that outlived two young
  // collections and dies with its flow, so the heap limit after a full collection is 1.5 × what
  // lived, not V8's up to 4 × (measured, 1M packets / 20,000 flows: −3 MB at ±2 % time against
  // 2 ×; 4.2M packets with 16,000 flows live at once: −25 to −40 MB, `--only invalid` 14 % faster,
  // JSON and text 7–9 % slower). Also read at each full collection.
  setFlagsFromString('--semi-space-growth-factor=1');
  setFlagsFromString('--heap-growing-percent=50');
}

const fileSize = (path: string): number => {
  try {
    return statSync(path).size;
  } catch {
    return 0; // the reader says what is wrong with it
  }
};

function badParty(text: string): never {
  throw new UsageError(`--party: '${text}' is not NAME=ENDPOINT[,ENDPOINT…] (ENDPOINT: ADDR:PORT, [V6]:PORT, ADDR:* or *:PORT), e.g. proxy=127.0.0.1:15001`);
}

export const explainCommand = defineCommand({
  name: 'explain',
  usage: ['explain FILE|-|--from BUNDLE [--conntrack-file F] [--kernel V] [--be-liberal] [--flow FILTER] [--only invalid|ignored] [-v] [--time relative|wall|epoch] [--html OUT.html] [--svg OUT.svg] [-o text|json]'],
  about: `Replays a packet capture (pcap or pcapng, also gzip- or zstd-compressed, or '-' for standard
input: tcpdump -U -w - | ctprobe explain -; Ethernet, Linux cooked SLL/SLL2 from 'tcpdump -i any',
NFLOG from 'tcpdump -i nflog:N', raw IP, PPP, loopback; IPv4 and IPv6) through ctprobe's model of
the kernel's TCP conntrack, and says for every
TCP packet: the flow and direction, the conntrack state before → after, the verdict
  ACCEPT   tracked (NAT applies)
  IGNORE   passes, but conntrack state is not updated
  INVALID  untracked: not de-NATed, so a NAT host answers it with RST (unless INVALID is dropped)
and the reason in the kernel's own words (what nf_conntrack_log_invalid would print on that
kernel), then a summary per connection. The text shows the packets that matter (IGNORE, INVALID,
RST, FIN, a SYN that reopens a closed entry, and the handshake of a connection that has any; -v:
every packet), seq/ack relative to each side's first; a tuple's new entry is a new connection;
the NAT host's own RST, answering an INVALID reply, is shown as the reset it is.

--html OUT.html draws each connection as a sequence diagram (client, NAT host with its conntrack
state, server; one arrow per packet; INVALID in red with the kernel's reason): one self-contained
page, no network needed, printable. --svg OUT.svg writes the diagram alone (one connection: pick
it with --flow; with several, the first is drawn and the others named).

Capture on the NAT host (the client's host) to see what its conntrack sees:
  tcpdump -i any -w /tmp/ct.pcap 'tcp port 9000'
A packet seen on several interfaces of that host (before and after NAT) is counted once: copies are
recognised by what NAT does not change (IP ID, seq, ack, flags, length, window), not by time.

A flow is one conntrack entry with its original and reply tuples, whatever NAT rewrote:
SNAT/MASQUERADE, DNAT (a ClusterIP), REDIRECT (a sidecar's port on lo), NodePort with SNAT, IPv4
and IPv6. The mappings are learned from the capture (the same packet before and after NAT, or the
handshake) or read from 'conntrack -L' (--conntrack-file, or the bundle's with --from).
TSO/BIG TCP segments (IP length 0 on the sending host) are sized by their frame; data the capture
missed (ACKed but never captured) is reported per flow as capture loss and modelled as sent, not
blamed on the kernel.`,
  flags: {
    kernel: { type: 'string', arg: 'V', defaultText: 'this host’s (uname -r)', help: 'kernel to model: a release (6.18, 5.10.0-25) or a profile id (old, overshoot-invalid, modern, modern-challenge)' },
    'be-liberal': { type: 'boolean', help: 'as with net.netfilter.nf_conntrack_tcp_be_liberal=1' },
    'no-loose': { type: 'boolean', help: 'as with nf_conntrack_tcp_loose=0 (no mid-stream pickup)' },
    'ignore-invalid-rst': { type: 'boolean', help: 'as with nf_conntrack_tcp_ignore_invalid_rst=1 (5.14+)' },
    'conntrack-max': { type: 'int', arg: 'N', min: 0, max: 2 ** 31 - 1, defaultText: "this host's nf_conntrack_max (with --from: the bundle's), else 262144", help: 'the table holds at most N entries: past it a new one early-drops an unassured entry, as the kernel does (0: no limit)' },
    flow: { type: 'string', arg: 'FILTER', help: 'report only flows with an endpoint matching ADDR, PORT, :PORT or ADDR:PORT' },
    only: { type: 'choice', arg: 'KIND', choices: ['invalid', 'ignored'], help: "report only INVALID packets, or 'ignored' (IGNORE and INVALID) ones" },
    from: { type: 'string', arg: 'BUNDLE', help: "replay the capture of a support bundle (ctprobe collect --capture DUR) instead of FILE" },
    dedupe: { type: 'choice', arg: 'WHEN', choices: ['auto', 'on', 'off'], default: 'auto', help: 'count a packet seen on several interfaces once (auto: for -i any captures)' },
    'conntrack-file': { type: 'string', arg: 'F', help: "output of 'conntrack -L' on the capturing host: NAT mappings the capture does not show (default with --from: the bundle's)" },
    verbose: { type: 'boolean', short: 'v', help: 'text: every packet, not only those that matter' },
    time: { type: 'choice', arg: 'HOW', choices: ['relative', 'wall', 'epoch'], default: 'relative', help: 'text and diagrams: seconds since the first packet, time of day (UTC), or epoch seconds' },
    html: { type: 'string', arg: 'OUT', help: 'also write the sequence diagrams to this self-contained HTML file' },
    svg: { type: 'string', arg: 'OUT', help: "also write one connection's sequence diagram to this SVG file (with --party: all connections, by party)" },
    party: { type: 'strings', arg: 'NAME=EP,…', help: 'diagrams: one column per party across connections, e.g. app=203.0.113.1:40000 or proxy=127.0.0.1:15001,203.0.113.1:* (EP: ADDR:PORT, ADDR:*, *:PORT); repeatable' },
  },
  more: `-o json prints JSON lines: {"type":"header"}, {"type":"packet",…}…, {"type":"flow",…}…, {"type":"summary",…}.
When the output goes to a file or a pipe and stderr is a terminal, a status line there says how
far the replay is after its first second (packets, rate, time left), and is cleared at the end.
Examples: ctprobe explain ct.pcap --kernel 5.10 --flow 9000 --only ignored
          ctprobe explain ct.pcap --html ct.html --time wall
          ctprobe explain big.pcap -o json | jq -c 'select(.verdict == "INVALID")'`,
  exits: '0 nothing INVALID, 1 some packet is INVALID',
  async run({ flags: f, args, out }) {
    if (args.length !== (f.from ? 0 : 1)) throw new UsageError(f.from ? 'explain --from BUNDLE takes no FILE' : 'explain needs exactly one capture FILE (see --help)');
    tuneV8();
    // What this run needs, and only that: a replay to JSON lines loads no text, picture, bundle or
    // conntrack-parsing code (start-up and memory are part of a replay's cost).
    const pictures = Boolean(f.html || f.svg);
    const json = out.format === 'json';
    const reportModule = import('../../report/explain.js');
    const textModule = json ? null : import('../../report/explain-text.js');
    // Every packet of a large capture (JSON, or text -v not to a terminal): a second thread
    // expands plain packets from their numbers and does the writing, so the replay and the output
    // share two cores. Measured: worth its ~15 MB only when every packet is written (the default
    // text and --only write a fraction and were slower with it). It is started first: it boots
    // (~40 ms here) while this thread loads the replay's modules.
    const offloadFile = (file: string) => !f.only && !pictures && file !== '-' && (json || (f.verbose && !process.stdout.isTTY)) && fileSize(file) >= OFFLOAD_FROM_BYTES;
    const offloading = !f.from && offloadFile(args[0]!) ? (textModule ? textModule.then((m) => m.explainTextRecordsModule) : reportModule.then((m) => m.explainRecordsModule)).then((expander) => out.offload(expander, tuneV8)) : null;
    offloading?.catch(() => undefined); // (handled where it is awaited, or by out.flush when this throws first)
    const [{ explainCapture }, { natMappingsFromConntrack }, { profileForRelease, profileFromFlag }, { explainFlows, explainHeader, explainPackets, explainProgress, explainRecordsModule, explainSummaryLine }, { BlockLog }] = await Promise.all([
      import('../../conntrack/explain.js'),
      import('../../conntrack/nat.js'),
      import('../../conntrack/profile.js'),
      reportModule,
      import('../../report/block-log.js'),
    ]);
    const { ExplainText } = textModule ? await textModule : { ExplainText: null };
    const draw = pictures ? await Promise.all([import('../../report/flows.js'), import('../../report/files.js'), import('../../report/pictures.js')]) : null;
    const { parseParty } = f.party.length ? await import('../../report/sequence.js') : { parseParty: null };
    const bundleCapture = f.from ? (await import('../../host/bundle.js')).bundleCapture : null;
    // A bundle's capture is modelled with the kernel it was collected on.
    const { file, kernelRelease, conntrackList, conntrackMax: bundleMax } = bundleCapture && f.from ? await bundleCapture(f.from) : { file: args[0]!, kernelRelease: release(), conntrackList: null, conntrackMax: null };
    // the table's limit: given, the bundle's host's, this host's (as the kernel: this host's), else the kernel's default
    const conntrackMax = f.conntrackMax ?? bundleMax ?? (f.from ? null : hostConntrackMax()) ?? DEFAULT_CONNTRACK_MAX;
    if (file === '-' && process.stdin.isTTY) throw new UsageError("explain - reads a capture from standard input: pipe one in (tcpdump -U -w - 'tcp port 9000' | ctprobe explain -)");
    let natMappings: ReturnType<typeof natMappingsFromConntrack> = [];
    if (f.conntrackFile || conntrackList !== null) {
      const [{ parseConntrack }, { fileLineBatches }] = await Promise.all([import('../../inspect/conntrack.js'), import('../../inspect/lines.js')]);
      const ctText = f.conntrackFile ? fileLineBatches(f.conntrackFile) : conntrackList!;
      natMappings = natMappingsFromConntrack(await parseConntrack(ctText, { lenient: !f.conntrackFile }));
    }
    const kernel = f.kernel ?? kernelRelease;
    const profile = f.kernel ? profileFromFlag(f.kernel) : profileForRelease(kernel);
    const keep = f.only === 'invalid' ? (v: string) => v === 'INVALID' : f.only === 'ignored' ? (v: string) => v !== 'ACCEPT' : null;
    const time = f.time as TimeStyle;
    const parties = f.party.map((t) => parseParty!(t) ?? badParty(t));
    // Say now, not after the replay, when a picture cannot be written there.
    for (const o of [f.html, f.svg]) if (o) draw![1].assertWritable(o);
    const jsonLine = out.lines(explainPackets);
    const text = ExplainText ? new ExplainText({ verbose: f.verbose, time, only: f.only ?? null }) : null;
    // Diagrams keep copies of the packets: bounded per connection and in connections drawn.
    const drawing = draw ? new draw[0].FlowTracker(MAX_ROWS_PER_DIAGRAM, MAX_DIAGRAMS) : null;
    let t0: number | null = null;
    let headed = false;
    // The header follows the file's first packet, so an unreadable file prints only its error.
    const headOnce = () => {
      if (headed) return;
      headed = true;
      if (json) out.line(explainHeader.json({ file: f.from ?? file, kernel, profile }));
      else {
        out.line(text!.header({ file: f.from ?? file, kernel, profile }));
        if (t0 !== null) out.line(text!.legend(t0));
      }
    };
    // (a bundle's capture is known only now)
    const offloaded = offloading ? await offloading : offloadFile(file) && (await out.offload(json ? explainRecordsModule : (await textModule!).explainTextRecordsModule, tuneV8));
    if (offloaded) tuneV8();
    // The flows' summary rows, final once their entry is gone: on disk past 2 MiB (a file unlinked
    // as soon as it is opened), so memory follows the flows live at once, not the capture.
    const flowRows = new BlockLog(1 << 20, 2);
    // where the replay is, on the terminal, while the output goes to a file or a pipe
    const progress = explainProgress(out);
    try {
      const summary = await explainCapture(file, {
        profile,
        sysctls: { beLiberal: f.beLiberal, loose: !f.noLoose, ignoreInvalidRst: f.ignoreInvalidRst, conntrackMax },
        flow: f.flow ?? null,
        dedupe: f.dedupe === 'auto' ? 'auto' : f.dedupe === 'on',
        natMappings,
        // JSON lines of --only: packets it drops are not even described (text and pictures see all)
        verdicts: json && !drawing && f.only ? new Set<Verdict>(f.only === 'invalid' ? ['INVALID'] : ['IGNORE', 'INVALID']) : null,
        // the text and the pictures keep per-connection state: as long as the kernel keeps the entry
        onSweep: (live) => {
          text?.sweep(live);
          drawing?.sweep(live);
        },
        flowRows,
        // Read the next chunk of the capture only when stdout has taken what was written.
        // (and V8's settings again: a worker thread booting resets them, and this thread sees its
        // 'ready' only when the event loop turns, which a replay to a fast reader may not do for a while)
        pause: (at) => {
          if (offloaded) tuneV8();
          progress(at);
          return out.ready();
        },
        onPacket: (p) => {
          t0 ??= p.tsSec;
          headOnce();
          if (drawing) drawing.add(p);
          if (text) {
            if (text.packetInto(p, out)) out.endLine();
          }
          else if (!keep || keep(p.decision.verdict)) jsonLine(p);
        },
      });
      headOnce();
      const s = { ...summary, kernel, profile: profile.id };
      // flow by flow; a slow reader paces these lines too
      if (json) {
        const flowLine = out.lines(explainFlows);
        for (const flow of s.flows) {
          flowLine(flow);
          const drained = out.ready();
          if (drained) await drained;
        }
        out.line(explainSummaryLine(s));
      } else
        for (const l of text!.summaryLines(summary)) {
          out.line(l);
          const drained = out.ready();
          if (drained) await drained;
        }
      if (draw && drawing)
        draw[1].writeDocuments(draw[2].explainPictureDocuments({ html: f.html ?? null, svg: f.svg ?? null, flows: drawing.order, flowCount: drawing.count, parties, time, t0: t0 ?? 0, file: f.from ?? file, kernel, profile, summary, maxDiagrams: MAX_DIAGRAMS }), out);
      return summary.invalid > 0 ? EXIT.finding : EXIT.ok;
    } finally {
      flowRows.close();
    }
  },
});
