/**
 * The manifest validator (src/manifest.ts parseManifest) against the rule as first written
 * (below, copied from it before it was made faster: Object.keys + includes, toHex keys for
 * duplicate recipients, forEach): for valid manifests and for many broken ones, the same
 * result, or the same error code and the same message listing the same problems.
 */
import { describe, expect, it } from 'vitest';
import { fc, test } from '@fast-check/vitest';
import { isActorId, parseRfc3339, toHex } from '@tibet/core';
import { fixedClock, seededRandom, testIdentity } from '@tibet/core/testing';
import { TzaError, packTza, unsafeNameReason } from '@tibet/tza';
import { CborTag, decodeCbor, encodeCbor, encodeShaped, type CborValue } from '../src/cbor.js';
import {
  BUNDLE_ID,
  DEFAULT_LIMITS,
  KIND,
  MANIFEST_NAME,
  NONCE_PREFIX_SIZE,
  RESERVED_NAMES,
  TZA_FORMAT,
  checkWrittenManifest,
  parseManifest,
  sealedSize,
  type TzaLimits,
  type TzaManifest,
} from '../src/manifest.js';
import { readTar } from '../src/tar.js';

const MEDIA_TYPE = /^[a-z0-9][a-z0-9!#$&^_.+-]{0,126}\/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}$/;

function refFolderConflict(names: readonly string[]): [string, string] | undefined {
  const set = new Set(names.filter(Boolean));
  for (const n of set) {
    const segs = n.split('/');
    for (let i = 1; i < segs.length; i++) {
      const dir = segs.slice(0, i).join('/');
      if (set.has(dir)) return [dir, n];
    }
  }
  return undefined;
}

function isPlainObject(v: unknown): v is Record<string, CborValue> {
  return (
    typeof v === 'object' &&
    v !== null &&
    !Array.isArray(v) &&
    !(v instanceof Uint8Array) &&
    !(v instanceof Map) &&
    !(v instanceof CborTag)
  );
}

function isBytes(v: unknown, len?: number): v is Uint8Array {
  return v instanceof Uint8Array && (len === undefined || v.length === len);
}

function isUint(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

function onlyKeys(
  o: Record<string, unknown>,
  allowed: readonly string[],
  where: string,
  errors: string[],
): void {
  for (const k of Object.keys(o))
    if (!allowed.includes(k)) errors.push(`${where}: unknown field "${k}"`);
}

/**
 * Decode and validate manifest bytes. CBOR errors keep their own codes; a structurally
 * wrong manifest raises `MANIFEST_INVALID` listing every problem; a `tza/N` other than 1
 * raises `UNKNOWN_VERSION`.
 */
function referenceParseManifest(
  bytes: Uint8Array,
  limits: TzaLimits = DEFAULT_LIMITS,
): TzaManifest {
  if (bytes.length > limits.maxManifestSize) {
    throw new TzaError(
      'LIMIT_EXCEEDED',
      `manifest of ${bytes.length} bytes exceeds ${limits.maxManifestSize}`,
    );
  }
  const v = decodeCbor(bytes, {
    maxDepth: limits.maxCborDepth,
    maxItems: 4 * limits.maxEntries + 4 * limits.maxRecipients + 10_000,
  });
  if (!isPlainObject(v))
    throw new TzaError('MANIFEST_INVALID', 'manifest must be a map with text keys');
  const fmt = v['format'];
  if (typeof fmt === 'string' && fmt !== TZA_FORMAT && /^tza\//.test(fmt)) {
    throw new TzaError(
      'UNKNOWN_VERSION',
      `unsupported bundle version ${JSON.stringify(fmt.slice(0, 40))} (this reader knows ${TZA_FORMAT})`,
    );
  }
  const e: string[] = [];
  onlyKeys(
    v,
    ['format', 'bundle_id', 'kind', 'created_at', 'meta', 'recipients', 'entries'],
    'manifest',
    e,
  );
  if (fmt !== TZA_FORMAT) e.push(`format must be "${TZA_FORMAT}"`);
  if (!(typeof v['bundle_id'] === 'string' && BUNDLE_ID.test(v['bundle_id'])))
    e.push('bundle_id must be tza_ + 32 hex');
  if (!(typeof v['kind'] === 'string' && KIND.test(v['kind'])))
    e.push('kind must match [a-z][a-z0-9-]{0,31}');
  if (!parseRfc3339(v['created_at'])) e.push('created_at must be RFC 3339 UTC');
  if (!isPlainObject(v['meta'])) e.push('meta must be a map with text keys');
  const recips = v['recipients'];
  if (!Array.isArray(recips)) e.push('recipients must be an array');
  else {
    if (recips.length > limits.maxRecipients)
      throw new TzaError('LIMIT_EXCEEDED', `more than ${limits.maxRecipients} recipients`);
    const seen = new Set<string>();
    recips.forEach((r: CborValue, i) => {
      const w = `recipients[${i}]`;
      if (!isPlainObject(r)) return void e.push(`${w} must be a map`);
      onlyKeys(r, ['id', 'pk', 'enc', 'wk'], w, e);
      if (!isActorId(r['id'])) e.push(`${w}.id must be a jis: actor id`);
      if (!isBytes(r['pk'], 32)) e.push(`${w}.pk must be 32 bytes`);
      else {
        const k = toHex(r['pk']);
        if (seen.has(k)) e.push(`${w}: duplicate recipient key`);
        seen.add(k);
      }
      if (!isBytes(r['enc'], 32)) e.push(`${w}.enc must be 32 bytes`);
      if (!isBytes(r['wk'], 48)) e.push(`${w}.wk must be 48 bytes`);
    });
  }
  const ents = v['entries'];
  let anySealed = false;
  if (!Array.isArray(ents)) e.push('entries must be an array');
  else {
    if (ents.length > limits.maxEntries - 2)
      throw new TzaError('LIMIT_EXCEEDED', `more than ${limits.maxEntries - 2} entries`);
    const names = new Set<string>();
    ents.forEach((x: CborValue, i) => {
      const w = `entries[${i}]`;
      if (!isPlainObject(x)) return void e.push(`${w} must be a map`);
      const sealed = x['sealed'];
      onlyKeys(
        x,
        sealed === true
          ? ['name', 'media_type', 'sealed', 'size', 'sha256', 'nonce', 'plain_size']
          : ['name', 'media_type', 'sealed', 'size', 'sha256'],
        w,
        e,
      );
      const name = x['name'];
      if (typeof name !== 'string') e.push(`${w}.name must be text`);
      else {
        const why = unsafeNameReason(name, limits.maxNameLength);
        if (why) e.push(`${w}.name ${JSON.stringify(name.slice(0, 120))}: ${why}`);
        if (RESERVED_NAMES.includes(name)) e.push(`${w}.name ${name} is reserved`);
        if (names.has(name)) e.push(`${w}.name ${name} is a duplicate`);
        names.add(name);
      }
      if (!(typeof x['media_type'] === 'string' && MEDIA_TYPE.test(x['media_type'])))
        e.push(`${w}.media_type must be a lowercase type/subtype`);
      if (typeof sealed !== 'boolean') e.push(`${w}.sealed must be a boolean`);
      if (!isUint(x['size'])) e.push(`${w}.size must be an unsigned integer`);
      else if (x['size'] > limits.maxEntrySize)
        throw new TzaError(
          'LIMIT_EXCEEDED',
          `${w} of ${x['size']} bytes exceeds ${limits.maxEntrySize}`,
        );
      if (!isBytes(x['sha256'], 32)) e.push(`${w}.sha256 must be 32 bytes`);
      if (sealed === true) {
        anySealed = true;
        if (!isBytes(x['nonce'], NONCE_PREFIX_SIZE))
          e.push(`${w}.nonce must be ${NONCE_PREFIX_SIZE} bytes`);
        if (!isUint(x['plain_size'])) e.push(`${w}.plain_size must be an unsigned integer`);
        else if (isUint(x['size']) && sealedSize(x['plain_size']) !== x['size'])
          e.push(`${w}.size does not fit plain_size`);
      }
    });
  }
  if (Array.isArray(ents)) {
    const conflict = refFolderConflict(
      ents.map((x: CborValue) =>
        isPlainObject(x) && typeof x['name'] === 'string' ? x['name'] : '',
      ),
    );
    if (conflict) e.push(`entry ${conflict[0]} is also used as a folder by ${conflict[1]}`);
  }
  if (anySealed && Array.isArray(recips) && recips.length === 0)
    e.push('sealed entries need at least one recipient');
  if (!anySealed && Array.isArray(recips) && recips.length > 0)
    e.push('recipients without sealed entries');
  if (e.length)
    throw new TzaError(
      'MANIFEST_INVALID',
      `invalid manifest: ${e.slice(0, 20).join('; ')}${e.length > 20 ? `; … ${e.length - 20} more` : ''}`,
    );
  return v as unknown as TzaManifest;
}

function outcome(f: () => unknown): string {
  try {
    return `ok ${toHex(encodeCbor(f() as CborValue))}`;
  } catch (e) {
    if (TzaError.is(e)) return `${e.code}: ${e.message}`;
    throw e;
  }
}

function same(bytes: Uint8Array, limits: TzaLimits = DEFAULT_LIMITS): string {
  const want = outcome(() => referenceParseManifest(bytes, limits));
  expect(outcome(() => parseManifest(bytes, limits))).toBe(want);
  return want;
}

const alice = testIdentity('jis:acme:alice', 'human');
const bob = testIdentity('jis:acme:bob', 'machine');
const bundle = packTza(
  {
    kind: 'secret',
    meta: { note: 'x' },
    entries: [
      { name: 'a/b.txt', data: new Uint8Array(3) },
      { name: 'secret.bin', data: new Uint8Array(40), sealed: true },
    ],
    recipients: [alice, bob],
    signers: [alice],
  },
  { clock: fixedClock('2026-11-28T12:00:00.000Z'), random: seededRandom('ref') },
);
const manifestBytes = readTar(bundle, DEFAULT_LIMITS).entries.find(
  (e) => e.name === MANIFEST_NAME,
)!.data;
const base = decodeCbor(manifestBytes) as Record<string, CborValue>;

type Obj = Record<string, CborValue>;
const clone = (): Obj => decodeCbor(manifestBytes) as Obj;

const values: CborValue[] = [
  null,
  true,
  0,
  -1,
  2 ** 40,
  '',
  'x',
  'tza/2',
  'application/json',
  'jis:acme:carol',
  'a/b.txt',
  'a',
  'a/',
  '../x',
  'manifest.cbor',
  '2026-02-30T00:00:00Z',
  new Uint8Array(0),
  new Uint8Array(19),
  new Uint8Array(32),
  new Uint8Array(48),
  [],
  {},
  new Map<number, CborValue>([[1, 2]]),
  new CborTag(1, 0),
];
const fields = ['format', 'bundle_id', 'kind', 'created_at', 'meta', 'recipients', 'entries'];
const recipientFields = ['id', 'pk', 'enc', 'wk', 'extra'];
const entryFields = [
  'name',
  'media_type',
  'sealed',
  'size',
  'sha256',
  'nonce',
  'plain_size',
  'extra',
];

/** One edit of the decoded manifest: set or delete a field somewhere. */
const writerEdit = fc.oneof(
  fc.record({
    where: fc.constant('top' as const),
    i: fc.constant(0),
    key: fc.constantFrom(...fields, 'extra'),
    value: fc.option(fc.constantFrom(...values)),
  }),
  fc.record({
    where: fc.constant('recipients' as const),
    i: fc.nat({ max: 2 }),
    key: fc.constantFrom(...recipientFields),
    value: fc.option(fc.constantFrom(...values)),
  }),
  fc.record({
    where: fc.constant('entries' as const),
    i: fc.nat({ max: 2 }),
    key: fc.constantFrom(...entryFields),
    value: fc.option(fc.constantFrom(...values)),
  }),
  fc.record({
    where: fc.constantFrom('dupRecipient' as const, 'dupEntry' as const, 'swap' as const),
    i: fc.nat({ max: 2 }),
    key: fc.constant(''),
    value: fc.constant(null),
  }),
);

type Edit = typeof writerEdit extends fc.Arbitrary<infer T> ? T : never;

function applyEdits(m: Obj, edits: readonly Edit[]): void {
  for (const e of edits) {
    if (e.where === 'top') {
      if (e.value === null) delete m[e.key];
      else m[e.key] = e.value;
      continue;
    }
    const listKey =
      e.where === 'recipients' || e.where === 'dupRecipient' ? 'recipients' : 'entries';
    const list = m[listKey];
    if (!Array.isArray(list)) continue;
    const arr = list as CborValue[];
    if (e.where === 'dupRecipient' || e.where === 'dupEntry') {
      if (arr.length > 0) arr.push(arr[e.i % arr.length]!);
      continue;
    }
    if (e.where === 'swap') {
      if (arr.length > 1) arr.reverse();
      continue;
    }
    const item = arr[e.i];
    if (item === undefined || typeof item !== 'object' || item === null) continue;
    if (Array.isArray(item) || item instanceof Uint8Array || item instanceof Map) continue;
    if (item instanceof CborTag) continue;
    const o = item as Obj;
    if (e.value === null) delete o[e.key];
    else o[e.key] = e.value;
  }
}

describe('parseManifest agrees with the rule as first written', () => {
  it('on the valid manifest', () => {
    expect(same(manifestBytes)).toMatch(/^ok /);
    expect(base['format']).toBe(TZA_FORMAT);
  });

  test.prop([fc.array(writerEdit, { minLength: 1, maxLength: 6 })], { numRuns: 1500 })(
    'on manifests broken in up to six places',
    (edits) => {
      const m = clone();
      applyEdits(m, edits);
      let bytes: Uint8Array;
      try {
        bytes = encodeCbor(m);
      } catch {
        return; // not encodable (nothing to parse)
      }
      same(bytes);
    },
  );

  it('on limits: size, recipients, entries, entry size, name length, depth', () => {
    const tight: TzaLimits = {
      ...DEFAULT_LIMITS,
      maxRecipients: 1,
      maxEntries: 3,
      maxEntrySize: 10,
      maxNameLength: 5,
      maxCborDepth: 2,
    };
    same(manifestBytes, tight);
    same(manifestBytes, { ...DEFAULT_LIMITS, maxManifestSize: 10 });
    same(manifestBytes, { ...DEFAULT_LIMITS, maxEntrySize: 10 });
    same(manifestBytes, { ...DEFAULT_LIMITS, maxNameLength: 5 });
    same(manifestBytes, { ...DEFAULT_LIMITS, maxRecipients: 1 });
    same(manifestBytes, { ...DEFAULT_LIMITS, maxEntries: 3 });
    const deep = clone();
    deep['meta'] = { a: { b: { c: { d: {} } } } };
    same(encodeCbor(deep), { ...DEFAULT_LIMITS, maxCborDepth: 4 });
  });

  it('on many recipients with one duplicate key far apart', () => {
    const m = clone();
    const rs = m['recipients'] as Obj[];
    const many: Obj[] = [];
    for (let i = 0; i < 40; i++) {
      const pk = new Uint8Array(32);
      pk[31] = i;
      pk[0] = i % 3;
      many.push({ ...rs[0]!, id: `jis:acme:r${i}`, pk });
    }
    many.push({ ...many[7]!, id: 'jis:acme:again' });
    m['recipients'] = many;
    expect(same(encodeCbor(m))).toContain('recipients[40]: duplicate recipient key');
  });
});

/**
 * The writer's check (checkWrittenManifest): on the value it has just encoded it must
 * accept exactly what parseManifest accepts of the bytes, and refuse with the same error;
 * the fast path (no decoding) is taken for ordinary manifests.
 */
describe('checkWrittenManifest agrees with parseManifest of the bytes', () => {
  function writerOutcome(value: Obj, limits: TzaLimits = DEFAULT_LIMITS): string {
    const { bytes, shape } = encodeShaped(value);
    const reader = outcome(() => referenceParseManifest(bytes, limits));
    let fast = false;
    const writer = outcome(() => {
      fast = checkWrittenManifest(value, bytes, shape, limits);
      return parseManifest(bytes, limits);
    });
    expect(writer).toBe(reader);
    if (fast) expect(reader).toMatch(/^ok /);
    return fast ? 'fast' : reader.startsWith('ok ') ? 'parsed' : 'refused';
  }

  it('takes the fast path for a manifest as packTza writes it', () => {
    expect(writerOutcome(clone())).toBe('fast');
    const m = clone();
    m['meta'] = { a: [1, 'x', new Uint8Array(3)], b: { c: null, d: true } };
    expect(writerOutcome(m)).toBe('fast');
    const long = clone();
    long['kind'] = 'k'.repeat(32); // a two-byte text head before "meta"
    expect(writerOutcome(long)).toBe('fast');
  });

  it('falls back to the reader for what the fast path cannot vouch for', () => {
    const cases: [string, (m: Obj) => void][] = [
      ['meta as a Map with text keys', (m) => (m['meta'] = new Map([['a', 1]]))],
      ['meta as an empty Map', (m) => (m['meta'] = new Map())],
      ['meta as a Map with an integer key', (m) => (m['meta'] = new Map([[1, 1]]))],
      ['meta holding a tag', (m) => (m['meta'] = { t: new CborTag(1, 0) })],
      ['meta holding undefined', (m) => (m['meta'] = { u: undefined as unknown as CborValue })],
      ['meta with a null prototype', (m) => (m['meta'] = Object.create(null) as Obj)],
      ['meta as an array', (m) => (m['meta'] = [])],
      ['meta as bytes', (m) => (m['meta'] = new Uint8Array(2))],
      ['meta as a proxy of bytes', (m) => (m['meta'] = new Proxy(new Uint8Array(2), {}))],
      ['a Buffer as a digest', (m) => ((m['entries'] as Obj[])[0]!['sha256'] = Buffer.alloc(32))],
      [
        'a proxy of bytes as a key',
        (m) => ((m['recipients'] as Obj[])[0]!['pk'] = new Proxy(new Uint8Array(32), {})),
      ],
      [
        'bytes with an own length',
        (m) => {
          const b = new Uint8Array(32);
          Object.defineProperty(b, 'length', { value: 32 });
          (m['recipients'] as Obj[])[1]!['enc'] = b;
        },
      ],
      ['an extra top-level member', (m) => (m['extra'] = 1)],
      ['no meta', (m) => delete m['meta']],
      ['meta nested too deep', (m) => (m['meta'] = { a: { b: { c: { d: { e: {} } } } } })],
    ];
    for (const [what, change] of cases) {
      const m = clone();
      change(m);
      let r: string;
      try {
        r = writerOutcome(m, { ...DEFAULT_LIMITS, maxCborDepth: 5 });
      } catch (e) {
        // the encoder refuses the value before anything is checked
        expect(e, what).toBeInstanceOf(TypeError);
        continue;
      }
      expect(r, what).not.toBe('fast');
    }
  });

  it('refuses with the reader error when the manifest is over a limit', () => {
    const m = clone();
    expect(writerOutcome(m, { ...DEFAULT_LIMITS, maxManifestSize: 100 })).toBe('refused');
    expect(writerOutcome(m, { ...DEFAULT_LIMITS, maxCborDepth: 1 })).toBe('refused');
    expect(writerOutcome(m, { ...DEFAULT_LIMITS, maxRecipients: 1 })).toBe('refused');
    expect(writerOutcome(m, { ...DEFAULT_LIMITS, maxEntrySize: 10 })).toBe('refused');
    expect(writerOutcome(m, { ...DEFAULT_LIMITS, maxCborDepth: 2 })).toBe('refused');
    expect(writerOutcome(m, { ...DEFAULT_LIMITS, maxCborDepth: 3 })).toBe('fast');
  });

  test.prop([fc.array(writerEdit, { minLength: 1, maxLength: 6 })], { numRuns: 1500 })(
    'on manifests broken in up to six places',
    (edits) => {
      const m = clone();
      applyEdits(m, edits);
      try {
        encodeShaped(m);
      } catch {
        return; // not encodable (nothing to check)
      }
      writerOutcome(m);
    },
  );
});
