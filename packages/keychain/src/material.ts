/** Generating material for the types the keychain can create itself. */
import { ed25519 } from '@noble/curves/ed25519.js';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { systemRandom, toBase64, toBase64Url, toHex, utf8, type Random } from '@tibet/core';
import { KeychainError } from './errors.js';
import type { SecretType } from './vocabulary.js';

export interface Generated {
  material: Uint8Array;
  /** Public part, when the type has one (safe to show). */
  publicKey: string | null;
}

const PASSWORD_ALPHABET = 'ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789-_.~!@#%^*+=';

function password(random: Random, length = 28): Uint8Array {
  // rejection sampling: no modulo bias
  const out: string[] = [];
  const n = PASSWORD_ALPHABET.length;
  const limit = 256 - (256 % n);
  while (out.length < length) {
    for (const b of random(length * 2)) {
      if (b < limit && out.length < length) out.push(PASSWORD_ALPHABET[b % n]!);
    }
  }
  return utf8(out.join(''));
}

function sshPublicLine(pub: Uint8Array): string {
  const enc = (b: Uint8Array): Uint8Array => {
    const out = new Uint8Array(4 + b.length);
    new DataView(out.buffer).setUint32(0, b.length);
    out.set(b, 4);
    return out;
  };
  const t = enc(utf8('ssh-ed25519'));
  const k = enc(pub);
  const blob = new Uint8Array(t.length + k.length);
  blob.set(t);
  blob.set(k, t.length);
  return `ssh-ed25519 ${toBase64(blob)}`;
}

export function generateMaterial(type: SecretType, random: Random = systemRandom): Generated {
  switch (type) {
    case 'signing_key': {
      const seed = random(32);
      return { material: seed, publicKey: `ed25519:${toBase64Url(ed25519.getPublicKey(seed))}` };
    }
    case 'ssh_key': {
      const seed = random(32);
      return { material: seed, publicKey: sshPublicLine(ed25519.getPublicKey(seed)) };
    }
    case 'webhook_signer':
      return { material: random(32), publicKey: null };
    case 'smart_contract_signer': {
      for (;;) {
        const sk = random(32);
        if (secp256k1.utils.isValidSecretKey(sk))
          return {
            material: sk,
            publicKey: `secp256k1:${toHex(secp256k1.getPublicKey(sk, true))}`,
          };
      }
    }
    case 'root_password':
      return { material: password(random), publicKey: null };
    default:
      throw new KeychainError(
        'INVALID_SECRET_TYPE',
        `the keychain cannot generate a ${type}; import it instead`,
      );
  }
}
