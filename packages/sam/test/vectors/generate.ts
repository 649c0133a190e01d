/**
 * Builds the golden capsule vectors in this folder from fixed inputs: identities from
 * `@tibet/core/testing` `testIdentity` (seeded), a fixed clock, `seededRandom` per file.
 * `SAM_WRITE_VECTORS=1 npx vitest run packages/sam/test/vectors.test.ts` rewrites them;
 * the test otherwise checks that the committed bytes are reproduced exactly.
 */
import { canonicalBytes, type PublicIdentity } from '@tibet/core';
import { fixedClock, seededRandom, testIdentity } from '@tibet/core/testing';
import { packTza, writeTbz } from '@tibet/tza';
import {
  READABLE_FIELDS,
  capsuleToTbz,
  encodeCapsule,
  sealCapsule,
  type Capsule,
  type SamErrorCode,
  type SamVerdict,
} from '../../src/index.js';

export const alice = testIdentity('jis:acme:alice', 'human');
export const mallory = testIdentity('jis:acme:mallory', 'human');
export const bot = testIdentity('jis:acme:release-bot', 'mcp-server');
export const gw = testIdentity('jis:acme:gateway', 'gateway');
/** Not in identities.json. */
export const eve = testIdentity('jis:acme:eve', 'human');

export const CLOCK = fixedClock('2026-11-28T12:00:00.000Z');
export const TPID = '5a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d';

export const CAPSULE: Capsule = {
  sam_id: 'sam_5a3c0ffee001',
  intent: 'publish acme-lib 1.2.0 to npm — release approved in review #42',
  secret_id: 'sec_npm_001',
  secret_version: 1,
  target_action: '/upload/npm',
  actor_id: 'jis:acme:release-bot',
  issuer_id: 'jis:acme:alice',
  issued_at: '2026-11-28T12:00:00.000Z',
  valid_until: '2026-11-28T12:05:00.000Z',
  ephemeral_id: 'eph_0ddba11c0de1',
  policy_lane: 'publish',
  receipt_required: true,
  supersedes_sam_id: null,
  upstream_url: null,
  upstream_method: null,
  upstream_payload: null,
  constraints: [
    { key: 'package', value: 'acme-lib' },
    { key: 'registry', value: 'registry.npmjs.org' },
  ],
  notes: ['vector: valid-plain'],
  action_id: 'act_0123456789abcdef',
  generation: 4,
  gateway_id: null,
};

export interface VectorEntry {
  file: string;
  description: string;
  expect: 'success' | 'failure';
  /** Open with the gateway identity (testIdentity('jis:acme:gateway', 'gateway')). */
  as_gateway?: boolean;
  format?: 'tza' | 'tbz';
  /** For successes: the capsule file it must decode to. */
  capsule?: string;
  code?: SamErrorCode;
  verdict?: SamVerdict;
  /** The code of the underlying error (`cause`): a TzaError or SamError code. */
  cause?: string;
}

function forged(c: Capsule, data: Uint8Array, signer: typeof alice, seed: string): Uint8Array {
  const meta: Record<string, unknown> = { format: 'tibet-sam/1', sealed: false };
  for (const k of READABLE_FIELDS) meta[k] = c[k];
  return packTza(
    {
      kind: 'capsule',
      meta: meta as never,
      entries: [{ name: 'sam.json', data, mediaType: 'application/json' }],
      signers: [signer],
    },
    { clock: CLOCK, random: seededRandom(seed) },
  );
}

export function buildVectors(): { files: Map<string, Uint8Array>; index: VectorEntry[] } {
  const files = new Map<string, Uint8Array>();
  const index: VectorEntry[] = [];
  const encrypted: Capsule = { ...CAPSULE, gateway_id: gw.id, notes: ['vector: valid-encrypted'] };
  files.set('capsule.json', encodeCapsule(CAPSULE));
  files.set('capsule-encrypted.json', encodeCapsule(encrypted));
  files.set(
    'identities.json',
    canonicalBytes([alice.public, mallory.public, bot.public, gw.public] satisfies PublicIdentity[]),
  );
  const plain = sealCapsule(CAPSULE, alice, { clock: CLOCK, random: seededRandom('valid-plain') });
  files.set('valid-plain.tza', plain);
  index.push({
    file: 'valid-plain.tza',
    description: 'capsule.json sealed in tza/1, plain entry, signed by alice',
    expect: 'success',
    format: 'tza',
    capsule: 'capsule.json',
  });
  files.set(
    'valid-encrypted.tza',
    sealCapsule(encrypted, alice, {
      gateway: gw.public,
      clock: CLOCK,
      random: seededRandom('valid-encrypted'),
    }),
  );
  index.push({
    file: 'valid-encrypted.tza',
    description: 'capsule-encrypted.json encrypted to jis:acme:gateway (HPKE), signed by alice',
    expect: 'success',
    as_gateway: true,
    format: 'tza',
    capsule: 'capsule-encrypted.json',
  });
  index.push({
    file: 'valid-encrypted.tza',
    description: 'the encrypted capsule opened without the gateway identity',
    expect: 'failure',
    code: 'NOT_A_RECIPIENT',
    verdict: 'sam-bundle-invalid',
  });
  const tbz = capsuleToTbz(CAPSULE, alice, { tpid: TPID });
  files.set('valid.tbz', tbz);
  index.push({
    file: 'valid.tbz',
    description: 'capsule.json in the family TBZ form (payload_type sam_capsule, block sam.json)',
    expect: 'success',
    format: 'tbz',
    capsule: 'capsule.json',
  });

  // failures
  const flip = plain.slice();
  flip[2048 + 10]! ^= 0x01; // inside sam.json (its data starts at 2048 in this bundle)
  files.set('fail-bitflip.tza', flip);
  index.push({
    file: 'fail-bitflip.tza',
    description: 'valid-plain.tza with one bit of sam.json flipped (DIGEST_MISMATCH)',
    expect: 'failure',
    code: 'BUNDLE_INVALID',
    verdict: 'sam-bundle-invalid',
    cause: 'DIGEST_MISMATCH',
  });
  files.set('fail-truncated.tza', plain.slice(0, plain.length - 1024));
  index.push({
    file: 'fail-truncated.tza',
    description: 'valid-plain.tza without its last 1024 bytes (TAR_TRUNCATED)',
    expect: 'failure',
    code: 'BUNDLE_INVALID',
    verdict: 'sam-bundle-invalid',
    cause: 'TAR_TRUNCATED',
  });
  files.set('fail-wrong-signer.tza', forged(CAPSULE, encodeCapsule(CAPSULE), mallory, 'ws'));
  index.push({
    file: 'fail-wrong-signer.tza',
    description: 'capsule.json naming alice as issuer, signed by mallory (registered)',
    expect: 'failure',
    code: 'BUNDLE_INVALID',
    verdict: 'sam-signature-invalid',
    cause: 'SIGNER_UNTRUSTED',
  });
  const eves: Capsule = { ...CAPSULE, issuer_id: eve.id };
  files.set('fail-unknown-signer.tza', sealCapsule(eves, eve, { clock: CLOCK, random: seededRandom('us') }));
  index.push({
    file: 'fail-unknown-signer.tza',
    description: 'a well-formed capsule issued and signed by jis:acme:eve, who is not in the directory',
    expect: 'failure',
    code: 'BUNDLE_INVALID',
    verdict: 'sam-signature-invalid',
    cause: 'SIGNER_UNTRUSTED',
  });
  files.set(
    'fail-unknown-field.tza',
    forged(CAPSULE, canonicalBytes({ ...CAPSULE, admin: true }), alice, 'uf'),
  );
  index.push({
    file: 'fail-unknown-field.tza',
    description: 'sam.json with an extra field "admin", correctly signed by alice',
    expect: 'failure',
    code: 'BUNDLE_INVALID',
    verdict: 'sam-bundle-invalid',
    cause: 'INVALID_CAPSULE',
  });
  files.set(
    'fail-forged-sender.tbz',
    writeTbz(
      {
        senderAint: alice.id,
        receiverAint: '*',
        receiverPubkey: new Uint8Array(32),
        payloadType: 'sam_capsule',
        blocks: [{ name: 'sam.json', content: encodeCapsule(CAPSULE) }],
        tpid: TPID,
        createdAt: '2026-11-28T12:00:00Z',
      },
      mallory.signer,
    ),
  );
  index.push({
    file: 'fail-forged-sender.tbz',
    description: 'TBZ claiming sender alice, validly signed with mallory’s key (SIGNER_UNTRUSTED)',
    expect: 'failure',
    code: 'BUNDLE_INVALID',
    verdict: 'sam-signature-invalid',
    cause: 'SIGNER_UNTRUSTED',
  });
  const tflip = tbz.slice();
  tflip[tflip.length - 5]! ^= 0x01;
  files.set('fail-bitflip.tbz', tflip);
  index.push({
    file: 'fail-bitflip.tbz',
    description: 'valid.tbz with one bit of sam.json flipped (TBZ_DIGEST_MISMATCH)',
    expect: 'failure',
    code: 'BUNDLE_INVALID',
    verdict: 'sam-bundle-invalid',
    cause: 'TBZ_DIGEST_MISMATCH',
  });
  files.set('index.json', new TextEncoder().encode(JSON.stringify(index, null, 2) + '\n'));
  return { files, index };
}
