/**
 * Signer adapter (`/sign`): signs the payload with the secret and returns only the signature
 * and, for key pairs, the public key.
 *
 * Payload (the capsule's `upstream_payload` or the request's `payload`): a string, signed as its
 * UTF-8 bytes, or `{ "base64": "<padded base64>" }`, signed as those bytes. A capsule constraint
 * `payload_sha256` (lowercase hex) binds the capsule to exactly one payload.
 *
 * By secret type:
 * - `signing_key` (32-byte Ed25519 seed, RFC 8032): `{algorithm: 'ed25519', signature
 *   (base64url, 64 bytes), public_key: 'ed25519:<base64url>'}` (the keychain's public-key form).
 * - `webhook_signer` (HMAC key): `{algorithm: 'hmac-sha256', signature (hex), header:
 *   'sha256=<hex>', header_name: 'X-Hub-Signature-256'}` — GitHub's webhook form.
 * - `smart_contract_signer` (32-byte secp256k1 scalar): ECDSA over SHA-256(payload), low-S,
 *   `{algorithm: 'ecdsa-secp256k1-sha256', signature: hex of the 64-byte compact r‖s,
 *   public_key: 'secp256k1:<hex, compressed>'}` — what @noble/curves
 *   `secp256k1.sign(payload, key)` produces with its default SHA-256 prehash and low-S rule, so
 *   `secp256k1.verify(sig, payload, pub)` accepts it (the nonce is OpenSSL's, not RFC 6979's, so
 *   the bytes differ while verifying the same). No recovery byte and no keccak-256/EIP-191
 *   message form: signing Ethereum transactions is out of scope, and hashing the payload here
 *   means an agent can never obtain a signature over a digest it chose.
 * - any other type: refused with `sam-secret-unavailable`.
 *
 * Every response also carries `payload_sha256` and `payload_bytes`. Key material never leaves;
 * the DER buffer built to import a secp256k1 key is zeroed. JavaScript cannot zero the copies
 * OpenSSL keeps inside a KeyObject until it is collected.
 */
import { createPrivateKey, createPublicKey, sign as nodeSign, type KeyObject } from 'node:crypto';
import {
  fromBase64,
  getProvider,
  toBase64Url,
  toHex,
  utf8,
  type JsonValue,
  sha256Hex,
} from '@tibet/core';
import {
  aborted,
  bytesText,
  constraint,
  intOption,
  isObject,
  refuse,
  resolvePayload,
} from './common.js';
import { createMasker } from './mask.js';
import type { Adapter, AdapterInput, AdapterResult } from './types.js';
import type { Capsule } from '@tibet/sam';

export interface SignerAdapterOptions {
  /** Largest payload signed (default 1 MiB). */
  maxPayloadBytes?: number;
}

/** secp256k1 group order n. */
const N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;
const HALF_N = N >> 1n;
/** SEC 1 ECPrivateKey DER prefix for secp256k1 (OID 1.3.132.0.10) without the public key. */
const SEC1_HEAD = Uint8Array.of(0x30, 0x2e, 0x02, 0x01, 0x01, 0x04, 0x20);
const SEC1_TAIL = Uint8Array.of(0xa0, 0x07, 0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x0a);

function parsePayload(v: JsonValue | undefined, max: number): Uint8Array {
  let b: Uint8Array;
  if (v === undefined || v === null) {
    throw refuse('sam-upstream-missing', 'there is no payload to sign');
  } else if (typeof v === 'string') {
    b = utf8(v);
  } else if (isObject(v) && Object.keys(v).length === 1 && typeof v['base64'] === 'string') {
    try {
      b = fromBase64(v['base64'], 'base64');
    } catch {
      throw refuse('sam-upstream-invalid', 'the payload\'s "base64" is not padded base64');
    }
  } else {
    throw refuse('sam-upstream-invalid', 'the payload must be a string or {"base64": string}');
  }
  if (b.length > max) throw refuse('sam-upstream-invalid', 'the payload is larger than allowed');
  return b;
}

function bigFrom(b: Uint8Array): bigint {
  return b.length === 0 ? 0n : BigInt('0x' + toHex(b));
}

function bytes32(n: bigint): Uint8Array {
  const out = new Uint8Array(32);
  let v = n;
  for (let k = 31; k >= 0; k--) {
    out[k] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
}

function secp256k1Key(secret: Uint8Array): KeyObject {
  if (secret.length !== 32) {
    throw refuse('sam-secret-unavailable', 'a smart_contract_signer must be a 32-byte scalar');
  }
  const d = bigFrom(secret);
  if (d === 0n || d >= N) {
    throw refuse('sam-secret-unavailable', 'the smart_contract_signer is not a valid scalar');
  }
  const der = new Uint8Array(SEC1_HEAD.length + 32 + SEC1_TAIL.length);
  der.set(SEC1_HEAD);
  der.set(secret, SEC1_HEAD.length);
  der.set(SEC1_TAIL, SEC1_HEAD.length + 32);
  try {
    return createPrivateKey({ key: Buffer.from(der.buffer), format: 'der', type: 'sec1' });
  } catch {
    throw refuse('sam-secret-unavailable', 'the smart_contract_signer could not be loaded');
  } finally {
    der.fill(0);
  }
}

function compressedPublic(key: KeyObject): Uint8Array {
  const spki = createPublicKey(key).export({ format: 'der', type: 'spki' });
  const point = spki.subarray(spki.length - 65);
  if (point[0] !== 0x04) throw new Error('unexpected secp256k1 public key encoding');
  const out = new Uint8Array(33);
  out[0] = (point[64]! & 1) === 0 ? 0x02 : 0x03;
  out.set(point.subarray(1, 33), 1);
  return out;
}

export class SignerAdapter implements Adapter {
  readonly name = 'signer' as const;
  readonly #maxPayload: number;

  constructor(o: SignerAdapterOptions = {}) {
    this.#maxPayload = intOption(o.maxPayloadBytes, 'maxPayloadBytes', 1 << 20);
  }

  accepts(capsule: Capsule): boolean {
    return capsule.target_action === '/sign';
  }

  // eslint-disable-next-line @typescript-eslint/require-await -- the Adapter contract is async
  async execute(i: AdapterInput): Promise<AdapterResult> {
    const { capsule, secret } = i;
    if (i.signal.aborted) throw aborted('the session ended before signing');
    if (!this.accepts(capsule)) {
      throw refuse('sam-target-mismatch', 'the signer adapter does not perform this action');
    }
    const payload = parsePayload(resolvePayload(capsule, i.request), this.#maxPayload);
    const provider = getProvider();
    const digest = sha256Hex(payload, provider);
    const bound = constraint(capsule, 'payload_sha256');
    if (bound !== undefined && bound.toLowerCase() !== digest) {
      throw refuse('sam-constraint-mismatch', 'the payload is not the one the capsule binds');
    }
    let algorithm: string;
    let response: { [key: string]: JsonValue };
    switch (i.secretType) {
      case 'signing_key': {
        if (secret.length !== 32) {
          throw refuse('sam-secret-unavailable', 'a signing_key must be a 32-byte Ed25519 seed');
        }
        const key = provider.ed25519(secret);
        algorithm = 'ed25519';
        response = {
          algorithm,
          signature: toBase64Url(key.sign(payload)),
          public_key: `ed25519:${toBase64Url(key.publicKey)}`,
        };
        break;
      }
      case 'webhook_signer': {
        const mac = toHex(provider.hmacSha256(secret, payload));
        algorithm = 'hmac-sha256';
        response = {
          algorithm,
          signature: mac,
          header: `sha256=${mac}`,
          header_name: 'X-Hub-Signature-256',
        };
        break;
      }
      case 'smart_contract_signer': {
        const key = secp256k1Key(secret);
        const sig = new Uint8Array(nodeSign('sha256', payload, { key, dsaEncoding: 'ieee-p1363' }));
        const s = bigFrom(sig.subarray(32));
        if (s > HALF_N) sig.set(bytes32(N - s), 32);
        algorithm = 'ecdsa-secp256k1-sha256';
        response = {
          algorithm,
          signature: toHex(sig),
          public_key: `secp256k1:${toHex(compressedPublic(key))}`,
        };
        break;
      }
      default:
        throw refuse('sam-secret-unavailable', `the signer cannot sign with a ${i.secretType}`);
    }
    response['payload_sha256'] = digest;
    response['payload_bytes'] = payload.length;
    // defence in depth: a signature or public key that happened to contain a form of the key
    // would be masked (and so unusable) rather than leak it
    let masker;
    try {
      masker = createMasker(secret);
    } catch {
      throw refuse('sam-secret-unavailable', 'the secret cannot be masked safely');
    }
    try {
      return {
        executed_action: `sign ${algorithm} sha256:${digest}`,
        summary: `${algorithm} signature over ${bytesText(
          payload.length,
        )} (sha256 ${digest.slice(0, 16)}…)`,
        response: masker.maskJson(response),
      };
    } finally {
      masker.destroy();
    }
  }
}
