/**
 * Where ctprobe keeps what it must remember to undo (lab runs, fixes, log settings), and the
 * per-namespace state files' lifecycle: a file names its network namespace by inode, and is
 * dropped once no process and no /run/netns entry holds that namespace any more.
 */
import { readdirSync, readlinkSync, rmSync, statSync } from 'node:fs';

export const STATE_DIR = process.env.CTPROBE_STATE_DIR ?? '/run/ctprobe';

/** Path of a state file for one network namespace (by inode). */
export function netnsStateFile(kind: string, netnsId: string): string {
  return `${STATE_DIR}/${kind}-${netnsId}.json`;
}

/** Inodes of every network namespace alive now (held by a process or bound under /run/netns). */
export function liveNetnsIds(): Set<string> {
  const ids = new Set<string>();
  for (const pid of safeList('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const m = /\[(\d+)\]/.exec(readlinkSync(`/proc/${pid}/ns/net`));
      if (m) ids.add(m[1]!);
    } catch {
      /* gone or not ours to read */
    }
  }
  for (const n of safeList('/run/netns')) {
    try {
      ids.add(String(statSync(`/run/netns/${n}`).ino));
    } catch {
      /* raced */
    }
  }
  return ids;
}

/** Remove per-namespace state files whose namespace no longer exists. Returns what was removed. */
export function pruneStateFiles(): string[] {
  const files = safeList(STATE_DIR).filter((f) => /^[a-z-]+-\d+\.json$/.test(f));
  if (!files.length) return [];
  const live = liveNetnsIds();
  const gone = files.filter((f) => !live.has(/-(\d+)\.json$/.exec(f)![1]!));
  for (const f of gone) rmSync(`${STATE_DIR}/${f}`, { force: true });
  return gone;
}

function safeList(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}
