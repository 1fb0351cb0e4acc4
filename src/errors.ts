/**
 * Typed errors. Every failure a user can cause or meet (bad input, missing tool, missing
 * privilege) is a CtprobeError: the CLI prints its one-line message and exits with its code,
 * never a stack trace.
 */
export type ErrorCode =
  | 'EUSAGE' // bad flags or arguments
  | 'EPRIV' // needs root / capabilities
  | 'ETOOL' // a system tool is missing
  | 'EINPUT' // malformed input file or text
  | 'ENETNS' // namespace setup or entry failed
  | 'ESYS' // a system call failed
  | 'ECMD'; // an external command failed

export const EXIT_USAGE = 2;

export class CtprobeError extends Error {
  readonly code: ErrorCode;
  readonly exitCode: number;
  constructor(code: ErrorCode, message: string, exitCode = 2) {
    super(message);
    this.name = 'CtprobeError';
    this.code = code;
    this.exitCode = exitCode;
  }
}

export class UsageError extends CtprobeError {
  constructor(message: string) {
    super('EUSAGE', message, 2);
    this.name = 'UsageError';
  }
}

export class PrivilegeError extends CtprobeError {
  constructor(message: string) {
    super('EPRIV', message, 2);
    this.name = 'PrivilegeError';
  }
}

/** A system tool is missing: name it and the Debian package that provides it. */
export class MissingToolError extends CtprobeError {
  readonly tool: string;
  readonly debianPackage: string;
  constructor(tool: string, debianPackage: string) {
    super('ETOOL', `'${tool}' not found: install it with 'apt-get install -y ${debianPackage}'`, 2);
    this.name = 'MissingToolError';
    this.tool = tool;
    this.debianPackage = debianPackage;
  }
}

/** Malformed input: say where (line or byte offset) and what. */
export class InputError extends CtprobeError {
  readonly where: string | undefined;
  constructor(message: string, where?: string) {
    super('EINPUT', where ? `${where}: ${message}` : message, 2);
    this.name = 'InputError';
    this.where = where;
  }
}

export class CommandError extends CtprobeError {
  readonly command: string;
  readonly stderr: string;
  constructor(command: string, stderr: string, status: number | null) {
    const first = stderr.trim().split('\n')[0] ?? '';
    super('ECMD', `'${command}' failed (exit ${status ?? 'signal'})${first ? `: ${first}` : ''}`, 2);
    this.name = 'CommandError';
    this.command = command;
    this.stderr = stderr;
  }
}
