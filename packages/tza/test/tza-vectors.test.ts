/**
 * Golden `tza/1` vectors: committed files under test/vectors/tza/ that a second
 * implementation can read. This test packs every vector again and compares the bytes with
 * the committed files; with `TZA_REGEN=1` it writes them instead:
 *
 *     TZA_REGEN=1 npx vitest run packages/tza/test/tza-vectors.test.ts
 *
 * How each file is made is described in test/vectors/tza/README.md and, per failure case,
 * in failures.json (`mutation`).
 */
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  concatBytes,
  equalBytes,
  getProvider,
  keyIdOf,
  toHex,
  utf8,
  type CryptoProvider,
} from '@tibet/core';
import { seededRandom } from '@tibet/core/testing';
import {
  TzaError,
  cosignTza,
  inspectTza,
  openTza,
  packTza,
  readTza,
  verifyTza,
  type TzaErrorCode,
  type TzaLimits,
  type VerifyOptions,
} from '@tibet/tza';
import { decodeCbor, encodeCbor, type CborValue } from '../src/cbor.js';
import { BLOCK, paddedSize } from '../src/tar.js';
import {
  ACTORS,
  actor,
  clock,
  cosignClock,
  cborHead,
  fixChecksum,
  flipBit,
  header,
  headerOffset,
  indexOf,
  joinTar,
  mapInOrder,
  resign,
  seedOf,
  splitTar,
  type ActorName,
} from './vectors/tza/support.js';

const DIR = fileURLToPath(new URL('./vectors/tza/', import.meta.url));
const REGEN = process.env['TZA_REGEN'] === '1';
const sha256hex = (b: Uint8Array): string => toHex(getProvider().sha256(b));

// ---------------------------------------------------------------------------------------
// plaintexts

const RECORD = utf8(
  JSON.stringify({
    secret_id: 'sec_vec_001',
    type: 'token',
    issuer: 'jis:acme:alice',
    scope: 'pypi:upload:acme-lib',
    created_at: '2026-11-28T12:00:00.000Z',
  }),
);
const SECRET = seededRandom('tza-vector:secret.bin')(256);
const CAPSULE = utf8(
  JSON.stringify({ capsule: 'release-approval', release: 'acme-lib 2.4.0', approved: true }),
);
const LARGE = seededRandom('tza-vector:large.bin')(200_000);
const EMPTY = new Uint8Array(0);

// ---------------------------------------------------------------------------------------
// valid vectors

interface ValidVector {
  file: string;
  signers: ActorName[];
  recipients: ActorName[];
  plaintexts: Record<string, Uint8Array>;
  build(p: CryptoProvider): Uint8Array;
}

const VALID: ValidVector[] = [
  {
    file: 'secret-2-recipients.tza',
    signers: ['alice'],
    recipients: ['alice', 'bob'],
    plaintexts: { 'record.json': RECORD, 'secret.bin': SECRET },
    build: (provider) =>
      packTza(
        {
          kind: 'secret',
          meta: { issuer: 'jis:acme:alice', scope: 'pypi:upload:acme-lib' },
          entries: [
            { name: 'record.json', data: RECORD, mediaType: 'application/json' },
            { name: 'secret.bin', data: SECRET, sealed: true },
          ],
          recipients: [actor('alice', provider), actor('bob', provider)],
          signers: [actor('alice', provider)],
        },
        { clock, random: seededRandom('tza-vector:secret-2-recipients'), provider },
      ),
  },
  {
    file: 'capsule-cosigned.tza',
    signers: ['alice', 'bob'],
    recipients: [],
    plaintexts: { 'capsule.json': CAPSULE },
    build: (provider) =>
      cosignTza(
        packTza(
          {
            kind: 'capsule',
            meta: { purpose: 'release approval' },
            entries: [{ name: 'capsule.json', data: CAPSULE, mediaType: 'application/json' }],
            signers: [actor('alice', provider)],
          },
          { clock, random: seededRandom('tza-vector:capsule-cosigned'), provider },
        ),
        actor('bob', provider),
        { clock: cosignClock, provider },
      ),
  },
  {
    file: 'large-chunked.tza',
    signers: ['alice'],
    recipients: ['alice'],
    plaintexts: { 'data/large.bin': LARGE },
    build: (provider) =>
      packTza(
        {
          kind: 'file',
          entries: [{ name: 'data/large.bin', data: LARGE, sealed: true }],
          recipients: [actor('alice', provider)],
          signers: [actor('alice', provider)],
        },
        { clock, random: seededRandom('tza-vector:large-chunked'), provider },
      ),
  },
  {
    file: 'empty-sealed.tza',
    signers: ['alice'],
    recipients: ['alice'],
    plaintexts: { 'empty.bin': EMPTY },
    build: (provider) =>
      packTza(
        {
          kind: 'secret',
          entries: [{ name: 'empty.bin', data: EMPTY, sealed: true }],
          recipients: [actor('alice', provider)],
          signers: [actor('alice', provider)],
        },
        { clock, random: seededRandom('tza-vector:empty-sealed'), provider },
      ),
  },
];

const built = new Map(VALID.map((v) => [v.file, v.build(getProvider('node'))]));
const validBytes = (file: string): Uint8Array => built.get(file)!;

// ---------------------------------------------------------------------------------------
// expect-failure vectors

interface FailureCase {
  file: string;
  derived_from: string;
  mutation: string;
  expect_code: TzaErrorCode;
  /** Who opens it (default alice, a recipient of every valid vector). */
  open_as?: ActorName;
  /** Pinned signers, by name in identities.json. */
  trust?: ActorName[];
  limits?: Partial<TzaLimits>;
  /** The bundle itself is valid: only opening (or the options) fail. */
  verify_valid?: boolean;
}

function buildFailures(): { cases: FailureCase[]; files: Map<string, Uint8Array> } {
  const cases: FailureCase[] = [];
  const files = new Map<string, Uint8Array>();
  const S_FILE = 'secret-2-recipients.tza';
  const S = validBytes(S_FILE);
  const { entries, mtime } = splitTar(S);
  const [mEntry, recEntry, secEntry, sigEntry] = entries as [
    (typeof entries)[0],
    (typeof entries)[0],
    (typeof entries)[0],
    (typeof entries)[0],
  ];
  const add = (
    name: string,
    bytes: Uint8Array | undefined,
    c: Omit<FailureCase, 'file' | 'derived_from'> & { derived_from?: string },
  ): void => {
    const file = bytes ? `failures/${name}.tza` : name;
    if (bytes) files.set(file, bytes);
    cases.push({ file, derived_from: c.derived_from ?? S_FILE, ...c });
  };
  const recOff = headerOffset(S, 'record.json');
  const secOff = headerOffset(S, 'secret.bin');
  const sigOff = headerOffset(S, 'signatures.cbor');
  const manifestBytes = mEntry.data;
  const manifest = decodeCbor(manifestBytes) as Record<string, CborValue>;

  // truncation
  for (const [label, at] of [
    ['empty', 0],
    ['100', 100],
    ['512', 512],
    ['before-signatures', sigOff],
    ['no-end-marker', S.length - 2 * BLOCK],
    ['half-end-marker', S.length - BLOCK],
    ['last-byte', S.length - 1],
  ] as const) {
    add(`truncated-${label}`, S.slice(0, at), {
      mutation: `keep only the first ${at} of ${S.length} bytes`,
      expect_code: 'TAR_TRUNCATED',
    });
  }

  // single bit flips
  const scopeAt = indexOf(S, utf8('pypi:upload:acme-lib'), 512);
  add('bitflip-manifest-meta', flipBit(S, scopeAt, 0), {
    mutation: `flip bit 0 of byte ${scopeAt} (first byte of the meta.scope text in manifest.cbor: "p" -> "q"); still a valid manifest, only the signature catches it`,
    expect_code: 'SIGNATURE_INVALID',
  });
  const storedSha = getProvider().sha256(secEntry.data);
  const shaAt = indexOf(S, storedSha, 512);
  add('bitflip-manifest-sha256', flipBit(S, shaAt, 0), {
    mutation: `flip bit 0 of byte ${shaAt} (first byte of entries[1].sha256 in manifest.cbor)`,
    expect_code: 'DIGEST_MISMATCH',
  });
  add('bitflip-manifest-head', flipBit(S, 512, 0), {
    mutation: `flip bit 0 of byte 512 (the manifest's map head 0xa7 -> 0xa6: one pair fewer, so bytes are left over)`,
    expect_code: 'CBOR_TRAILING_BYTES',
  });
  add('bitflip-payload', flipBit(S, secOff + BLOCK + 100, 3), {
    mutation: `flip bit 3 of byte ${secOff + BLOCK + 100} (byte 100 of the sealed secret.bin ciphertext)`,
    expect_code: 'DIGEST_MISMATCH',
  });
  const sigAt = sigOff + BLOCK + sigEntry.data.length - 64;
  add('bitflip-signature', flipBit(S, sigAt, 0), {
    mutation: `flip bit 0 of byte ${sigAt} (first byte of the 64-byte Ed25519 signature in signatures.cbor)`,
    expect_code: 'SIGNATURE_INVALID',
  });
  const signedAtAt = indexOf(S, utf8('2026-11-28T12:00:00.000Z'), sigOff + BLOCK);
  add('bitflip-signature-protected', flipBit(S, signedAtAt + 3, 1), {
    mutation: `flip bit 1 of byte ${signedAtAt + 3} (signed_at "2026-…" -> "2024-…" in the protected header of the COSE_Sign1)`,
    expect_code: 'SIGNATURE_INVALID',
  });

  // entry-level structure
  const mk = (list: typeof entries): Uint8Array => joinTar(list);
  add('reordered-entries', mk([mEntry, secEntry, recEntry, sigEntry]), {
    mutation: 'swap the record.json and secret.bin entries (headers and data unchanged)',
    expect_code: 'ENTRY_ORDER',
  });
  const extra = utf8('not listed in the manifest\n');
  add(
    'extra-entry',
    mk([
      mEntry,
      recEntry,
      secEntry,
      { name: 'extra.txt', header: header('extra.txt', extra.length, mtime), data: extra },
      sigEntry,
    ]),
    {
      mutation: 'insert a canonical entry extra.txt (27 bytes) before signatures.cbor',
      expect_code: 'ENTRY_UNEXPECTED',
    },
  );
  add('missing-entry', mk([mEntry, recEntry, sigEntry]), {
    mutation: 'remove the secret.bin entry',
    expect_code: 'ENTRY_MISSING',
  });
  add('missing-signatures', mk([mEntry, recEntry, secEntry]), {
    mutation: 'remove the signatures.cbor entry',
    expect_code: 'SIGNATURE_MISSING',
  });
  add('manifest-not-first', mk([recEntry, mEntry, secEntry, sigEntry]), {
    mutation: 'swap the manifest.cbor and record.json entries',
    expect_code: 'MANIFEST_MISSING',
  });
  add('duplicate-names', mk([mEntry, recEntry, recEntry, secEntry, sigEntry]), {
    mutation: 'repeat the record.json entry (header and data) right after itself',
    expect_code: 'TAR_DUPLICATE_ENTRY',
  });

  // data after the end of the archive
  add('trailing-zero-block', concatBytes(S, new Uint8Array(BLOCK)), {
    mutation: 'append a third zero block of 512 bytes',
    expect_code: 'TAR_TRAILING_DATA',
  });
  add(
    'trailing-entry',
    concatBytes(
      S,
      header('extra.txt', extra.length, mtime),
      extra,
      new Uint8Array(BLOCK - extra.length),
    ),
    {
      mutation:
        'append a canonical tar entry extra.txt (header + padded data) after the end-of-archive marker',
      expect_code: 'TAR_TRAILING_DATA',
    },
  );
  add('trailing-byte', concatBytes(S, Uint8Array.of(0)), {
    mutation: 'append one zero byte (the length is no longer a multiple of 512)',
    expect_code: 'TAR_TRUNCATED',
  });

  // unsafe tar entries, each with a correct checksum
  const renamed = (name: string): typeof recEntry => ({
    name,
    header: header(name, recEntry.data.length, mtime),
    data: recEntry.data,
  });
  add('path-traversal', mk([mEntry, renamed('../evil'), secEntry, sigEntry]), {
    mutation:
      'rename the record.json tar entry to "../evil" (canonical header, checksum recomputed)',
    expect_code: 'TAR_PATH_UNSAFE',
  });
  add('absolute-path', mk([mEntry, renamed('/etc/passwd'), secEntry, sigEntry]), {
    mutation:
      'rename the record.json tar entry to "/etc/passwd" (canonical header, checksum recomputed)',
    expect_code: 'TAR_PATH_UNSAFE',
  });
  const symlink = header('link', 0, mtime, (h) => {
    h[156] = 0x32; // '2'
    h.set(utf8('/etc/passwd'), 157);
  });
  add(
    'symlink-entry',
    mk([mEntry, recEntry, secEntry, { name: 'link', header: symlink, data: EMPTY }, sigEntry]),
    {
      mutation:
        'insert before signatures.cbor a symlink entry "link" -> "/etc/passwd" (typeflag \'2\', linkname set, checksum recomputed)',
      expect_code: 'TAR_ENTRY_TYPE',
    },
  );
  const dir = header('dir/', 0, mtime, (h) => {
    h[156] = 0x35; // '5'
    h.set(utf8('0000755\0'), 100);
  });
  add(
    'directory-entry',
    mk([mEntry, recEntry, secEntry, { name: 'dir/', header: dir, data: EMPTY }, sigEntry]),
    {
      mutation:
        'insert before signatures.cbor a directory entry "dir/" (typeflag \'5\', mode 0000755, checksum recomputed)',
      expect_code: 'TAR_ENTRY_TYPE',
    },
  );

  // tar header canonicality
  const withHeader = (i: number, patch: (h: Uint8Array) => void, fix = true): Uint8Array => {
    const list = entries.map((e) => ({ ...e, header: e.header.slice() }));
    patch(list[i]!.header);
    if (fix) fixChecksum(list[i]!.header);
    return mk(list);
  };
  add(
    'bad-tar-checksum',
    withHeader(0, (h) => (h[153] = h[153] === 0x30 ? 0x31 : 0x30), false),
    {
      mutation: 'change the last octal digit of the manifest.cbor header checksum (byte 153)',
      expect_code: 'TAR_CHECKSUM',
    },
  );
  const padAt = recOff + BLOCK + paddedSize(recEntry.data.length) - 1;
  const padded = S.slice();
  padded[padAt] = 0x01;
  add('nonzero-padding', padded, {
    mutation: `set byte ${padAt} (the last padding byte after record.json's data) to 0x01`,
    expect_code: 'TAR_NON_CANONICAL',
  });
  const setMtime = (h: Uint8Array, t: number): void => {
    h.set(utf8(t.toString(8).padStart(11, '0') + '\0'), 136);
  };
  add(
    'mtime-not-created-at',
    mk(entries.map((e) => ({ ...e, header: header(e.name, e.data.length, mtime + 1) }))),
    {
      mutation: `set the mtime of every header to created_at + 1 s (${mtime + 1}), checksums recomputed`,
      expect_code: 'TAR_NON_CANONICAL',
    },
  );
  add(
    'mtime-mixed',
    withHeader(1, (h) => setMtime(h, mtime + 1)),
    {
      mutation: `set the mtime of the record.json header only to created_at + 1 s (${mtime + 1}), checksum recomputed`,
      expect_code: 'TAR_NON_CANONICAL',
    },
  );
  add(
    'gnu-magic',
    withHeader(0, (h) => h.set(utf8('ustar  \0'), 257)),
    {
      mutation:
        'replace the POSIX magic "ustar\\0" "00" of the manifest.cbor header with the GNU "ustar  \\0", checksum recomputed',
      expect_code: 'TAR_MALFORMED',
    },
  );
  add(
    'ustar-prefix',
    withHeader(1, (h) => h.set(utf8('x'), 345)),
    {
      mutation:
        'put "x" in the ustar prefix field (byte 345) of the record.json header, checksum recomputed',
      expect_code: 'TAR_NON_CANONICAL',
    },
  );
  add(
    'uname-set',
    withHeader(1, (h) => h.set(utf8('root'), 265)),
    {
      mutation:
        'put "root" in the uname field (byte 265) of the record.json header, checksum recomputed',
      expect_code: 'TAR_NON_CANONICAL',
    },
  );

  // re-signed manifests: only the manifest's form is wrong
  const alice = actor('alice');
  const pairs = Object.entries(manifest);
  const reordered = mapInOrder([
    pairs.find(([k]) => k === 'format')!,
    ...pairs.filter(([k]) => k !== 'format'),
  ]);
  add('noncanonical-manifest-key-order', resign(S, reordered, [alice]), {
    mutation:
      'manifest.cbor re-encoded with the "format" key first (keys not in bytewise order), re-signed by alice',
    expect_code: 'CBOR_NON_CANONICAL',
  });
  const sizeKey = indexOf(manifestBytes, encodeCbor('size'));
  const sizeVal = manifestBytes[sizeKey + 5]!;
  if (sizeVal !== 0x18) throw new Error('expected a one-byte size argument');
  const widened = concatBytes(
    manifestBytes.subarray(0, sizeKey + 5),
    cborHead(0, manifestBytes[sizeKey + 6]!, 2),
    manifestBytes.subarray(sizeKey + 7),
  );
  add('noncanonical-manifest-long-int', resign(S, widened, [alice]), {
    mutation: `manifest.cbor with entries[0].size (${recEntry.data.length}) written as 0x19 + 2 bytes instead of 0x18 + 1 byte, re-signed by alice`,
    expect_code: 'CBOR_NON_CANONICAL',
  });
  const metaEnc = concatBytes(encodeCbor('meta'), encodeCbor(manifest['meta']!));
  const metaAt = indexOf(manifestBytes, metaEnc);
  const metaIndef = concatBytes(
    manifestBytes.subarray(0, metaAt + 5),
    Uint8Array.of(0xbf),
    metaEnc.subarray(6),
    Uint8Array.of(0xff),
    manifestBytes.subarray(metaAt + metaEnc.length),
  );
  add('noncanonical-manifest-indefinite', resign(S, metaIndef, [alice]), {
    mutation:
      'manifest.cbor with the meta map written with an indefinite length (0xbf … 0xff), re-signed by alice',
    expect_code: 'CBOR_NON_CANONICAL',
  });
  add('unknown-version', resign(S, encodeCbor({ ...manifest, format: 'tza/2' }), [alice]), {
    mutation: 'manifest.cbor with format "tza/2" (canonically encoded), re-signed by alice',
    expect_code: 'UNKNOWN_VERSION',
  });
  add('unknown-field', resign(S, encodeCbor({ ...manifest, comment: 'hello' }), [alice]), {
    mutation:
      'manifest.cbor with an extra top-level field comment: "hello" (canonically encoded), re-signed by alice',
    expect_code: 'MANIFEST_INVALID',
  });
  add('tbz-magic', concatBytes(utf8('TBZ'), S.subarray(3)), {
    mutation: 'overwrite the first three bytes with "TBZ" (the family\'s TBZ magic)',
    expect_code: 'UNKNOWN_FORMAT',
  });

  // keys and trust
  add(S_FILE, undefined, {
    derived_from: S_FILE,
    mutation: 'none: opened with carol, who is not a recipient',
    expect_code: 'NOT_A_RECIPIENT',
    open_as: 'carol',
    verify_valid: true,
  });
  const impostorSigned = packTza(
    {
      kind: 'secret',
      meta: { issuer: 'jis:acme:alice', scope: 'pypi:upload:acme-lib' },
      entries: [
        { name: 'record.json', data: RECORD, mediaType: 'application/json' },
        { name: 'secret.bin', data: SECRET, sealed: true },
      ],
      recipients: [actor('alice'), actor('bob')],
      signers: [actor('impostor')],
    },
    { clock, random: seededRandom('tza-vector:secret-2-recipients') },
  );
  add('untrusted-signer', impostorSigned, {
    mutation:
      'packed like secret-2-recipients.tza but signed by "impostor" (claims jis:acme:alice, other key); verified with trust = [alice]',
    expect_code: 'SIGNER_UNTRUSTED',
    trust: ['alice'],
  });
  add('capsule-cosigned.tza', undefined, {
    derived_from: 'capsule-cosigned.tza',
    mutation: 'none: verified with trust = [carol], who signed nothing',
    expect_code: 'SIGNER_UNTRUSTED',
    trust: ['carol'],
  });

  // limits
  add('large-chunked.tza', undefined, {
    derived_from: 'large-chunked.tza',
    mutation: 'none: read with limits.maxEntrySize = 65536 (the entry stores 200064 bytes)',
    expect_code: 'LIMIT_EXCEEDED',
    limits: { maxEntrySize: 65536 },
  });
  add(S_FILE, undefined, {
    mutation: `none: read with limits.maxTotalSize = 2048 (the bundle is ${S.length} bytes)`,
    expect_code: 'LIMIT_EXCEEDED',
    limits: { maxTotalSize: 2048 },
  });
  return { cases, files };
}

const failures = buildFailures();

// ---------------------------------------------------------------------------------------
// metadata files

function identitiesJson(): unknown {
  const names = Object.keys(ACTORS) as ActorName[];
  return {
    note: 'TEST IDENTITIES ONLY. Their private keys derive from public seeds and are listed so that a second implementation can open the vectors; never use them for anything else.',
    derivation:
      'testIdentity from @tibet/core/testing: bytes = ChaCha20 keystream (RFC 8439, 12-byte zero nonce, counter 0) under SHA-256(utf8(seed)); the first 32 bytes are the Ed25519 seed (RFC 8032), the next 32 the X25519 secret key (RFC 7748). created_at 2026-01-01T00:00:00.000Z.',
    actors: Object.fromEntries(
      names.map((n) => {
        const id = actor(n);
        const s = id.exportSecrets();
        return [
          n,
          {
            seed: seedOf(n),
            key_id: keyIdOf(id.signingPublicKey),
            public: id.public,
            test_secrets: {
              ed25519_seed: toHex(s.signingSeed),
              x25519_secret: toHex(s.encryptionSecret),
            },
          },
        ];
      }),
    ),
  };
}

function vectorsJson(): unknown {
  return {
    format: 'tza/1',
    valid: VALID.map((v) => {
      const bytes = validBytes(v.file);
      const i = inspectTza(bytes);
      return {
        file: v.file,
        sha256: sha256hex(bytes),
        size: bytes.length,
        bundle_id: i.bundleId,
        kind: i.kind,
        created_at: i.createdAt,
        signers: i.signers.map((s, k) => ({
          actor: v.signers[k],
          signer: s.signer,
          kid: s.kid,
          signed_at: s.signedAt,
        })),
        recipients: v.recipients,
        entries: i.entries.map((e) => ({
          name: e.name,
          media_type: e.mediaType,
          sealed: e.sealed,
          stored_size: e.size,
          stored_sha256: e.sha256,
          plain_size: e.plainSize,
          plain_sha256: sha256hex(v.plaintexts[e.name]!),
          ...(e.sealed ? { chunks: Math.max(1, Math.ceil(e.plainSize / 65536)) } : {}),
        })),
      };
    }),
  };
}

const json = (v: unknown): Uint8Array => utf8(JSON.stringify(v, null, 2) + '\n');

const ALL = new Map<string, Uint8Array>([
  ...VALID.map((v) => [v.file, validBytes(v.file)] as [string, Uint8Array]),
  ...failures.files,
  ['identities.json', json(identitiesJson())],
  ['vectors.json', json(vectorsJson())],
  [
    'failures.json',
    json({
      format: 'tza/1',
      note: 'open_as defaults to alice; trust names actors in identities.json',
      failures: failures.cases,
    }),
  ],
]);
/** Hand-written files that live beside the generated ones. */
const HAND_WRITTEN = new Set(['README.md', 'support.ts']);

function listFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((d) =>
    d.isDirectory() ? listFiles(join(dir, d.name)) : [relative(DIR, join(dir, d.name))],
  );
}

// ---------------------------------------------------------------------------------------

describe('tza/1 golden vectors', () => {
  if (REGEN) {
    it('regenerates the committed files (TZA_REGEN=1)', () => {
      for (const [file, bytes] of ALL) {
        mkdirSync(dirname(join(DIR, file)), { recursive: true });
        writeFileSync(join(DIR, file), bytes);
      }
    });
  }

  it('has no stale files', () => {
    const stale = listFiles(DIR).filter((f) => !ALL.has(f) && !HAND_WRITTEN.has(f));
    expect(stale).toEqual([]);
  });

  it.each([...ALL.keys()])('%s: freshly packed bytes equal the committed file', (file) => {
    let committed: Uint8Array;
    try {
      committed = new Uint8Array(readFileSync(join(DIR, file)));
    } catch {
      throw new Error(
        `${file} is missing: run TZA_REGEN=1 npx vitest run packages/tza/test/tza-vectors.test.ts`,
      );
    }
    const fresh = ALL.get(file)!;
    expect(committed.length).toBe(fresh.length);
    expect(sha256hex(committed)).toBe(sha256hex(fresh));
  });

  it.each(VALID.map((v) => v.file))('%s: the noble backend packs the same bytes', (file) => {
    const v = VALID.find((x) => x.file === file)!;
    expect(sha256hex(v.build(getProvider('noble')))).toBe(sha256hex(validBytes(file)));
  });

  it('the README names every file', () => {
    const readme = readFileSync(join(DIR, 'README.md'), 'utf8');
    for (const file of ALL.keys()) expect(readme, file).toContain(file.replace(/^failures\//, ''));
  });

  it.each(VALID.map((v) => v.file))(
    '%s: committed file verifies and opens for every recipient',
    (file) => {
      const v = VALID.find((x) => x.file === file)!;
      const bytes = new Uint8Array(readFileSync(join(DIR, file)));
      const expected = (
        JSON.parse(readFileSync(join(DIR, 'vectors.json'), 'utf8')) as {
          valid: {
            file: string;
            entries: { name: string; plain_sha256: string; chunks?: number }[];
          }[];
        }
      ).valid.find((x) => x.file === file)!;
      const trust = v.signers.map((n) => actor(n).signingPublicKey);
      const ids = v.signers.map((n) => ACTORS[n].id);
      for (const provider of [getProvider('node'), getProvider('noble')]) {
        const r = verifyTza(bytes, { trust, requireSigners: ids, provider });
        expect(r).toMatchObject({ valid: true, signersPinned: true });
        expect(r.signers.map((s) => s.signer)).toEqual(ids);
        for (const who of v.recipients.length ? v.recipients : (['carol'] as ActorName[])) {
          const o = openTza(bytes, actor(who, provider), { trust, provider });
          expect(o.entries.map((e) => e.name)).toEqual(expected.entries.map((e) => e.name));
          for (const e of o.entries) {
            const want = expected.entries.find((x) => x.name === e.name)!;
            expect(sha256hex(e.data), `${file} ${e.name} as ${who}`).toBe(want.plain_sha256);
            expect(equalBytes(e.data, v.plaintexts[e.name]!)).toBe(true);
          }
          o.destroy();
        }
      }
    },
  );

  it('large-chunked.tza stores 4 chunks of 64 KiB + 16-byte tags; empty-sealed.tza one 16-byte tag', () => {
    const large = readTza(validBytes('large-chunked.tza'));
    expect(large.manifest.entries[0]).toMatchObject({
      plain_size: 200_000,
      size: 200_000 + 4 * 16,
    });
    const empty = readTza(validBytes('empty-sealed.tza'));
    expect(empty.manifest.entries[0]).toMatchObject({ plain_size: 0, size: 16 });
    const capsule = readTza(validBytes('capsule-cosigned.tza'));
    expect(capsule.signatures.map((s) => s.header.signedAt)).toEqual([
      '2026-11-28T12:00:00.000Z',
      '2026-11-28T12:05:00.000Z',
    ]);
  });

  it('every expect-failure file is listed once in failures.json', () => {
    const listed = failures.cases.map((c) => c.file).filter((f) => f.startsWith('failures/'));
    expect(new Set(listed).size).toBe(listed.length);
    expect([...failures.files.keys()].sort()).toEqual([...listed].sort());
  });

  const table = failures.cases;

  it.each(
    table.map(
      (c, i) =>
        [
          `${c.file} [${c.expect_code}${c.limits ? ' limits' : ''}${c.trust ? ' trust' : ''}${c.open_as ? ` open_as ${c.open_as}` : ''}]`,
          i,
        ] as const,
    ),
  )('failure %s', (_label, i) => {
    const c = table[i]!;
    const bytes = new Uint8Array(readFileSync(join(DIR, c.file)));
    for (const provider of [getProvider('node'), getProvider('noble')]) {
      const opts: VerifyOptions = {
        provider,
        ...(c.trust ? { trust: c.trust.map((n) => actor(n).signingPublicKey) } : {}),
        ...(c.limits ? { limits: c.limits } : {}),
      };
      const report = verifyTza(bytes, opts);
      if (c.verify_valid) expect(report.valid).toBe(true);
      else expect(report, c.mutation).toMatchObject({ valid: false, code: c.expect_code });
      let thrown: unknown;
      try {
        openTza(bytes, actor(c.open_as ?? 'alice', provider), opts).destroy();
      } catch (e) {
        thrown = e;
      }
      expect(TzaError.is(thrown), `openTza must throw a TzaError for ${c.file}`).toBe(true);
      expect((thrown as TzaError).code).toBe(c.expect_code);
    }
  });

  it('failure vectors differ from their source only as described (spot checks)', () => {
    // sanity of the derivations themselves, so a wrong mutation cannot pass by accident
    const s = validBytes('secret-2-recipients.tza');
    const meta = failures.files.get('failures/bitflip-manifest-meta.tza')!;
    let diff = 0;
    for (let i = 0; i < s.length; i++) if (s[i] !== meta[i]) diff++;
    expect(diff).toBe(1);
    const trav = failures.files.get('failures/path-traversal.tza')!;
    expect(trav.length).toBe(s.length);
    const at = headerOffset(s, 'record.json');
    expect(trav.subarray(at, at + 8)).toEqual(utf8('../evil\0'));
  });
});
