export { KeychainError } from './errors.js';
export { Keychain } from './keychain.js';
export { generateMaterial } from './material.js';
export { DEFAULT_POLICY, apply, decide, listAllows, toRecord, validatePolicy } from './state.js';
export { FileStore } from './store.js';
export {
  AUTHORITY_MODES,
  CUSTODY_ROLES,
  EXPOSURE_STATES,
  GENERATABLE_TYPES,
  LIFECYCLE_STATES,
  REPORTABLE_EXPOSURES,
  SECRET_ID,
  SECRET_TYPES,
  TIMELINE_EVENTS,
  parseSecretType,
} from './vocabulary.js';

export type { KeychainErrorCode } from './errors.js';
export type { AddInput, KeychainOptions, OpInput, Outcome } from './keychain.js';
export type { Generated } from './material.js';
export type {
  Decision,
  Operation,
  PendingHandoff,
  Request,
  SecretPolicy,
  SecretRecord,
  SecretState,
  VersionInfo,
} from './state.js';
export type { Head, SecretStore } from './store.js';
export type {
  AuthorityMode,
  CustodyRole,
  ExposureState,
  LifecycleState,
  ReportableExposure,
  SecretType,
  TimelineEvent,
} from './vocabulary.js';
