import { describe, expect, it } from 'vitest';
import { checkAgreement, describeMismatches, kernelLinePacket, type ReplayedPacket } from './agreement.js';

const FIN = 0x01;
const RST = 0x04;
const ACK = 0x10;

// Real lines from this machine's 6.18 kernel (half-close lab) and the 5.10 wording.
const FIN_LINE =
  'nf_ct_proto_6: invalid new IN= OUT=ctafaa2bd00 SRC=203.0.113.1 DST=203.0.113.2 LEN=52 TOS=0x00 PREC=0x00 TTL=64 ID=35427 DF PROTO=TCP SPT=46576 DPT=7777 SEQ=113234477 ACK=10199958 WINDOW=63 RES=0x00 ACK FIN URGP=0 OPT (0101080A9E1AB8635930E8A2) UID=0 GID=0';
const RST_LINE =
  'nf_ct_proto_6: invalid new IN=ctafaa2bd00 OUT= MAC=a6:75:98:ac:30:10:4e:50:19:94:02:1d:08:00 SRC=203.0.113.2 DST=203.0.113.1 LEN=40 TOS=0x00 PREC=0x00 TTL=64 ID=0 DF PROTO=TCP SPT=7777 DPT=46576 SEQ=10199958 ACK=0 WINDOW=0 RES=0x00 RST URGP=0';
const OVER_LINE =
  '[  812.5] nf_ct_proto_6: ACK is over upper bound 2233498243 (ACKed data not seen yet) IN=ctu1 OUT= SRC=198.51.100.2 DST=198.51.100.1 LEN=52 TOS=0x00 PREC=0x00 TTL=64 ID=4242 DF PROTO=TCP SPT=9000 DPT=40000 SEQ=178314449 ACK=2233498243 WINDOW=509 RES=0x00 ACK URGP=0';
const V6_LINE =
  'nf_ct_proto_6: SEQ is over the upper bound (over the window of the receiver)  IN= OUT= SRC=2001:db8::2 DST=2001:db8::1 LEN=72 TC=0 HOPLIMIT=64 FLOWLBL=0 PROTO=TCP SPT=9000 DPT=40000 SEQ=278314449 ACK=2233498242 WINDOW=509 RES=0x00 ACK PSH URGP=0';

const pkt = (index: number, seq: number, ack: number, flags: number, ipId: number | null, logged: string[] = []): ReplayedPacket => ({ index, seq, ack, flags, ipId, logged });

describe('checkAgreement', () => {
  it('parses a kernel line into the packet identity NAT does not change', () => {
    expect(kernelLinePacket(FIN_LINE)).toMatchObject({ key: `113234477|10199958|${FIN | ACK}|35427`, reason: 'invalid new', weak: false });
    expect(kernelLinePacket(RST_LINE)).toMatchObject({ weak: true }); // ID 0: the kernel's own RSTs
    expect(kernelLinePacket(V6_LINE)).toMatchObject({ key: `278314449|2233498242|${ACK | 0x08}|`, reason: 'SEQ is over the upper bound (over the window of the receiver)', weak: true });
    expect(kernelLinePacket('random text')).toBeNull();
  });

  it('agrees when the same packets are logged with the same reasons, numbers included', () => {
    const replay = [
      pkt(0, 1, 2, ACK, 7),
      pkt(14, 113234477, 10199958, FIN | ACK, 35427, ['invalid new']),
      pkt(15, 10199958, 0, RST, 0, ['invalid new']),
      pkt(20, 178314449, 2233498243, ACK, 4242, ['ACK is over upper bound 2233498243 (ACKed data not seen yet)']),
    ];
    const r = checkAgreement(replay, [FIN_LINE, RST_LINE, OVER_LINE]);
    expect(r).toMatchObject({ type: 'agreement', agree: true, compared: 3, kernelLines: 3, notCaptured: 0, modelLines: 3, mismatches: [] });
  });

  it('lists every mismatch: missing, extra, different numbers, unparsed', () => {
    const replay = [
      pkt(14, 113234477, 10199958, FIN | ACK, 35427), // kernel logged it, model not
      pkt(15, 10199958, 0, RST, 0, ['invalid new']), // kernel logged it too
      pkt(16, 5, 6, ACK, 9, ['packet (index 3) in dir 0 invalid, state SYN_SENT']), // model only
      pkt(20, 178314449, 2233498243, ACK, 4242, ['ACK is over upper bound 2233498244 (ACKed data not seen yet)']), // off by one
    ];
    const r = checkAgreement(replay, [FIN_LINE, RST_LINE, OVER_LINE, 'nf_ct_proto_6: something without a packet']);
    expect(r.agree).toBe(false);
    expect(r.mismatches.map((m) => [m.kind, m.index])).toEqual([
      ['unparsed', null],
      ['kernel-only', 14],
      ['model-only', 16],
      ['reason-differs', 20],
    ]);
    expect(describeMismatches(r)[3]).toBe(
      'seq 178314449 ack 2233498243 [ACK] id 4242 (packet #20): kernel "ACK is over upper bound 2233498243 (ACKed data not seen yet)" vs model "ACK is over upper bound 2233498244 (ACKed data not seen yet)"',
    );
  });

  it('does not compare lines about packets the capture does not hold', () => {
    // A retransmission with another IP ID (socket still retransmitting after the capture stopped).
    const retrans = FIN_LINE.replace('ID=35427', 'ID=35428');
    const r = checkAgreement([pkt(14, 113234477, 10199958, FIN | ACK, 35427, ['invalid new'])], [FIN_LINE, retrans]);
    expect(r).toMatchObject({ agree: true, compared: 1, notCaptured: 1 });
    // ID 0 and IPv6: a repeat of a logged packet with the model's reason is not captured; another reason is a mismatch.
    const rst = checkAgreement([pkt(15, 10199958, 0, RST, 0, ['invalid new'])], [RST_LINE, RST_LINE]);
    expect(rst).toMatchObject({ agree: true, compared: 1, notCaptured: 1 });
    const v6 = checkAgreement([pkt(3, 278314449, 2233498242, ACK | 0x08, null, ['SEQ is over the upper bound (over the window of the receiver)'])], [V6_LINE]);
    expect(v6).toMatchObject({ agree: true, compared: 1 });
    const v6wrong = checkAgreement([pkt(3, 278314449, 2233498242, ACK | 0x08, null, ['invalid new'])], [V6_LINE]);
    expect(v6wrong.mismatches.map((m) => m.kind)).toEqual(['reason-differs']);
  });

  it('compares only the captured host’s lines when packets cross several conntrack hosts', () => {
    // k8s-service: the client's node (captured, ctb/ctv/ctu) and the server's node (ctd/ctw) both log the INVALID ACK
    const mine = OVER_LINE.replace('IN=ctu1', 'IN=ctb1 OUT= PHYSIN=ctv1');
    const other = OVER_LINE.replace('IN=ctu1', 'IN=ctd1 OUT= PHYSIN=ctw1');
    const replay = [pkt(20, 178314449, 2233498243, ACK, 4242, ['ACK is over upper bound 2233498243 (ACKed data not seen yet)'])];
    expect(checkAgreement(replay, [mine, other]).agree).toBe(false); // the other node's line looks extra
    expect(checkAgreement(replay, [mine, other], { hostInterfaces: ['ctb1', 'ctv1', 'ctu1'] })).toMatchObject({ agree: true, compared: 1, otherHost: 1 });
    // 5.10: locally generated packets are logged with empty IN= and OUT=: kept
    expect(checkAgreement([pkt(14, 113234477, 10199958, FIN | ACK, 35427, ['invalid new'])], [FIN_LINE.replace('OUT=ctafaa2bd00', 'OUT=')], { hostInterfaces: ['x'] })).toMatchObject({ agree: true, otherHost: 0 });
  });
});
