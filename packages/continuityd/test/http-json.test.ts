// The loopback daemons' JSON plumbing, over a real loopback server.
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  readJsonBody,
  requestJson,
  sendJson,
  type JsonCallOptions,
  type LoopbackAddress,
} from '../src/index.js';

let server: Server;
let port = 0;

beforeAll(async () => {
  server = createServer((req, res) => {
    readJsonBody(req, 64, (m) => new Error(`refused: ${m}`)).then(
      (v) => sendJson(res, 200, { got: v === undefined ? 'nothing' : v }),
      (e: Error) => sendJson(res, 400, { error: e.message }, { 'x-test': '1' }),
    );
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

function post(
  body: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: unknown; headers: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method: 'POST', path: '/', headers }, (res) => {
      let t = '';
      res.on('data', (c: Buffer) => (t += c.toString()));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, body: JSON.parse(t), headers: res.headers }),
      );
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('readJsonBody / sendJson', () => {
  it('parses a JSON body and answers JSON, never cached', async () => {
    const r = await post('{"a":[1,2]}');
    expect(r).toMatchObject({ status: 200, body: { got: { a: [1, 2] } } });
    expect(r.headers['content-type']).toBe('application/json');
    expect(r.headers['cache-control']).toBe('no-store');
  });

  it('an empty body is undefined; a body that is not JSON is refused', async () => {
    expect((await post('')).body).toEqual({ got: 'nothing' });
    const bad = await post('{nope');
    expect(bad).toMatchObject({
      status: 400,
      body: { error: 'refused: request body is not JSON' },
    });
    expect(bad.headers['x-test']).toBe('1');
  });

  it('refuses a body over the limit, declared or streamed', async () => {
    const big = JSON.stringify({ x: 'y'.repeat(100) });
    expect((await post(big)).body).toEqual({ error: 'refused: request body larger than 64 bytes' });
    const chunked = await post(big, { 'transfer-encoding': 'chunked' });
    expect(chunked.body).toEqual({ error: 'refused: request body larger than 64 bytes' });
  });
});

// The client side: a second real server whose answers the tests choose by path.
class Own extends Error {
  constructor(
    readonly kind: 'unavailable' | 'protocol',
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

describe('requestJson', () => {
  let peer: Server;
  let peerPort = 0;
  const opts = (timeoutMs = 5_000, maxAnswerBytes?: number): JsonCallOptions => ({
    peer: 'the test daemon',
    timeoutMs,
    headers: { 'x-who': 'client' },
    ...(maxAnswerBytes === undefined ? {} : { maxAnswerBytes }),
    unavailable: (m, cause) => new Own('unavailable', m, { cause }),
    protocol: (m, cause) => new Own('protocol', m, { cause }),
    isOwn: (e) => e instanceof Own,
  });

  beforeAll(async () => {
    peer = createServer((req, res) => {
      if (req.url === '/echo')
        void readJsonBody(req, 1024, (m) => new Error(m)).then((v) =>
          sendJson(res, 200, { got: v ?? null, who: req.headers['x-who'] ?? null }),
        );
      else if (req.url === '/refuse') sendJson(res, 409, { error: { code: 'X', message: 'no' } });
      else if (req.url === '/text') res.end('<html>not json</html>');
      else if (req.url === '/big') sendJson(res, 200, { x: 'y'.repeat(4096) });
      else if (req.url === '/slow') setTimeout(() => sendJson(res, 200, {}), 2_000);
      else res.end('{}');
    });
    await new Promise<void>((r) => peer.listen(0, '127.0.0.1', r));
    peerPort = (peer.address() as AddressInfo).port;
  });
  afterAll(() => new Promise<void>((r) => peer.close(() => r())));
  const at = (): LoopbackAddress => ({ host: '127.0.0.1', port: peerPort });

  it('sends JSON with the caller headers and returns status and body, whatever the status', async () => {
    expect(await requestJson(at(), 'POST', '/echo', { a: 1 }, opts())).toEqual({
      status: 200,
      body: { got: { a: 1 }, who: 'client' },
    });
    expect(await requestJson(at(), 'GET', '/refuse', undefined, opts())).toEqual({
      status: 409,
      body: { error: { code: 'X', message: 'no' } },
    });
  });

  it('turns a non-JSON answer, an oversized answer, a timeout and no listener into own errors', async () => {
    const fails = async (p: Promise<unknown>): Promise<Own> => {
      const e = await p.then(
        () => undefined,
        (x: unknown) => x,
      );
      expect(e).toBeInstanceOf(Own);
      return e as Own;
    };
    const text = await fails(requestJson(at(), 'GET', '/text', undefined, opts()));
    expect([text.kind, text.message]).toEqual([
      'protocol',
      'the test daemon sent non-JSON (HTTP 200)',
    ]);
    const big = await fails(requestJson(at(), 'GET', '/big', undefined, opts(5_000, 1024)));
    expect([big.kind, big.message]).toEqual([
      'protocol',
      'the test daemon sent an answer larger than 1024 bytes',
    ]);
    const slow = await fails(requestJson(at(), 'GET', '/slow', undefined, opts(200)));
    expect([slow.kind, slow.message]).toEqual([
      'unavailable',
      'the test daemon did not answer in time',
    ]);
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const gone = (closed.address() as AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    const none = await fails(
      requestJson({ host: '127.0.0.1', port: gone }, 'GET', '/', undefined, opts()),
    );
    expect(none.kind).toBe('unavailable');
    expect(none.message).toMatch(/^cannot reach the test daemon: .*ECONNREFUSED/);
  });
});
