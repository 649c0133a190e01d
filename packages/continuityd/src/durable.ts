/**
 * File primitives for small forward-only stores on a local disk (the keychain's secret
 * folders, the vault's record folders and clock, the CLI's files): durable new files,
 * atomic durable replacement, six-digit numbered files, and a {@link DirLock} that waits.
 *
 * "Durable" means the bytes are fsynced before the call returns, and so is the folder entry
 * that names them (the folder is fsynced after a create, rename or unlink), so a crash or
 * power loss after the call cannot lose the file or leave a half-written one under its name.
 */
import { constants } from 'node:fs';
import { mkdir, open, readFile, readdir, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { ContinuityError } from './errors.js';
import { DirLock } from './lock.js';

/** Fsync a folder, so that entries created, renamed or removed in it survive a crash. */
export async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, constants.O_RDONLY);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export interface WriteNewFileOptions {
  /** Permission bits of the new file (default 0o600). */
  mode?: number;
  /**
   * Fsync the parent folder afterwards (default true). Pass false when writing many files
   * into one folder and call {@link fsyncDir} once at the end.
   */
  syncDir?: boolean;
}

/**
 * Create `path`, which must not exist (O_EXCL: an existing file or symlink fails with
 * `EEXIST` and is left alone), write `data`, fsync it, then fsync its folder.
 */
export async function writeNewFile(
  path: string,
  data: Uint8Array | string,
  o: WriteNewFileOptions = {},
): Promise<void> {
  const fh = await open(
    path,
    constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL,
    o.mode ?? 0o600,
  );
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  if (o.syncDir ?? true) await fsyncDir(dirname(path));
}

/**
 * Replace `path` atomically and durably: write a temporary file beside it
 * (`.<name>.<12 random hex>.tmp`, created with O_EXCL and `mode`, default 0o600), fsync it,
 * rename it over `path`, fsync the folder. Readers see the old file or the new one, never a
 * mixture. A failed write removes the temporary file; a crash may leave one behind (it never
 * replaces anything and may be deleted).
 */
export async function replaceFile(
  path: string,
  data: Uint8Array | string,
  o: { mode?: number } = {},
): Promise<void> {
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  const fh = await open(
    tmp,
    constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL,
    o.mode ?? 0o600,
  );
  try {
    await fh.writeFile(data);
    await fh.sync();
  } catch (e) {
    await fh.close();
    await unlink(tmp).catch(() => undefined);
    throw e;
  }
  await fh.close();
  await rename(tmp, path);
  await fsyncDir(dir);
}

/** The names in `dir`, unsorted; a missing folder has none (other errors are thrown). */
export async function listDir(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
}

/** The UTF-8 text of `path`, or undefined when it does not exist (other errors are thrown). */
export async function readTextIfExists(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

/**
 * One family of numbered files in a folder: `<prefix><six digits><suffix>`, for example
 * `rev-000001.tza` or `rec-000042.json`.
 */
export class NumberedFiles {
  readonly #pattern: RegExp;

  constructor(
    readonly prefix: string,
    readonly suffix: string,
  ) {
    const esc = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    this.#pattern = new RegExp(`^${esc(prefix)}(\\d{6})${esc(suffix)}$`);
  }

  /** The file name of number `n`. */
  name(n: number): string {
    return `${this.prefix}${String(n).padStart(6, '0')}${this.suffix}`;
  }

  /** The numbers of the files of this family in `dir`, ascending ([] if `dir` is missing). */
  async list(dir: string): Promise<number[]> {
    return (await listDir(dir))
      .map((n) => this.#pattern.exec(n))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => Number(m[1]))
      .sort((a, b) => a - b);
  }
}

/**
 * Take the {@link DirLock} of `dir` (created 0o700 if missing), waiting while another
 * process holds it: retries with jittered exponential backoff (2 ms doubling to 100 ms)
 * until `timeoutMs` has passed, then throws the last `LOCKED` {@link ContinuityError}.
 * Other errors are thrown at once. Returns the lock; call `release()` when done.
 */
export async function waitForDirLock(
  dir: string,
  mode: string,
  timeoutMs: number,
): Promise<DirLock> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const deadline = Date.now() + timeoutMs;
  let wait = 2;
  for (;;) {
    try {
      return await DirLock.acquire(dir, mode);
    } catch (e) {
      if (!(ContinuityError.is(e) && e.code === 'LOCKED') || Date.now() > deadline) throw e;
      await new Promise((r) => setTimeout(r, wait + Math.random() * wait));
      wait = Math.min(wait * 2, 100);
    }
  }
}
