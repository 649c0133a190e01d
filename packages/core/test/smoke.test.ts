import { describe, expect, it } from 'vitest';
import { getProvider, hpkeOpen, hpkeSeal, seededRandom, utf8 } from '@tibet/core';

describe('smoke', () => {
  for (const name of ['noble', 'node'] as const) {
    it(`HPKE round trip on ${name}`, () => {
      const p = getProvider(name);
      const r = p.x25519(seededRandom('r')(32));
      const { enc, ciphertext } = hpkeSeal(p, r.publicKey, utf8('hi'), { random: seededRandom('e') });
      expect(hpkeOpen(p, r, enc, ciphertext)).toEqual(utf8('hi'));
    });
  }
  it('backends agree', () => {
    const a = getProvider('noble');
    const b = getProvider('node');
    const seed = seededRandom('s')(32);
    expect(a.ed25519(seed).sign(utf8('m'))).toEqual(b.ed25519(seed).sign(utf8('m')));
    const k = seededRandom('k')(32);
    const n = seededRandom('n')(24);
    expect(a.xchacha20poly1305Seal(k, n, utf8('abc'), utf8('ad'))).toEqual(
      b.xchacha20poly1305Seal(k, n, utf8('abc'), utf8('ad')),
    );
  });
});
