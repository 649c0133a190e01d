/**
 * The vault: WHEN a keychain secret is released. A vault holds one keychain secret sealed
 * (nobody may reveal it) and releases it to its beneficiaries on a date (`unlock_at`),
 * when its owner stops sending heartbeats (a dead-man switch), or — with both — when both
 * have happened. Release is a custody transition in the keychain (`secret-delegated` in
 * `system` authority mode, then the beneficiaries are given the reveal policy), whose
 * reason names the trigger.
 *
 * Every change is audit-first, as in the keychain:
 *
 *  1. take the vault's lock; finish or undo what a crash left (a record newer than HEAD is
 *     made current when its event is in the log, and discarded otherwise);
 *  2. decide (a refusal is logged — `vault-heartbeat-denied`, `vault-open-denied` — signed
 *     by the vault's identity, and thrown);
 *  3. write the next record (signed by the vault) — not yet current;
 *  4. append the event to the audit log (durable) — on failure, discard step 3 and fail;
 *  5. make the record current (atomic HEAD replace).
 *
 * A release is decided once (its record is current before any keychain step); the keychain
 * steps that follow are idempotent (each is skipped when the keychain state already shows
 * it), so a crash between them is finished by the next check, and two watchers racing on
 * one vault serialise on its lock: the second finds it released.
 *
 * Time: every trigger decision reads an injected clock. The highest reading ever seen is
 * persisted (`vault/clock/state.json`); a reading below it means the clock went backwards:
 * nothing is released on it, one `vault-clock-regressed` event is logged per jump, and
 * heartbeats are stamped with the high-water mark (so a backwards clock can only postpone).
 */
import {
  canonicalBytes,
  fromBase64Url,
  getProvider,
  isActorId,
  keyIdOf,
  mintToken,
  newActionId,
  rfc3339,
  systemClock,
  systemRandom,
  toBase64Url,
  toHex,
  verifyToken,
  type Clock,
  type CryptoProvider,
  type Identity,
  type IdentityRegistry,
  type JsonValue,
  type PolicyDecision,
  type Random,
  type TibetToken,
} from '@tibet/core';
import type { AppendReceipt, AuditClient } from '@tibet/continuityd';
import {
  KeychainError,
  listAllows,
  type Keychain,
  type KeychainErrorCode,
  type SecretState,
} from '@tibet/keychain';
import { MAX_INTERVAL_MS, MIN_INTERVAL_MS, parseDuration } from './duration.js';
import { VaultError, type VaultErrorCode } from './errors.js';
import { VAULT_ID, VaultStore, type VaultHead } from './store.js';

// ---------------------------------------------------------------------------------- types

/** What releases a vault. With both, the later of the two (see docs/vault.md §3). */
export type Trigger = 'unlock_at' | 'dead-man' | 'unlock_at+dead-man';

/**
 * `sealed` (trigger not reached), `due` (reached, not yet acted on by a check),
 * `releasing` (released; the keychain transfer is not finished), `released`,
 * `release-failed` (released, but the keychain refused the transfer for good).
 */
export type VaultStatus = 'sealed' | 'due' | 'releasing' | 'released' | 'release-failed';

export interface DeadMan {
  /** ISO 8601 duration, e.g. `P30D`. */
  interval: string;
  interval_ms: number;
  /** The last heartbeat (the creation time before the first). */
  last_heartbeat_at: string;
  last_heartbeat_action_id: string | null;
  heartbeats: number;
}

export interface Release {
  action_id: string;
  trigger: Trigger;
  /** The trigger in words; the reason of every keychain event of the release. */
  reason: string;
  /** When the release was decided (the clock reading). */
  decided_at: string;
  /** When the trigger was reached (`decided_at` − `due_at` is how late the check came). */
  due_at: string;
  /** What noticed it: a watcher's check, or a heartbeat or open that came after the trigger. */
  detected_by: 'check' | 'heartbeat' | 'open';
  transfer: 'pending' | 'done' | 'failed';
  /** Keychain actions of the transfer (in this run; a crashed run's are in the log). */
  transfer_actions: string[];
  failure: { code: string; message: string } | null;
}

/** Everything the vault stores about one vault. Never the content. */
export interface VaultState {
  vault_id: string;
  secret_id: string;
  /** `content`: the vault sealed the content as a new keychain secret; `secret`: an existing one. */
  origin: 'content' | 'secret';
  owner_id: string;
  public_note: string;
  beneficiaries: string[];
  created_at: string;
  created_action_id: string;
  unlock_at: string | null;
  dead_man: DeadMan | null;
  released: boolean;
  release: Release | null;
}

/** The public view of a vault (`info`, `list`): metadata, status and timing; never content. */
export interface VaultInfo {
  vault_id: string;
  secret_id: string;
  origin: 'content' | 'secret';
  owner_id: string;
  public_note: string;
  beneficiaries: string[];
  status: VaultStatus;
  created_at: string;
  unlock_at: string | null;
  dead_man_interval: string | null;
  last_heartbeat_at: string | null;
  heartbeats: number;
  /** Last heartbeat + interval (dead-man vaults). */
  deadline: string | null;
  /** When the vault releases if nothing changes (null once released). */
  release_at: string | null;
  /** Milliseconds until `release_at` (0 when due; null once released). */
  time_until_release_ms: number | null;
  /** The time this view was computed for (never earlier than the highest time observed). */
  as_of: string;
  release: Release | null;
}

export interface VaultOptions {
  /** `$TIBET_HOME`; vault state lives in `<home>/vault`. */
  home: string;
  /** The keychain that holds the vaults' secrets (its audit log is used too). */
  keychain: Keychain;
  /** The vault's own identity (class `system`): signs records, releases and refusals. */
  identity: Identity;
  /** Default: the keychain's. */
  audit?: AuditClient;
  /** Public identities (owners, beneficiaries). Default: the keychain's directory. */
  directory?: IdentityRegistry;
  /** Every trigger decision reads this clock. Default: the system clock. */
  clock?: Clock;
  random?: Random;
  provider?: CryptoProvider;
}

export interface CreateInput {
  /** The owner (signs `vault-created`; the only one who may send heartbeats). */
  actor: Identity;
  /** New content, sealed as a keychain secret the vault creates. Give this or `secretId`. */
  content?: Uint8Array;
  /** An existing keychain secret owned by `actor`. */
  secretId?: string;
  /** The keychain type of new content (default `api_key`). */
  type?: string;
  /** Public: shown by `info` and `list`, recorded in the log. Never put the content here. */
  publicNote: string;
  /** Release on this date (RFC 3339). */
  unlockAt?: string | Date;
  /** Dead-man interval (ISO 8601 duration: `P30D`, `PT12H`, …). */
  deadMan?: string;
  /** Who receives the secret; the first becomes its owner. 1–32 registered actors. */
  beneficiaries: readonly string[];
  /** Default: a generated `vlt_` + 16 hex. */
  vaultId?: string;
  reason?: string;
  /** Where the content came from (recorded; never the value). */
  source?: string;
}

export interface CreateResult {
  info: VaultInfo;
  token: TibetToken;
  receipt: AppendReceipt;
  /** The keychain event that sealed new content (`secret-imported`), if any. */
  secretActionId: string | null;
}

export interface HeartbeatResult {
  info: VaultInfo;
  token: TibetToken;
  receipt: AppendReceipt;
}

export interface OpenResult {
  /** The content. The caller must wipe it (`fill(0)`) when done. */
  content: Uint8Array;
  vault_id: string;
  secret_id: string;
  /** `vault-opened` (on the vault's line). */
  action_id: string;
  /** `secret-unsealed` (on the secret's line; parent = `action_id`). */
  unsealed_action_id: string;
}

export type CheckOutcome =
  'sealed' | 'released' | 'completed' | 'already-released' | 'waiting-clock' | 'failed' | 'error';

export interface CheckItem {
  vault_id: string;
  outcome: CheckOutcome;
  status: VaultStatus;
  release_at: string | null;
  action_id?: string;
  reason?: string;
  /** For `error`: the code and message (a transient failure; retried at the next check). */
  error?: { code: string; message: string };
}

export interface CheckReport {
  /** The clock reading the check used. */
  at: string;
  high_water: string;
  clock: 'ok' | 'regressed';
  vaults: CheckItem[];
}

interface Observation {
  reading: Date;
  /** max(reading, high water): what heartbeats and views use. */
  effective: Date;
  highWater: Date;
  regressed: boolean;
}

interface VaultRecord {
  format: 'tibet-vault-record/1';
  vault_id: string;
  seq: number;
  prev_sha256: string | null;
  action_id: string;
  event: string;
  state: VaultState;
  signer: string;
  kid: string;
  signature?: string;
}

/** Keychain refusals that no retry will change: the release transfer is recorded as failed. */
const PERMANENT: readonly KeychainErrorCode[] = [
  'SECRET_NOT_FOUND',
  'SECRET_DESTROYED',
  'INVALID_TRANSITION',
  'NOT_AUTHORIZED',
  'POLICY_DENIED',
  'INVALID_INPUT',
  'STORE_CORRUPT',
];

const MAX_NOTE = 1000;
const MAX_BENEFICIARIES = 32;
const MAX_CONTENT = 1 << 20;
const CLOCK_LINE = 'vaults:clock';

/** The continuity line (and object id) of a vault in the audit log. */
export function vaultLine(vaultId: string): string {
  return `vault:${vaultId}`;
}

function sha256Hex(p: CryptoProvider, b: Uint8Array): string {
  return toHex(p.sha256(b));
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

function dateInput(v: string | Date, what: string): Date {
  const d = v instanceof Date ? new Date(v.getTime()) : new Date(v);
  if (
    typeof v === 'string' &&
    !/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})$/.test(v)
  )
    throw new VaultError('INVALID_INPUT', `${what} is not an RFC 3339 time`);
  if (Number.isNaN(d.getTime())) throw new VaultError('INVALID_INPUT', `${what} is not a date`);
  return d;
}

/** Deadline of a dead-man vault (ms), or null. */
function deadlineOf(s: VaultState): number | null {
  return s.dead_man ? Date.parse(s.dead_man.last_heartbeat_at) + s.dead_man.interval_ms : null;
}

/** When the vault's trigger is reached: the later of `unlock_at` and the deadline. */
function dueAt(s: VaultState): number {
  const parts = [s.unlock_at ? Date.parse(s.unlock_at) : null, deadlineOf(s)].filter(
    (x): x is number => x !== null,
  );
  return Math.max(...parts);
}

function triggerOf(s: VaultState): { trigger: Trigger; reason: string } {
  const date = s.unlock_at ? `unlock_at ${s.unlock_at} reached` : null;
  const dm = s.dead_man
    ? `dead-man: no heartbeat since ${s.dead_man.last_heartbeat_at} (interval ${s.dead_man.interval})`
    : null;
  if (date && dm) return { trigger: 'unlock_at+dead-man', reason: `${date} and ${dm}` };
  if (date) return { trigger: 'unlock_at', reason: date };
  return { trigger: 'dead-man', reason: dm! };
}

function statusOf(s: VaultState, now: number): VaultStatus {
  if (s.release) {
    if (s.release.transfer === 'done') return 'released';
    return s.release.transfer === 'failed' ? 'release-failed' : 'releasing';
  }
  return now >= dueAt(s) ? 'due' : 'sealed';
}

/** The public view of a vault at `now` (ms). */
export function infoOf(s: VaultState, now: number): VaultInfo {
  const deadline = deadlineOf(s);
  const releaseAt = s.released ? null : dueAt(s);
  return {
    vault_id: s.vault_id,
    secret_id: s.secret_id,
    origin: s.origin,
    owner_id: s.owner_id,
    public_note: s.public_note,
    beneficiaries: [...s.beneficiaries],
    status: statusOf(s, now),
    created_at: s.created_at,
    unlock_at: s.unlock_at,
    dead_man_interval: s.dead_man?.interval ?? null,
    last_heartbeat_at: s.dead_man?.last_heartbeat_at ?? null,
    heartbeats: s.dead_man?.heartbeats ?? 0,
    deadline: deadline === null ? null : iso(deadline),
    release_at: releaseAt === null ? null : iso(releaseAt),
    time_until_release_ms: releaseAt === null ? null : Math.max(0, releaseAt - now),
    as_of: iso(now),
    release: s.release ? structuredClone(s.release) : null,
  };
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x) => b.includes(x));
}

// ---------------------------------------------------------------------------------- vault

export class Vault {
  readonly home: string;
  readonly store: VaultStore;
  readonly keychain: Keychain;
  readonly identity: Identity;
  readonly audit: AuditClient;
  readonly directory: IdentityRegistry;
  readonly clock: Clock;
  readonly random: Random;
  readonly provider: CryptoProvider;

  constructor(o: VaultOptions) {
    if (!o.home) throw new TypeError('"home" is required');
    if (o.identity.actorClass !== 'system')
      throw new TypeError(`"identity" must be of class system, got ${o.identity.actorClass}`);
    this.home = o.home;
    this.store = new VaultStore(o.home);
    this.keychain = o.keychain;
    this.identity = o.identity;
    this.audit = o.audit ?? o.keychain.audit;
    this.directory = o.directory ?? o.keychain.directory;
    this.clock = o.clock ?? systemClock;
    this.random = o.random ?? systemRandom;
    this.provider = o.provider ?? getProvider();
    this.directory.add(o.identity);
  }

  // ------------------------------------------------------------------------- records

  #pack(s: VaultState, seq: number, prev: string | null, actionId: string, event: string) {
    const body: VaultRecord = {
      format: 'tibet-vault-record/1',
      vault_id: s.vault_id,
      seq,
      prev_sha256: prev,
      action_id: actionId,
      event,
      state: s,
      signer: this.identity.id,
      kid: keyIdOf(this.identity.signingPublicKey, this.provider),
    };
    const signature = toBase64Url(this.identity.signer.sign(canonicalBytes(body)));
    return canonicalBytes({ ...body, signature });
  }

  #parse(id: string, seq: number, bytes: Uint8Array): VaultRecord {
    const bad = (why: string, cause?: unknown): never => {
      throw new VaultError('STORE_CORRUPT', `record ${seq} of vault ${id} ${why}`, { cause });
    };
    let r: VaultRecord;
    try {
      r = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes)) as VaultRecord;
    } catch (cause) {
      return bad('is not JSON', cause);
    }
    if (typeof r !== 'object' || r === null || Array.isArray(r)) return bad('is not an object');
    if (
      r.format !== 'tibet-vault-record/1' ||
      r.vault_id !== id ||
      r.seq !== seq ||
      typeof r.action_id !== 'string' ||
      typeof r.event !== 'string' ||
      typeof r.signature !== 'string' ||
      typeof r.state !== 'object' ||
      r.state === null ||
      r.state.vault_id !== id
    )
      return bad('has the wrong shape or metadata');
    const { signature, ...body } = r;
    let ok = false;
    try {
      ok =
        r.signer === this.identity.id &&
        this.provider.ed25519Verify(
          this.identity.signingPublicKey,
          canonicalBytes(body),
          fromBase64Url(signature, 'signature'),
        );
    } catch (cause) {
      return bad('has a malformed signature', cause);
    }
    if (!ok) return bad(`is not signed by ${this.identity.id}`);
    return r;
  }

  async #current(id: string): Promise<{ state: VaultState; head: VaultHead } | undefined> {
    const head = await this.store.head(id);
    if (!head) return undefined;
    const bytes = await this.store.readRecord(id, head.seq);
    if (sha256Hex(this.provider, bytes) !== head.sha256)
      throw new VaultError(
        'STORE_CORRUPT',
        `record ${head.seq} of vault ${id} does not match HEAD`,
      );
    return { state: this.#parse(id, head.seq, bytes).state, head };
  }

  /** Finish or undo what a crash left: a record newer than HEAD whose event is logged is made current. */
  async #recover(id: string): Promise<{ state: VaultState; head: VaultHead } | undefined> {
    const head = await this.store.head(id);
    for (const seq of (await this.store.records(id)).filter((n) => n > (head?.seq ?? 0))) {
      const bytes = await this.store.readRecord(id, seq);
      let actionId: string | undefined;
      try {
        actionId = this.#parse(id, seq, bytes).action_id;
      } catch {
        actionId = undefined;
      }
      if (actionId && (await this.audit.action(actionId))) {
        await this.store.commit(id, {
          seq,
          sha256: sha256Hex(this.provider, bytes),
          action_id: actionId,
        });
      } else {
        await this.store.discardRecord(id, seq);
      }
    }
    return this.#current(id);
  }

  async #locked<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const release = await this.store.lock(id);
    try {
      return await fn();
    } finally {
      await release();
    }
  }

  async #require(id: string): Promise<{ state: VaultState; head: VaultHead }> {
    const cur = await this.#recover(id);
    if (!cur) throw new VaultError('VAULT_NOT_FOUND', `no vault ${id}`);
    return cur;
  }

  // ------------------------------------------------------------------------- events

  async #mint(
    actor: Identity,
    line: string,
    event: string,
    reason: string,
    erin: Record<string, JsonValue>,
    eromheen: Record<string, JsonValue>,
    eraan: JsonValue,
    parent: { action_id: string; generation: number } | null,
    at: Date,
    policy: PolicyDecision[] = [],
  ): Promise<TibetToken> {
    const prev = await this.audit.lastOnLine(line);
    return mintToken(
      {
        actor: actor.id,
        actorClass: actor.actorClass,
        event,
        erachter: reason,
        erin,
        eraan,
        eromheen,
        policy,
        prev: prev ? { hash: prev.tokenHash, generation: prev.generation } : null,
        parent,
        actionId: newActionId(this.random),
      },
      actor,
      { clock: { now: () => at }, random: this.random, provider: this.provider },
    );
  }

  async #append(token: TibetToken, line: string): Promise<AppendReceipt> {
    try {
      return await this.audit.append(token, { objectId: line, continuityId: line });
    } catch (cause) {
      throw new VaultError(
        'AUDIT_FAILED',
        `the audit log refused or failed the event: ${(cause as Error).message}`,
        { cause },
      );
    }
  }

  /** Audit-first state change: record (not current) → durable event → HEAD. */
  async #change(
    cur: { head: VaultHead } | undefined,
    next: VaultState,
    token: TibetToken,
  ): Promise<AppendReceipt> {
    const id = next.vault_id;
    const seq = (cur?.head.seq ?? 0) + 1;
    const bytes = this.#pack(next, seq, cur?.head.sha256 ?? null, token.action_id, token.event);
    await this.store.writeRecord(id, seq, bytes);
    let receipt: AppendReceipt;
    try {
      receipt = await this.#append(token, vaultLine(id));
    } catch (e) {
      let logged: boolean | undefined;
      try {
        logged = (await this.audit.action(token.action_id)) !== undefined;
      } catch {
        logged = undefined;
      }
      if (logged === undefined) throw e; // unknown: the next access's recovery settles it
      if (!logged) {
        await this.store.discardRecord(id, seq);
        throw e;
      }
      receipt = {
        index: -1,
        lineHash: '',
        leafHash: '',
        actionId: token.action_id,
        receivedAt: '',
      };
    }
    await this.store.commit(id, {
      seq,
      sha256: sha256Hex(this.provider, bytes),
      action_id: token.action_id,
    });
    return receipt;
  }

  /** Log a refusal (signed by the vault, best effort) and throw it. */
  async #deny(
    s: VaultState,
    event: 'vault-heartbeat-denied' | 'vault-open-denied',
    requester: string,
    code: VaultErrorCode,
    message: string,
    requestedReason: string,
    at: Date,
  ): Promise<never> {
    const token = await this.#mint(
      this.identity,
      vaultLine(s.vault_id),
      event,
      `refused ${event === 'vault-open-denied' ? 'open' : 'heartbeat'} by ${requester}: ${message}`,
      {
        vault_id: s.vault_id,
        secret_id: s.secret_id,
        requested_by: requester,
        requested_reason: requestedReason,
        code,
        status: statusOf(s, at.getTime()),
      },
      { authority_mode: 'system' },
      [{ object_id: vaultLine(s.vault_id) }],
      null,
      at,
      [
        {
          rule: code === 'NOT_OWNER' || code === 'NOT_BENEFICIARY' ? 'vault.actor' : 'vault.status',
          decision: 'deny',
          detail: message,
        },
      ],
    );
    await this.#append(token, vaultLine(s.vault_id)).catch(() => undefined);
    throw new VaultError(code, message);
  }

  /** Is `token` signed by the key the directory holds for its actor? */
  #verified(token: TibetToken): boolean {
    const key = this.directory.signingKey(token.actor, token.kid);
    if (!key) return false;
    try {
      verifyToken(token, key, this.provider);
      return true;
    } catch {
      return false;
    }
  }

  // ------------------------------------------------------------------------- the clock

  /**
   * Read the clock and compare it with the highest time this home has observed. A reading
   * below it is "time went backwards": logged once per jump (`vault-clock-regressed`).
   */
  async #observe(at?: Date): Promise<Observation> {
    const reading = at ?? this.clock.now();
    if (Number.isNaN(reading.getTime()))
      throw new VaultError('INVALID_INPUT', 'the clock gave no time');
    const release = await this.store.lockClock();
    try {
      const c = await this.store.readClock();
      const hw = c ? new Date(c.high_water) : undefined;
      if (!c || !hw || reading.getTime() >= hw.getTime()) {
        if (!c || !hw || reading.getTime() > hw.getTime() || c.warned_at_high_water !== null)
          await this.store.writeClock({
            format: 'tibet-vault-clock/1',
            high_water: rfc3339(reading),
            warned_at_high_water: null,
          });
        return { reading, effective: reading, highWater: reading, regressed: false };
      }
      if (c.warned_at_high_water !== c.high_water) {
        const token = await this.#mint(
          this.identity,
          CLOCK_LINE,
          'vault-clock-regressed',
          `the clock reads ${rfc3339(reading)}, before ${c.high_water} already observed: no release until it is passed again`,
          {
            reading: rfc3339(reading),
            high_water: c.high_water,
            behind_ms: hw.getTime() - reading.getTime(),
            vaults: await this.store.list(),
          },
          { authority_mode: 'system' },
          [{ object_id: CLOCK_LINE }],
          null,
          hw,
        );
        await this.#append(token, CLOCK_LINE);
        await this.store.writeClock({ ...c, warned_at_high_water: c.high_water });
      }
      return { reading, effective: hw, highWater: hw, regressed: true };
    } finally {
      await release();
    }
  }

  /** The time views use: max(clock, highest observed), without writing anything. */
  async #viewTime(): Promise<number> {
    const now = this.clock.now().getTime();
    const c = await this.store.readClock();
    return Math.max(now, c ? Date.parse(c.high_water) : now);
  }

  // ------------------------------------------------------------------------- reading

  async ids(): Promise<string[]> {
    return this.store.list();
  }

  /** The stored state of a vault (after finishing anything a crash left). Never content. */
  async state(vaultId: string): Promise<VaultState> {
    this.store.dir(vaultId);
    return this.#locked(vaultId, async () => (await this.#require(vaultId)).state);
  }

  /** Metadata, status and time until release. Never content. */
  async info(vaultId: string): Promise<VaultInfo> {
    const s = await this.state(vaultId);
    return infoOf(s, await this.#viewTime());
  }

  /** Every vault (optionally only one owner's, or one beneficiary's). Never content. */
  async list(o: { owner?: string; beneficiary?: string } = {}): Promise<VaultInfo[]> {
    const now = await this.#viewTime();
    const out: VaultInfo[] = [];
    for (const id of await this.ids()) {
      let s: VaultState;
      try {
        s = await this.state(id);
      } catch (e) {
        if (VaultError.is(e) && e.code === 'VAULT_NOT_FOUND') continue;
        throw e;
      }
      if (o.owner !== undefined && s.owner_id !== o.owner) continue;
      if (o.beneficiary !== undefined && !s.beneficiaries.includes(o.beneficiary)) continue;
      out.push(infoOf(s, now));
    }
    return out;
  }

  /** Run recovery for every vault (e.g. at start). */
  async recoverAll(): Promise<void> {
    for (const id of await this.ids()) await this.#locked(id, () => this.#recover(id));
  }

  // ------------------------------------------------------------------------- create

  async create(i: CreateInput): Promise<CreateResult> {
    // ---- input, all before anything is written
    const errors: string[] = [];
    if (typeof i.publicNote !== 'string' || i.publicNote.length > MAX_NOTE)
      errors.push(`publicNote must be a string of at most ${MAX_NOTE} characters`);
    const hasContent = i.content !== undefined;
    if (hasContent === (i.secretId !== undefined)) errors.push('give either content or secretId');
    if (hasContent && !(i.content instanceof Uint8Array))
      errors.push('content must be a Uint8Array');
    else if (hasContent && (i.content!.length === 0 || i.content!.length > MAX_CONTENT))
      errors.push(`content must be 1..${MAX_CONTENT} bytes`);
    if (i.unlockAt === undefined && i.deadMan === undefined)
      errors.push('give unlockAt, deadMan, or both');
    let intervalMs: number | undefined;
    if (i.deadMan !== undefined) {
      intervalMs = parseDuration(i.deadMan);
      if (intervalMs === undefined)
        errors.push(
          'deadMan must be an ISO 8601 duration in weeks/days/hours/minutes/seconds (P30D, PT12H)',
        );
      else if (intervalMs < MIN_INTERVAL_MS || intervalMs > MAX_INTERVAL_MS)
        errors.push('deadMan must be between 1 second and 100 years');
    }
    let unlockAt: Date | undefined;
    if (i.unlockAt !== undefined) {
      try {
        unlockAt = dateInput(i.unlockAt, 'unlockAt');
      } catch (e) {
        errors.push((e as Error).message);
      }
    }
    const bens: string[] = Array.isArray(i.beneficiaries)
      ? [...(i.beneficiaries as readonly string[])]
      : [];
    if (bens.length < 1 || bens.length > MAX_BENEFICIARIES)
      errors.push(`beneficiaries: 1..${MAX_BENEFICIARIES} actors`);
    if (new Set(bens).size !== bens.length) errors.push('beneficiaries are listed twice');
    for (const b of bens) {
      if (typeof b !== 'string' || !isActorId(b))
        errors.push(`beneficiary ${String(b)} is not an actor id`);
      else if (b === this.identity.id || b === this.keychain.service.id)
        errors.push(`beneficiary ${b} is a service identity`);
      else if (this.directory.get(b).length === 0)
        errors.push(`beneficiary ${b} is not registered (no public identity)`);
    }
    const vaultId = i.vaultId ?? `vlt_${toHex(this.random(8))}`;
    if (!VAULT_ID.test(vaultId)) errors.push(`vault id must match ${VAULT_ID.source}`);
    if (this.directory.get(i.actor.id).length === 0)
      errors.push(`owner ${i.actor.id} is not registered`);
    if (errors.length) throw new VaultError('INVALID_INPUT', errors.join('; '));
    const reason = i.reason?.trim() ? i.reason : `seal ${vaultId} for ${bens.join(', ')}`;

    const obs = await this.#observe();
    const now = obs.effective;
    if (unlockAt && unlockAt.getTime() <= now.getTime())
      throw new VaultError('INVALID_INPUT', `unlockAt ${rfc3339(unlockAt)} is not in the future`);

    return this.#locked(vaultId, async () => {
      if (await this.#recover(vaultId))
        throw new VaultError('VAULT_EXISTS', `vault ${vaultId} exists`);
      let secretId: string;
      let parent: { action_id: string; generation: number } | null = null;
      let secretActionId: string | null = null;
      if (hasContent) {
        secretId = `vault.${vaultId}`;
        const added = await this.#kc(() =>
          this.keychain.add({
            actor: i.actor,
            secretId,
            type: i.type ?? 'api_key',
            issuer: 'tibet-vault',
            scope: vaultLine(vaultId),
            material: i.content!,
            // nobody may reveal or use it until the release names the beneficiaries
            policy: { reveal: [], use: [] },
            reason: `content of ${vaultId}, sealed until its release`,
            source: i.source ?? 'vault',
            notes: [`vault:${vaultId}`],
          }),
        );
        secretActionId = added.token.action_id;
        parent = { action_id: added.token.action_id, generation: added.token.generation };
      } else {
        secretId = i.secretId!;
        const ks = await this.#kc(() => this.keychain.state(secretId));
        this.#checkExisting(ks, i.actor.id, bens);
        for (const other of await this.ids()) {
          if (other === vaultId) continue;
          const o = await this.#locked(other, () => this.#recover(other));
          if (o && o.state.secret_id === secretId && !o.state.released)
            throw new VaultError(
              'SECRET_IN_VAULT',
              `${secretId} is already sealed in vault ${other}`,
            );
        }
        // causally after the secret's current state (the event that made its HEAD)
        const head = await this.keychain.store.head(secretId);
        const at = head ? await this.audit.action(head.action_id) : undefined;
        if (head && at) parent = { action_id: head.action_id, generation: at.generation };
      }
      const createdAt = rfc3339(now);
      const token = await this.#mint(
        i.actor,
        vaultLine(vaultId),
        'vault-created',
        reason,
        {
          vault_id: vaultId,
          secret_id: secretId,
          origin: hasContent ? 'content' : 'secret',
          owner_id: i.actor.id,
          beneficiaries: bens,
          public_note: i.publicNote,
          unlock_at: unlockAt ? rfc3339(unlockAt) : null,
          dead_man_interval: i.deadMan ?? null,
          ...(i.source ? { source: i.source } : {}),
        },
        {
          authority_mode: 'admin',
          trigger_rule: 'the later of unlock_at and the dead-man deadline',
        },
        [{ object_id: vaultLine(vaultId) }, { object_id: secretId }],
        parent,
        now,
      );
      if (!this.#verified(token))
        throw new VaultError('SIGNATURE_INVALID', `${i.actor.id}'s key is not the registered one`);
      const state: VaultState = {
        vault_id: vaultId,
        secret_id: secretId,
        origin: hasContent ? 'content' : 'secret',
        owner_id: i.actor.id,
        public_note: i.publicNote,
        beneficiaries: bens,
        created_at: createdAt,
        created_action_id: token.action_id,
        unlock_at: unlockAt ? rfc3339(unlockAt) : null,
        dead_man:
          intervalMs === undefined
            ? null
            : {
                interval: i.deadMan!,
                interval_ms: intervalMs,
                last_heartbeat_at: createdAt,
                last_heartbeat_action_id: null,
                heartbeats: 0,
              },
        released: false,
        release: null,
      };
      const receipt = await this.#change(undefined, state, token);
      return { info: infoOf(state, now.getTime()), token, receipt, secretActionId };
    });
  }

  #checkExisting(ks: SecretState, owner: string, bens: readonly string[]): void {
    if (ks.owner_id !== owner)
      throw new VaultError('NOT_OWNER', `only the owner of ${ks.secret_id} may seal it in a vault`);
    if (ks.lifecycle_state !== 'active')
      throw new VaultError('INVALID_INPUT', `${ks.secret_id} is ${ks.lifecycle_state}, not active`);
    if (ks.pending_handoff)
      throw new VaultError('INVALID_INPUT', `${ks.secret_id} has a pending handoff`);
    for (const b of bens) {
      if (b === ks.owner_id || b === ks.custodian_id || listAllows(ks, ks.policy.reveal, b))
        throw new VaultError(
          'INVALID_INPUT',
          `beneficiary ${b} can already reveal or open ${ks.secret_id}: change its custody or policy first`,
        );
    }
  }

  /** Run a keychain call; a KeychainError becomes KEYCHAIN_REFUSED naming its code. */
  async #kc<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      if (KeychainError.is(e))
        throw new VaultError('KEYCHAIN_REFUSED', `keychain: ${e.message} [${e.code}]`, {
          cause: e,
        });
      throw e;
    }
  }

  // ------------------------------------------------------------------------- release

  /** Release a sealed vault whose trigger is reached (under its lock). */
  async #release(
    cur: { state: VaultState; head: VaultHead },
    obs: Observation,
    by: Release['detected_by'],
  ): Promise<{ state: VaultState; head: VaultHead; actionId: string }> {
    const s = cur.state;
    const due = dueAt(s);
    const { trigger, reason } = triggerOf(s);
    const deadline = deadlineOf(s);
    const token = await this.#mint(
      this.identity,
      vaultLine(s.vault_id),
      'vault-released',
      reason,
      {
        vault_id: s.vault_id,
        secret_id: s.secret_id,
        trigger,
        unlock_at: s.unlock_at,
        deadline: deadline === null ? null : iso(deadline),
        last_heartbeat_at: s.dead_man?.last_heartbeat_at ?? null,
        due_at: iso(due),
        observed_at: rfc3339(obs.reading),
        late_by_ms: obs.reading.getTime() - due,
        beneficiaries: s.beneficiaries,
        detected_by: by,
      },
      { authority_mode: 'system', high_water: rfc3339(obs.highWater) },
      [{ object_id: vaultLine(s.vault_id) }, { object_id: s.secret_id }],
      null,
      obs.reading,
      [{ rule: `trigger.${trigger}`, decision: 'allow', detail: `${reason} (due ${iso(due)})` }],
    );
    const next: VaultState = {
      ...structuredClone(s),
      released: true,
      release: {
        action_id: token.action_id,
        trigger,
        reason,
        decided_at: rfc3339(obs.reading),
        due_at: iso(due),
        detected_by: by,
        transfer: 'pending',
        transfer_actions: [],
        failure: null,
      },
    };
    await this.#change(cur, next, token);
    const head = (await this.store.head(s.vault_id))!;
    return { state: next, head, actionId: token.action_id };
  }

  /**
   * The keychain side of a release, idempotent: owner → first beneficiary, then the reveal
   * policy → the beneficiaries, both in `system` mode with the release as causal parent.
   * A transient failure leaves the transfer pending (retried by the next check); a refusal
   * no retry can change records it as failed (`vault-release-failed`).
   */
  async #transfer(cur: { state: VaultState; head: VaultHead }): Promise<VaultState> {
    const s = cur.state;
    const rel = s.release!;
    const logged = await this.audit.action(rel.action_id);
    if (!logged)
      throw new VaultError('STORE_CORRUPT', `release ${rel.action_id} is not in the log`);
    const parent = { action_id: rel.action_id, generation: logged.generation };
    const actions: string[] = [];
    let failure: { code: string; message: string } | null = null;
    try {
      const ks = await this.keychain.state(s.secret_id);
      const first = s.beneficiaries[0]!;
      if (ks.owner_id !== first) {
        const o = await this.keychain.delegate({
          actor: this.identity,
          secretId: s.secret_id,
          reason: rel.reason,
          parent,
          role: 'owner',
          assignee: first,
          authorityMode: 'system',
        });
        actions.push(o.token.action_id);
      }
      const after = await this.keychain.state(s.secret_id);
      if (!sameSet(after.policy.reveal, s.beneficiaries)) {
        const o = await this.keychain.setPolicy({
          actor: this.identity,
          secretId: s.secret_id,
          reason: rel.reason,
          parent,
          policy: { reveal: [...s.beneficiaries] },
          authorityMode: 'system',
        });
        actions.push(o.token.action_id);
      }
    } catch (e) {
      if (!(KeychainError.is(e) && PERMANENT.includes(e.code))) throw e;
      failure = { code: e.code, message: e.message };
    }
    const event = failure ? 'vault-release-failed' : 'vault-release-completed';
    const lastParent = actions.length
      ? await this.audit.action(actions[actions.length - 1]!)
      : undefined;
    const next: VaultState = structuredClone(s);
    next.release = {
      ...rel,
      transfer: failure ? 'failed' : 'done',
      transfer_actions: [...rel.transfer_actions, ...actions],
      failure,
    };
    // never stamped before the release it completes
    const at = new Date(Math.max(this.clock.now().getTime(), Date.parse(rel.decided_at)));
    const token = await this.#mint(
      this.identity,
      vaultLine(s.vault_id),
      event,
      failure
        ? `the keychain refused the release of ${s.secret_id}: ${failure.message} [${failure.code}]`
        : `${s.secret_id} handed to ${s.beneficiaries.join(', ')} (${rel.reason})`,
      {
        vault_id: s.vault_id,
        secret_id: s.secret_id,
        release_action_id: rel.action_id,
        keychain_actions: next.release.transfer_actions,
        owner_id: s.beneficiaries[0]!,
        reveal: s.beneficiaries,
        ...(failure ? { code: failure.code } : {}),
      },
      { authority_mode: 'system' },
      [{ object_id: vaultLine(s.vault_id) }, { object_id: s.secret_id }],
      lastParent && actions.length
        ? { action_id: actions[actions.length - 1]!, generation: lastParent.generation }
        : parent,
      at,
    );
    await this.#change(cur, next, token);
    return next;
  }

  /** Evaluate one vault under its lock: release it when due, finish a pending transfer. */
  async #evaluate(
    found: { state: VaultState; head: VaultHead },
    obs: Observation,
    by: Release['detected_by'],
  ): Promise<{ state: VaultState; head: VaultHead; item: CheckItem }> {
    let cur = found;
    const id = found.state.vault_id;
    const item = (outcome: CheckOutcome, extra: Partial<CheckItem> = {}): CheckItem => {
      const v = infoOf(cur.state, obs.effective.getTime());
      return { vault_id: id, outcome, status: v.status, release_at: v.release_at, ...extra };
    };
    if (cur.state.release) {
      if (cur.state.release.transfer !== 'pending')
        return { ...cur, item: item('already-released') };
      const next = await this.#transfer(cur);
      cur = { state: next, head: (await this.store.head(id))! };
      return {
        ...cur,
        item: item(next.release!.transfer === 'done' ? 'completed' : 'failed', {
          action_id: next.release!.action_id,
          reason: next.release!.reason,
        }),
      };
    }
    if (obs.regressed) return { ...cur, item: item('waiting-clock') };
    if (obs.reading.getTime() < dueAt(cur.state)) return { ...cur, item: item('sealed') };
    const r = await this.#release(cur, obs, by);
    cur = { state: r.state, head: r.head };
    const next = await this.#transfer(cur);
    cur = { state: next, head: (await this.store.head(id))! };
    return {
      ...cur,
      item: item(next.release!.transfer === 'done' ? 'released' : 'failed', {
        action_id: r.actionId,
        reason: next.release!.reason,
      }),
    };
  }

  /**
   * Check every vault once: release those whose trigger is reached (exactly once, even
   * with several watchers), finish transfers a crash left pending. A vault that fails
   * (e.g. the log is down) is reported and retried next time; the others go on.
   */
  async check(o: { at?: Date } = {}): Promise<CheckReport> {
    const obs = await this.#observe(o.at);
    const report: CheckReport = {
      at: rfc3339(obs.reading),
      high_water: rfc3339(obs.highWater),
      clock: obs.regressed ? 'regressed' : 'ok',
      vaults: [],
    };
    for (const id of await this.ids()) {
      try {
        const r = await this.#locked(id, async () => {
          const cur = await this.#recover(id);
          return cur ? this.#evaluate(cur, obs, 'check') : undefined;
        });
        if (r) report.vaults.push(r.item);
      } catch (e) {
        const code = (e as { code?: unknown }).code;
        report.vaults.push({
          vault_id: id,
          outcome: 'error',
          status: 'sealed',
          release_at: null,
          error: {
            code: typeof code === 'string' ? code : 'ERROR',
            message: e instanceof Error ? e.message : String(e),
          },
        });
      }
    }
    return report;
  }

  // ------------------------------------------------------------------------- heartbeat

  /**
   * The owner is alive: reset the dead-man deadline. The event is the owner's own signed
   * token (verified against the directory). A non-owner is refused and the refusal logged;
   * a heartbeat after the trigger was reached releases the vault instead (and is refused).
   */
  async heartbeat(i: {
    actor: Identity;
    vaultId: string;
    reason?: string;
  }): Promise<HeartbeatResult> {
    this.store.dir(i.vaultId);
    const reason = i.reason?.trim() ? i.reason : `heartbeat: ${i.actor.id} is alive`;
    const obs = await this.#observe();
    return this.#locked(i.vaultId, async () => {
      let cur = await this.#require(i.vaultId);
      const s = cur.state;
      if (i.actor.id !== s.owner_id)
        return this.#deny(
          s,
          'vault-heartbeat-denied',
          i.actor.id,
          'NOT_OWNER',
          `${i.actor.id} is not the owner of ${s.vault_id}`,
          reason,
          obs.effective,
        );
      if (!s.dead_man)
        throw new VaultError('INVALID_INPUT', `vault ${s.vault_id} has no dead-man switch`);
      if (!s.released) {
        const e = await this.#evaluate(cur, obs, 'heartbeat');
        cur = { state: e.state, head: e.head };
      }
      if (cur.state.released)
        return this.#deny(
          cur.state,
          'vault-heartbeat-denied',
          i.actor.id,
          'ALREADY_RELEASED',
          `vault ${s.vault_id} was released (${cur.state.release!.reason})`,
          reason,
          obs.effective,
        );
      const at = obs.effective;
      const dm = cur.state.dead_man!;
      const token = await this.#mint(
        i.actor,
        vaultLine(s.vault_id),
        'vault-heartbeat',
        reason,
        {
          vault_id: s.vault_id,
          heartbeat_at: rfc3339(at),
          previous_heartbeat_at: dm.last_heartbeat_at,
          deadline: iso(at.getTime() + dm.interval_ms),
          ...(obs.regressed ? { clock_regressed: true, reading: rfc3339(obs.reading) } : {}),
        },
        { authority_mode: 'admin' },
        [{ object_id: vaultLine(s.vault_id) }],
        null,
        at,
      );
      if (!this.#verified(token))
        return this.#deny(
          cur.state,
          'vault-heartbeat-denied',
          i.actor.id,
          'SIGNATURE_INVALID',
          `the heartbeat is not signed with ${i.actor.id}'s registered key`,
          reason,
          obs.effective,
        );
      const next = structuredClone(cur.state);
      next.dead_man = {
        ...dm,
        last_heartbeat_at: rfc3339(at),
        last_heartbeat_action_id: token.action_id,
        heartbeats: dm.heartbeats + 1,
      };
      const receipt = await this.#change(cur, next, token);
      return { info: infoOf(next, at.getTime()), token, receipt };
    });
  }

  // ------------------------------------------------------------------------- open

  /**
   * A beneficiary reads the content, only once the vault is released: `vault-opened`
   * (signed by the beneficiary) is durable first, then the keychain reveals the secret
   * (`secret-unsealed`, parent = the open). Anyone else, or before the release: refused
   * and logged (`vault-open-denied`).
   */
  async open(i: { actor: Identity; vaultId: string; reason?: string }): Promise<OpenResult> {
    this.store.dir(i.vaultId);
    const reason = i.reason?.trim() ? i.reason : `open ${i.vaultId} as a beneficiary`;
    const obs = await this.#observe();
    const opened = await this.#locked(i.vaultId, async () => {
      let cur = await this.#require(i.vaultId);
      const s = cur.state;
      if (!s.beneficiaries.includes(i.actor.id))
        return this.#deny(
          s,
          'vault-open-denied',
          i.actor.id,
          'NOT_BENEFICIARY',
          `${i.actor.id} is not a beneficiary of ${s.vault_id}`,
          reason,
          obs.effective,
        );
      if (!s.release || s.release.transfer === 'pending') {
        const e = await this.#evaluate(cur, obs, 'open');
        cur = { state: e.state, head: e.head };
      }
      const rel = cur.state.release;
      if (!rel) {
        const v = infoOf(cur.state, obs.effective.getTime());
        return this.#deny(
          cur.state,
          'vault-open-denied',
          i.actor.id,
          'NOT_RELEASED',
          `vault ${s.vault_id} is sealed until ${v.release_at ?? '?'}${obs.regressed ? ' (the clock went backwards)' : ''}`,
          reason,
          obs.effective,
        );
      }
      if (rel.transfer !== 'done')
        return this.#deny(
          cur.state,
          'vault-open-denied',
          i.actor.id,
          'KEYCHAIN_REFUSED',
          `the release of ${s.vault_id} did not complete (${rel.failure?.code ?? 'pending'})`,
          reason,
          obs.effective,
        );
      const relLogged = await this.audit.action(rel.action_id);
      const token = await this.#mint(
        i.actor,
        vaultLine(s.vault_id),
        'vault-opened',
        reason,
        { vault_id: s.vault_id, secret_id: s.secret_id, opened_by: i.actor.id },
        { authority_mode: 'admin' },
        [{ object_id: vaultLine(s.vault_id) }, { object_id: s.secret_id }],
        relLogged ? { action_id: rel.action_id, generation: relLogged.generation } : null,
        obs.effective,
      );
      if (!this.#verified(token))
        return this.#deny(
          cur.state,
          'vault-open-denied',
          i.actor.id,
          'SIGNATURE_INVALID',
          `the request is not signed with ${i.actor.id}'s registered key`,
          reason,
          obs.effective,
        );
      await this.#append(token, vaultLine(s.vault_id));
      return { s: cur.state, token };
    });
    const r = await this.#kc(() =>
      this.keychain.reveal({
        actor: i.actor,
        secretId: opened.s.secret_id,
        reason,
        parent: { action_id: opened.token.action_id, generation: opened.token.generation },
      }),
    );
    return {
      content: r.material,
      vault_id: opened.s.vault_id,
      secret_id: opened.s.secret_id,
      action_id: opened.token.action_id,
      unsealed_action_id: r.token.action_id,
    };
  }
}
