/**
 * Answers that are never silently wrong (issue 9): without privileges, tools or good input ctprobe
 * says so in one line and exits 2 — no hang, no stack trace, no "empty" that was really "unknown",
 * no finding resting on data it could not read — and `fix remove` really restores what was there.
 * Non-root cases run as nobody through setpriv.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { CLI, hasTool, isRoot, ROOT, sh, uniqueName } from './netns.js';

const made: string[] = [];
const dirs: string[] = [];
afterAll(() => {
  made.forEach((n) => sh(`ip netns del ${n}`, true));
  dirs.forEach((d) => rmSync(d, { recursive: true, force: true }));
});
function ns(): string {
  const n = uniqueName('ctp-t-trust-');
  sh(`ip netns add ${n}`);
  made.push(n);
  return n;
}
function tmp(): string {
  const d = mkdtempSync(`${tmpdir()}/ctp-trust-`);
  dirs.push(d);
  chmodSync(d, 0o755);
  return d;
}
type Run = { status: number | null; stdout: string; stderr: string };
const ctp = (args: string[], o: { env?: NodeJS.ProcessEnv; timeout?: number; input?: string } = {}): Run =>
  spawnSync('node', [CLI, ...args], { encoding: 'utf8', timeout: o.timeout ?? 20_000, env: o.env ?? process.env, input: o.input });
const nobody = (args: string[]): Run => spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'node', CLI, ...args], { encoding: 'utf8', timeout: 20_000 });

/** One line on stderr, no stack trace. */
function oneLine(r: Run): string {
  expect(r.stderr).not.toMatch(/\n\s+at /);
  const lines = r.stderr.trim().split('\n');
  expect(lines, r.stderr).toHaveLength(1);
  return lines[0]!;
}

const canSetpriv = isRoot && hasTool('setpriv');

describe.skipIf(!canSetpriv)('without privileges', () => {
  it('audit raises no finding it cannot back: one line naming what is missing, exit 2', () => {
    const r = nobody(['audit']);
    expect(r.status).toBe(2);
    expect(r.stdout).not.toMatch(/HIGH|apt-get install conntrack/);
    expect(oneLine(r)).toMatch(/^ctprobe: audit reads the firewall .*run it as root/);
  });

  it('leaks does not call an unreadable conntrack table empty: exit 2', () => {
    const r = nobody(['leaks']);
    expect(r.status).toBe(2);
    expect(r.stdout).not.toMatch(/no half-closed proxy leaks/);
    expect(oneLine(r)).toMatch(/run it as root/);
  });

  it('fix status prints no raw tool output: one line, exit 2', () => {
    const r = nobody(['fix', 'status']);
    expect(r.status).toBe(2);
    expect(r.stdout).toBe('');
    expect(oneLine(r)).toMatch(/^ctprobe: fix .* run it as root/);
  });
});

describe.skipIf(!isRoot)('the server does not hang on a bad listen address', () => {
  it('--bind not-an-ip, an address not on this host, a port in use: one line, exit 2', () => {
    const n = ns();
    sh(`ip -n ${n} link set lo up`);
    const inNs = (args: string[]) => spawnSync('ip', ['netns', 'exec', n, 'node', CLI, ...args], { encoding: 'utf8', timeout: 10_000 });
    const bad = inNs(['server', '--bind', 'not-an-ip', '--port', '9411']);
    expect(bad.status).toBe(2);
    expect(oneLine(bad)).toMatch(/--bind: 'not-an-ip' is not an IP address/);
    const away = inNs(['server', '--bind', '198.51.100.77', '--port', '9411']);
    expect(away.status).toBe(2);
    expect(oneLine(away)).toMatch(/address not on this host/);
    const holder = sh(`ip netns exec ${n} sh -c 'nc -l 127.0.0.1 9412 >/dev/null 2>&1 & echo $!'`).trim();
    try {
      for (let i = 0; i < 50 && !sh(`ip netns exec ${n} ss -ltn`).includes(':9412'); i++) spawnSync('sleep', ['0.05']);
      const busy = inNs(['server', '--bind', '127.0.0.1', '--port', '9412']);
      expect(busy.status).toBe(2);
      expect(oneLine(busy)).toMatch(/address in use/);
    } finally {
      sh(`kill ${holder}`, true);
    }
  });
});

describe.skipIf(!isRoot || !hasTool('unshare'))('a missing tool', () => {
  it('lab without ip: one line naming the Debian package, exit 2, no stack trace', () => {
    // Hide every copy of ip in a private mount namespace: the lab must not spawn a bare name.
    const hide = ['/usr/sbin/ip', '/usr/bin/ip', '/sbin/ip', '/bin/ip'].filter((p) => existsSync(p)).map((p) => `mount --bind /dev/null ${p}`).join(' && ');
    const r = spawnSync('unshare', ['-m', '--propagation', 'private', 'sh', '-c', `${hide} && exec node ${CLI} lab oow-rst`], { encoding: 'utf8', timeout: 30_000 });
    expect(r.status).toBe(2);
    expect(oneLine(r)).toBe("ctprobe: 'ip' not found: install it with 'apt-get install -y iproute2'");
  });
});

describe('bad input files', () => {
  it('leaks --ss-file DIR or a missing file: one line, exit 2 (not an internal error)', () => {
    const d = tmp();
    const r = ctp(['leaks', '--ss-file', d]);
    expect(r.status).toBe(2);
    expect(oneLine(r)).toBe(`ctprobe: ${d}: is a directory, not a file`);
    const m = ctp(['leaks', '--ss-file', `${d}/nope.txt`]);
    expect(m.status).toBe(2);
    expect(oneLine(m)).toBe(`ctprobe: ${d}/nope.txt: no such file`);
  });

  it('explain of an empty file or a missing one: one line, no header, exit 2', () => {
    const d = tmp();
    writeFileSync(`${d}/empty.pcap`, '');
    const e = ctp(['explain', `${d}/empty.pcap`]);
    expect(e.status).toBe(2);
    expect(e.stdout).toBe('');
    expect(oneLine(e)).toMatch(/the file is empty: not a pcap or pcapng capture/);
    const m = ctp(['explain', '/nonexistent.pcap']);
    expect(m.status).toBe(2);
    expect(m.stdout).toBe('');
    oneLine(m);
  });

  it('a malformed flag value is one line, not parseArgs prose', () => {
    const r = ctp(['proxy', '--port', '-1']);
    expect(r.status).toBe(2);
    expect(oneLine(r)).toBe('ctprobe: --port: -1 is out of range (1..65535)');
    const u = ctp(['explain', 'x.pcap', '--nope']);
    expect(u.status).toBe(2);
    expect(oneLine(u)).toMatch(/^ctprobe: Unknown option '--nope' \(see --help\)$/);
  });
});

describe.skipIf(!isRoot || !hasTool('iptables-save'))('audit on odd firewall output', () => {
  it('an nft document that is null or holds null: no crash, exit 2 or a clean read', () => {
    const n = ns();
    const d = tmp();
    for (const [doc, want] of [
      ['null', 2],
      ['{"nftables":[null]}', 0],
    ] as const) {
      writeFileSync(`${d}/nft`, `#!/bin/sh\necho '${doc}'\n`);
      chmodSync(`${d}/nft`, 0o755);
      const r = ctp(['audit', '--netns', n, '-o', 'json'], { env: { ...process.env, PATH: `${d}:${process.env.PATH ?? ''}` } });
      expect(r.status, r.stderr).toBe(want);
      if (want === 2) expect(oneLine(r)).toMatch(/nft -j output has no "nftables" array/);
    }
  });
});

describe.skipIf(!isRoot || !hasTool('nft') || !hasTool('iptables-save'))('fix remove restores what was there', () => {
  const state = (n: string) => sh(`ip netns exec ${n} iptables-save | grep -v '^#' || true`) + '\n--\n' + sh(`ip netns exec ${n} nft list ruleset`);

  it('in a fresh namespace: no filter table is left behind (byte-identical)', () => {
    const n = ns();
    const before = state(n);
    expect(ctp(['fix', 'apply', '--method', 'drop-invalid', '--netns', n]).status).toBe(0);
    expect(state(n)).not.toBe(before);
    expect(ctp(['fix', 'remove', '--method', 'drop-invalid', '--netns', n]).status).toBe(0);
    expect(state(n)).toBe(before);
  });

  it('after a user deleted ctprobe’s nft chain by hand, remove still deletes its table', () => {
    const n = ns();
    const before = state(n);
    expect(ctp(['fix', 'apply', '--method', 'drop-invalid', '--backend', 'nft', '--netns', n]).status).toBe(0);
    sh(`ip netns exec ${n} nft delete chain inet ctprobe input`);
    const r = ctp(['fix', 'remove', '--method', 'drop-invalid', '--netns', n]);
    expect(r.stdout).not.toMatch(/nothing of ctprobe/);
    expect(state(n)).toBe(before);
  });

  it('state files do not outlive their namespace', () => {
    const n = uniqueName('ctp-t-trust-');
    sh(`ip netns add ${n} && ip netns exec ${n} iptables -t nat -A POSTROUTING -j ACCEPT`);
    const dir = tmp();
    const env = { ...process.env, CTPROBE_STATE_DIR: dir };
    expect(ctp(['fix', 'apply', '--method', 'be-liberal', '--netns', n], { env }).status).toBe(0);
    expect(readdirSync(dir).filter((f) => f.startsWith('fix-be-liberal-'))).toHaveLength(1);
    sh(`ip netns del ${n}`);
    expect(ctp(['fix', 'status'], { env }).status).toBe(0);
    // A namespace is known by its inode, which the kernel reuses: a file whose id a new namespace
    // (another test's, created meanwhile) already carries again is rightly kept.
    const liveIds = new Set(sh('stat -L -c %i /proc/[0-9]*/ns/net /run/netns/* 2>/dev/null', true).split('\n').filter(Boolean));
    expect(readdirSync(dir).filter((f) => f.startsWith('fix-be-liberal-') && !liveIds.has(/-(\d+)\.json$/.exec(f)![1]!))).toEqual([]);
  });
});

describe('help and version come from one source', () => {
  it('--version is package.json’s; `help CMD` is `CMD --help`; lab help names the real idle timeout', () => {
    const pkg = JSON.parse(readFileSync(`${ROOT}package.json`, 'utf8')) as { version: string };
    expect(ctp(['--version']).stdout.trim()).toBe(`ctprobe ${pkg.version}`);
    const help = ctp(['help', 'lab']);
    expect(help.status).toBe(0);
    expect(help.stdout).toBe(ctp(['lab', '--help']).stdout);
    expect(help.stdout).toMatch(/idle timeout is 4\.5s/);
    for (const cmd of ['lab', 'explain', 'audit', 'fix', 'leaks', 'invalid-log', 'server', 'client', 'proxy']) {
      const h = ctp([cmd, '--help']).stdout;
      expect(h, cmd).toMatch(/^Usage: ctprobe /);
      expect(h, cmd).toMatch(/70 internal error/);
      expect(h, cmd).toMatch(/130\/143 interrupted/);
    }
    expect(ctp(['explain', '--help']).stdout).toMatch(/--dedupe WHEN/);
  });
});
