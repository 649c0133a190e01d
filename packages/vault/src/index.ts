export { VaultError } from './errors.js';
export { Vault, infoOf, vaultLine } from './vault.js';
export { VAULT_ID, VaultStore } from './store.js';
export { MAX_INTERVAL_MS, MIN_INTERVAL_MS, formatSpan, parseDuration } from './duration.js';
export { runWatcher } from './watcher.js';

export type { VaultErrorCode } from './errors.js';
export type {
  CheckItem,
  CheckOutcome,
  CheckReport,
  CreateInput,
  CreateResult,
  DeadMan,
  HeartbeatResult,
  OpenResult,
  Release,
  Trigger,
  VaultInfo,
  VaultOptions,
  VaultState,
  VaultStatus,
} from './vault.js';
export type { ClockState, VaultHead } from './store.js';
export type { WatcherOptions } from './watcher.js';
