/**
 * The gateway daemon: a Unix socket (mode 0600) and/or loopback HTTP (node:http).
 *
 *   GET  /v1/health     who the gateway is, its adapters, whether it issues capsules
 *   POST /v1/exec       {capsule: base64, request: ExecRequest, proof: the agent's
 *                       sam-exec-requested token} → the receipt (sealed and JSON) and the
 *                       masked response; 200 executed, 403 denied
 *   POST /v1/capsules   {request: CapsuleRequest, proof: the agent's sam-requested token} →
 *                       a capsule issued by the configured issuer (only with `issuer`; only on
 *                       the Unix socket unless `issueOverHttp`)
 *   POST /proxy         the family's shape {agent_id, intent, target_url, method, payload,
 *                       headers?}, with the capsule in the `X-Tibet-Capsule` header (base64)
 *                       and the agent's proof in `X-Tibet-Proof` (base64 of the token JSON);
 *                       without a capsule the request is denied (and the denial logged)
 *
 * Agents are authenticated by proof of possession of their own identity key (docs/gateway.md
 * §7) unless the Gateway was built with `requireAgentProof: false`.
 *
 * Errors are JSON `{error: {code, message}}`. Back-pressure: at most `maxInFlight` requests
 * do work at once; beyond that 503 with `Retry-After`. Browsers are kept out: a request with
 * an `Origin` header, a POST that is not `application/json`, or a loopback request whose
 * `Host` is not a loopback name is refused (no CSRF, no DNS rebinding).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { chmod, unlink } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { toBase64, type Identity, type JsonValue } from '@tibet/core';
import { readJsonBody, sendJson } from '@tibet/continuityd';
import { SamError, issueCapsule, type ExecRequest } from '@tibet/sam';
import { execIsolation } from './adapters/index.js';
import { GatewayError, type GatewayErrorCode } from './errors.js';
import type { Gateway } from './gateway.js';
import {
  WIRE_LIMITS,
  capsuleBodyFromJson,
  decodeBase64Field,
  execAnswer,
  execBodyFromJson,
  proofFromHeader,
} from './wire.js';

export interface ServeGatewayOptions {
  gateway: Gateway;
  socketPath?: string;
  /** Loopback HTTP port (0 = any free port). */
  port?: number;
  host?: '127.0.0.1' | '::1';
  /**
   * Issues capsules on `POST /v1/capsules` under each secret's policy (the keychain's
   * custodian or service identity). Without it the endpoint answers NOT_CONFIGURED.
   */
  issuer?: Identity;
  /** Also issue on loopback HTTP (default false: the Unix socket's 0600 mode guards it). */
  issueOverHttp?: boolean;
  /** Encrypt issued capsules to this gateway (default false). */
  encryptCapsules?: boolean;
  /** Most requests doing work at once (default 64). */
  maxInFlight?: number;
  /** Largest request body (default 1 MiB). */
  maxBodyBytes?: number;
  /** Called for each request (method, path, status) — never with bodies. */
  onRequest?: (method: string, path: string, status: number) => void;
}

export interface RunningGateway {
  socketPath?: string;
  port?: number;
  /** Stop listening (execs in flight finish). */
  close(): Promise<void>;
}

const STATUS: Record<GatewayErrorCode, number> = {
  AUDIT_FAILED: 503,
  AUDIT_INCOMPLETE: 502,
  REPLAY_STORE_FAILED: 503,
  RECEIPT_INVALID: 400,
  INVALID_REQUEST: 400,
  NOT_CONFIGURED: 501,
  ISSUE_REFUSED: 403,
  NOT_FOUND: 404,
  BACKPRESSURE: 503,
  DAEMON_UNAVAILABLE: 503,
  DAEMON_PROTOCOL: 400,
  GATEWAY_CLOSED: 503,
  SESSION_TIMEOUT: 504,
};

/** SamError codes that mean the capsule request itself was malformed. */
const SAM_BAD_INPUT = ['INVALID_REQUEST', 'INVALID_CAPSULE'];

const send = sendJson;

function fail(res: ServerResponse, e: unknown): number {
  if (GatewayError.is(e)) {
    const status = STATUS[e.code];
    send(
      res,
      status,
      {
        error: {
          code: e.code,
          message: e.message,
          ...(e.detailCode ? { detail_code: e.detailCode } : {}),
          ...(e.verdict ? { verdict: e.verdict } : {}),
          ...(e.receiptBytes ? { receipt_tza: toBase64(e.receiptBytes) } : {}),
        },
      },
      status === 503 ? { 'retry-after': '1' } : {},
    );
    return status;
  }
  if (e instanceof TypeError || e instanceof RangeError) {
    send(res, 400, { error: { code: 'INVALID_REQUEST', message: e.message } });
    return 400;
  }
  // anything else is a bug; its message is not sent (it could carry internals)
  send(res, 500, { error: { code: 'INTERNAL', message: 'internal error' } });
  return 500;
}

async function readBody(req: IncomingMessage, max: number): Promise<unknown> {
  const v = await readJsonBody(
    req,
    max,
    (m, cause) => new GatewayError('INVALID_REQUEST', m, cause ? { cause } : {}),
  );
  if (v === undefined) throw new GatewayError('INVALID_REQUEST', 'request body is empty');
  return v;
}

const PROXY_KEYS = [
  'agent_id',
  'intent',
  'target_url',
  'method',
  'payload',
  'headers',
  'constraints',
];

/**
 * The family's `POST /proxy` body as an ExecRequest for `/proxy/http`: `host` comes from
 * `target_url` (`URL.host`, port included); `headers` and `payload` become the HTTP
 * adapter's `{headers, body}`; `intent` is the request's stated intent, which must be the
 * capsule's (else `sam-constraint-mismatch`); an optional `constraints` object (this
 * project's extension) adds the capsule's other keys. The agent's exec proof signs exactly
 * this ExecRequest.
 */
export function proxyRequest(v: unknown): { request: ExecRequest; intent: string } {
  const bad = (m: string): never => {
    throw new GatewayError('INVALID_REQUEST', `proxy request: ${m}`);
  };
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return bad('not an object');
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!PROXY_KEYS.includes(k)) bad(`unknown field "${k}"`);
  for (const k of ['agent_id', 'intent', 'target_url', 'method'])
    if (typeof o[k] !== 'string' || o[k] === '') bad(`"${k}" must be a non-empty string`);
  let host: string;
  try {
    host = new URL(o['target_url'] as string).host;
  } catch {
    return bad('"target_url" is not a URL');
  }
  const headers = o['headers'];
  if (
    headers !== undefined &&
    (typeof headers !== 'object' ||
      headers === null ||
      Array.isArray(headers) ||
      Object.values(headers).some((x) => typeof x !== 'string'))
  )
    bad('"headers" must be an object of strings');
  const extra = o['constraints'];
  if (
    extra !== undefined &&
    (typeof extra !== 'object' ||
      extra === null ||
      Array.isArray(extra) ||
      Object.values(extra).some((x) => typeof x !== 'string'))
  )
    bad('"constraints" must be an object of strings');
  const payload =
    o['payload'] === undefined || o['payload'] === null
      ? headers === undefined
        ? undefined
        : { headers: headers as JsonValue }
      : {
          ...(headers !== undefined ? { headers: headers as JsonValue } : {}),
          body: o['payload'] as JsonValue,
        };
  return {
    intent: o['intent'] as string,
    request: {
      actor_id: o['agent_id'] as string,
      action: '/proxy/http',
      constraints: { ...((extra as Record<string, string> | undefined) ?? {}), host },
      upstream_url: o['target_url'] as string,
      upstream_method: (o['method'] as string).toUpperCase(),
      ...(payload !== undefined ? { payload } : {}),
      intent: o['intent'] as string,
    },
  };
}

const LOOPBACK_HOSTS = ['127.0.0.1', 'localhost', '[::1]'];

/** Start serving. Resolves once listening. */
export async function serveGateway(o: ServeGatewayOptions): Promise<RunningGateway> {
  const g = o.gateway;
  if (!g || typeof g.exec !== 'function') throw new TypeError('"gateway" must be a Gateway');
  const maxInFlight = o.maxInFlight ?? 64;
  const maxBody = o.maxBodyBytes ?? 1024 * 1024;
  if (!(Number.isSafeInteger(maxInFlight) && maxInFlight > 0))
    throw new RangeError('"maxInFlight" must be a positive integer');
  if (!(Number.isSafeInteger(maxBody) && maxBody > 0))
    throw new RangeError('"maxBodyBytes" must be a positive integer');
  let inFlight = 0;
  let tcpPort = 0;

  const work = async <T>(fn: () => Promise<T>): Promise<T> => {
    if (inFlight >= maxInFlight)
      throw new GatewayError('BACKPRESSURE', 'too many requests in flight; retry');
    inFlight++;
    try {
      return await fn();
    } finally {
      inFlight--;
    }
  };

  const exec = async (
    res: ServerResponse,
    capsule: Uint8Array,
    request: ExecRequest,
    proof: unknown,
  ): Promise<number> => {
    const r = await g.exec(capsule, request, proof);
    const status = r.receipt.status === 'executed' ? 200 : 403;
    send(res, status, execAnswer(r));
    return status;
  };

  const handler = async (
    kind: 'socket' | 'tcp',
    req: IncomingMessage,
    res: ServerResponse,
  ): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://gateway');
    let status = 200;
    try {
      if (req.headers.origin !== undefined)
        throw new GatewayError('INVALID_REQUEST', 'browser requests (Origin) are not served');
      if (kind === 'tcp') {
        const host = (req.headers.host ?? '').toLowerCase();
        if (!LOOPBACK_HOSTS.some((h) => host === h || host === `${h}:${tcpPort}`))
          throw new GatewayError('INVALID_REQUEST', 'the Host header must be a loopback name');
      }
      if (req.method === 'POST') {
        const ct = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
        if (ct !== 'application/json')
          throw new GatewayError('INVALID_REQUEST', 'POST bodies must be application/json');
      }
      const route = `${req.method ?? 'GET'} ${url.pathname}`;
      switch (route) {
        case 'GET /v1/health':
          send(res, 200, {
            ok: true,
            gateway: g.identity.id,
            adapters: g.adapters.map((x) => x.name),
            issuer: o.issuer?.id ?? null,
            issues_here: !!o.issuer && (kind === 'socket' || !!o.issueOverHttp),
            agent_proof_required: g.requireAgentProof,
            exec_isolation: execIsolation(g.adapters),
          });
          break;
        case 'POST /v1/exec':
          status = await work(async () => {
            const body = execBodyFromJson(await readBody(req, maxBody));
            return exec(res, body.capsule, body.request, body.proof);
          });
          break;
        case 'POST /proxy':
          status = await work(async () => {
            const { request } = proxyRequest(await readBody(req, maxBody));
            const proof = proofFromHeader(req.headers['x-tibet-proof']);
            const header = req.headers['x-tibet-capsule'];
            const capsule =
              typeof header === 'string' && header !== ''
                ? decodeBase64Field(header, 'X-Tibet-Capsule', WIRE_LIMITS.capsuleBytes)
                : new Uint8Array(0); // denied: no capsule was presented
            return exec(res, capsule, request, proof);
          });
          break;
        case 'POST /v1/capsules':
          status = await work(async () => {
            const body = await readBody(req, maxBody);
            if (!o.issuer)
              throw new GatewayError('NOT_CONFIGURED', 'this gateway daemon issues no capsules');
            if (kind === 'tcp' && !o.issueOverHttp)
              throw new GatewayError(
                'NOT_CONFIGURED',
                'capsules are issued on the Unix socket only (issueOverHttp is off)',
              );
            const { request, proof } = capsuleBodyFromJson(body);
            let issued;
            try {
              issued = await issueCapsule({
                keychain: g.keychain,
                issuer: o.issuer,
                request,
                ...(proof !== undefined ? { requestProof: proof } : {}),
                requireRequestProof: g.requireAgentProof,
                directory: g.directory,
                ...(o.encryptCapsules ? { gateway: g.identity.public } : {}),
                clock: g.clock,
                random: g.random,
              });
            } catch (e) {
              if (!SamError.is(e)) throw e;
              throw new GatewayError(
                SAM_BAD_INPUT.includes(e.code) ? 'INVALID_REQUEST' : 'ISSUE_REFUSED',
                e.message,
                { detailCode: e.code, ...(e.verdict ? { verdict: e.verdict } : {}) },
              );
            }
            send(res, 201, {
              capsule_tza: toBase64(issued.bytes),
              capsule: issued.capsule,
              action_id: issued.token.action_id,
              request_action_id: issued.requestToken?.action_id ?? null,
            });
            return 201;
          });
          break;
        default:
          status = 404;
          send(res, 404, { error: { code: 'NOT_FOUND', message: `no route ${route}` } });
      }
    } catch (e) {
      if (!res.headersSent) {
        // a body left unread (too large, refused early): answer, then drop the connection
        if (!req.readableEnded) {
          res.shouldKeepAlive = false;
          res.once('finish', () => req.destroy());
        }
        status = fail(res, e);
      } else res.destroy();
    }
    o.onRequest?.(req.method ?? '?', url.pathname, status);
  };

  const servers: Server[] = [];
  const listen = (s: Server, arg: string | { port: number; host: string }): Promise<void> =>
    new Promise((resolve, reject) => {
      s.once('error', reject);
      if (typeof arg === 'string') s.listen(arg, () => resolve());
      else s.listen(arg.port, arg.host, () => resolve());
    });
  const make = (kind: 'socket' | 'tcp'): Server => {
    const s = createServer((req, res) => void handler(kind, req, res));
    s.headersTimeout = 10_000;
    s.requestTimeout = 120_000;
    servers.push(s);
    return s;
  };
  const running: RunningGateway = {
    close: async () => {
      await Promise.all(
        servers.map(
          (s) =>
            new Promise<void>((r) => {
              s.close(() => r());
              s.closeIdleConnections();
            }),
        ),
      );
      if (o.socketPath) await unlink(o.socketPath).catch(() => undefined);
    },
  };
  try {
    if (o.socketPath) {
      await unlink(o.socketPath).catch(() => undefined);
      const old = process.umask(0o177);
      try {
        await listen(make('socket'), o.socketPath);
      } finally {
        process.umask(old);
      }
      await chmod(o.socketPath, 0o600);
      running.socketPath = o.socketPath;
    }
    if (o.port !== undefined) {
      const host = o.host ?? '127.0.0.1';
      if (host !== '127.0.0.1' && host !== '::1')
        throw new TypeError('the gateway listens on loopback only');
      const s = make('tcp');
      await listen(s, { port: o.port, host });
      tcpPort = (s.address() as AddressInfo).port;
      running.port = tcpPort;
    }
    if (!servers.length) throw new TypeError('give socketPath and/or port');
  } catch (e) {
    await running.close();
    throw e;
  }
  return running;
}
