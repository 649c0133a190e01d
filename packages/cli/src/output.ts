/** Output helpers: machine output on stdout, human notes on stderr; colour only on a TTY. */
export interface OutputOptions {
  json?: boolean;
}

export function useColor(stream: NodeJS.WriteStream = process.stdout): boolean {
  return Boolean(stream.isTTY) && !('NO_COLOR' in process.env) && process.env['TERM'] !== 'dumb';
}

const wrap = (code: string) => (s: string, stream?: NodeJS.WriteStream) =>
  useColor(stream) ? `\u001b[${code}m${s}\u001b[0m` : s;
export const green = wrap('32');
export const red = wrap('31');
export const yellow = wrap('33');
export const dim = wrap('2');
export const bold = wrap('1');

export function printJson(v: unknown): void {
  process.stdout.write(JSON.stringify(v, jsonReplacer, 2) + '\n');
}

/** Bytes as hex in JSON output; Maps as objects. */
export function jsonReplacer(_k: string, v: unknown): unknown {
  if (v instanceof Uint8Array) return { hex: Buffer.from(v).toString('hex') };
  if (v instanceof Map) return Object.fromEntries(v);
  return v;
}

export function note(s: string): void {
  process.stderr.write(s + '\n');
}

export function out(s: string): void {
  process.stdout.write(s + '\n');
}
