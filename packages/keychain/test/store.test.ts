import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FileStore, KeychainError } from '@tibet/keychain';

const dirs: string[] = [];
function store(): { s: FileStore; dir: string } {
  const home = mkdtempSync(join(tmpdir(), 'tibet-kc-store-'));
  dirs.push(home);
  const s = new FileStore(home);
  const dir = join(s.root, 'db.root');
  mkdirSync(dir, { recursive: true });
  return { s, dir };
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const refusal = async (p: Promise<unknown>): Promise<KeychainError> => {
  const e = await p.then(
    () => undefined,
    (x: unknown) => x,
  );
  if (!KeychainError.is(e)) throw new Error(`expected a KeychainError, got ${String(e)}`);
  return e;
};

const SHA = 'ab'.repeat(32);

describe('FileStore', () => {
  it('commit writes HEAD atomically and head() reads it back', async () => {
    const { s, dir } = store();
    expect(await s.head('db.root')).toBeUndefined();
    const head = { revision: 2, sha256: SHA, action_id: 'act_0123456789abcdef' };
    await s.commit('db.root', head);
    expect(readFileSync(join(dir, 'HEAD'), 'utf8')).toBe(JSON.stringify(head) + '\n');
    expect(await s.head('db.root')).toEqual(head);
    expect(readdirSync(dir)).toEqual(['HEAD']);
  });

  it.each([
    ['not JSON', '{', /is not JSON/],
    ['null', 'null', /is malformed/],
    ['an array', '[]', /is malformed/],
    ['revision 0', JSON.stringify({ revision: 0, sha256: SHA, action_id: 'a' }), /malformed/],
    ['a short digest', JSON.stringify({ revision: 1, sha256: 'ab', action_id: 'a' }), /malformed/],
    [
      'a digest in an array',
      JSON.stringify({ revision: 1, sha256: [SHA], action_id: 'a' }),
      /malformed/,
    ],
    ['no action id', JSON.stringify({ revision: 1, sha256: SHA }), /malformed/],
  ])('a HEAD that is %s fails closed (STORE_CORRUPT)', async (_, text, message) => {
    const { s, dir } = store();
    writeFileSync(join(dir, 'HEAD'), text);
    const e = await refusal(s.head('db.root'));
    expect(e.code).toBe('STORE_CORRUPT');
    expect(e.message).toMatch(message);
  });

  it('revisions and materials list their own numbered files; ids are checked', async () => {
    const { s, dir } = store();
    await s.writeRevision('db.root', 2, new Uint8Array([2]));
    await s.writeRevision('db.root', 1, new Uint8Array([1]));
    await s.writeMaterial('db.root', 1, new Uint8Array([9]));
    writeFileSync(join(dir, 'rev-3.tza'), '');
    expect(await s.revisions('db.root')).toEqual([1, 2]);
    expect(await s.materials('db.root')).toEqual([1]);
    expect(await s.revisions('db.missing')).toEqual([]);
    const exists = await s
      .writeRevision('db.root', 1, new Uint8Array([0]))
      .catch((e: unknown) => e);
    expect((exists as NodeJS.ErrnoException).code).toBe('EEXIST');
    expect([...(await s.readRevision('db.root', 1))]).toEqual([1]);
    expect((await refusal(s.revisions('../x'))).code).toBe('INVALID_SECRET_ID');
  });

  it('a held secret is STORE_LOCKED after the timeout, free again once released', async () => {
    const { s } = store();
    const release = await s.lock('db.root', 0);
    const e = await refusal(s.lock('db.root', 20));
    expect(e.code).toBe('STORE_LOCKED');
    expect(e.message).toMatch(/^secret db\.root is busy: /);
    await release();
    await (
      await s.lock('db.root', 0)
    )();
  });
});
