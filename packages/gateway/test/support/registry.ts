/**
 * A stand-in package registry on loopback, for the gateway's tests: npm-like enough that a
 * publish through the http-egress adapter is a real HTTP exchange, and instrumented so tests can
 * assert what arrived (and what did not).
 *
 * Endpoints:
 * - `PUT /<pkg>`: publish; requires the credential (see `auth`). Stores the body, answers
 *   201 `{ok, id, rev, received_bytes, auth_echo}` and the header `x-echo-authorization`, both
 *   echoing the credential header exactly as received (so scrubbing is tested).
 * - `GET /<pkg>`: the stored document (public, as on npm), or 404.
 * - `GET /-/whoami`: `{username}` when authorised.
 * - `GET /-/echo-forms`: the token as raw text, base64, base64url, hex and URL-encoded, in the
 *   body and in `x-echo-*` headers (authorised).
 * - `GET /-/echo-gzip`: like `PUT`'s echo, but gzip-encoded regardless of Accept-Encoding.
 * - `GET /-/big?n=<bytes>`: `n` bytes of `a` followed by the token (authorised).
 * - `GET /-/hang`: never answers (for timeouts).
 * - Any path given to `redirect()` answers with that redirect before any auth check.
 *
 * Without the credential every authorised endpoint answers 401 with `WWW-Authenticate`. Every
 * request, authorised or not, is recorded in `requests`.
 */
import { createServer, type IncomingHttpHeaders, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';

export type RegistryAuth = 'bearer' | 'basic' | { header: string };

export interface ReceivedRequest {
  method: string;
  /** Path and query as received. */
  url: string;
  headers: IncomingHttpHeaders;
  body: Uint8Array;
  /** Whether the expected credential arrived. */
  authorized: boolean;
}

export interface RegistryOptions {
  /** The credential: a token, or `user:password` for `basic`. */
  token: string;
  /** How the credential must arrive (default `bearer`). */
  auth?: RegistryAuth;
  /** Loopback address to bind (default 127.0.0.1). */
  hostname?: string;
}

export interface StandInRegistry {
  /** `http://<hostname>:<port>` */
  readonly origin: string;
  /** `<hostname>:<port>` as `URL.host` gives it. */
  readonly host: string;
  readonly requests: ReceivedRequest[];
  readonly packages: Map<string, Uint8Array>;
  /** Answer requests to `path` (exact, without the query) with a redirect to `location`. */
  redirect(path: string, location: string, status?: 301 | 302 | 303 | 307 | 308): void;
  /** Every request body and header value received, as one string (to search for a secret). */
  everythingReceived(): string;
  close(): Promise<void>;
}

function authHeaderName(auth: RegistryAuth): string {
  return typeof auth === 'object' ? auth.header.toLowerCase() : 'authorization';
}

function expected(auth: RegistryAuth, token: string): string {
  if (auth === 'bearer') return `Bearer ${token}`;
  if (auth === 'basic') return `Basic ${Buffer.from(token, 'utf8').toString('base64')}`;
  return token;
}

function json(res: ServerResponse, status: number, body: unknown, headers = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

export async function startRegistry(o: RegistryOptions): Promise<StandInRegistry> {
  const auth = o.auth ?? 'bearer';
  const name = authHeaderName(auth);
  const want = expected(auth, o.token);
  const requests: ReceivedRequest[] = [];
  const packages = new Map<string, Uint8Array>();
  const redirects = new Map<string, { location: string; status: number }>();
  const hanging = new Set<ServerResponse>();

  const server = createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (c: Buffer) => parts.push(c));
    req.on('end', () => {
      const body = new Uint8Array(Buffer.concat(parts));
      const got = req.headers[name];
      const authorized = typeof got === 'string' && got === want;
      requests.push({
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        body,
        authorized,
      });
      const url = new URL(req.url ?? '/', 'http://registry.invalid');
      const path = url.pathname;

      const r = redirects.get(path);
      if (r !== undefined) {
        res.writeHead(r.status, { location: r.location, 'content-length': 0 });
        res.end();
        return;
      }
      if (path === '/-/hang') {
        hanging.add(res);
        return;
      }
      if (req.method === 'GET' && path !== '/' && !path.startsWith('/-/')) {
        const doc = packages.get(decodeURIComponent(path.slice(1)));
        if (doc === undefined) json(res, 404, { error: 'not_found' });
        else json(res, 200, JSON.parse(Buffer.from(doc).toString('utf8')));
        return;
      }
      if (!authorized) {
        json(
          res,
          401,
          { error: 'unauthorized' },
          { 'www-authenticate': 'Bearer realm="registry"' },
        );
        return;
      }
      const echo = typeof got === 'string' ? got : '';
      if (req.method === 'PUT' && path.length > 1 && !path.startsWith('/-/')) {
        const id = decodeURIComponent(path.slice(1));
        packages.set(id, body);
        json(
          res,
          201,
          { ok: true, id, rev: `1-${packages.size}`, received_bytes: body.length, auth_echo: echo },
          { 'x-echo-authorization': echo, 'set-cookie': `session=${o.token}; HttpOnly` },
        );
        return;
      }
      if (req.method === 'GET' && path === '/-/whoami') {
        json(res, 200, { username: 'stand-in' });
        return;
      }
      if (req.method === 'GET' && path === '/-/echo-forms') {
        const t = Buffer.from(o.token, 'utf8');
        const forms = {
          raw: o.token,
          base64: t.toString('base64'),
          base64url: t.toString('base64url'),
          hex: t.toString('hex'),
          hex_upper: t.toString('hex').toUpperCase(),
          url: encodeURIComponent(o.token),
          in_basic: Buffer.from(`someone:${o.token}`).toString('base64'),
        };
        json(res, 200, forms, {
          'x-echo-raw': forms.raw,
          'x-echo-base64': forms.base64,
          'x-echo-hex': forms.hex,
        });
        return;
      }
      if (req.method === 'GET' && path === '/-/echo-gzip') {
        const z = gzipSync(JSON.stringify({ auth_echo: echo, note: 'gzip' }));
        res.writeHead(200, {
          'content-type': 'application/json',
          'content-encoding': 'gzip',
          'content-length': z.length,
        });
        res.end(z);
        return;
      }
      if (req.method === 'GET' && path === '/-/big') {
        const n = Number(url.searchParams.get('n') ?? '0');
        const out = Buffer.concat([Buffer.alloc(n, 'a'), Buffer.from(o.token, 'utf8')]);
        res.writeHead(200, { 'content-type': 'text/plain', 'content-length': out.length });
        res.end(out);
        return;
      }
      json(res, 404, { error: 'no such endpoint' });
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, o.hostname ?? '127.0.0.1', () => resolve());
  });
  const { port, address } = server.address() as AddressInfo;
  const host = `${address.includes(':') ? `[${address}]` : address}:${port}`;

  return {
    origin: `http://${host}`,
    host,
    requests,
    packages,
    redirect(path, location, status = 302) {
      redirects.set(path, { location, status });
    },
    everythingReceived() {
      return requests
        .map((r) =>
          [
            r.method,
            r.url,
            ...Object.entries(r.headers).map(([k, v]) => `${k}: ${String(v)}`),
            Buffer.from(r.body).toString('latin1'),
          ].join('\n'),
        )
        .join('\n');
    },
    async close() {
      for (const res of hanging) res.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
