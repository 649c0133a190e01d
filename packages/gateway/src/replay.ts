/**
 * The replay store: where a capsule's one-shot `ephemeral_id` is consumed. Consumption is
 * durable before `consume` resolves, so that nothing is executed under an id that a crash
 * could "forget", and it is exclusive across processes, so that two gateways sharing a home
 * execute a capsule at most once between them.
 *
 * {@link FileReplayStore}: one file per consumed id under `<home>/gateway/replay/<xx>/`,
 * created with `O_CREAT | O_EXCL` (atomic on a local file system: exactly one creator
 * wins), its record written and fsynced, then the folder fsynced. The file's EXISTENCE is
 * the consumption; its content (who, when, until when) is informative. A process killed
 * after the create but before the fsyncs leaves an id that counts as consumed while the
 * machine stays up; a power loss in that window may lose the file, but the gateway had not
 * yet executed anything under it (it proceeds only once `consume` has resolved).
 */
import { constants } from 'node:fs';
import { mkdir, open, readFile, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { parseRfc3339 } from '@tibet/core';
import { GatewayError } from './errors.js';

/** What a consumption records (informative; existence is what counts). */
export interface ReplayRecord {
  ephemeral_id: string;
  sam_id: string;
  /** The gateway that consumed it. */
  gateway_id: string;
  consumed_at: string;
  /** The capsule's `valid_until`: after it (plus skew) the record may be pruned. */
  valid_until: string;
  /** The action id of the `sam-received` event of the consuming attempt. */
  received_action_id: string | null;
}

export type ConsumeResult =
  | { consumed: true }
  /** Already consumed; `previous` is the stored record when it is readable. */
  | { consumed: false; previous: ReplayRecord | null };

export interface ReplayStore {
  /**
   * Consume an id once. Resolves `{consumed: true}` only after the consumption is durable;
   * `{consumed: false}` when it was consumed before (by this or any other process). Throws
   * GatewayError `REPLAY_STORE_FAILED` when it cannot tell — the caller must not execute.
   */
  consume(record: ReplayRecord): Promise<ConsumeResult>;
  /** The record of a consumed id, `null` when consumed but unreadable, undefined when not consumed. */
  get(ephemeralId: string): Promise<ReplayRecord | null | undefined>;
  close?(): Promise<void>;
}

/** `eph_` + 12 lowercase hex (the family's form); longer hex is accepted. */
export const EPHEMERAL_ID = /^eph_[0-9a-f]{12,64}$/;

const RECORD_KEYS = [
  'ephemeral_id',
  'sam_id',
  'gateway_id',
  'consumed_at',
  'valid_until',
  'received_action_id',
] as const;

function parseRecord(text: string, id: string): ReplayRecord | null {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return null;
  const o = v as Record<string, unknown>;
  for (const k of RECORD_KEYS) if (!(k in o)) return null;
  if (o['ephemeral_id'] !== id) return null;
  for (const k of ['sam_id', 'gateway_id', 'consumed_at', 'valid_until'] as const)
    if (typeof o[k] !== 'string') return null;
  if (o['received_action_id'] !== null && typeof o['received_action_id'] !== 'string') return null;
  return {
    ephemeral_id: id,
    sam_id: o['sam_id'] as string,
    gateway_id: o['gateway_id'] as string,
    consumed_at: o['consumed_at'] as string,
    valid_until: o['valid_until'] as string,
    received_action_id: o['received_action_id'],
  };
}

async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, constants.O_RDONLY);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

function checkId(id: unknown): asserts id is string {
  if (typeof id !== 'string' || !EPHEMERAL_ID.test(id))
    throw new TypeError(`"ephemeral_id" must match ${EPHEMERAL_ID.source}`);
}

/** The durable, multi-process file implementation (see the module comment). */
export class FileReplayStore implements ReplayStore {
  /** `<home>/gateway/replay`. */
  readonly dir: string;
  readonly #shards = new Set<string>();
  #rootReady: Promise<void> | undefined;

  constructor(home: string) {
    if (typeof home !== 'string' || home === '') throw new TypeError('"home" must be a path');
    this.dir = join(home, 'gateway', 'replay');
  }

  /** The file that records `id`. */
  pathOf(id: string): string {
    checkId(id);
    return join(this.dir, id.slice(4, 6), `${id}.json`);
  }

  async #ensureRoot(): Promise<void> {
    this.#rootReady ??= (async () => {
      const gw = join(this.dir, '..');
      const home = join(gw, '..');
      await mkdir(home, { recursive: true });
      for (const [d, parent] of [
        [gw, home],
        [this.dir, gw],
      ] as const) {
        try {
          await mkdir(d, { mode: 0o700 });
          await fsyncDir(parent);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        }
      }
    })();
    try {
      await this.#rootReady;
    } catch (e) {
      this.#rootReady = undefined;
      throw e;
    }
  }

  async #ensureShard(shard: string): Promise<string> {
    const d = join(this.dir, shard);
    if (this.#shards.has(shard)) return d;
    await this.#ensureRoot();
    try {
      await mkdir(d, { mode: 0o700 });
      await fsyncDir(this.dir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    this.#shards.add(shard);
    return d;
  }

  async consume(record: ReplayRecord): Promise<ConsumeResult> {
    checkId(record.ephemeral_id);
    const path = this.pathOf(record.ephemeral_id);
    try {
      const shardDir = await this.#ensureShard(record.ephemeral_id.slice(4, 6));
      let fh;
      try {
        fh = await open(path, constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY, 0o600);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'EEXIST')
          return { consumed: false, previous: (await this.get(record.ephemeral_id)) ?? null };
        throw e;
      }
      try {
        const data: Record<string, unknown> = {};
        for (const k of RECORD_KEYS) data[k] = record[k];
        await fh.writeFile(JSON.stringify(data) + '\n');
        await fh.sync();
      } finally {
        await fh.close();
      }
      await fsyncDir(shardDir);
      return { consumed: true };
    } catch (cause) {
      if (GatewayError.is(cause)) throw cause;
      throw new GatewayError(
        'REPLAY_STORE_FAILED',
        `cannot record the consumption of ${record.ephemeral_id}: ${(cause as NodeJS.ErrnoException).code ?? (cause as Error).message}`,
        { cause },
      );
    }
  }

  async get(ephemeralId: string): Promise<ReplayRecord | null | undefined> {
    const path = this.pathOf(ephemeralId);
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new GatewayError(
        'REPLAY_STORE_FAILED',
        `cannot read the replay record of ${ephemeralId}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`,
        { cause: e },
      );
    }
    return parseRecord(text, ephemeralId);
  }

  /**
   * Remove records of capsules that expired before `before` minus `skewMs` (default 10
   * minutes): such a capsule is refused as expired anyway. Unreadable records are kept.
   * Only safe while the gateway's clock does not go back further than `skewMs`.
   */
  async prune(before: Date, skewMs = 600_000): Promise<number> {
    const limit = before.getTime() - skewMs;
    let removed = 0;
    let shards: string[];
    try {
      shards = await readdir(this.dir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return 0;
      throw e;
    }
    for (const shard of shards) {
      if (!/^[0-9a-f]{2}$/.test(shard)) continue;
      const d = join(this.dir, shard);
      let touched = false;
      for (const f of await readdir(d)) {
        const id = f.replace(/\.json$/, '');
        if (!EPHEMERAL_ID.test(id) || f !== `${id}.json`) continue;
        const r = await this.get(id).catch(() => null);
        const until = r ? parseRfc3339(r.valid_until) : undefined;
        if (!until || until.getTime() >= limit) continue;
        await rm(join(d, f), { force: true });
        removed++;
        touched = true;
      }
      if (touched) await fsyncDir(d);
    }
    return removed;
  }
}
