/**
 * The daemon mode: one process holds the log (and its lock) and serves many writers over a
 * Unix socket (mode 0600) and/or loopback HTTP. Every appended token is verified against the
 * actor registry by the log itself; a request that cannot be made durable gets an error.
 * Back-pressure: at most `maxInFlight` appends are in progress; beyond that the daemon
 * answers 503 with `Retry-After`, so memory stays bounded however fast clients send.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { chmod, unlink } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { readJsonBody, sendJson } from './http-json.js';
import { ContinuityError } from './errors.js';
import type { AuditLog } from './log.js';

export type RouteHandler = (req: IncomingMessage, url: URL, body: unknown) => Promise<unknown>;

export interface ServeOptions {
  log: AuditLog;
  socketPath?: string;
  /** Loopback HTTP port (0 = any free port). Only loopback hosts are accepted. */
  port?: number;
  host?: '127.0.0.1' | '::1';
  maxInFlight?: number;
  maxBodyBytes?: number;
  /** Extra GET routes (e.g. `/v1/query`, `/v1/proof`), matched by path prefix. */
  routes?: Record<string, RouteHandler>;
  /** Called for each request (method, path, status) — never with bodies. */
  onRequest?: (method: string, path: string, status: number) => void;
}

export interface RunningDaemon {
  socketPath?: string;
  port?: number;
  close(): Promise<void>;
}

const STATUS: Partial<Record<string, number>> = {
  TOKEN_REJECTED: 422,
  ACTOR_UNKNOWN: 403,
  CAUSAL_PARENT_UNKNOWN: 409,
  CAUSAL_PREV_MISMATCH: 409,
  CAUSAL_GENERATION_INVALID: 409,
  DUPLICATE_ACTION: 409,
  NOT_FOUND: 404,
  BACKPRESSURE: 503,
  WRITE_FAILED: 503,
  LOG_POISONED: 503,
  LOG_CLOSED: 503,
};

const send = sendJson;

function fail(res: ServerResponse, e: unknown): number {
  if (ContinuityError.is(e)) {
    const status = STATUS[e.code] ?? 400;
    send(
      res,
      status,
      { error: { code: e.code, message: e.message } },
      status === 503 ? { 'retry-after': '1' } : {},
    );
    return status;
  }
  if (e instanceof TypeError || e instanceof RangeError) {
    send(res, 400, { error: { code: 'BAD_REQUEST', message: e.message } });
    return 400;
  }
  send(res, 500, { error: { code: 'INTERNAL', message: 'internal error' } });
  return 500;
}

const readBody = (req: IncomingMessage, max: number): Promise<unknown> =>
  readJsonBody(
    req,
    max,
    (m, cause) => new ContinuityError('DAEMON_PROTOCOL', m, cause ? { cause } : {}),
  );

function optId(v: unknown, name: string): string | null | undefined {
  if (v === undefined) return undefined;
  if (v === null || typeof v === 'string') return v;
  throw new TypeError(`"${name}" must be a string or null`);
}

/** Start serving `log`. Resolves once listening. */
export async function serveLog(o: ServeOptions): Promise<RunningDaemon> {
  const maxInFlight = o.maxInFlight ?? 4096;
  const maxBody = o.maxBodyBytes ?? 256 * 1024;
  let inFlight = 0;
  const handler = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://daemon');
    let status = 200;
    try {
      const route = `${req.method ?? 'GET'} ${url.pathname}`;
      if (route === 'POST /v1/append') {
        if (inFlight >= maxInFlight)
          throw new ContinuityError('BACKPRESSURE', 'too many appends in flight; retry');
        inFlight++;
        try {
          const body = (await readBody(req, maxBody)) as Record<string, unknown> | undefined;
          if (typeof body !== 'object' || body === null)
            throw new TypeError('body must be a JSON object with "token"');
          const objectId = optId(body['object_id'], 'object_id');
          const parentObjectId = optId(body['parent_object_id'], 'parent_object_id');
          const continuityId = optId(body['continuity_id'], 'continuity_id');
          const receipt = await o.log.append(body['token'], {
            ...(objectId !== undefined ? { objectId } : {}),
            ...(parentObjectId !== undefined ? { parentObjectId } : {}),
            ...(continuityId !== undefined && continuityId !== null ? { continuityId } : {}),
          });
          send(res, 200, receipt);
        } finally {
          inFlight--;
        }
      } else if (route === 'POST /v1/checkpoint') {
        await readBody(req, maxBody);
        send(res, 200, { note: (await o.log.checkpoint()).note });
      } else if (route === 'GET /v1/head') {
        await o.log.drain();
        send(res, 200, {
          size: o.log.durableSize,
          root: Buffer.from(o.log.root()).toString('hex'),
          origin: o.log.origin,
          checkpoint: o.log.latestCheckpoint?.note ?? null,
        });
      } else if (req.method === 'GET' && url.pathname.startsWith('/v1/line/')) {
        const id = decodeURIComponent(url.pathname.slice('/v1/line/'.length));
        await o.log.drain();
        const e = o.log.lastOnLine(id);
        if (!e) throw new ContinuityError('NOT_FOUND', `no line ${id}`);
        send(res, 200, e);
      } else if (req.method === 'GET' && url.pathname.startsWith('/v1/action/')) {
        const id = decodeURIComponent(url.pathname.slice('/v1/action/'.length));
        // settle appends in flight first: an answer about an action must be final
        await o.log.drain();
        const e = o.log.action(id);
        if (!e) throw new ContinuityError('NOT_FOUND', `no action ${id}`);
        send(res, 200, e);
      } else if (req.method === 'GET' && url.pathname.startsWith('/v1/record/')) {
        const n = Number(url.pathname.slice('/v1/record/'.length));
        if (!Number.isSafeInteger(n) || n < 0)
          throw new TypeError('record index must be a non-negative integer');
        send(res, 200, await o.log.readRecord(n));
      } else {
        const extra = Object.entries(o.routes ?? {}).find(([p]) => route.startsWith(p));
        if (!extra) {
          status = 404;
          send(res, 404, { error: { code: 'NOT_FOUND', message: `no route ${route}` } });
        } else {
          const body = req.method === 'POST' ? await readBody(req, maxBody) : undefined;
          send(res, 200, await extra[1](req, url, body));
        }
      }
    } catch (e) {
      status = fail(res, e);
    }
    o.onRequest?.(req.method ?? '?', url.pathname, status);
  };
  const servers: Server[] = [];
  const listen = (s: Server, arg: string | { port: number; host: string }): Promise<void> =>
    new Promise((res, rej) => {
      s.once('error', rej);
      if (typeof arg === 'string') s.listen(arg, () => res());
      else s.listen(arg.port, arg.host, () => res());
    });
  const make = (): Server => {
    const s = createServer((req, res) => void handler(req, res));
    s.headersTimeout = 10_000;
    s.requestTimeout = 60_000;
    servers.push(s);
    return s;
  };
  const running: RunningDaemon = {
    close: async () => {
      await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
      if (o.socketPath) await unlink(o.socketPath).catch(() => undefined);
    },
  };
  try {
    if (o.socketPath) {
      await unlink(o.socketPath).catch(() => undefined);
      const old = process.umask(0o177);
      try {
        await listen(make(), o.socketPath);
      } finally {
        process.umask(old);
      }
      await chmod(o.socketPath, 0o600);
      running.socketPath = o.socketPath;
    }
    if (o.port !== undefined) {
      const host = o.host ?? '127.0.0.1';
      if (host !== '127.0.0.1' && host !== '::1')
        throw new TypeError('the daemon listens on loopback only');
      const s = make();
      await listen(s, { port: o.port, host });
      running.port = (s.address() as AddressInfo).port;
    }
    if (!servers.length) throw new TypeError('give socketPath and/or port');
  } catch (e) {
    await running.close();
    throw e;
  }
  return running;
}
