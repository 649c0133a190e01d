import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { HttpEgressAdapter } from '../src/adapters/http.js';
import { GatewayAdapterError, type AdapterResult } from '../src/adapters/types.js';
import { expectNoSecret, makeCapsule, makeInput } from './support/adapter-fixtures.js';
import { startRegistry, type StandInRegistry } from './support/registry.js';

const TOKEN = 'npm_Tk9kZW4tZm9yLXRlc3RzLW9ubHk_5f3c9a1b2d4e6f708192a3b4';
const BASIC = 'ci-bot:s3cr3t-Passw0rd!with/slash';
const PASSWORD = 's3cr3t-Passw0rd!with/slash';

async function refusal(p: Promise<AdapterResult>): Promise<GatewayAdapterError> {
  try {
    await p;
  } catch (e) {
    if (GatewayAdapterError.is(e)) return e;
    throw e;
  }
  throw new Error('expected the adapter to refuse');
}

function json(r: AdapterResult): Record<string, unknown> {
  return r.response as Record<string, unknown>;
}

const publish = { 'content-type': 'application/json' };

describe('http-egress adapter: credential injection', () => {
  let reg: StandInRegistry;
  afterEach(async () => reg.close());

  it('publishes with a bearer token; the registry gets it, the agent never sees it', async () => {
    reg = await startRegistry({ token: TOKEN });
    const c = makeCapsule('/upload/npm', {
      upstream_url: `${reg.origin}/@acme%2fwidget`,
      upstream_method: 'PUT',
      constraints: { host: reg.host, method: 'PUT', path: '/@acme%2fwidget', registry: 'npm' },
    });
    const doc = { name: '@acme/widget', versions: { '1.0.0': { name: '@acme/widget' } } };
    const r = await new HttpEgressAdapter().execute(
      makeInput(c, TOKEN, 'api_key', { request: { payload: { headers: publish, body: doc } } }),
    );
    expect(reg.requests).toHaveLength(1);
    const got = reg.requests[0]!;
    expect(got.authorized).toBe(true);
    expect(got.method).toBe('PUT');
    expect(JSON.parse(Buffer.from(got.body).toString())).toEqual(doc);
    expect(reg.packages.has('@acme/widget')).toBe(true);

    const res = json(r);
    expect(res['status']).toBe(201);
    const headers = res['headers'] as Record<string, string>;
    expect(headers['x-echo-authorization']).toBe('Bearer [REDACTED]');
    expect(headers['set-cookie']).toBeUndefined();
    const body = JSON.parse(res['body'] as string) as Record<string, unknown>;
    expect(body['auth_echo']).toBe('Bearer [REDACTED]');
    expect(r.executed_action).toBe(`PUT ${reg.origin}/@acme%2fwidget`);
    expect(r.summary).toContain('HTTP 201');
    expectNoSecret(r, TOKEN);
  });

  it.each(['oauth_token', 'github_pat', 'pypi_token', 'crates_token'] as const)(
    'sends a %s as a bearer token',
    async (type) => {
      reg = await startRegistry({ token: TOKEN });
      const c = makeCapsule('/proxy/http', {
        upstream_url: `${reg.origin}/-/whoami`,
        constraints: { host: reg.host },
      });
      const r = await new HttpEgressAdapter().execute(makeInput(c, TOKEN, type));
      expect(json(r)['status']).toBe(200);
      expect(reg.requests[0]!.authorized).toBe(true);
    },
  );

  it('sends a service_account_credential as basic auth and scrubs it and its password', async () => {
    reg = await startRegistry({ token: BASIC, auth: 'basic' });
    const c = makeCapsule('/upload/npm', {
      upstream_url: `${reg.origin}/widget`,
      upstream_method: 'PUT',
      constraints: { host: reg.host },
    });
    const r = await new HttpEgressAdapter().execute(
      makeInput(c, BASIC, 'service_account_credential', {
        request: { payload: { body: { name: 'widget' } } },
      }),
    );
    expect(reg.requests[0]!.authorized).toBe(true);
    expect(json(r)['status']).toBe(201);
    expect((json(r)['headers'] as Record<string, string>)['x-echo-authorization']).toBe(
      'Basic [REDACTED]',
    );
    expectNoSecret(r, BASIC, PASSWORD, Buffer.from(BASIC).toString('base64'));
  });

  it('puts the secret in the header named by an auth_header constraint, not Authorization', async () => {
    reg = await startRegistry({ token: TOKEN, auth: { header: 'X-Api-Key' } });
    const c = makeCapsule('/proxy/http', {
      upstream_url: `${reg.origin}/-/whoami`,
      constraints: { host: reg.host, auth_header: 'X-Api-Key' },
    });
    const r = await new HttpEgressAdapter().execute(makeInput(c, TOKEN, 'api_key'));
    expect(json(r)['status']).toBe(200);
    expect(reg.requests[0]!.authorized).toBe(true);
    expect(reg.requests[0]!.headers['authorization']).toBeUndefined();
    expectNoSecret(r, TOKEN);
  });

  it("drops the agent's Authorization, Cookie and Proxy-* headers and keeps the others", async () => {
    reg = await startRegistry({ token: TOKEN });
    const c = makeCapsule('/proxy/http', {
      upstream_url: `${reg.origin}/-/whoami`,
      constraints: { host: reg.host },
    });
    const headers = {
      Authorization: 'Bearer agent-chosen',
      Cookie: 'sid=agent',
      'Proxy-Authorization': 'Basic YWdlbnQ6eA==',
      'X-Trace': 'abc',
      Host: 'evil.example',
    };
    await new HttpEgressAdapter().execute(
      makeInput(c, TOKEN, 'api_key', { request: { payload: { headers } } }),
    );
    const h = reg.requests[0]!.headers;
    expect(h['authorization']).toBe(`Bearer ${TOKEN}`);
    expect(h['cookie']).toBeUndefined();
    expect(h['proxy-authorization']).toBeUndefined();
    expect(h['x-trace']).toBe('abc');
    expect(h['host']).toBe(reg.host);
    expect(h['accept-encoding']).toBe('identity');
  });

  it('scrubs every encoding of the token from headers and body', async () => {
    reg = await startRegistry({ token: TOKEN });
    const c = makeCapsule('/proxy/http', {
      upstream_url: `${reg.origin}/-/echo-forms`,
      constraints: { host: reg.host },
    });
    const r = await new HttpEgressAdapter().execute(makeInput(c, TOKEN, 'api_key'));
    const body = JSON.parse(json(r)['body'] as string) as Record<string, string>;
    for (const k of ['raw', 'base64', 'base64url', 'hex', 'hex_upper', 'url']) {
      expect(body[k]).toBe('[REDACTED]');
    }
    expect(body['in_basic']).toContain('[REDACTED]');
    const headers = json(r)['headers'] as Record<string, string>;
    expect(headers['x-echo-raw']).toBe('[REDACTED]');
    expect(headers['x-echo-base64']).toBe('[REDACTED]');
    expect(headers['x-echo-hex']).toBe('[REDACTED]');
    expectNoSecret(r, TOKEN);
  });

  it('decodes a gzip response before scrubbing it', async () => {
    reg = await startRegistry({ token: TOKEN });
    const c = makeCapsule('/proxy/http', {
      upstream_url: `${reg.origin}/-/echo-gzip`,
      constraints: { host: reg.host },
    });
    const r = await new HttpEgressAdapter().execute(makeInput(c, TOKEN, 'api_key'));
    expect(JSON.parse(json(r)['body'] as string)).toEqual({
      auth_echo: 'Bearer [REDACTED]',
      note: 'gzip',
    });
    expectNoSecret(r, TOKEN);
  });

  it('cuts a large body after masking, so a cut never leaves part of the token', async () => {
    reg = await startRegistry({ token: TOKEN });
    const c = makeCapsule('/proxy/http', {
      upstream_url: `${reg.origin}/-/big?n=100`,
      constraints: { host: reg.host },
    });
    const r = await new HttpEgressAdapter({ maxResponseBytes: 105 }).execute(
      makeInput(c, TOKEN, 'api_key'),
    );
    expect(json(r)['body']).toBe(`${'a'.repeat(100)}[REDA`);
    expect(json(r)['body_truncated']).toBe(true);
    expectNoSecret(r, TOKEN.slice(0, 12));
  });

  it('returns a non-UTF-8 body as base64', async () => {
    const bytes = Uint8Array.of(0xff, 0xfe, 0x00, 0x80);
    const server = createServer((_q, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      res.end(bytes);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const c = makeCapsule('/proxy/http', {
        upstream_url: `http://${host}/bin`,
        constraints: { host },
      });
      const r = await new HttpEgressAdapter().execute(makeInput(c, TOKEN, 'api_key'));
      expect(json(r)['body_encoding']).toBe('base64');
      expect(json(r)['body']).toBe(Buffer.from(bytes).toString('base64'));
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });
});

describe('http-egress adapter: refusals before any connection', () => {
  let reg: StandInRegistry;
  beforeEach(async () => {
    reg = await startRegistry({ token: TOKEN });
  });
  afterEach(async () => {
    expect(reg.requests).toHaveLength(0);
    await reg.close();
  });

  const cases: [string, () => ReturnType<typeof makeInput>, string][] = [
    [
      'a request URL on another host than the host constraint',
      () => {
        const c = makeCapsule('/proxy/http', { constraints: { host: '127.0.0.1:1' } });
        return makeInput(c, TOKEN, 'api_key', { request: { upstream_url: `${reg.origin}/x` } });
      },
      'sam-constraint-mismatch',
    ],
    [
      'a method the capsule does not allow',
      () => {
        const c = makeCapsule('/proxy/http', {
          upstream_url: `${reg.origin}/widget`,
          constraints: { host: reg.host, method: 'GET,HEAD' },
        });
        return makeInput(c, TOKEN, 'api_key', { request: { upstream_method: 'PUT' } });
      },
      'sam-constraint-mismatch',
    ],
    [
      'a path outside the prefix',
      () => {
        const c = makeCapsule('/proxy/http', { constraints: { host: reg.host, path: '/pkg/*' } });
        return makeInput(c, TOKEN, 'api_key', {
          request: { upstream_url: `${reg.origin}/pkg/../admin` },
        });
      },
      'sam-constraint-mismatch',
    ],
    [
      'an encoded slash in the wildcard part of the path',
      () => {
        const c = makeCapsule('/proxy/http', { constraints: { host: reg.host, path: '/pkg/*' } });
        return makeInput(c, TOKEN, 'api_key', {
          request: { upstream_url: `${reg.origin}/pkg/..%2F..%2Fadmin` },
        });
      },
      'sam-constraint-mismatch',
    ],
    [
      'a request URL that differs from the URL the capsule fixes',
      () => {
        const c = makeCapsule('/proxy/http', {
          upstream_url: `${reg.origin}/a`,
          constraints: { host: reg.host },
        });
        return makeInput(c, TOKEN, 'api_key', { request: { upstream_url: `${reg.origin}/b` } });
      },
      'sam-upstream-invalid',
    ],
    [
      'a request method that differs from the method the capsule fixes',
      () => {
        const c = makeCapsule('/proxy/http', {
          upstream_url: `${reg.origin}/a`,
          upstream_method: 'GET',
        });
        return makeInput(c, TOKEN, 'api_key', { request: { upstream_method: 'DELETE' } });
      },
      'sam-constraint-mismatch',
    ],
    [
      'no URL anywhere',
      () => makeInput(makeCapsule('/proxy/http'), TOKEN, 'api_key'),
      'sam-upstream-missing',
    ],
    [
      'an agent-chosen URL with no host constraint',
      () =>
        makeInput(makeCapsule('/proxy/http'), TOKEN, 'api_key', {
          request: { upstream_url: `${reg.origin}/x` },
        }),
      'sam-upstream-invalid',
    ],
    [
      'plain http to a host that is not loopback',
      () => {
        const c = makeCapsule('/proxy/http', {
          upstream_url: 'http://registry.example.com/x',
          constraints: { host: 'registry.example.com' },
        });
        return makeInput(c, TOKEN, 'api_key');
      },
      'sam-upstream-invalid',
    ],
    [
      'user info in the URL',
      () => {
        const c = makeCapsule('/proxy/http', {
          upstream_url: `http://u:p@${reg.host}/x`,
          constraints: { host: reg.host },
        });
        return makeInput(c, TOKEN, 'api_key');
      },
      'sam-upstream-invalid',
    ],
    [
      'a signing key as an HTTP credential',
      () => {
        const c = makeCapsule('/proxy/http', { upstream_url: `${reg.origin}/x` });
        return makeInput(c, new Uint8Array(32).fill(7), 'signing_key');
      },
      'sam-secret-unavailable',
    ],
    [
      'a token with a line break (header injection)',
      () => {
        const c = makeCapsule('/proxy/http', { upstream_url: `${reg.origin}/x` });
        return makeInput(c, `${TOKEN}\r\nX-Evil: 1`, 'api_key');
      },
      'sam-secret-unavailable',
    ],
    [
      'a payload that is not the {headers, body} envelope',
      () => {
        const c = makeCapsule('/proxy/http', { upstream_url: `${reg.origin}/x` });
        return makeInput(c, TOKEN, 'api_key', { request: { payload: { name: 'widget' } } });
      },
      'sam-upstream-invalid',
    ],
    [
      'a request payload that differs from the payload the capsule fixes',
      () => {
        const c = makeCapsule('/proxy/http', {
          upstream_url: `${reg.origin}/x`,
          upstream_payload: { body: 'fixed' },
        });
        return makeInput(c, TOKEN, 'api_key', { request: { payload: { body: 'changed' } } });
      },
      'sam-constraint-mismatch',
    ],
  ];

  it.each(cases)('refuses %s', async (_what, build, verdict) => {
    const e = await refusal(new HttpEgressAdapter().execute(build()));
    expect(e.code).toBe('ADAPTER_REFUSED');
    expect(e.verdict).toBe(verdict);
    expectNoSecret(e.message, TOKEN);
  });

  it('refuses when the session signal has already fired', async () => {
    const ac = new AbortController();
    ac.abort();
    const c = makeCapsule('/proxy/http', { upstream_url: `${reg.origin}/x` });
    const e = await refusal(
      new HttpEgressAdapter().execute(makeInput(c, TOKEN, 'api_key', { signal: ac.signal })),
    );
    expect(e.code).toBe('ADAPTER_ABORTED');
  });
});

describe('http-egress adapter: redirects', () => {
  let a: StandInRegistry;
  let b: StandInRegistry;
  beforeEach(async () => {
    a = await startRegistry({ token: TOKEN });
    b = await startRegistry({ token: TOKEN, hostname: '127.0.0.2' });
  });
  afterEach(async () => {
    await a.close();
    await b.close();
  });

  it('refuses a redirect to another host; the credential never reaches it', async () => {
    a.redirect('/widget', `${b.origin}/widget`, 307);
    const c = makeCapsule('/upload/npm', {
      upstream_url: `${a.origin}/widget`,
      upstream_method: 'PUT',
      constraints: { host: a.host },
    });
    const e = await refusal(
      new HttpEgressAdapter().execute(
        makeInput(c, TOKEN, 'api_key', { request: { payload: { body: { name: 'w' } } } }),
      ),
    );
    expect(e.verdict).toBe('sam-gateway-proxy-failed');
    expect(e.message).toContain('another origin');
    expect(a.requests).toHaveLength(1);
    expect(b.requests).toHaveLength(0);
    expect(b.everythingReceived()).not.toContain(TOKEN);
  });

  it('refuses a redirect to another port on the same hostname', async () => {
    const other = await startRegistry({ token: TOKEN });
    try {
      a.redirect('/x', `${other.origin}/x`, 302);
      const c = makeCapsule('/proxy/http', { upstream_url: `${a.origin}/x` });
      const e = await refusal(new HttpEgressAdapter().execute(makeInput(c, TOKEN, 'api_key')));
      expect(e.verdict).toBe('sam-gateway-proxy-failed');
      expect(other.requests).toHaveLength(0);
    } finally {
      await other.close();
    }
  });

  it('follows a same-origin redirect within the path constraint, keeping PUT on 307', async () => {
    a.redirect('/old/widget', '/pkg/widget', 307);
    const c = makeCapsule('/upload/npm', {
      upstream_url: `${a.origin}/old/widget`,
      upstream_method: 'PUT',
      constraints: { host: a.host, path: '/*' },
    });
    const r = await new HttpEgressAdapter().execute(
      makeInput(c, TOKEN, 'api_key', { request: { payload: { body: { name: 'w' } } } }),
    );
    expect(json(r)['status']).toBe(201);
    expect(json(r)['redirects']).toBe(1);
    expect(a.requests.map((q) => `${q.method} ${q.url}`)).toEqual([
      'PUT /old/widget',
      'PUT /pkg/widget',
    ]);
    expect(a.packages.has('pkg/widget')).toBe(true);
    expect(r.executed_action).toBe(`PUT ${a.origin}/pkg/widget`);
  });

  it('refuses a same-origin redirect that leaves the path constraint', async () => {
    a.redirect('/pkg/widget', '/admin', 302);
    const c = makeCapsule('/proxy/http', {
      upstream_url: `${a.origin}/pkg/widget`,
      constraints: { host: a.host, path: '/pkg/*' },
    });
    const e = await refusal(new HttpEgressAdapter().execute(makeInput(c, TOKEN, 'api_key')));
    expect(e.verdict).toBe('sam-constraint-mismatch');
    expect(a.requests).toHaveLength(1);
  });

  it('with maxRedirects 0 returns the redirect itself', async () => {
    a.redirect('/x', `${b.origin}/x?t=${TOKEN}`, 302);
    const c = makeCapsule('/proxy/http', { upstream_url: `${a.origin}/x` });
    const r = await new HttpEgressAdapter({ maxRedirects: 0 }).execute(
      makeInput(c, TOKEN, 'api_key'),
    );
    expect(json(r)['status']).toBe(302);
    expect((json(r)['headers'] as Record<string, string>)['location']).toBe(
      `${b.origin}/x?t=[REDACTED]`,
    );
    expect(b.requests).toHaveLength(0);
  });
});

describe('http-egress adapter: failures', () => {
  it('aborts a hanging request when the session signal fires', async () => {
    const reg = await startRegistry({ token: TOKEN });
    try {
      const ac = new AbortController();
      const c = makeCapsule('/proxy/http', { upstream_url: `${reg.origin}/-/hang` });
      const p = new HttpEgressAdapter().execute(
        makeInput(c, TOKEN, 'api_key', { signal: ac.signal }),
      );
      await vi.waitFor(() => expect(reg.requests).toHaveLength(1));
      ac.abort();
      const e = await refusal(p);
      expect(e.code).toBe('ADAPTER_ABORTED');
      expect(e.verdict).toBe('sam-gateway-proxy-failed');
    } finally {
      await reg.close();
    }
  });

  it('gives up after its own time limit', async () => {
    const reg = await startRegistry({ token: TOKEN });
    try {
      const c = makeCapsule('/proxy/http', { upstream_url: `${reg.origin}/-/hang` });
      const e = await refusal(
        new HttpEgressAdapter({ timeoutMs: 200 }).execute(makeInput(c, TOKEN, 'api_key')),
      );
      expect(e.code).toBe('ADAPTER_ABORTED');
    } finally {
      await reg.close();
    }
  });

  it('reports a refused connection without the token', async () => {
    const reg = await startRegistry({ token: TOKEN });
    const origin = reg.origin;
    await reg.close();
    const c = makeCapsule('/proxy/http', { upstream_url: `${origin}/x?key=${TOKEN}` });
    const e = await refusal(new HttpEgressAdapter().execute(makeInput(c, TOKEN, 'api_key')));
    expect(e.code).toBe('ADAPTER_FAILED');
    expect(e.message).toContain('ECONNREFUSED');
    expectNoSecret(e.message, TOKEN);
  });

  it('accepts only /proxy/http and /upload/*', () => {
    const h = new HttpEgressAdapter();
    expect(h.accepts(makeCapsule('/proxy/http'))).toBe(true);
    expect(h.accepts(makeCapsule('/upload/pypi'))).toBe(true);
    expect(h.accepts(makeCapsule('/exec'))).toBe(false);
    expect(h.accepts(makeCapsule('/sign'))).toBe(false);
  });
});
