/**
 * One client interface for both modes: embedded (this process holds the log and its lock)
 * and daemon (`tibet continuityd serve`, reached over a Unix socket or loopback HTTP).
 */
import { request } from 'node:http';
import type { TibetToken } from '@tibet/core';
import { ContinuityError, type ContinuityErrorCode } from './errors.js';
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
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    return new Promise<T>((resolve, reject) => {
      const req = request(
        {
          ...('socketPath' in this.address
            ? { socketPath: this.address.socketPath }
            : { host: this.address.host, port: this.address.port }),
          method,
          path,
          headers: {
            accept: 'application/json',
            ...(payload
              ? { 'content-type': 'application/json', 'content-length': payload.length }
              : {}),
          },
          timeout: this.opts.timeoutMs ?? 30_000,
        },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (c: Buffer) => {
            size += c.length;
            if (size > 64 * 1024 * 1024) req.destroy(new Error('daemon response too large'));
            else chunks.push(c);
          });
          res.on('end', () => {
            let v: unknown;
            try {
              v = JSON.parse(Buffer.concat(chunks).toString('utf8'));
            } catch (cause) {
              reject(
                new ContinuityError(
                  'DAEMON_PROTOCOL',
                  `daemon sent non-JSON (HTTP ${res.statusCode})`,
                  { cause },
                ),
              );
              return;
            }
            if ((res.statusCode ?? 500) >= 400) {
              const err = (v as { error?: { code?: string; message?: string } }).error;
              reject(
                new ContinuityError(
                  (err?.code as ContinuityErrorCode | undefined) ?? 'DAEMON_PROTOCOL',
                  err?.message ?? `HTTP ${res.statusCode}`,
                ),
              );
              return;
            }
            resolve(v as T);
          });
          res.on('error', reject);
        },
      );
      req.on('timeout', () =>
        req.destroy(new ContinuityError('DAEMON_UNAVAILABLE', 'daemon did not answer in time')),
      );
      req.on('error', (e) =>
        reject(
          ContinuityError.is(e)
            ? e
            : new ContinuityError(
                'DAEMON_UNAVAILABLE',
                `cannot reach the continuityd daemon: ${e.message}`,
                { cause: e },
              ),
        ),
      );
      if (payload) req.end(payload);
      else req.end();
    });
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
