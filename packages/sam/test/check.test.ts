import { describe, expect, it } from 'vitest';
import {
  CLOCK_SKEW_MS,
  checkCapsule,
  type Capsule,
  type ExecRequest,
  type SamVerdict,
} from '../src/index.js';
import { bot, makeCapsule, mallory } from './fixtures/helpers.js';

const NOW = new Date('2026-11-28T12:01:00.000Z');
const OK_REQ: ExecRequest = {
  actor_id: bot.id,
  action: '/upload/npm',
  constraints: { registry: 'registry.npmjs.org' },
};

const PROXY = makeCapsule({
  target_action: '/proxy/http',
  policy_lane: 'proxy-egress',
  upstream_url: 'https://api.example.com/v1/charge',
  upstream_method: 'POST',
  constraints: [{ key: 'host', value: 'api.example.com' }],
});
const PROXY_REQ: ExecRequest = {
  actor_id: bot.id,
  action: '/proxy/http',
  constraints: { host: 'api.example.com' },
};

function denied(c: Capsule, r: ExecRequest, now = NOW): { verdict: SamVerdict; last: string } {
  const res = checkCapsule(c, r, now);
  if (res.ok) throw new Error('expected a denial');
  const last = res.events[res.events.length - 1]!;
  expect(last.status).toBe('fail');
  expect(res.events.slice(0, -1).every((e) => e.status === 'pass')).toBe(true);
  return { verdict: res.verdict, last: last.action };
}

describe('checkCapsule', () => {
  it('passes in the family order with one event per check', () => {
    const r = checkCapsule(makeCapsule(), OK_REQ, NOW);
    expect(r.ok).toBe(true);
    expect(r.events.map((e) => [e.action, e.status])).toEqual([
      ['sam-received', 'pass'],
      ['sam-validated', 'pass'],
      ['sam-actor-match', 'pass'],
      ['sam-constraint-match', 'pass'],
      ['sam-constraint-match', 'pass'],
      ['sam-policy-lane', 'pass'],
    ]);
    // extra request constraints are fine
    expect(
      checkCapsule(
        makeCapsule(),
        { ...OK_REQ, constraints: { registry: 'registry.npmjs.org', x: 'y' } },
        NOW,
      ).ok,
    ).toBe(true);
    expect(checkCapsule(PROXY, PROXY_REQ, NOW).ok).toBe(true);
    expect(
      checkCapsule(
        PROXY,
        { ...PROXY_REQ, upstream_url: PROXY.upstream_url!, upstream_method: 'POST' },
        NOW,
      ).ok,
    ).toBe(true);
  });

  it('sam-expired at and after valid_until', () => {
    const c = makeCapsule();
    expect(denied(c, OK_REQ, new Date(c.valid_until))).toEqual({
      verdict: 'sam-expired',
      last: 'sam-validated',
    });
    expect(denied(c, OK_REQ, new Date('2027-01-01T00:00:00Z')).verdict).toBe('sam-expired');
    expect(checkCapsule(c, OK_REQ, new Date(Date.parse(c.valid_until) - 1)).ok).toBe(true);
  });

  it('sam-not-yet-valid only beyond the clock skew', () => {
    const c = makeCapsule();
    const early = Date.parse(c.issued_at) - CLOCK_SKEW_MS;
    expect(checkCapsule(c, OK_REQ, new Date(early)).ok).toBe(true);
    expect(denied(c, OK_REQ, new Date(early - 1))).toEqual({
      verdict: 'sam-not-yet-valid',
      last: 'sam-validated',
    });
  });

  it('sam-actor-mismatch', () => {
    expect(denied(makeCapsule(), { ...OK_REQ, actor_id: mallory.id })).toEqual({
      verdict: 'sam-actor-mismatch',
      last: 'sam-actor-match',
    });
  });

  it('sam-target-mismatch', () => {
    expect(denied(makeCapsule(), { ...OK_REQ, action: '/upload/pypi' })).toEqual({
      verdict: 'sam-target-mismatch',
      last: 'sam-constraint-match',
    });
  });

  it('sam-constraint-mismatch: missing, unequal, not a string, inherited', () => {
    const c = makeCapsule();
    for (const constraints of [
      {},
      { registry: 'evil.example' },
      { registry: 'REGISTRY.NPMJS.ORG' },
      { registry: 1 as unknown as string },
      Object.create({ registry: 'registry.npmjs.org' }) as Record<string, string>,
    ])
      expect(denied(c, { ...OK_REQ, constraints })).toEqual({
        verdict: 'sam-constraint-mismatch',
        last: 'sam-constraint-match',
      });
    expect(
      denied(c, { ...OK_REQ, constraints: null as unknown as Record<string, string> }).verdict,
    ).toBe('sam-constraint-mismatch');
  });

  it('sam-policy-lane-invalid: publish without a registry constraint', () => {
    const c = makeCapsule({ constraints: [{ key: 'package', value: 'acme-lib' }] });
    expect(denied(c, { ...OK_REQ, constraints: { package: 'acme-lib' } })).toEqual({
      verdict: 'sam-policy-lane-invalid',
      last: 'sam-policy-lane',
    });
  });

  it('proxy-egress: target, upstream_url, host constraint', () => {
    expect(
      denied({ ...PROXY, target_action: '/exec' }, { ...PROXY_REQ, action: '/exec' }).verdict,
    ).toBe('sam-policy-lane-invalid');
    expect(denied({ ...PROXY, upstream_url: null }, PROXY_REQ)).toEqual({
      verdict: 'sam-upstream-missing',
      last: 'sam-policy-lane',
    });
    const other = { ...PROXY, constraints: [{ key: 'host', value: 'evil.example.com' }] };
    expect(denied(other, { ...PROXY_REQ, constraints: { host: 'evil.example.com' } })).toEqual({
      verdict: 'sam-policy-lane-invalid',
      last: 'sam-policy-lane',
    });
    expect(denied({ ...PROXY, constraints: [] }, PROXY_REQ).verdict).toBe(
      'sam-policy-lane-invalid',
    );
    // the host compares case-insensitively (URL hosts are lower-cased)
    const upper = { ...PROXY, constraints: [{ key: 'host', value: 'API.example.com' }] };
    expect(
      checkCapsule(upper, { ...PROXY_REQ, constraints: { host: 'API.example.com' } }, NOW).ok,
    ).toBe(true);
  });

  it('proxy-egress: the host constraint is URL.host — it pins a non-default port', () => {
    const at = (url: string, host: string): Capsule => ({
      ...PROXY,
      upstream_url: url,
      constraints: [{ key: 'host', value: host }],
    });
    const req = (host: string): ExecRequest => ({ ...PROXY_REQ, constraints: { host } });
    expect(
      checkCapsule(at('http://127.0.0.1:4873/pkg', '127.0.0.1:4873'), req('127.0.0.1:4873'), NOW)
        .ok,
    ).toBe(true);
    // the host name alone does not match a URL with a port, nor another port
    expect(denied(at('http://127.0.0.1:4873/pkg', '127.0.0.1'), req('127.0.0.1')).verdict).toBe(
      'sam-policy-lane-invalid',
    );
    expect(
      denied(at('http://127.0.0.1:4873/pkg', '127.0.0.1:4874'), req('127.0.0.1:4874')).verdict,
    ).toBe('sam-policy-lane-invalid');
    // the scheme's default port is not part of URL.host
    expect(
      checkCapsule(
        at('https://api.example.com:443/x', 'api.example.com'),
        req('api.example.com'),
        NOW,
      ).ok,
    ).toBe(true);
    expect(checkCapsule(at('http://[::1]:8080/x', '[::1]:8080'), req('[::1]:8080'), NOW).ok).toBe(
      true,
    );
  });

  it('a stated intent must be the capsule’s (sam-constraint-mismatch)', () => {
    expect(denied(PROXY, { ...PROXY_REQ, intent: 'something else' })).toEqual({
      verdict: 'sam-constraint-mismatch',
      last: 'sam-constraint-match',
    });
    expect(checkCapsule(PROXY, { ...PROXY_REQ, intent: PROXY.intent }, NOW).ok).toBe(true);
  });

  it('sam-upstream-invalid: the request names another upstream or method', () => {
    expect(
      denied(PROXY, { ...PROXY_REQ, upstream_url: 'https://api.example.com/v1/refund' }),
    ).toEqual({ verdict: 'sam-upstream-invalid', last: 'sam-policy-lane' });
    expect(denied(PROXY, { ...PROXY_REQ, upstream_method: 'DELETE' }).verdict).toBe(
      'sam-upstream-invalid',
    );
    expect(denied(makeCapsule(), { ...OK_REQ, upstream_url: 'https://x.example/' }).verdict).toBe(
      'sam-upstream-invalid',
    );
  });

  it('sam-bundle-invalid: a capsule that breaks the schema is never checked further', () => {
    for (const bad of [
      { ...makeCapsule(), extra: true },
      makeCapsule({ sam_id: 'sam_XYZ' }),
      makeCapsule({ valid_until: '2026-11-28T11:00:00.000Z' }),
      makeCapsule({ valid_until: '2026-11-30T12:00:00.000Z' }),
      null,
    ])
      expect(denied(bad as Capsule, OK_REQ)).toEqual({
        verdict: 'sam-bundle-invalid',
        last: 'sam-validated',
      });
  });

  it('other lanes have no built-in rules', () => {
    const c = makeCapsule({ policy_lane: 'ci-deploy', constraints: [] });
    const r = checkCapsule(c, { ...OK_REQ, constraints: {} }, NOW);
    expect(r.ok).toBe(true);
    expect(r.events[r.events.length - 1]!.detail).toMatch(/no built-in rules/);
    expect(checkCapsule(makeCapsule({ policy_lane: null }), OK_REQ, NOW).ok).toBe(true);
  });

  it('bad arguments are TypeErrors', () => {
    expect(() => checkCapsule(makeCapsule(), null as unknown as ExecRequest, NOW)).toThrow(
      TypeError,
    );
    expect(() => checkCapsule(makeCapsule(), OK_REQ, new Date('x'))).toThrow(TypeError);
  });
});
