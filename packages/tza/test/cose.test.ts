/**
 * COSE_Sign1 (src/cose.ts): the Sig_structure written straight into its buffer, and the
 * protected header built from a per-key prefix, give exactly the bytes of the general
 * deterministic encoder; the prefix follows the key's public key and the signer id exactly.
 */
import { describe, expect, it } from 'vitest';
import { getProvider, keyIdOf, fromHex, rfc3339, toHex, type Ed25519PrivateKey } from '@tibet/core';
import { manualClock, testIdentity } from '@tibet/core/testing';
import { encodeCbor, type CborTag, type CborValue } from '../src/cbor.js';
import {
  COSE_ALG_EDDSA,
  coseSign1,
  parseCoseSign1,
  sigStructure,
  verifyCoseSign1,
} from '../src/cose.js';

const provider = getProvider();
const AAD = new TextEncoder().encode('tza/1');

/** The protected header as the general encoder writes it (the format's definition). */
function referenceHeader(publicKey: Uint8Array, signer: string, signedAt: string): Uint8Array {
  return encodeCbor(
    new Map<string | number, CborValue>([
      [1, COSE_ALG_EDDSA],
      [4, fromHex(keyIdOf(publicKey, provider))],
      ['signer', signer],
      ['pk', publicKey],
      ['signed_at', signedAt],
    ]),
  );
}

function headerOf(tag: CborTag): Uint8Array {
  return (tag.value as CborValue[])[0] as Uint8Array;
}

describe('Sig_structure', () => {
  // byte strings whose CBOR heads take 1, 2, 3 and 5 bytes
  const lengths = [0, 1, 23, 24, 255, 256, 65535, 65536, 70000];
  it.each(lengths)('a payload of %i bytes: the same bytes as encodeCbor', (n) => {
    const payload = new Uint8Array(n).map((_, i) => (i * 7) & 0xff);
    for (const [prot, aad] of [
      [new Uint8Array(0), new Uint8Array(0)],
      [new Uint8Array(23).fill(1), AAD],
      [new Uint8Array(300).fill(2), new Uint8Array(24).fill(3)],
    ] as const) {
      expect(toHex(sigStructure(prot, payload, aad))).toBe(
        toHex(encodeCbor(['Signature1', prot, aad, payload])),
      );
    }
  });
});

describe('coseSign1 protected header', () => {
  const clock = manualClock('2026-11-28T12:00:00.000Z');

  it.each([
    'jis:acme:alice',
    'jis:a:b',
    // a signer id of 24 characters or more takes a two-byte text head
    'jis:acme-corporation:release-bot-7',
    `jis:${'o'.repeat(64)}:${'n'.repeat(64)}`,
  ])('signer %s: the header is the reference encoding, and it verifies', (signer) => {
    const id = testIdentity(signer, 'human');
    for (let i = 0; i < 3; i++) {
      clock.advance(1234);
      const tag = coseSign1(AAD, id.signer, signer, AAD, { clock, provider });
      const at = rfc3339(clock.now());
      expect(toHex(headerOf(tag))).toBe(toHex(referenceHeader(id.signingPublicKey, signer, at)));
      const parsed = parseCoseSign1(tag, provider);
      expect(parsed.header).toMatchObject({ signer, signedAt: at, kid: id.keyId });
      expect(verifyCoseSign1(parsed, AAD, AAD, provider)).toBe(true);
    }
  });

  it('follows a key object whose public key or signer id changes (the cache is exact)', () => {
    const a = testIdentity('jis:acme:alice', 'human');
    const b = testIdentity('jis:acme:bob', 'human');
    // one key object, re-pointed: its public key bytes replaced in place, then the array
    const pk = a.signingPublicKey.slice();
    const key: { publicKey: Uint8Array; sign(m: Uint8Array): Uint8Array } = {
      publicKey: pk,
      sign: (m) => a.signer.sign(m),
    };
    const k = key as Ed25519PrivateKey;
    const at = rfc3339(clock.now());
    const h1 = headerOf(coseSign1(AAD, k, 'jis:acme:alice', AAD, { clock, provider }));
    expect(toHex(h1)).toBe(toHex(referenceHeader(a.signingPublicKey, 'jis:acme:alice', at)));
    pk.set(b.signingPublicKey);
    const h2 = headerOf(coseSign1(AAD, k, 'jis:acme:alice', AAD, { clock, provider }));
    expect(toHex(h2)).toBe(toHex(referenceHeader(b.signingPublicKey, 'jis:acme:alice', at)));
    const h3 = headerOf(coseSign1(AAD, k, 'jis:acme:bob', AAD, { clock, provider }));
    expect(toHex(h3)).toBe(toHex(referenceHeader(b.signingPublicKey, 'jis:acme:bob', at)));
    key.publicKey = a.signingPublicKey;
    const h4 = headerOf(coseSign1(AAD, k, 'jis:acme:bob', AAD, { clock, provider }));
    expect(toHex(h4)).toBe(toHex(referenceHeader(a.signingPublicKey, 'jis:acme:bob', at)));
  });
});
