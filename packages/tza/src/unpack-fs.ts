/**
 * Writing untrusted entry names under a target folder without ever leaving it. Shared by
 * the `tza/1` and TBZ unpackers.
 */
import { constants } from 'node:fs';
import { lstat, mkdir, open, realpath } from 'node:fs/promises';
import { isAbsolute, join, relative, sep } from 'node:path';
import { TzaError } from './errors.js';
import { unsafeNameReason } from './tar.js';

export interface UnpackFile {
  name: string;
  data: Uint8Array;
}

function inside(root: string, p: string): boolean {
  const rel = relative(root, p);
  return rel === '' || !(rel === '..' || rel.startsWith(`..${sep}`) || isAbsolute(rel));
}

/**
 * Create `targetDir` (it may exist and be empty or not) and write each file beneath it:
 * names are re-checked, parent folders are created one segment at a time and must be real
 * folders inside the target (a symlink anywhere on the way is refused), files are created
 * with O_EXCL|O_NOFOLLOW (an existing file is never overwritten) and fsynced.
 * Returns the paths written.
 */
export async function writeFilesUnder(
  targetDir: string,
  files: readonly UnpackFile[],
  maxNameBytes = 255,
): Promise<string[]> {
  for (const f of files) {
    const reason = unsafeNameReason(f.name, maxNameBytes);
    if (reason)
      throw new TzaError(
        'TAR_PATH_UNSAFE',
        `refusing to unpack ${JSON.stringify(f.name.slice(0, 120))}: ${reason}`,
      );
  }
  await mkdir(targetDir, { recursive: true });
  const root = await realpath(targetDir);
  const written: string[] = [];
  for (const f of files) {
    const segs = f.name.split('/');
    let dir = root;
    for (const seg of segs.slice(0, -1)) {
      const next = join(dir, seg);
      try {
        await mkdir(next);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') {
          throw new TzaError('UNPACK_FAILED', `cannot create folder for ${f.name}`, { cause: e });
        }
      }
      const st = await lstat(next);
      if (!st.isDirectory() || st.isSymbolicLink()) {
        throw new TzaError(
          'TAR_PATH_UNSAFE',
          `refusing to unpack ${f.name}: ${seg} is not a plain folder`,
        );
      }
      dir = next;
    }
    if (!inside(root, await realpath(dir))) {
      throw new TzaError('TAR_PATH_UNSAFE', `refusing to unpack ${f.name}: outside the target`);
    }
    const path = join(dir, segs[segs.length - 1]!);
    let fh;
    try {
      fh = await open(
        path,
        constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
        0o600,
      );
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EEXIST' || code === 'ELOOP') {
        throw new TzaError('UNPACK_TARGET_EXISTS', `refusing to overwrite ${f.name}`, { cause: e });
      }
      throw new TzaError('UNPACK_FAILED', `cannot create ${f.name}`, { cause: e });
    }
    try {
      await fh.writeFile(f.data);
      await fh.sync();
    } catch (e) {
      throw new TzaError('UNPACK_FAILED', `cannot write ${f.name}`, { cause: e });
    } finally {
      await fh.close();
    }
    written.push(path);
  }
  const dh = await open(root, constants.O_RDONLY);
  try {
    await dh.sync();
  } finally {
    await dh.close();
  }
  return written;
}
