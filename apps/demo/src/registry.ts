/**
 * A loopback stand-in for a package registry (npm-like): `PUT /<package>` publishes a version
 * when the request carries `Authorization: Bearer <token>` for a token the registry knows and
 * that covers the package. The registry keeps only SHA-256 digests of valid tokens, in
 * `<dir>/tokens.json` (re-read on every request, so the demo can "issue" a new token at the
 * registry after a rotation and retire the old one), and appends every publish it accepted or
 * refused to `<dir>/requests.jsonl` — with the token's digest prefix, never the token.
 *
 * Run as its own process: `node dist/registry-main.js <dir>`; it prints `{"port":N}` when ready.
 */
import { createHash } from 'node:crypto';
import { appendFileSync, readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { join } from 'node:path';

export interface TokenEntry {
  sha256: string;
  packages: string[];
}

export interface RegistryRequest {
  at: string;
  method: string;
  package: string;
  version: string | null;
  status: number;
  /** First 12 hex digits of the presented token's SHA-256 (null if none was presented). */
  token_sha256_prefix: string | null;
}

const MAX_BODY = 1024 * 1024;

function sha256Hex(s: string): string {
  return createHash('sha256').update(s, 'utf8').digest('hex');
}

function readTokens(dir: string): TokenEntry[] {
  try {
    const v = JSON.parse(readFileSync(join(dir, 'tokens.json'), 'utf8')) as unknown;
    return Array.isArray(v) ? (v as TokenEntry[]) : [];
  } catch {
    return [];
  }
}

async function body(req: IncomingMessage): Promise<string | null> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > MAX_BODY) return null;
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function send(res: ServerResponse, status: number, v: unknown): void {
  const b = JSON.stringify(v);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(b),
  });
  res.end(b);
}

/** Start the registry on 127.0.0.1 (port 0 = any free port). */
export function startRegistry(dir: string, port = 0): Promise<Server> {
  const packuments = new Map<string, { name: string; versions: Record<string, unknown> }>();
  const server = createServer((req, res) => {
    void (async () => {
      const url = new URL(req.url ?? '/', 'http://registry.local');
      const pkg = decodeURIComponent(url.pathname.slice(1));
      const auth = req.headers.authorization ?? '';
      const bearer = /^Bearer (\S+)$/.exec(auth)?.[1] ?? null;
      const digest = bearer === null ? null : sha256Hex(bearer);
      const log = (status: number, version: string | null): void => {
        const r: RegistryRequest = {
          at: new Date().toISOString(),
          method: req.method ?? '',
          package: pkg,
          version,
          status,
          token_sha256_prefix: digest?.slice(0, 12) ?? null,
        };
        appendFileSync(join(dir, 'requests.jsonl'), JSON.stringify(r) + '\n');
      };
      if (req.method === 'GET') {
        const p = packuments.get(pkg);
        if (p) send(res, 200, p);
        else send(res, 404, { error: 'not found' });
        return;
      }
      if (req.method !== 'PUT' || !pkg) {
        send(res, 405, { error: 'method not allowed' });
        return;
      }
      const text = await body(req);
      let doc: { name?: unknown; version?: unknown } = {};
      try {
        doc = JSON.parse(text ?? '') as typeof doc;
      } catch {
        log(400, null);
        send(res, 400, { error: 'body is not JSON' });
        return;
      }
      const version = typeof doc.version === 'string' ? doc.version : null;
      const entry = digest ? readTokens(dir).find((t) => t.sha256 === digest) : undefined;
      if (!entry) {
        log(401, version);
        send(res, 401, { error: 'unauthorized: unknown or revoked token' });
        return;
      }
      if (!entry.packages.includes(pkg)) {
        log(403, version);
        send(res, 403, { error: `this token may not publish ${pkg}` });
        return;
      }
      if (doc.name !== pkg || !version) {
        log(400, version);
        send(res, 400, { error: 'name must equal the package and version is required' });
        return;
      }
      const p = packuments.get(pkg) ?? { name: pkg, versions: {} };
      if (p.versions[version]) {
        log(409, version);
        send(res, 409, { error: `${pkg}@${version} already exists` });
        return;
      }
      p.versions[version] = doc;
      packuments.set(pkg, p);
      log(201, version);
      send(res, 201, { ok: true, id: `${pkg}@${version}` });
    })().catch((e: unknown) => {
      if (!res.headersSent) send(res, 500, { error: String(e) });
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve(server));
  });
}
