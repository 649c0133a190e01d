export {
  SIGNATURE_AAD,
  cosignTza,
  inspectTza,
  openTza,
  packTza,
  readTza,
  rewrapTza,
  unpackTza,
  verifyTza,
} from './bundle.js';
export { CborTag, decodeCbor, encodeCbor } from './cbor.js';
export { openTzaFile, packTzaToFile, verifyTzaFile } from './stream.js';
export { COSE_ALG_EDDSA, COSE_SIGN1_TAG } from './cose.js';
export { TzaError } from './errors.js';
export {
  CHUNK_SIZE,
  DEFAULT_LIMITS,
  MANIFEST_NAME,
  SIGNATURES_NAME,
  TZA_FORMAT,
  parseManifest,
} from './manifest.js';
export { TBZ_MAGIC, detectFormat, readTbz, unpackTbz, verifyTbz, writeTbz } from './tbz.js';
export { unsafeNameReason } from './tar.js';
export { writeFilesUnder } from './unpack-fs.js';

export type {
  InspectEntry,
  InspectReport,
  OpenedEntry,
  OpenedTza,
  PackEntry,
  PackInput,
  ParsedTza,
  RecipientKey,
  RewrapChanges,
  SignerReport,
  Trust,
  TzaOptions,
  VerifyOptions,
  VerifyReport,
} from './bundle.js';
export type { CborDecodeLimits, CborKey, CborValue } from './cbor.js';
export type { OpenedTzaFile, PackFileEntry, PackFileInput, PackFileResult } from './stream.js';
export type { ParsedSignature, SignatureHeader } from './cose.js';
export type { TzaErrorCode } from './errors.js';
export type {
  TbzBlock,
  TbzBundle,
  TbzCheck,
  TbzCheckName,
  TbzFormat,
  TbzLimits,
  TbzManifest,
  TbzManifestBlock,
  TbzSurface,
  TbzTrustedSenders,
  TbzUnpackOptions,
  TbzUnpackResult,
  TbzVerifyOptions,
  TbzVerifyResult,
  TbzWriteInput,
  TbzWriteOptions,
} from './tbz.js';
export type { UnpackFile } from './unpack-fs.js';
export type {
  TzaEntryDescriptor,
  TzaLimits,
  TzaManifest,
  TzaMeta,
  TzaRecipient,
} from './manifest.js';
