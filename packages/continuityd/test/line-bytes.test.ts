/**
 * The writer assembles an appended token's bytes, its signing input and its line in reused
 * blocks (line-bytes.ts) instead of serialising and encoding each into a fresh array. The
 * bytes must be exactly core's (`canonicalize`, `tokenSigningInput`) and record.ts's
 * (`encodeRecord`) for every token parseToken accepts, wherever the blocks start and end;
 * and a log written through them must read back, verify and reopen as before.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { fc, test } from '@fast-check/vitest';
import {
  canonicalize,
  fromUtf8,
  mintToken,
  parseToken,
  tokenSigningInput,
  utf8,
  type JsonValue,
  type TibetToken,
} from '@tibet/core';
import { fixedClock, seededRandom } from '@tibet/core/testing';
import { AuditLog, encodeRecord, parseRecord, verifyLog, type LogRecord } from '@tibet/continuityd';
import { ByteArena, causalText, encodeLineInto, tokenBytesInto } from '../src/line-bytes.js';
import { segmentName } from '../src/log.js';
import { actors, cleanup, logKey, makeRegistry, tmpDir } from './fixtures/helpers.js';

const alice = actors[0]!;
const registry = makeRegistry();
const clock = fixedClock('2026-11-28T12:00:00.000Z');
const dirs: string[] = [];
afterEach(() => cleanup(dirs));

const base = mintToken(
  { actor: alice.id, actorClass: 'human', event: 'secret-proxied', erachter: 'base', prev: null },
  alice,
  { clock, random: seededRandom('line-bytes') },
);

/** `o`'s members inserted in the order `order` gives (insertion order is what JS keeps). */
function reorder<T extends object>(o: T, order: number[]): T {
  const keys = Object.keys(o);
  const idx = keys.map((k, i) => [order[i % order.length]! + i / 1000, k] as const);
  idx.sort((a, b) => a[0] - b[0]);
  const out: Record<string, unknown> = {};
  for (const [, k] of idx) out[k] = (o as Record<string, unknown>)[k];
  return out as T;
}

const json: fc.Arbitrary<JsonValue> = fc.jsonValue({ maxDepth: 3 }) as fc.Arbitrary<JsonValue>;
const text = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'grapheme', maxLength: 20 }),
  fc.string({ unit: 'binary', maxLength: 20 }),
  fc.constantFrom(
    '"quoted"\\',
    'tab\there',
    'line\nbreak',
    '\u2028\u2029',
    '😀 é ü',
    '\u0000\u001f',
  ),
);
const policy = fc.array(
  fc.record(
    {
      rule: fc.string({ minLength: 1, maxLength: 12 }),
      decision: fc.constantFrom('allow', 'deny'),
      detail: text,
    },
    { requiredKeys: ['rule', 'decision'] },
  ),
  { maxLength: 3 },
);
const hex64 = fc.stringMatching(/^[0-9a-f]{64}$/);

/** Tokens as parseToken sees them: the fields varied, members in any insertion order. */
const tokens = fc
  .record({
    erachter: text,
    erin: json,
    eraan: json,
    eromheen: json,
    policy,
    parent: fc.option(fc.stringMatching(/^act_[0-9a-f]{16}$/), { nil: null }),
    prev: fc.option(hex64, { nil: null }),
    generation: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
    timestamp: fc.constantFrom(
      '2026-11-28T12:00:00.000Z',
      '0001-01-01T00:00:00Z',
      '2026-02-28T23:59:59.123456789Z',
    ),
    order: fc.array(fc.nat({ max: 100 }), { minLength: 1, maxLength: 20 }),
  })
  .map((f) =>
    reorder(
      {
        ...base,
        erachter: f.erachter,
        erin: f.erin,
        eraan: f.eraan,
        eromheen: f.eromheen,
        policy: f.policy.map((p) => reorder(p, f.order)),
        parent_action_id: f.parent,
        prev: f.prev === null ? null : `sha256:${f.prev}`,
        generation: f.prev === null && f.parent === null ? 1 : f.generation,
        timestamp: f.timestamp,
      },
      f.order,
    ),
  );

describe('tokenBytesInto', () => {
  test.prop([tokens, fc.integer({ min: 1, max: 4096 })], { numRuns: 600 })(
    'gives core’s canonical bytes and signing input for every token parseToken accepts',
    (token, block) => {
      let t: TibetToken;
      try {
        t = parseToken(token);
      } catch {
        return; // refused before the writer assembles anything
      }
      const arena = new ByteArena(block);
      // twice into the same arena: blocks fill, new ones start, earlier views stay intact
      const a = tokenBytesInto(arena, t);
      const b = tokenBytesInto(arena, t);
      const want = utf8(canonicalize(t));
      const wantInput = tokenSigningInput(t);
      for (const x of [a, b]) {
        expect(fromUtf8(x.token)).toBe(fromUtf8(want));
        expect(x.token).toEqual(want);
        expect(x.input).toEqual(wantInput);
        expect(x.reasonJson).toBe(canonicalize(t.erachter));
      }
    },
  );

  it('is exercised: most generated tokens are ones parseToken accepts', () => {
    let ok = 0;
    for (const t of fc.sample(tokens, { numRuns: 300, seed: 7 })) {
      try {
        parseToken(t);
        ok++;
      } catch {
        // a lone surrogate or a bad policy entry: refused before any bytes are made
      }
    }
    expect(ok).toBeGreaterThan(200);
  });

  it('refuses a signature member of the wrong length rather than cut the wrong bytes', () => {
    const t = { ...base, signature: base.signature.slice(1) } as TibetToken;
    expect(() => tokenBytesInto(new ByteArena(), t)).toThrow(TypeError);
  });
});

describe('encodeLineInto', () => {
  const real: LogRecord = {
    v: 'tibet-log/1',
    index: 0,
    prev: null,
    received_at: '2026-11-28T12:00:00.000Z',
    causal: {
      action_id: base.action_id,
      actor_id: base.actor,
      causal_reason: base.erachter,
      continuity_id: base.actor,
      generation: 1,
      object_id: null,
      parent_action_id: null,
      parent_object_id: null,
    },
    token: base,
  };
  test.prop(
    [
      tokens,
      fc.nat({ max: Number.MAX_SAFE_INTEGER }),
      fc.option(hex64, { nil: null }),
      fc.date({
        min: new Date('0001-01-01T00:00:00Z'),
        max: new Date('9999-12-31T23:59:59Z'),
        noInvalidDate: true,
      }),
      fc.option(fc.stringMatching(/^[A-Za-z0-9_.:@/-]{1,20}$/), { nil: null }),
      fc.integer({ min: 1, max: 8192 }),
    ],
    { numRuns: 400 },
  )(
    'gives exactly encodeRecord’s bytes and a trailing newline',
    (token, index, prev, at, obj, block) => {
      let t: TibetToken;
      try {
        t = parseToken(token);
      } catch {
        return;
      }
      const r: LogRecord = {
        ...real,
        index,
        prev,
        received_at: at.toISOString(),
        causal: {
          ...real.causal,
          causal_reason: t.erachter,
          generation: t.generation,
          parent_action_id: t.parent_action_id,
          object_id: obj,
        },
        token: t,
      };
      const arena = new ByteArena(block);
      const tb = tokenBytesInto(arena, t);
      const line = encodeLineInto(
        arena,
        canonicalize(r.causal),
        index,
        prev,
        r.received_at,
        tb.token,
      );
      const want = encodeRecord(r);
      expect(line.length).toBe(want.length + 1);
      expect(line[line.length - 1]).toBe(0x0a);
      expect(line.subarray(0, want.length)).toEqual(want);
    },
  );

  it('refuses an index that is not a safe non-negative integer', () => {
    const arena = new ByteArena();
    for (const bad of [-1, 1.5, Number.MAX_SAFE_INTEGER + 1])
      expect(() => encodeLineInto(arena, '{}', bad, null, real.received_at, utf8('{}'))).toThrow(
        RangeError,
      );
  });
});

describe('causalText', () => {
  const objectIds = fc.stringMatching(/^[A-Za-z0-9_.:@/-]{1,128}$/);
  test.prop(
    [
      tokens,
      fc.option(objectIds, { nil: null }),
      fc.option(objectIds, { nil: null }),
      fc.option(objectIds, { nil: undefined }),
    ],
    { numRuns: 400 },
  )(
    'gives canonicalize’s text of every causal block the writer builds',
    (token, objectId, parentObjectId, continuityId) => {
      let t: TibetToken;
      try {
        t = parseToken(token);
      } catch {
        return;
      }
      const tb = tokenBytesInto(new ByteArena(), t);
      const c = {
        action_id: t.action_id,
        actor_id: t.actor,
        causal_reason: t.erachter,
        continuity_id: continuityId ?? objectId ?? t.actor,
        generation: t.generation,
        object_id: objectId,
        parent_action_id: t.parent_action_id,
        parent_object_id: parentObjectId,
      };
      expect(causalText(c, tb.reasonJson)).toBe(canonicalize(c));
    },
  );
});

describe('ByteArena', () => {
  it('hands out adjacent views of one block until it is full, then starts another', () => {
    const arena = new ByteArena(10);
    const a = arena.room(4);
    a.set([1, 2, 3, 4]);
    const va = arena.take(3);
    const vb = arena.room(5);
    vb.fill(9);
    const kept = arena.take(5);
    expect(kept.buffer).toBe(va.buffer);
    expect(kept.byteOffset).toBe(va.byteOffset + 3);
    // 2 bytes left: a room of 3 starts a new block; what was kept is untouched
    const c = arena.room(3);
    expect(c.buffer).not.toBe(va.buffer);
    expect([...va]).toEqual([1, 2, 3]);
    expect([...kept]).toEqual([9, 9, 9, 9, 9]);
    // a room larger than a block gets a block of its own size
    expect(arena.room(25).length).toBe(25);
    expect(() => arena.take(26)).toThrow(RangeError);
    expect(() => arena.take(-1)).toThrow(RangeError);
  });

  it('refuses a block size that is not a positive integer', () => {
    for (const bad of [0, -1, 1.5, Number.NaN])
      expect(() => new ByteArena(bad)).toThrow(RangeError);
  });
});

describe('AuditLog through the arenas', () => {
  it('writes batches that cross blocks (and lines larger than a block) byte for byte', async () => {
    const dir = tmpDir('tibet-line-bytes-');
    dirs.push(dir);
    const opts = { dir, signer: logKey, registry, clock, checkpointEvery: 0 };
    const log = await AuditLog.open({ ...opts, verifyWorkers: 0 });
    const random = seededRandom('big');
    const toks: TibetToken[] = [];
    // lines of ~0.4, ~0.7 and ~1.3 MiB beside small ones: the 1 MiB blocks fill mid-batch
    const sizes = [10, 400_000, 20, 700_000, 30, 1_300_000, 40, 5, 300_000, 6];
    for (const [i, n] of sizes.entries()) {
      toks.push(
        mintToken(
          {
            actor: alice.id,
            actorClass: 'human',
            event: 'secret-proxied',
            erachter: `big ${i} — é😀`,
            erin: { blob: 'ü'.repeat(n / 2), i },
            prev: toks[i - 1] ?? null,
          },
          alice,
          { clock, random },
        ),
      );
    }
    const receipts = await Promise.all(toks.map((t) => log.append(t)));
    expect(receipts.map((r) => r.index)).toEqual([...sizes.keys()]);
    await log.close();
    const seg = readFileSync(join(dir, 'segments', segmentName(0)));
    const lines = seg.toString('utf8').split('\n');
    expect(lines.pop()).toBe('');
    expect(lines).toHaveLength(sizes.length);
    lines.forEach((text, i) => {
      const r = parseRecord(utf8(text), i);
      expect(r.token).toEqual(toks[i]);
      expect(text).toBe(fromUtf8(encodeRecord(r)));
    });
    const report = await verifyLog(dir, { registry, logPublicKey: logKey.signingPublicKey });
    expect(report.ok).toBe(true);
    const again = await AuditLog.open(opts);
    expect(again.size).toBe(sizes.length);
    await again.close();
  }, 60_000);
});
