import { describe, expect, it } from 'vitest';
import { parseListen } from './http.js';
import { WatchMetrics } from './metrics.js';

describe('WatchMetrics', () => {
  it('renders the conntrack counters, lines by reason and leaks with their labels', async () => {
    const m = new WatchMetrics();
    m.setUp(true);
    m.conntrackCounter('ns1', 'web-0', 'invalid', 7);
    m.conntrackCounter('ns1', 'web-0', 'invalid', 2);
    m.invalidLine('ns1', 'web-0', 'nf_ct_proto_6', 'invalid new');
    m.leakState('ns1', 'web-0', 15001, 2, 12.5);
    const text = await m.render();
    expect(text).toContain('ctprobe_up 1');
    expect(text).toContain('ctprobe_conntrack_invalid_total{netns="ns1",pod="web-0"} 9');
    expect(text).toContain('ctprobe_invalid_packets_total{netns="ns1",pod="web-0",source="nf_ct_proto_6",reason="invalid new"} 1');
    expect(text).toContain('ctprobe_halfclosed_leaks{netns="ns1",pod="web-0",proxy_port="15001"} 2');
    expect(text).toContain('ctprobe_leak_age_seconds{netns="ns1",pod="web-0",proxy_port="15001"} 12.5');
    expect(text).toMatch(/^process_resident_memory_bytes \d+$/m);
  });

  it('caps the label sets of the per-line counter and frees them when a namespace is forgotten', async () => {
    const m = new WatchMetrics(3);
    for (let i = 0; i < 5; i++) m.invalidLine('ns1', null, 'nf_ct_proto_6', `reason ${i}`);
    let text = await m.render();
    expect(text.match(/^ctprobe_invalid_packets_total\{/gm)).toHaveLength(4); // 3 + "other"
    expect(text).toContain('reason="other"} 2');
    expect(text).toContain('ctprobe_label_sets_capped_total 2');
    m.forget('ns1', null, 15001);
    m.invalidLine('ns2', null, 'nf_ct_proto_6', 'invalid new');
    text = await m.render();
    expect(text).not.toContain('netns="ns1",pod="",source="nf_ct_proto_6",reason="reason 0"');
    expect(text).toContain('netns="ns2",pod="",source="nf_ct_proto_6",reason="invalid new"} 1');
  });
});

describe('parseListen', () => {
  it('takes ADDR:PORT, [v6]:PORT and :PORT; anything else is a usage error', () => {
    expect(parseListen('127.0.0.1:9464')).toEqual({ host: '127.0.0.1', port: 9464 });
    expect(parseListen('[::1]:9464')).toEqual({ host: '::1', port: 9464 });
    expect(parseListen(':9464')).toEqual({ host: undefined, port: 9464 });
    for (const bad of ['9464', '127.0.0.1', '127.0.0.1:0', '127.0.0.1:70000', '::1:9464']) expect(() => parseListen(bad)).toThrow(/--listen/);
  });
});
