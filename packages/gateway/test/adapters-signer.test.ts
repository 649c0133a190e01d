import { createHash, createHmac, createPublicKey, verify as nodeVerify } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { seededRandom } from '@tibet/core/testing';
import { generateMaterial } from '@tibet/keychain';
import { SignerAdapter } from '../src/adapters/signer.js';
import { GatewayAdapterError, type AdapterResult } from '../src/adapters/types.js';
import { expectNoSecret, makeCapsule, makeInput } from './support/adapter-fixtures.js';

/**
 * @noble/curves is not a dependency of @tibet/gateway (the adapter signs with node:crypto); the
 * tests load the copy the keychain depends on, so signatures are checked by an independent
 * implementation as well as by OpenSSL.
 */
const NOBLE = join(
  dirname(fileURLToPath(import.meta.url)),
  '../../keychain/node_modules/@noble/curves',
);
interface Curve {
  verify(sig: Uint8Array, msg: Uint8Array, pub: Uint8Array): boolean;
}
const { secp256k1 } = (await import(pathToFileURL(join(NOBLE, 'secp256k1.js')).href)) as {
  secp256k1: Curve;
};
const { ed25519 } = (await import(pathToFileURL(join(NOBLE, 'ed25519.js')).href)) as {
  ed25519: Curve;
};

const N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;
const PAYLOAD = 'release v1.2.3: sha256 of the tarball is 9f86d081884c7d65';

function res(r: AdapterResult): Record<string, string | number> {
  return r.response as Record<string, string | number>;
}

async function refusal(p: Promise<AdapterResult>): Promise<GatewayAdapterError> {
  try {
    await p;
  } catch (e) {
    if (GatewayAdapterError.is(e)) return e;
    throw e;
  }
  throw new Error('expected the adapter to refuse');
}

const sign = makeCapsule('/sign');

describe('signer adapter', () => {
  it('signs with an Ed25519 signing_key; the signature verifies, the seed never appears', async () => {
    const { material, publicKey } = generateMaterial('signing_key', seededRandom('ed'));
    const r = await new SignerAdapter().execute(
      makeInput(sign, material, 'signing_key', { request: { payload: PAYLOAD } }),
    );
    const out = res(r);
    expect(out['algorithm']).toBe('ed25519');
    expect(out['public_key']).toBe(publicKey);
    const pub = Buffer.from(String(out['public_key']).slice('ed25519:'.length), 'base64url');
    const sig = Buffer.from(String(out['signature']), 'base64url');
    const msg = Buffer.from(PAYLOAD, 'utf8');
    expect(sig).toHaveLength(64);
    expect(ed25519.verify(sig, msg, pub)).toBe(true);
    const key = createPublicKey({
      key: { kty: 'OKP', crv: 'Ed25519', x: pub.toString('base64url') },
      format: 'jwk',
    });
    expect(nodeVerify(null, msg, key, sig)).toBe(true);
    expect(out['payload_sha256']).toBe(createHash('sha256').update(msg).digest('hex'));
    expectNoSecret(r, material);
  });

  it('signs a base64 payload as its bytes', async () => {
    const { material } = generateMaterial('signing_key', seededRandom('ed-b64'));
    const bytes = Uint8Array.of(0, 1, 2, 0xff, 0xfe);
    const r = await new SignerAdapter().execute(
      makeInput(sign, material, 'signing_key', {
        request: { payload: { base64: Buffer.from(bytes).toString('base64') } },
      }),
    );
    const pub = Buffer.from(String(res(r)['public_key']).slice(8), 'base64url');
    const sig = Buffer.from(String(res(r)['signature']), 'base64url');
    expect(ed25519.verify(sig, bytes, pub)).toBe(true);
    expect(res(r)['payload_bytes']).toBe(5);
  });

  it('signs a webhook with HMAC-SHA256 in the GitHub header form', async () => {
    const { material } = generateMaterial('webhook_signer', seededRandom('hook'));
    const body = '{"action":"opened","number":7}';
    const r = await new SignerAdapter().execute(
      makeInput(sign, material, 'webhook_signer', { request: { payload: body } }),
    );
    const mac = createHmac('sha256', material).update(body).digest('hex');
    expect(res(r)['signature']).toBe(mac);
    expect(res(r)['header']).toBe(`sha256=${mac}`);
    expect(res(r)['header_name']).toBe('X-Hub-Signature-256');
    expectNoSecret(r, material);
  });

  it('signs with a secp256k1 key: low-S, verifies with noble and OpenSSL', async () => {
    for (const seed of Array.from({ length: 12 }, (_, k) => `k${k}`)) {
      const { material, publicKey } = generateMaterial('smart_contract_signer', seededRandom(seed));
      const r = await new SignerAdapter().execute(
        makeInput(sign, material, 'smart_contract_signer', { request: { payload: PAYLOAD } }),
      );
      const out = res(r);
      expect(out['algorithm']).toBe('ecdsa-secp256k1-sha256');
      expect(out['public_key']).toBe(publicKey); // the keychain computed it with noble
      const pub = Buffer.from(String(out['public_key']).slice('secp256k1:'.length), 'hex');
      const sig = Buffer.from(String(out['signature']), 'hex');
      expect(sig).toHaveLength(64);
      expect(BigInt('0x' + sig.subarray(32).toString('hex')) <= N >> 1n).toBe(true);
      const msg = Buffer.from(PAYLOAD, 'utf8');
      expect(secp256k1.verify(sig, msg, pub)).toBe(true); // noble: SHA-256 prehash, low-S only
      const spki = Buffer.concat([
        Buffer.from('3036301006072a8648ce3d020106052b8104000a032200', 'hex'),
        pub,
      ]);
      const key = createPublicKey({ key: spki, format: 'der', type: 'spki' });
      expect(nodeVerify('sha256', msg, { key, dsaEncoding: 'ieee-p1363' }, sig)).toBe(true);
      expectNoSecret(r, material);
    }
  });

  it('binds the payload with a payload_sha256 constraint', async () => {
    const { material } = generateMaterial('signing_key', seededRandom('bound'));
    const digest = createHash('sha256').update(PAYLOAD).digest('hex');
    const c = makeCapsule('/sign', { constraints: { payload_sha256: digest } });
    const ok = await new SignerAdapter().execute(
      makeInput(c, material, 'signing_key', { request: { payload: PAYLOAD } }),
    );
    expect(res(ok)['payload_sha256']).toBe(digest);
    const e = await refusal(
      new SignerAdapter().execute(
        makeInput(c, material, 'signing_key', { request: { payload: `${PAYLOAD}!` } }),
      ),
    );
    expect(e.verdict).toBe('sam-constraint-mismatch');
  });

  it.each([
    ['an api_key', 'api_key', 'tok_abcdef', PAYLOAD, 'sam-secret-unavailable'],
    ['a short signing_key', 'signing_key', new Uint8Array(31), PAYLOAD, 'sam-secret-unavailable'],
    [
      'a zero secp256k1 scalar',
      'smart_contract_signer',
      new Uint8Array(32),
      PAYLOAD,
      'sam-secret-unavailable',
    ],
    ['no payload', 'webhook_signer', new Uint8Array(32).fill(1), undefined, 'sam-upstream-missing'],
    [
      'a payload of the wrong shape',
      'webhook_signer',
      new Uint8Array(32).fill(1),
      { text: 'x' },
      'sam-upstream-invalid',
    ],
    [
      'bad base64',
      'webhook_signer',
      new Uint8Array(32).fill(1),
      { base64: 'not base64!' },
      'sam-upstream-invalid',
    ],
  ] as const)('refuses %s', async (_what, type, secret, payload, verdict) => {
    const e = await refusal(
      new SignerAdapter().execute(
        makeInput(sign, secret, type, payload === undefined ? {} : { request: { payload } }),
      ),
    );
    expect(e.code).toBe('ADAPTER_REFUSED');
    expect(e.verdict).toBe(verdict);
  });

  it('accepts only /sign', () => {
    const a = new SignerAdapter();
    expect(a.accepts(sign)).toBe(true);
    expect(a.accepts(makeCapsule('/exec'))).toBe(false);
  });
});
