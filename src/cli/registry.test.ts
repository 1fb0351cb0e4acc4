import { describe, expect, it } from 'vitest';
import { commands, loadCommand } from './registry.js';

describe('the lazy command registry', () => {
  it('loads, for each entry, the command of that name with its help', async () => {
    for (const entry of commands) {
      const cmd = await entry.load();
      expect(cmd.name).toBe(entry.name);
      expect(cmd.help()).toMatch(/^Usage: ctprobe /);
      expect(entry.summary.length).toBeGreaterThan(10);
    }
    expect(new Set(commands.map((c) => c.name)).size).toBe(commands.length);
    expect(await loadCommand('nope')).toBeNull();
  });
});
