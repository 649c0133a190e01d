/**
 * Sealing and opening capsules: the `tza/1` form (signed by the issuer, optionally encrypted
 * to one gateway) and the family's TBZ form. Nothing unverified leaves this module
 * (docs/sam.md §3, §4, §7).
 */
import {
  type IdentityRegistry,
  fromBase64Url,
  getProvider,
  parsePublicIdentity,
  systemClock,
  systemRandom,
  toHex,
  type Clock,
  type CryptoProvider,
  type Identity,
  type PublicIdentity,
  type Random,
} from '@tibet/core';
import {
  TzaError,
  detectFormat,
  openTza,
  packTza,
  readTbz,
  readTza,
  verifyTbz,
  verifyTza,
  writeTbz,
  type ParsedTza,
  type SignerReport,
  type TbzLimits,
  type TzaErrorCode,
  type TzaLimits,
  type TzaMeta,
} from '@tibet/tza';
import {
  CAPSULE_LIMITS,
  decodeCapsule,
  encodeCapsule,
  parseCapsule,
  type Capsule,
  type SamVerdict,
} from './capsule.js';
import { SamError } from './errors.js';

/** `kind` of a capsule bundle. */
export const CAPSULE_KIND = 'capsule';
/** `meta.format` of a capsule bundle. */
export const CAPSULE_FORMAT = 'tibet-sam/1';
/** The one entry of a capsule bundle, and the one block of its TBZ form. */
export const CAPSULE_ENTRY = 'sam.json';
/** TBZ `payload_type` of a capsule. */
export const TBZ_PAYLOAD_TYPE = 'sam_capsule';

/** Capsule fields copied into the readable, signed `meta` of the bundle (docs/sam.md §3.2). */
export const READABLE_FIELDS = [
  'sam_id',
  'ephemeral_id',
  'secret_id',
  'secret_version',
  'target_action',
  'actor_id',
  'issuer_id',
  'issued_at',
  'valid_until',
  'policy_lane',
  'receipt_required',
  'action_id',
  'generation',
  'gateway_id',
] as const satisfies readonly (keyof Capsule)[];

export type ReadableCapsule = Pick<Capsule, (typeof READABLE_FIELDS)[number]>;

/** Tight limits for a capsule bundle: one small entry, one signature, at most one recipient. */
const TZA_LIMITS: Partial<TzaLimits> = {
  maxEntries: 3,
  maxEntrySize: 2 * CAPSULE_LIMITS.capsuleBytes,
  maxTotalSize: 4 * CAPSULE_LIMITS.capsuleBytes,
  maxManifestSize: 16384,
  maxSignatures: 4,
  maxRecipients: 1,
};
const TBZ_LIMITS: Partial<TbzLimits> = {
  maxBlocks: 1,
  maxBlockBytes: CAPSULE_LIMITS.capsuleBytes,
  maxManifestBytes: 16384,
  maxTotalBytes: 2 * CAPSULE_LIMITS.capsuleBytes,
};

const SIGNATURE_CODES: readonly TzaErrorCode[] = [
  'SIGNATURE_INVALID',
  'SIGNATURE_MISSING',
  'SIGNER_UNTRUSTED',
  'TBZ_SIGNATURE_INVALID',
];

function invalid(message: string, verdict: SamVerdict = 'sam-bundle-invalid', cause?: unknown) {
  return new SamError('BUNDLE_INVALID', message, {
    verdict,
    ...(cause === undefined ? {} : { cause }),
  });
}

/** A TzaError (or anything else thrown by a reader) as BUNDLE_INVALID with the right verdict. */
function wrap(e: unknown, what: string): SamError {
  if (SamError.is(e)) {
    if (e.code === 'INVALID_CAPSULE')
      return invalid(`${what}: ${e.message}`, 'sam-bundle-invalid', e);
    return e;
  }
  if (TzaError.is(e)) {
    const verdict: SamVerdict = SIGNATURE_CODES.includes(e.code)
      ? 'sam-signature-invalid'
      : 'sam-bundle-invalid';
    return invalid(`${what}: ${e.message} [${e.code}]`, verdict, e);
  }
  if (e instanceof TypeError || e instanceof RangeError) throw e;
  return invalid(`${what}: ${e instanceof Error ? e.message : String(e)}`, 'sam-bundle-invalid', e);
}

function readableOf(c: Capsule): ReadableCapsule {
  const out: Record<string, unknown> = {};
  for (const k of READABLE_FIELDS) out[k] = c[k];
  return out as ReadableCapsule;
}

export interface SealOptions {
  /** Encrypt `sam.json` to this gateway (HPKE); the capsule's `gateway_id` must name it. */
  gateway?: PublicIdentity;
  clock?: Clock;
  random?: Random;
  provider?: CryptoProvider;
}

/**
 * Seal a capsule as a `tza/1` bundle of kind `capsule`: `meta` holds the readable fields
 * ({@link READABLE_FIELDS}) plus `format` and `sealed`; the one entry `sam.json` is the
 * RFC 8785 JSON of the whole capsule — plain, or encrypted to `gateway` when the capsule
 * names one. Signed (COSE_Sign1) by `issuer`, who must be `capsule.issuer_id`.
 */
export function sealCapsule(capsule: Capsule, issuer: Identity, o: SealOptions = {}): Uint8Array {
  const c = parseCapsule(capsule);
  if (typeof issuer !== 'object' || issuer === null || typeof issuer.sign !== 'function')
    throw new TypeError('"issuer" expected an Identity');
  if (issuer.id !== c.issuer_id)
    throw new RangeError(`"issuer" is ${issuer.id}, the capsule names ${c.issuer_id}`);
  let recipients: { id: string; encryptionKey: Uint8Array }[] = [];
  if (c.gateway_id !== null) {
    if (!o.gateway)
      throw new TypeError(`the capsule is for gateway ${c.gateway_id}: pass its public identity`);
    const gw = parsePublicIdentity(o.gateway, o.provider);
    if (gw.id !== c.gateway_id)
      throw new RangeError(`"gateway" is ${gw.id}, the capsule names ${c.gateway_id}`);
    recipients = [{ id: gw.id, encryptionKey: gw.encryptionKey }];
  } else if (o.gateway) {
    throw new RangeError('"gateway" given but the capsule has no gateway_id');
  }
  const sealed = recipients.length > 0;
  const meta: TzaMeta = { format: CAPSULE_FORMAT, sealed, ...readableOf(c) };
  return packTza(
    {
      kind: CAPSULE_KIND,
      meta,
      entries: [
        { name: CAPSULE_ENTRY, data: encodeCapsule(c), mediaType: 'application/json', sealed },
      ],
      recipients,
      signers: [issuer],
    },
    {
      clock: o.clock ?? systemClock,
      random: o.random ?? systemRandom,
      ...(o.provider ? { provider: o.provider } : {}),
    },
  );
}

// ------------------------------------------------------------------ reading tza/1

/** Check the readable metadata of a capsule bundle and return it. */
function readMeta(parsed: ParsedTza): ReadableCapsule & { sealed: boolean } {
  const m = parsed.manifest;
  if (m.kind !== CAPSULE_KIND) throw invalid(`bundle kind is ${m.kind}, not ${CAPSULE_KIND}`);
  const meta = m.meta as Record<string, unknown>;
  const want = ['format', 'sealed', ...READABLE_FIELDS];
  const keys = Object.keys(meta);
  const extra = keys.filter((k) => !want.includes(k));
  const missing = want.filter((k) => !keys.includes(k));
  if (extra.length || missing.length)
    throw invalid(
      `capsule metadata: ${[...extra.map((k) => `unknown field "${k}"`), ...missing.map((k) => `${k} missing`)].join('; ')}`,
    );
  if (meta['format'] !== CAPSULE_FORMAT)
    throw invalid(`capsule metadata: format is not ${CAPSULE_FORMAT}`);
  if (typeof meta['sealed'] !== 'boolean') throw invalid('capsule metadata: sealed not a boolean');
  if (m.entries.length !== 1 || m.entries[0]!.name !== CAPSULE_ENTRY)
    throw invalid(`a capsule bundle holds exactly one entry, ${CAPSULE_ENTRY}`);
  const e = m.entries[0]!;
  if (e.media_type !== 'application/json')
    throw invalid(`${CAPSULE_ENTRY} is not application/json`);
  if (e.sealed !== meta['sealed'])
    throw invalid('capsule metadata: sealed disagrees with the entry');
  const gw = meta['gateway_id'];
  if (e.sealed) {
    if (m.recipients.length !== 1 || m.recipients[0]!.id !== gw)
      throw invalid('an encrypted capsule has exactly one recipient, its gateway_id');
  } else if (gw !== null) {
    throw invalid('a capsule with a gateway_id must be encrypted to it');
  }
  if (typeof meta['issuer_id'] !== 'string') throw invalid('capsule metadata: issuer_id missing');
  return meta as unknown as ReadableCapsule & { sealed: boolean };
}

/** The one signature must be the issuer's, valid, and pinned by the directory. */
function checkSigners(signers: readonly SignerReport[], issuer: string): void {
  if (signers.length !== 1)
    throw invalid(
      `a capsule carries exactly one signature (the issuer's), found ${signers.length}`,
      'sam-signature-invalid',
    );
  const s = signers[0]!;
  if (s.signer !== issuer)
    throw invalid(`signed by ${s.signer}, the issuer is ${issuer}`, 'sam-signature-invalid');
  if (!s.valid)
    throw invalid(`the signature of ${s.signer} does not verify`, 'sam-signature-invalid');
  if (s.trusted !== true)
    throw invalid(
      `the key ${s.kid} of ${s.signer} is not in the directory`,
      'sam-signature-invalid',
    );
}

function sameReadable(meta: ReadableCapsule, c: Capsule): string | undefined {
  for (const k of READABLE_FIELDS) if (meta[k] !== c[k]) return k;
  return undefined;
}

export interface OpenOptions {
  /** Whose public keys pin the issuer (the issuer's signing key must be registered here). */
  directory: IdentityRegistry;
  /** Opens an encrypted capsule (must be its gateway_id recipient). */
  gateway?: Identity;
  provider?: CryptoProvider;
}

export interface OpenedCapsule {
  capsule: Capsule;
  format: 'tza' | 'tbz';
}

function requireDirectory(o: { directory?: unknown } | undefined): IdentityRegistry {
  const d = o?.directory;
  if (
    typeof d !== 'object' ||
    d === null ||
    typeof (d as IdentityRegistry).signingKey !== 'function' ||
    typeof (d as IdentityRegistry).get !== 'function'
  )
    throw new TypeError('"directory" expected an IdentityRegistry');
  return d as IdentityRegistry;
}

function openTzaCapsule(bytes: Uint8Array, o: OpenOptions, directory: IdentityRegistry): Capsule {
  const provider = o.provider ?? getProvider();
  let parsed: ParsedTza;
  try {
    parsed = readTza(bytes, { limits: TZA_LIMITS, provider });
  } catch (e) {
    throw wrap(e, 'capsule bundle');
  }
  const meta = readMeta(parsed);
  if (meta.sealed) {
    if (!o.gateway)
      throw new SamError(
        'NOT_A_RECIPIENT',
        `the capsule is encrypted to ${String(meta.gateway_id)}: its identity is needed to open it`,
        { verdict: 'sam-bundle-invalid' },
      );
    if (o.gateway.id !== meta.gateway_id)
      throw new SamError(
        'NOT_A_RECIPIENT',
        `the capsule is encrypted to ${String(meta.gateway_id)}, not to ${o.gateway.id}`,
        { verdict: 'sam-bundle-invalid' },
      );
  }
  let opened: ReturnType<typeof openTza>;
  try {
    opened = openTza(bytes, meta.sealed ? o.gateway : undefined, {
      trust: directory,
      requireSigners: [meta.issuer_id],
      limits: TZA_LIMITS,
      provider,
    });
  } catch (e) {
    throw wrap(e, 'capsule bundle');
  }
  try {
    checkSigners(opened.report.signers, meta.issuer_id);
    const entry = opened.entries[0]!;
    let capsule: Capsule;
    try {
      capsule = decodeCapsule(entry.data);
    } catch (e) {
      throw wrap(e, CAPSULE_ENTRY);
    }
    const differs = sameReadable(meta, capsule);
    if (differs !== undefined)
      throw invalid(`the readable ${differs} differs from the capsule's`, 'sam-bundle-invalid');
    return capsule;
  } finally {
    opened.destroy();
  }
}

/**
 * Open and verify a capsule bundle, `tza/1` or TBZ (told apart by their first bytes).
 * Every signature must verify; there must be exactly one, by `capsule.issuer_id`, with a
 * key the `directory` holds for that id. Anything else throws SamError `BUNDLE_INVALID`
 * (verdict `sam-bundle-invalid` or `sam-signature-invalid`), or `NOT_A_RECIPIENT` for an
 * encrypted capsule without its gateway's identity. Never returns an unverified capsule.
 */
export function openCapsule(bytes: Uint8Array, o: OpenOptions): Promise<OpenedCapsule> {
  return Promise.resolve().then(() => openCapsuleSync(bytes, o));
}

/** {@link openCapsule}, synchronously. */
export function openCapsuleSync(bytes: Uint8Array, o: OpenOptions): OpenedCapsule {
  if (!(bytes instanceof Uint8Array)) throw new TypeError('"bytes" expected Uint8Array');
  const directory = requireDirectory(o);
  const format = detectFormat(bytes);
  if (format === 'tbz')
    return {
      capsule: capsuleFromTbz(bytes, {
        directory,
        ...(o.provider ? { provider: o.provider } : {}),
      }),
      format,
    };
  if (format === 'tza') return { capsule: openTzaCapsule(bytes, o, directory), format };
  throw invalid('neither a tza/1 nor a TBZ bundle (first bytes)');
}

export interface CapsuleInspection {
  format: 'tza' | 'tbz';
  /** The readable fields (in a TBZ every field is readable: it is plaintext). */
  readable: ReadableCapsule;
  encrypted: boolean;
  signers: { signer: string; kid: string; valid: boolean; trusted: boolean | undefined }[];
  /** The whole capsule, when it is readable without a key and verifies. */
  capsule?: Capsule;
  /** The bundle verifies against the directory (signatures, issuer, schema). */
  verified: boolean;
  /** Why it does not. */
  error?: { code: string; verdict?: SamVerdict; message: string };
}

function errorOf(e: unknown): NonNullable<CapsuleInspection['error']> {
  if (!SamError.is(e)) throw e;
  return { code: e.code, ...(e.verdict ? { verdict: e.verdict } : {}), message: e.message };
}

/**
 * What anyone can see of a capsule bundle, and whether it verifies, without decrypting: for
 * an encrypted capsule the readable fields and the signature check. Throws SamError
 * `BUNDLE_INVALID` when the bytes are not a well-formed capsule bundle at all.
 */
export function inspectCapsule(
  bytes: Uint8Array,
  o: { directory: IdentityRegistry; provider?: CryptoProvider },
): CapsuleInspection {
  if (!(bytes instanceof Uint8Array)) throw new TypeError('"bytes" expected Uint8Array');
  const directory = requireDirectory(o);
  const format = detectFormat(bytes);
  if (format === 'tbz') {
    let bundle: ReturnType<typeof readTbz>;
    let shown: Capsule;
    try {
      bundle = readTbz(bytes, TBZ_LIMITS);
      shown = decodeCapsule(bundle.blocks[0]?.content ?? new Uint8Array(0));
    } catch (e) {
      throw wrap(e, 'TBZ capsule');
    }
    const keys = issuerKeysHex(directory, shown.issuer_id);
    const res = verifyTbz(bundle, { trustedSenderKeys: (hex) => keys.includes(hex) });
    let error: CapsuleInspection['error'];
    try {
      capsuleFromTbz(bytes, o);
    } catch (e) {
      error = errorOf(e);
    }
    return {
      format,
      readable: readableOf(shown),
      encrypted: false,
      signers: [
        {
          signer: bundle.manifest.sender_aint,
          kid: bundle.manifest.sender_pubkey,
          valid: res.checks.every((x) => x.status !== 'fail' || x.check === 'sender-pinned'),
          trusted: res.senderPinned,
        },
      ],
      ...(error ? { verified: false, error } : { verified: true, capsule: shown }),
    };
  }
  if (format !== 'tza') throw invalid('neither a tza/1 nor a TBZ bundle (first bytes)');
  let parsed: ParsedTza;
  try {
    parsed = readTza(bytes, {
      limits: TZA_LIMITS,
      ...(o.provider ? { provider: o.provider } : {}),
    });
  } catch (e) {
    throw wrap(e, 'capsule bundle');
  }
  const meta = readMeta(parsed);
  const sealed = meta.sealed;
  const readable = readableOf(meta as unknown as Capsule);
  const report = verifyTza(bytes, {
    trust: directory,
    requireSigners: [readable.issuer_id],
    limits: TZA_LIMITS,
    ...(o.provider ? { provider: o.provider } : {}),
  });
  let error: CapsuleInspection['error'];
  let capsule: Capsule | undefined;
  try {
    if (sealed) {
      if (!report.valid) throw wrap(new TzaError(report.code!, report.reason!), 'capsule bundle');
      checkSigners(report.signers, readable.issuer_id);
    } else {
      capsule = openTzaCapsule(bytes, o, directory);
    }
  } catch (e) {
    error = errorOf(e);
  }
  return {
    format,
    readable,
    encrypted: sealed,
    signers: report.signers.map((s) => ({
      signer: s.signer,
      kid: s.kid,
      valid: s.valid,
      trusted: s.trusted,
    })),
    ...(error ? { verified: false, error } : { verified: true }),
    ...(capsule ? { capsule } : {}),
  };
}

// ------------------------------------------------------------------ TBZ

function issuerKeysHex(directory: IdentityRegistry, issuer: string): string[] {
  return directory.get(issuer).map((p) => toHex(fromBase64Url(p.signing_key)));
}

export interface ToTbzOptions {
  /** The receiver named in the manifest (a label: TBZ is not encrypted). */
  receiver?: PublicIdentity;
  /** Transfer pair id; default a UUID v4 from `random`. */
  tpid?: string;
  random?: Random;
  provider?: CryptoProvider;
  /**
   * A capsule with a `gateway_id` was meant to travel encrypted; TBZ is plaintext. Pass
   * true to convert it anyway.
   */
  allowPlaintext?: boolean;
}

/**
 * The family's TBZ form of a capsule: `payload_type` `sam_capsule`, one block `sam.json`
 * (RFC 8785 JSON), signed by `issuer` (who must be `capsule.issuer_id`); `sender_aint` is the
 * issuer's id, `created_at` the capsule's `issued_at` in whole seconds, and the receiver is
 * `receiver` (its id and Ed25519 key) or `*` with 32 zero bytes. Deterministic for a given
 * `tpid`. Nothing in a TBZ is encrypted.
 */
export function capsuleToTbz(c: Capsule, issuer: Identity, o: ToTbzOptions = {}): Uint8Array {
  const capsule = parseCapsule(c);
  if (typeof issuer !== 'object' || issuer === null || typeof issuer.sign !== 'function')
    throw new TypeError('"issuer" expected an Identity');
  if (issuer.id !== capsule.issuer_id)
    throw new RangeError(`"issuer" is ${issuer.id}, the capsule names ${capsule.issuer_id}`);
  if (capsule.gateway_id !== null && o.allowPlaintext !== true)
    throw new RangeError(
      `the capsule is meant to be encrypted to ${capsule.gateway_id}; TBZ is plaintext (allowPlaintext)`,
    );
  const receiver = o.receiver ? parsePublicIdentity(o.receiver, o.provider) : undefined;
  return writeTbz(
    {
      senderAint: issuer.id,
      receiverAint: receiver?.id ?? '*',
      receiverPubkey: receiver?.signingKey ?? new Uint8Array(32),
      payloadType: TBZ_PAYLOAD_TYPE,
      blocks: [{ name: CAPSULE_ENTRY, content: encodeCapsule(capsule) }],
      createdAt: capsule.issued_at.slice(0, 19) + 'Z',
      ...(o.tpid !== undefined ? { tpid: o.tpid } : {}),
    },
    issuer.signer,
    {
      random: o.random ?? systemRandom,
      ...(o.provider ? { provider: o.provider } : {}),
      limits: TBZ_LIMITS,
    },
  );
}

/**
 * Read and verify the TBZ form: one block `sam.json`, `payload_type` `sam_capsule`; the
 * self-declared `sender_pubkey` must be a key the `directory` holds for `sender_aint`, and
 * every signature and digest must verify, before the block is decoded; then `sender_aint`
 * must be the capsule's `issuer_id`. Throws SamError `BUNDLE_INVALID` (a forged or unpinned sender:
 * `sam-signature-invalid`).
 */
export function capsuleFromTbz(
  bytes: Uint8Array,
  o: { directory: IdentityRegistry; provider?: CryptoProvider },
): Capsule {
  if (!(bytes instanceof Uint8Array)) throw new TypeError('"bytes" expected Uint8Array');
  const directory = requireDirectory(o);
  try {
    const b = readTbz(bytes, TBZ_LIMITS);
    if (b.manifest.payload_type !== TBZ_PAYLOAD_TYPE)
      throw invalid(`TBZ payload_type is ${b.manifest.payload_type}, not ${TBZ_PAYLOAD_TYPE}`);
    if (b.blocks.length !== 1 || b.blocks[0]!.name !== CAPSULE_ENTRY)
      throw invalid(`a TBZ capsule holds exactly one block, ${CAPSULE_ENTRY}`);
    // the key is pinned from the directory by the sender's id before anything is decoded
    const sender = b.manifest.sender_aint;
    const keys = issuerKeysHex(directory, sender);
    if (keys.length === 0)
      throw invalid(`the TBZ sender ${sender} is not in the directory`, 'sam-signature-invalid');
    verifyTbz(b, {
      trustedSenderKeys: (hex) => keys.includes(hex),
      throwOnFailure: true,
      ...(o.provider ? { provider: o.provider } : {}),
    });
    const capsule = decodeCapsule(b.blocks[0]!.content);
    if (sender !== capsule.issuer_id)
      throw invalid(
        `TBZ sender ${sender} is not the issuer ${capsule.issuer_id}`,
        'sam-signature-invalid',
      );
    return capsule;
  } catch (e) {
    throw wrap(e, 'TBZ capsule');
  }
}

export { readableOf as readableFields };
