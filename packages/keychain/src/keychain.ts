/**
 * The keychain: every operation is decided by the state machine ({@link decide}), recorded
 * as a signed token in the audit log, and only then made current in the store. A change
 * that cannot be audited does not happen:
 *
 *  1. take the secret's lock; finish or undo any operation a crash left half-done;
 *  2. decide (a refusal is itself logged as `secret-denied`, signed by the keychain);
 *  3. write the next revision (and new material) — not yet current;
 *  4. append the event to the audit log (durable) — on failure, discard step 3 and fail;
 *  5. make the revision current (atomic HEAD replace).
 *
 * After a crash between 4 and 5 the revision is made current by recovery; between 3 and 4
 * it is discarded. So the store and the log always agree.
 */
import {
  canonicalBytes,
  fromBase64Url,
  getProvider,
  isActorId,
  mintToken,
  newActionId,
  rfc3339,
  systemClock,
  systemRandom,
  wipe,
  type Clock,
  type CryptoProvider,
  type Identity,
  type IdentityRegistry,
  type JsonValue,
  type PolicyDecision,
  type Random,
  type TibetToken,
  sha256Hex,
} from '@tibet/core';
import type { AppendReceipt, AuditClient } from '@tibet/continuityd';
import { openTza, packTza, readTza, rewrapTza, type RecipientKey } from '@tibet/tza';
import { KeychainError } from './errors.js';
import { generateMaterial } from './material.js';
import {
  DEFAULT_POLICY,
  EVENT_OF,
  apply,
  decide,
  toRecord,
  validatePolicy,
  type ApplyInput,
  type Operation,
  type Request,
  type SecretPolicy,
  type SecretRecord,
  type SecretState,
} from './state.js';
import { FileStore, type Head, type SecretStore } from './store.js';
import {
  AUTHORITY_MODES,
  GENERATABLE_TYPES,
  REPORTABLE_EXPOSURES,
  SECRET_ID,
  parseSecretType,
  type AuthorityMode,
  type CustodyRole,
  type ReportableExposure,
} from './vocabulary.js';

export interface KeychainOptions {
  /** `$TIBET_HOME`; the store lives in `<home>/keychain`. */
  home?: string;
  store?: SecretStore;
  /** Where every event goes (embedded or daemon). */
  audit: AuditClient;
  /** The keychain's own identity (class `system`): signs revisions and denials, and can open material. */
  service: Identity;
  /** Public identities of actors (for recipients' encryption keys). */
  directory: IdentityRegistry;
  clock?: Clock;
  random?: Random;
  provider?: CryptoProvider;
}

export interface AddInput {
  actor: Identity;
  secretId: string;
  /** A SecretType (the short `service_account_cred` is accepted). */
  type: string;
  issuer: string;
  scope: string;
  /** The material; the keychain zeroes its copies after sealing. */
  material?: Uint8Array;
  expiresAt?: string | Date | null;
  /** Default: the acting identity. */
  owner?: string;
  /** Default: the keychain's service identity. */
  custodian?: string;
  activeOperator?: string | null;
  policy?: Partial<SecretPolicy>;
  /** Why (erachter). */
  reason: string;
  /** Where the material came from (stdin, file, env): recorded, never the value. */
  source?: string;
  notes?: string[];
}

export interface OpInput {
  actor: Identity;
  secretId: string;
  reason: string;
  /** A causal parent (e.g. the capsule's action for proxied use). */
  parent?: { action_id: string; generation: number } | null;
}

export interface Outcome {
  record: SecretRecord;
  state: SecretState;
  token: TibetToken;
  receipt: AppendReceipt;
}

type OpExtra = Partial<ApplyInput> & {
  erin?: Record<string, JsonValue>;
  eromheen?: Record<string, JsonValue>;
};

export class Keychain {
  readonly store: SecretStore;
  readonly audit: AuditClient;
  readonly service: Identity;
  readonly directory: IdentityRegistry;
  readonly clock: Clock;
  readonly random: Random;
  readonly provider: CryptoProvider;

  constructor(o: KeychainOptions) {
    if (!o.store && !o.home) throw new TypeError('give "home" or "store"');
    this.store = o.store ?? new FileStore(o.home!);
    this.audit = o.audit;
    this.service = o.service;
    this.directory = o.directory;
    this.clock = o.clock ?? systemClock;
    this.random = o.random ?? systemRandom;
    this.provider = o.provider ?? getProvider();
    this.directory.add(o.service);
  }

  // ---------------------------------------------------------------- reading

  async ids(): Promise<string[]> {
    return this.store.list();
  }

  /** The current state (after finishing any half-done operation). */
  async state(secretId: string): Promise<SecretState> {
    const release = await this.store.lock(secretId);
    try {
      const cur = await this.#recover(secretId);
      if (!cur) throw new KeychainError('SECRET_NOT_FOUND', `no secret ${secretId}`);
      return cur.state;
    } finally {
      await release();
    }
  }

  async show(secretId: string): Promise<SecretRecord> {
    return toRecord(await this.state(secretId));
  }

  async list(): Promise<SecretState[]> {
    const out: SecretState[] = [];
    for (const id of await this.ids()) {
      try {
        out.push(await this.state(id));
      } catch (e) {
        if (!(KeychainError.is(e) && e.code === 'SECRET_NOT_FOUND')) throw e;
      }
    }
    return out;
  }

  async #current(id: string): Promise<{ state: SecretState; head: Head }> {
    const head = await this.store.head(id);
    if (!head) throw new KeychainError('SECRET_NOT_FOUND', `no secret ${id}`);
    const bytes = await this.store.readRevision(id, head.revision);
    if (sha256Hex(bytes, this.provider) !== head.sha256) {
      throw new KeychainError(
        'STORE_CORRUPT',
        `revision ${head.revision} of ${id} does not match HEAD`,
      );
    }
    return { state: this.#parseRevision(id, bytes, head.revision).state, head };
  }

  #parseRevision(
    id: string,
    bytes: Uint8Array,
    revision: number,
  ): { state: SecretState; actionId: string; prev: string | null } {
    const opened = (() => {
      try {
        return openTza(bytes, undefined, {
          trust: [this.service.signingPublicKey],
          provider: this.provider,
        });
      } catch (cause) {
        throw new KeychainError('STORE_CORRUPT', `revision ${revision} of ${id} does not verify`, {
          cause,
        });
      }
    })();
    const m = opened.manifest.meta as Record<string, unknown>;
    if (m['secret_id'] !== id || m['revision'] !== revision || typeof m['action_id'] !== 'string') {
      throw new KeychainError(
        'STORE_CORRUPT',
        `revision ${revision} of ${id} has the wrong metadata`,
      );
    }
    const entry = opened.entries.find((e) => e.name === 'state.json');
    if (!entry)
      throw new KeychainError('STORE_CORRUPT', `revision ${revision} of ${id} has no state`);
    const state = JSON.parse(new TextDecoder().decode(entry.data)) as SecretState;
    return {
      state,
      actionId: m['action_id'],
      prev: typeof m['prev_sha256'] === 'string' ? m['prev_sha256'] : null,
    };
  }

  #packRevision(
    s: SecretState,
    revision: number,
    prevSha: string | null,
    actionId: string,
    event: string,
  ): Uint8Array {
    return packTza(
      {
        kind: 'secret-state',
        meta: {
          secret_id: s.secret_id,
          revision,
          prev_sha256: prevSha,
          action_id: actionId,
          event,
        },
        entries: [{ name: 'state.json', data: canonicalBytes(s), mediaType: 'application/json' }],
        signers: [this.service],
      },
      { clock: this.clock, random: this.random, provider: this.provider },
    );
  }

  // ---------------------------------------------------------------- recovery

  /**
   * Finish or undo what a crash left: a revision newer than HEAD is made current when its
   * event is in the log, and discarded otherwise.
   */
  async #recover(id: string): Promise<{ state: SecretState; head: Head } | undefined> {
    const head = await this.store.head(id);
    const revs = (await this.store.revisions(id)).filter((r) => r > (head?.revision ?? 0));
    for (const r of revs) {
      const bytes = await this.store.readRevision(id, r);
      let actionId: string | undefined;
      try {
        actionId = this.#parseRevision(id, bytes, r).actionId;
      } catch {
        actionId = undefined;
      }
      if (actionId && (await this.audit.action(actionId))) {
        await this.store.commit(id, {
          revision: r,
          sha256: sha256Hex(bytes, this.provider),
          action_id: actionId,
        });
      } else {
        await this.store.discardRevision(id, r);
      }
    }
    // Material files must match the current state: only the current bundle survives (none
    // once destroyed). This finishes a destroy, a reseal or a rotation whose process died
    // after its event was durable, and removes material an uncommitted operation wrote.
    const cur = (await this.store.head(id)) ? await this.#current(id) : undefined;
    const keep = cur && cur.state.lifecycle_state !== 'destroyed' ? cur.state.material_seq : -1;
    for (const m of await this.store.materials(id)) {
      if (m !== keep) await this.store.shredMaterial(id, m);
    }
    return cur;
  }

  /** Run recovery for every secret (e.g. at start). */
  async recoverAll(): Promise<void> {
    for (const id of await this.ids()) {
      const release = await this.store.lock(id);
      try {
        await this.#recover(id);
      } finally {
        await release();
      }
    }
  }

  // ---------------------------------------------------------------- events

  async #mint(
    actor: Identity,
    secretId: string,
    event: string,
    reason: string,
    erin: JsonValue,
    eromheen: JsonValue,
    policy: PolicyDecision[],
    parent: { action_id: string; generation: number } | null | undefined,
    actionId: string,
    at: Date,
  ): Promise<TibetToken> {
    const prev = await this.audit.lastOnLine(secretId);
    return mintToken(
      {
        actor: actor.id,
        actorClass: actor.actorClass,
        event,
        erachter: reason,
        erin,
        eraan: [{ object_id: secretId }],
        eromheen,
        policy,
        prev: prev ? { hash: prev.tokenHash, generation: prev.generation } : null,
        parent: parent ?? null,
        actionId,
      },
      actor,
      // the token's timestamp is the decision time, so that replaying the log with `apply`
      // reproduces the stored state exactly (transition and version times included)
      { clock: { now: () => at }, random: this.random, provider: this.provider },
    );
  }

  async #append(token: TibetToken, secretId: string): Promise<AppendReceipt> {
    try {
      return await this.audit.append(token, { objectId: secretId });
    } catch (cause) {
      throw new KeychainError(
        'AUDIT_FAILED',
        `the audit log refused or failed the event: ${(cause as Error).message}`,
        { cause },
      );
    }
  }

  /**
   * After a failed append: did the event become durable anyway (e.g. a daemon that timed
   * out after its fsync)? A receipt rebuilt from the log's index when it did, false when it
   * did not, undefined when the log cannot be asked (the revision is then left for
   * recovery to decide).
   */
  async #wasLogged(actionId: string): Promise<AppendReceipt | false | undefined> {
    try {
      const e = await this.audit.action(actionId);
      return e ? { index: e.index, lineHash: '', leafHash: '', actionId, receivedAt: '' } : false;
    } catch {
      return undefined;
    }
  }

  /** Record a refusal (signed by the keychain) and throw it. */
  async #deny(
    actor: Identity,
    secretId: string,
    op: string,
    d: { code?: KeychainError['code']; reason: string; decisions: PolicyDecision[] },
    reason: string,
  ): Promise<never> {
    const token = await this.#mint(
      this.service,
      secretId,
      'secret-denied',
      `refused ${op} by ${actor.id}: ${d.reason}`,
      {
        secret_id: secretId,
        operation: op,
        requested_by: actor.id,
        requested_reason: reason,
        code: d.code ?? 'POLICY_DENIED',
      },
      { requester_class: actor.actorClass },
      d.decisions,
      null,
      newActionId(this.random),
      this.clock.now(),
    );
    await this.#append(token, secretId).catch(() => undefined);
    throw new KeychainError(d.code ?? 'POLICY_DENIED', d.reason);
  }

  // ---------------------------------------------------------------- recipients

  /**
   * Who the material is sealed to: the keychain, the owner, the custodian, and every actor
   * named by id in the reveal policy (so that whoever may reveal can open it; `*` and
   * `role:` entries name nobody new). Never an active operator as such.
   */
  #recipientIds(s: Pick<SecretState, 'owner_id' | 'custodian_id' | 'policy'>): string[] {
    const named = s.policy.reveal.filter((e) => isActorId(e));
    const ids = [this.service.id, s.owner_id, s.custodian_id, ...named].filter(
      (x): x is string => !!x,
    );
    return [...new Set(ids)];
  }

  #recipientsOf(s: Pick<SecretState, 'owner_id' | 'custodian_id' | 'policy'>): RecipientKey[] {
    const out: RecipientKey[] = [];
    for (const id of this.#recipientIds(s)) {
      const pub = id === this.service.id ? this.service.public : this.directory.get(id)[0];
      if (!pub)
        throw new KeychainError(
          'INVALID_INPUT',
          `no public identity for ${id} (register it first)`,
        );
      out.push({ id, encryptionKey: fromBase64Url(pub.encryption_key) });
    }
    return out;
  }

  #sealMaterial(s: SecretState, version: number, material: Uint8Array): Uint8Array {
    return packTza(
      {
        kind: 'secret',
        meta: {
          secret_id: s.secret_id,
          version,
          secret_type: s.secret_type,
          issuer: s.issuer,
          scope: s.scope,
          created_at: s.created_at,
        },
        entries: [{ name: 'material', data: material, sealed: true }],
        recipients: this.#recipientsOf(s),
        signers: [this.service],
      },
      { clock: this.clock, random: this.random, provider: this.provider },
    );
  }

  async #openMaterial(s: SecretState, as: Identity): Promise<Uint8Array> {
    const bytes = await this.store.readMaterial(s.secret_id, s.material_seq);
    const cur = s.versions[s.versions.length - 1];
    if (cur?.material_sha256 && sha256Hex(bytes, this.provider) !== cur.material_sha256) {
      throw new KeychainError(
        'STORE_CORRUPT',
        `material of ${s.secret_id} v${s.version} does not match its state`,
      );
    }
    let opened;
    try {
      opened = openTza(bytes, as, {
        trust: [this.service.signingPublicKey],
        provider: this.provider,
      });
    } catch (cause) {
      const code = (cause as { code?: string }).code;
      if (code === 'NOT_A_RECIPIENT')
        throw new KeychainError('NOT_A_RECIPIENT', `${as.id} cannot open ${s.secret_id}`, {
          cause,
        });
      throw new KeychainError('STORE_CORRUPT', `material of ${s.secret_id} does not open`, {
        cause,
      });
    }
    const data = opened.entries[0]!.data.slice();
    opened.destroy();
    return data;
  }

  // ---------------------------------------------------------------- create

  /** Import material (`secret-imported`) or, without `material`, generate it (`secret-created`). */
  async add(i: AddInput): Promise<Outcome> {
    const type = parseSecretType(i.type);
    if (!type)
      throw new KeychainError(
        'INVALID_SECRET_TYPE',
        `unknown secret type ${JSON.stringify(i.type)}`,
      );
    if (!SECRET_ID.test(i.secretId))
      throw new KeychainError('INVALID_SECRET_ID', `secret id must match ${SECRET_ID.source}`);
    if (!i.reason.trim()) throw new KeychainError('INVALID_INPUT', 'a reason is required');
    let material = i.material;
    let publicKey: string | null = null;
    const generated = material === undefined;
    if (generated) {
      if (!GENERATABLE_TYPES.includes(type))
        throw new KeychainError('INVALID_SECRET_TYPE', `cannot generate a ${type}: import it`);
      const g = generateMaterial(type, this.random);
      material = g.material;
      publicKey = g.publicKey;
    }
    if (material!.length === 0) throw new KeychainError('INVALID_INPUT', 'the secret is empty');
    const expiresAt = i.expiresAt == null ? null : new Date(i.expiresAt);
    if (expiresAt && Number.isNaN(expiresAt.getTime()))
      throw new KeychainError('INVALID_INPUT', 'expires_at is not a date');
    const policy = validatePolicy({ ...DEFAULT_POLICY, ...i.policy });
    const release = await this.store.lock(i.secretId);
    try {
      await this.#recover(i.secretId);
      if (await this.store.head(i.secretId))
        throw new KeychainError('SECRET_EXISTS', `secret ${i.secretId} exists`);
      const now = this.clock.now();
      const at = rfc3339(now);
      const actionId = newActionId(this.random);
      const event = generated ? 'secret-created' : 'secret-imported';
      const base: SecretState = {
        secret_id: i.secretId,
        secret_type: type,
        issuer: i.issuer,
        scope: i.scope,
        created_at: at,
        expires_at: expiresAt ? rfc3339(expiresAt) : null,
        owner_id: i.owner ?? i.actor.id,
        custodian_id: i.custodian ?? this.service.id,
        active_operator_id: i.activeOperator ?? null,
        last_access_action_id: null,
        last_rotation_action_id: null,
        exposure_state: 'sealed',
        rotation_required: false,
        notes: [...(i.notes ?? [])],
        lifecycle_state: 'active',
        archived: false,
        version: 1,
        versions: [],
        material_seq: 1,
        policy,
        pending_handoff: null,
        exposure_evidence: null,
        public_key: publicKey,
        transitions: [{ state: 'active', at, action_id: actionId }],
      };
      const mat = this.#sealMaterial(base, 1, material!);
      if (generated) wipe(material);
      const state: SecretState = {
        ...base,
        versions: [
          {
            version: 1,
            created_at: at,
            material_sha256: sha256Hex(mat, this.provider),
            state: 'active',
            retired_at: null,
            action_id: actionId,
          },
        ],
      };
      const decisions: PolicyDecision[] = [
        {
          rule: 'create',
          decision: 'allow',
          detail: `${i.actor.id} becomes ${state.owner_id === i.actor.id ? 'owner' : 'creator'}`,
        },
      ];
      await this.store.writeMaterial(i.secretId, 1, mat);
      const revBytes = this.#packRevision(state, 1, null, actionId, event);
      await this.store.writeRevision(i.secretId, 1, revBytes);
      const token = await this.#mint(
        i.actor,
        i.secretId,
        event,
        i.reason,
        {
          secret_id: i.secretId,
          secret_type: type,
          version: 1,
          revision: 1,
          sealed: true,
          source: i.source ?? (generated ? 'generated' : 'api'),
          ...(publicKey ? { public_key: publicKey } : {}),
          material_seq: 1,
          material_sha256: state.versions[0]!.material_sha256,
          notes: state.notes,
        },
        {
          issuer: i.issuer,
          scope: i.scope,
          owner_id: state.owner_id,
          custodian_id: state.custodian_id,
          active_operator_id: state.active_operator_id,
          expires_at: state.expires_at,
          policy: state.policy as unknown as JsonValue,
          authority_mode: 'admin',
        },
        decisions,
        null,
        actionId,
        now,
      );
      let receipt: AppendReceipt;
      try {
        receipt = await this.#append(token, i.secretId);
      } catch (e) {
        const logged = await this.#wasLogged(actionId);
        if (logged === undefined) throw e; // outcome unknown: the next access resolves it
        if (!logged) {
          await this.store.discardRevision(i.secretId, 1);
          await this.store.shredMaterial(i.secretId, 1);
          throw e;
        }
        receipt = logged;
      }
      await this.store.commit(i.secretId, {
        revision: 1,
        sha256: sha256Hex(revBytes, this.provider),
        action_id: actionId,
      });
      return { record: toRecord(state), state, token, receipt };
    } finally {
      await release();
    }
  }

  // ---------------------------------------------------------------- operations

  /**
   * The common path of every operation on an existing secret. `prepare` may write new
   * material before the event; `after` runs once the change is current.
   */
  async #operate(
    i: OpInput,
    req: Omit<Request, 'actor' | 'actorClass' | 'at'>,
    extraIn: OpExtra | ((s: SecretState) => OpExtra),
    hooks: {
      prepare?: (s: SecretState, next: SecretState) => Promise<void>;
      undo?: (next: SecretState) => Promise<void>;
      after?: (prev: SecretState, next: SecretState) => Promise<void>;
    } = {},
  ): Promise<Outcome> {
    if (!i.reason?.trim()) throw new KeychainError('INVALID_INPUT', 'a reason is required');
    const release = await this.store.lock(i.secretId);
    try {
      const cur = await this.#recover(i.secretId);
      if (!cur) throw new KeychainError('SECRET_NOT_FOUND', `no secret ${i.secretId}`);
      const { state, head } = cur;
      const now = this.clock.now();
      const full: Request = {
        ...req,
        actor: i.actor.id,
        actorClass: i.actor.actorClass,
        at: now,
      };
      const d = decide(state, full);
      if (!d.allowed) return await this.#deny(i.actor, i.secretId, req.op, d, i.reason);
      // computed under the lock, from the current state (no lost updates)
      const extra = typeof extraIn === 'function' ? extraIn(state) : extraIn;
      const actionId = newActionId(this.random);
      let next = apply(state, { ...full, ...extra, actionId });
      if (hooks.prepare) await hooks.prepare(state, next);
      next = { ...next };
      const revision = head.revision + 1;
      const event = EVENT_OF[req.op];
      const revBytes = this.#packRevision(next, revision, head.sha256, actionId, event);
      await this.store.writeRevision(i.secretId, revision, revBytes);
      const token = await this.#mint(
        i.actor,
        i.secretId,
        event,
        i.reason,
        {
          secret_id: i.secretId,
          operation: req.op,
          revision,
          version: next.version,
          lifecycle_state: next.lifecycle_state,
          exposure_state: next.exposure_state,
          rotation_required: next.rotation_required,
          // which sealed material is current after the event (digest of the bundle, never
          // the secret), so that the log alone reproduces the state
          material_seq: next.material_seq,
          material_sha256: next.versions[next.versions.length - 1]?.material_sha256 ?? null,
          public_key: next.public_key,
          ...(extra.erin ?? {}),
        },
        { authority_mode: req.authorityMode ?? 'admin', ...(extra.eromheen ?? {}) },
        d.decisions,
        i.parent,
        actionId,
        now,
      );
      let receipt: AppendReceipt;
      try {
        receipt = await this.#append(token, i.secretId);
      } catch (e) {
        const logged = await this.#wasLogged(actionId);
        if (logged === undefined) throw e; // outcome unknown: the next access resolves it
        if (!logged) {
          await this.store.discardRevision(i.secretId, revision);
          if (hooks.undo) await hooks.undo(next);
          throw e;
        }
        receipt = logged;
      }
      await this.store.commit(i.secretId, {
        revision,
        sha256: sha256Hex(revBytes, this.provider),
        action_id: actionId,
      });
      if (hooks.after) await hooks.after(state, next);
      return { record: toRecord(next), state: next, token, receipt };
    } finally {
      await release();
    }
  }

  /**
   * Reveal the material to a human or operator (`secret-unsealed`). The event is durable
   * before the material is decrypted; the caller must wipe the returned bytes.
   */
  async reveal(i: OpInput): Promise<Outcome & { material: Uint8Array }> {
    const o = await this.#operate(i, { op: 'reveal' }, { erin: { revealed_to: i.actor.id } });
    // The policy allowed it and the event is durable. An actor the material is not sealed to
    // (allowed by a role or `*` entry, or named before the reveal list made recipients) gets it
    // opened by the keychain, which always holds a copy.
    try {
      return { ...o, material: await this.#openMaterial(o.state, i.actor) };
    } catch (e) {
      if (!(KeychainError.is(e) && e.code === 'NOT_A_RECIPIENT')) throw e;
      return { ...o, material: await this.#openMaterial(o.state, this.service) };
    }
  }

  /**
   * Proxied use by a gateway (`secret-proxied`, parent = the capsule's action): returns the
   * material to the gateway's session. `onBehalfOf` is the capsule's requesting actor.
   */
  async use(
    i: OpInput & {
      /** The version a capsule was issued for: refused (`VERSION_MISMATCH`) after a rotation. */
      expectVersion?: number;
      onBehalfOf: string;
      targetAction?: string;
      lane?: string;
      sessionId?: string;
      opener?: Identity;
    },
  ): Promise<Outcome & { material: Uint8Array }> {
    const o = await this.#operate(
      i,
      {
        op: 'use',
        onBehalfOf: i.onBehalfOf,
        ...(i.targetAction ? { targetAction: i.targetAction } : {}),
        ...(i.lane ? { lane: i.lane } : {}),
        ...(i.expectVersion !== undefined ? { expectVersion: i.expectVersion } : {}),
      },
      {
        erin: {
          on_behalf_of: i.onBehalfOf,
          ...(i.expectVersion !== undefined ? { expected_version: i.expectVersion } : {}),
          ...(i.targetAction ? { target_action: i.targetAction } : {}),
          ...(i.sessionId ? { session_id: i.sessionId } : {}),
        },
        eromheen: { ...(i.lane ? { policy_lane: i.lane } : {}), gateway: i.actor.id },
      },
    );
    return { ...o, material: await this.#openMaterial(o.state, i.opener ?? this.service) };
  }

  /**
   * Check, without using it, whether a gateway may use the secret on behalf of `onBehalfOf`
   * (for capsule issuance): every rule of a proxied use except who the gateway is.
   */
  async mayUse(
    secretId: string,
    onBehalfOf: string,
    targetAction?: string,
    lane?: string,
  ): Promise<{ allowed: boolean; reason: string; decisions: PolicyDecision[] }> {
    const s = await this.state(secretId);
    const d = decide(s, {
      op: 'use',
      actor: this.service.id,
      // asked as a gateway would ask: the custodian need not be the keychain itself
      actorClass: 'gateway',
      at: this.clock.now(),
      onBehalfOf,
      ...(targetAction ? { targetAction } : {}),
      ...(lane ? { lane } : {}),
    });
    return { allowed: d.allowed, reason: d.reason, decisions: d.decisions };
  }

  /** Custody transition (`secret-delegated`); an owner handoff stays pending until `accept`. */
  async delegate(
    i: OpInput & { role: CustodyRole; assignee: string; authorityMode?: AuthorityMode },
  ): Promise<Outcome> {
    if (!AUTHORITY_MODES.includes(i.authorityMode ?? 'admin'))
      throw new KeychainError('INVALID_INPUT', 'unknown authority mode');
    const needsReseal = i.role !== 'active_operator';
    return this.#operate(
      i,
      {
        op: 'delegate',
        role: i.role,
        assignee: i.assignee,
        authorityMode: i.authorityMode ?? 'admin',
      },
      {
        erin: { role: i.role, target_assignee: i.assignee },
        eromheen: { target_assignee: i.assignee },
      },
      needsReseal ? this.#resealHooks(i.secretId) : {},
    );
  }

  /** The receiving side of an owner handoff co-signs it (`secret-accepted`). */
  async accept(i: OpInput): Promise<Outcome> {
    return this.#operate(
      i,
      { op: 'accept' },
      { erin: { accepted_by: i.actor.id } },
      this.#resealHooks(i.secretId),
    );
  }

  /** When the recipients change (owner, custodian, ids in the reveal policy), reseal the material to the new set (re-encrypting, so a removed holder's copy is useless). */
  #resealHooks(secretId: string): {
    prepare: (s: SecretState, n: SecretState) => Promise<void>;
    undo: (n: SecretState) => Promise<void>;
    after: (prev: SecretState, n: SecretState) => Promise<void>;
  } {
    let wrote: number | undefined;
    return {
      prepare: async (s, n) => {
        const was = this.#recipientIds(s);
        const will = this.#recipientIds(n);
        if (was.length === will.length && was.every((id) => will.includes(id))) return;
        const bytes = await this.store.readMaterial(secretId, s.material_seq);
        const want = this.#recipientsOf(n);
        const next = rewrapTza(
          bytes,
          this.service,
          {
            add: want,
            remove: readTza(bytes)
              .manifest.recipients.map((r) => r.id)
              .filter((id) => !want.some((x) => x.id === id)),
            rekey: true,
          },
          [this.service],
          {
            clock: this.clock,
            random: this.random,
            provider: this.provider,
            trust: [this.service.signingPublicKey],
          },
        );
        // a new material file keeps the old one until the change is durable
        n.material_seq = s.material_seq + 1;
        const v = n.versions[n.versions.length - 1]!;
        v.material_sha256 = sha256Hex(next, this.provider);
        await this.store.writeMaterial(secretId, n.material_seq, next);
        wrote = n.material_seq;
      },
      undo: async () => {
        if (wrote !== undefined) await this.store.shredMaterial(secretId, wrote);
      },
      // once the change is durable, the superseded bundle (still openable by a removed
      // holder) is shredded
      after: async (prev) => {
        if (wrote !== undefined) await this.store.shredMaterial(secretId, prev.material_seq);
      },
    };
  }

  async expose(i: OpInput & { exposure: ReportableExposure; evidence: string }): Promise<Outcome> {
    if (!REPORTABLE_EXPOSURES.includes(i.exposure))
      throw new KeychainError(
        'INVALID_INPUT',
        `exposure must be one of ${REPORTABLE_EXPOSURES.join(', ')}`,
      );
    return this.#operate(
      i,
      { op: 'expose', exposure: i.exposure, authorityMode: 'triage' },
      { evidence: i.evidence, erin: { exposure_state: i.exposure, evidence: i.evidence } },
    );
  }

  /** A new version (imported, or generated when `material` is omitted); the old one is deactivated. */
  async rotate(i: OpInput & { material?: Uint8Array }): Promise<Outcome> {
    let version = 0;
    return this.#operate(
      i,
      { op: 'rotate' },
      {},
      {
        prepare: async (s, n) => {
          let material = i.material;
          let publicKey: string | null = null;
          if (!material) {
            const g = generateMaterial(s.secret_type, this.random);
            material = g.material;
            publicKey = g.publicKey;
          }
          n.material_seq = s.material_seq + 1;
          const mat = this.#sealMaterial(n, n.version, material);
          if (!i.material) wipe(material);
          version = n.material_seq;
          await this.store.writeMaterial(i.secretId, n.material_seq, mat);
          const cur = n.versions[n.versions.length - 1]!;
          cur.material_sha256 = sha256Hex(mat, this.provider);
          n.public_key = publicKey;
        },
        undo: async () => {
          if (version) await this.store.shredMaterial(i.secretId, version);
        },
        // the old version's material is not kept once the new one is current
        after: async (prev) => {
          await this.store.shredMaterial(i.secretId, prev.material_seq);
        },
      },
    );
  }

  async revoke(i: OpInput): Promise<Outcome> {
    return this.#operate(i, { op: 'revoke' }, {});
  }
  async archive(i: OpInput): Promise<Outcome> {
    return this.#operate(i, { op: 'archive' }, {});
  }
  async suspend(i: OpInput): Promise<Outcome> {
    return this.#operate(i, { op: 'suspend' }, {});
  }
  async resume(i: OpInput): Promise<Outcome> {
    return this.#operate(i, { op: 'resume' }, {});
  }

  /** Shred every version's material; metadata and timeline remain (`secret-destroyed`). */
  async destroy(i: OpInput): Promise<Outcome> {
    return this.#operate(
      i,
      { op: 'destroy' },
      {},
      {
        after: async (prev) => {
          for (let m = 1; m <= prev.material_seq; m++)
            await this.store.shredMaterial(i.secretId, m);
        },
      },
    );
  }

  /**
   * Replace the secret's policy (`secret-policy-changed`). The owner may; so may a `system`
   * actor in `system` authority mode. When the actors named in `reveal` change, the material
   * is resealed to the new set.
   */
  async setPolicy(
    i: OpInput & { policy: Partial<SecretPolicy>; authorityMode?: AuthorityMode },
  ): Promise<Outcome> {
    if (!AUTHORITY_MODES.includes(i.authorityMode ?? 'admin'))
      throw new KeychainError('INVALID_INPUT', 'unknown authority mode');
    validatePolicy({ ...DEFAULT_POLICY, ...i.policy }); // bad input fails before the lock
    return this.#operate(
      i,
      { op: 'policy', ...(i.authorityMode ? { authorityMode: i.authorityMode } : {}) },
      (current) => {
        const policy = validatePolicy({ ...current.policy, ...i.policy });
        return { policy, erin: { policy: policy as unknown as JsonValue } };
      },
      this.#resealHooks(i.secretId),
    );
  }
}

export type { Operation };
