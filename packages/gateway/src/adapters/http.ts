/**
 * HTTP egress adapter (`/proxy/http`, `/upload/*`): sends one request with the credential
 * injected, to a URL the capsule fixes or constrains, and returns the response scrubbed of the
 * credential.
 *
 * Target. `capsule.upstream_url`, or `request.upstream_url` when the capsule fixes none (then the
 * capsule must carry a `host` constraint). The method is `capsule.upstream_method`, else
 * `request.upstream_method`, else `GET`; a request may not change a value the capsule fixes.
 *
 * Constraints (all checked before any connection is made):
 * - `host`: equals the URL's host exactly (`URL.host`: lowercase hostname, `:port` only when not
 *   the scheme's default). No wildcard: a prefix on a hostname would let `example.com*` match
 *   `example.com.evil.net`.
 * - `method`: one method, a comma-separated list (`GET,HEAD`), or `*`; case-insensitive.
 * - `path`: the URL's pathname as the URL parser gives it (percent-encoded, `.`/`..` segments
 *   resolved) equals the value exactly (so `/@scope%2fname` works for npm), or, when the value
 *   ends in `*`, starts with the rest as a plain string prefix (write `/pkg/*`, not `/pkg*`, to
 *   stay inside a folder) and has no encoded slash or backslash (`%2f`, `%5c`) after it. The
 *   query string is not constrained.
 * - `auth_header`: send the secret as the raw value of this header instead of `Authorization`.
 *
 * Scheme. `https:` always; `http:` only to loopback (`localhost`, 127.0.0.0/8, `[::1]`) unless
 * `allowInsecure`. URLs with user info are refused.
 *
 * Credential. `Authorization: Bearer <secret>` for api_key, oauth_token, github_pat, pypi_token,
 * crates_token and types this adapter does not know; `Authorization: Basic base64(user:password)`
 * for service_account_credential (the material is `user:password`); the raw secret in the header
 * named by `auth_header` when the capsule has one. Private keys (signing_key, ssh_key,
 * smart_contract_signer, webhook_signer, tls_cert) and root_password are refused: they are
 * used through `/sign` or `/exec`, never sent. The agent's `Authorization`, `Cookie`,
 * `Proxy-*`, hop-by-hop, `Host`, `Content-Length` and `Accept-Encoding` headers are dropped.
 *
 * Payload (the capsule's `upstream_payload` or the request's `payload`): absent/null, or an
 * object with only these keys: `headers` (string → string), `body` (a string is sent as UTF-8
 * text, any other JSON value as `application/json`), `body_base64` (padded base64 bytes, sent
 * as `application/octet-stream`). A `content-type` header overrides the default.
 *
 * Redirects. A redirect to another origin (scheme, host or port) is refused with
 * `sam-gateway-proxy-failed` and nothing is sent there. Same-origin redirects are followed up to
 * `maxRedirects` (default 3), each hop re-checked against the `method` and `path` constraints
 * (303, and 301/302 after POST, continue as GET without a body, as fetch does); past the limit,
 * or with `maxRedirects: 0`, the 3xx response itself is returned.
 *
 * Response. `{status, status_text, method, url, headers, body, body_encoding ('utf8' when the
 * body is valid UTF-8, else 'base64'), body_bytes, body_truncated, redirects}`. Every string is
 * masked. Headers: all but `Set-Cookie` and hop-by-hop ones (a session cookie obtained with the
 * credential is itself a credential). Compressed bodies (`gzip`, `deflate`, `br`) are decoded
 * before masking; other encodings are refused, as the masker could not see into them. The body
 * is masked as it streams and cut at `maxResponseBytes` after masking.
 */
import http, { type IncomingMessage, type OutgoingHttpHeaders } from 'node:http';
import https from 'node:https';
import type { Readable } from 'node:stream';
import { createBrotliDecompress, createGunzip, createInflate } from 'node:zlib';
import { fromBase64, toBase64, utf8, type JsonValue } from '@tibet/core';
import type { SecretType } from '@tibet/keychain';
import type { Capsule } from '@tibet/sam';
import {
  aborted,
  bytesText,
  constraint,
  failed,
  intOption,
  isObject,
  MaskedCollector,
  refuse,
  resolvePayload,
  textOrBase64,
} from './common.js';
import { createMasker, type Masker } from './mask.js';
import {
  GatewayAdapterError,
  type Adapter,
  type AdapterInput,
  type AdapterResult,
} from './types.js';

export interface HttpAdapterOptions {
  /** Permit `http:` to hosts other than loopback (default false). */
  allowInsecure?: boolean;
  /** Same-origin redirects followed (default 3; 0 returns the 3xx response). */
  maxRedirects?: number;
  /** Largest body returned to the agent, after masking (default 4 MiB); the rest is cut. */
  maxResponseBytes?: number;
  /** Largest request body sent (default 16 MiB); larger payloads are refused. */
  maxRequestBytes?: number;
  /** Time limit for the whole exchange, besides the session signal (default 30 000 ms). */
  timeoutMs?: number;
  /** Extra trust anchors (PEM) for `https:` upstreams, e.g. a private registry's CA. */
  ca?: string | readonly string[];
}

const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** C0 controls and DEL (a header value containing one is refused). */
function hasControl(s: string): boolean {
  for (let k = 0; k < s.length; k++) {
    const c = s.charCodeAt(k);
    if (c < 0x20 || c === 0x7f) return true;
  }
  return false;
}
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
]);
/** Request headers the agent may not set. */
const DROPPED = new Set([
  ...HOP_BY_HOP,
  'authorization',
  'cookie',
  'cookie2',
  'host',
  'content-length',
  'accept-encoding',
  'expect',
]);
/** Response headers never returned. */
const WITHHELD = new Set([...HOP_BY_HOP, 'set-cookie', 'set-cookie2']);
const KEY_TYPES = new Set<SecretType>([
  'signing_key',
  'ssh_key',
  'smart_contract_signer',
  'webhook_signer',
  'tls_cert',
  'root_password',
]);
/** A password shorter than this is not masked on its own (it would mask ordinary text). */
const MIN_PASSWORD_MASK = 6;
const MAX_AGENT_HEADERS = 64;

interface Credential {
  header: string;
  value: string;
  /** Extra secrets to mask besides the material (the password of a basic credential). */
  extra: Uint8Array[];
}

function credentialFor(capsule: Capsule, type: SecretType, secret: Uint8Array): Credential {
  if (KEY_TYPES.has(type)) {
    throw refuse(
      'sam-secret-unavailable',
      `a ${type} is never sent over HTTP; use the /sign or /exec adapters`,
    );
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(secret);
  } catch {
    throw refuse('sam-secret-unavailable', `the ${type} is not UTF-8 text`);
  }
  if (text.length === 0 || hasControl(text)) {
    throw refuse('sam-secret-unavailable', `the ${type} is not usable as an HTTP header value`);
  }
  const named = constraint(capsule, 'auth_header');
  if (named !== undefined) {
    const lower = named.toLowerCase();
    if (!TOKEN.test(named) || (DROPPED.has(lower) && lower !== 'authorization')) {
      throw refuse('sam-constraint-mismatch', `"auth_header" names an unusable header`);
    }
    return { header: lower, value: text, extra: [] };
  }
  if (type === 'service_account_credential') {
    const colon = text.indexOf(':');
    if (colon <= 0) {
      throw refuse(
        'sam-secret-unavailable',
        'a service_account_credential must be "user:password" for basic authentication',
      );
    }
    const password = utf8(text.slice(colon + 1));
    const extra = password.length >= MIN_PASSWORD_MASK ? [password] : [];
    return { header: 'authorization', value: `Basic ${toBase64(secret)}`, extra };
  }
  return { header: 'authorization', value: `Bearer ${text}`, extra: [] };
}

function isLoopback(hostname: string): boolean {
  if (hostname === 'localhost' || hostname === '[::1]') return true;
  const m = /^127\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(hostname);
  return m !== null && m.slice(1).every((x) => Number(x) <= 255);
}

function parseUrl(text: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw refuse('sam-upstream-invalid', 'the upstream URL does not parse');
  }
  url.hash = '';
  return url;
}

function methodAllowed(rule: string, method: string): boolean {
  if (rule.trim() === '*') return true;
  return rule
    .split(',')
    .map((m) => m.trim().toUpperCase())
    .includes(method);
}

function pathAllowed(rule: string, pathname: string): boolean {
  if (!rule.endsWith('*')) return pathname === rule;
  const prefix = rule.slice(0, -1);
  // an encoded slash or backslash in the wildcard part could climb out of the prefix on a
  // server that decodes it before routing
  return pathname.startsWith(prefix) && !/%2f|%5c/i.test(pathname.slice(prefix.length));
}

/** The checks each hop must pass (the first request and every followed redirect). */
function checkHop(capsule: Capsule, url: URL, method: string, o: { allowInsecure: boolean }) {
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw refuse('sam-upstream-invalid', `the upstream scheme ${url.protocol} is not allowed`);
  }
  if (url.username !== '' || url.password !== '') {
    throw refuse('sam-upstream-invalid', 'the upstream URL may not carry user info');
  }
  if (url.protocol === 'http:' && !o.allowInsecure && !isLoopback(url.hostname)) {
    throw refuse('sam-upstream-invalid', 'plain http: is allowed only to loopback');
  }
  if (!METHODS.has(method)) {
    throw refuse('sam-upstream-invalid', `the method ${method} is not allowed`);
  }
  const host = constraint(capsule, 'host');
  if (host !== undefined && url.host !== host.toLowerCase()) {
    throw refuse('sam-constraint-mismatch', `the upstream host is not the capsule's host`);
  }
  const methods = constraint(capsule, 'method');
  if (methods !== undefined && !methodAllowed(methods, method)) {
    throw refuse('sam-constraint-mismatch', `the method ${method} is not allowed by the capsule`);
  }
  const path = constraint(capsule, 'path');
  if (path !== undefined && !pathAllowed(path, url.pathname)) {
    throw refuse('sam-constraint-mismatch', `the path is not allowed by the capsule`);
  }
}

interface Envelope {
  headers: [string, string][];
  body: Uint8Array | null;
  contentType: string | null;
}

function parseEnvelope(v: JsonValue | undefined, maxRequestBytes: number): Envelope {
  const env: Envelope = { headers: [], body: null, contentType: null };
  if (v === undefined || v === null) return env;
  if (!isObject(v)) {
    throw refuse('sam-upstream-invalid', 'the HTTP payload must be an object {headers, body}');
  }
  for (const k of Object.keys(v)) {
    if (k !== 'headers' && k !== 'body' && k !== 'body_base64') {
      throw refuse('sam-upstream-invalid', `the HTTP payload has an unknown key "${k}"`);
    }
  }
  const h = v['headers'];
  if (h !== undefined && h !== null) {
    if (!isObject(h)) throw refuse('sam-upstream-invalid', '"headers" must be an object');
    const entries = Object.entries(h);
    if (entries.length > MAX_AGENT_HEADERS) {
      throw refuse('sam-upstream-invalid', 'too many request headers');
    }
    for (const [name, value] of entries) {
      if (!TOKEN.test(name) || typeof value !== 'string' || hasControl(value)) {
        throw refuse('sam-upstream-invalid', 'a request header is malformed');
      }
      env.headers.push([name.toLowerCase(), value]);
    }
  }
  const body = v['body'];
  const b64 = v['body_base64'];
  if (body !== undefined && b64 !== undefined) {
    throw refuse('sam-upstream-invalid', 'give "body" or "body_base64", not both');
  }
  if (typeof b64 === 'string') {
    try {
      env.body = fromBase64(b64, 'body_base64');
    } catch {
      throw refuse('sam-upstream-invalid', '"body_base64" is not padded base64');
    }
    env.contentType = 'application/octet-stream';
  } else if (b64 !== undefined) {
    throw refuse('sam-upstream-invalid', '"body_base64" must be a string');
  } else if (typeof body === 'string') {
    env.body = utf8(body);
    env.contentType = 'text/plain; charset=utf-8';
  } else if (body !== undefined && body !== null) {
    env.body = utf8(JSON.stringify(body));
    env.contentType = 'application/json';
  }
  if (env.body !== null && env.body.length > maxRequestBytes) {
    throw refuse('sam-upstream-invalid', 'the request body is larger than the adapter allows');
  }
  return env;
}

function send(
  url: URL,
  method: string,
  headers: OutgoingHttpHeaders,
  body: Uint8Array | null,
  signal: AbortSignal,
  ca: readonly string[] | undefined,
): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const options: https.RequestOptions = { method, headers, signal, agent: false };
    if (ca !== undefined && url.protocol === 'https:') options.ca = [...ca];
    const req = (url.protocol === 'https:' ? https : http).request(url, options, resolve);
    req.on('error', reject);
    req.end(body ?? undefined);
  });
}

function decoded(res: IncomingMessage, method: string): Readable {
  const enc = (res.headers['content-encoding'] ?? 'identity').trim().toLowerCase();
  const empty = method === 'HEAD' || res.statusCode === 204 || res.statusCode === 304;
  if (empty || enc === 'identity' || enc === '') return res;
  const z =
    enc === 'gzip' || enc === 'x-gzip'
      ? createGunzip()
      : enc === 'deflate'
        ? createInflate()
        : enc === 'br'
          ? createBrotliDecompress()
          : undefined;
  if (z === undefined) {
    res.destroy();
    throw failed(`the response's content-encoding "${enc}" cannot be scrubbed`);
  }
  res.on('error', (e) => z.destroy(e));
  res.pipe(z);
  return z;
}

async function readMasked(
  source: Readable,
  masker: Masker,
  limit: number,
): Promise<{ body: Uint8Array; truncated: boolean }> {
  const sink = new MaskedCollector(masker, limit);
  try {
    for await (const chunk of source as AsyncIterable<Uint8Array>) {
      if (!sink.push(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength))) break;
    }
  } catch (e) {
    sink.discard();
    throw e;
  } finally {
    source.destroy();
  }
  return { body: sink.end(), truncated: sink.truncated };
}

function responseHeaders(res: IncomingMessage, masker: Masker): { [key: string]: JsonValue } {
  const out: { [key: string]: JsonValue } = {};
  for (const [name, value] of Object.entries(res.headers)) {
    if (value === undefined || WITHHELD.has(name)) continue;
    out[masker.maskText(name)] = masker.maskText(Array.isArray(value) ? value.join(', ') : value);
  }
  return out;
}

function isRedirect(status: number): boolean {
  return status === 301 || status === 302 || status === 303 || status === 307 || status === 308;
}

export class HttpEgressAdapter implements Adapter {
  readonly name = 'http-egress' as const;
  readonly #allowInsecure: boolean;
  readonly #maxRedirects: number;
  readonly #maxResponseBytes: number;
  readonly #maxRequestBytes: number;
  readonly #timeoutMs: number;
  readonly #ca: readonly string[] | undefined;

  constructor(o: HttpAdapterOptions = {}) {
    this.#allowInsecure = o.allowInsecure === true;
    this.#maxRedirects = intOption(o.maxRedirects, 'maxRedirects', 3);
    this.#maxResponseBytes = intOption(o.maxResponseBytes, 'maxResponseBytes', 4 << 20);
    this.#maxRequestBytes = intOption(o.maxRequestBytes, 'maxRequestBytes', 16 << 20);
    this.#timeoutMs = intOption(o.timeoutMs, 'timeoutMs', 30_000);
    this.#ca = o.ca === undefined ? undefined : typeof o.ca === 'string' ? [o.ca] : [...o.ca];
  }

  accepts(capsule: Capsule): boolean {
    return capsule.target_action === '/proxy/http' || capsule.target_action.startsWith('/upload/');
  }

  async execute(i: AdapterInput): Promise<AdapterResult> {
    const { capsule, request } = i;
    if (i.signal.aborted) throw aborted('the session ended before the request was sent');
    if (!this.accepts(capsule)) {
      throw refuse('sam-target-mismatch', `the http-egress adapter does not perform this action`);
    }

    // 1. Everything the capsule decides, before any connection.
    const fixedUrl = capsule.upstream_url;
    const askedUrl = request.upstream_url;
    if (fixedUrl === null && askedUrl === undefined) {
      throw refuse('sam-upstream-missing', 'neither the capsule nor the request names a URL');
    }
    if (fixedUrl === null && constraint(capsule, 'host') === undefined) {
      throw refuse(
        'sam-upstream-invalid',
        'the capsule fixes no upstream_url and has no "host" constraint',
      );
    }
    let url = parseUrl(fixedUrl ?? askedUrl ?? '');
    if (fixedUrl !== null && askedUrl !== undefined && parseUrl(askedUrl).href !== url.href) {
      throw refuse(
        'sam-upstream-invalid',
        'the capsule fixes the upstream URL; the request differs',
      );
    }
    const fixedMethod = capsule.upstream_method?.toUpperCase() ?? null;
    const askedMethod = request.upstream_method?.toUpperCase();
    if (fixedMethod !== null && askedMethod !== undefined && askedMethod !== fixedMethod) {
      throw refuse('sam-constraint-mismatch', 'the capsule fixes the method; the request differs');
    }
    let method = fixedMethod ?? askedMethod ?? 'GET';
    checkHop(capsule, url, method, { allowInsecure: this.#allowInsecure });
    const envelope = parseEnvelope(resolvePayload(capsule, request), this.#maxRequestBytes);
    const cred = credentialFor(capsule, i.secretType, i.secret);

    let masker: Masker;
    try {
      masker = createMasker([i.secret, ...cred.extra]);
    } catch {
      throw refuse('sam-secret-unavailable', 'the secret cannot be masked safely');
    } finally {
      for (const e of cred.extra) e.fill(0);
    }

    const headers: OutgoingHttpHeaders = {};
    let contentType = envelope.contentType;
    for (const [name, value] of envelope.headers) {
      if (DROPPED.has(name) || name.startsWith('proxy-') || name === cred.header) continue;
      if (name === 'content-type') contentType = value;
      else headers[name] = value;
    }
    headers['accept-encoding'] = 'identity';
    headers[cred.header] = cred.value;
    let body = envelope.body;

    const signal = AbortSignal.any([i.signal, AbortSignal.timeout(this.#timeoutMs)]);
    try {
      let redirects = 0;
      for (;;) {
        const hopHeaders: OutgoingHttpHeaders = { ...headers };
        if (body !== null) {
          if (contentType !== null) hopHeaders['content-type'] = contentType;
          hopHeaders['content-length'] = String(body.length);
        }
        let res: IncomingMessage;
        try {
          res = await send(url, method, hopHeaders, body, signal, this.#ca);
        } catch (e) {
          if (signal.aborted) throw aborted('the request was aborted (time limit or session end)');
          const code = (e as { code?: unknown }).code;
          throw failed(
            masker.maskText(
              `the request to ${url.origin} failed${typeof code === 'string' ? ` (${code})` : ''}`,
            ),
          );
        }
        const status = res.statusCode ?? 0;
        const location = res.headers.location;
        if (isRedirect(status) && location !== undefined && redirects < this.#maxRedirects) {
          res.destroy();
          let next: URL;
          try {
            next = new URL(location, url);
          } catch {
            throw failed('the upstream sent a redirect that does not parse');
          }
          next.hash = '';
          if (next.origin !== url.origin) {
            throw refuse(
              'sam-gateway-proxy-failed',
              masker.maskText(
                `the upstream redirected to another origin (${next.origin}); not followed`,
              ),
            );
          }
          if (
            status === 303
              ? method !== 'HEAD'
              : (status === 301 || status === 302) && method === 'POST'
          ) {
            method = 'GET';
            body = null;
          }
          checkHop(capsule, next, method, { allowInsecure: this.#allowInsecure });
          url = next;
          redirects++;
          continue;
        }

        let read: { body: Uint8Array; truncated: boolean };
        try {
          read = await readMasked(decoded(res, method), masker, this.#maxResponseBytes);
        } catch (e) {
          if (signal.aborted) throw aborted('the response was aborted (time limit or session end)');
          if (GatewayAdapterError.is(e)) throw e;
          throw failed('reading the upstream response failed');
        }
        const shown = textOrBase64(read.body, read.truncated);
        const where = masker.maskText(url.href);
        const response: JsonValue = {
          status,
          status_text: masker.maskText(res.statusMessage ?? ''),
          method,
          url: where,
          headers: responseHeaders(res, masker),
          body: shown.text,
          body_encoding: shown.encoding,
          body_bytes: read.body.length,
          body_truncated: read.truncated,
          redirects,
        };
        const summary = masker.maskText(
          `HTTP ${status} for ${method} ${url.origin}${url.pathname} (${bytesText(read.body.length)}` +
            `${read.truncated ? ', truncated' : ''}` +
            `${redirects > 0 ? `, ${redirects} redirect${redirects === 1 ? '' : 's'}` : ''})`,
        );
        return { executed_action: `${method} ${where}`, summary, response };
      }
    } finally {
      masker.destroy();
    }
  }
}
