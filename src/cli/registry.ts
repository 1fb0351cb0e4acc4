import type { Command } from './command.js';
import { serverCommand } from './commands/server.js';
import { clientCommand } from './commands/client.js';

/** Every subcommand, in the order `ctprobe --help` lists them. One line per command. */
export const commands: Command[] = [
  serverCommand,
  clientCommand,
];
