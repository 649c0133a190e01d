// The loopback daemons' JSON plumbing, over a real loopback server.
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readJsonBody, sendJson } from '../src/index.js';

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
