/**
 * The two crypto backends (`noble`, pure JavaScript; `node`, OpenSSL) must give the same
 * bytes for the same inputs and accept exactly the same things. Property tests over random
 * inputs, plus a few published vectors for the primitives that have no file of their own.
 */
import { describe, expect, it } from 'vitest';
import { fc, test } from '@fast-check/vitest';
import {
  HpkeMode,
  fromHex,
  getProvider,
  hpkeGenerateKeyPair,
  hpkeOpen,
  hpkeSeal,
  hpkeSetupRecipient,
  hpkeSetupSender,
  nobleProvider,
  nodeProvider,
  seededRandom,
  setDefaultProvider,
  sha256Hex,
  sha256Into,
  systemRandom,
  toHex,
  utf8,
} from '@tibet/core';
import { BACKENDS, expectCoreError, flipBit, noble, node } from './helpers.js';

const bytes = (n: number) => fc.uint8Array({ minLength: n, maxLength: n });
const anyBytes = (max: number) => fc.uint8Array({ minLength: 0, maxLength: max });
const nonEmpty = (max: number) => fc.uint8Array({ minLength: 1, maxLength: max });

describe('provider selection', () => {
  it('getProvider returns the named backends and rejects unknown names', () => {
    expect(getProvider('noble')).toBe(nobleProvider);
    expect(getProvider('node')).toBe(nodeProvider);
    expect(nobleProvider.name).toBe('noble');
    expect(nodeProvider.name).toBe('node');
    expectCoreError(() => getProvider('wasm' as never), 'BACKEND_UNAVAILABLE');
  });

  it('setDefaultProvider changes what getProvider() returns', () => {
    const before = getProvider();
    try {
      setDefaultProvider('noble');
      expect(getProvider()).toBe(nobleProvider);
      setDefaultProvider(nodeProvider);
      expect(getProvider()).toBe(nodeProvider);
      expectCoreError(() => setDefaultProvider('nope' as never), 'BACKEND_UNAVAILABLE');
      expect(getProvider()).toBe(nodeProvider);
    } finally {
      setDefaultProvider(before);
    }
  });

  it('the default follows TIBET_CRYPTO (node when unset)', () => {
    const env = process.env['TIBET_CRYPTO'];
    expect(getProvider().name).toBe(env === 'noble' ? 'noble' : 'node');
  });

  it('returns plain Uint8Arrays, never Node Buffers', () => {
    const key = new Uint8Array(32).fill(7);
    for (const p of BACKENDS) {
      const outs = [
        p.sha256(utf8('x')),
        p.hmacSha256(key, utf8('x')),
        p.ed25519(key).publicKey,
        p.ed25519(key).sign(utf8('x')),
        p.x25519(key).publicKey,
        p.x25519(key).agree(p.x25519(new Uint8Array(32).fill(9)).publicKey),
        p.chacha20poly1305Seal(key, new Uint8Array(12), utf8('x'), new Uint8Array(0)),
        p.xchacha20poly1305Seal(key, new Uint8Array(24), utf8('x'), new Uint8Array(0)),
        p.x25519Generate().secretKey,
      ];
      for (const o of outs) {
        expect(Buffer.isBuffer(o), p.name).toBe(false);
        expect(o.constructor).toBe(Uint8Array);
      }
    }
  });
});

describe('Ed25519 across backends', () => {
  test.prop([bytes(32), anyBytes(300), fc.nat()])(
    'same public key and signature; each verifies the other; flipped bits are rejected by both',
    (seed, msg, bit) => {
      const a = noble.ed25519(seed);
      const b = node.ed25519(seed);
      expect(toHex(a.publicKey)).toBe(toHex(b.publicKey));
      const sa = a.sign(msg);
      const sb = b.sign(msg);
      expect(toHex(sa)).toBe(toHex(sb));
      expect(noble.ed25519Verify(b.publicKey, msg, sb)).toBe(true);
      expect(node.ed25519Verify(a.publicKey, msg, sa)).toBe(true);
      const badSig = flipBit(sa, bit);
      const badKey = flipBit(a.publicKey, bit);
      for (const p of BACKENDS) {
        expect(p.ed25519Verify(a.publicKey, msg, badSig), `${p.name} sig bit ${bit}`).toBe(false);
        expect(p.ed25519Verify(badKey, msg, sa), `${p.name} key bit ${bit}`).toBe(false);
        if (msg.length > 0) {
          expect(p.ed25519Verify(a.publicKey, flipBit(msg, bit), sa), p.name).toBe(false);
        }
        expect(p.ed25519Verify(a.publicKey, Uint8Array.of(...msg, 0), sa), p.name).toBe(false);
      }
    },
  );

  test.prop([bytes(32), anyBytes(64), bytes(64)])(
    'arbitrary public key and signature bytes get the same verdict on both',
    (pk, msg, sig) => {
      expect(node.ed25519Verify(pk, msg, sig)).toBe(noble.ed25519Verify(pk, msg, sig));
    },
  );

  it('small-order public keys are refused by both, even with the trivial forgery', () => {
    // Encodings of the eight points of order 1, 2, 4 and 8, plus non-canonical spellings.
    const smallOrder = [
      '0100000000000000000000000000000000000000000000000000000000000000',
      'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
      '0000000000000000000000000000000000000000000000000000000000000000',
      '0000000000000000000000000000000000000000000000000000000000000080',
      'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a',
      'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa',
      '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05',
      '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85',
      '0100000000000000000000000000000000000000000000000000000000000080',
      'eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
      'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff',
    ].map((h) => fromHex(h));
    for (const A of smallOrder) {
      for (const R of smallOrder) {
        const sig = Uint8Array.of(...R, ...new Uint8Array(32)); // S = 0
        for (const msg of [utf8(''), utf8('pay mallory')]) {
          for (const p of BACKENDS)
            expect(p.ed25519Verify(A, msg, sig), `${p.name} ${toHex(A)}`).toBe(false);
        }
      }
    }
  });

  it('both reject wrong lengths without throwing', () => {
    const k = noble.ed25519(new Uint8Array(32).fill(1));
    const sig = k.sign(utf8('m'));
    for (const p of BACKENDS) {
      expect(p.ed25519Verify(k.publicKey.subarray(0, 31), utf8('m'), sig)).toBe(false);
      expect(p.ed25519Verify(k.publicKey, utf8('m'), sig.subarray(0, 63))).toBe(false);
      expect(p.ed25519Verify(k.publicKey, utf8('m'), new Uint8Array(65))).toBe(false);
      expect(() => p.ed25519(new Uint8Array(31))).toThrow(RangeError);
    }
  });

  it('signing keys do not keep a reference to the caller’s seed', () => {
    for (const p of BACKENDS) {
      const seed = new Uint8Array(32).fill(3);
      const k = p.ed25519(seed);
      const before = k.sign(utf8('m'));
      seed.fill(0);
      expect(toHex(k.sign(utf8('m')))).toBe(toHex(before));
    }
  });
});

describe('X25519 across backends', () => {
  test.prop([bytes(32), bytes(32)])('same public keys and shared secrets', (skA, skB) => {
    const [na, nb, oa, ob] = [
      noble.x25519(skA),
      noble.x25519(skB),
      node.x25519(skA),
      node.x25519(skB),
    ];
    expect(toHex(na.publicKey)).toBe(toHex(oa.publicKey));
    expect(toHex(nb.publicKey)).toBe(toHex(ob.publicKey));
    const s = toHex(na.agree(nb.publicKey));
    expect(toHex(oa.agree(ob.publicKey))).toBe(s);
    expect(toHex(nb.agree(na.publicKey))).toBe(s);
    expect(toHex(ob.agree(oa.publicKey))).toBe(s);
  });

  test.prop([bytes(32), bytes(32)])(
    'arbitrary peer bytes (non-canonical u, high bit set) give the same result on both',
    (sk, peer) => {
      const outcome = (p: typeof noble) => {
        try {
          return toHex(p.x25519(sk).agree(peer));
        } catch (e) {
          return `error:${(e as { code?: string }).code}`;
        }
      };
      expect(outcome(node)).toBe(outcome(noble));
    },
  );

  it('low-order peer points raise HPKE_INVALID_KEY on both', () => {
    const lowOrder = [
      '0000000000000000000000000000000000000000000000000000000000000000',
      '0100000000000000000000000000000000000000000000000000000000000000',
      'e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800',
      '5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157',
      'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
    ];
    for (const p of BACKENDS) {
      const k = p.x25519(new Uint8Array(32).fill(5));
      for (const h of lowOrder) expectCoreError(() => k.agree(fromHex(h)), 'HPKE_INVALID_KEY');
      expect(() => k.agree(new Uint8Array(31))).toThrow(RangeError);
    }
  });

  it('RFC 7748 §6.1 Diffie-Hellman vector on both', () => {
    const aSk = fromHex('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a');
    const bSk = fromHex('5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb');
    for (const p of BACKENDS) {
      const a = p.x25519(aSk);
      const b = p.x25519(bSk);
      expect(toHex(a.publicKey)).toBe(
        '8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a',
      );
      expect(toHex(b.publicKey)).toBe(
        'de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f',
      );
      const k = '4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742';
      expect(toHex(a.agree(b.publicKey))).toBe(k);
      expect(toHex(b.agree(a.publicKey))).toBe(k);
    }
  });

  it('x25519Generate gives working key pairs on both', () => {
    for (const p of BACKENDS) {
      const kp = p.x25519Generate();
      expect(kp.secretKey.length).toBe(32);
      expect(toHex(noble.x25519(kp.secretKey).publicKey)).toBe(toHex(kp.publicKey));
      expect(toHex(node.x25519(kp.secretKey).publicKey)).toBe(toHex(kp.publicKey));
    }
  });
});

type AeadName = 'chacha20poly1305' | 'xchacha20poly1305';
const AEADS: { name: AeadName; nonceLen: number }[] = [
  { name: 'chacha20poly1305', nonceLen: 12 },
  { name: 'xchacha20poly1305', nonceLen: 24 },
];

for (const { name, nonceLen } of AEADS) {
  type Aead = (key: Uint8Array, nonce: Uint8Array, data: Uint8Array, aad: Uint8Array) => Uint8Array;
  const seal =
    (p: typeof noble): Aead =>
    (k, n, d, a) =>
      name === 'chacha20poly1305'
        ? p.chacha20poly1305Seal(k, n, d, a)
        : p.xchacha20poly1305Seal(k, n, d, a);
  const open =
    (p: typeof noble): Aead =>
    (k, n, d, a) =>
      name === 'chacha20poly1305'
        ? p.chacha20poly1305Open(k, n, d, a)
        : p.xchacha20poly1305Open(k, n, d, a);

  describe(`${name} across backends`, () => {
    test.prop([bytes(32), bytes(nonceLen), anyBytes(600), anyBytes(64)])(
      'identical ciphertexts that open on the other backend',
      (key, nonce, pt, aad) => {
        const a = seal(noble)(key, nonce, pt, aad);
        const b = seal(node)(key, nonce, pt, aad);
        expect(a.length).toBe(pt.length + 16);
        expect(toHex(a)).toBe(toHex(b));
        expect(toHex(open(node)(key, nonce, a, aad))).toBe(toHex(pt));
        expect(toHex(open(noble)(key, nonce, b, aad))).toBe(toHex(pt));
      },
    );

    test.prop([bytes(32), bytes(nonceLen), anyBytes(200), anyBytes(32), fc.nat()])(
      'tampered ciphertext, aad, nonce or key → AEAD_OPEN_FAILED on both',
      (key, nonce, pt, aad, bit) => {
        const ct = seal(noble)(key, nonce, pt, aad);
        for (const p of BACKENDS) {
          const o = open(p);
          expectCoreError(() => o(key, nonce, flipBit(ct, bit), aad), 'AEAD_OPEN_FAILED');
          expectCoreError(() => o(key, flipBit(nonce, bit), ct, aad), 'AEAD_OPEN_FAILED');
          expectCoreError(() => o(flipBit(key, bit), nonce, ct, aad), 'AEAD_OPEN_FAILED');
          expectCoreError(() => o(key, nonce, ct, Uint8Array.of(...aad, 0)), 'AEAD_OPEN_FAILED');
          if (aad.length > 0) {
            expectCoreError(() => o(key, nonce, ct, flipBit(aad, bit)), 'AEAD_OPEN_FAILED');
          }
          expectCoreError(
            () => o(key, nonce, ct.subarray(0, ct.length - 1), aad),
            'AEAD_OPEN_FAILED',
          );
          expectCoreError(() => o(key, nonce, Uint8Array.of(...ct, 0), aad), 'AEAD_OPEN_FAILED');
        }
      },
    );

    it('ciphertexts shorter than the tag fail closed on both', () => {
      const key = new Uint8Array(32);
      const nonce = new Uint8Array(nonceLen);
      for (const p of BACKENDS) {
        for (const n of [0, 1, 15]) {
          expectCoreError(
            () => open(p)(key, nonce, new Uint8Array(n), new Uint8Array(0)),
            'AEAD_OPEN_FAILED',
          );
        }
      }
    });
  });
}

describe('published AEAD vectors', () => {
  // RFC 8439 §2.8.2
  const rfc8439 = {
    key: '808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f',
    nonce: '070000004041424344454647',
    aad: '50515253c0c1c2c3c4c5c6c7',
    pt: toHex(
      utf8(
        "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.",
      ),
    ),
    ct:
      'd31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d63dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b3692ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc3ff4def08e4b7a9de576d26586cec64b6116' +
      '1ae10b594f09e26a7e902ecbd0600691',
  };
  // draft-irtf-cfrg-xchacha-03 §A.3.1
  const xchacha = {
    key: '808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f',
    nonce: '404142434445464748494a4b4c4d4e4f5051525354555657',
    aad: '50515253c0c1c2c3c4c5c6c7',
    pt: rfc8439.pt,
    ct:
      'bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb731c7f1b0b4aa6440bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b4522f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff921f9664c97637da9768812f615c68b13b52e' +
      'c0875924c1c7987947deafd8780acf49',
  };

  for (const p of BACKENDS) {
    it(`RFC 8439 §2.8.2 ChaCha20-Poly1305 on ${p.name}`, () => {
      const v = rfc8439;
      const ct = p.chacha20poly1305Seal(
        fromHex(v.key),
        fromHex(v.nonce),
        fromHex(v.pt),
        fromHex(v.aad),
      );
      expect(toHex(ct)).toBe(v.ct);
      expect(
        toHex(p.chacha20poly1305Open(fromHex(v.key), fromHex(v.nonce), ct, fromHex(v.aad))),
      ).toBe(v.pt);
    });
    it(`draft-irtf-cfrg-xchacha §A.3.1 XChaCha20-Poly1305 on ${p.name}`, () => {
      const v = xchacha;
      const ct = p.xchacha20poly1305Seal(
        fromHex(v.key),
        fromHex(v.nonce),
        fromHex(v.pt),
        fromHex(v.aad),
      );
      expect(toHex(ct)).toBe(v.ct);
      expect(
        toHex(p.xchacha20poly1305Open(fromHex(v.key), fromHex(v.nonce), ct, fromHex(v.aad))),
      ).toBe(v.pt);
    });
  }
});

describe('hashes and KDFs across backends', () => {
  test.prop([anyBytes(1000)])('SHA-256 identical', (data) => {
    expect(toHex(node.sha256(data))).toBe(toHex(noble.sha256(data)));
  });

  test.prop([anyBytes(1000)])('sha256Hex is toHex of sha256 on both', (data) => {
    for (const p of BACKENDS) expect(sha256Hex(data, p)).toBe(toHex(p.sha256(data)));
  });

  it('sha256Hex of more than 64 KiB (the streaming path) and through the default provider', () => {
    const big = systemRandom(70_000);
    expect(sha256Hex(big, node)).toBe(toHex(noble.sha256(big)));
    expect(sha256Hex(utf8('abc'))).toBe(
      'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad',
    );
  });

  test.prop([anyBytes(1000), fc.nat(64)])(
    'sha256Into writes sha256 at the offset on both, and nothing else',
    (data, at) => {
      for (const p of BACKENDS) {
        const out = new Uint8Array(at + 32 + 7).fill(0xa5);
        sha256Into(data, out, at, p);
        expect(toHex(out.subarray(at, at + 32))).toBe(toHex(noble.sha256(data)));
        expect([...out.subarray(0, at), ...out.subarray(at + 32)].every((b) => b === 0xa5)).toBe(
          true,
        );
      }
    },
  );

  it('sha256Into: the streaming path, the default provider, and no room refused', () => {
    const big = systemRandom(70_000);
    const out = new Uint8Array(40);
    sha256Into(big, out, 8, node);
    expect(toHex(out.subarray(8))).toBe(toHex(noble.sha256(big)));
    sha256Into(utf8('abc'), out, 0);
    expect(toHex(out.subarray(0, 32))).toBe(
      'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad',
    );
    for (const at of [9, -1, 0.5, Number.NaN])
      expect(() => sha256Into(big, out, at, node)).toThrow(RangeError);
  });

  test.prop([anyBytes(200), anyBytes(500)])(
    'HMAC-SHA-256 identical (keys longer than a block too)',
    (key, data) => {
      expect(toHex(node.hmacSha256(key, data))).toBe(toHex(noble.hmacSha256(key, data)));
    },
  );

  it('SHA-256 and HMAC-SHA-256 published vectors on both', () => {
    for (const p of BACKENDS) {
      // FIPS 180-2 "abc"
      expect(toHex(p.sha256(utf8('abc')))).toBe(
        'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad',
      );
      // RFC 4231 test case 2
      expect(toHex(p.hmacSha256(utf8('Jefe'), utf8('what do ya want for nothing?')))).toBe(
        '5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843',
      );
    }
  });

  test.prop(
    [
      anyBytes(40),
      anyBytes(40),
      fc.integer({ min: 1, max: 8 }).map((e) => 2 ** e),
      fc.integer({ min: 1, max: 4 }),
      fc.integer({ min: 1, max: 3 }),
      fc.integer({ min: 1, max: 80 }),
    ],
    { numRuns: 30 },
  )('scrypt identical (small N)', async (password, salt, N, r, p, dkLen) => {
    const [a, b] = await Promise.all([
      noble.scrypt(password, salt, { N, r, p, dkLen }),
      node.scrypt(password, salt, { N, r, p, dkLen }),
    ]);
    expect(a.length).toBe(dkLen);
    expect(toHex(b)).toBe(toHex(a));
  });

  it('RFC 7914 §12 scrypt vectors on both', async () => {
    for (const p of BACKENDS) {
      expect(
        toHex(
          await p.scrypt(new Uint8Array(0), new Uint8Array(0), { N: 16, r: 1, p: 1, dkLen: 64 }),
        ),
      ).toBe(
        '77d6576238657b203b19ca42c18a0497f16b4844e3074ae8dfdffa3fede21442fcd0069ded0948f8326a753a0fc81f17e8d3e0fb2e0d3628cf35e20c38d18906',
      );
      expect(
        toHex(await p.scrypt(utf8('password'), utf8('NaCl'), { N: 1024, r: 8, p: 16, dkLen: 64 })),
      ).toBe(
        'fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e77376634b3731622eaf30d92e22a3886ff109279d9830dac727afb94a83ee6d8360cbdfa2cc0640',
      );
    }
  });
});

describe('HPKE across backends', () => {
  test.prop([bytes(32), fc.string(), anyBytes(300), anyBytes(40), anyBytes(40)], { numRuns: 60 })(
    'seal with seededRandom is identical on both and opens on the other',
    (skR, seed, pt, info, aad) => {
      const outs = BACKENDS.map((p) =>
        hpkeSeal(p, p.x25519(skR).publicKey, pt, { info, aad, random: seededRandom(seed) }),
      );
      const [a, b] = outs as [(typeof outs)[0], (typeof outs)[0]];
      expect(toHex(a.enc)).toBe(toHex(b.enc));
      expect(toHex(a.ciphertext)).toBe(toHex(b.ciphertext));
      expect(toHex(hpkeOpen(node, node.x25519(skR), a.enc, a.ciphertext, { info, aad }))).toBe(
        toHex(pt),
      );
      expect(toHex(hpkeOpen(noble, noble.x25519(skR), b.enc, b.ciphertext, { info, aad }))).toBe(
        toHex(pt),
      );
    },
  );

  test.prop([fc.string()])('hpkeGenerateKeyPair with a seeded source is deterministic', (s) => {
    const a = hpkeGenerateKeyPair(noble, seededRandom(s));
    const b = hpkeGenerateKeyPair(node, seededRandom(s));
    expect(toHex(a.secretKey)).toBe(toHex(b.secretKey));
    expect(toHex(a.publicKey)).toBe(toHex(b.publicKey));
  });

  test.prop([bytes(32), nonEmpty(100), fc.nat()], { numRuns: 40 })(
    'tampered enc, ciphertext, info or aad fail closed on both',
    (skR, pt, bit) => {
      const info = utf8('tibet test');
      const aad = utf8('entry');
      const { enc, ciphertext } = hpkeSeal(noble, noble.x25519(skR).publicKey, pt, {
        info,
        aad,
        random: seededRandom(toHex(skR)),
      });
      for (const p of BACKENDS) {
        const r = p.x25519(skR);
        expectCoreError(
          () => hpkeOpen(p, r, enc, flipBit(ciphertext, bit), { info, aad }),
          'HPKE_OPEN_FAILED',
        );
        expectCoreError(
          () => hpkeOpen(p, r, enc, ciphertext, { info, aad: flipBit(aad, bit) }),
          'HPKE_OPEN_FAILED',
        );
        expectCoreError(
          () => hpkeOpen(p, r, enc, ciphertext, { info: flipBit(info, bit), aad }),
          'HPKE_OPEN_FAILED',
        );
        // A flipped enc is either a different point (open fails) or a low-order one (rejected).
        const e = (() => {
          try {
            hpkeOpen(p, r, flipBit(enc, bit), ciphertext, { info, aad });
          } catch (err) {
            return (err as { code?: string }).code;
          }
          return 'opened';
        })();
        expect(['HPKE_OPEN_FAILED', 'HPKE_INVALID_KEY']).toContain(e);
      }
    },
  );

  it('system randomness (native ephemeral keys) interoperates both ways', () => {
    for (const [s, r] of [
      [noble, node],
      [node, noble],
    ] as const) {
      const kp = r.x25519Generate();
      const { enc, ciphertext } = hpkeSeal(s, kp.publicKey, utf8('hello'), {
        random: systemRandom,
      });
      expect(hpkeOpen(r, r.x25519(kp.secretKey), enc, ciphertext)).toEqual(utf8('hello'));
    }
  });

  it('a multi-message context keeps sequence on both sides and exports the same secrets', () => {
    const skR = seededRandom('ctx-r')(32);
    const { enc, context: s } = hpkeSetupSender(noble, noble.x25519(skR).publicKey, {
      info: utf8('i'),
      random: seededRandom('ctx-e'),
    });
    const r = hpkeSetupRecipient(node, enc, node.x25519(skR), { info: utf8('i') });
    const msgs = ['a', 'bb', 'ccc'].map((m) => s.seal(utf8(m)));
    // Out-of-order open fails and does not advance the sequence.
    expectCoreError(() => r.open(msgs[1]!), 'HPKE_OPEN_FAILED');
    expect(msgs.map((c) => new TextDecoder().decode(r.open(c)))).toEqual(['a', 'bb', 'ccc']);
    expect(toHex(r.export(utf8('ctx'), 42))).toBe(toHex(s.export(utf8('ctx'), 42)));
    s.destroy();
    r.destroy();
  });

  it('malformed enc and mode misuse are rejected', () => {
    for (const p of BACKENDS) {
      const r = p.x25519(new Uint8Array(32).fill(1));
      expectCoreError(() => hpkeSetupRecipient(p, new Uint8Array(31), r), 'HPKE_INVALID_KEY');
      expectCoreError(() => hpkeSetupRecipient(p, new Uint8Array(32), r), 'HPKE_INVALID_KEY');
      expect(() => hpkeSetupSender(p, new Uint8Array(31), { random: systemRandom })).toThrow(
        RangeError,
      );
      expect(() => hpkeSetupSender(p, r.publicKey, {})).toThrow(TypeError);
      expect(() =>
        hpkeSetupSender(p, r.publicKey, { random: systemRandom, psk: new Uint8Array(32) }),
      ).toThrow(TypeError);
      expect(() =>
        hpkeSetupSender(p, r.publicKey, {
          random: systemRandom,
          psk: new Uint8Array(16),
          pskId: utf8('id'),
        }),
      ).toThrow(RangeError);
    }
    expect(HpkeMode).toEqual({ base: 0, psk: 1, auth: 2, authPsk: 3 });
  });
});
