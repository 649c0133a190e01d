/** Identities: jis: actor ids, actor classes, public identities and their self-signature, the registry. */
import { describe, expect, it } from 'vitest';
import { fc, test } from '@fast-check/vitest';
import {
  ACTOR_CLASSES,
  Identity,
  IdentityRegistry,
  assertActorClass,
  canonicalBytes,
  createIdentity,
  fixedClock,
  fromBase64Url,
  isActorClass,
  isActorId,
  keyIdOf,
  mintToken,
  parseActorId,
  parsePublicIdentity,
  seededRandom,
  toBase64Url,
  toHex,
  verifyLine,
  type CoreErrorCode,
} from '@tibet/core';
import { testIdentity } from '@tibet/core/testing';
import { BACKENDS, clone, expectCoreError, flipBit, noble, node } from './helpers.js';

const part = fc
  .tuple(
    fc.constantFrom(...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789'.split('')),
    fc.string({ unit: fc.constantFrom(...'abcXYZ019._-'.split('')), maxLength: 63 }),
  )
  .map(([a, b]) => a + b);

describe('actor ids (jis:<org>:<name>)', () => {
  it('accepts well-formed ids', () => {
    expect(parseActorId('jis:acme:alice')).toEqual({ org: 'acme', name: 'alice' });
    expect(parseActorId('jis:ACME-1:alice.bob_2')).toEqual({ org: 'ACME-1', name: 'alice.bob_2' });
    expect(parseActorId(`jis:${'o'.repeat(64)}:${'n'.repeat(64)}`).org).toHaveLength(64);
    expect(isActorId('jis:a:b')).toBe(true);
  });

  it('rejects malformed ids with INVALID_ACTOR_ID', () => {
    for (const id of [
      '',
      'jis:',
      'jis:acme',
      'jis:acme:',
      'jis::alice',
      'JIS:acme:alice',
      'did:acme:alice',
      'jis:acme:alice:extra',
      'jis:-acme:alice',
      'jis:acme:.alice',
      'jis:acme:_alice',
      'jis:acme:al ice',
      'jis:acme:alice\n',
      ' jis:acme:alice',
      'jis:acmé:alice',
      'jis:acme:alice/bob',
      `jis:${'o'.repeat(65)}:alice`,
      `jis:acme:${'n'.repeat(65)}`,
    ]) {
      expectCoreError(() => parseActorId(id), 'INVALID_ACTOR_ID');
      expect(isActorId(id)).toBe(false);
    }
    for (const v of [null, undefined, 42, {}, ['jis:acme:alice']]) {
      expectCoreError(() => parseActorId(v as string), 'INVALID_ACTOR_ID');
      expect(isActorId(v)).toBe(false);
    }
  });

  test.prop([part, part])(
    'every id built from valid parts parses back to its parts',
    (org, name) => {
      expect(parseActorId(`jis:${org}:${name}`)).toEqual({ org, name });
    },
  );

  test.prop([fc.string({ maxLength: 40 })])('isActorId agrees with parseActorId', (s) => {
    let parsed = true;
    try {
      parseActorId(s);
    } catch {
      parsed = false;
    }
    expect(isActorId(s)).toBe(parsed);
  });
});

describe('actor classes', () => {
  it('are the six classes of the family', () => {
    expect([...ACTOR_CLASSES]).toEqual([
      'human',
      'machine',
      'external',
      'mcp-server',
      'gateway',
      'system',
    ]);
    for (const c of ACTOR_CLASSES) {
      expect(isActorClass(c)).toBe(true);
      expect(() => assertActorClass(c)).not.toThrow();
    }
    for (const c of ['robot', 'Human', '', null, 1]) {
      expect(isActorClass(c)).toBe(false);
      expectCoreError(() => assertActorClass(c), 'INVALID_ACTOR_CLASS');
    }
  });
});

describe('createIdentity and the public identity', () => {
  const make = (provider = node) =>
    createIdentity({
      id: 'jis:acme:alice',
      actorClass: 'human',
      random: seededRandom('alice'),
      clock: fixedClock('2026-01-01T00:00:00.000Z'),
      provider,
    });

  it('is deterministic and identical on both backends', () => {
    const a = make(noble);
    const b = make(node);
    expect(b.public).toEqual(a.public);
    expect(make().public).toEqual(a.public);
    expect(a.public.created_at).toBe('2026-01-01T00:00:00.000Z');
    expect(a.id).toBe('jis:acme:alice');
    expect(a.actorClass).toBe('human');
    expect(a.keyId).toBe(keyIdOf(a.signingPublicKey));
    expect(a.keyId).toBe(toHex(node.sha256(a.signingPublicKey).subarray(0, 8)));
    expect(toBase64Url(a.signingPublicKey)).toBe(a.public.signing_key);
    expect(toBase64Url(a.encryptionPublicKey)).toBe(a.public.encryption_key);
    expect(Object.keys(a.public)).toEqual([
      'format',
      'id',
      'actor_class',
      'created_at',
      'signing_key',
      'encryption_key',
      'self_signature',
    ]);
  });

  it('uses 32 random bytes for the Ed25519 seed, then 32 for the X25519 secret', () => {
    const r = seededRandom('alice');
    const seed = r(32);
    const xsk = r(32);
    const a = make();
    const s = a.exportSecrets();
    expect(toHex(s.signingSeed)).toBe(toHex(seed));
    expect(toHex(s.encryptionSecret)).toBe(toHex(xsk));
    expect(toHex(a.signingPublicKey)).toBe(toHex(noble.ed25519(seed).publicKey));
    expect(toHex(a.encryptionPublicKey)).toBe(toHex(noble.x25519(xsk).publicKey));
  });

  it('self-signs the RFC 8785 form of the public identity without self_signature', () => {
    const a = make();
    const { self_signature, ...body } = a.public;
    for (const p of BACKENDS) {
      expect(
        p.ed25519Verify(a.signingPublicKey, canonicalBytes(body), fromBase64Url(self_signature)),
      ).toBe(true);
      const parsed = parsePublicIdentity(a.public, p);
      expect(toHex(parsed.signingKey)).toBe(toHex(a.signingPublicKey));
      expect(toHex(parsed.encryptionKey)).toBe(toHex(a.encryptionPublicKey));
    }
    // survives JSON text
    expect(parsePublicIdentity(JSON.parse(JSON.stringify(a.public))).id).toBe(a.id);
  });

  it('refuses an invalid id or class', () => {
    expectCoreError(() => createIdentity({ id: 'alice', actorClass: 'human' }), 'INVALID_ACTOR_ID');
    expectCoreError(
      () => createIdentity({ id: 'jis:acme:alice', actorClass: 'robot' as never }),
      'INVALID_ACTOR_CLASS',
    );
  });

  it('with the system CSPRNG makes different keys each time', () => {
    const a = createIdentity({ id: 'jis:acme:x', actorClass: 'machine' });
    const b = createIdentity({ id: 'jis:acme:x', actorClass: 'machine' });
    expect(a.public.signing_key).not.toBe(b.public.signing_key);
    expect(a.public.encryption_key).not.toBe(b.public.encryption_key);
  });

  it('exportSecrets returns copies, and destroy zeroes the held secrets', () => {
    const a = make();
    const s1 = a.exportSecrets();
    s1.signingSeed.fill(0xff);
    const s2 = a.exportSecrets();
    expect(toHex(s2.signingSeed)).not.toBe('ff'.repeat(32));
    a.destroy();
    const s3 = a.exportSecrets();
    expect(toHex(s3.signingSeed)).toBe('00'.repeat(32));
    expect(toHex(s3.encryptionSecret)).toBe('00'.repeat(32));
  });
});

describe('parsePublicIdentity rejects tampering', () => {
  const alice = testIdentity('jis:acme:alice', 'human');
  const bob = testIdentity('jis:acme:bob', 'machine');
  const pub = alice.public;
  const flipB64 = (s: string, bit: number) => toBase64Url(flipBit(fromBase64Url(s), bit));

  const cases: [string, unknown, CoreErrorCode][] = [
    ['id changed to another valid id', { ...pub, id: 'jis:acme:alicf' }, 'KEYFILE_INVALID'],
    ['id malformed', { ...pub, id: 'alice' }, 'INVALID_ACTOR_ID'],
    ['actor class changed', { ...pub, actor_class: 'system' }, 'KEYFILE_INVALID'],
    ['actor class unknown', { ...pub, actor_class: 'robot' }, 'INVALID_ACTOR_CLASS'],
    ['created_at changed', { ...pub, created_at: '2026-01-01T00:00:00.001Z' }, 'KEYFILE_INVALID'],
    ['created_at not RFC 3339 UTC', { ...pub, created_at: '2026-01-01' }, 'KEYFILE_INVALID'],
    [
      'signing key of someone else',
      { ...pub, signing_key: bob.public.signing_key },
      'KEYFILE_INVALID',
    ],
    [
      'encryption key of someone else',
      { ...pub, encryption_key: bob.public.encryption_key },
      'KEYFILE_INVALID',
    ],
    [
      'encryption key bit flipped',
      { ...pub, encryption_key: flipB64(pub.encryption_key, 77) },
      'KEYFILE_INVALID',
    ],
    [
      'self-signature bit flipped',
      { ...pub, self_signature: flipB64(pub.self_signature, 300) },
      'KEYFILE_INVALID',
    ],
    [
      'self-signature of someone else',
      { ...pub, self_signature: bob.public.self_signature },
      'KEYFILE_INVALID',
    ],
    [
      'signing key too short',
      { ...pub, signing_key: toBase64Url(new Uint8Array(31)) },
      'KEYFILE_INVALID',
    ],
    [
      'signing key not base64url',
      { ...pub, signing_key: `${pub.signing_key}=` },
      'KEYFILE_INVALID',
    ],
    ['encryption key missing', (({ encryption_key: _e, ...r }) => r)(pub), 'KEYFILE_INVALID'],
    ['self-signature missing', (({ self_signature: _s, ...r }) => r)(pub), 'KEYFILE_INVALID'],
    ['extra member', { ...pub, note: 'hi' }, 'KEYFILE_INVALID'],
    ['format changed', { ...pub, format: 'tibet-public-identity/2' }, 'KEYFILE_INVALID'],
    ['not an object', [pub], 'KEYFILE_INVALID'],
    ['null', null, 'KEYFILE_INVALID'],
  ];
  for (const [name, v, code] of cases) {
    it(name, () => {
      for (const p of BACKENDS) expectCoreError(() => parsePublicIdentity(v, p), code);
    });
  }

  it('a small-order signing key is refused by both backends', () => {
    // The identity point: with it, R = identity and S = 0 "verify" any message under a
    // cofactorless check that does not refuse small-order keys.
    const body = { ...pub, signing_key: toBase64Url(Uint8Array.of(1, ...new Uint8Array(31))) };
    const forged = {
      ...body,
      self_signature: toBase64Url(Uint8Array.of(1, ...new Uint8Array(63))),
    };
    for (const p of BACKENDS)
      expectCoreError(() => parsePublicIdentity(forged, p), 'KEYFILE_INVALID');
  });

  it('the self-signature binds keys to each other, not the id to a person', () => {
    // Anyone can make a valid self-signed identity claiming any id: who jis:acme:alice is
    // must be pinned from outside (a registry the verifier trusts).
    const impostor = testIdentity('jis:acme:alice', 'human', { seed: 'impostor' });
    expect(parsePublicIdentity(impostor.public).id).toBe('jis:acme:alice');
    expect(impostor.public.signing_key).not.toBe(pub.signing_key);
  });
});

describe('IdentityRegistry', () => {
  const alice = testIdentity('jis:acme:alice', 'human');
  const alice2 = testIdentity('jis:acme:alice', 'human', { seed: 'alice rotated' });
  const bob = testIdentity('jis:acme:bob', 'machine');

  it('stores identities by id, several keys per actor, without duplicates', () => {
    const r = new IdentityRegistry();
    r.add(alice);
    r.add(alice.public);
    r.add(clone(alice.public));
    expect(r.get(alice.id)).toHaveLength(1);
    r.add(alice2.public);
    r.add(bob);
    expect(r.get(alice.id)).toHaveLength(2);
    expect(r.all()).toHaveLength(3);
    expect(r.get('jis:acme:nobody')).toEqual([]);
  });

  it('finds the signing key by actor and key id', () => {
    const r = new IdentityRegistry();
    for (const i of [alice, alice2, bob]) r.add(i.public);
    expect(toHex(r.signingKey(alice.id, alice.keyId)!)).toBe(toHex(alice.signingPublicKey));
    expect(toHex(r.signingKey(alice.id, alice2.keyId)!)).toBe(toHex(alice2.signingPublicKey));
    expect(r.signingKey(alice.id, bob.keyId)).toBeUndefined();
    expect(r.signingKey(bob.id, alice.keyId)).toBeUndefined();
    expect(r.has(alice.id, alice2.signingPublicKey)).toBe(true);
    expect(r.has(bob.id, alice.signingPublicKey)).toBe(false);
  });

  it('refuses tampered identities', () => {
    const r = new IdentityRegistry();
    expectCoreError(() => r.add({ ...alice.public, actor_class: 'system' }), 'KEYFILE_INVALID');
    expectCoreError(() => r.add({ ...alice.public, id: 'nope' }), 'INVALID_ACTOR_ID');
    expect(r.all()).toEqual([]);
  });

  it('lets a line cross a key rotation', () => {
    const r = new IdentityRegistry(noble);
    r.add(alice.public);
    r.add(alice2.public);
    const opts = { clock: fixedClock('2026-01-02T00:00:00.000Z'), random: seededRandom('rot') };
    const t1 = mintToken(
      { actor: alice.id, actorClass: 'human', event: 'a', erachter: 'old key' },
      alice,
      opts,
    );
    const t2 = mintToken(
      { actor: alice.id, actorClass: 'human', event: 'b', erachter: 'new key', prev: t1 },
      alice2,
      opts,
    );
    expect(verifyLine([t1, t2], r, { provider: noble })).toHaveLength(2);
  });

  it('an Identity built directly validates its metadata', () => {
    expectCoreError(
      () =>
        new Identity(new Uint8Array(32), new Uint8Array(32), {
          id: 'x',
          actorClass: 'human',
          createdAt: '2026-01-01T00:00:00.000Z',
        }),
      'INVALID_ACTOR_ID',
    );
  });
});
