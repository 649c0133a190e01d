/**
 * Where secrets live: one folder per secret, forward-only revisions, one material bundle
 * per version. Behind the {@link SecretStore} interface so a shared database can replace
 * the files later.
 *
 *     keychain/secrets/<id>/rev-000001.tza …   revision bundles (state, signed by the keychain)
 *     keychain/secrets/<id>/HEAD               {"revision", "sha256", "action_id"} (atomic replace)
 *     keychain/secrets/<id>/material-000001.tza …  sealed material (a new file per rotation or reseal)
 *     keychain/secrets/<id>/LOCK               held during an operation (O_EXCL, pid)
 */
import { constants } from 'node:fs';
import { mkdir, open, readFile, stat, unlink } from 'node:fs/promises';
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
import { KeychainError } from './errors.js';
import { SECRET_ID } from './vocabulary.js';

export interface Head {
  revision: number;
  /** Hex SHA-256 of the revision bundle. */
  sha256: string;
  action_id: string;
}

export interface SecretStore {
  list(): Promise<string[]>;
  head(id: string): Promise<Head | undefined>;
  /** Revision numbers present (committed or not), ascending. */
  revisions(id: string): Promise<number[]>;
  readRevision(id: string, revision: number): Promise<Uint8Array>;
  /** Create a revision that does not exist yet, durably (never overwrites). */
  writeRevision(id: string, revision: number, bytes: Uint8Array): Promise<void>;
  discardRevision(id: string, revision: number): Promise<void>;
  /** Make `head` the current revision, atomically and durably. */
  commit(id: string, head: Head): Promise<void>;
  writeMaterial(id: string, version: number, bytes: Uint8Array): Promise<void>;
  /** Material bundle numbers present, ascending. */
  materials(id: string): Promise<number[]>;
  readMaterial(id: string, version: number): Promise<Uint8Array>;
  /** Overwrite with zeros, sync, unlink. */
  shredMaterial(id: string, version: number): Promise<void>;
  /** Exclusive per-secret lock across processes; waits up to `timeoutMs`. */
  lock(id: string, timeoutMs?: number): Promise<() => Promise<void>>;
}

function checkId(id: string): void {
  if (!SECRET_ID.test(id))
    throw new KeychainError('INVALID_SECRET_ID', `secret id must match ${SECRET_ID.source}`);
}

const REV = new NumberedFiles('rev-', '.tza');
const MAT = new NumberedFiles('material-', '.tza');

export class FileStore implements SecretStore {
  readonly root: string;
  constructor(home: string) {
    this.root = join(home, 'keychain', 'secrets');
  }

  dir(id: string): string {
    checkId(id);
    return join(this.root, id);
  }

  async list(): Promise<string[]> {
    return (await listDir(this.root)).filter((n) => SECRET_ID.test(n)).sort();
  }

  async head(id: string): Promise<Head | undefined> {
    const text = await readTextIfExists(join(this.dir(id), 'HEAD'));
    if (text === undefined) return undefined;
    let h: Head;
    try {
      h = JSON.parse(text) as Head;
    } catch (cause) {
      throw new KeychainError('STORE_CORRUPT', `HEAD of ${id} is not JSON`, { cause });
    }
    if (
      typeof h !== 'object' ||
      h === null ||
      !Number.isSafeInteger(h.revision) ||
      h.revision < 1 ||
      typeof h.sha256 !== 'string' ||
      !/^[0-9a-f]{64}$/.test(h.sha256) ||
      typeof h.action_id !== 'string'
    ) {
      throw new KeychainError('STORE_CORRUPT', `HEAD of ${id} is malformed`);
    }
    return h;
  }

  async revisions(id: string): Promise<number[]> {
    return REV.list(this.dir(id));
  }

  async readRevision(id: string, revision: number): Promise<Uint8Array> {
    return new Uint8Array(await readFile(join(this.dir(id), REV.name(revision))));
  }

  async writeRevision(id: string, revision: number, bytes: Uint8Array): Promise<void> {
    const d = this.dir(id);
    await mkdir(d, { recursive: true, mode: 0o700 });
    await writeNewFile(join(d, REV.name(revision)), bytes);
  }

  async discardRevision(id: string, revision: number): Promise<void> {
    const d = this.dir(id);
    await unlink(join(d, REV.name(revision))).catch(() => undefined);
    await fsyncDir(d).catch(() => undefined);
  }

  async commit(id: string, head: Head): Promise<void> {
    await replaceFile(join(this.dir(id), 'HEAD'), JSON.stringify(head) + '\n');
  }

  async writeMaterial(id: string, version: number, bytes: Uint8Array): Promise<void> {
    const d = this.dir(id);
    await mkdir(d, { recursive: true, mode: 0o700 });
    const path = join(d, MAT.name(version));
    // a leftover from an operation that was never committed is replaced
    await unlink(path).catch(() => undefined);
    await writeNewFile(path, bytes);
  }

  async materials(id: string): Promise<number[]> {
    return MAT.list(this.dir(id));
  }

  async readMaterial(id: string, version: number): Promise<Uint8Array> {
    try {
      return new Uint8Array(await readFile(join(this.dir(id), MAT.name(version))));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT')
        throw new KeychainError('SECRET_DESTROYED', `no material for ${id} v${version}`);
      throw e;
    }
  }

  async shredMaterial(id: string, version: number): Promise<void> {
    const d = this.dir(id);
    const path = join(d, MAT.name(version));
    let size: number;
    try {
      size = (await stat(path)).size;
    } catch {
      return;
    }
    const fh = await open(path, constants.O_WRONLY);
    try {
      await fh.write(new Uint8Array(size), 0, size, 0);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await unlink(path);
    await fsyncDir(d);
  }

  async lock(id: string, timeoutMs = 15_000): Promise<() => Promise<void>> {
    try {
      const l = await waitForDirLock(this.dir(id), 'keychain', timeoutMs);
      return () => l.release();
    } catch (e) {
      if (ContinuityError.is(e) && e.code === 'LOCKED')
        throw new KeychainError('STORE_LOCKED', `secret ${id} is busy: ${e.message}`, {
          cause: e,
        });
      throw e;
    }
  }
}
