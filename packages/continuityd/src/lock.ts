/**
 * The embedded writer's exclusive lock: a `LOCK` file created with O_EXCL holding the
 * holder's pid, host and start time. A lock left by a dead process on this host is taken
 * over; any other holder gets a `LOCKED` error that names it.
 */
import { constants } from 'node:fs';
import { open, readFile, stat, unlink } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { ContinuityError } from './errors.js';

export interface LockInfo {
  pid: number;
  host: string;
  started_at: string;
  mode: string;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Remove a stale LOCK, but only the one that was judged stale: takers serialise on a
 * short-lived `LOCK.takeover` file (O_EXCL; itself taken over after 10 s), re-check under it
 * that LOCK is still the same file, and only then unlink it. So two processes that find the
 * same dead holder never both end up holding the lock.
 */
async function takeOver(path: string, judged: Stats): Promise<void> {
  const guard = `${path}.takeover`;
  let fh;
  try {
    fh = await open(guard, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    const g = await stat(guard).catch(() => undefined);
    if (g && Date.now() - g.mtimeMs > 10_000) await unlink(guard).catch(() => undefined);
    await new Promise((r) => setTimeout(r, 5 + Math.random() * 10));
    return;
  }
  try {
    const now = await stat(path).catch(() => undefined);
    if (now && now.ino === judged.ino && now.mtimeMs === judged.mtimeMs)
      await unlink(path).catch(() => undefined);
  } finally {
    await fh.close();
    await unlink(guard).catch(() => undefined);
  }
}

export class DirLock {
  private constructor(
    readonly path: string,
    readonly info: LockInfo,
  ) {}

  static async acquire(dir: string, mode: string): Promise<DirLock> {
    const path = join(dir, 'LOCK');
    const info: LockInfo = {
      pid: process.pid,
      host: hostname(),
      started_at: new Date().toISOString(),
      mode,
    };
    for (let attempt = 0; attempt < 8; attempt++) {
      try {
        const fh = await open(
          path,
          constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL,
          0o600,
        );
        try {
          await fh.writeFile(JSON.stringify(info) + '\n');
          await fh.sync();
        } finally {
          await fh.close();
        }
        return new DirLock(path, info);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
      let holder: Partial<LockInfo> = {};
      let readable = false;
      let st: Stats | undefined;
      try {
        st = await stat(path);
        holder = JSON.parse(await readFile(path, 'utf8')) as Partial<LockInfo>;
        readable = true;
      } catch {
        // being written right now, or left empty/garbled by a process killed while writing it
      }
      const dead =
        readable &&
        holder.host === info.host &&
        typeof holder.pid === 'number' &&
        !alive(holder.pid);
      // an unreadable lock is stale only once it is old enough that no writer is still on it
      const abandoned = !readable && st !== undefined && Date.now() - st.mtimeMs > 5_000;
      if (st && (dead || abandoned)) {
        await takeOver(path, st);
        continue;
      }
      throw new ContinuityError(
        'LOCKED',
        `audit log ${dir} is held by pid ${holder.pid ?? '?'} on ${holder.host ?? '?'} (${holder.mode ?? '?'} since ${holder.started_at ?? '?'})`,
      );
    }
    throw new ContinuityError('LOCKED', `could not take the lock of ${dir}`);
  }

  async release(): Promise<void> {
    await unlink(this.path).catch(() => undefined);
  }
}
