/**
 * What a bench must undo when it is interrupted (Ctrl-C, SIGTERM: the before-stop hook or a user
 * stopping `npm run bench`): `finally` blocks do not run when a signal ends the process, so a bench
 * that creates namespaces or processes registers their removal here for the time it owns them.
 */
const undo = new Set<() => void>();
let installed = false;

function onSignal(sig: NodeJS.Signals): void {
  for (const u of undo) {
    try {
      u();
    } catch {
      /* best effort: the rest must still run */
    }
  }
  process.exit(sig === 'SIGINT' ? 130 : 143);
}

/** Run `fn` (synchronous) if the process is interrupted before the returned function is called. */
export function onInterrupt(fn: () => void): () => void {
  if (!installed) {
    installed = true;
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  }
  undo.add(fn);
  return () => undo.delete(fn);
}
