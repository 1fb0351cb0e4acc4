import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createDecision, setReason, type ReasonForm } from '../conntrack/model.js';
import type { ExplainedPacket } from '../conntrack/explain.js';
import { explainFlows, explainPackets, explainProgress, explainProgressLine, flowJson } from './explain.js';
import { jsonLine, Output } from './output.js';

/** A writable that keeps what it got, taking `delayMs` per chunk (a slow reader) when set. */
function sink(delayMs = 0, highWaterMark = 16 * 1024): { stream: Writable; chunks: Buffer[]; text: () => string } {
  const chunks: Buffer[] = [];
  const stream = new Writable({
    highWaterMark,
    write(chunk: Buffer, _enc, cb) {
      chunks.push(Buffer.from(chunk));
      if (delayMs) setTimeout(cb, delayMs);
      else cb();
    },
  });
  return { stream, chunks, text: () => Buffer.concat(chunks).toString('utf8') };
}

function packet(over: Partial<ExplainedPacket> = {}, d: Partial<ReturnType<typeof createDecision>> = {}): ExplainedPacket {
  return {
    index: 7,
    tsSec: 1700000000.123456,
    src: '192.0.2.1',
    srcPort: 40000,
    dst: '2001:db8::1',
    dstPort: 9000,
    flags: 'PSH|ACK',
    tcpFlags: 0x18,
    ipId: null,
    src4: null,
    dst4: null,
    seq: 4294967295,
    ack: 0,
    len: 64,
    window: 100,
    natMatchedTo: null,
    entry: null,
    entryKey: 'k',
    flow: 0,
    decision: Object.assign(createDecision(), { stateBefore: 'ESTABLISHED', stateAfter: 'ESTABLISHED' }, d),
    consequence: 'ACCEPT: tracked',
    captureMissed: 0,
    ...over,
  };
}

/** What a generic serializer makes of a packet: the contract the fast one must keep. */
function generic(p: ExplainedPacket): unknown {
  const d = p.decision;
  return { type: 'packet', index: p.index, ts: p.tsSec, src: `${p.src}:${p.srcPort}`, dst: `${p.dst}:${p.dstPort}`, flags: p.flags, seq: p.seq, ack: p.ack, len: p.len, dir: d.dir, stateBefore: d.stateBefore, stateAfter: d.stateAfter, verdict: d.verdict, reason: d.reason, logged: d.logged, check: d.check, secondaryReason: d.secondaryReason, note: d.note, natMatchedTo: p.natMatchedTo, consequence: p.consequence, captureMissed: p.captureMissed };
}

/** A packet whose reason is a window check's form around a number (as the model sets it). */
function formed(form: ReasonForm, n: number, over: Partial<ExplainedPacket>, d: Partial<ReturnType<typeof createDecision>>): ExplainedPacket {
  const p = packet(over, d);
  setReason(p.decision, form, n);
  return p;
}

describe('Output', () => {
  it('writes the JSON fast path byte for byte as the string path, keys in order', async () => {
    const cases = [
      packet(),
      packet({ index: 0, seq: 0, ack: 9, len: 0, srcPort: 1 }),
      packet({ consequence: 'ACCEPT: tracked, SYN_SENT → SYN_RECV' }, { stateBefore: 'SYN_SENT', stateAfter: 'SYN_RECV' }),
      packet({ natMatchedTo: '192.0.2.9', consequence: 'INVALID: untracked' }, { verdict: 'INVALID', reason: 'SEQ is over upper bound 12 (over the window "of" the receiver)', logged: true, check: 'I', note: 'a \\ backslash', secondaryReason: 'lower timeout' }),
      packet({ index: 2 ** 40, seq: 1e10 }),
      // a malformed IP length makes a negative payload length; a fractional or negative timestamp
      packet({ len: -12, tsSec: -0.5 }),
      packet({ len: 1.5, tsSec: 1e-7 }),
      packet({ captureMissed: 1448 }),
      // through NAT: the tails cut around the connection's name (quoted as JSON: any character)
      packet({ natMatchedTo: '192.0.2.9:40000 → 198.51.100.2:9000' }),
      packet({ natMatchedTo: '[2001:db8::1]:1 → [2001:db8::2]:2', consequence: 'ACCEPT: tracked, SYN_SENT → SYN_RECV' }, { stateBefore: 'SYN_SENT', stateAfter: 'SYN_RECV', dir: 'reply' }),
      packet({ natMatchedTo: 'a "quoted" \\ \u0001 name' }),
      packet({ natMatchedTo: '192.0.2.9:40000 → 198.51.100.2:9000' }),
      // a window check's reason written from its pieces around the number (formed tails)
      ...([[2, 0], [3, 4294967295], [0, 12345], [1, 7], [4, 35749]] as const).flatMap(([form, n]) => [
        formed(form, n, { consequence: 'IGNORE: passes (NAT applied) but conntrack state is not updated' }, { verdict: 'IGNORE', logged: true, check: 'II' }),
        formed(form, n, { consequence: 'INVALID: untracked, so not de-NATed: addressed to 198.51.100.1 (this host\'s NAT address)' }, { verdict: 'INVALID', logged: true, check: 'I', dir: 'reply' }),
        formed(form, n, { consequence: 'INVALID: untracked' }, { verdict: 'INVALID', logged: false, check: 'III', note: 'with a note: written whole' }),
        formed(form, n, { natMatchedTo: '192.0.2.9:40000 → 198.51.100.2:9000', consequence: 'IGNORE: passes (NAT applied) but conntrack state is not updated' }, { verdict: 'IGNORE', logged: true, check: 'II', dir: 'reply' }),
      ]),
    ];
    const fast = sink();
    const slow = sink();
    const a = new Output('json', fast.stream, null);
    const b = new Output('json', slow.stream, null);
    const la = a.lines(explainPackets);
    for (const p of cases) {
      la(p);
      b.line(explainPackets.json(p));
    }
    await a.flush();
    await b.flush();
    expect(fast.text()).toBe(slow.text());
    const lines = fast.text().trimEnd().split('\n');
    expect(lines.map((l) => JSON.parse(l) as unknown)).toEqual(cases.map(generic));
    expect(Object.keys(JSON.parse(lines[0]!) as object)).toEqual(Object.keys(generic(cases[0]!) as object));
  });

  it('writes a flow summary line from its pieces as the generic serializer does', async () => {
    const base = { flow: '192.0.2.1:40000 → 198.51.100.2:9000', reply: null, natLearnedFrom: null, packets: 12, accept: 10, ignore: 1, invalid: 1, firstInvalid: null, finalState: 'ESTABLISHED', captureMissed: 0 };
    for (const f of [
      base,
      { ...base, reply: '[2001:db8::2]:9000 → [2001:db8::1]:40000', natLearnedFrom: 'copy' as const, firstInvalid: { index: 4294967296, reason: 'SEQ is over upper bound 7 (a "quoted" \\ word)' }, captureMissed: 1448 },
      { ...base, firstInvalid: { index: 0, reason: null }, finalState: 'TIME_WAIT', packets: 0 },
      // what the byte writer does not take (escapes, other characters, a long text) goes the general way
      { ...base, flow: 'a"b\\c\u0001 → é:1', reply: 'ü → ✓' },
      { ...base, flow: `${'2001:db8::1'.repeat(60)} → x`, natLearnedFrom: 'rule' as const },
    ]) {
      expect(flowJson(f)).toBe(jsonLine('flow', f));
      const fast = sink();
      const out = new Output('json', fast.stream, null);
      out.lines(explainFlows)(f);
      await out.flush();
      expect(fast.text()).toBe(jsonLine('flow', f) + '\n');
    }
  });

  it('reports backpressure from a slow reader and loses nothing', async () => {
    const s = sink(2, 1024);
    const out = new Output('json', s.stream, null);
    const line = out.lines(explainPackets);
    let paused = 0;
    const n = 20_000;
    for (let i = 0; i < n; i++) {
      line(packet({ index: i }));
      // as the explain loop does between chunks of a capture
      if (i % 1000 === 999) {
        const w = out.ready();
        if (w) {
          paused++;
          await w;
        }
      }
    }
    await out.flush();
    expect(paused).toBeGreaterThan(0);
    const lines = s.text().trimEnd().split('\n');
    expect(lines).toHaveLength(n);
    expect((JSON.parse(lines[n - 1]!) as { index: number }).index).toBe(n - 1);
    // batched: far fewer writes than lines
    expect(s.chunks.length).toBeLessThan(n / 50);
  });

  it('never writes into a batch before the stream called back, at once or later', async () => {
    const line = (i: number) => `line ${i} ${'x'.repeat(i % 97)}`;
    for (const later of [false, true]) {
      // reads a chunk only when it calls back (a stream owns the chunk until then): a batch
      // written into before that would show here
      const kept: Uint8Array[] = [];
      const stream = new Writable({
        write(chunk: Uint8Array, _enc, cb) {
          const take = () => {
            kept.push(Buffer.from(chunk));
            cb();
          };
          if (later) setImmediate(take);
          else take();
        },
      });
      const o = new Output('text', stream, null);
      for (let i = 0; i < 5000; i++) {
        o.line(line(i));
        if (i % 700 === 0) await o.flush();
      }
      await o.flush();
      await new Promise<void>((resolve) => stream.end(resolve));
      expect(Buffer.concat(kept).toString('utf8')).toBe(Array.from({ length: 5000 }, (_, i) => line(i) + '\n').join(''));
    }
  });

  it('writes a document larger than a batch whole, after what came before', async () => {
    const s = sink();
    const out = new Output('text', s.stream, null);
    out.line('first');
    const big = 'é'.repeat(100_000);
    out.line(big);
    out.line('last');
    await out.flush();
    expect(s.text()).toBe(`first\n${big}\nlast\n`);
  });
});

describe('the status line (explain on a large capture)', () => {
  /** A terminal's stderr: what was written to it, its width. */
  const terminal = (columns = 40) => {
    const written: string[] = [];
    return { stream: { isTTY: true, columns, write: (s: string) => written.push(s) } as unknown as NodeJS.WriteStream, written };
  };

  it('is shown only when stderr is a terminal and stdout is not, cut to the width, cleared by flush', async () => {
    const t = terminal(40);
    const out = new Output('json', sink().stream, t.stream);
    expect(out.showsStatus).toBe(true);
    const exitListeners = process.listenerCount('exit');
    out.status('explain: 41 % of the capture, 3.24M packets (1.08M/s) · about 5 s left');
    out.status('short');
    // (cleared at exit too, if a signal stops the run before its flush)
    expect(process.listenerCount('exit')).toBe(exitListeners + 1);
    await out.flush();
    expect(process.listenerCount('exit')).toBe(exitListeners);
    await out.flush();
    expect(t.written).toEqual(['\rexplain: 41 % of the capture, 3.24M pac\x1b[K', '\rshort\x1b[K', '\r\x1b[K']);

    // stdout on the terminal itself (the output is what shows), or stderr not a terminal: nothing
    const both = terminal();
    const onTerminal = new Output('text', Object.assign(sink().stream, { isTTY: true }), both.stream);
    onTerminal.status('x');
    const piped = new Output('json', sink().stream, Object.assign(sink().stream, { isTTY: false }) as unknown as NodeJS.WriteStream);
    piped.status('x');
    expect([onTerminal.showsStatus, piped.showsStatus, both.written]).toEqual([false, false, []]);
  });

  it('says how far a replay is, once a second after the first', () => {
    expect(explainProgressLine({ packets: 3_241_000, fraction: 0.41 }, 3)).toBe('explain: 41 % of the capture, 3.24M packets (1.08M/s) · about 5 s left');
    expect(explainProgressLine({ packets: 950, fraction: null }, 1)).toBe('explain: 950 packets (950/s)');
    expect(explainProgressLine({ packets: 45_600, fraction: 0.01 }, 2)).toBe('explain: 1 % of the capture, 45.6k packets (22.8k/s)');
    expect(explainProgressLine({ packets: 120_000_000, fraction: 0.2 }, 60)).toBe('explain: 20 % of the capture, 120M packets (2.00M/s) · about 4 min left');
    const t = terminal(200);
    const out = new Output('json', sink().stream, t.stream);
    let now = 0;
    const progress = explainProgress(out, () => now);
    for (const [ms, packets] of [
      [500, 1],
      [1000, 2],
      [1500, 3],
      [2000, 4],
    ] as const) {
      now = ms;
      progress({ packets, fraction: packets / 8 });
    }
    expect(t.written).toEqual(['\rexplain: 25 % of the capture, 2 packets (2/s) · about 3 s left\x1b[K', '\rexplain: 50 % of the capture, 4 packets (2/s) · about 2 s left\x1b[K']);
    // not shown: no clock read, nothing written
    const quiet = explainProgress(new Output('json', sink().stream, null), () => {
      throw new Error('read the clock');
    });
    quiet({ packets: 1, fraction: 1 });
  });
});
