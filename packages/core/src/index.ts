export {
  assertBytes,
  concatBytes,
  copyBytes,
  equalBytes,
  fromBase64,
  fromBase64Url,
  fromHex,
  fromUtf8,
  i2osp,
  toBase64,
  toBase64Url,
  toHex,
  u32be,
  utf8,
  wipe,
} from './bytes.js';
export {
  fixedClock,
  manualClock,
  parseRfc3339,
  rfc3339,
  rfc3339Millis,
  systemClock,
} from './clock.js';
export {
  getProvider,
  nobleProvider,
  nodeProvider,
  setDefaultProvider,
  sha256Hex,
  sha256Into,
} from './crypto/index.js';
export {
  HPKE_AEAD_ID,
  HPKE_KDF_ID,
  HPKE_KEM_ID,
  HpkeContext,
  HpkeMode,
  hpkeDeriveKeyPair,
  hpkeGenerateKeyPair,
  hpkeOpen,
  hpkeSeal,
  hpkeSetupRecipient,
  hpkeSetupSender,
} from './crypto/hpke.js';
export { CoreError, TibetError } from './errors.js';
export {
  ACTOR_CLASSES,
  Identity,
  IdentityRegistry,
  assertActorClass,
  createIdentity,
  isActorClass,
  isActorId,
  keyIdOf,
  parseActorId,
  parsePublicIdentity,
} from './identity.js';
export {
  canonicalBytes,
  canonicalize,
  isCanonicalJson,
  isCanonicalizable,
  parseCanonicalJson,
} from './jcs.js';
export {
  DEFAULT_SCRYPT,
  KEYFILE_FORMAT,
  decryptIdentity,
  encryptIdentity,
  parseKeyFile,
} from './keystore.js';
export { seededRandom, systemRandom } from './random.js';
export {
  TOKEN_TYPE,
  isActionId,
  isSignatureText,
  mintToken,
  newActionId,
  nextGeneration,
  parseToken,
  signingInputOfCanonical,
  tokenHash,
  tokenSigningInput,
  verifyLine,
  verifyParsedToken,
  verifyToken,
} from './token.js';

export type { Clock, ManualClock } from './clock.js';
export type { BackendName } from './crypto/index.js';
export type { HpkeModeId, HpkeOptions, HpkeSenderSetup } from './crypto/hpke.js';
export type {
  CryptoProvider,
  Ed25519PrivateKey,
  ScryptParams,
  X25519PrivateKey,
} from './crypto/provider.js';
export type { CoreErrorCode } from './errors.js';
export type { ActorClass, CreateIdentityOptions, PublicIdentity } from './identity.js';
export type { JsonObject, JsonPrimitive, JsonValue } from './jcs.js';
export type { KeyFile } from './keystore.js';
export type { Random } from './random.js';
export type {
  KeyResolver,
  MintOptions,
  MintTokenInput,
  ParseTokenOptions,
  PolicyDecision,
  TibetToken,
  TokenBody,
} from './token.js';
