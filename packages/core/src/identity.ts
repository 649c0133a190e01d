import { equalBytes, fromBase64Url, toBase64Url, toHex, wipe } from './bytes.js';
import { rfc3339, parseRfc3339, systemClock, type Clock } from './clock.js';
import { getProvider } from './crypto/index.js';
import type { CryptoProvider, Ed25519PrivateKey, X25519PrivateKey } from './crypto/provider.js';
import { CoreError } from './errors.js';
import { canonicalBytes } from './jcs.js';
import { systemRandom, type Random } from './random.js';

/** The six actor classes of the family. */
export const ACTOR_CLASSES = [
  'human',
  'machine',
  'external',
  'mcp-server',
  'gateway',
  'system',
] as const;
export type ActorClass = (typeof ACTOR_CLASSES)[number];

export function isActorClass(v: unknown): v is ActorClass {
  return typeof v === 'string' && (ACTOR_CLASSES as readonly string[]).includes(v);
}

/** `jis:<org>:<name>`; each part 1–64 of `[A-Za-z0-9._-]`, starting with a letter or digit. */
const ACTOR_ID = /^jis:([A-Za-z0-9][A-Za-z0-9._-]{0,63}):([A-Za-z0-9][A-Za-z0-9._-]{0,63})$/;

export function isActorId(v: unknown): v is string {
  return typeof v === 'string' && ACTOR_ID.test(v);
}

export function parseActorId(id: string): { org: string; name: string } {
  const m = typeof id === 'string' ? ACTOR_ID.exec(id) : null;
  if (!m) {
    throw new CoreError(
      'INVALID_ACTOR_ID',
      `actor id must look like jis:<org>:<name>, got ${JSON.stringify(String(id)).slice(0, 80)}`,
    );
  }
  return { org: m[1]!, name: m[2]! };
}

export function assertActorClass(v: unknown): asserts v is ActorClass {
  if (!isActorClass(v)) {
    throw new CoreError(
      'INVALID_ACTOR_CLASS',
      `actor class must be one of ${ACTOR_CLASSES.join(', ')}`,
    );
  }
}

/** Key id of an Ed25519 public key: hex of the first 8 bytes of SHA-256(public key). */
export function keyIdOf(publicKey: Uint8Array, provider: CryptoProvider = getProvider()): string {
  return toHex(provider.sha256(publicKey).subarray(0, 8));
}

/** What everyone may know of an actor. Self-signed so the encryption key is bound to it. */
export interface PublicIdentity {
  format: 'tibet-public-identity/1';
  id: string;
  actor_class: ActorClass;
  created_at: string;
  /** Ed25519, base64url. */
  signing_key: string;
  /** X25519 for HPKE, base64url. */
  encryption_key: string;
  /** Ed25519 over the RFC 8785 form of this object without `self_signature`, base64url. */
  self_signature: string;
}

/** An actor with private keys in memory. Call {@link Identity.destroy} when done. */
export class Identity {
  readonly #signingSeed: Uint8Array;
  readonly #encryptionSecret: Uint8Array;
  readonly signer: Ed25519PrivateKey;
  readonly agreement: X25519PrivateKey;
  readonly public: PublicIdentity;

  constructor(
    signingSeed: Uint8Array,
    encryptionSecret: Uint8Array,
    meta: { id: string; actorClass: ActorClass; createdAt: string },
    readonly provider: CryptoProvider = getProvider(),
  ) {
    parseActorId(meta.id);
    assertActorClass(meta.actorClass);
    this.#signingSeed = signingSeed;
    this.#encryptionSecret = encryptionSecret;
    this.signer = provider.ed25519(signingSeed);
    this.agreement = provider.x25519(encryptionSecret);
    const body = {
      format: 'tibet-public-identity/1' as const,
      id: meta.id,
      actor_class: meta.actorClass,
      created_at: meta.createdAt,
      signing_key: toBase64Url(this.signer.publicKey),
      encryption_key: toBase64Url(this.agreement.publicKey),
    };
    this.public = { ...body, self_signature: toBase64Url(this.signer.sign(canonicalBytes(body))) };
  }

  get id(): string {
    return this.public.id;
  }
  get actorClass(): ActorClass {
    return this.public.actor_class;
  }
  get signingPublicKey(): Uint8Array {
    return this.signer.publicKey;
  }
  get encryptionPublicKey(): Uint8Array {
    return this.agreement.publicKey;
  }
  get keyId(): string {
    return keyIdOf(this.signer.publicKey, this.provider);
  }

  sign(message: Uint8Array): Uint8Array {
    return this.signer.sign(message);
  }

  /** The raw private key material, for the keystore only. The caller must wipe it. */
  exportSecrets(): { signingSeed: Uint8Array; encryptionSecret: Uint8Array } {
    return {
      signingSeed: Uint8Array.from(this.#signingSeed),
      encryptionSecret: Uint8Array.from(this.#encryptionSecret),
    };
  }

  /** Zero the private key bytes held here (KeyObjects inside OpenSSL are freed by GC). */
  destroy(): void {
    wipe(this.#signingSeed, this.#encryptionSecret);
  }
}

export interface CreateIdentityOptions {
  id: string;
  actorClass: ActorClass;
  random?: Random;
  clock?: Clock;
  provider?: CryptoProvider;
}

/** Make a new actor: an Ed25519 signing key and an X25519 encryption key. */
export function createIdentity(o: CreateIdentityOptions): Identity {
  const random = o.random ?? systemRandom;
  const seed = random(32);
  const xsk = random(32);
  return new Identity(
    seed,
    xsk,
    { id: o.id, actorClass: o.actorClass, createdAt: rfc3339((o.clock ?? systemClock).now()) },
    o.provider,
  );
}

/**
 * Validate an untrusted public identity: structure, id, class, key lengths and the
 * self-signature. Throws CoreError (`INVALID_ACTOR_ID`, `INVALID_ACTOR_CLASS`, `KEYFILE_INVALID`).
 */
export function parsePublicIdentity(
  v: unknown,
  provider: CryptoProvider = getProvider(),
): PublicIdentity & { signingKey: Uint8Array; encryptionKey: Uint8Array } {
  const invalid = (m: string): never => {
    throw new CoreError('KEYFILE_INVALID', `public identity: ${m}`);
  };
  if (typeof v !== 'object' || v === null || Array.isArray(v)) invalid('not an object');
  const o = v as Record<string, unknown>;
  const allowed = [
    'format',
    'id',
    'actor_class',
    'created_at',
    'signing_key',
    'encryption_key',
    'self_signature',
  ];
  for (const k of Object.keys(o)) if (!allowed.includes(k)) invalid(`unknown field "${k}"`);
  if (o['format'] !== 'tibet-public-identity/1') invalid('unknown format');
  parseActorId(o['id'] as string);
  assertActorClass(o['actor_class']);
  if (!parseRfc3339(o['created_at'])) invalid('created_at is not RFC 3339 UTC');
  let signingKey: Uint8Array, encryptionKey: Uint8Array, sig: Uint8Array;
  try {
    signingKey = fromBase64Url(o['signing_key'] as string);
    encryptionKey = fromBase64Url(o['encryption_key'] as string);
    sig = fromBase64Url(o['self_signature'] as string);
  } catch (cause) {
    throw new CoreError('KEYFILE_INVALID', 'public identity: bad base64url key', { cause });
  }
  if (signingKey.length !== 32 || encryptionKey.length !== 32 || sig.length !== 64)
    invalid('bad key length');
  const { self_signature: _s, ...body } = o;
  if (!provider.ed25519Verify(signingKey, canonicalBytes(body), sig))
    invalid('self-signature does not verify');
  return { ...(o as unknown as PublicIdentity), signingKey, encryptionKey };
}

/**
 * Known public identities, by actor id. Several keys per actor are allowed (rotation);
 * lookups by key id pick the one a token names.
 */
export class IdentityRegistry {
  readonly #byId = new Map<string, PublicIdentity[]>();
  /** `actor \n kid` → the raw signing key, filled by add() (a lookup per token verified). */
  readonly #byKid = new Map<string, Uint8Array>();

  constructor(readonly provider: CryptoProvider = getProvider()) {}

  add(identity: PublicIdentity | Identity): void {
    const pub = identity instanceof Identity ? identity.public : identity;
    const parsed = parsePublicIdentity(pub, this.provider);
    const list = this.#byId.get(pub.id) ?? [];
    if (!list.some((p) => p.signing_key === pub.signing_key)) {
      list.push(pub);
      const kid = keyIdOf(parsed.signingKey, this.provider);
      // the first key registered under a kid wins, as the linear search did
      const k = `${pub.id}\n${kid}`;
      if (!this.#byKid.has(k)) this.#byKid.set(k, parsed.signingKey.slice());
    }
    this.#byId.set(pub.id, list);
  }

  get(id: string): readonly PublicIdentity[] {
    return this.#byId.get(id) ?? [];
  }

  /** The Ed25519 public key of `actor` whose key id is `kid`, if registered. */
  signingKey(actor: string, kid: string): Uint8Array | undefined {
    return this.#byKid.get(`${actor}\n${kid}`)?.slice();
  }

  has(actor: string, publicKey: Uint8Array): boolean {
    return this.get(actor).some((p) => equalBytes(fromBase64Url(p.signing_key), publicKey));
  }

  all(): PublicIdentity[] {
    return [...this.#byId.values()].flat();
  }
}
