/**
 * One client interface for both modes: embedded (this process holds the log and its lock)
 * and daemon (`tibet continuityd serve`, reached over a Unix socket or loopback HTTP).
 */
import type { TibetToken } from '@tibet/core';
import { ContinuityError, type ContinuityErrorCode } from './errors.js';
import { requestJson } from './http-json.js';
import type { ActionEntry } from './log-index.js';
import type { AppendOptions, AppendReceipt, AuditLog } from './log.js';

export interface LogHead {
  size: number;
  /** Hex root hash over `size` lines. */
  root: string;
  origin: string;
  /** The latest signed checkpoint note, if any. */
  checkpoint: string | null;
}

export interface AuditClient {
  append(token: TibetToken, opts?: AppendOptions): Promise<AppendReceipt>;
  /** The latest entry on a continuity line (what the next token's `prev` must name). */
  lastOnLine(continuityId: string): Promise<ActionEntry | undefined>;
  /** Where an action is, if logged (its generation sets a child's). */
  action(actionId: string): Promise<ActionEntry | undefined>;
  /** Sign a checkpoint now; returns the note. */
  checkpoint(): Promise<string>;
  head(): Promise<LogHead>;
  close(): Promise<void>;
}

/** The embedded mode: calls straight into an open {@link AuditLog}. */
export class EmbeddedClient implements AuditClient {
  constructor(readonly log: AuditLog) {}
  append(token: TibetToken, opts?: AppendOptions): Promise<AppendReceipt> {
    return this.log.append(token, opts);
  }
  async checkpoint(): Promise<string> {
    return (await this.log.checkpoint()).note;
  }
  async lastOnLine(id: string): Promise<ActionEntry | undefined> {
    await this.log.drain();
    return this.log.lastOnLine(id);
  }
  /** Final: appends in flight are settled first. */
  async action(id: string): Promise<ActionEntry | undefined> {
    await this.log.drain();
    return this.log.action(id);
  }
  async head(): Promise<LogHead> {
    await this.log.drain();
    return {
      size: this.log.durableSize,
      root: Buffer.from(this.log.root()).toString('hex'),
      origin: this.log.origin,
      checkpoint: this.log.latestCheckpoint?.note ?? null,
    };
  }
  close(): Promise<void> {
    return this.log.close();
  }
}

export type DaemonAddress =
  { socketPath: string } | { host: '127.0.0.1' | '::1' | 'localhost'; port: number };

/** Talks to `tibet continuityd serve`. Each call is one HTTP/1.1 request (keep-alive). */
export class DaemonClient implements AuditClient {
  constructor(
    readonly address: DaemonAddress,
    readonly opts: { timeoutMs?: number } = {},
  ) {}

  /** Low-level JSON call; maps daemon errors back to ContinuityError with their codes. */
  async call<T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
    const { status, body: v } = await requestJson(this.address, method, path, body, {
      peer: 'the continuityd daemon',
      timeoutMs: this.opts.timeoutMs ?? 30_000,
      unavailable: (message, cause) =>
        new ContinuityError('DAEMON_UNAVAILABLE', message, { cause }),
      protocol: (message, cause) => new ContinuityError('DAEMON_PROTOCOL', message, { cause }),
      isOwn: (e) => ContinuityError.is(e),
    });
    if (status >= 400) {
      const err = (v as { error?: { code?: string; message?: string } } | null)?.error;
      throw new ContinuityError(
        (err?.code as ContinuityErrorCode | undefined) ?? 'DAEMON_PROTOCOL',
        err?.message ?? `HTTP ${status}`,
      );
    }
    return v as T;
  }

  append(token: TibetToken, opts: AppendOptions = {}): Promise<AppendReceipt> {
    return this.call<AppendReceipt>('POST', '/v1/append', {
      token,
      ...(opts.objectId !== undefined ? { object_id: opts.objectId } : {}),
      ...(opts.parentObjectId !== undefined ? { parent_object_id: opts.parentObjectId } : {}),
      ...(opts.continuityId !== undefined ? { continuity_id: opts.continuityId } : {}),
    });
  }

  async checkpoint(): Promise<string> {
    return (await this.call<{ note: string }>('POST', '/v1/checkpoint', {})).note;
  }

  async #maybe(path: string): Promise<ActionEntry | undefined> {
    try {
      return await this.call<ActionEntry>('GET', path);
    } catch (e) {
      if (ContinuityError.is(e) && e.code === 'NOT_FOUND') return undefined;
      throw e;
    }
  }

  lastOnLine(id: string): Promise<ActionEntry | undefined> {
    return this.#maybe(`/v1/line/${encodeURIComponent(id)}`);
  }

  action(id: string): Promise<ActionEntry | undefined> {
    return this.#maybe(`/v1/action/${encodeURIComponent(id)}`);
  }

  head(): Promise<LogHead> {
    return this.call<LogHead>('GET', '/v1/head');
  }

  async close(): Promise<void> {}
}
