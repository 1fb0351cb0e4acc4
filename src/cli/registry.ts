import type { Command } from './command.js';
import { serverCommand } from './commands/server.js';
import { clientCommand } from './commands/client.js';
import { labCommand } from './commands/lab.js';
import { proxyCommand } from './commands/proxy.js';
import { explainCommand } from './commands/explain.js';
import { auditCommand } from './commands/audit.js';
import { fixCommand } from './commands/fix.js';
import { leaksCommand } from './commands/leaks.js';
import { invalidLogCommand } from './commands/invalid-log.js';

/** Every subcommand, in the order `ctprobe --help` lists them. One line per command. */
export const commands: Command[] = [
  labCommand,
  explainCommand,
  auditCommand,
  fixCommand,
  leaksCommand,
  invalidLogCommand,
  serverCommand,
  clientCommand,
  proxyCommand,
];
