import { describe, expect, it } from 'vitest';
import { fc, test as fcTest } from '@fast-check/vitest';
import { canonicalBytes, utf8, type Identity } from '@tibet/core';
import { fixedClock, seededRandom } from '@tibet/core/testing';
import { cosignTza, packTza, readTbz, writeTbz } from '@tibet/tza';
import {
  CAPSULE_FIELDS,
  READABLE_FIELDS,
  SamError,
  capsuleFromTbz,
  capsuleRequestFromJson,
  capsuleToTbz,
  decodeCapsule,
  encodeCapsule,
  inspectCapsule,
  openCapsule,
  openCapsuleSync,
  parseCapsule,
  sealCapsule,
  type Capsule,
  type SamVerdict,
} from '../src/index.js';
import {
  alice,
  bob,
  bot,
  eve,
  fakeAlice,
  gw,
  makeCapsule,
  makeDirectory,
  mallory,
} from './fixtures/helpers.js';

const directory = makeDirectory();
const opts = { clock: fixedClock('2026-11-28T12:00:00.000Z'), random: seededRandom('bundle') };
const CAPSULE = makeCapsule();
const SEALED = sealCapsule(CAPSULE, alice, opts);

/** A capsule bundle built by hand, to forge what sealCapsule would never make. */
function forge(o: {
  capsule?: Capsule;
  data?: Uint8Array;
  signers?: Identity[];
  meta?: Record<string, unknown>;
  kind?: string;
  name?: string;
}): Uint8Array {
  const c = o.capsule ?? CAPSULE;
  const meta: Record<string, unknown> = { format: 'tibet-sam/1', sealed: false };
  for (const k of READABLE_FIELDS) meta[k] = c[k];
  return packTza(
    {
      kind: o.kind ?? 'capsule',
      meta: { ...meta, ...(o.meta ?? {}) } as never,
      entries: [
        {
          name: o.name ?? 'sam.json',
          data: o.data ?? canonicalBytes(c),
          mediaType: 'application/json',
        },
      ],
      signers: o.signers ?? [alice],
    },
    opts,
  );
}

async function refusal(
  bytes: Uint8Array,
  o: { gateway?: Identity } = {},
): Promise<{ code: string; verdict: SamVerdict | undefined }> {
  try {
    await openCapsule(bytes, { directory, ...o });
  } catch (e) {
    if (!SamError.is(e)) throw e;
    return { code: e.code, verdict: e.verdict };
  }
  throw new Error('expected a refusal');
}

const BAD = { code: 'BUNDLE_INVALID', verdict: 'sam-bundle-invalid' };
const BAD_SIG = { code: 'BUNDLE_INVALID', verdict: 'sam-signature-invalid' };

describe('the tza/1 capsule bundle', () => {
  it('seals deterministically and opens to the same capsule', async () => {
    expect(sealCapsule(CAPSULE, alice, { ...opts, random: seededRandom('bundle') })).toEqual(
      SEALED,
    );
    expect(await openCapsule(SEALED, { directory })).toEqual({ capsule: CAPSULE, format: 'tza' });
    expect(openCapsuleSync(forge({}), { directory }).capsule).toEqual(CAPSULE);
    const seen = inspectCapsule(SEALED, { directory });
    expect(seen).toMatchObject({ verified: true, encrypted: false, capsule: CAPSULE });
    expect(seen.signers).toEqual([
      expect.objectContaining({ signer: alice.id, valid: true, trusted: true }),
    ]);
  });

  it('refuses every flipped bit class: manifest, entry, signature (sam-bundle-invalid / sam-signature-invalid)', async () => {
    const seen = new Set<string>();
    // one flip per 64 bytes over the whole file, plus the first bytes
    for (let i = 0; i < SEALED.length; i += i < 600 ? 1 : 61) {
      const b = SEALED.slice();
      b[i]! ^= 0x01;
      let r: { code: string; verdict: SamVerdict | undefined } | undefined;
      try {
        await openCapsule(b, { directory });
      } catch (e) {
        if (!SamError.is(e)) throw e;
        r = { code: e.code, verdict: e.verdict };
      }
      // a flip in zero padding or a tar field no reader uses still changes a checked byte:
      // every flip must be refused
      expect(r, `flip at ${i}`).toBeDefined();
      expect(r!.code).toBe('BUNDLE_INVALID');
      seen.add(r!.verdict!);
    }
    expect([...seen].sort()).toEqual(['sam-bundle-invalid', 'sam-signature-invalid']);
  });

  it('refuses a truncated bundle and trailing bytes', async () => {
    for (const n of [0, 1, 100, 511, 512, 1024, SEALED.length - 1024, SEALED.length - 1])
      expect(await refusal(SEALED.slice(0, n))).toEqual(BAD);
    const longer = new Uint8Array(SEALED.length + 512);
    longer.set(SEALED);
    expect(await refusal(longer)).toEqual(BAD);
  });

  it('refuses a wrong signer, an unregistered signer, an impostor key, two signers', async () => {
    // mallory (registered) signs a capsule naming alice as issuer
    expect(await refusal(forge({ signers: [mallory] }))).toEqual(BAD_SIG);
    // eve is in no directory and issues in her own name
    const evesCapsule = makeCapsule({ issuer_id: eve.id });
    expect(await refusal(forge({ capsule: evesCapsule, signers: [eve] }))).toEqual(BAD_SIG);
    expect(await refusal(sealCapsule(evesCapsule, eve, opts))).toEqual(BAD_SIG);
    // a key that claims alice's id but is not hers
    expect(await refusal(sealCapsule(CAPSULE, fakeAlice, opts))).toEqual(BAD_SIG);
    // a second (valid, registered) signature
    const both = cosignTza(SEALED, bob, opts);
    expect(await refusal(both)).toEqual(BAD_SIG);
    const i = inspectCapsule(both, { directory });
    expect(i.verified).toBe(false);
    expect(i.error?.verdict).toBe('sam-signature-invalid');
  });

  it('refuses a bundle whose readable fields, kind, entry or JSON are wrong', async () => {
    expect(await refusal(forge({ meta: { actor_id: mallory.id } }))).toEqual(BAD);
    expect(await refusal(forge({ meta: { extra: 1 } }))).toEqual(BAD);
    expect(await refusal(forge({ meta: { format: 'tibet-sam/2' } }))).toEqual(BAD);
    expect(await refusal(forge({ kind: 'receipt' }))).toEqual(BAD);
    expect(await refusal(forge({ name: 'capsule.json' }))).toEqual(BAD);
    expect(await refusal(forge({ meta: { gateway_id: gw.id } }))).toEqual(BAD);
    const extraField = { ...CAPSULE, admin: true } as unknown as Capsule;
    expect(await refusal(forge({ data: canonicalBytes(extraField) }))).toEqual(BAD);
    expect(await refusal(forge({ data: utf8(JSON.stringify(CAPSULE, null, 1)) }))).toEqual(BAD);
    expect(await refusal(forge({ data: Uint8Array.of(0xff, 0xfe) }))).toEqual(BAD);
    expect(await refusal(utf8('{"sam_id":"sam_0123456789ab"}'))).toEqual(BAD);
  });

  it('encrypted: only the gateway named in the capsule opens it', async () => {
    const c = makeCapsule({ gateway_id: gw.id });
    const bytes = sealCapsule(c, alice, { ...opts, gateway: gw.public });
    expect((await openCapsule(bytes, { directory, gateway: gw })).capsule).toEqual(c);
    expect(await refusal(bytes)).toEqual({
      code: 'NOT_A_RECIPIENT',
      verdict: 'sam-bundle-invalid',
    });
    expect(() => sealCapsule(c, alice, opts)).toThrow(TypeError);
    expect(() => sealCapsule(CAPSULE, alice, { ...opts, gateway: gw.public })).toThrow(RangeError);
    expect(() => sealCapsule(c, alice, { ...opts, gateway: bob.public })).toThrow(RangeError);
    expect(() => sealCapsule(CAPSULE, bob, opts)).toThrow(RangeError);
    // flipped ciphertext
    const b = bytes.slice();
    b[1024 + 40]! ^= 1;
    expect((await refusal(b, { gateway: gw })).code).toBe('BUNDLE_INVALID');
  });
});

describe('the TBZ form', () => {
  const TPID = '0f8fad5b-d9cb-469f-a165-70867728950e';
  const TBZ = capsuleToTbz(CAPSULE, alice, { tpid: TPID });

  it('round-trips, deterministically, and openCapsule tells it apart by its first bytes', async () => {
    expect(capsuleToTbz(CAPSULE, alice, { tpid: TPID })).toEqual(TBZ);
    expect(Buffer.from(TBZ.subarray(0, 4)).toString('latin1')).toBe('TBZ\x01');
    const m = readTbz(TBZ).manifest;
    expect(m).toMatchObject({
      payload_type: 'sam_capsule',
      sender_aint: alice.id,
      receiver_aint: '*',
      created_at: '2026-11-28T12:00:00Z',
    });
    expect(readTbz(TBZ).blocks.map((b) => b.name)).toEqual(['sam.json']);
    expect(capsuleFromTbz(TBZ, { directory })).toEqual(CAPSULE);
    expect(await openCapsule(TBZ, { directory })).toEqual({ capsule: CAPSULE, format: 'tbz' });
    const withReceiver = capsuleToTbz(CAPSULE, alice, { tpid: TPID, receiver: gw.public });
    expect(readTbz(withReceiver).manifest.receiver_aint).toBe(gw.id);
    expect(inspectCapsule(TBZ, { directory })).toMatchObject({ format: 'tbz', verified: true });
  });

  it('pins the self-declared sender against the directory (forged sender → sam-signature-invalid)', async () => {
    // mallory's valid TBZ that claims to come from alice
    const forged = writeTbz(
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
    );
    expect(await refusal(forged)).toEqual(BAD_SIG);
    expect(inspectCapsule(forged, { directory })).toMatchObject({
      verified: false,
      error: { verdict: 'sam-signature-invalid' },
    });
    // a sender label that is not the capsule's issuer
    const relabeled = writeTbz(
      {
        senderAint: mallory.id,
        receiverAint: '*',
        receiverPubkey: new Uint8Array(32),
        payloadType: 'sam_capsule',
        blocks: [{ name: 'sam.json', content: encodeCapsule(CAPSULE) }],
        tpid: TPID,
      },
      mallory.signer,
    );
    expect(await refusal(relabeled)).toEqual(BAD_SIG);
    // an issuer that no directory knows
    const eves = capsuleToTbz(makeCapsule({ issuer_id: eve.id }), eve, { tpid: TPID });
    expect(await refusal(eves)).toEqual(BAD_SIG);
  });

  it('refuses tampering, truncation, another payload type, extra blocks', async () => {
    for (let i = 0; i < TBZ.length; i += 7) {
      const b = TBZ.slice();
      b[i]! ^= 0x04;
      expect((await refusal(b)).code, `flip at ${i}`).toBe('BUNDLE_INVALID');
    }
    for (const n of [0, 3, 4, 11, 100, TBZ.length - 1])
      expect(await refusal(TBZ.slice(0, n))).toEqual(n < 4 ? BAD : BAD);
    const other = writeTbz(
      {
        senderAint: alice.id,
        receiverAint: '*',
        receiverPubkey: new Uint8Array(32),
        payloadType: 'file',
        blocks: [{ name: 'sam.json', content: encodeCapsule(CAPSULE) }],
        tpid: TPID,
      },
      alice.signer,
    );
    expect(await refusal(other)).toEqual(BAD);
    const two = writeTbz(
      {
        senderAint: alice.id,
        receiverAint: '*',
        receiverPubkey: new Uint8Array(32),
        payloadType: 'sam_capsule',
        blocks: [
          { name: 'sam.json', content: encodeCapsule(CAPSULE) },
          { name: 'x', content: new Uint8Array(1) },
        ],
        tpid: TPID,
      },
      alice.signer,
    );
    expect(await refusal(two)).toEqual(BAD);
  });

  it('refuses to put an encrypted-to-gateway capsule in plaintext unless told', () => {
    const c = makeCapsule({ gateway_id: gw.id });
    expect(() => capsuleToTbz(c, alice)).toThrow(RangeError);
    expect(capsuleFromTbz(capsuleToTbz(c, alice, { allowPlaintext: true }), { directory })).toEqual(
      c,
    );
    expect(() => capsuleToTbz(CAPSULE, bob)).toThrow(RangeError);
  });
});

// ------------------------------------------------------------------ codec

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;
const hex12 = fc.stringMatching(/^[0-9a-f]{12}$/);
const safeText = (max: number) =>
  fc
    .string({ minLength: 1, maxLength: max, unit: 'grapheme' })
    .filter((s) => s.trim().length > 0 && !CONTROL.test(s));
const actor = fc
  .tuple(fc.stringMatching(/^[a-z][a-z0-9]{0,8}$/), fc.stringMatching(/^[a-z][a-z0-9-]{0,8}$/))
  .map(([o, n]) => `jis:${o}:${n}`);
// JSON has no -0: a payload is what JSON can carry
const json: fc.Arbitrary<unknown> = fc
  .jsonValue({ maxDepth: 3 })
  .map((v) => JSON.parse(JSON.stringify(v) ?? 'null') as unknown);
const time = fc
  .integer({ min: Date.parse('2020-01-01T00:00:00Z'), max: Date.parse('2040-01-01T00:00:00Z') })
  .map((t) => new Date(t));

const capsuleArb: fc.Arbitrary<Capsule> = fc
  .record({
    id: hex12,
    eph: hex12,
    sup: fc.option(hex12, { nil: null }),
    intent: safeText(200),
    secret: fc.stringMatching(/^[a-z][a-z0-9_.-]{2,20}$/),
    version: fc.integer({ min: 1, max: 1000 }),
    target: fc.stringMatching(/^(\/[a-z0-9_~-]{1,8}){1,4}$/),
    actor,
    issuer: actor,
    at: time,
    ttl: fc.integer({ min: 1, max: 86_400 }),
    lane: fc.option(fc.constantFrom('publish', 'proxy-egress', 'ci'), { nil: null }),
    receipt: fc.boolean(),
    url: fc.option(fc.constantFrom('https://api.example.com/v1', 'http://[::1]:8080/x?q=1'), {
      nil: null,
    }),
    method: fc.option(fc.constantFrom('GET', 'POST', 'PUT'), { nil: null }),
    payload: json,
    constraints: fc.uniqueArray(
      fc.record({ key: fc.stringMatching(/^[a-z][a-z0-9_.-]{0,10}$/), value: safeText(40) }),
      { maxLength: 5, selector: (c) => c.key },
    ),
    notes: fc.array(safeText(40), { maxLength: 3 }),
    action: fc.stringMatching(/^[0-9a-f]{16}$/),
    gen: fc.integer({ min: 1, max: 2 ** 40 }),
    gw: fc.option(actor, { nil: null }),
  })
  .map((r) => ({
    sam_id: `sam_${r.id}`,
    intent: r.intent,
    secret_id: r.secret,
    secret_version: r.version,
    target_action: r.target,
    actor_id: r.actor,
    issuer_id: r.issuer,
    issued_at: r.at.toISOString(),
    valid_until: new Date(r.at.getTime() + r.ttl * 1000).toISOString(),
    ephemeral_id: `eph_${r.eph}`,
    policy_lane: r.lane,
    receipt_required: r.receipt,
    supersedes_sam_id: r.sup === null || r.sup === r.id ? null : `sam_${r.sup}`,
    upstream_url: r.url,
    upstream_method: r.method,
    upstream_payload: (r.payload ?? null) as Capsule['upstream_payload'],
    constraints: r.constraints,
    notes: r.notes,
    action_id: `act_${r.action}`,
    generation: r.gen,
    gateway_id: r.gw,
  }));

describe('the capsule codec', () => {
  fcTest.prop([capsuleArb], { numRuns: 300 })(
    'decode(encode(c)) = c, encode(decode(b)) = b',
    (c) => {
      const b = encodeCapsule(c);
      const d = decodeCapsule(b);
      expect(d).toEqual(c);
      expect(encodeCapsule(d)).toEqual(b);
    },
  );

  fcTest.prop([capsuleArb, fc.constantFrom(...CAPSULE_FIELDS)], { numRuns: 100 })(
    'a missing field or an unknown one fails closed',
    (c, k) => {
      const missing: Record<string, unknown> = { ...c };
      delete missing[k];
      expect(() => parseCapsule(missing)).toThrow(SamError);
      expect(() => decodeCapsule(canonicalBytes({ ...c, [`${k}_x`]: 1 }))).toThrow(/unknown field/);
    },
  );

  it('enforces the bounds', () => {
    const bad: Partial<Capsule>[] = [
      { sam_id: 'sam_0123456789AB' },
      { ephemeral_id: 'eph_0123' },
      { intent: 'x'.repeat(1025) },
      { intent: 'a\u0000b' },
      { secret_version: 0 },
      { secret_version: 1.5 },
      { target_action: 'upload' },
      { target_action: '/a/../b' },
      { issued_at: '2026-11-28T12:00:00+01:00' },
      { constraints: Array.from({ length: 33 }, (_, i) => ({ key: `k${i}`, value: 'v' })) },
      { constraints: [{ key: 'a', value: '' }] },
      {
        constraints: [
          { key: 'a', value: '1' },
          { key: 'a', value: '2' },
        ],
      },
      { notes: Array.from({ length: 17 }, () => 'n') },
      { upstream_url: 'ftp://example.com/' },
      { upstream_url: 'https://example.com/' + 'a'.repeat(2048) },
      { upstream_method: 'post' },
      { upstream_payload: { big: 'x'.repeat(70_000) } },
      { action_id: 'act_123' },
      { generation: 0 },
      { gateway_id: 'gateway' },
      { supersedes_sam_id: 'sam_0123456789ab' },
    ];
    for (const over of bad)
      expect(() => parseCapsule(makeCapsule(over)), JSON.stringify(over).slice(0, 60)).toThrow(
        SamError,
      );
  });

  it('capsuleRequestFromJson takes an untrusted JSON body strictly', () => {
    const ok = {
      secret_id: 'sec_npm_001',
      actor_id: bot.id,
      target_action: '/upload/npm',
      intent: 'publish',
      constraints: [{ key: 'registry', value: 'registry.npmjs.org' }],
      policy_lane: 'publish',
      ttl_seconds: 60,
    };
    expect(capsuleRequestFromJson(JSON.parse(JSON.stringify(ok)))).toEqual(ok);
    for (const bad of [
      null,
      [],
      'x',
      { ...ok, sam_id: 'sam_0123456789ab' },
      { ...ok, intent: undefined },
      { ...ok, ttl_seconds: '60' },
      { ...ok, ttl_seconds: 86_401 },
      { ...ok, receipt_required: 'yes' },
      { ...ok, constraints: [{ key: 'a', value: 'b', c: 1 }] },
      JSON.parse('{"__proto__":{"x":1},"secret_id":"sec_npm_001"}') as unknown,
    ])
      expect(() => capsuleRequestFromJson(bad)).toThrow(
        expect.objectContaining({ code: 'INVALID_REQUEST' }) as Error,
      );
  });
});
