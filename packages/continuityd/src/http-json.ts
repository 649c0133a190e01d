/**
 * The JSON-over-HTTP plumbing of the family's loopback daemons (this package's audit daemon
 * and @tibet/gateway's) and their clients: bounded request bodies and JSON answers on both
 * sides. Each side maps failures to its own error class.
 */
import { request, type IncomingMessage, type ServerResponse } from 'node:http';

/** Answer with `body` as JSON (never cached). */
export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const data = Buffer.from(JSON.stringify(body));
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': String(data.length),
    'cache-control': 'no-store',
    ...headers,
  });
  res.end(data);
}

/**
 * Read a request body of at most `max` bytes (a larger declared or actual length is refused
 * before or while reading) and parse it as JSON; `undefined` for an empty body. Every failure
 * is `fail(message, cause)`.
 */
export async function readJsonBody(
  req: IncomingMessage,
  max: number,
  fail: (message: string, cause?: unknown) => Error,
): Promise<unknown> {
  const tooLarge = `request body larger than ${max} bytes`;
  if (Number(req.headers['content-length'] ?? 0) > max) throw fail(tooLarge);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > max) throw fail(tooLarge);
    chunks.push(c as Buffer);
  }
  if (size === 0) return undefined;
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
  } catch (cause) {
    throw fail('request body is not JSON', cause);
  }
}

/** Where a loopback daemon listens: a Unix socket, or a loopback host and port. */
export type LoopbackAddress = { socketPath: string } | { host: string; port: number };

/** How a client names its daemon and turns transport failures into its own error class. */
export interface JsonCallOptions {
  /** e.g. "the continuityd daemon", "the gateway" (used in messages). */
  peer: string;
  timeoutMs: number;
  headers?: Record<string, string>;
  /** Largest answer accepted (default 64 MiB). */
  maxAnswerBytes?: number;
  /** The daemon cannot be reached or did not answer in time. */
  unavailable: (message: string, cause?: unknown) => Error;
  /** The answer is not JSON or is too large. */
  protocol: (message: string, cause?: unknown) => Error;
  /** Errors already of the caller's class pass through unchanged. */
  isOwn: (e: unknown) => boolean;
}

/**
 * One JSON request to a loopback daemon (the client side of {@link sendJson} and
 * {@link readJsonBody}): the status and the parsed answer, whatever the status. A bounded
 * answer, a timeout, and every transport or parse failure as the caller's own error.
 */
export function requestJson(
  address: LoopbackAddress,
  method: 'GET' | 'POST',
  path: string,
  body: unknown,
  o: JsonCallOptions,
): Promise<{ status: number; body: unknown }> {
  const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  const max = o.maxAnswerBytes ?? 64 * 1024 * 1024;
  return new Promise((resolve, reject) => {
    // settled once: a late 'end', 'error' or 'timeout' after the first outcome is ignored
    let settled = false;
    const fail = (e: Error): void => {
      if (settled) return;
      settled = true;
      reject(e);
    };
    const req = request(
      {
        ...('socketPath' in address
          ? { socketPath: address.socketPath }
          : { host: address.host, port: address.port }),
        method,
        path,
        headers: {
          accept: 'application/json',
          ...o.headers,
          ...(payload
            ? { 'content-type': 'application/json', 'content-length': payload.length }
            : {}),
        },
        timeout: o.timeoutMs,
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          if (settled) return;
          size += c.length;
          if (size <= max) chunks.push(c);
          else {
            fail(o.protocol(`${o.peer} sent an answer larger than ${max} bytes`));
            req.destroy();
          }
        });
        res.on('end', () => {
          if (settled) return;
          const status = res.statusCode ?? 500;
          let v: unknown;
          try {
            v = JSON.parse(Buffer.concat(chunks).toString('utf8'));
          } catch (cause) {
            fail(o.protocol(`${o.peer} sent non-JSON (HTTP ${status})`, cause));
            return;
          }
          settled = true;
          resolve({ status, body: v });
        });
        res.on('error', (e) =>
          fail(o.unavailable(`${o.peer}'s answer broke off: ${e.message}`, e)),
        );
      },
    );
    req.on('timeout', () => {
      fail(o.unavailable(`${o.peer} did not answer in time`));
      req.destroy();
    });
    req.on('error', (e) =>
      fail(o.isOwn(e) ? e : o.unavailable(`cannot reach ${o.peer}: ${e.message}`, e)),
    );
    if (payload) req.end(payload);
    else req.end();
  });
}
