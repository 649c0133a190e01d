/** TIBET tokens: minting, the exact signing input, golden vectors, verification of tokens and lines. */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fc, test } from '@fast-check/vitest';
import {
  CoreError,
  IdentityRegistry,
  TOKEN_TYPE,
  canonicalize,
  fixedClock,
  fromBase64Url,
  isActionId,
  isSignatureText,
  manualClock,
  mintToken,
  newActionId,
  nextGeneration,
  parseCanonicalJson,
  parseToken,
  seededRandom,
  signingInputOfCanonical,
  toBase64Url,
  toHex,
  tokenHash,
  tokenSigningInput,
  utf8,
  verifyLine,
  verifyToken,
  type CoreErrorCode,
  type Identity,
  type JsonValue,
  type MintTokenInput,
  type TibetToken,
} from '@tibet/core';
import { testIdentity } from '@tibet/core/testing';
import {
  BACKENDS,
  VECTORS_DIR,
  clone,
  expectCode,
  expectCoreError,
  noble,
  node,
  thrown,
} from './helpers.js';
import {
  goldenCases,
  goldenFiles,
  goldenScenario,
  resign,
  type TokenCase,
} from './token-fixtures.js';

const UPDATE = process.env['TIBET_UPDATE_GOLDEN'] === '1';

const alice = testIdentity('jis:acme:alice', 'human');
const bob = testIdentity('jis:acme:bob', 'machine');
const mallory = testIdentity('jis:evil:mallory', 'external');

const base = (over: Partial<MintTokenInput> = {}): MintTokenInput => ({
  actor: alice.id,
  actorClass: 'human',
  event: 'secret-unsealed',
  erachter: 'Rotate the PyPI token after the leak report',
  erin: { secret_id: 'sec_pypi_001' },
  ...over,
});

const opts = (seed = 'mint') => ({
  random: seededRandom(seed),
  clock: fixedClock('2026-03-01T12:00:00.000Z'),
});

/** An independent canonical form for plain JSON (sorted keys, ECMAScript serialization). */
function referenceJcs(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(referenceJcs).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${referenceJcs(o[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v);
}

function registryOf(...ids: Identity[]): IdentityRegistry {
  const r = new IdentityRegistry();
  for (const i of ids) r.add(i.public);
  return r;
}

/** Mint a line of `n` tokens for `who`. */
function lineOf(who: Identity, n: number, seed = 'line'): TibetToken[] {
  const clock = manualClock('2026-03-01T00:00:00.000Z');
  const random = seededRandom(seed);
  const out: TibetToken[] = [];
  for (let i = 0; i < n; i++) {
    out.push(
      mintToken(
        {
          actor: who.id,
          actorClass: who.actorClass,
          event: `step-${i}`,
          erachter: `step ${i}`,
          prev: out.at(-1) ?? null,
        },
        who,
        { clock, random },
      ),
    );
    clock.advance(1000);
  }
  return out;
}

describe('golden token vectors (test/vectors/token-*.json)', () => {
  const files = goldenFiles();
  if (UPDATE) {
    for (const [name, text] of Object.entries(files)) writeFileSync(join(VECTORS_DIR, name), text);
  }

  for (const [name, text] of Object.entries(files)) {
    it(`${name} is byte-identical to a fresh deterministic mint`, () => {
      let stored: Buffer;
      try {
        stored = readFileSync(join(VECTORS_DIR, name));
      } catch {
        throw new Error(`${name} is missing; create it with TIBET_UPDATE_GOLDEN=1 (see TOKENS.md)`);
      }
      expect(toHex(stored)).toBe(toHex(new TextEncoder().encode(text)));
    });
  }

  it('both backends mint the same golden scenario, byte for byte', () => {
    const a = goldenFiles(goldenScenario(noble));
    const b = goldenFiles(goldenScenario(node));
    expect(a).toEqual(b);
    expect(a).toEqual(files);
  });

  it('the stored token verifies, and its signing input is the RFC 8785 form without signature', () => {
    const text = readFileSync(join(VECTORS_DIR, 'token-golden.json'), 'utf8');
    const input = readFileSync(join(VECTORS_DIR, 'token-golden-signing-input.json'));
    const token = parseCanonicalJson(text) as unknown as TibetToken;
    const { signature, ...body } = token;
    expect(toHex(input)).toBe(toHex(new TextEncoder().encode(referenceJcs(body))));
    const ctx = JSON.parse(
      readFileSync(join(VECTORS_DIR, 'token-golden-context.json'), 'utf8'),
    ) as {
      signer: { ed25519_public_key_hex: string; ed25519_seed_hex: string; kid: string };
      prev_token: TibetToken;
      expect: { prev: string; token_hash: string; generation: number };
    };
    for (const p of BACKENDS) {
      const pk = p.ed25519(
        Uint8Array.from(Buffer.from(ctx.signer.ed25519_seed_hex, 'hex')),
      ).publicKey;
      expect(toHex(pk)).toBe(ctx.signer.ed25519_public_key_hex);
      expect(p.ed25519Verify(pk, input, fromBase64Url(signature))).toBe(true);
      expect(toHex(p.sha256(pk).subarray(0, 8))).toBe(ctx.signer.kid);
      expect(verifyToken(token, pk, p)).toBe(token);
      expect(`sha256:${toHex(p.sha256(new TextEncoder().encode(text)))}`).toBe(
        ctx.expect.token_hash,
      );
      expect(
        `sha256:${toHex(p.sha256(new TextEncoder().encode(referenceJcs(ctx.prev_token))))}`,
      ).toBe(token.prev);
    }
    expect(token.kid).toBe(ctx.signer.kid);
    expect(token.prev).toBe(ctx.expect.prev);
    expect(token.generation).toBe(ctx.expect.generation);
  });

  it('token-cases.json: every case gives its stated verdict and code', () => {
    const file = JSON.parse(readFileSync(join(VECTORS_DIR, 'token-cases.json'), 'utf8')) as {
      identities: Record<string, unknown>;
      cases: TokenCase[];
    };
    expect(file.cases).toEqual(JSON.parse(JSON.stringify(goldenCases())));
    const registry = (ids: string[]) => {
      const r = new IdentityRegistry();
      for (const id of ids) r.add(file.identities[id] as Identity['public']);
      return r;
    };
    expect(file.cases.filter((c) => c.expect === 'failure').length).toBeGreaterThanOrEqual(20);
    for (const c of file.cases) {
      for (const p of BACKENDS) {
        const run = () =>
          c.api === 'verifyToken'
            ? verifyToken(
                c.token,
                registry([c.key])
                  .get(c.key)
                  .map((x) => fromBase64Url(x.signing_key))[0]!,
                p,
              )
            : verifyLine(c.tokens, registry(c.registry), {
                provider: p,
                parents: (id) => (id in c.parents ? { generation: c.parents[id]! } : undefined),
              });
        if (c.expect === 'valid') {
          expect(run, `${c.name} on ${p.name}`).not.toThrow();
        } else {
          const e = thrown(run);
          expect(CoreError.is(e), `${c.name}: ${String(e)}`).toBe(true);
          expect((e as CoreError).code, `${c.name} on ${p.name}: ${String(e)}`).toBe(c.code);
        }
      }
    }
  });
});

describe('mintToken', () => {
  it('is deterministic under seededRandom and fixedClock', () => {
    const a = mintToken(base(), alice, opts());
    const b = mintToken(base(), alice, opts());
    expect(canonicalize(a)).toBe(canonicalize(b));
    expect(a.timestamp).toBe('2026-03-01T12:00:00.000Z');
    expect(isActionId(a.action_id)).toBe(true);
    expect(canonicalize(mintToken(base(), alice, opts('other')))).not.toBe(canonicalize(a));
  });

  it('fills defaults: typ, null links, generation 1, empty eraan/eromheen/policy, erin null', () => {
    const t = mintToken(
      { actor: alice.id, actorClass: 'human', event: 'x', erachter: 'why' },
      alice,
      opts(),
    );
    expect(t).toMatchObject({
      typ: TOKEN_TYPE,
      parent_action_id: null,
      prev: null,
      generation: 1,
      erin: null,
      eraan: [],
      eromheen: {},
      policy: [],
      kid: alice.keyId,
    });
    expect(Object.keys(t).sort()).toEqual(
      [
        'action_id',
        'actor',
        'actor_class',
        'eraan',
        'erachter',
        'erin',
        'eromheen',
        'event',
        'generation',
        'kid',
        'parent_action_id',
        'policy',
        'prev',
        'signature',
        'timestamp',
        'typ',
      ].sort(),
    );
    expect(t.signature).toMatch(/^[A-Za-z0-9_-]{86}$/);
  });

  it('signs exactly the UTF-8 of canonicalize(token without signature) — recomputed by hand', () => {
    const t = mintToken(
      base({
        erin: { z: [1, 2.5, -0, 'é€😀'], a: { '\u0000': true }, m: null },
        eraan: ['sec_x', { action_id: 'act_0000000000000000' }],
        eromheen: { '\u20ac': 1, '\r': 2, '1': 3 },
        erachter: 'Pourquoi pas — “quoted” and \n newline',
      }),
      alice,
      opts(),
    );
    const body: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(t)) if (k !== 'signature') body[k] = v;
    const byHand = new TextEncoder().encode(canonicalize(body));
    expect(toHex(tokenSigningInput(t))).toBe(toHex(byHand));
    expect(toHex(byHand)).toBe(toHex(new TextEncoder().encode(referenceJcs(body))));
    const sig = fromBase64Url(t.signature);
    expect(sig.length).toBe(64);
    for (const p of BACKENDS)
      expect(p.ed25519Verify(alice.signingPublicKey, byHand, sig)).toBe(true);
    expect(toHex(alice.sign(byHand))).toBe(toHex(sig));
    // kid and prev, by hand too
    expect(t.kid).toBe(toHex(node.sha256(alice.signingPublicKey).subarray(0, 8)));
    expect(tokenHash(t)).toBe(
      `sha256:${toHex(node.sha256(new TextEncoder().encode(canonicalize(t))))}`,
    );
    expect(tokenHash(t, noble)).toBe(tokenHash(t, node));
  });

  it('refuses an empty or whitespace-only erachter', () => {
    for (const erachter of ['', ' ', '\t\n', '\u00a0', '\u3000', '\ufeff', ' \r\n ']) {
      const e = expectCoreError(
        () => mintToken(base({ erachter }), alice, opts()),
        'INVALID_TOKEN',
      );
      expect(e.message).toContain('erachter');
    }
    expectCoreError(
      () => mintToken(base({ erachter: 'x'.repeat(4097) }), alice, opts()),
      'INVALID_TOKEN',
    );
    expect(() => mintToken(base({ erachter: 'x'.repeat(4096) }), alice, opts())).not.toThrow();
  });

  it('counts as blank exactly what String.prototype.trim removes', () => {
    const blank: string[] = [];
    for (let c = 0; c < 0x10000; c++)
      if (String.fromCharCode(c).trim() === '') blank.push(String.fromCharCode(c));
    expect(blank.length).toBeGreaterThan(20);
    for (const ws of blank)
      expectCoreError(
        () => mintToken(base({ erachter: `${ws}${ws}` }), alice, opts()),
        'INVALID_TOKEN',
      );
    // look-alikes that trim() keeps are intent text
    for (const c of ['\u200b', '\u180e', '\u2060', 'x'])
      expect(() => mintToken(base({ erachter: ` ${c} ` }), alice, opts())).not.toThrow();
  });

  it('collects every field error in one CoreError', () => {
    const e = expectCoreError(
      () =>
        mintToken(
          {
            actor: 'alice',
            actorClass: 'robot' as never,
            event: 'Not An Event',
            erachter: '  ',
            actionId: 'act_XYZ',
            erin: { big: 1n } as never,
            policy: [{ rule: '', decision: 'maybe' as never, extra: 1 } as never],
          },
          alice,
          opts(),
        ),
      'INVALID_TOKEN',
    );
    for (const part of [
      'action_id',
      'actor must be',
      'actor_class',
      'event must',
      'erachter',
      'policy[0].rule',
      'policy[0].decision',
      'policy[0] unknown field "extra"',
      'not canonicalizable',
    ]) {
      expect(e.message).toContain(part);
    }
  });

  it('takes generation 1 + max(prev, parent) and hashes prev', () => {
    const [t1, t2] = lineOf(alice, 2);
    expect(t1!.generation).toBe(1);
    expect(t2!.generation).toBe(2);
    expect(t2!.prev).toBe(tokenHash(t1!));
    const child = mintToken(
      base({ prev: t2!, parent: { action_id: 'act_00000000000000aa', generation: 9 } }),
      alice,
      opts(),
    );
    expect(child.generation).toBe(10);
    expect(child.parent_action_id).toBe('act_00000000000000aa');
    const child2 = mintToken(
      base({ prev: t2!, parent: { action_id: 'act_00000000000000aa', generation: 1 } }),
      alice,
      opts(),
    );
    expect(child2.generation).toBe(3);
  });

  it('accepts prev as { hash, generation } (as a log index reports it) with the same result', () => {
    const [t1] = lineOf(alice, 1);
    const byToken = mintToken(base({ prev: t1! }), alice, opts('p'));
    const byHash = mintToken(
      base({ prev: { hash: tokenHash(t1!), generation: t1!.generation } }),
      alice,
      opts('p'),
    );
    expect(canonicalize(byHash)).toBe(canonicalize(byToken));
    expect(verifyLine([t1, byHash], registryOf(alice))).toHaveLength(2);
    const e = expectCoreError(
      () => mintToken(base({ prev: { hash: 'sha256:xyz', generation: 1 } }), alice, opts()),
      'INVALID_TOKEN',
    );
    expect(e.message).toContain('prev must be');
  });

  it('accepts a bare Ed25519 key as the signer', () => {
    const key = noble.ed25519(seededRandom('bare')(32));
    const t = mintToken(base(), key, { ...opts(), provider: noble });
    expect(verifyToken(t, key.publicKey, node)).toBe(t);
  });

  it('keeps __proto__ members of erin through signing, JSON text and verification', () => {
    const erin = JSON.parse('{"__proto__":{"admin":true},"x":1}') as JsonValue;
    const t = mintToken(base({ erin }), alice, opts());
    const text = canonicalize(t);
    expect(text).toContain('"erin":{"__proto__":{"admin":true},"x":1}');
    const back = parseCanonicalJson(text);
    expect(verifyToken(back, alice.signingPublicKey)).toBe(back);
    expect(({} as Record<string, unknown>)['admin']).toBeUndefined();
  });

  test.prop(
    [
      fc.jsonValue({ stringUnit: 'binary', maxDepth: 3 }) as fc.Arbitrary<JsonValue>,
      fc.jsonValue({ maxDepth: 2 }) as fc.Arbitrary<JsonValue>,
      fc
        .string({ unit: 'binary', minLength: 1, maxLength: 200 })
        .filter((s) => s.trim().length > 0),
      fc.constantFrom(...BACKENDS),
    ],
    { numRuns: 40 },
  )(
    'any JSON content mints, survives JSON text, and verifies on both backends',
    (erin, eromheen, erachter, p) => {
      const who = testIdentity('jis:acme:prop', 'system', { provider: p });
      const t = mintToken(
        base({ actor: who.id, actorClass: 'system', erin, eromheen, erachter }),
        who,
        opts(),
      );
      const text = canonicalize(t);
      const back = parseCanonicalJson(text);
      // Compare canonical text: -0 in the content comes back as 0, which is the same JSON.
      for (const q of BACKENDS)
        expect(canonicalize(verifyToken(back, who.signingPublicKey, q))).toBe(text);
    },
  );

  test.prop(
    [
      fc.jsonValue({ stringUnit: 'binary', maxDepth: 2 }) as fc.Arbitrary<JsonValue>,
      fc.string({ unit: 'binary', minLength: 1, maxLength: 60 }).filter((s) => s.trim().length > 0),
      fc.integer({ min: 1, max: 40 }),
    ],
    { numRuns: 300 },
  )(
    'signingInputOfCanonical, from the text or from its bytes, is the signing input; a text cut short is refused',
    (erin, erachter, chop) => {
      const t = mintToken(base({ erin, erachter }), alice, opts());
      const text = canonicalize(t);
      const want = tokenSigningInput(t);
      expect(signingInputOfCanonical(text, t)).toEqual(want);
      expect(signingInputOfCanonical(text, t, utf8(text))).toEqual(want);
      // not the token's text: refused either way
      const other = text.slice(0, text.length - 1 - chop) + '}';
      expect(signingInputOfCanonical(other, t)).toBeUndefined();
      expect(signingInputOfCanonical(other, t, utf8(other))).toBeUndefined();
    },
  );
});

describe('parseToken and verifyToken', () => {
  const t = mintToken(
    base({
      eraan: ['a'],
      eromheen: { k: 'v' },
      policy: [{ rule: 'r', decision: 'allow', detail: 'd' }],
    }),
    alice,
    opts(),
  );
  const pk = alice.signingPublicKey;

  it('accepts the token and its JSON round trip on both backends', () => {
    for (const p of BACKENDS) {
      expect(verifyToken(t, pk, p)).toBe(t);
      expect(verifyToken(JSON.parse(JSON.stringify(t)), pk, p)).toEqual(t);
    }
    expect(parseToken(clone(t))).toEqual(t);
  });

  it('rejects non-objects', () => {
    for (const v of [null, 1, 'x', [], [t], undefined])
      expectCoreError(() => parseToken(v), 'INVALID_TOKEN');
  });

  it('rejects a missing or an extra member', () => {
    for (const k of Object.keys(t)) {
      const m = clone(t) as unknown as Record<string, unknown>;
      delete m[k];
      expectCoreError(() => verifyToken(m, pk), 'INVALID_TOKEN');
    }
    expectCoreError(() => verifyToken({ ...t, extra: null }, pk), 'INVALID_TOKEN');
    expectCoreError(() => verifyToken({ ...t, erin: undefined }, pk), 'INVALID_TOKEN');
  });

  it('rejects a key whose id does not match kid, and the right key id with a wrong key', () => {
    expectCoreError(() => verifyToken(t, bob.signingPublicKey), 'TOKEN_SIGNATURE_INVALID');
    expectCoreError(
      () => verifyToken({ ...t, kid: bob.keyId }, bob.signingPublicKey),
      'TOKEN_SIGNATURE_INVALID',
    );
  });

  /** Structurally valid single-member changes: each must break the signature. */
  const validMutations: [string, (x: TibetToken) => unknown][] = [
    ['action_id', (x) => ({ ...x, action_id: 'act_0123456789abcdef' })],
    ['parent_action_id', (x) => ({ ...x, parent_action_id: 'act_0123456789abcdef' })],
    ['prev', (x) => ({ ...x, prev: `sha256:${'0'.repeat(64)}` })],
    ['generation', (x) => ({ ...x, parent_action_id: 'act_0123456789abcdef', generation: 2 })],
    ['timestamp', (x) => ({ ...x, timestamp: '2026-03-01T12:00:00.001Z' })],
    [
      'timestamp (same instant, other spelling)',
      (x) => ({ ...x, timestamp: '2026-03-01T12:00:00Z' }),
    ],
    ['actor', (x) => ({ ...x, actor: 'jis:acme:alicf' })],
    ['actor_class', (x) => ({ ...x, actor_class: 'machine' })],
    ['event', (x) => ({ ...x, event: 'secret-sealed' })],
    ['erin', (x) => ({ ...x, erin: { secret_id: 'sec_pypi_002' } })],
    ['erin (number → string)', (x) => ({ ...x, erin: { secret_id: 'sec_pypi_001', n: '1' } })],
    ['eraan', (x) => ({ ...x, eraan: [] })],
    ['eromheen', (x) => ({ ...x, eromheen: { k: 'V' } })],
    ['erachter', (x) => ({ ...x, erachter: `${x.erachter} ` })],
    ['policy decision', (x) => ({ ...x, policy: [{ rule: 'r', decision: 'deny', detail: 'd' }] })],
    ['policy detail dropped', (x) => ({ ...x, policy: [{ rule: 'r', decision: 'allow' }] })],
    [
      'signature',
      (x) => ({
        ...x,
        signature:
          `A${x.signature.slice(1)}` === x.signature
            ? `B${x.signature.slice(1)}`
            : `A${x.signature.slice(1)}`,
      }),
    ],
  ];
  for (const [name, mutate] of validMutations) {
    it(`a changed ${name} fails the signature on both backends`, () => {
      const m = mutate(clone(t));
      for (const p of BACKENDS)
        expectCoreError(() => verifyToken(m, pk, p), 'TOKEN_SIGNATURE_INVALID');
    });
  }

  it('invalid shapes are INVALID_TOKEN before any signature check', () => {
    const bad: Record<string, unknown>[] = [
      { typ: 'tibet-token/0' },
      { action_id: 'act_0123' },
      { action_id: 'ACT_0123456789abcdef' },
      { parent_action_id: 'x' },
      { prev: 'sha256:abc' },
      { prev: `SHA256:${'0'.repeat(64)}` },
      { generation: 1.5 },
      { generation: '1' },
      { generation: 2 }, // without prev or parent
      { timestamp: '2026-03-01 12:00:00Z' },
      { timestamp: '2026-03-01T12:00:00.000+00:00' },
      { timestamp: '2026-02-29T12:00:00Z' }, // 2026 is not a leap year
      { timestamp: '2026-03-01T24:00:00Z' },
      { actor: 'jis:acme' },
      { actor_class: 'robot' },
      { kid: 'ABCDEF0123456789' },
      { event: '' },
      { event: 'x'.repeat(65) },
      { erachter: 42 },
      { policy: {} },
      { policy: [null] },
      { policy: [{ rule: 'r', decision: 'allow', detail: 3 }] },
      { signature: 'short' },
      { signature: `${'A'.repeat(85)}=` },
      { signature: `${'A'.repeat(85)}B` }, // non-zero padding bits: not canonical base64url
      { signature: 'A'.repeat(88) },
    ];
    for (const over of bad) {
      const e = thrown(() => verifyToken({ ...t, ...over }, pk));
      expectCode(e, 'INVALID_TOKEN');
    }
  });

  const fields = Object.keys(t) as (keyof TibetToken)[];
  test.prop([fc.constantFrom(...fields), fc.jsonValue({ maxDepth: 2 })])(
    'replacing any member with any other JSON value fails with a CoreError',
    (field, value) => {
      fc.pre(canonicalize(value) !== canonicalize(t[field]));
      const m = { ...clone(t), [field]: value };
      const e = thrown(() => verifyToken(m, pk));
      expect(CoreError.is(e), String(e)).toBe(true);
      expect(['INVALID_TOKEN', 'TOKEN_SIGNATURE_INVALID']).toContain((e as CoreError).code);
    },
  );

  test.prop([
    fc.nat({ max: 85 }),
    fc.constantFrom(
      ...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'.split(''),
    ),
  ])(
    'any one-character change of the signature fails with a CoreError (never a TypeError)',
    (i, ch) => {
      fc.pre(t.signature[i] !== ch);
      const m = { ...t, signature: t.signature.slice(0, i) + ch + t.signature.slice(i + 1) };
      for (const p of BACKENDS) {
        const e = thrown(() => verifyToken(m, pk, p));
        expect(CoreError.is(e), String(e)).toBe(true);
        expect(['INVALID_TOKEN', 'TOKEN_SIGNATURE_INVALID']).toContain((e as CoreError).code);
      }
    },
  );
});

describe('verifyLine', () => {
  const registry = registryOf(alice, bob);
  const line = lineOf(alice, 5);
  const code = (tokens: unknown[], c: CoreErrorCode, o: Parameters<typeof verifyLine>[2] = {}) =>
    expectCoreError(() => verifyLine(tokens, registry, o), c);

  it('accepts a well-formed line on both backends and returns the tokens', () => {
    for (const p of BACKENDS) expect(verifyLine(line, registry, { provider: p })).toEqual(line);
    expect(verifyLine([], registry)).toEqual([]);
  });

  it('catches reordered tokens', () => {
    code([line[1], line[0], ...line.slice(2)], 'TOKEN_CHAIN_BROKEN');
    code([line[0], line[1], line[3], line[2], line[4]], 'TOKEN_CHAIN_BROKEN');
    code([...line].reverse(), 'TOKEN_CHAIN_BROKEN');
  });

  it('catches deleted tokens (first, middle, and a truncated head)', () => {
    code(line.slice(1), 'TOKEN_CHAIN_BROKEN');
    code([line[0], line[1], line[3], line[4]], 'TOKEN_CHAIN_BROKEN');
  });

  it('catches inserted tokens, even validly signed ones', () => {
    const other = lineOf(bob, 2, 'bob');
    code([line[0], other[0], ...line.slice(1)], 'TOKEN_CHAIN_BROKEN');
    // A fork: a second successor of line[1] by the same actor, inserted after line[2].
    const fork = mintToken(
      { actor: alice.id, actorClass: 'human', event: 'fork', erachter: 'fork', prev: line[1]! },
      alice,
      opts('fork'),
    );
    code([line[0], line[1], line[2], fork], 'TOKEN_CHAIN_BROKEN');
    expect(verifyLine([line[0], line[1], fork], registry)).toHaveLength(3);
  });

  it('catches duplicated tokens', () => {
    code([line[0], line[0], ...line.slice(1)], 'TOKEN_CHAIN_BROKEN');
    code([...line, line[4]], 'TOKEN_CHAIN_BROKEN');
  });

  it('catches a duplicated action id even when the chain links are right', () => {
    const t2 = mintToken(
      {
        actor: alice.id,
        actorClass: 'human',
        event: 'dup',
        erachter: 'x',
        prev: line[0]!,
        actionId: line[0]!.action_id,
      },
      alice,
      opts(),
    );
    code([line[0], t2], 'TOKEN_CHAIN_BROKEN');
  });

  it('catches a wrong generation that is validly signed', () => {
    const bad = resign({ ...line[1]!, generation: 5 }, alice);
    expect(verifyToken(bad, alice.signingPublicKey)).toBe(bad);
    code([line[0], bad], 'TOKEN_GENERATION_INVALID');
    const low = resign({ ...line[2]!, prev: tokenHash(line[1]!), generation: 2 }, alice);
    code([line[0], line[1], low], 'TOKEN_GENERATION_INVALID');
  });

  it('catches a missing parent', () => {
    const t = mintToken(
      base({ parent: { action_id: 'act_00000000000000ff', generation: 3 } }),
      alice,
      opts(),
    );
    code([t], 'TOKEN_CHAIN_BROKEN');
    code([t], 'TOKEN_CHAIN_BROKEN', { parents: () => undefined });
  });

  it('catches an unregistered key: unknown actor, and a known actor with an unknown key', () => {
    code(lineOf(mallory, 1, 'm'), 'TOKEN_SIGNATURE_INVALID');
    const aliceOtherKey = testIdentity('jis:acme:alice', 'human', { seed: 'a second key' });
    code(lineOf(aliceOtherKey, 2, 'k2'), 'TOKEN_SIGNATURE_INVALID');
    // Bob signs a token in alice's name with his own key: kid names bob's key, not registered for alice.
    const forged = mintToken(base(), bob.signer, opts());
    code([forged], 'TOKEN_SIGNATURE_INVALID');
  });

  it('reports the index of the first failure', () => {
    const e = expectCoreError(() => verifyLine([line[0], line[2]], registry), 'TOKEN_CHAIN_BROKEN');
    expect(e.message).toContain('#1');
  });

  it('a parent on another line raises generation to max(local, remote) + 1', () => {
    const remote = lineOf(bob, 6, 'remote'); // generations 1..6
    const parentOf = (id: string) => remote.find((r) => r.action_id === id);
    // remote ahead: local 2, remote 6 → 7
    const a = mintToken(base({ prev: line[1]!, parent: remote[5]! }), alice, opts('a'));
    expect(a.generation).toBe(7);
    expect(verifyLine([line[0], line[1], a], registry, { parents: parentOf }).at(-1)).toBe(a);
    // local ahead: local 5, remote 2 → 6
    const b = mintToken(base({ prev: line[4]!, parent: remote[1]! }), alice, opts('b'));
    expect(b.generation).toBe(6);
    expect(verifyLine([...line, b], registry, { parents: parentOf })).toHaveLength(6);
    // the next plain successor continues from there
    const c = mintToken(base({ prev: a }), alice, opts('c'));
    expect(c.generation).toBe(8);
    expect(verifyLine([line[0], line[1], a, c], registry, { parents: parentOf })).toHaveLength(4);
    // a parent resolver that reports a different generation is caught
    code([line[0], line[1], a], 'TOKEN_GENERATION_INVALID', { parents: () => ({ generation: 2 }) });
    // the first token of a line can have a remote parent
    const first = mintToken(base({ parent: remote[2]! }), alice, opts('first'));
    expect(first.generation).toBe(4);
    expect(verifyLine([first], registry, { parents: parentOf })).toHaveLength(1);
  });

  it('finds a parent among earlier tokens of the same list', () => {
    const t = mintToken(base({ prev: line[2]!, parent: line[0]! }), alice, opts('self'));
    expect(t.generation).toBe(4);
    expect(verifyLine([line[0], line[1], line[2], t], registry)).toHaveLength(4);
  });

  it('never reorders by wall-clock time: a clock that runs backwards is recorded as is', () => {
    const clock = manualClock('2026-05-01T00:00:00.000Z');
    const t1 = mintToken(base(), alice, { clock, random: seededRandom('clk') });
    clock.set('2020-01-01T00:00:00.000Z');
    const t2 = mintToken(base({ prev: t1 }), alice, { clock, random: seededRandom('clk2') });
    expect(t2.timestamp < t1.timestamp).toBe(true);
    expect(verifyLine([t1, t2], registry)).toHaveLength(2);
  });
});

describe('small helpers', () => {
  it('nextGeneration', () => {
    expect(nextGeneration()).toBe(1);
    expect(nextGeneration(null, null)).toBe(1);
    expect(nextGeneration({ generation: 3 })).toBe(4);
    expect(nextGeneration(null, { generation: 7 })).toBe(8);
    expect(nextGeneration({ generation: 3 }, { generation: 7 })).toBe(8);
    expect(nextGeneration({ generation: 9 }, { generation: 2 })).toBe(10);
  });

  test.prop([fc.nat({ max: 1e9 }), fc.nat({ max: 1e9 })])(
    'nextGeneration is max + 1 and commutative',
    (a, b) => {
      expect(nextGeneration({ generation: a }, { generation: b })).toBe(Math.max(a, b) + 1);
      expect(nextGeneration({ generation: b }, { generation: a })).toBe(Math.max(a, b) + 1);
    },
  );

  it('newActionId / isActionId', () => {
    expect(newActionId(seededRandom('x'))).toBe(newActionId(seededRandom('x')));
    expect(newActionId()).toMatch(/^act_[0-9a-f]{16}$/);
    for (const bad of [
      'act_',
      'act_0123456789ABCDEF',
      'act_0123456789abcde',
      'xact_0123456789abcdef',
      1,
      null,
    ]) {
      expect(isActionId(bad)).toBe(false);
    }
  });

  test.prop([fc.uint8Array({ minLength: 64, maxLength: 64 }), fc.integer({ min: 0, max: 63 })])(
    'isSignatureText: exactly the one base64url text of each 64 bytes',
    (sig, other) => {
      const text = toBase64Url(sig);
      expect(isSignatureText(text)).toBe(true);
      expect(fromBase64Url(text)).toEqual(sig);
      // the last character carries 2 bits: the other 15 with the same 2 bits decode to the same
      // bytes in a lenient decoder, and are refused
      const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
      const last = B64[other]!;
      expect(isSignatureText(text.slice(0, 85) + last)).toBe('AQgw'.includes(last));
      for (const bad of [text.slice(0, 85), `${text}A`, `${text.slice(0, 85)}=`, `${text}==`, 1])
        expect(isSignatureText(bad)).toBe(false);
    },
  );
});
