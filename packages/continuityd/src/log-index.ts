/**
 * What the writer and the queries need to look up without reading the log. The writer
 * calls `add` only after a batch is durable; lookups see what was added plus the writer's
 * own pending records (it overlays them).
 */
export interface ActionEntry {
  index: number;
  generation: number;
  /** `sha256:<hex>` of the signed token (what a successor's `prev` holds). */
  tokenHash: string;
}

export interface IndexedRecord extends ActionEntry {
  actionId: string;
  actor: string;
  objectId: string | null;
  continuityId: string;
  /** received_at, in ms since 1970. */
  receivedAt: number;
  /** RFC 9162 leaf hash of the line. */
  leafHash: Uint8Array;
}

/**
 * Something kept beside the log and fed every durable record in order: the index, the
 * Merkle node store. `indexedSize()` says how many records it already holds durably, so
 * that recovery replays only the rest.
 */
export interface LogObserver {
  add(records: readonly IndexedRecord[]): void;
  /** How many records (from index 0) this observer holds. */
  indexedSize(): number;
  /** Persist what can be persisted (no-op for memory). */
  flush(): Promise<void>;
  close(): Promise<void>;
}

export interface LogIndex extends LogObserver {
  /** Where an action is, if it is in the log. */
  action(actionId: string): ActionEntry | undefined;
  /** The latest record on a continuity line. */
  lastOnLine(continuityId: string): ActionEntry | undefined;
  /** Indexes of records by an actor, by an object, in ascending order (bounded by `limit`). */
  byActor(actor: string, limit?: number): number[];
  byObject(objectId: string, limit?: number): number[];
}

/** An index held in memory, rebuilt from the log at open. */
export class MemoryIndex implements LogIndex {
  readonly #actions = new Map<string, ActionEntry>();
  readonly #lines = new Map<string, ActionEntry>();
  readonly #actors = new Map<string, number[]>();
  readonly #objects = new Map<string, number[]>();
  #size = 0;

  indexedSize(): number {
    return this.#size;
  }

  action(id: string): ActionEntry | undefined {
    return this.#actions.get(id);
  }
  lastOnLine(id: string): ActionEntry | undefined {
    return this.#lines.get(id);
  }
  byActor(actor: string, limit = Infinity): number[] {
    return (this.#actors.get(actor) ?? []).slice(0, limit);
  }
  byObject(id: string, limit = Infinity): number[] {
    return (this.#objects.get(id) ?? []).slice(0, limit);
  }
  add(records: readonly IndexedRecord[]): void {
    for (const r of records) {
      const e = { index: r.index, generation: r.generation, tokenHash: r.tokenHash };
      this.#actions.set(r.actionId, e);
      this.#lines.set(r.continuityId, e);
      push(this.#actors, r.actor, r.index);
      if (r.objectId) push(this.#objects, r.objectId, r.index);
      this.#size = r.index + 1;
    }
  }
  async flush(): Promise<void> {}
  async close(): Promise<void> {}
}

function push(m: Map<string, number[]>, k: string, v: number): void {
  const a = m.get(k);
  if (a) a.push(v);
  else m.set(k, [v]);
}
