/**
 * The JSON-over-HTTP plumbing of the family's loopback daemons (this package's audit daemon
 * and @tibet/gateway's): bounded request bodies and JSON answers. Each daemon maps failures
 * to its own error class through `fail`.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

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
