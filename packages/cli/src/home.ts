import { constants } from 'node:fs';
import { mkdir, open, readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { replaceFile } from '@tibet/continuityd/durable';
import { usage } from './errors.js';

/** `$TIBET_HOME`, else the platform's per-user data folder + `/tibet`. */
export function tibetHome(env: NodeJS.ProcessEnv = process.env): string {
  const h = env['TIBET_HOME'];
  if (h) return h;
  if (process.platform === 'win32')
    return join(env['APPDATA'] ?? join(homedir(), 'AppData', 'Roaming'), 'tibet');
  if (process.platform === 'darwin')
    return join(homedir(), 'Library', 'Application Support', 'tibet');
  return join(env['XDG_DATA_HOME'] ?? join(homedir(), '.local', 'share'), 'tibet');
}

/**
 * Replace `path` atomically and durably: write a temporary file beside it, fsync it,
 * rename it over the target, fsync the folder. With `exclusive`, refuse an existing target.
 */
export async function writeFileAtomic(
  path: string,
  data: Uint8Array | string,
  o: { mode?: number; exclusive?: boolean } = {},
): Promise<void> {
  const dir = dirname(path);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  if (o.exclusive) {
    try {
      const fh = await open(path, constants.O_RDONLY);
      await fh.close();
      throw usage(`${path} already exists`, 'choose another name or remove it first');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
  }
  await replaceFile(path, data, { mode: o.mode ?? 0o644 });
}

export async function readInput(path: string, what: string): Promise<Uint8Array> {
  try {
    if (path === '-') return await readStdin();
    const b = await readFile(path);
    return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  } catch (e) {
    throw usage(`cannot read ${what} ${path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
}

export async function readStdin(): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  const b = Buffer.concat(chunks);
  const out = new Uint8Array(b.length);
  out.set(b);
  b.fill(0);
  for (const c of chunks) c.fill(0);
  return out;
}
