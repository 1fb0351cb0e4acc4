import type { Command } from './command.js';
import { serverCommand } from './commands/server.js';
import { clientCommand } from './commands/client.js';
import { labCommand } from './commands/lab.js';
import { proxyCommand } from './commands/proxy.js';

/** Every subcommand, in the order `ctprobe --help` lists them. One line per command. */
export const commands: Command[] = [
  labCommand,
  serverCommand,
  clientCommand,
  proxyCommand,
];
