export {
  CAPSULE_ENTRY,
  CAPSULE_FORMAT,
  CAPSULE_KIND,
  READABLE_FIELDS,
  TBZ_PAYLOAD_TYPE,
  capsuleFromTbz,
  capsuleToTbz,
  inspectCapsule,
  openCapsule,
  openCapsuleSync,
  readableFields,
  sealCapsule,
} from './bundle.js';
export {
  CAPSULE_FIELDS,
  CAPSULE_LIMITS,
  DEFAULT_TTL_SECONDS,
  EPHEMERAL_ID,
  SAM_ID,
  SAM_VERDICTS,
  capsuleBody,
  capsuleProblems,
  capsuleRequestFromJson,
  decodeCapsule,
  encodeCapsule,
  isEphemeralId,
  isSamId,
  newEphemeralId,
  newSamId,
  parseCapsule,
  upstreamUrlProblem,
} from './capsule.js';
export { CLOCK_SKEW_MS, POLICY_LANES, checkCapsule } from './check.js';
export { SamError } from './errors.js';
export {
  SAM_ISSUED_EVENT,
  SAM_ISSUE_DENIED_EVENT,
  checkIssuance,
  issuanceErin,
  issueCapsule,
} from './issue.js';
export {
  AGENT_PROOF_MAX_AGE_MS,
  SAM_EXEC_REQUESTED_EVENT,
  SAM_REQUESTED_EVENT,
  execRequestDigest,
  mintExecProof,
  mintRequestProof,
  requestErin,
  verifyExecProof,
  verifyRequestProof,
} from './proof.js';

export type {
  CapsuleInspection,
  OpenOptions,
  OpenedCapsule,
  ReadableCapsule,
  SealOptions,
  ToTbzOptions,
} from './bundle.js';
export type {
  Capsule,
  CapsuleRequest,
  CheckAction,
  CheckEvent,
  Constraint,
  ExecRequest,
  SamVerdict,
} from './capsule.js';
export type { CheckResult } from './check.js';
export type { SamErrorCode } from './errors.js';
export type { IssueOptions, Issued } from './issue.js';
export type { ProofCapsuleRef, ProofOptions, VerifyProofOptions } from './proof.js';
