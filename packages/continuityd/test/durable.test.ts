import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  ContinuityError,
  DirLock,
  NumberedFiles,
  fsyncDir,
  listDir,
  readTextIfExists,
  replaceFile,
  waitForDirLock,
  writeNewFile,
} from '@tibet/continuityd';
import * as durable from '@tibet/continuityd/durable';

const dirs: string[] = [];
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'tibet-durable-'));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const mode = (p: string): number => statSync(p).mode & 0o777;
const codeOf = async (p: Promise<unknown>): Promise<unknown> =>
  p.then(
    () => 'resolved',
    (e: unknown) => (e as { code?: unknown }).code,
  );

describe('durable file primitives', () => {
  it('the ./durable subpath exports the same functions as the root', () => {
    expect(durable.replaceFile).toBe(replaceFile);
    expect(durable.writeNewFile).toBe(writeNewFile);
    expect(durable.waitForDirLock).toBe(waitForDirLock);
    expect(durable.NumberedFiles).toBe(NumberedFiles);
  });

  it('writeNewFile creates a file 0600 by default, or with the given mode', async () => {
    const d = tmp();
    await writeNewFile(join(d, 'a'), new Uint8Array([1, 2, 3]));
    expect([...readFileSync(join(d, 'a'))]).toEqual([1, 2, 3]);
    expect(mode(join(d, 'a'))).toBe(0o600);
    await writeNewFile(join(d, 'b'), 'text\n', { mode: 0o644, syncDir: false });
    expect(readFileSync(join(d, 'b'), 'utf8')).toBe('text\n');
    expect(mode(join(d, 'b'))).toBe(0o644);
    await fsyncDir(d);
  });

  it('writeNewFile never overwrites a file or follows a symlink', async () => {
    const d = tmp();
    writeFileSync(join(d, 'a'), 'old');
    expect(await codeOf(writeNewFile(join(d, 'a'), 'new'))).toBe('EEXIST');
    expect(readFileSync(join(d, 'a'), 'utf8')).toBe('old');
    symlinkSync(join(d, 'target'), join(d, 'link'));
    expect(await codeOf(writeNewFile(join(d, 'link'), 'new'))).toBe('EEXIST');
    expect(existsSync(join(d, 'target'))).toBe(false);
  });

  it('replaceFile creates or replaces a file and leaves no temporary file', async () => {
    const d = tmp();
    const p = join(d, 'HEAD');
    await replaceFile(p, 'one\n');
    expect(readFileSync(p, 'utf8')).toBe('one\n');
    expect(mode(p)).toBe(0o600);
    await replaceFile(p, new TextEncoder().encode('two\n'), { mode: 0o644 });
    expect(readFileSync(p, 'utf8')).toBe('two\n');
    expect(mode(p)).toBe(0o644);
    expect(readdirSync(d)).toEqual(['HEAD']);
  });

  it('concurrent replaceFile calls on one target each land whole (unique temporary names)', async () => {
    const d = tmp();
    const p = join(d, 'state.json');
    const bodies = Array.from({ length: 20 }, (_, i) => JSON.stringify({ i, pad: 'x'.repeat(i) }));
    await Promise.all(bodies.map((b) => replaceFile(p, b)));
    expect(bodies).toContain(readFileSync(p, 'utf8'));
    expect(readdirSync(d)).toEqual(['state.json']);
  });

  it('replaceFile into a missing folder fails and creates nothing', async () => {
    const d = tmp();
    expect(await codeOf(replaceFile(join(d, 'no', 'HEAD'), 'x'))).toBe('ENOENT');
    expect(readdirSync(d)).toEqual([]);
  });

  it('listDir and readTextIfExists treat only a missing path as empty', async () => {
    const d = tmp();
    writeFileSync(join(d, 'f'), 'hello');
    expect(await listDir(join(d, 'missing'))).toEqual([]);
    expect(await listDir(d)).toEqual(['f']);
    expect(await codeOf(listDir(join(d, 'f')))).toBe('ENOTDIR');
    expect(await readTextIfExists(join(d, 'missing'))).toBeUndefined();
    expect(await readTextIfExists(join(d, 'f'))).toBe('hello');
    expect(await codeOf(readTextIfExists(d))).toBe('EISDIR');
  });

  it('NumberedFiles names six-digit files and lists exactly its own family, ascending', async () => {
    const rev = new NumberedFiles('rev-', '.tza');
    expect(rev.name(1)).toBe('rev-000001.tza');
    expect(rev.name(123456)).toBe('rev-123456.tza');
    const d = tmp();
    expect(await rev.list(join(d, 'missing'))).toEqual([]);
    for (const n of [
      'rev-000010.tza',
      'rev-000002.tza',
      'rev-000001.tza',
      'rev-1.tza',
      'rev-000003.tza.tmp',
      'xrev-000004.tza',
      'rev-000005xtza', // the dot is literal
      'material-000006.tza',
      'HEAD',
    ])
      writeFileSync(join(d, n), '');
    expect(await rev.list(d)).toEqual([1, 2, 10]);
    expect(await new NumberedFiles('material-', '.tza').list(d)).toEqual([6]);
  });
});

describe('waitForDirLock', () => {
  it('creates the folder 0700 and takes its LOCK', async () => {
    const d = join(tmp(), 'a', 'b');
    const l = await waitForDirLock(d, 'test', 0);
    expect(mode(d)).toBe(0o700);
    expect(JSON.parse(readFileSync(join(d, 'LOCK'), 'utf8'))).toMatchObject({
      pid: process.pid,
      mode: 'test',
    });
    await l.release();
    expect(existsSync(join(d, 'LOCK'))).toBe(false);
  });

  it('waits for a holder that releases, and gives up with LOCKED after the timeout', async () => {
    const d = tmp();
    const held = await DirLock.acquire(d, 'holder');
    const err = await waitForDirLock(d, 'late', 30).catch((e: unknown) => e);
    expect(ContinuityError.is(err) && err.code).toBe('LOCKED');
    expect((err as Error).message).toMatch(/held by pid \d+ .*\(holder since/);

    const waiting = waitForDirLock(d, 'patient', 10_000);
    setTimeout(() => void held.release(), 20);
    const l = await waiting;
    expect(l.info.mode).toBe('patient');
    await l.release();
  });

  it('throws other errors at once', async () => {
    const d = tmp();
    writeFileSync(join(d, 'file'), '');
    const t = Date.now();
    expect(await codeOf(waitForDirLock(join(d, 'file', 'sub'), 'x', 10_000))).toBe('ENOTDIR');
    expect(Date.now() - t).toBeLessThan(5_000);
    mkdirSync(join(d, 'ok'));
    await (await waitForDirLock(join(d, 'ok'), 'x', 0)).release();
  });
});
