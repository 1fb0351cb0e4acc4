/**
 * Streaming reader for packet captures: classic pcap (either byte order, µs or ns) and pcapng
 * (sections in either byte order, interfaces with their own link type / if_tsresol /
 * if_tsoffset, EPB, SPB and the obsolete PB; unknown blocks skipped). Finds the IP header
 * behind Ethernet (+802.1Q/802.1ad tags), Linux cooked SLL/SLL2, raw IP, and BSD loopback.
 *
 * One pull parser (CaptureParser) is the core: it consumes one record/block per `step` from a
 * byte window and fills a single reused PacketRecord. The drivers around it:
 *  - forEachPacket(path, fn)  — fastest: reads 1 MiB chunks, calls fn with the reused record;
 *  - readCapture(path)        — async generator on the same loop;
 *  - parseCaptureBuffer(buf)  — sync generator over bytes already in memory.
 * `data` is a subarray of a chunk buffer that is never overwritten (each refill allocates a
 * fresh chunk), so a kept `data` stays valid; only the record object itself is reused by
 * forEachPacket (and by the generators when `reuse: true`).
 *
 * Malformed input throws InputError(message, 'byte N') with N the file offset of the
 * offending record or block; nothing else is thrown for bad bytes.
 */
import { createReadStream } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { errorText, InputError } from '../errors.js';

/** Link types this reader decodes (pcap LINKTYPE_* values). */
export const LINKTYPE = {
  NULL: 0,
  ETHERNET: 1,
  DLT_RAW: 12,
  DLT_RAW_OPENBSD: 14,
  RAW: 101,
  LOOP: 108,
  LINUX_SLL: 113,
  PPP: 9,
  PPP_HDLC: 50,
  C_HDLC: 104,
  IPV4: 228,
  IPV6: 229,
  NFLOG: 239,
  IPOIB: 242,
  LINUX_SLL2: 276,
} as const;

/** Names of link types that carry no IP this reader can find, for the error that names them. */
const OTHER_LINKTYPES: Record<number, string> = {
  6: 'IEEE802_5 (Token Ring)',
  10: 'FDDI',
  105: 'IEEE802_11 (Wi-Fi without radiotap)',
  127: 'IEEE802_11_RADIOTAP (Wi-Fi monitor mode)',
  143: 'DOCSIS',
  187: 'BLUETOOTH_HCI_H4',
  189: 'USB_LINUX',
  192: 'PPI',
  195: 'IEEE802_15_4',
  201: 'BLUETOOTH_HCI_H4_WITH_PHDR',
  220: 'USB_LINUX_MMAPPED',
  249: 'USBPCAP',
  253: 'NETLINK (tcpdump -i nlmon0)',
};

export function linkTypeName(lt: number): string {
  for (const [k, v] of Object.entries(LINKTYPE)) if (v === lt) return k;
  if (lt >= 147 && lt <= 162) return `USER${lt - 147}`;
  return OTHER_LINKTYPES[lt] ?? 'unknown';
}

export interface PacketRecord {
  /** 0-based packet number in the file (all sections and interfaces). */
  index: number;
  /** Timestamp, seconds since the epoch (float; ~0.5 µs precision for current dates). */
  tsSec: number;
  /** Exact timestamp in nanoseconds, only when the reader was asked for it (`tsNs: true`). */
  tsNs?: bigint;
  linkType: number;
  /** pcapng interface id (0 for classic pcap). */
  ifId: number;
  /** The whole captured frame (a view into the read buffer, not a copy). */
  data: Uint8Array;
  /**
   * The read buffer and where the frame starts in it (`data` is buf[dataOffset, +capLen)): a hot
   * loop reads the frame there without a view made per packet.
   */
  buf: Uint8Array;
  dataOffset: number;
  /** Offset of the IP header in `data`, -1 if the frame carries no IPv4/IPv6. */
  ipOffset: number;
  ipVersion: 4 | 6 | 0;
  origLen: number;
  capLen: number;
}

/** Where a read is, after a chunk: what `pause` is given (one object, refilled). */
export interface ReadProgress {
  /** Records read so far. */
  packets: number;
  /**
   * How far into its input (0 … 1): a file's bytes, a compressed file's compressed bytes; null
   * when not known (standard input).
   */
  fraction: number | null;
}

export interface ReadOptions {
  /** Bytes per file read (default 1 MiB). A block larger than this grows the next buffer. */
  chunkSize?: number;
  /** Also compute the exact `tsNs` bigint (one bigint allocation per packet). Default false. */
  tsNs?: boolean;
  /** Generators: yield the same record object every time (faster; copy what you keep). */
  reuse?: boolean;
  /**
   * A packet on a link type this reader cannot decode: 'error' (default) throws InputError,
   * 'pass' returns it with ipOffset -1.
   */
  unknownLinkType?: 'error' | 'pass';
  /**
   * forEachPacket: called after each chunk's packets, with where the read is; a promise it
   * returns is awaited before the next read (a consumer whose output is backed up pauses the
   * reader: memory stays bounded).
   */
  pause?: (progress: ReadProgress) => Promise<void> | null | void;
  /**
   * forEachPacket: `data` is valid only during the callback (the read buffer is reused instead of
   * a fresh one per chunk: a replay that keeps no views holds one chunk of memory, not dozens
   * waiting for the GC).
   */
  transientData?: boolean;
  /** Filled while reading: what the reader had to forgive. */
  stats?: CaptureStats;
}

export interface CaptureStats {
  /** Records whose captured length exceeded the snaplen: cut to the snaplen, as libpcap does. */
  cutToSnaplen: number;
  /** 'gzip' or 'zstd' when the input was compressed. */
  compression: 'gzip' | 'zstd' | null;
}

const DEFAULT_CHUNK = 1 << 20;
const PCAP_HDR = 24;
const PCAP_REC_HDR = 16;
const BT_SHB = 0x0a0d0d0a;
const BT_IDB = 1;
const BT_PB = 2;
const BT_SPB = 3;
const BT_EPB = 6;
/** Largest snaplen we accept when the header says 0 ("unlimited"): 16 MiB. */
const MAX_SNAP = 16 << 20;

interface Iface {
  linkType: number;
  snaplen: number;
  /** Timestamp units per second (10^n or 2^n). */
  unitsPerSec: number;
  /** if_tsresol: base-10 exponent (>=0) or, when base2, the base-2 exponent. */
  resExp: number;
  resBase2: boolean;
  /** if_tsoffset in seconds. */
  tsOffset: number;
}

/** What `step` passes on as the bytes left in the input, at most. */
const LEFT_MAX = 0x3fffffff;

/** Where in the file, for an error (made only then: a text per block was most of a pcapng replay's garbage). */
const byteAt = (off: number): string => `byte ${off}`;

function hex32(buf: Uint8Array, p: number): string {
  let s = '';
  for (let i = 0; i < 4; i++) s += (buf[p + i] ?? 0).toString(16).padStart(2, '0');
  return s;
}

/**
 * NFLOG (`tcpdump -i nflog:N`): family, version, resource id, then TLVs (length and type in the
 * capturing host's byte order, 4-byte aligned); the packet is NFULA_PAYLOAD (9). Returns its
 * offset, or -1.
 */
function nflogPayload(buf: Uint8Array, off: number, len: number, le: boolean): number {
  let p = 4;
  while (p + 4 <= len) {
    const a = buf[off + p]!;
    const b = buf[off + p + 1]!;
    const tlen = le ? a | (b << 8) : (a << 8) | b;
    const c = buf[off + p + 2]!;
    const d = buf[off + p + 3]!;
    const type = (le ? c | (d << 8) : (c << 8) | d) & 0x7fff;
    if (tlen < 4) return -1;
    if (type === 9) return p + 4;
    p += (tlen + 3) & ~3;
  }
  return -1;
}

/** PPP (RFC 1662 framing, address/control optional, protocol field 1 or 2 bytes): IP offset and ethertype. */
function pppPayload(buf: Uint8Array, off: number, len: number): [number, number] {
  let p = 0;
  if (len >= 2 && buf[off] === 0xff && buf[off + 1] === 0x03) p = 2;
  if (p >= len) return [-1, -1];
  let proto: number;
  if (buf[off + p]! & 1) proto = buf[off + p++]!;
  else {
    if (p + 2 > len) return [-1, -1];
    proto = (buf[off + p]! << 8) | buf[off + p + 1]!;
    p += 2;
  }
  return proto === 0x21 ? [p, 0x0800] : proto === 0x57 ? [p, 0x86dd] : [-1, -1];
}

/** Fill rec.ipOffset / rec.ipVersion for a frame at buf[off, off+len). Returns false for an unknown link type. */
function decodeLink(rec: PacketRecord, linkType: number, buf: Uint8Array, off: number, len: number, le = true): boolean {
  let ipOff = -1;
  let etherType = -1;
  switch (linkType) {
    case 239: {
      // NFLOG: the family says which IP
      const fam = len >= 1 ? buf[off]! : 0;
      ipOff = nflogPayload(buf, off, len, le);
      if (ipOff >= 0 && (fam === 2 || fam === 10)) etherType = fam === 2 ? 0x0800 : 0x86dd;
      break;
    }
    case 9:
    case 50:
      [ipOff, etherType] = pppPayload(buf, off, len);
      break;
    case 104: // Cisco HDLC: address, control, ethertype
      if (len >= 4) {
        ipOff = 4;
        etherType = (buf[off + 2]! << 8) | buf[off + 3]!;
      }
      break;
    case 242: // IP over InfiniBand: ethertype, 2 reserved bytes
      if (len >= 4) {
        ipOff = 4;
        etherType = (buf[off]! << 8) | buf[off + 1]!;
      }
      break;
    case 1: // Ethernet
      if (len >= 14) {
        ipOff = 14;
        etherType = (buf[off + 12]! << 8) | buf[off + 13]!;
      }
      break;
    case 113: // Linux cooked v1: 16-byte header, protocol at 14
      if (len >= 16) {
        ipOff = 16;
        etherType = (buf[off + 14]! << 8) | buf[off + 15]!;
      }
      break;
    case 276: // Linux cooked v2: 20-byte header, protocol at 0
      if (len >= 20) {
        ipOff = 20;
        etherType = (buf[off]! << 8) | buf[off + 1]!;
      }
      break;
    case 101:
    case 12:
    case 14:
    case 228:
    case 229:
      ipOff = 0;
      break;
    case 0: // BSD loopback: AF in the capturing host's byte order
    case 108: {
      // LOOP: AF big-endian
      if (len >= 4) {
        const b0 = buf[off]!;
        const b3 = buf[off + 3]!;
        const af = b0 !== 0 && linkType === 0 ? b0 : b3;
        if (af === 2 || af === 10 || af === 24 || af === 28 || af === 30) ipOff = 4;
      }
      break;
    }
    default:
      rec.ipOffset = -1;
      rec.ipVersion = 0;
      return false;
  }
  if (etherType >= 0) {
    // 802.1Q / 802.1ad / old QinQ tags: 4 bytes each, inner ethertype last.
    while ((etherType === 0x8100 || etherType === 0x88a8 || etherType === 0x9100) && ipOff + 4 <= len) {
      etherType = (buf[off + ipOff + 2]! << 8) | buf[off + ipOff + 3]!;
      ipOff += 4;
    }
    if (etherType !== 0x0800 && etherType !== 0x86dd) ipOff = -1;
  }
  if (ipOff >= 0 && ipOff < len) {
    const v = buf[off + ipOff]! >> 4;
    let ok: boolean;
    if (etherType === 0x0800 || linkType === 228) ok = v === 4;
    else if (etherType === 0x86dd || linkType === 229) ok = v === 6;
    else ok = v === 4 || v === 6;
    if (ok) {
      rec.ipOffset = ipOff;
      rec.ipVersion = v as 4 | 6;
      return true;
    }
  }
  rec.ipOffset = -1;
  rec.ipVersion = 0;
  return true;
}

/** The parser's one record, reused: its `data` view is made only when asked for. */
class ReusedRecord implements PacketRecord {
  index = 0;
  tsSec = 0;
  tsNs: bigint | undefined = undefined;
  linkType = 0;
  ifId = 0;
  ipOffset = -1;
  ipVersion: 4 | 6 | 0 = 0;
  origLen = 0;
  capLen = 0;
  buf: Uint8Array = new Uint8Array(0);
  dataOffset = 0;
  private view: Uint8Array | null = null;

  setFrame(buf: Uint8Array, off: number): void {
    this.buf = buf;
    this.dataOffset = off;
    this.view = null;
  }

  get data(): Uint8Array {
    return (this.view ??= this.buf.subarray(this.dataOffset, this.dataOffset + this.capLen));
  }
}

const enum Fmt {
  Start,
  Pcap,
  Pcapng,
}

/**
 * The pull parser. `step` consumes one unit (file header, record, or block) from
 * buf[pos, end) and returns its length, or 0 when more bytes are needed (then `need` says how
 * many from `pos`) or the input is done. `base` is the file offset of buf[0]; `total` the file
 * size (bytes past it do not exist: a length reaching past it is a truncation).
 */
export class CaptureParser {
  readonly rec = new ReusedRecord();
  /** True after a step that produced a packet in `rec`. */
  ready = false;
  /** Bytes needed from pos before the next step can progress. */
  need = 0;
  /** Packets produced so far. */
  count = 0;

  private fmt = Fmt.Start;
  private le = true;
  private nano = false;
  private snaplen = 0;
  private linkType = 0;
  private ifaces: Iface[] = [];
  private readonly wantNs: boolean;
  private readonly passUnknown: boolean;
  private readonly stats: CaptureStats | undefined;

  constructor(opts: ReadOptions = {}) {
    this.wantNs = opts.tsNs === true;
    this.passUnknown = opts.unknownLinkType === 'pass';
    this.stats = opts.stats;
  }

  step(buf: Uint8Array, dv: DataView, pos: number, end: number, base: number, total: number): number {
    this.ready = false;
    const avail = end - pos;
    // (at most LEFT_MAX: a small integer to V8 — Infinity from a stream, or a file's past 1 GiB, is a
    // number boxed on the heap for each call it is passed to; no record is near that long)
    const left = Math.min(total - (base + pos), LEFT_MAX);
    if (left <= 0) return 0;
    switch (this.fmt) {
      case Fmt.Pcap:
        return this.pcapRecord(buf, dv, pos, avail, base, left);
      case Fmt.Pcapng:
        return this.pcapngBlock(buf, dv, pos, avail, base, left);
      default:
        return this.fileHeader(buf, dv, pos, avail, base, left);
    }
  }

  private more(n: number, avail: number): number {
    if (n > avail) {
      this.need = n;
      return 0;
    }
    return -1;
  }

  private fileHeader(buf: Uint8Array, dv: DataView, pos: number, avail: number, base: number, left: number): number {
    const at = `byte ${base + pos}`;
    if (left < 4) throw new InputError(`not a pcap or pcapng file (only ${left} bytes)`, at);
    if (this.more(4, avail) === 0) return 0;
    const m = dv.getUint32(pos, true);
    if (m === BT_SHB) {
      this.fmt = Fmt.Pcapng;
      return this.pcapngBlock(buf, dv, pos, avail, base, left);
    }
    if (m === 0xa1b2c3d4 || m === 0xd4c3b2a1 || m === 0xa1b23c4d || m === 0x4d3cb2a1) {
      this.le = m === 0xa1b2c3d4 || m === 0xa1b23c4d;
      this.nano = m === 0xa1b23c4d || m === 0x4d3cb2a1;
      if (left < PCAP_HDR) throw new InputError(`truncated pcap file header (need ${PCAP_HDR} bytes, ${left} left)`, at);
      if (this.more(PCAP_HDR, avail) === 0) return 0;
      const major = dv.getUint16(pos + 4, this.le);
      if (major !== 2) throw new InputError(`unsupported pcap version ${major}.${dv.getUint16(pos + 6, this.le)}`, at);
      this.snaplen = dv.getUint32(pos + 16, this.le);
      // Upper bits carry FCS information (LT_FCS_LENGTH); the link type is the low 26 bits.
      this.linkType = dv.getUint32(pos + 20, this.le) & 0x03ffffff;
      this.fmt = Fmt.Pcap;
      return PCAP_HDR;
    }
    if (m === 0x34cdb2a1 || m === 0xa1b2cd34) throw new InputError('modified (Kuznetzov) pcap format is not supported', at);
    throw new InputError(`not a pcap or pcapng file (magic 0x${hex32(buf, pos)})`, at);
  }

  private pcapRecord(buf: Uint8Array, dv: DataView, pos: number, avail: number, base: number, left: number): number {
    if (left < PCAP_REC_HDR)
      throw new InputError(`truncated packet record header (need ${PCAP_REC_HDR} bytes, ${left} left)`, `byte ${base + pos}`);
    if (this.more(PCAP_REC_HDR, avail) === 0) return 0;
    const le = this.le;
    const capLen = dv.getUint32(pos + 8, le);
    const snap = this.snaplen === 0 ? MAX_SNAP : Math.max(this.snaplen, 0);
    // Longer than the snaplen: libpcap reads the record and keeps snaplen bytes; only a length no
    // capture can have is corruption.
    if (capLen > MAX_SNAP) throw new InputError(`captured length ${capLen} is larger than any capture's (${MAX_SNAP}): the file is corrupt`, `byte ${base + pos}`);
    const size = PCAP_REC_HDR + capLen;
    if (size > left) throw new InputError(`truncated packet record (need ${capLen} bytes, ${left - PCAP_REC_HDR} left)`, `byte ${base + pos}`);
    if (this.more(size, avail) === 0) return 0;
    const sec = dv.getUint32(pos, le);
    const frac = dv.getUint32(pos + 4, le);
    const rec = this.rec;
    rec.tsSec = sec + (this.nano ? frac / 1e9 : frac / 1e6);
    if (this.wantNs) rec.tsNs = BigInt(sec) * 1_000_000_000n + BigInt(this.nano ? frac : frac * 1000);
    this.emit(buf, pos + PCAP_REC_HDR, this.cut(capLen, snap), dv.getUint32(pos + 12, le), this.linkType, 0, base, pos);
    return size;
  }

  private cut(capLen: number, snap: number): number {
    if (capLen <= snap) return capLen;
    if (this.stats) this.stats.cutToSnaplen++;
    return snap;
  }

  /** (`base` + `pos`: where the record starts, for an error — added only then: past 1 GiB of a file it is a double, boxed when passed) */
  private emit(buf: Uint8Array, dataOff: number, capLen: number, origLen: number, linkType: number, ifId: number, base: number, pos: number): void {
    const rec = this.rec;
    rec.index = this.count;
    rec.linkType = linkType;
    rec.ifId = ifId;
    rec.capLen = capLen;
    rec.origLen = origLen;
    rec.setFrame(buf, dataOff);
    if (!decodeLink(rec, linkType, buf, dataOff, capLen, this.le) && !this.passUnknown)
      throw new InputError(
        `unsupported link type ${linkType} ${linkTypeName(linkType)}${this.fmt === Fmt.Pcapng ? ` (interface ${ifId})` : ''}: it carries no IP ctprobe can read — capture on an interface that does (tcpdump -i any, -i eth0, -i nflog:N)`,
        byteAt(base + pos),
      );
    this.count++;
    this.ready = true;
  }

  private pcapngBlock(buf: Uint8Array, dv: DataView, pos: number, avail: number, base: number, left: number): number {
    if (left < 12) throw new InputError(`truncated block header (need 12 bytes, ${left} left)`, byteAt(base + pos));
    if (this.more(12, avail) === 0) return 0;
    const type = dv.getUint32(pos, this.le);
    if (type === BT_SHB) {
      const bom = dv.getUint32(pos + 8, true);
      if (bom === 0x1a2b3c4d) this.le = true;
      else if (bom === 0x4d3c2b1a) this.le = false;
      else throw new InputError(`bad byte-order magic 0x${hex32(buf, pos + 8)} in section header block`, byteAt(base + pos));
    }
    const le = this.le;
    const len = dv.getUint32(pos + 4, le);
    if (len < 12) throw new InputError(`block length ${len} is too small`, byteAt(base + pos));
    if (len % 4 !== 0) throw new InputError(`block length ${len} is not a multiple of 4`, byteAt(base + pos));
    if (len > left) throw new InputError(`truncated block (need ${len} bytes, ${left} left)`, byteAt(base + pos));
    if (this.more(len, avail) === 0) return 0;
    const trail = dv.getUint32(pos + len - 4, le);
    if (trail !== len) throw new InputError(`block trailing length ${trail} does not match leading length ${len}`, byteAt(base + pos));
    switch (type) {
      case BT_EPB: {
        if (len < 32) throw new InputError(`enhanced packet block too short (${len} bytes)`, byteAt(base + pos));
        const capLen = dv.getUint32(pos + 20, le);
        this.packet(buf, dv, pos, len, base, dv.getUint32(pos + 8, le), dv.getUint32(pos + 12, le), dv.getUint32(pos + 16, le), capLen, dv.getUint32(pos + 24, le), 28);
        break;
      }
      case BT_SPB: {
        if (len < 16) throw new InputError(`simple packet block too short (${len} bytes)`, byteAt(base + pos));
        const iface = this.iface(0, base, pos);
        const origLen = dv.getUint32(pos + 8, le);
        let capLen = Math.min(origLen, len - 16);
        if (iface.snaplen > 0) capLen = Math.min(capLen, iface.snaplen);
        this.packet(buf, dv, pos, len, base, 0, -1, 0, capLen, origLen, 12);
        break;
      }
      case BT_PB: {
        if (len < 32) throw new InputError(`packet block too short (${len} bytes)`, byteAt(base + pos));
        this.packet(buf, dv, pos, len, base, dv.getUint16(pos + 8, le), dv.getUint32(pos + 12, le), dv.getUint32(pos + 16, le), dv.getUint32(pos + 20, le), dv.getUint32(pos + 24, le), 28);
        break;
      }
      case BT_IDB:
        this.parseIdb(dv, pos, len, base + pos);
        break;
      case BT_SHB: {
        if (len < 28) throw new InputError(`section header block too short (${len} bytes)`, byteAt(base + pos));
        const major = dv.getUint16(pos + 12, le);
        if (major !== 1) throw new InputError(`unsupported pcapng version ${major}.${dv.getUint16(pos + 14, le)}`, byteAt(base + pos));
        this.ifaces = [];
        break;
      }
      default:
        break; // NRB, ISB, DSB, custom…: not needed
    }
    return len;
  }

  private iface(id: number, base: number, pos: number): Iface {
    const i = this.ifaces[id];
    if (!i) throw new InputError(`packet refers to interface ${id} but the section has ${this.ifaces.length} interface(s)`, byteAt(base + pos));
    return i;
  }

  /** Common tail of EPB / SPB / PB. tsHigh -1 = no timestamp (SPB). */
  private packet(
    buf: Uint8Array,
    _dv: DataView,
    pos: number,
    len: number,
    base: number,
    ifId: number,
    tsHigh: number,
    tsLow: number,
    capLen: number,
    origLen: number,
    dataRel: number,
  ): void {
    const iface = this.iface(ifId, base, pos);
    const room = len - dataRel - 4;
    if (capLen > room) throw new InputError(`truncated packet (captured length ${capLen}, block holds ${room} bytes)`, byteAt(base + pos));
    if (iface.snaplen > 0) capLen = this.cut(capLen, iface.snaplen);
    const rec = this.rec;
    if (tsHigh < 0) {
      rec.tsSec = 0;
      if (this.wantNs) rec.tsNs = 0n;
    } else {
      rec.tsSec = (tsHigh * 4294967296 + tsLow) / iface.unitsPerSec + iface.tsOffset;
      if (this.wantNs) {
        const units = (BigInt(tsHigh) << 32n) | BigInt(tsLow);
        let ns: bigint;
        if (iface.resBase2) ns = (units * 1_000_000_000n) >> BigInt(iface.resExp);
        else if (iface.resExp <= 9) ns = units * 10n ** BigInt(9 - iface.resExp);
        else ns = units / 10n ** BigInt(iface.resExp - 9);
        rec.tsNs = ns + BigInt(iface.tsOffset) * 1_000_000_000n;
      }
    }
    this.emit(buf, pos + dataRel, capLen, origLen, iface.linkType, ifId, base, pos);
  }

  private parseIdb(dv: DataView, pos: number, len: number, off: number): void {
    const le = this.le;
    if (len < 20) throw new InputError(`interface description block too short (${len} bytes)`, `byte ${off}`);
    const iface: Iface = {
      linkType: dv.getUint16(pos + 8, le),
      snaplen: dv.getUint32(pos + 12, le),
      unitsPerSec: 1e6,
      resExp: 6,
      resBase2: false,
      tsOffset: 0,
    };
    let p = pos + 16;
    const stop = pos + len - 4;
    while (p + 4 <= stop) {
      const code = dv.getUint16(p, le);
      const olen = dv.getUint16(p + 2, le);
      if (code === 0) break;
      const v = p + 4;
      if (v + olen > stop) throw new InputError(`option ${code} (length ${olen}) overruns its block`, `byte ${off}`);
      if (code === 9 && olen >= 1) {
        const r = dv.getUint8(v);
        iface.resBase2 = (r & 0x80) !== 0;
        iface.resExp = r & 0x7f;
        iface.unitsPerSec = iface.resBase2 ? 2 ** iface.resExp : 10 ** iface.resExp;
      } else if (code === 14 && olen >= 8) {
        iface.tsOffset = Number(dv.getBigInt64(v, le));
      }
      p = v + ((olen + 3) & ~3);
    }
    this.ifaces.push(iface);
  }
}

function viewOf(buf: Uint8Array): DataView {
  return new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
}

function copyRecord(r: PacketRecord): PacketRecord {
  const c: PacketRecord = {
    index: r.index,
    tsSec: r.tsSec,
    linkType: r.linkType,
    ifId: r.ifId,
    data: r.data,
    buf: r.data,
    dataOffset: 0,
    ipOffset: r.ipOffset,
    ipVersion: r.ipVersion,
    origLen: r.origLen,
    capLen: r.capLen,
  };
  if (r.tsNs !== undefined) c.tsNs = r.tsNs;
  return c;
}

/** Packets of a capture already in memory. */
export function* parseCaptureBuffer(buf: Uint8Array, opts: ReadOptions = {}): Generator<PacketRecord, void, undefined> {
  const parser = new CaptureParser(opts);
  const dv = viewOf(buf);
  const end = buf.length;
  let pos = 0;
  for (;;) {
    const n = parser.step(buf, dv, pos, end, 0, end);
    if (n === 0) return; // with the whole input present, 0 means done
    pos += n;
    if (parser.ready) yield opts.reuse ? parser.rec : copyRecord(parser.rec);
  }
}

/** Callback over a capture already in memory (reuses one record). Returns the packet count. */
export function forEachPacketInBuffer(buf: Uint8Array, fn: (rec: PacketRecord) => void | boolean, opts: ReadOptions = {}): number {
  const parser = new CaptureParser(opts);
  const dv = viewOf(buf);
  const end = buf.length;
  let pos = 0;
  for (;;) {
    const n = parser.step(buf, dv, pos, end, 0, end);
    if (n === 0) break;
    pos += n;
    if (parser.ready && fn(parser.rec) === false) break;
  }
  return parser.count;
}

/** A window buf[start, end) at input offset `base` over a file or a stream. */
interface ByteSource {
  buf: Uint8Array;
  dv: DataView;
  start: number;
  end: number;
  base: number;
  /** Total bytes, or Infinity for a stream until it ends. */
  readonly size: number;
  /** How far into its input the bytes up to `base + at` are (see ReadProgress), or null. */
  fraction(at: number): number | null;
  refill(need: number): Promise<boolean>;
  close(): Promise<void>;
}

const GZIP_MAGIC = 0x1f8b;
const ZSTD_MAGIC = 0x28b52ffd;

function compressionOf(head: Uint8Array): 'gzip' | 'zstd' | null {
  if (head.length >= 2 && ((head[0]! << 8) | head[1]!) === GZIP_MAGIC) return 'gzip';
  if (head.length >= 4 && ((head[0]! << 24) | (head[1]! << 16) | (head[2]! << 8) | head[3]!) >>> 0 === ZSTD_MAGIC) return 'zstd';
  return null;
}

/** zstd frames → decompressed chunks (fzstd: pure JS, streaming; loaded only for a zstd capture). */
async function* unzstd(input: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  const { Decompress } = await import('fzstd');
  const out: Uint8Array[] = [];
  const d = new Decompress((chunk) => void out.push(chunk));
  for await (const c of input) {
    d.push(c);
    while (out.length) yield out.shift()!;
  }
  d.push(new Uint8Array(0), true);
  while (out.length) yield out.shift()!;
}

/** The first bytes of a stream, then the rest of it. */
async function* prepend(first: Uint8Array, it: AsyncIterator<Uint8Array>): AsyncGenerator<Uint8Array> {
  if (first.length) yield first;
  for (;;) {
    const r = await it.next();
    if (r.done) return;
    yield r.value;
  }
}

/**
 * A stream (stdin, or a decompressor): its size is unknown until it ends, so the parser sees
 * Infinity bytes left until then; packets are handed on as they arrive (tcpdump -U -w - | …).
 */
class StreamSource implements ByteSource {
  buf: Uint8Array = new Uint8Array(0);
  dv: DataView = viewOf(this.buf);
  start = 0;
  end = 0;
  base = 0;
  size = Infinity;
  private readonly it: AsyncIterator<Uint8Array>;
  constructor(
    chunks: AsyncIterable<Uint8Array>,
    private readonly what: string,
    private readonly onClose: () => void,
    /** How far the compressed input is read (a file's), or null. */
    private readonly inputFraction: () => number | null = () => null,
  ) {
    this.it = chunks[Symbol.asyncIterator]();
  }

  fraction(): number | null {
    return this.inputFraction();
  }

  async refill(need: number): Promise<boolean> {
    const keep = this.end - this.start;
    const parts: Uint8Array[] = [];
    let got = 0;
    // at least one chunk, and enough for what the parser needs
    while (got === 0 || keep + got < need) {
      let r: IteratorResult<Uint8Array>;
      try {
        r = await this.it.next();
      } catch (e) {
        throw new InputError(`cannot read the ${this.what}: ${errorText(e)}`);
      }
      if (r.done) {
        this.size = this.base + this.end + got;
        break;
      }
      parts.push(r.value);
      got += r.value.length;
    }
    if (got === 0) return false;
    const nb = new Uint8Array(keep + got);
    nb.set(this.buf.subarray(this.start, this.end), 0);
    let o = keep;
    for (const p of parts) {
      nb.set(p, o);
      o += p.length;
    }
    this.base += this.start;
    this.buf = nb;
    this.dv = viewOf(nb);
    this.start = 0;
    this.end = nb.length;
    return true;
  }

  close(): Promise<void> {
    this.onClose();
    return Promise.resolve();
  }
}

/**
 * Open a capture: a file (read in place), a gzip/zstd-compressed file (.pcap.gz, .pcapng.zst —
 * recognised by their magic, not their name) or `-` for standard input (compressed or not).
 */
async function openSource(path: string, opts: ReadOptions): Promise<ByteSource> {
  const stats = opts.stats;
  if (path === '-') {
    const it = (process.stdin as AsyncIterable<Uint8Array>)[Symbol.asyncIterator]();
    const first = await it.next();
    if (first.done || first.value.length === 0) throw new InputError('standard input is empty: not a pcap or pcapng capture');
    const kind = compressionOf(first.value);
    if (stats) stats.compression = kind;
    const raw = prepend(first.value, it);
    const stop = () => process.stdin.destroy();
    if (kind === 'gzip') return new StreamSource(gunzip(raw), 'gzip-compressed standard input', stop);
    if (kind === 'zstd') return new StreamSource(unzstd(raw), 'zstd-compressed standard input', stop);
    return new StreamSource(raw, 'standard input', stop);
  }
  const file = await FileSource.open(path, opts);
  const head = new Uint8Array(4);
  await file.peek(head);
  const kind = compressionOf(head);
  if (stats) stats.compression = kind;
  if (!kind) return file;
  await file.close();
  const rs = createReadStream(path);
  const stop = () => rs.destroy();
  // (what the decompressor has taken of the file: a little ahead of the packets read)
  const size = file.size;
  return new StreamSource(kind === 'gzip' ? gunzip(rs) : unzstd(rs), `${kind}-compressed file ${path}`, stop, () => Math.min(1, rs.bytesRead / size));
}

/** gzip → decompressed chunks (zlib loaded only for a gzip capture). */
async function* gunzip(input: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  const { createGunzip } = await import('node:zlib');
  const z = createGunzip();
  const feed = (async () => {
    try {
      for await (const c of input) if (!z.write(c)) await new Promise((r) => z.once('drain', r));
      z.end();
    } catch (e) {
      z.destroy(e as Error);
    }
  })();
  try {
    for await (const c of z) yield c as Uint8Array;
  } finally {
    await feed;
  }
}

/** Chunked file source: a window buf[start, end) at file offset `base`. */
class FileSource implements ByteSource {
  buf: Uint8Array = new Uint8Array(0);
  dv: DataView = viewOf(this.buf);
  start = 0;
  end = 0;
  base = 0;
  /** With transientData: the one read buffer, reused. */
  private store: Uint8Array | null = null;
  private constructor(
    private readonly fh: FileHandle,
    readonly size: number,
    private readonly chunk: number,
    private readonly reuse: boolean,
  ) {}

  static async open(path: string, opts: ReadOptions): Promise<FileSource> {
    let fh: FileHandle;
    try {
      fh = await open(path, 'r');
    } catch (e) {
      throw new InputError(`cannot open capture: ${(e as Error).message}`);
    }
    try {
      const st = await fh.stat();
      if (!st.isFile()) throw new InputError(`not a regular file: ${path}`);
      if (st.size === 0) throw new InputError('the file is empty: not a pcap or pcapng capture', path);
      return new FileSource(fh, st.size, Math.max(64, opts.chunkSize ?? DEFAULT_CHUNK), opts.transientData === true);
    } catch (e) {
      await fh.close();
      throw e;
    }
  }

  fraction(at: number): number {
    return (this.base + at) / this.size;
  }

  /** Move the unconsumed tail into a fresh buffer of at least `need` bytes and fill it. False at EOF. */
  async refill(need: number): Promise<boolean> {
    const keep = this.end - this.start;
    const fileOff = this.base + this.end;
    if (fileOff >= this.size) return false;
    const cap = Math.max(this.chunk, need, keep);
    const want = Math.min(cap, keep + (this.size - fileOff));
    let nb: Uint8Array;
    if (this.store && this.store.length >= want) {
      // Views need not outlive the callback: slide the tail to the front and read on in place.
      if (keep > 0) this.store.copyWithin(0, this.start, this.end);
      nb = this.store.subarray(0, want);
    } else {
      // Fresh buffer: views handed out from the old one stay valid.
      nb = Buffer.allocUnsafe(want);
      if (keep > 0) nb.set(this.buf.subarray(this.start, this.end), 0);
      if (this.reuse) this.store = nb;
    }
    let filled = keep;
    while (filled < nb.length) {
      const { bytesRead } = await this.fh.read(nb, filled, nb.length - filled, this.base + this.start + filled);
      if (bytesRead === 0) break;
      filled += bytesRead;
    }
    this.base += this.start;
    this.buf = nb;
    this.dv = viewOf(nb);
    this.start = 0;
    this.end = filled;
    return filled > keep;
  }

  /** Read the first bytes without consuming them. */
  async peek(into: Uint8Array): Promise<void> {
    await this.fh.read(into, 0, Math.min(into.length, this.size), 0);
  }

  close(): Promise<void> {
    return this.fh.close();
  }
}

/**
 * Fast path: call `fn` for every packet of the capture at `path`, with one reused record
 * (`data` views stay valid; the record object does not). Return false from fn to stop early.
 * Resolves to the number of packets seen.
 */
export async function forEachPacket(path: string, fn: (rec: PacketRecord) => void | boolean, opts: ReadOptions = {}): Promise<number> {
  const src = await openSource(path, opts);
  const parser = new CaptureParser(opts);
  const progress: ReadProgress = { packets: 0, fraction: null };
  try {
    let total = src.size;
    for (;;) {
      const { buf, dv, end, base } = src;
      let pos = src.start;
      for (;;) {
        const n = parser.step(buf, dv, pos, end, base, total);
        if (n === 0) break;
        pos += n;
        if (parser.ready && fn(parser.rec) === false) return parser.count;
      }
      src.start = pos;
      let wait: Promise<void> | null | void = null;
      if (opts.pause) {
        progress.packets = parser.count;
        progress.fraction = src.fraction(pos);
        wait = opts.pause(progress);
      }
      if (wait) await wait;
      if (base + pos >= total) break;
      if (!(await src.refill(parser.need))) {
        total = src.base + src.end; // file shrank under us: report truncation at the real end
        parser.step(src.buf, src.dv, src.start, src.end, src.base, total);
        break;
      }
    }
    return parser.count;
  } finally {
    await src.close();
  }
}

/** Async generator over the packets of the capture at `path`, reading it in chunks. */
export async function* readCapture(path: string, opts: ReadOptions = {}): AsyncGenerator<PacketRecord, void, undefined> {
  const src = await openSource(path, opts);
  const parser = new CaptureParser(opts);
  const reuse = opts.reuse === true;
  try {
    let total = src.size;
    for (;;) {
      const { buf, dv, end, base } = src;
      let pos = src.start;
      for (;;) {
        const n = parser.step(buf, dv, pos, end, base, total);
        if (n === 0) break;
        pos += n;
        if (parser.ready) {
          src.start = pos;
          yield reuse ? parser.rec : copyRecord(parser.rec);
        }
      }
      src.start = pos;
      if (base + pos >= total) break;
      if (!(await src.refill(parser.need))) {
        total = src.base + src.end;
        parser.step(src.buf, src.dv, src.start, src.end, src.base, total);
        break;
      }
    }
  } finally {
    await src.close();
  }
}
