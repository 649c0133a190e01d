/** Encrypted key files: scrypt + XChaCha20-Poly1305, AAD = RFC 8785 of the file without ciphertext. */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fc, test } from '@fast-check/vitest';
import {
  DEFAULT_SCRYPT,
  KEYFILE_FORMAT,
  canonicalBytes,
  concatBytes,
  decryptIdentity,
  encryptIdentity,
  fromBase64Url,
  parseKeyFile,
  seededRandom,
  toBase64,
  toBase64Url,
  toHex,
  utf8,
  type CoreErrorCode,
  type KeyFile,
} from '@tibet/core';
import { TEST_SCRYPT, testIdentity } from '@tibet/core/testing';
import {
  BACKENDS,
  VECTORS_DIR,
  clone,
  expectCoreError,
  expectCoreErrorAsync,
  flipBit,
  noble,
  node,
} from './helpers.js';

const alice = testIdentity('jis:acme:alice', 'human');
const bob = testIdentity('jis:acme:bob', 'machine');
const PASS = 'correct horse battery staple';

const encrypt = (o: { seed?: string; provider?: typeof node; pass?: string | Uint8Array } = {}) =>
  encryptIdentity(alice, o.pass ?? PASS, {
    random: seededRandom(o.seed ?? 'keyfile'),
    scrypt: TEST_SCRYPT,
    ...(o.provider ? { provider: o.provider } : {}),
  });

const flipB64 = (s: string, bit: number) => toBase64Url(flipBit(fromBase64Url(s), bit));

describe('encryptIdentity / decryptIdentity', () => {
  it('round-trips on both backends, and across them', async () => {
    for (const enc of BACKENDS) {
      const file = await encrypt({ provider: enc });
      for (const dec of BACKENDS) {
        const back = await decryptIdentity(file, PASS, dec);
        expect(back.public).toEqual(alice.public);
        expect(toHex(back.exportSecrets().signingSeed)).toBe(
          toHex(alice.exportSecrets().signingSeed),
        );
        expect(toHex(back.exportSecrets().encryptionSecret)).toBe(
          toHex(alice.exportSecrets().encryptionSecret),
        );
        expect(back.provider).toBe(dec);
      }
    }
  });

  it('is deterministic under seededRandom and identical on both backends', async () => {
    const a = await encrypt({ provider: noble });
    const b = await encrypt({ provider: node });
    expect(b).toEqual(a);
    expect(JSON.stringify(b)).toBe(JSON.stringify(a));
    expect(JSON.stringify(await encrypt({ seed: 'other' }))).not.toBe(JSON.stringify(a));
  });

  it('writes the documented format', async () => {
    const f = await encrypt();
    expect(Object.keys(f)).toEqual(['format', 'public', 'kdf', 'aead', 'ciphertext']);
    expect(f.format).toBe(KEYFILE_FORMAT);
    expect(f.kdf).toEqual({ name: 'scrypt', N: 1024, r: 8, p: 1, salt: f.kdf.salt });
    expect(fromBase64Url(f.kdf.salt)).toHaveLength(16);
    expect(f.aead.name).toBe('xchacha20-poly1305');
    expect(fromBase64Url(f.aead.nonce)).toHaveLength(24);
    expect(fromBase64Url(f.ciphertext)).toHaveLength(64 + 16);
    expect(parseKeyFile(f)).toBe(f);
  });

  it('matches the format by hand: scrypt KEK, AAD = JCS without ciphertext, plaintext = seed ‖ x25519 secret', async () => {
    const f = await encrypt();
    const kek = await node.scrypt(utf8(PASS), fromBase64Url(f.kdf.salt), {
      ...TEST_SCRYPT,
      dkLen: 32,
    });
    const { ciphertext, ...head } = f;
    const pt = node.xchacha20poly1305Open(
      kek,
      fromBase64Url(f.aead.nonce),
      fromBase64Url(ciphertext),
      canonicalBytes(head),
    );
    const s = alice.exportSecrets();
    expect(toHex(pt)).toBe(toHex(concatBytes(s.signingSeed, s.encryptionSecret)));
  });

  it('works with the default scrypt parameters (N = 2^15)', async () => {
    expect(DEFAULT_SCRYPT).toEqual({ N: 2 ** 15, r: 8, p: 1 });
    const f = await encryptIdentity(alice, PASS);
    expect(f.kdf).toMatchObject({ N: 2 ** 15, r: 8, p: 1 });
    expect((await decryptIdentity(f, PASS)).public).toEqual(alice.public);
  });

  it('survives JSON text', async () => {
    const f = JSON.parse(JSON.stringify(await encrypt())) as unknown;
    expect((await decryptIdentity(f, PASS)).id).toBe(alice.id);
  });

  it('normalises string passphrases to NFC; byte passphrases are used as given', async () => {
    const f = await encrypt({ pass: 'caf\u00e9' });
    expect((await decryptIdentity(f, 'cafe\u0301')).id).toBe(alice.id);
    const g = await encrypt({ pass: Uint8Array.of(0, 1, 2, 255) });
    expect((await decryptIdentity(g, Uint8Array.of(0, 1, 2, 255))).id).toBe(alice.id);
    await expectCoreErrorAsync(decryptIdentity(g, Uint8Array.of(0, 1, 2, 254)), 'PASSPHRASE_WRONG');
  });
});

describe('passphrase errors', () => {
  it('wrong passphrase → PASSPHRASE_WRONG on both backends', async () => {
    const f = await encrypt();
    for (const p of BACKENDS) {
      await expectCoreErrorAsync(decryptIdentity(f, `${PASS}!`, p), 'PASSPHRASE_WRONG');
      await expectCoreErrorAsync(decryptIdentity(f, PASS.toUpperCase(), p), 'PASSPHRASE_WRONG');
    }
  });

  it('empty passphrase → PASSPHRASE_REQUIRED, for encryption and decryption', async () => {
    await expectCoreErrorAsync(
      encryptIdentity(alice, '', { scrypt: TEST_SCRYPT }),
      'PASSPHRASE_REQUIRED',
    );
    await expectCoreErrorAsync(
      encryptIdentity(alice, new Uint8Array(0), { scrypt: TEST_SCRYPT }),
      'PASSPHRASE_REQUIRED',
    );
    const f = await encrypt();
    await expectCoreErrorAsync(decryptIdentity(f, ''), 'PASSPHRASE_REQUIRED');
    await expectCoreErrorAsync(decryptIdentity(f, new Uint8Array(0)), 'PASSPHRASE_REQUIRED');
  });
});

describe('a modified key file fails with a code', () => {
  const mutations: [string, (f: KeyFile) => unknown, CoreErrorCode][] = [
    ['format', (f) => ({ ...f, format: 'tibet-identity-key/2' }), 'KEYFILE_UNSUPPORTED'],
    [
      'public: signing key of someone else',
      (f) => ({ ...f, public: { ...f.public, signing_key: bob.public.signing_key } }),
      'KEYFILE_INVALID',
    ],
    [
      'public: encryption key bit flipped',
      (f) => ({
        ...f,
        public: { ...f.public, encryption_key: flipB64(f.public.encryption_key, 5) },
      }),
      'KEYFILE_INVALID',
    ],
    [
      'public: replaced by another valid identity',
      (f) => ({ ...f, public: bob.public }),
      'PASSPHRASE_WRONG',
    ],
    ['public: missing', (f) => ({ ...f, public: undefined }), 'KEYFILE_INVALID'],
    [
      'kdf: N changed (in range)',
      (f) => ({ ...f, kdf: { ...f.kdf, N: 2048 } }),
      'PASSPHRASE_WRONG',
    ],
    ['kdf: r changed (in range)', (f) => ({ ...f, kdf: { ...f.kdf, r: 4 } }), 'PASSPHRASE_WRONG'],
    ['kdf: p changed (in range)', (f) => ({ ...f, kdf: { ...f.kdf, p: 2 } }), 'PASSPHRASE_WRONG'],
    [
      'kdf: salt bit flipped',
      (f) => ({ ...f, kdf: { ...f.kdf, salt: flipB64(f.kdf.salt, 3) } }),
      'PASSPHRASE_WRONG',
    ],
    [
      'kdf: salt too short',
      (f) => ({ ...f, kdf: { ...f.kdf, salt: toBase64Url(new Uint8Array(15)) } }),
      'KEYFILE_INVALID',
    ],
    [
      'kdf: salt padded',
      (f) => ({ ...f, kdf: { ...f.kdf, salt: `${f.kdf.salt}==` } }),
      'KEYFILE_INVALID',
    ],
    ['kdf: extra member', (f) => ({ ...f, kdf: { ...f.kdf, dkLen: 32 } }), 'PASSPHRASE_WRONG'],
    [
      'kdf: argon2id',
      (f) => ({ ...f, kdf: { ...f.kdf, name: 'argon2id' } }),
      'KEYFILE_UNSUPPORTED',
    ],
    ['kdf: missing', (f) => ({ ...f, kdf: null }), 'KEYFILE_UNSUPPORTED'],
    [
      'aead: nonce bit flipped',
      (f) => ({ ...f, aead: { ...f.aead, nonce: flipB64(f.aead.nonce, 100) } }),
      'PASSPHRASE_WRONG',
    ],
    [
      'aead: nonce 12 bytes',
      (f) => ({ ...f, aead: { ...f.aead, nonce: toBase64Url(new Uint8Array(12)) } }),
      'KEYFILE_INVALID',
    ],
    [
      'aead: other algorithm',
      (f) => ({ ...f, aead: { ...f.aead, name: 'aes-256-gcm' } }),
      'KEYFILE_UNSUPPORTED',
    ],
    [
      'ciphertext: truncated',
      (f) => ({ ...f, ciphertext: toBase64Url(fromBase64Url(f.ciphertext).subarray(1)) }),
      'KEYFILE_INVALID',
    ],
    [
      'ciphertext: extended',
      (f) => ({
        ...f,
        ciphertext: toBase64Url(concatBytes(fromBase64Url(f.ciphertext), new Uint8Array(1))),
      }),
      'KEYFILE_INVALID',
    ],
    ['ciphertext: not a string', (f) => ({ ...f, ciphertext: 42 }), 'KEYFILE_INVALID'],
    ['extra top-level member', (f) => ({ ...f, hint: 'the passphrase is…' }), 'KEYFILE_INVALID'],
    ['not an object', (f) => [f], 'KEYFILE_INVALID'],
    ['null', () => null, 'KEYFILE_INVALID'],
  ];
  for (const [name, mutate, code] of mutations) {
    it(`${name} → ${code}`, async () => {
      const f = await encrypt();
      await expectCoreErrorAsync(decryptIdentity(mutate(clone(f)), PASS), code);
    });
  }

  test.prop([fc.nat({ max: 80 * 8 - 1 })], { numRuns: 30 })(
    'any ciphertext bit flipped → PASSPHRASE_WRONG',
    async (bit) => {
      const f = await encrypt();
      await expectCoreErrorAsync(
        decryptIdentity({ ...f, ciphertext: flipB64(f.ciphertext, bit) }, PASS),
        'PASSPHRASE_WRONG',
      );
    },
  );

  it('private keys that do not match the public identity → KEYFILE_INVALID', async () => {
    // A file whose AAD is honest for bob's public identity but whose plaintext holds alice's
    // keys: only someone who knows the passphrase could make it, but it must still be refused.
    const f = await encrypt();
    const head = { format: f.format, public: bob.public, kdf: f.kdf, aead: f.aead };
    const kek = await node.scrypt(utf8(PASS), fromBase64Url(f.kdf.salt), {
      ...TEST_SCRYPT,
      dkLen: 32,
    });
    const s = alice.exportSecrets();
    const ct = node.xchacha20poly1305Seal(
      kek,
      fromBase64Url(f.aead.nonce),
      concatBytes(s.signingSeed, s.encryptionSecret),
      canonicalBytes(head),
    );
    await expectCoreErrorAsync(
      decryptIdentity({ ...head, ciphertext: toBase64Url(ct) }, PASS),
      'KEYFILE_INVALID',
    );
  });
});

describe('scrypt parameter range (N 2^10..2^20 power of two, r 1..32, p 1..16, ≤ 256 MiB, N·r·p ≤ 2^24)', () => {
  const bad = [
    { N: 2 ** 9, r: 8, p: 1 },
    { N: 2 ** 21, r: 8, p: 1 },
    { N: 1000, r: 8, p: 1 },
    { N: 2 ** 10 + 0.5, r: 8, p: 1 },
    { N: 2 ** 10, r: 0, p: 1 },
    { N: 2 ** 10, r: 33, p: 1 },
    { N: 2 ** 10, r: 8, p: 0 },
    { N: 2 ** 10, r: 8, p: 17 },
    { N: '1024', r: 8, p: 1 },
    { N: 2 ** 10, r: 8 },
  ];

  it('out-of-range parameters in a file → KEYFILE_UNSUPPORTED (before any scrypt work)', async () => {
    const f = await encrypt();
    for (const params of bad) {
      const mutated = { ...f, kdf: { name: 'scrypt', ...params, salt: f.kdf.salt } };
      expectCoreError(() => parseKeyFile(mutated), 'KEYFILE_UNSUPPORTED');
      await expectCoreErrorAsync(decryptIdentity(mutated, PASS), 'KEYFILE_UNSUPPORTED');
    }
  });

  it('out-of-range parameters for encryption → KEYFILE_UNSUPPORTED', async () => {
    for (const params of bad) {
      await expectCoreErrorAsync(
        encryptIdentity(alice, PASS, { scrypt: params as never }),
        'KEYFILE_UNSUPPORTED',
      );
    }
  });

  it('costs beyond 256 MiB or 64× the default work are refused (hostile key files)', () => {
    for (const kdf of [
      { N: 2 ** 20, r: 32, p: 16 },
      { N: 2 ** 20, r: 4, p: 1 },
      { N: 2 ** 20, r: 2, p: 16 },
    ]) {
      const file = {
        format: KEYFILE_FORMAT,
        public: alice.public,
        kdf: { name: 'scrypt', ...kdf, salt: toBase64Url(new Uint8Array(16)) },
        aead: { name: 'xchacha20-poly1305', nonce: toBase64Url(new Uint8Array(24)) },
        ciphertext: toBase64Url(new Uint8Array(80)),
      };
      expect(() => parseKeyFile(file)).toThrow(
        expect.objectContaining({ code: 'KEYFILE_UNSUPPORTED' }),
      );
    }
  });

  it('the edges of the range are accepted', () => {
    for (const kdf of [
      { N: 2 ** 10, r: 1, p: 1 },
      { N: 2 ** 20, r: 2, p: 8 }, // 256 MiB of memory, N·r·p = 2^24: the largest accepted
      { N: 2 ** 16, r: 32, p: 8 },
    ]) {
      const file = {
        format: KEYFILE_FORMAT,
        public: alice.public,
        kdf: { name: 'scrypt', ...kdf, salt: toBase64Url(new Uint8Array(16)) },
        aead: { name: 'xchacha20-poly1305', nonce: toBase64Url(new Uint8Array(24)) },
        ciphertext: toBase64Url(new Uint8Array(80)),
      };
      expect(parseKeyFile(file)).toBe(file);
    }
  });
});

describe('the serialized key file does not contain the secrets', () => {
  it('in hex, base64 or base64url, for any identity', async () => {
    for (let i = 0; i < 8; i++) {
      const who = testIdentity('jis:acme:leak', 'human', { seed: `leak ${i}` });
      const text = JSON.stringify(
        await encryptIdentity(who, PASS, { scrypt: TEST_SCRYPT, random: seededRandom(`f${i}`) }),
      );
      const { signingSeed, encryptionSecret } = who.exportSecrets();
      for (const secret of [
        signingSeed,
        encryptionSecret,
        concatBytes(signingSeed, encryptionSecret),
      ]) {
        for (const enc of [
          toHex(secret),
          toHex(secret).toUpperCase(),
          toBase64(secret),
          toBase64Url(secret),
        ]) {
          // also without base64 padding and trailing partial characters
          const probe = enc.replace(/=+$/, '').slice(0, 40);
          expect(text.includes(probe), `${probe} in key file`).toBe(false);
        }
        // and no 8-byte window of the secret in hex
        for (let o = 0; o + 8 <= secret.length; o += 4) {
          expect(text.toLowerCase().includes(toHex(secret.subarray(o, o + 8)))).toBe(false);
        }
      }
    }
  });
});

describe('golden key file (test/vectors/keyfile-golden.json)', () => {
  const NAME = 'keyfile-golden.json';
  const make = async (provider?: typeof node) => {
    const who = testIdentity('jis:acme:alice', 'human', {
      seed: 'tibet-core golden v1: jis:acme:alice',
      ...(provider ? { provider } : {}),
    });
    const f = await encryptIdentity(who, PASS, {
      random: seededRandom('tibet-core golden v1: key file'),
      scrypt: TEST_SCRYPT,
    });
    return `${JSON.stringify(f, null, 2)}\n`;
  };

  it('is reproduced byte for byte on both backends and opens to the golden signer', async () => {
    const text = await make();
    if (process.env['TIBET_UPDATE_GOLDEN'] === '1') writeFileSync(join(VECTORS_DIR, NAME), text);
    expect(await make(noble)).toBe(text);
    const stored = readFileSync(join(VECTORS_DIR, NAME), 'utf8');
    expect(stored).toBe(text);
    const ctx = JSON.parse(
      readFileSync(join(VECTORS_DIR, 'token-golden-context.json'), 'utf8'),
    ) as {
      signer: { ed25519_seed_hex: string };
    };
    for (const p of BACKENDS) {
      const id = await decryptIdentity(JSON.parse(stored), PASS, p);
      expect(toHex(id.exportSecrets().signingSeed)).toBe(ctx.signer.ed25519_seed_hex);
      await expectCoreErrorAsync(
        decryptIdentity(JSON.parse(stored), 'wrong', p),
        'PASSPHRASE_WRONG',
      );
    }
  });
});
