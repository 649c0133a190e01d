export { GatewayError } from './errors.js';
export { DEFAULT_SESSION_TIMEOUT_MS, Gateway, verdictOfKeychainError } from './gateway.js';
export { EPHEMERAL_ID, FileReplayStore } from './replay.js';
export {
  ALLOWED,
  CHECK_ACTIONS,
  RECEIPT_ENTRY,
  RECEIPT_FIELDS,
  RECEIPT_KIND,
  isSamVerdict,
  openReceipt,
  receiptProblems,
  sealReceipt,
} from './receipt.js';
export { GatewaySession } from './session.js';
export {
  WIRE_LIMITS,
  execAnswer,
  execAnswerFromJson,
  execBodyFromJson,
  execRequestFromJson,
  execRequestProblems,
  capsuleBodyFromJson,
  proofFromHeader,
  proofFromJson,
} from './wire.js';
export { proxyRequest, serveGateway } from './daemon.js';
export { GatewayClient, parseGatewayUrl } from './client.js';
export {
  GatewayAdapterError,
  HttpEgressAdapter,
  ProcessAdapter,
  REDACTED,
  SignerAdapter,
  createMasker,
  defaultAdapters,
  execIsolation,
  secretForms,
  selectAdapter,
} from './adapters/index.js';

export type { GatewayErrorCode } from './errors.js';
export type { ActionReader, ExecResult, GatewayOptions } from './gateway.js';
export type { ConsumeResult, ReplayRecord, ReplayStore } from './replay.js';
export type { Receipt, ReceiptVerdict } from './receipt.js';
export type { CapsuleRequestBody, ExecAnswer, ExecBody } from './wire.js';
export type { RunningGateway, ServeGatewayOptions } from './daemon.js';
export type { ClientExecResult, GatewayAddress, GatewayClientOptions, Health } from './client.js';
export type {
  Adapter,
  AdapterInput,
  AdapterName,
  AdapterResult,
  DefaultAdaptersOptions,
  GatewayAdapterErrorCode,
  HttpAdapterOptions,
  Masker,
  MaskStream,
  ProcessAdapterOptions,
  ProcessIsolation,
  SignerAdapterOptions,
} from './adapters/index.js';
