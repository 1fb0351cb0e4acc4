/**
 * Raw IPPROTO_TCP sockets on Node's event loop, and a send-only packet socket. The only module
 * that touches FFI (koffi).
 *
 * - non-blocking fd, watched with koffi.node.poll; each wake-up reads with recvmmsg (a batch of
 *   segments per system call and per FFI call) until the queue is empty or a bounded number of
 *   batches was read (the poll is level-triggered: the rest comes on the next turn of the loop, so
 *   a flood cannot starve timers and the listener);
 * - SO_RCVBUFFORCE of a few MB so bursts are not dropped;
 * - a classic BPF filter so only segments to the watched port wake us, trimmed to `snaplen`;
 * - sendto() of a TCP segment whose checksum the caller computed (the kernel adds the IP header),
 *   or sendmmsg() of a SendBatch laid out once (a flood's sender does no per-segment work);
 * - LinkSender: a send-only AF_PACKET socket for whole IPv4 packets (a flood generator's shortcut
 *   past its own IP stack).
 *
 * IPv4 receive buffers start at the IP header; IPv6 raw sockets deliver the TCP segment only, so
 * the source address comes from recvfrom().
 */
import { createRequire } from 'node:module';
import { PrivilegeError, SystemError, UsageError } from '../errors.js';

const AF_INET = 2;
const AF_INET6 = 10;
const AF_PACKET = 17;
const SOCK_DGRAM = 2;
const SOL_PACKET = 263;
const PACKET_QDISC_BYPASS = 20;
const ETH_P_IP = 0x0800;
const SOCK_RAW = 3;
const SOCK_NONBLOCK = 0o4000;
const SOCK_CLOEXEC = 0o2000000;
const IPPROTO_TCP = 6;
const SOL_SOCKET = 1;
const SO_RCVBUF = 8;
const SO_RCVBUFFORCE = 33;
const SO_ATTACH_FILTER = 26;
const SOL_IP = 0;
const SO_ORIGINAL_DST = 80;
const EAGAIN = 11;
const EINTR = 4;
const ENOBUFS = 105;
/** Messages per sendmmsg/recvmmsg call the kernel accepts (UIO_MAXIOV). */
const MAX_MMSG = 1024;
/** struct mmsghdr on 64-bit Linux: struct msghdr (56 bytes) + unsigned msg_len, padded to 64. */
const MMSG_SIZE = 64;
const IOVEC_SIZE = 16;
const EPERM = 1;
const EACCES = 13;

type KoffiFn = (...args: unknown[]) => unknown;
interface Libc {
  koffi: typeof import('koffi');
  socket: KoffiFn;
  setsockopt: KoffiFn;
  getsockopt: KoffiFn;
  sendto: KoffiFn;
  sendmmsg: KoffiFn;
  recvmmsg: KoffiFn;
  close: KoffiFn;
  strerror: KoffiFn;
  ifNameToIndex: KoffiFn;
}

let libc: Libc | null = null;

function load(): Libc {
  if (libc) return libc;
  const require = createRequire(import.meta.url);
  let koffi: typeof import('koffi');
  try {
    koffi = require('koffi') as typeof import('koffi');
  } catch (e) {
    throw new SystemError(`cannot load koffi (FFI for raw sockets): ${(e as Error).message} — run 'npm ci'`);
  }
  const lib = koffi.load('libc.so.6');
  libc = {
    koffi,
    socket: lib.func('int socket(int, int, int)') as KoffiFn,
    setsockopt: lib.func('int setsockopt(int, int, int, void *, uint32_t)') as KoffiFn,
    getsockopt: lib.func('int getsockopt(int, int, int, _Out_ void *, _Inout_ uint32_t *)') as KoffiFn,
    sendto: lib.func('intptr_t sendto(int, void *, size_t, int, void *, uint32_t)') as KoffiFn,
    // The mmsghdr arrays are laid out by hand (pointers into buffers this module keeps alive).
    sendmmsg: lib.func('int sendmmsg(int, void *, unsigned int, int)') as KoffiFn,
    recvmmsg: lib.func('int recvmmsg(int, void *, unsigned int, int, void *)') as KoffiFn,
    close: lib.func('int close(int)') as KoffiFn,
    strerror: lib.func('const char *strerror(int)') as KoffiFn,
    ifNameToIndex: lib.func('unsigned int if_nametoindex(const char *)') as KoffiFn,
  };
  return libc;
}

function errnoText(l: Libc, err: number): string {
  return String(l.strerror(err));
}

/**
 * Classic BPF: accept TCP segments whose destination port is `port` (any segment without one),
 * keeping their first `snaplen` bytes.
 */
function portFilter(port: number | undefined, family: 4 | 6, snaplen: number): Buffer {
  // struct sock_filter { u16 code; u8 jt; u8 jf; u32 k; }
  const prog: Array<[number, number, number, number]> =
    port === undefined
      ? [[0x06, 0, 0, snaplen]] // ret #snaplen
      : family === 4
        ? [
            [0xb1, 0, 0, 0], // ldxb 4*([0]&0xf)   — IP header length
            [0x48, 0, 0, 2], // ldh [x+2]          — TCP destination port
            [0x15, 0, 1, port], // jeq #port
            [0x06, 0, 0, snaplen], // ret #snaplen
            [0x06, 0, 0, 0], // ret #0
          ]
        : [
            [0x28, 0, 0, 2], // ldh [2] — IPv6 raw sockets start at the TCP header
            [0x15, 0, 1, port],
            [0x06, 0, 0, snaplen],
            [0x06, 0, 0, 0],
          ];
  const b = Buffer.alloc(prog.length * 8);
  prog.forEach(([code, jt, jf, k], i) => {
    b.writeUInt16LE(code, i * 8);
    b.writeUInt8(jt, i * 8 + 2);
    b.writeUInt8(jf, i * 8 + 3);
    b.writeUInt32LE(k >>> 0, i * 8 + 4);
  });
  return b;
}

export interface RawPacket {
  /** View into the socket's receive buffer: valid only during the callback. */
  data: Uint8Array;
  family: 4 | 6;
  /** IPv6 only: the sender's address (16 bytes); IPv4 carries it in the header. */
  from: Uint8Array | null;
}

export interface RawTcpSocketOptions {
  family?: 4 | 6;
  /** Only segments to this destination port wake us (BPF). */
  port?: number;
  /** Receive buffer size, bytes (SO_RCVBUFFORCE; falls back to SO_RCVBUF). */
  rcvbuf?: number;
  /**
   * Bytes kept of each segment (the BPF filter trims the rest in the kernel; default 65535, the
   * whole segment). A reader of headers only (IPv4 + TCP: 120 bytes) copies less and reads more
   * segments per call.
   */
  snaplen?: number;
  /**
   * Segments read per recvmmsg call (default: as many as fit 1 MiB of `snaplen`-byte slots, at
   * most 256).
   */
  batch?: number;
  /**
   * Wake-up coalescing, ms (default 0: off). When a wake-up comes less than this after the
   * previous one (a busy socket) and drains the queue, the reader stops polling for this long, so
   * the next read finds a batch instead of one segment: at most ~2 wake-ups per period instead of
   * one per segment (each costs the sender a wake-up IPI and the reader a context switch). Adds at
   * most this latency, only under load; the receive buffer must hold this long's segments.
   */
  coalesceMs?: number;
}

/** At most this many recvmmsg batches per poll wake-up; the rest waits one turn of the loop. */
const MAX_BATCHES_PER_WAKEUP = 64;
const SOCKADDR_IN6 = 28;
const POLL_READABLE = { readable: true, writable: false, disconnect: false };

/** A reader's recvmmsg layout: slots, iovecs, (IPv6) sender addresses, message headers. */
interface Reader {
  slots: Buffer;
  iov: Buffer;
  names: Buffer;
  hdrs: Buffer;
  /** hdrs as u32: msg_namelen at [16i + 2], msg_len at [16i + 14]. */
  h32: Uint32Array;
  pkt: RawPacket;
  cb: (pkt: RawPacket) => void;
}

/** What a SendBatch was laid out for: TCP segments on an IPv4/IPv6 raw socket, or IPv4 packets on a link. */
export type BatchKind = 'tcp4' | 'tcp6' | 'link';

/**
 * Segments (or packets) to one destination, laid out once for sendmmsg: one contiguous copy, their
 * iovecs and message headers. Made by `prepare` of the socket that sends it (RawTcpSocket,
 * LinkSender); sent by its `sendBatch`, whole or a slice at a time, as often as wanted.
 */
export class SendBatch {
  /** Number of segments. */
  readonly length: number;
  readonly kind: BatchKind;
  /** @internal The mmsghdr array; the other buffers are referenced so the pointers in it stay valid. */
  readonly hdrs: Buffer;
  private readonly keep: Buffer[];

  /** @internal */
  constructor(kind: BatchKind, length: number, hdrs: Buffer, keep: Buffer[]) {
    this.kind = kind;
    this.length = length;
    this.hdrs = hdrs;
    this.keep = keep;
  }

  /** Bytes held (segments, iovecs, headers), for callers that bound their memory. */
  get bytes(): number {
    return this.keep.reduce((n, b) => n + b.length, this.hdrs.length);
  }
}

/** Lay `items` out for sendmmsg to the socket address `addr` (copied). */
function layout(l: Libc, kind: BatchKind, items: readonly Uint8Array[], addr: Buffer): SendBatch {
  const koffi = l.koffi;
  const name = Buffer.from(addr);
  let total = 0;
  for (const it of items) total += it.length;
  const data = Buffer.alloc(Math.max(1, total));
  const iov = Buffer.alloc(Math.max(1, items.length * IOVEC_SIZE));
  const hdrs = Buffer.alloc(Math.max(1, items.length * MMSG_SIZE));
  const dataAt = koffi.address(data);
  const iovAt = koffi.address(iov);
  const nameAt = koffi.address(name);
  let off = 0;
  items.forEach((it, i) => {
    data.set(it, off);
    iov.writeBigUInt64LE(dataAt + BigInt(off), i * IOVEC_SIZE);
    iov.writeBigUInt64LE(BigInt(it.length), i * IOVEC_SIZE + 8);
    const h = i * MMSG_SIZE;
    hdrs.writeBigUInt64LE(nameAt, h); // msg_name
    hdrs.writeUInt32LE(name.length, h + 8); // msg_namelen
    hdrs.writeBigUInt64LE(iovAt + BigInt(i * IOVEC_SIZE), h + 16); // msg_iov
    hdrs.writeBigUInt64LE(1n, h + 24); // msg_iovlen
    off += it.length;
  });
  return new SendBatch(kind, items.length, hdrs, [data, iov, name]);
}

/**
 * sendmmsg of items `start` … `start + count - 1` of a batch (≤ 1,024 per call). Returns how many
 * the kernel took: fewer than `count` when the socket's buffer is full (EAGAIN/ENOBUFS on a
 * non-blocking socket); other errors throw.
 */
function sendSlice(l: Libc, fd: number, batch: SendBatch, kind: BatchKind, start: number, count: number): number {
  if (batch.kind !== kind) throw new UsageError(`raw socket: a ${batch.kind} batch on a ${kind} socket`);
  if (!(Number.isInteger(start) && Number.isInteger(count) && start >= 0 && count >= 0 && start + count <= batch.length)) {
    throw new UsageError(`raw socket: segments ${start}…${start + count - 1} of a batch of ${batch.length}`);
  }
  let sent = 0;
  while (sent < count) {
    const k = Math.min(count - sent, MAX_MMSG);
    const at = (start + sent) * MMSG_SIZE;
    const n = l.sendmmsg(fd, batch.hdrs.subarray(at, at + k * MMSG_SIZE), k, 0) as number;
    if (n < 0) {
      const err = l.koffi.errno();
      if (err === EINTR) continue;
      if (err === EAGAIN || err === ENOBUFS) return sent;
      throw new SystemError(`sendmmsg failed: ${errnoText(l, err)}`);
    }
    sent += n;
    if (n < k) return sent;
  }
  return sent;
}

/** A raw IPPROTO_TCP socket whose reads are driven by Node's event loop. */
export class RawTcpSocket {
  readonly family: 4 | 6;
  private fd: number;
  private readonly l: Libc;
  private poller: ReturnType<Libc['koffi']['node']['poll']> | null = null;
  private readonly addrBuf: Buffer;
  /** The reader's buffers: referenced while the kernel may write into them. */
  private reader: Reader | null = null;
  /** Bytes kept of each received segment (BPF-trimmed), and segments read per recvmmsg call. */
  readonly snaplen: number;
  readonly batch: number;
  private readonly coalesceMs: number;
  private coalesceTimer: NodeJS.Timeout | null = null;
  private refed = true;
  /** Segments received and handed to the callback. */
  received = 0;
  /** recvmmsg calls that returned segments (received / reads = the mean batch). */
  reads = 0;

  private constructor(l: Libc, fd: number, family: 4 | 6, snaplen: number, batch: number, coalesceMs: number) {
    this.coalesceMs = coalesceMs;
    this.l = l;
    this.fd = fd;
    this.family = family;
    this.snaplen = snaplen;
    this.batch = batch;
    this.addrBuf = Buffer.alloc(family === 4 ? 16 : 28);
  }

  static open(opts: RawTcpSocketOptions = {}): RawTcpSocket {
    const snaplen = Math.min(opts.snaplen ?? 65535, 65535);
    if (!(snaplen >= 1 && Number.isInteger(snaplen))) throw new UsageError(`raw socket snaplen must be a positive integer, got ${opts.snaplen}`);
    const batch = Math.min(opts.batch ?? Math.max(1, Math.min(256, Math.floor((1 << 20) / snaplen))), MAX_MMSG);
    if (!(batch >= 1 && Number.isInteger(batch))) throw new UsageError(`raw socket batch must be a positive integer, got ${opts.batch}`);
    const l = load();
    const family = opts.family ?? 4;
    const fd = l.socket(family === 4 ? AF_INET : AF_INET6, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP) as number;
    if (fd < 0) {
      const err = l.koffi.errno();
      if (err === EPERM || err === EACCES) throw new PrivilegeError('raw sockets need root or CAP_NET_RAW (run as root, or setcap cap_net_raw,cap_net_admin+ep on node)');
      throw new SystemError(`socket(AF_INET${family === 6 ? '6' : ''}, SOCK_RAW, IPPROTO_TCP) failed: ${errnoText(l, err)}`);
    }
    const s = new RawTcpSocket(l, fd, family, snaplen, batch, Math.max(0, opts.coalesceMs ?? 0));
    try {
      s.setRcvbuf(opts.rcvbuf ?? 8 * 1024 * 1024);
      if (opts.port !== undefined || snaplen < 65535) s.attachFilter(portFilter(opts.port, family, snaplen));
    } catch (e) {
      s.close();
      throw e;
    }
    return s;
  }

  private setInt(level: number, name: number, value: number): number {
    const v = Buffer.alloc(4);
    v.writeInt32LE(value);
    return this.l.setsockopt(this.fd, level, name, v, 4) as number;
  }

  private setRcvbuf(bytes: number): void {
    // SO_RCVBUFFORCE needs CAP_NET_ADMIN; without it the plain option is capped by rmem_max.
    if (this.setInt(SOL_SOCKET, SO_RCVBUFFORCE, bytes) < 0) this.setInt(SOL_SOCKET, SO_RCVBUF, bytes);
  }

  private attachFilter(filter: Buffer): void {
    const fprog = Buffer.alloc(16); // struct sock_fprog { u16 len; (pad) ; sock_filter *filter; }
    fprog.writeUInt16LE(filter.length / 8, 0);
    fprog.writeBigUInt64LE(this.l.koffi.address(filter), 8);
    const rc = this.l.setsockopt(this.fd, SOL_SOCKET, SO_ATTACH_FILTER, fprog, 16) as number;
    if (rc < 0) throw new SystemError(`SO_ATTACH_FILTER failed: ${errnoText(this.l, this.l.koffi.errno())}`);
  }

  /**
   * Start delivering segments. The koffi poll callback is called as (status, events) at run time
   * although its typings say (events); this is the one place that knows.
   */
  onPacket(cb: (pkt: RawPacket) => void): void {
    if (this.poller) throw new SystemError('raw socket already has a reader');
    const { batch, snaplen, family } = this;
    const koffi = this.l.koffi;
    // `batch` slots of `snaplen` bytes, one iovec and one mmsghdr each (and, for IPv6, a
    // sockaddr_in6 each: the sender is not in the segment). Laid out once; recvmmsg fills them.
    const slots = Buffer.alloc(batch * snaplen);
    const iov = Buffer.alloc(batch * IOVEC_SIZE);
    const hdrs = Buffer.alloc(batch * MMSG_SIZE);
    const names = Buffer.alloc(family === 6 ? batch * SOCKADDR_IN6 : 0);
    const slotsAt = koffi.address(slots);
    const iovAt = koffi.address(iov);
    const namesAt = family === 6 ? koffi.address(names) : 0n;
    for (let i = 0; i < batch; i++) {
      iov.writeBigUInt64LE(slotsAt + BigInt(i * snaplen), i * IOVEC_SIZE);
      iov.writeBigUInt64LE(BigInt(snaplen), i * IOVEC_SIZE + 8);
      const h = i * MMSG_SIZE;
      if (family === 6) {
        hdrs.writeBigUInt64LE(namesAt + BigInt(i * SOCKADDR_IN6), h); // msg_name
        hdrs.writeUInt32LE(SOCKADDR_IN6, h + 8); // msg_namelen
      }
      hdrs.writeBigUInt64LE(iovAt + BigInt(i * IOVEC_SIZE), h + 16); // msg_iov
      hdrs.writeBigUInt64LE(1n, h + 24); // msg_iovlen
    }
    // The kernel writes through the pointers in hdrs: every buffer stays referenced while we read.
    const r: Reader = { slots, iov, names, hdrs, h32: new Uint32Array(hdrs.buffer, hdrs.byteOffset, hdrs.length / 4), pkt: { data: slots.subarray(0, 0), family, from: null }, cb };
    this.reader = r;
    let lastWake = -Infinity;
    const onPoll = (status: number): void => {
      if (status < 0 || this.fd < 0) return;
      const now = this.coalesceMs > 0 ? performance.now() : 0;
      const busy = now - lastWake < this.coalesceMs;
      lastWake = now;
      if (!this.readBatches(r) && busy && this.poller && this.fd >= 0) this.pause(onPoll);
    };
    this.poller = koffi.node.poll(this.fd, POLL_READABLE, onPoll as unknown as () => void);
  }

  /** Stop polling for coalesceMs, then poll again (the timer follows the socket's ref/unref). */
  private pause(onPoll: (status: number) => void): void {
    const poller = this.poller!;
    poller.stop();
    this.coalesceTimer = setTimeout(() => {
      this.coalesceTimer = null;
      if (this.poller === poller) poller.start(POLL_READABLE, onPoll as unknown as () => void);
    }, this.coalesceMs);
    if (!this.refed) this.coalesceTimer.unref();
  }

  /**
   * Read up to MAX_BATCHES_PER_WAKEUP batches and deliver them. Returns true when it stopped with
   * segments still queued (the bound, not an empty queue), false when the queue is empty.
   */
  private readBatches(r: Reader): boolean {
    const { batch, snaplen, family } = this;
    for (let round = 0; round < MAX_BATCHES_PER_WAKEUP; round++) {
      const n = this.l.recvmmsg(this.fd, r.hdrs, batch, 0, null) as number;
      if (n < 0) {
        const err = this.l.koffi.errno();
        if (err === EINTR) continue;
        if (err !== EAGAIN) throw new SystemError(`recvmmsg on raw socket failed: ${errnoText(this.l, err)}`);
        return false;
      }
      this.reads++;
      this.received += n;
      for (let i = 0; i < n; i++) {
        const off = i * snaplen;
        r.pkt.data = r.slots.subarray(off, off + r.h32[i * 16 + 14]!); // msg_len
        if (family === 6) {
          r.pkt.from = r.names.subarray(i * SOCKADDR_IN6 + 8, i * SOCKADDR_IN6 + 24);
          r.h32[i * 16 + 2] = SOCKADDR_IN6; // msg_namelen back to the buffer's size for the next call
        }
        r.cb(r.pkt);
        if (this.fd < 0) return false; // closed by the callback
      }
      if (n < batch) return false; // the queue is empty (level-triggered: more wakes us again)
    }
    return true;
  }

  /**
   * Hand every segment the socket already holds to the callback now, without waiting for the
   * event loop's poll phase: a timer that judges "nothing came" calls it first, so a segment that
   * arrived in time is never judged missing because this process was not scheduled until after
   * the timer was due (libuv runs due timers before it polls).
   */
  readPending(): void {
    if (this.reader && this.fd >= 0) this.readBatches(this.reader);
  }

  private sockaddr(dst: Uint8Array): Buffer {
    const a = this.addrBuf;
    a.fill(0);
    if (dst.length !== (this.family === 4 ? 4 : 16)) throw new UsageError(`raw socket: destination of ${dst.length} bytes on an IPv${this.family} socket`);
    if (this.family === 4) {
      a.writeUInt16LE(AF_INET, 0);
      a.set(dst, 4);
    } else {
      a.writeUInt16LE(AF_INET6, 0);
      a.set(dst, 8);
    }
    return a;
  }

  /** Send a TCP segment (checksum already set) to `dst` (4 or 16 bytes). Returns bytes sent. */
  send(segment: Uint8Array, dst: Uint8Array): number {
    const a = this.sockaddr(dst);
    const n = Number(this.l.sendto(this.fd, segment, segment.length, 0, a, a.length));
    if (n < 0) throw new SystemError(`sendto on raw socket failed: ${errnoText(this.l, this.l.koffi.errno())}`);
    return n;
  }

  /**
   * Lay out TCP segments (checksums already set) to `dst` for sendBatch: copied once into one
   * buffer with their iovecs and message headers, so sending them again costs no JS work per
   * segment.
   */
  prepare(segments: readonly Uint8Array[], dst: Uint8Array): SendBatch {
    return layout(this.l, this.family === 4 ? 'tcp4' : 'tcp6', segments, this.sockaddr(dst));
  }

  /**
   * Send segments `start` … `start + count - 1` of a prepared batch with sendmmsg (at most 1024
   * per system call). Returns how many the kernel took: fewer than `count` when its send buffer is
   * full (EAGAIN/ENOBUFS on this non-blocking socket); other errors throw.
   */
  sendBatch(batch: SendBatch, start = 0, count = batch.length - start): number {
    return sendSlice(this.l, this.fd, batch, this.family === 4 ? 'tcp4' : 'tcp6', start, count);
  }

  /** Stop watching and close the fd. Safe to call twice. */
  close(): void {
    if (this.coalesceTimer) clearTimeout(this.coalesceTimer);
    this.coalesceTimer = null;
    if (this.poller) {
      this.poller.stop();
      this.poller.close();
      this.poller = null;
    }
    if (this.fd >= 0) {
      this.l.close(this.fd);
      this.fd = -1;
    }
    this.reader = null;
  }

  /** Let the process exit while the socket is open (for tools that end on their own). */
  unref(): void {
    this.refed = false;
    this.coalesceTimer?.unref();
    this.poller?.unref();
  }
}

/**
 * A send-only AF_PACKET socket on one interface: whole IPv4 packets (header and checksums set by
 * the caller) go to a link-layer address on that device, past the sender's routing, netfilter and
 * neighbour layers and its qdisc (PACKET_QDISC_BYPASS). What a flood generator wants: about a
 * quarter less CPU per packet than a raw IP socket here. It receives nothing (protocol 0).
 */
export class LinkSender {
  readonly ifname: string;
  readonly ifindex: number;
  private fd: number;
  private readonly l: Libc;

  private constructor(l: Libc, fd: number, ifname: string, ifindex: number) {
    this.l = l;
    this.fd = fd;
    this.ifname = ifname;
    this.ifindex = ifindex;
  }

  static open(ifname: string): LinkSender {
    const l = load();
    const ifindex = l.ifNameToIndex(ifname) as number;
    if (!ifindex) throw new UsageError(`no network interface '${ifname}' here`);
    const fd = l.socket(AF_PACKET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0) as number;
    if (fd < 0) {
      const err = l.koffi.errno();
      if (err === EPERM || err === EACCES) throw new PrivilegeError('packet sockets need root or CAP_NET_RAW');
      throw new SystemError(`socket(AF_PACKET, SOCK_DGRAM) failed: ${errnoText(l, err)}`);
    }
    const one = Buffer.alloc(4);
    one.writeInt32LE(1);
    l.setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, one, 4); // best effort: only a shortcut
    return new LinkSender(l, fd, ifname, ifindex);
  }

  /** Lay out IPv4 packets to the link-layer address `mac` (6 bytes) on this interface for sendBatch. */
  prepare(packets: readonly Uint8Array[], mac: Uint8Array): SendBatch {
    if (mac.length !== 6) throw new UsageError(`link sender: a link-layer address has 6 bytes, got ${mac.length}`);
    // struct sockaddr_ll { u16 family; be16 protocol; int ifindex; u16 hatype; u8 pkttype; u8 halen; u8 addr[8]; }
    const a = Buffer.alloc(20);
    a.writeUInt16LE(AF_PACKET, 0);
    a.writeUInt16BE(ETH_P_IP, 2);
    a.writeInt32LE(this.ifindex, 4);
    a.writeUInt8(6, 11);
    a.set(mac, 12);
    return layout(this.l, 'link', packets, a);
  }

  /** As RawTcpSocket.sendBatch: packets `start` … `start + count - 1`; returns how many the kernel took. */
  sendBatch(batch: SendBatch, start = 0, count = batch.length - start): number {
    if (this.fd < 0) throw new SystemError('link sender is closed');
    return sendSlice(this.l, this.fd, batch, 'link', start, count);
  }

  /** Close the fd. Safe to call twice. */
  close(): void {
    if (this.fd >= 0) {
      this.l.close(this.fd);
      this.fd = -1;
    }
  }
}

/**
 * SO_ORIGINAL_DST of an accepted IPv4 socket (the destination before an iptables REDIRECT/DNAT).
 * `fd` is the socket's file descriptor (net.Socket's handle fd).
 */
export function originalDestination(fd: number): { address: string; port: number } {
  const l = load();
  const buf = Buffer.alloc(16);
  const len = new Uint32Array([16]);
  const rc = l.getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, buf, len) as number;
  if (rc < 0) throw new SystemError(`getsockopt(SO_ORIGINAL_DST) failed: ${errnoText(l, l.koffi.errno())}`);
  return { address: `${buf[4]}.${buf[5]}.${buf[6]}.${buf[7]}`, port: buf.readUInt16BE(2) };
}
