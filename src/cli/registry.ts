import type { Command } from './command.js';
import { auditCommand } from './commands/audit.js';
import { clientCommand } from './commands/client.js';
import { collectCommand } from './commands/collect.js';
import { explainCommand } from './commands/explain.js';
import { fixCommand } from './commands/fix.js';
import { invalidLogCommand } from './commands/invalid-log.js';
import { labCommand } from './commands/lab.js';
import { leaksCommand } from './commands/leaks.js';
import { proxyCommand } from './commands/proxy.js';
import { serverCommand } from './commands/server.js';
import { watchCommand } from './commands/watch.js';

/** Every subcommand, in the order `ctprobe --help` lists them: a new command is one file and one line here. */
export const commands: Command[] = [labCommand, explainCommand, auditCommand, fixCommand, leaksCommand, invalidLogCommand, watchCommand, collectCommand, serverCommand, clientCommand, proxyCommand];
