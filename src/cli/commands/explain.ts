import { release } from 'node:os';
import { UsageError } from '../../errors.js';
import { explainCapture } from '../../conntrack/explain.js';
import { bundleCapture } from '../../host/bundle.js';
import { natMappingsFromConntrack } from '../../conntrack/nat.js';
import { parseConntrack } from '../../inspect/conntrack.js';
import { fileLineBatches } from '../../inspect/lines.js';
import { profileForRelease, profileFromFlag } from '../../conntrack/profile.js';
import { explainHeader, explainPackets, explainSummary, explainSummaryLines } from '../../report/explain.js';
import { defineCommand, EXIT } from '../command.js';

export const explainCommand = defineCommand({
  name: 'explain',
  summary: 'replay a capture: per packet ACCEPT / IGNORE / INVALID with the kernel’s reason',
  usage: ['explain FILE|--from BUNDLE [--conntrack-file F] [--kernel V] [--be-liberal] [--flow FILTER] [--only invalid|ignored] [-o text|json]'],
  about: `Replays a packet capture (pcap or pcapng: Ethernet, Linux cooked SLL/SLL2 from 'tcpdump -i any',
raw IP; IPv4 and IPv6) through ctprobe's model of the kernel's TCP conntrack, and says for every
TCP packet: the flow and direction, the conntrack state before → after, the verdict
  ACCEPT   tracked (NAT applies)
  IGNORE   passes, but conntrack state is not updated
  INVALID  untracked: not de-NATed, so a NAT host answers it with RST (unless INVALID is dropped)
and the reason in the kernel's own words (what nf_conntrack_log_invalid would print on that
kernel), then a summary per flow.

Capture on the NAT host (the client's host) to see what its conntrack sees:
  tcpdump -i any -w /tmp/ct.pcap 'tcp port 9000'
A packet seen on several interfaces of that host (before and after NAT) is counted once: copies are
recognised by what NAT does not change (IP ID, seq, ack, flags, length, window), not by time.

A flow is one conntrack entry with its original and reply tuples, whatever NAT rewrote:
SNAT/MASQUERADE, DNAT (a ClusterIP), REDIRECT (a sidecar's port on lo), NodePort with SNAT, IPv4
and IPv6. The mappings are learned from the capture (the same packet before and after NAT, or the
handshake) or read from 'conntrack -L' (--conntrack-file, or the bundle's with --from).`,
  flags: {
    kernel: { type: 'string', arg: 'V', defaultText: 'this host’s (uname -r)', help: 'kernel to model: a release (6.18, 5.10.0-25) or a profile id (old, overshoot-invalid, modern, modern-challenge)' },
    'be-liberal': { type: 'boolean', help: 'as with net.netfilter.nf_conntrack_tcp_be_liberal=1' },
    'no-loose': { type: 'boolean', help: 'as with nf_conntrack_tcp_loose=0 (no mid-stream pickup)' },
    'ignore-invalid-rst': { type: 'boolean', help: 'as with nf_conntrack_tcp_ignore_invalid_rst=1 (5.14+)' },
    flow: { type: 'string', arg: 'FILTER', help: 'report only flows with an endpoint matching ADDR, PORT, :PORT or ADDR:PORT' },
    only: { type: 'choice', arg: 'KIND', choices: ['invalid', 'ignored'], help: "report only INVALID packets, or 'ignored' (IGNORE and INVALID) ones" },
    from: { type: 'string', arg: 'BUNDLE', help: "replay the capture of a support bundle (ctprobe collect --capture DUR) instead of FILE" },
    dedupe: { type: 'choice', arg: 'WHEN', choices: ['auto', 'on', 'off'], default: 'auto', help: 'count a packet seen on several interfaces once (auto: for -i any captures)' },
    'conntrack-file': { type: 'string', arg: 'F', help: "output of 'conntrack -L' on the capturing host: NAT mappings the capture does not show (default with --from: the bundle's)" },
  },
  more: `-o json prints JSON lines: {"type":"header"}, {"type":"packet",…}…, {"type":"flow",…}…, {"type":"summary",…}.
Example: ctprobe explain ct.pcap --kernel 5.10 --flow 9000 --only ignored`,
  exits: '0 nothing INVALID, 1 some packet is INVALID',
  async run({ flags: f, args, out }) {
    if (args.length !== (f.from ? 0 : 1)) throw new UsageError(f.from ? 'explain --from BUNDLE takes no FILE' : 'explain needs exactly one capture FILE (see --help)');
    // A bundle's capture is modelled with the kernel it was collected on.
    const { file, kernelRelease, conntrackList } = f.from ? await bundleCapture(f.from) : { file: args[0]!, kernelRelease: release(), conntrackList: null };
    const ctText = f.conntrackFile ? fileLineBatches(f.conntrackFile) : conntrackList;
    const natMappings = ctText === null ? [] : natMappingsFromConntrack(await parseConntrack(ctText, { lenient: !f.conntrackFile }));
    const kernel = f.kernel ?? kernelRelease;
    const profile = f.kernel ? profileFromFlag(f.kernel) : profileForRelease(kernel);
    const keep = f.only === 'invalid' ? (v: string) => v === 'INVALID' : f.only === 'ignored' ? (v: string) => v !== 'ACCEPT' : null;
    const line = out.lines(explainPackets);
    const head = out.lines(explainHeader);
    let headed = false;
    // The header follows the file's first packet, so an unreadable file prints only its error.
    const headOnce = () => {
      if (!headed) head({ file: f.from ?? file, kernel, profile });
      headed = true;
    };
    const summary = await explainCapture(file, {
      profile,
      sysctls: { beLiberal: f.beLiberal, loose: !f.noLoose, ignoreInvalidRst: f.ignoreInvalidRst },
      flow: f.flow ?? null,
      dedupe: f.dedupe === 'auto' ? 'auto' : f.dedupe === 'on',
      natMappings,
      onPacket: (p) => {
        headOnce();
        if (!keep || keep(p.decision.verdict)) line(p);
      },
    });
    headOnce();
    const s = { ...summary, kernel, profile: profile.id };
    if (out.format === 'json') for (const l of explainSummaryLines(s)) out.line(l);
    else out.result(explainSummary, s);
    return summary.invalid > 0 ? EXIT.finding : EXIT.ok;
  },
});
