/**
 * Typed errors: one class per kind of failure, each with a fixed code and exit status (as undici
 * does). Every failure a user can cause or meet is one of these: the CLI prints its one-line
 * message and exits with its status, never a stack trace. Anything else is a bug (exit 70).
 * `new Error` is banned outside tests by the lint config.
 */
export type ErrorCode =
  | 'EUSAGE' // bad flags or arguments
  | 'EPRIV' // needs root / capabilities
  | 'ETOOL' // a system tool is missing
  | 'EINPUT' // malformed or unreadable input file or text
  | 'ENETNS' // namespace setup, lookup or entry failed
  | 'ESYS' // a system call or kernel facility failed
  | 'ECMD' // an external command failed
  | 'ELAB' // a lab cell could not be set up (a peer did not start)
  | 'EGUEST' // a lab guest could not be built, booted or did not report
  | 'EBUG'; // an internal invariant broke (a bug in ctprobe)

/** Exit statuses, documented in `ctprobe --help` and the README. */
export const EXIT = {
  ok: 0,
  finding: 1,
  cannotRun: 2,
  resetSeen: 3,
  internal: 70,
  interrupted: 130, // SIGINT (128 + 2)
  terminated: 143, // SIGTERM (128 + 15)
} as const;

export abstract class CtprobeError extends Error {
  abstract readonly code: ErrorCode;
  readonly exitCode: number = EXIT.cannotRun;
}

export class UsageError extends CtprobeError {
  readonly code = 'EUSAGE';
  override name = 'UsageError';
}

export class PrivilegeError extends CtprobeError {
  readonly code = 'EPRIV';
  override name = 'PrivilegeError';
}

/** A system tool is missing: name it and the Debian package that provides it. */
export class MissingToolError extends CtprobeError {
  readonly code = 'ETOOL';
  override name = 'MissingToolError';
  constructor(
    readonly tool: string,
    readonly debianPackage: string,
  ) {
    super(`'${tool}' not found: install it with 'apt-get install -y ${debianPackage}'`);
  }
}

/** Malformed or unreadable input: say where (file, line or byte offset) and what. */
export class InputError extends CtprobeError {
  readonly code = 'EINPUT';
  override name = 'InputError';
  constructor(
    message: string,
    readonly where?: string,
  ) {
    super(where ? `${where}: ${message}` : message);
  }
}

export class NamespaceError extends CtprobeError {
  readonly code = 'ENETNS';
  override name = 'NamespaceError';
}

export class SystemError extends CtprobeError {
  readonly code = 'ESYS';
  override name = 'SystemError';
}

export class CommandError extends CtprobeError {
  readonly code = 'ECMD';
  override name = 'CommandError';
  constructor(
    readonly command: string,
    readonly stderr: string,
    status: number | null,
  ) {
    const first = stderr.trim().split('\n')[0] ?? '';
    super(`'${command}' failed (exit ${status ?? 'signal'})${first ? `: ${first}` : ''}`);
  }
}

/** A lab cell's peer (server, client, proxy, tcpdump) did not start or broke its contract. */
export class LabError extends CtprobeError {
  readonly code = 'ELAB';
  override name = 'LabError';
}

/** A lab guest (`lab --kernel`) could not be built or booted, or ended without a report. */
export class GuestError extends CtprobeError {
  readonly code = 'EGUEST';
  override name = 'GuestError';
  override readonly exitCode: number;
  constructor(message: string, exitCode: number = EXIT.cannotRun) {
    super(message);
    this.exitCode = exitCode;
  }
}

/**
 * Writing the output failed in the output thread (report/offload.ts): raised as the output
 * stream's error, its `errno` the system's name (EPIPE: the reader went away).
 */
export class OutputError extends SystemError {
  override name = 'OutputError';
  constructor(
    message: string,
    readonly errno: string,
  ) {
    super(message);
  }
}

/** An internal invariant broke: a bug, reported as such (exit 70), not as the user's fault. */
export class InternalError extends CtprobeError {
  readonly code = 'EBUG';
  override name = 'InternalError';
  override readonly exitCode: number = EXIT.internal;
}

/** The error's first line, for messages that embed another error. */
export function errorText(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split('\n')[0] ?? '';
}

/** Turn a file-system error on a user-given path into an InputError with the fix. */
export function fileError(path: string, e: unknown): InputError {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  const why: Record<string, string> = {
    ENOENT: 'no such file',
    EISDIR: 'is a directory, not a file',
    EACCES: 'permission denied (run as root, or make it readable)',
    ENOTDIR: 'a part of the path is not a directory',
  };
  return new InputError(code && why[code] ? why[code] : errorText(e), path);
}
