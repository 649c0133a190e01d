/**
 * Published vectors (test/vectors/, provenance in test/vectors/README.md and TOKENS.md):
 * RFC 9180 HPKE, RFC 8032 Ed25519, RFC 8785 JCS, and the Ed25519 edge cases of
 * "Taming the many EdDSAs". Every crypto vector runs on both backends.
 */
import { describe, expect, it } from 'vitest';
import {
  canonicalBytes,
  canonicalize,
  fromHex,
  hpkeDeriveKeyPair,
  hpkeOpen,
  hpkeSeal,
  hpkeSetupRecipient,
  hpkeSetupSender,
  parseCanonicalJson,
  toHex,
  utf8,
  type HpkeOptions,
} from '@tibet/core';
import { BACKENDS, expectCoreError, flipBit, readVector, vectorPath } from './helpers.js';

const RFC9180 = 'rfc9180-x25519-sha256-chacha20poly1305.json';
const RFC8032 = 'rfc8032-ed25519.json';
const RFC8785 = 'rfc8785-jcs.json';
const SPECCHECK = 'ed25519-speccheck.json';

/** A clear skip when another helper has not delivered a vector file (yet). */
function missing(file: string): void {
  it.skip(`${file} is missing from test/vectors/ — these vectors were NOT checked`, () => {});
}

interface HpkeVector {
  mode: number;
  kem_id: number;
  kdf_id: number;
  aead_id: number;
  info: string;
  ikmE: string;
  pkEm: string;
  skEm: string;
  ikmR: string;
  pkRm: string;
  skRm: string;
  ikmS?: string;
  pkSm?: string;
  skSm?: string;
  psk?: string;
  psk_id?: string;
  enc: string;
  encryptions: { seq: number; pt: string; aad: string; nonce: string; ct: string }[];
  exports: { exporter_context: string; L: number; exported_value: string }[];
}

describe('RFC 9180 HPKE, DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 / ChaCha20-Poly1305', () => {
  if (!vectorPath(RFC9180)) return missing(RFC9180);
  const vectors = readVector<HpkeVector[]>(RFC9180);

  it('covers all four modes of the suite (KEM 0x0020, KDF 0x0001, AEAD 0x0003)', () => {
    expect(vectors.map((v) => v.mode).sort()).toEqual([0, 1, 2, 3]);
    for (const v of vectors) expect([v.kem_id, v.kdf_id, v.aead_id]).toEqual([0x20, 0x01, 0x03]);
  });

  for (const v of vectors) {
    for (const p of BACKENDS) {
      it(`mode ${v.mode} on ${p.name}`, () => {
        const e = hpkeDeriveKeyPair(p, fromHex(v.ikmE));
        const r = hpkeDeriveKeyPair(p, fromHex(v.ikmR));
        expect(toHex(e.secretKey)).toBe(v.skEm);
        expect(toHex(e.publicKey)).toBe(v.pkEm);
        expect(toHex(r.secretKey)).toBe(v.skRm);
        expect(toHex(r.publicKey)).toBe(v.pkRm);
        let s: { secretKey: Uint8Array; publicKey: Uint8Array } | undefined;
        if (v.ikmS !== undefined) {
          s = hpkeDeriveKeyPair(p, fromHex(v.ikmS));
          expect(toHex(s.secretKey)).toBe(v.skSm);
          expect(toHex(s.publicKey)).toBe(v.pkSm);
        }

        const opts: HpkeOptions = { info: fromHex(v.info) };
        if (v.psk !== undefined && v.psk_id !== undefined) {
          opts.psk = fromHex(v.psk);
          opts.pskId = fromHex(v.psk_id);
        }
        const { enc, context } = hpkeSetupSender(p, fromHex(v.pkRm), {
          ...opts,
          ephemeral: { secretKey: fromHex(v.skEm), publicKey: fromHex(v.pkEm) },
          ...(s ? { senderKey: p.x25519(s.secretKey) } : {}),
        });
        expect(toHex(enc)).toBe(v.enc);
        const recipient = hpkeSetupRecipient(p, enc, p.x25519(fromHex(v.skRm)), {
          ...opts,
          ...(s ? { senderPublicKey: s.publicKey } : {}),
        });

        // Seal in sequence order; gaps (3, 5..254) are filled with dummy messages that the
        // recipient also opens, so both sides reach each listed sequence number together.
        let seq = 0;
        const sorted = [...v.encryptions].sort((a, b) => a.seq - b.seq);
        expect(sorted.length).toBeGreaterThan(0);
        for (const x of sorted) {
          for (; seq < x.seq; seq++) recipient.open(context.seal(new Uint8Array(0)));
          const ct = context.seal(fromHex(x.pt), fromHex(x.aad));
          expect(toHex(ct), `seq ${x.seq}`).toBe(x.ct);
          expect(toHex(recipient.open(fromHex(x.ct), fromHex(x.aad))), `seq ${x.seq}`).toBe(x.pt);
          seq++;
        }
        expect(v.exports.length).toBeGreaterThan(0);
        for (const x of v.exports) {
          expect(toHex(context.export(fromHex(x.exporter_context), x.L))).toBe(x.exported_value);
          expect(toHex(recipient.export(fromHex(x.exporter_context), x.L))).toBe(x.exported_value);
        }
        context.destroy();
        recipient.destroy();
      });
    }
  }

  // The single-shot API (what tza/1 wraps data keys with) takes its own path through the key
  // schedule (no exporter secret, a cached key_schedule_context): it must give the RFC's
  // first message. A Random that is not the system's makes the ephemeral key
  // DeriveKeyPair(random(32)), so handing it ikmE reproduces the vector's enc.
  const base = vectors.find((v) => v.mode === 0)!;
  for (const p of BACKENDS) {
    it(`single-shot hpkeSeal / hpkeOpen give the base-mode vector's first message on ${p.name}`, () => {
      const first = base.encryptions.find((x) => x.seq === 0)!;
      const ikmE = (n: number): Uint8Array => {
        expect(n).toBe(32);
        return fromHex(base.ikmE);
      };
      for (let round = 0; round < 2; round++) {
        // twice: the second seal and open find the key schedule context in the cache
        const { enc, ciphertext } = hpkeSeal(p, fromHex(base.pkRm), fromHex(first.pt), {
          info: fromHex(base.info),
          aad: fromHex(first.aad),
          random: ikmE,
        });
        expect(toHex(enc)).toBe(base.enc);
        expect(toHex(ciphertext)).toBe(first.ct);
        const pt = hpkeOpen(p, p.x25519(fromHex(base.skRm)), enc, ciphertext, {
          info: fromHex(base.info),
          aad: fromHex(first.aad),
        });
        expect(toHex(pt)).toBe(first.pt);
      }
      // another info must not be served the cached context of the vector's info
      expectCoreError(
        () =>
          hpkeOpen(p, p.x25519(fromHex(base.skRm)), fromHex(base.enc), fromHex(first.ct), {
            info: flipBit(fromHex(base.info), 0),
            aad: fromHex(first.aad),
          }),
        'HPKE_OPEN_FAILED',
      );
    });
  }
});

interface Ed25519Vector {
  name: string;
  secret_key: string;
  public_key: string;
  message: string;
  signature: string;
}

describe('RFC 8032 §7.1 Ed25519', () => {
  if (!vectorPath(RFC8032)) return missing(RFC8032);
  const vectors = readVector<Ed25519Vector[]>(RFC8032);
  for (const v of vectors) {
    for (const p of BACKENDS) {
      it(`${v.name} on ${p.name}`, () => {
        const k = p.ed25519(fromHex(v.secret_key));
        expect(toHex(k.publicKey)).toBe(v.public_key);
        const msg = fromHex(v.message);
        expect(toHex(k.sign(msg))).toBe(v.signature);
        const sig = fromHex(v.signature);
        expect(p.ed25519Verify(fromHex(v.public_key), msg, sig)).toBe(true);
        for (const bit of [0, 255, 256, 511]) {
          expect(p.ed25519Verify(fromHex(v.public_key), msg, flipBit(sig, bit))).toBe(false);
        }
        if (msg.length > 0)
          expect(p.ed25519Verify(fromHex(v.public_key), flipBit(msg, 3), sig)).toBe(false);
      });
    }
  }
});

interface SpeccheckCase {
  case: number;
  description: string;
  message: string;
  public_key: string;
  signature: string;
  expect: 'accept' | 'reject';
}

describe('Ed25519 edge cases ("Taming the many EdDSAs"): both backends give the same verdict', () => {
  if (!vectorPath(SPECCHECK)) return missing(SPECCHECK);
  const { cases } = readVector<{ cases: SpeccheckCase[] }>(SPECCHECK);
  for (const c of cases) {
    it(`case ${c.case}: ${c.description} → ${c.expect}`, () => {
      const verdicts = BACKENDS.map((p) =>
        p.ed25519Verify(fromHex(c.public_key), fromHex(c.message), fromHex(c.signature)),
      );
      expect(verdicts).toEqual([c.expect === 'accept', c.expect === 'accept']);
    });
  }
});

interface JcsVectors {
  cases: { name: string; input: string; expected: string; expected_order?: string[] }[];
  numbers: { ieee754_hex: string; expected?: string; expect?: 'error'; comment?: string }[];
}

describe('RFC 8785 JCS', () => {
  if (!vectorPath(RFC8785)) return missing(RFC8785);
  const { cases, numbers } = readVector<JcsVectors>(RFC8785);

  for (const c of cases) {
    it(`${c.name}`, () => {
      const parsed: unknown = JSON.parse(c.input);
      expect(canonicalize(parsed)).toBe(c.expected);
      expect(toHex(canonicalBytes(parsed))).toBe(toHex(utf8(c.expected)));
      // Canonical text is a fixed point and parses back to the same value.
      const back = parseCanonicalJson(c.expected);
      expect(back).toEqual(JSON.parse(c.expected));
      expect(canonicalize(back)).toBe(c.expected);
      if (c.input !== c.expected) {
        expectCoreError(() => parseCanonicalJson(c.input), 'NON_CANONICAL_JSON');
      }
      if (c.expected_order) {
        // Object iteration in JavaScript puts integer-like keys first, so check the text.
        const at = c.expected_order.map((val) => c.expected.indexOf(JSON.stringify(val)));
        expect(at.every((x) => x >= 0)).toBe(true);
        expect([...at].sort((a, b) => a - b)).toEqual(at);
      }
    });
  }

  it('Appendix B number serialization (all rows)', () => {
    expect(numbers.length).toBeGreaterThan(0);
    for (const row of numbers) {
      const dv = new DataView(fromHex(row.ieee754_hex).buffer);
      const x = dv.getFloat64(0, false);
      if (row.expect === 'error') {
        expectCoreError(() => canonicalize(x), 'JSON_NOT_CANONICALIZABLE');
        expectCoreError(() => canonicalize({ n: x }), 'JSON_NOT_CANONICALIZABLE');
      } else {
        expect(canonicalize(x), `${row.ieee754_hex} ${row.comment ?? ''}`).toBe(row.expected);
        expect(parseCanonicalJson(row.expected!)).toBe(Object.is(x, -0) ? 0 : x);
      }
    }
  });
});
