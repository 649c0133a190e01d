export {
  checkpointText,
  noteKeyId,
  parseCheckpoint,
  signCheckpoint,
  verifierKey,
  verifyCheckpoint,
} from './checkpoint.js';
export { DaemonClient, EmbeddedClient } from './client.js';
export { DiskIndex, INDEX_FORMAT } from './disk-index.js';
export { SHARED_READER_IDLE_MS, queryLog, tailLog } from './query.js';
export { serveLog } from './daemon.js';
export { readJsonBody, requestJson, sendJson } from './http-json.js';
export type { JsonCallOptions, LoopbackAddress } from './http-json.js';
export { ContinuityError } from './errors.js';
export {
  NumberedFiles,
  fsyncDir,
  listDir,
  readTextIfExists,
  replaceFile,
  waitForDirLock,
  writeNewFile,
} from './durable.js';
export { DirLock } from './lock.js';
export { MemoryIndex } from './log-index.js';
export {
  AuditLog,
  latestCheckpoint,
  listSegments,
  nodeIo,
  readRecordFrom,
  recover,
  segmentName,
  splitLines,
} from './log.js';
export { MerkleFrontier, emptyRoot, leafHash, nodeHash, rootOf } from './merkle.js';
export {
  TLOG_PROOF_HEADER,
  exportTlogProof,
  formatTlogProof,
  inclusionProofLength,
  parseTlogProof,
  readLogLine,
  verifyConsistency,
  verifyInclusion,
  verifyTlogProof,
} from './proof.js';
export { TREE_DIR, TreeStore, levelFileName } from './tree-store.js';
export { verifyLog } from './verify.js';
export {
  OBJECT_ID,
  RECORD_VERSION,
  encodeRecord,
  lineHash,
  parseRecord,
  parseRecordText,
} from './record.js';

export type { Checkpoint, NoteSignature, SignedCheckpoint } from './checkpoint.js';
export type { AuditClient, DaemonAddress, LogHead } from './client.js';
export type { DiskIndexOptions, DiskIndexStats, IndexRange, LogPosition } from './disk-index.js';
export type { LogHit, LogQuery, QueryOptions, TailOptions, TimeInput } from './query.js';
export type { RouteHandler, RunningDaemon, ServeOptions } from './daemon.js';
export type { ContinuityErrorCode } from './errors.js';
export type { WriteNewFileOptions } from './durable.js';
export type { LockInfo } from './lock.js';
export type { ActionEntry, IndexedRecord, LogIndex, LogObserver } from './log-index.js';
export type { AppendOptions, AppendReceipt, AuditLogOptions, LogIo, LogMeta } from './log.js';
export type {
  ExportTlogProofOptions,
  TlogProof,
  TlogProofInput,
  VerifiedTlogProof,
  VerifyTlogProofOptions,
} from './proof.js';
export type { CausalBlock, LogRecord } from './record.js';
export type { TreeStoreOptions } from './tree-store.js';
export type {
  VerifyCheck,
  VerifyCheckName,
  VerifyLogOptions,
  VerifyProblem,
  VerifyProblemCode,
  VerifyProgress,
  VerifyReport,
  VerifyStats,
} from './verify.js';
