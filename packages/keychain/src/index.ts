export { KeychainError } from './errors.js';
export { Keychain } from './keychain.js';
export { generateMaterial } from './material.js';
export {
  AuditClientSource,
  KeychainTimeline,
  LogFolderSource,
  SIGNING_TYPES,
  dependents,
  due,
  history,
  lastUsed,
  lineGaps,
  replay,
  requestOf,
  secretLine,
  stateAfter,
  timelineSourceFor,
  whoCould,
  whoCouldHaveSigned,
  whoDid,
  whoDidSign,
} from './queries.js';
export { diffStates, verifyKeychain } from './verify.js';
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
  Access,
  AccessAction,
  AccessSummary,
  AuditClientSourceOptions,
  CouldHaveSigned,
  DeniedAttempt,
  DependentsAnswer,
  DueAnswer,
  DueItem,
  DueKind,
  DueReason,
  Established,
  Evidence,
  Grant,
  HistoryAnswer,
  HistoryEntry,
  Holder,
  KeychainEvent,
  KeychainTimelineOptions,
  LastUsedAnswer,
  LineGap,
  LogFolderSourceOptions,
  LogProblem,
  LogProblemCode,
  LogQueryFn,
  LogScan,
  ParentRef,
  RecordHashes,
  Refusal,
  Replay,
  ReplayProblem,
  ReplayProblemCode,
  ReplayStep,
  SigningWay,
  StateAt,
  TimelineSource,
  TrackedField,
  WhoCouldAnswer,
  WhoCouldHaveSignedAnswer,
  WhoDidAnswer,
  WhoDidSignAnswer,
} from './queries.js';
export type {
  KeychainProblem,
  KeychainVerifyCode,
  KeychainVerifyReport,
  SecretVerifyReport,
  StateDifference,
  VerifyKeychainOptions,
} from './verify.js';
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
