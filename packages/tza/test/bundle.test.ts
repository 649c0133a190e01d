import { describe, expect, it } from 'vitest';
import { IdentityRegistry, fromUtf8, utf8 } from '@tibet/core';
import { fixedClock, seededRandom, testIdentity } from '@tibet/core/testing';
import {
  TzaError,
  inspectTza,
  openTza,
  packTza,
  readTza,
  rewrapTza,
  cosignTza,
  verifyTza,
} from '@tibet/tza';

const clock = fixedClock('2026-11-28T12:00:00.000Z');
const alice = testIdentity('jis:acme:alice', 'human');
const bob = testIdentity('jis:acme:bob', 'human');
const carol = testIdentity('jis:acme:carol', 'machine');
const mallory = testIdentity('jis:evil:mallory', 'external');
const SECRET = utf8('pypi-AgEIcHlwaS5vcmcCJGI3ZTQ5-secret-token-bytes');

function pack(seed = 'b1') {
  return packTza(
    {
      kind: 'secret',
      meta: { issuer: 'jis:acme:alice', scope: 'pypi:upload:acme-lib' },
      entries: [
        {
          name: 'record.json',
          data: utf8('{"secret_id":"sec_pypi_001"}'),
          mediaType: 'application/json',
        },
        { name: 'secret.bin', data: SECRET, sealed: true },
      ],
      recipients: [alice, bob],
      signers: [alice],
    },
    { clock, random: seededRandom(seed) },
  );
}

describe('tza/1 bundle', () => {
  it('is deterministic for the same inputs, clock and randomness', () => {
    expect(pack()).toEqual(pack());
    expect(pack('b2')).not.toEqual(pack());
  });

  it('round-trips: open by each recipient', () => {
    const b = pack();
    for (const who of [alice, bob]) {
      const o = openTza(b, who);
      expect(o.entries[1]!.data).toEqual(SECRET);
      expect(fromUtf8(o.entries[0]!.data)).toContain('sec_pypi_001');
    }
  });

  it('refuses a non-recipient', () => {
    expect(() => openTza(pack(), carol)).toThrow(
      expect.objectContaining({ code: 'NOT_A_RECIPIENT' }),
    );
  });

  it('verifies with and without pinned signers', () => {
    const b = pack();
    const r = verifyTza(b);
    expect(r.valid).toBe(true);
    expect(r.signersPinned).toBe(false);
    const reg = new IdentityRegistry();
    reg.add(alice);
    expect(verifyTza(b, { trust: reg }).valid).toBe(true);
    const reg2 = new IdentityRegistry();
    reg2.add(bob);
    expect(verifyTza(b, { trust: reg2 })).toMatchObject({ valid: false, code: 'SIGNER_UNTRUSTED' });
  });

  it('does not contain the secret in its bytes', () => {
    expect(Buffer.from(pack()).includes(Buffer.from(SECRET))).toBe(false);
  });

  it('rewraps without re-encrypting, and removes recipients', () => {
    const b = pack();
    const r = rewrapTza(b, alice, { add: [carol], remove: ['jis:acme:bob'] }, [alice], {
      clock,
      random: seededRandom('w'),
    });
    expect(openTza(r, carol).entries[1]!.data).toEqual(SECRET);
    expect(() => openTza(r, bob)).toThrow(expect.objectContaining({ code: 'NOT_A_RECIPIENT' }));
    // payload ciphertext unchanged
    expect(readTza(r).stored[1]).toEqual(readTza(b).stored[1]);
    const k = rewrapTza(b, alice, { remove: ['jis:acme:bob'], rekey: true }, [alice], {
      clock,
      random: seededRandom('k'),
    });
    expect(readTza(k).stored[1]).not.toEqual(readTza(b).stored[1]);
    expect(openTza(k, alice).entries[1]!.data).toEqual(SECRET);
  });

  it('co-signs', () => {
    const b = cosignTza(pack(), bob, { clock });
    const i = inspectTza(b);
    expect(i.signers.map((s) => s.signer)).toEqual(['jis:acme:alice', 'jis:acme:bob']);
    expect(verifyTza(b, { requireSigners: ['jis:acme:alice', 'jis:acme:bob'] }).valid).toBe(true);
  });

  it('detects a forged signer key', () => {
    const reg = new IdentityRegistry();
    reg.add(alice);
    const forged = packTza(
      {
        kind: 'file',
        entries: [{ name: 'a', data: utf8('x') }],
        signers: [testIdentity('jis:acme:alice', 'human', { seed: 'other' })],
      },
      { clock, random: seededRandom('f') },
    );
    expect(verifyTza(forged, { trust: reg })).toMatchObject({
      valid: false,
      code: 'SIGNER_UNTRUSTED',
    });
    expect(() => openTza(forged, undefined, { trust: reg })).toThrow(TzaError);
  });

  it('detects every single flipped bit in the signed regions', () => {
    const b = pack();
    let detected = 0;
    for (let i = 0; i < b.length; i += 7) {
      for (const bit of [0, 5]) {
        const c = b.slice();
        c[i]! ^= 1 << bit;
        const r = verifyTza(c);
        if (!r.valid) detected++;
        else throw new Error(`flip at byte ${i} bit ${bit} not detected`);
      }
    }
    expect(detected).toBeGreaterThan(0);
    void mallory;
  });
});
