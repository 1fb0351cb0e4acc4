/**
 * Raw IPPROTO_TCP sockets on Node's event loop. The only module that touches FFI (koffi).
 *
 * - non-blocking fd, watched with koffi.node.poll; each wake-up drains until EAGAIN;
 * - SO_RCVBUFFORCE of a few MB so bursts are not dropped;
 * - a classic BPF filter so only segments to the watched port wake us;
 * - sendto() of a TCP segment whose checksum the caller computed (the kernel adds the IP header).
 *
 * IPv4 receive buffers start at the IP header; IPv6 raw sockets deliver the TCP segment only, so
 * the source address comes from recvfrom().
 */
import { createRequire } from 'node:module';
import { PrivilegeError, SystemError } from '../errors.js';

const AF_INET = 2;
const AF_INET6 = 10;
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
const EPERM = 1;
const EACCES = 13;

type KoffiFn = (...args: unknown[]) => unknown;
interface Libc {
  koffi: typeof import('koffi');
  socket: KoffiFn;
  setsockopt: KoffiFn;
  getsockopt: KoffiFn;
  sendto: KoffiFn;
  recvfrom: KoffiFn;
  close: KoffiFn;
  strerror: KoffiFn;
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
    recvfrom: lib.func('intptr_t recvfrom(int, _Out_ void *, size_t, int, _Out_ void *, _Inout_ uint32_t *)') as KoffiFn,
    close: lib.func('int close(int)') as KoffiFn,
    strerror: lib.func('const char *strerror(int)') as KoffiFn,
  };
  return libc;
}

function errnoText(l: Libc, err: number): string {
  return String(l.strerror(err));
}

/** Classic BPF: accept TCP segments whose destination port is `port`. */
function portFilter(port: number, family: 4 | 6): Buffer {
  // struct sock_filter { u16 code; u8 jt; u8 jf; u32 k; }
  const prog: Array<[number, number, number, number]> =
    family === 4
      ? [
          [0xb1, 0, 0, 0], // ldxb 4*([0]&0xf)   — IP header length
          [0x48, 0, 0, 2], // ldh [x+2]          — TCP destination port
          [0x15, 0, 1, port], // jeq #port
          [0x06, 0, 0, 0x40000], // ret #262144 (whole packet)
          [0x06, 0, 0, 0], // ret #0
        ]
      : [
          [0x28, 0, 0, 2], // ldh [2] — IPv6 raw sockets start at the TCP header
          [0x15, 0, 1, port],
          [0x06, 0, 0, 0x40000],
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
}

/** A raw IPPROTO_TCP socket whose reads are driven by Node's event loop. */
export class RawTcpSocket {
  readonly family: 4 | 6;
  private fd: number;
  private readonly l: Libc;
  private poller: ReturnType<Libc['koffi']['node']['poll']> | null = null;
  private drain: ((status: number) => void) | null = null;
  private readonly rbuf = Buffer.alloc(65536);
  private readonly fromBuf = Buffer.alloc(28);
  private readonly fromLen = new Uint32Array(1);
  private readonly addrBuf: Buffer;
  /** Segments received and handed to the callback. */
  received = 0;

  private constructor(l: Libc, fd: number, family: 4 | 6) {
    this.l = l;
    this.fd = fd;
    this.family = family;
    this.addrBuf = Buffer.alloc(family === 4 ? 16 : 28);
  }

  static open(opts: RawTcpSocketOptions = {}): RawTcpSocket {
    const l = load();
    const family = opts.family ?? 4;
    const fd = l.socket(family === 4 ? AF_INET : AF_INET6, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP) as number;
    if (fd < 0) {
      const err = l.koffi.errno();
      if (err === EPERM || err === EACCES) throw new PrivilegeError('raw sockets need root or CAP_NET_RAW (run as root, or setcap cap_net_raw,cap_net_admin+ep on node)');
      throw new SystemError(`socket(AF_INET${family === 6 ? '6' : ''}, SOCK_RAW, IPPROTO_TCP) failed: ${errnoText(l, err)}`);
    }
    const s = new RawTcpSocket(l, fd, family);
    try {
      s.setRcvbuf(opts.rcvbuf ?? 8 * 1024 * 1024);
      if (opts.port !== undefined) s.attachFilter(portFilter(opts.port, family));
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
    const pkt: RawPacket = { data: this.rbuf, family: this.family, from: null };
    const drain = (status: number): void => {
      if (status < 0 || this.fd < 0) return;
      for (;;) {
        this.fromLen[0] = this.fromBuf.length;
        const n = Number(this.l.recvfrom(this.fd, this.rbuf, this.rbuf.length, 0, this.fromBuf, this.fromLen));
        if (n < 0) {
          const err = this.l.koffi.errno();
          if (err === EINTR) continue;
          if (err !== EAGAIN) throw new SystemError(`recvfrom on raw socket failed: ${errnoText(this.l, err)}`);
          return;
        }
        this.received++;
        pkt.data = this.rbuf.subarray(0, n);
        pkt.from = this.family === 6 ? this.fromBuf.subarray(8, 24) : null;
        cb(pkt);
        if (this.fd < 0) return; // closed by the callback
      }
    };
    this.drain = drain;
    const handle = this.l.koffi.node.poll(this.fd, { readable: true, writable: false, disconnect: false }, ((status: number) => drain(status)) as unknown as () => void);
    this.poller = handle;
  }

  /**
   * Hand every segment the socket already holds to the callback now, without waiting for the
   * event loop's poll phase: a timer that judges "nothing came" calls it first, so a segment that
   * arrived in time is never judged missing because this process was not scheduled until after
   * the timer was due (libuv runs due timers before it polls).
   */
  readPending(): void {
    this.drain?.(0);
  }

  /** Send a TCP segment (checksum already set) to `dst` (4 or 16 bytes). Returns bytes sent. */
  send(segment: Uint8Array, dst: Uint8Array): number {
    const a = this.addrBuf;
    a.fill(0);
    if (this.family === 4) {
      a.writeUInt16LE(AF_INET, 0);
      a.set(dst, 4);
    } else {
      a.writeUInt16LE(AF_INET6, 0);
      a.set(dst, 8);
    }
    const n = Number(this.l.sendto(this.fd, segment, segment.length, 0, a, a.length));
    if (n < 0) throw new SystemError(`sendto on raw socket failed: ${errnoText(this.l, this.l.koffi.errno())}`);
    return n;
  }

  /** Stop watching and close the fd. Safe to call twice. */
  close(): void {
    this.drain = null;
    if (this.poller) {
      this.poller.stop();
      this.poller.close();
      this.poller = null;
    }
    if (this.fd >= 0) {
      this.l.close(this.fd);
      this.fd = -1;
    }
  }

  /** Let the process exit while the socket is open (for tools that end on their own). */
  unref(): void {
    this.poller?.unref();
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
