/** Where ctprobe keeps what it must remember to undo (lab runs, fixes, log settings). */
export const STATE_DIR = process.env.CTPROBE_STATE_DIR ?? '/run/ctprobe';
