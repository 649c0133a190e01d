/**
 * The embedded writer's exclusive lock: a `LOCK` file created with O_EXCL holding the
 * holder's pid, host and start time. A lock left by a dead process on this host is taken
 * over; any other holder gets a `LOCKED` error that names it.
 */
import { constants } from 'node:fs';
import { open, readFile, unlink } from 'node:fs/promises';
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
    for (let attempt = 0; attempt < 3; attempt++) {
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
      try {
        holder = JSON.parse(await readFile(path, 'utf8')) as Partial<LockInfo>;
      } catch {
        // a lock file being written right now, or garbage: treat as held unless it stays so
      }
      const stale =
        holder.host === info.host && typeof holder.pid === 'number' && !alive(holder.pid);
      if (stale) {
        await unlink(path).catch(() => undefined);
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
