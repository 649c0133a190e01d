/**
 * Where vaults live: one folder per vault with forward-only records, and one clock file
 * for the whole home.
 *
 *     vault/vaults/<id>/rec-000001.json …   signed records (RFC 8785 JSON), never rewritten
 *     vault/vaults/<id>/HEAD                {"seq", "sha256", "action_id"} (atomic replace)
 *     vault/vaults/<id>/LOCK                held during an operation (O_EXCL, pid)
 *     vault/clock/state.json                the highest time observed (atomic replace)
 *     vault/clock/LOCK                      held while reading and advancing it
 *
 * Writes are durable: a new record is created with O_EXCL and fsynced, then its folder;
 * HEAD and the clock file are replaced through a temporary file (fsync, rename, fsync the
 * folder).
 */
import { constants } from 'node:fs';
import { mkdir, open, readFile, readdir, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { ContinuityError, DirLock } from '@tibet/continuityd';
import { VaultError } from './errors.js';

/** A vault id: 3–64 of a-z 0-9 _ . - starting with a letter (generated: `vlt_` + 16 hex). */
export const VAULT_ID = /^[a-z][a-z0-9_.-]{2,63}$/;

export interface VaultHead {
  seq: number;
  /** Hex SHA-256 of the record's bytes. */
  sha256: string;
  action_id: string;
}

export interface ClockState {
  format: 'tibet-vault-clock/1';
  /** The highest time any check, heartbeat or creation in this home has read (RFC 3339). */
  high_water: string;
  /** The high-water mark a backwards jump below it was already logged for, else null. */
  warned_at_high_water: string | null;
}

async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, constants.O_RDONLY);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

async function replaceFile(dir: string, name: string, data: string): Promise<void> {
  const tmp = join(dir, `.${name}.${randomBytes(6).toString('hex')}.tmp`);
  const fh = await open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } catch (e) {
    await fh.close();
    await unlink(tmp).catch(() => undefined);
    throw e;
  }
  await fh.close();
  await rename(tmp, join(dir, name));
  await fsyncDir(dir);
}

async function lockDir(dir: string, what: string, timeoutMs: number): Promise<() => Promise<void>> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const deadline = Date.now() + timeoutMs;
  let wait = 2;
  for (;;) {
    try {
      const l = await DirLock.acquire(dir, 'vault');
      return () => l.release();
    } catch (e) {
      if (!(ContinuityError.is(e) && e.code === 'LOCKED')) throw e;
      if (Date.now() > deadline)
        throw new VaultError('STORE_LOCKED', `${what} is busy: ${e.message}`, { cause: e });
      await new Promise((r) => setTimeout(r, wait + Math.random() * wait));
      wait = Math.min(wait * 2, 100);
    }
  }
}

const rec = (n: number): string => `rec-${String(n).padStart(6, '0')}.json`;

export class VaultStore {
  readonly root: string;
  readonly clockDir: string;

  constructor(home: string) {
    this.root = join(home, 'vault', 'vaults');
    this.clockDir = join(home, 'vault', 'clock');
  }

  dir(id: string): string {
    if (!VAULT_ID.test(id))
      throw new VaultError('INVALID_VAULT_ID', `vault id must match ${VAULT_ID.source}`);
    return join(this.root, id);
  }

  async list(): Promise<string[]> {
    try {
      return (await readdir(this.root)).filter((n) => VAULT_ID.test(n)).sort();
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
  }

  async head(id: string): Promise<VaultHead | undefined> {
    let text: string;
    try {
      text = await readFile(join(this.dir(id), 'HEAD'), 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
    let h: VaultHead;
    try {
      h = JSON.parse(text) as VaultHead;
    } catch (cause) {
      throw new VaultError('STORE_CORRUPT', `HEAD of vault ${id} is not JSON`, { cause });
    }
    if (
      typeof h !== 'object' ||
      h === null ||
      !Number.isSafeInteger(h.seq) ||
      h.seq < 1 ||
      typeof h.sha256 !== 'string' ||
      !/^[0-9a-f]{64}$/.test(h.sha256) ||
      typeof h.action_id !== 'string'
    )
      throw new VaultError('STORE_CORRUPT', `HEAD of vault ${id} is malformed`);
    return h;
  }

  /** Record numbers present (committed or not), ascending. */
  async records(id: string): Promise<number[]> {
    let names: string[] = [];
    try {
      names = await readdir(this.dir(id));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    return names
      .map((n) => /^rec-(\d{6})\.json$/.exec(n))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => Number(m[1]))
      .sort((a, b) => a - b);
  }

  async readRecord(id: string, seq: number): Promise<Uint8Array> {
    try {
      const b = await readFile(join(this.dir(id), rec(seq)));
      return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT')
        throw new VaultError('STORE_CORRUPT', `record ${seq} of vault ${id} is missing`);
      throw e;
    }
  }

  /** Create a record that does not exist yet, durably (never overwrites). */
  async writeRecord(id: string, seq: number, bytes: Uint8Array): Promise<void> {
    const d = this.dir(id);
    await mkdir(d, { recursive: true, mode: 0o700 });
    const fh = await open(
      join(d, rec(seq)),
      constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL,
      0o600,
    );
    try {
      await fh.writeFile(bytes);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fsyncDir(d);
  }

  async discardRecord(id: string, seq: number): Promise<void> {
    const d = this.dir(id);
    await unlink(join(d, rec(seq))).catch(() => undefined);
    await fsyncDir(d).catch(() => undefined);
  }

  /** Make `head` current, atomically and durably. */
  async commit(id: string, head: VaultHead): Promise<void> {
    await replaceFile(this.dir(id), 'HEAD', JSON.stringify(head) + '\n');
  }

  /** Exclusive per-vault lock across processes; waits up to `timeoutMs`. */
  async lock(id: string, timeoutMs = 15_000): Promise<() => Promise<void>> {
    return lockDir(this.dir(id), `vault ${id}`, timeoutMs);
  }

  // ------------------------------------------------------------------ the clock file

  async lockClock(timeoutMs = 15_000): Promise<() => Promise<void>> {
    return lockDir(this.clockDir, 'the vault clock', timeoutMs);
  }

  async readClock(): Promise<ClockState | undefined> {
    let text: string;
    try {
      text = await readFile(join(this.clockDir, 'state.json'), 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
    let c: ClockState;
    try {
      c = JSON.parse(text) as ClockState;
    } catch (cause) {
      throw new VaultError('STORE_CORRUPT', 'the vault clock file is not JSON', { cause });
    }
    if (
      typeof c !== 'object' ||
      c === null ||
      c.format !== 'tibet-vault-clock/1' ||
      typeof c.high_water !== 'string' ||
      Number.isNaN(Date.parse(c.high_water)) ||
      !(c.warned_at_high_water === null || typeof c.warned_at_high_water === 'string')
    )
      throw new VaultError('STORE_CORRUPT', 'the vault clock file is malformed');
    return c;
  }

  async writeClock(c: ClockState): Promise<void> {
    await mkdir(this.clockDir, { recursive: true, mode: 0o700 });
    await replaceFile(this.clockDir, 'state.json', JSON.stringify(c) + '\n');
  }
}
