/** Console output of the bench: one progress line while it runs, tables at the end. */

export class Progress {
  private lastPlain = 0;
  private shown = false;
  constructor(private readonly stream: NodeJS.WriteStream = process.stderr) {}

  /** Rewrites the progress line (TTY), or prints it at most every 5 s (pipes, CI logs). */
  update(text: string): void {
    if (this.stream.isTTY) {
      this.stream.write(`\r\x1b[K${text}`);
      this.shown = true;
    } else if (Date.now() - this.lastPlain >= 5_000) {
      this.stream.write(`${text}\n`);
      this.lastPlain = Date.now();
    }
  }

  /** A line that stays (a phase finished). */
  log(text: string): void {
    this.clear();
    this.stream.write(`${text}\n`);
    this.lastPlain = 0;
  }

  clear(): void {
    if (this.shown && this.stream.isTTY) this.stream.write('\r\x1b[K');
    this.shown = false;
  }
}

export function table(headers: string[], rows: (string | number)[][]): string {
  const cells = [headers, ...rows.map((row) => row.map((cell) => String(cell)))];
  const widths = headers.map((_, column) => Math.max(...cells.map((row) => (row[column] ?? '').length)));
  const line = (row: string[]) => row.map((cell, column) => (column === 0 ? cell.padEnd(widths[column]!) : cell.padStart(widths[column]!))).join('  ');
  return [line(cells[0]!), widths.map((w) => '─'.repeat(w)).join('  '), ...cells.slice(1).map(line)].join('\n');
}

export const fmt = (value: number | undefined | null, digits = 1): string =>
  value === undefined || value === null || Number.isNaN(value) ? '–' : value.toFixed(digits);
