/**
 * The deterministic scenario behind the golden token vectors (test/vectors/token-*.json).
 * Everything here is derived from fixed seeds and a manual clock, so minting it again must
 * give byte-identical tokens. See test/vectors/TOKENS.md.
 */
import {
  canonicalize,
  fromBase64Url,
  manualClock,
  mintToken,
  seededRandom,
  toBase64Url,
  tokenHash,
  tokenSigningInput,
  toHex,
  type CryptoProvider,
  type Identity,
  type MintTokenInput,
  type TibetToken,
  type TokenBody,
} from '@tibet/core';
import { testIdentity } from '@tibet/core/testing';

export const GOLDEN_SEEDS = {
  alice: 'tibet-core golden v1: jis:acme:alice',
  keychain: 'tibet-core golden v1: jis:acme:keychain',
  actionIds: 'tibet-core golden v1: action ids',
} as const;
export const GOLDEN_CREATED_AT = '2026-01-01T00:00:00.000Z';
export const GOLDEN_CLOCK_START = '2026-03-01T09:00:00.000Z';

export interface GoldenScenario {
  alice: Identity;
  keychain: Identity;
  /** The keychain's line: three tokens, generations 1, 2, 3. */
  keychainLine: TibetToken[];
  /** Alice's line: a1 (generation 1) and the golden token a2 (prev a1, parent k3: generation 4). */
  aliceLine: TibetToken[];
  golden: TibetToken;
  /** The inputs the golden token was minted from (for TOKENS.md and the context file). */
  goldenInput: Omit<MintTokenInput, 'prev' | 'parent'>;
}

export function goldenScenario(provider?: CryptoProvider): GoldenScenario {
  const opts = provider ? { provider } : {};
  const alice = testIdentity('jis:acme:alice', 'human', {
    seed: GOLDEN_SEEDS.alice,
    createdAt: GOLDEN_CREATED_AT,
    ...opts,
  });
  const keychain = testIdentity('jis:acme:keychain', 'machine', {
    seed: GOLDEN_SEEDS.keychain,
    createdAt: GOLDEN_CREATED_AT,
    ...opts,
  });
  const clock = manualClock(GOLDEN_CLOCK_START);
  const random = seededRandom(GOLDEN_SEEDS.actionIds);
  const mint = (input: MintTokenInput, who: Identity): TibetToken => {
    const t = mintToken(input, who, { clock, random, ...opts });
    clock.advance(1500);
    return t;
  };

  const k1 = mint(
    {
      actor: keychain.id,
      actorClass: 'machine',
      event: 'secret-created',
      erin: { secret_id: 'sec_pypi_001', secret_type: 'pypi_token' },
      eraan: [],
      eromheen: { scope: 'upload:tibet-core', issuer: 'pypi.org' },
      erachter: 'Create the PyPI upload token for tibet-core',
      policy: [{ rule: 'keychain.create', decision: 'allow' }],
    },
    keychain,
  );
  const k2 = mint(
    {
      actor: keychain.id,
      actorClass: 'machine',
      event: 'secret-sealed',
      erin: { secret_id: 'sec_pypi_001', exposure_state: 'sealed' },
      eraan: [k1.action_id],
      erachter: 'Seal the token at rest',
      prev: k1,
    },
    keychain,
  );
  const k3 = mint(
    {
      actor: keychain.id,
      actorClass: 'machine',
      event: 'secret-delegated',
      erin: { secret_id: 'sec_pypi_001', target_assignee: 'jis:acme:alice' },
      eraan: [k2.action_id],
      eromheen: { authority_mode: 'agent' },
      erachter: 'Delegate publishing rights to alice for the 0.1.0 release',
      prev: k2,
    },
    keychain,
  );

  const a1 = mint(
    {
      actor: alice.id,
      actorClass: 'human',
      event: 'release-prepared',
      erin: { package: 'tibet-core', version: '0.1.0' },
      erachter: 'Prepare the 0.1.0 release',
    },
    alice,
  );
  const goldenInput = {
    actor: alice.id,
    actorClass: 'human' as const,
    event: 'secret-proxied',
    erin: { secret_id: 'sec_pypi_001', target_action: '/upload/pypi', bytes: 48213 },
    eraan: [{ action_id: k3.action_id, rel: 'authorised-by' }, { secret_id: 'sec_pypi_001' }],
    eromheen: {
      authority_mode: 'agent',
      policy_lane: 'publish',
      constraints: [{ key: 'registry', value: 'pypi.org' }],
      host: 'upload.pypi.org',
    },
    erachter: 'Publish tibet-core 0.1.0 to PyPI — release approved in review #42',
    policy: [
      {
        rule: 'sam-policy-lane',
        decision: 'allow' as const,
        detail: 'publish lane has a registry constraint',
      },
      { rule: 'sam-keychain-check', decision: 'allow' as const },
    ],
  };
  const a2 = mint({ ...goldenInput, prev: a1, parent: k3 }, alice);

  return {
    alice,
    keychain,
    keychainLine: [k1, k2, k3],
    aliceLine: [a1, a2],
    golden: a2,
    goldenInput,
  };
}

export type TokenCase =
  | {
      name: string;
      api: 'verifyToken';
      /** Actor id whose registered signing key is used (alice or the keychain). */
      key: string;
      token: unknown;
      expect: 'valid' | 'failure';
      code?: string;
    }
  | {
      name: string;
      api: 'verifyLine';
      /** Actor ids in the registry. */
      registry: string[];
      /** Generations of parents on other lines, by action id. */
      parents: Record<string, number>;
      tokens: unknown[];
      expect: 'valid' | 'failure';
      code?: string;
    };

/** Re-sign a (mutated) body with `who`, as a dishonest signer could. */
export function resign(body: TokenBody | TibetToken, who: Identity): TibetToken {
  const { signature: _s, ...rest } = body as TibetToken;
  return { ...rest, signature: toBase64Url(who.sign(tokenSigningInput(rest))) };
}

/** Expect-valid and expect-failure cases derived from the golden scenario (token-cases.json). */
export function goldenCases(s: GoldenScenario = goldenScenario()): TokenCase[] {
  const g = s.golden;
  const A = s.alice.id;
  const K = s.keychain.id;
  const [k1, k2, k3] = s.keychainLine as [TibetToken, TibetToken, TibetToken];
  const [a1, a2] = s.aliceLine as [TibetToken, TibetToken];
  const tok = (name: string, token: unknown, code?: string): TokenCase => ({
    name,
    api: 'verifyToken',
    key: A,
    token,
    ...(code ? { expect: 'failure' as const, code } : { expect: 'valid' as const }),
  });
  const sig = fromBase64Url(g.signature);
  sig[10]! ^= 0x01;
  const lastChar = g.signature.at(-1)!;
  const nonCanonicalLast = { A: 'B', Q: 'R', g: 'h', w: 'x' }[lastChar] ?? 'B';
  const { erin: _erin, ...noErin } = g;
  const reordered = Object.fromEntries(Object.entries(g).reverse());
  const line = (
    name: string,
    tokens: unknown[],
    code?: string,
    parents: Record<string, number> = {},
    registry: string[] = [A, K],
  ): TokenCase => ({
    name,
    api: 'verifyLine',
    registry,
    parents,
    tokens,
    ...(code ? { expect: 'failure' as const, code } : { expect: 'valid' as const }),
  });
  const parents = { [k3.action_id]: k3.generation };
  return [
    tok('golden token', g),
    tok('members in another order (the canonical form is the same)', reordered),
    tok(
      'signature: one bit flipped',
      { ...g, signature: toBase64Url(sig) },
      'TOKEN_SIGNATURE_INVALID',
    ),
    tok(
      'erachter: one character added',
      { ...g, erachter: `${g.erachter}.` },
      'TOKEN_SIGNATURE_INVALID',
    ),
    tok('generation changed', { ...g, generation: g.generation + 1 }, 'TOKEN_SIGNATURE_INVALID'),
    tok(
      'timestamp changed by 1 ms',
      { ...g, timestamp: '2026-03-01T09:00:06.001Z' },
      'TOKEN_SIGNATURE_INVALID',
    ),
    tok(
      'erin: nested value changed',
      { ...g, erin: { ...(g.erin as object), bytes: 48214 } },
      'TOKEN_SIGNATURE_INVALID',
    ),
    tok('kid of another key', { ...g, kid: s.keychain.keyId }, 'TOKEN_SIGNATURE_INVALID'),
    tok('erachter empty', resign({ ...g, erachter: '' }, s.alice), 'INVALID_TOKEN'),
    tok(
      'erachter only whitespace',
      resign({ ...g, erachter: ' \t\n\u3000' }, s.alice),
      'INVALID_TOKEN',
    ),
    tok('unknown member', resign({ ...g, extra: 1 } as TibetToken, s.alice), 'INVALID_TOKEN'),
    tok('erin missing', resign(noErin as TibetToken, s.alice), 'INVALID_TOKEN'),
    tok(
      'typ wrong',
      resign({ ...g, typ: 'tibet-token/2' } as unknown as TibetToken, s.alice),
      'INVALID_TOKEN',
    ),
    tok('actor not a jis: id', resign({ ...g, actor: 'alice@acme' }, s.alice), 'INVALID_TOKEN'),
    tok(
      'timestamp with an offset',
      resign({ ...g, timestamp: '2026-03-01T10:00:06.000+01:00' }, s.alice),
      'INVALID_TOKEN',
    ),
    tok(
      'timestamp on a day that does not exist',
      resign({ ...g, timestamp: '2026-02-30T09:00:06.000Z' }, s.alice),
      'INVALID_TOKEN',
    ),
    tok('generation 0', resign({ ...g, generation: 0 }, s.alice), 'INVALID_TOKEN'),
    tok('signature padded', { ...g, signature: `${g.signature}==` }, 'INVALID_TOKEN'),
    ...(/[-_]/.test(g.signature)
      ? [
          tok(
            'signature in base64, not base64url',
            { ...g, signature: g.signature.replace(/-/g, '+').replace(/_/g, '/') },
            'INVALID_TOKEN',
          ),
        ]
      : []),
    tok(
      'signature with non-zero padding bits in the last character',
      { ...g, signature: g.signature.slice(0, -1) + nonCanonicalLast },
      'INVALID_TOKEN',
    ),
    line('keychain line', [k1, k2, k3]),
    line('alice line with its parent on the keychain line', [a1, a2], undefined, parents),
    line('reordered', [k2, k1, k3], 'TOKEN_CHAIN_BROKEN'),
    line('first token deleted', [k2, k3], 'TOKEN_CHAIN_BROKEN'),
    line('middle token deleted', [k1, k3], 'TOKEN_CHAIN_BROKEN'),
    line('token of another line inserted', [k1, a1, k2, k3], 'TOKEN_CHAIN_BROKEN'),
    line('token duplicated', [k1, k1, k2, k3], 'TOKEN_CHAIN_BROKEN'),
    line('parent missing', [a1, a2], 'TOKEN_CHAIN_BROKEN'),
    line('parent generation different', [a1, a2], 'TOKEN_GENERATION_INVALID', {
      [k3.action_id]: 7,
    }),
    line(
      'wrong generation, validly signed',
      [k1, resign({ ...k2, generation: 3 }, s.keychain)],
      'TOKEN_GENERATION_INVALID',
    ),
    line('signer not registered', [k1, k2, k3], 'TOKEN_SIGNATURE_INVALID', {}, [A]),
  ];
}

/** The files under test/vectors/ that the golden scenario produces, name → exact text. */
export function goldenFiles(s: GoldenScenario = goldenScenario()): Record<string, string> {
  const { golden, alice, keychain } = s;
  const signingInput = new TextDecoder().decode(tokenSigningInput(golden));
  const signer = alice.exportSecrets();
  const context = {
    description:
      'Context of the golden TIBET token (token-golden.json, the exact RFC 8785 bytes of the signed token, no trailing newline) and its signing input (token-golden-signing-input.json, the exact bytes that were signed). Test keys only: never use them for anything real. See TOKENS.md.',
    generated_by:
      'packages/core/test/token-fixtures.ts (goldenScenario); TIBET_UPDATE_GOLDEN=1 rewrites the files',
    signer: {
      id: alice.id,
      actor_class: alice.actorClass,
      ed25519_seed_hex: toHex(signer.signingSeed),
      ed25519_public_key_hex: toHex(alice.signingPublicKey),
      ed25519_public_key_b64url: toBase64Url(alice.signingPublicKey),
      kid: alice.keyId,
      public_identity: alice.public,
    },
    prev_token: s.aliceLine[0],
    parent_line_signer: { id: keychain.id, public_identity: keychain.public },
    parent_line: s.keychainLine,
    expect: {
      signing_input_utf8_length: new TextEncoder().encode(signingInput).length,
      prev: tokenHash(s.aliceLine[0]!),
      generation: 4,
      token_hash: tokenHash(golden),
      signature: golden.signature,
    },
  };
  return {
    'token-golden.json': canonicalize(golden),
    'token-golden-signing-input.json': signingInput,
    'token-golden-context.json': `${JSON.stringify(context, null, 2)}\n`,
    'token-cases.json': `${JSON.stringify(
      {
        description:
          'Expect-valid and expect-failure cases for TIBET tokens, derived from the golden scenario (keys: token-golden-context.json). verifyToken cases use the signing key of `key`; verifyLine cases use a registry of the listed actors and `parents` (action id → generation) for parents on other lines. `code` is the CoreError code that must be raised.',
        generated_by: 'packages/core/test/token-fixtures.ts (goldenCases)',
        identities: { [alice.id]: alice.public, [keychain.id]: keychain.public },
        cases: goldenCases(s),
      },
      null,
      2,
    )}\n`,
  };
}
