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
import { mkdir, readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import {
  ContinuityError,
  NumberedFiles,
  fsyncDir,
  listDir,
  readTextIfExists,
  replaceFile,
  waitForDirLock,
  writeNewFile,
} from '@tibet/continuityd';
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

async function lockDir(dir: string, what: string, timeoutMs: number): Promise<() => Promise<void>> {
  try {
    const l = await waitForDirLock(dir, 'vault', timeoutMs);
    return () => l.release();
  } catch (e) {
    if (ContinuityError.is(e) && e.code === 'LOCKED')
      throw new VaultError('STORE_LOCKED', `${what} is busy: ${e.message}`, { cause: e });
    throw e;
  }
}

const REC = new NumberedFiles('rec-', '.json');

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
    return (await listDir(this.root)).filter((n) => VAULT_ID.test(n)).sort();
  }

  async head(id: string): Promise<VaultHead | undefined> {
    const text = await readTextIfExists(join(this.dir(id), 'HEAD'));
    if (text === undefined) return undefined;
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
    return REC.list(this.dir(id));
  }

  async readRecord(id: string, seq: number): Promise<Uint8Array> {
    try {
      const b = await readFile(join(this.dir(id), REC.name(seq)));
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
    await writeNewFile(join(d, REC.name(seq)), bytes);
  }

  async discardRecord(id: string, seq: number): Promise<void> {
    const d = this.dir(id);
    await unlink(join(d, REC.name(seq))).catch(() => undefined);
    await fsyncDir(d).catch(() => undefined);
  }

  /** Make `head` current, atomically and durably. */
  async commit(id: string, head: VaultHead): Promise<void> {
    await replaceFile(join(this.dir(id), 'HEAD'), JSON.stringify(head) + '\n');
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
    const text = await readTextIfExists(join(this.clockDir, 'state.json'));
    if (text === undefined) return undefined;
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
    await replaceFile(join(this.clockDir, 'state.json'), JSON.stringify(c) + '\n');
  }
}
