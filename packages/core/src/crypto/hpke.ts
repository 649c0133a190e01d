/**
 * HPKE (RFC 9180) for one suite: DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 /
 * ChaCha20-Poly1305 — KEM 0x0020, KDF 0x0001, AEAD 0x0003. All four modes (base, psk, auth,
 * auth_psk) are implemented so that every RFC vector for the suite can be checked; the
 * family's formats use base mode. Built on a {@link CryptoProvider}, so both backends give
 * identical bytes.
 */
import { concatBytes, i2osp, toBase64, utf8, wipe } from '../bytes.js';
import { CoreError } from '../errors.js';
import type { Random } from '../random.js';
import type { CryptoProvider, X25519PrivateKey } from './provider.js';

export const HPKE_KEM_ID = 0x0020;
export const HPKE_KDF_ID = 0x0001;
export const HPKE_AEAD_ID = 0x0003;

export const HpkeMode = { base: 0x00, psk: 0x01, auth: 0x02, authPsk: 0x03 } as const;
export type HpkeModeId = (typeof HpkeMode)[keyof typeof HpkeMode];

const NSECRET = 32;
const NK = 32;
const NN = 12;
const NH = 32;
const EMPTY = new Uint8Array(0);
const VERSION = utf8('HPKE-v1');
const KEM_SUITE = concatBytes(utf8('KEM'), i2osp(HPKE_KEM_ID, 2));
const HPKE_SUITE = concatBytes(
  utf8('HPKE'),
  i2osp(HPKE_KEM_ID, 2),
  i2osp(HPKE_KDF_ID, 2),
  i2osp(HPKE_AEAD_ID, 2),
);
/** HKDF-Extract with an empty salt uses Nh zero bytes as the HMAC key (RFC 5869 §2.2). */
const ZERO_SALT = new Uint8Array(NH);

function extract(p: CryptoProvider, salt: Uint8Array, ikm: Uint8Array): Uint8Array {
  return p.hmacSha256(salt.length ? salt : ZERO_SALT, ikm);
}

function expand(p: CryptoProvider, prk: Uint8Array, info: Uint8Array, len: number): Uint8Array {
  if (len > 255 * NH) throw new RangeError('"len" too large for HKDF-Expand');
  const out = new Uint8Array(len);
  let t: Uint8Array = EMPTY;
  for (let i = 1, o = 0; o < len; i++) {
    t = p.hmacSha256(prk, concatBytes(t, info, Uint8Array.of(i)));
    out.set(t.subarray(0, Math.min(NH, len - o)), o);
    o += NH;
  }
  return out;
}

function labeledExtract(
  p: CryptoProvider,
  suite: Uint8Array,
  salt: Uint8Array,
  label: string,
  ikm: Uint8Array,
): Uint8Array {
  return extract(p, salt, concatBytes(VERSION, suite, utf8(label), ikm));
}

function labeledExpand(
  p: CryptoProvider,
  suite: Uint8Array,
  prk: Uint8Array,
  label: string,
  info: Uint8Array,
  len: number,
): Uint8Array {
  return expand(p, prk, concatBytes(i2osp(len, 2), VERSION, suite, utf8(label), info), len);
}

// The fixed parts of the labeled inputs the key schedule uses on every call, encoded once:
// LabeledExtract's `"HPKE-v1" ‖ suite_id ‖ label` and LabeledExpand's
// `I2OSP(L, 2) ‖ "HPKE-v1" ‖ suite_id ‖ label` (RFC 9180 §4).
const EXTRACT_EAE_PRK = concatBytes(VERSION, KEM_SUITE, utf8('eae_prk'));
const EXPAND_SHARED_SECRET = concatBytes(
  i2osp(NSECRET, 2),
  VERSION,
  KEM_SUITE,
  utf8('shared_secret'),
);
const EXTRACT_PSK_ID_HASH = concatBytes(VERSION, HPKE_SUITE, utf8('psk_id_hash'));
const EXTRACT_INFO_HASH = concatBytes(VERSION, HPKE_SUITE, utf8('info_hash'));
const EXTRACT_SECRET = concatBytes(VERSION, HPKE_SUITE, utf8('secret'));
const EXPAND_KEY = concatBytes(i2osp(NK, 2), VERSION, HPKE_SUITE, utf8('key'));
const EXPAND_BASE_NONCE = concatBytes(i2osp(NN, 2), VERSION, HPKE_SUITE, utf8('base_nonce'));
const EXPAND_EXP = concatBytes(i2osp(NH, 2), VERSION, HPKE_SUITE, utf8('exp'));

/** HKDF-Expand for L ≤ Nh: a single block, T(1) = HMAC(prk, info ‖ 0x01), cut to `len`. */
function expandOne(
  p: CryptoProvider,
  prk: Uint8Array,
  prefix: Uint8Array,
  info: Uint8Array,
  len: number,
): Uint8Array {
  const msg = new Uint8Array(prefix.length + info.length + 1);
  msg.set(prefix, 0);
  msg.set(info, prefix.length);
  msg[msg.length - 1] = 1;
  const t = p.hmacSha256(prk, msg);
  if (len === NH) return t;
  const out = t.slice(0, len);
  wipe(t);
  return out;
}

/** LabeledExtract with a prefix encoded once: HMAC(salt or zeros, prefix ‖ ikm). */
function extractWith(
  p: CryptoProvider,
  salt: Uint8Array,
  prefix: Uint8Array,
  ikm: Uint8Array,
): Uint8Array {
  const msg = new Uint8Array(prefix.length + ikm.length);
  msg.set(prefix, 0);
  msg.set(ikm, prefix.length);
  const out = extract(p, salt, msg);
  wipe(msg);
  return out;
}

/**
 * `key_schedule_context = mode ‖ psk_id_hash ‖ info_hash` depends only on public inputs
 * (the mode, the PSK id and `info`), so for the modes without a PSK it is kept, per provider
 * and keyed by the mode and the exact `info` bytes: a bundle's wraps to several recipients,
 * and repeated opens, share one `info`. Bounded; the oldest entry goes first. The
 * `psk_id_hash` of the empty PSK id is a constant of the suite, computed once per provider.
 */
const KSC_CACHE_MAX = 256;
interface KscCache {
  emptyPskIdHash: Uint8Array;
  byInfo: Map<string, Uint8Array>;
}
const kscCache = new WeakMap<CryptoProvider, KscCache>();

function keyScheduleContext(
  p: CryptoProvider,
  mode: HpkeModeId,
  pskId: Uint8Array,
  info: Uint8Array,
): Uint8Array {
  const build = (pskIdHash: Uint8Array): Uint8Array => {
    const ksc = new Uint8Array(1 + 2 * NH);
    ksc[0] = mode;
    ksc.set(pskIdHash, 1);
    ksc.set(extractWith(p, EMPTY, EXTRACT_INFO_HASH, info), 1 + NH);
    return ksc;
  };
  if (pskId.length > 0) return build(extractWith(p, EMPTY, EXTRACT_PSK_ID_HASH, pskId));
  let cache = kscCache.get(p);
  if (!cache) {
    cache = {
      emptyPskIdHash: extractWith(p, EMPTY, EXTRACT_PSK_ID_HASH, EMPTY),
      byInfo: new Map<string, Uint8Array>(),
    };
    kscCache.set(p, cache);
  }
  const id = `${mode}:${toBase64(info)}`;
  let ksc = cache.byInfo.get(id);
  if (!ksc) {
    ksc = build(cache.emptyPskIdHash);
    if (cache.byInfo.size >= KSC_CACHE_MAX) cache.byInfo.delete(cache.byInfo.keys().next().value!);
    cache.byInfo.set(id, ksc);
  }
  return ksc;
}

/** RFC 9180 §7.1.3 DeriveKeyPair for X25519. */
export function hpkeDeriveKeyPair(
  p: CryptoProvider,
  ikm: Uint8Array,
): { secretKey: Uint8Array; publicKey: Uint8Array } {
  if (ikm.length < 32) throw new RangeError('"ikm" expected at least 32 bytes');
  const prk = labeledExtract(p, KEM_SUITE, EMPTY, 'dkp_prk', ikm);
  const secretKey = labeledExpand(p, KEM_SUITE, prk, 'sk', EMPTY, 32);
  wipe(prk);
  return { secretKey, publicKey: p.x25519(secretKey).publicKey };
}

/**
 * A fresh ephemeral key pair: 32 bytes of the OS CSPRNG as the secret key, otherwise
 * DeriveKeyPair(random(32)) so that an injected deterministic source reproduces bytes.
 */
export function hpkeGenerateKeyPair(
  p: CryptoProvider,
  random: Random,
): { secretKey: Uint8Array; publicKey: Uint8Array; key?: X25519PrivateKey } {
  if (random.system) {
    // any 32 random bytes are an X25519 secret key (RFC 7748 clamps them): importing them
    // once is cheaper than generating natively and importing again, and never exports a
    // freshly generated key object (a pattern that can deadlock Node 20.20)
    const secretKey = random(32);
    const key = p.x25519(secretKey);
    return { secretKey, publicKey: key.publicKey, key };
  }
  const ikm = random(32);
  try {
    return hpkeDeriveKeyPair(p, ikm);
  } finally {
    wipe(ikm);
  }
}

function extractAndExpand(p: CryptoProvider, dh: Uint8Array, kemContext: Uint8Array): Uint8Array {
  const prk = extractWith(p, EMPTY, EXTRACT_EAE_PRK, dh);
  const ss = expandOne(p, prk, EXPAND_SHARED_SECRET, kemContext, NSECRET);
  wipe(prk);
  return ss;
}

/** An HPKE context for one direction; seals or opens messages in sequence. */
export class HpkeContext {
  #seq = 0;
  readonly #key: Uint8Array;
  readonly #baseNonce: Uint8Array;
  readonly #exporterSecret: Uint8Array;

  constructor(
    readonly provider: CryptoProvider,
    key: Uint8Array,
    baseNonce: Uint8Array,
    exporterSecret: Uint8Array,
  ) {
    this.#key = key;
    this.#baseNonce = baseNonce;
    this.#exporterSecret = exporterSecret;
  }

  #nonce(): Uint8Array {
    if (this.#seq >= Number.MAX_SAFE_INTEGER) throw new RangeError('HPKE message limit reached');
    const n = i2osp(this.#seq, NN);
    for (let i = 0; i < NN; i++) n[i]! ^= this.#baseNonce[i]!;
    return n;
  }

  seal(plaintext: Uint8Array, aad: Uint8Array = EMPTY): Uint8Array {
    const ct = this.provider.chacha20poly1305Seal(this.#key, this.#nonce(), plaintext, aad);
    this.#seq++;
    return ct;
  }

  /** Throws CoreError `HPKE_OPEN_FAILED`; the sequence number advances only on success. */
  open(ciphertext: Uint8Array, aad: Uint8Array = EMPTY): Uint8Array {
    let pt: Uint8Array;
    try {
      pt = this.provider.chacha20poly1305Open(this.#key, this.#nonce(), ciphertext, aad);
    } catch (cause) {
      throw new CoreError('HPKE_OPEN_FAILED', 'HPKE decryption failed', { cause });
    }
    this.#seq++;
    return pt;
  }

  export(exporterContext: Uint8Array, length: number): Uint8Array {
    return labeledExpand(
      this.provider,
      HPKE_SUITE,
      this.#exporterSecret,
      'sec',
      exporterContext,
      length,
    );
  }

  /** Zero the context's keys. */
  destroy(): void {
    wipe(this.#key, this.#baseNonce, this.#exporterSecret);
  }
}

export interface HpkeOptions {
  info?: Uint8Array;
  psk?: Uint8Array;
  pskId?: Uint8Array;
}

/** The secrets of one context; `exporterSecret` only when asked for (single-shot skips it). */
interface ContextSecrets {
  key: Uint8Array;
  baseNonce: Uint8Array;
  exporterSecret: Uint8Array | undefined;
}

function keySchedule(
  p: CryptoProvider,
  mode: HpkeModeId,
  sharedSecret: Uint8Array,
  { info = EMPTY, psk = EMPTY, pskId = EMPTY }: HpkeOptions,
  withExporter: boolean,
): ContextSecrets {
  const gotPsk = psk.length > 0;
  const gotPskId = pskId.length > 0;
  if (gotPsk !== gotPskId) throw new TypeError('"psk" and "pskId" must be given together');
  const needPsk = mode === HpkeMode.psk || mode === HpkeMode.authPsk;
  if (needPsk !== gotPsk)
    throw new TypeError(`HPKE mode ${mode} ${needPsk ? 'needs' : 'forbids'} a PSK`);
  if (gotPsk && psk.length < 32) throw new RangeError('"psk" expected at least 32 bytes');
  const ksc = keyScheduleContext(p, mode, pskId, info);
  const secret = extractWith(p, sharedSecret, EXTRACT_SECRET, psk);
  try {
    return {
      key: expandOne(p, secret, EXPAND_KEY, ksc, NK),
      baseNonce: expandOne(p, secret, EXPAND_BASE_NONCE, ksc, NN),
      exporterSecret: withExporter ? expandOne(p, secret, EXPAND_EXP, ksc, NH) : undefined,
    };
  } finally {
    wipe(secret);
  }
}

export interface HpkeSenderSetup extends HpkeOptions {
  /** Sender's static key for auth modes. */
  senderKey?: X25519PrivateKey;
  /** Ephemeral key pair; tests pass one derived from the RFC's ikmE. */
  ephemeral?: { secretKey: Uint8Array; publicKey: Uint8Array };
  random?: Random;
}

/** Encap (AuthEncap) and the key schedule: {@link hpkeSetupSender} and {@link hpkeSeal}. */
function senderSecrets(
  p: CryptoProvider,
  recipientPublicKey: Uint8Array,
  opts: HpkeSenderSetup,
  withExporter: boolean,
): { enc: Uint8Array; secrets: ContextSecrets } {
  if (recipientPublicKey.length !== 32) {
    throw new RangeError('"recipientPublicKey" expected 32 bytes');
  }
  if (!opts.ephemeral && !opts.random) throw new TypeError('"random" or "ephemeral" is required');
  const eph: { secretKey: Uint8Array; publicKey: Uint8Array; key?: X25519PrivateKey } =
    opts.ephemeral ?? hpkeGenerateKeyPair(p, opts.random!);
  const ek = eph.key ?? p.x25519(eph.secretKey, eph.publicKey);
  const enc = ek.publicKey;
  let dh = ek.agree(recipientPublicKey);
  let kemContext = concatBytes(enc, recipientPublicKey);
  if (opts.senderKey) {
    dh = concatBytes(dh, opts.senderKey.agree(recipientPublicKey));
    kemContext = concatBytes(kemContext, opts.senderKey.publicKey);
  }
  if (!opts.ephemeral) wipe(eph.secretKey);
  const ss = extractAndExpand(p, dh, kemContext);
  wipe(dh);
  try {
    return { enc, secrets: keySchedule(p, modeOf(opts), ss, opts, withExporter) };
  } finally {
    wipe(ss);
  }
}

/** SetupBaseS / SetupPSKS / SetupAuthS / SetupAuthPSKS (mode chosen from the options). */
export function hpkeSetupSender(
  p: CryptoProvider,
  recipientPublicKey: Uint8Array,
  opts: HpkeSenderSetup,
): { enc: Uint8Array; context: HpkeContext } {
  const { enc, secrets: k } = senderSecrets(p, recipientPublicKey, opts, true);
  return { enc, context: new HpkeContext(p, k.key, k.baseNonce, k.exporterSecret!) };
}

function modeOf(o: {
  senderKey?: unknown;
  senderPublicKey?: unknown;
  psk?: Uint8Array;
}): HpkeModeId {
  const auth = o.senderKey !== undefined || o.senderPublicKey !== undefined;
  const psk = o.psk !== undefined && o.psk.length > 0;
  return auth ? (psk ? HpkeMode.authPsk : HpkeMode.auth) : psk ? HpkeMode.psk : HpkeMode.base;
}

/** Decap (AuthDecap) and the key schedule: {@link hpkeSetupRecipient} and {@link hpkeOpen}. */
function recipientSecrets(
  p: CryptoProvider,
  enc: Uint8Array,
  recipientKey: X25519PrivateKey,
  opts: HpkeOptions & { senderPublicKey?: Uint8Array },
  withExporter: boolean,
): ContextSecrets {
  if (enc.length !== 32) {
    throw new CoreError('HPKE_INVALID_KEY', `HPKE enc expected 32 bytes, got ${enc.length}`);
  }
  let dh = recipientKey.agree(enc);
  let kemContext = concatBytes(enc, recipientKey.publicKey);
  if (opts.senderPublicKey) {
    dh = concatBytes(dh, recipientKey.agree(opts.senderPublicKey));
    kemContext = concatBytes(kemContext, opts.senderPublicKey);
  }
  const ss = extractAndExpand(p, dh, kemContext);
  wipe(dh);
  try {
    return keySchedule(p, modeOf(opts), ss, opts, withExporter);
  } finally {
    wipe(ss);
  }
}

/** SetupBaseR / SetupPSKR / SetupAuthR / SetupAuthPSKR. */
export function hpkeSetupRecipient(
  p: CryptoProvider,
  enc: Uint8Array,
  recipientKey: X25519PrivateKey,
  opts: HpkeOptions & { senderPublicKey?: Uint8Array } = {},
): HpkeContext {
  const k = recipientSecrets(p, enc, recipientKey, opts, true);
  return new HpkeContext(p, k.key, k.baseNonce, k.exporterSecret!);
}

/**
 * Single-shot base-mode seal (RFC 9180 §6.1): the first message of a fresh context, whose
 * nonce is the base nonce itself (sequence number 0). The exporter secret is not derived.
 */
export function hpkeSeal(
  p: CryptoProvider,
  recipientPublicKey: Uint8Array,
  plaintext: Uint8Array,
  { info = EMPTY, aad = EMPTY, random }: { info?: Uint8Array; aad?: Uint8Array; random: Random },
): { enc: Uint8Array; ciphertext: Uint8Array } {
  const { enc, secrets: k } = senderSecrets(p, recipientPublicKey, { info, random }, false);
  try {
    return { enc, ciphertext: p.chacha20poly1305Seal(k.key, k.baseNonce, plaintext, aad) };
  } finally {
    wipe(k.key, k.baseNonce);
  }
}

/** Single-shot base-mode open; throws CoreError `HPKE_OPEN_FAILED` or `HPKE_INVALID_KEY`. */
export function hpkeOpen(
  p: CryptoProvider,
  recipientKey: X25519PrivateKey,
  enc: Uint8Array,
  ciphertext: Uint8Array,
  { info = EMPTY, aad = EMPTY }: { info?: Uint8Array; aad?: Uint8Array } = {},
): Uint8Array {
  const k = recipientSecrets(p, enc, recipientKey, { info }, false);
  try {
    return p.chacha20poly1305Open(k.key, k.baseNonce, ciphertext, aad);
  } catch (cause) {
    throw new CoreError('HPKE_OPEN_FAILED', 'HPKE decryption failed', { cause });
  } finally {
    wipe(k.key, k.baseNonce);
  }
}
