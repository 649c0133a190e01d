/**
 * The walk's signature and inclusion checks give the same graph on worker threads as on the
 * calling thread — for a sound log and for one with a forged signature; the signing inputs
 * and token hashes it cuts from the log lines are the re-serialised ones; the queue of checks
 * gives each job its own result however the jobs arrive; every inclusion proof is checked in
 * full, however much of its path it shares with the proofs checked before it.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  IdentityRegistry,
  concatBytes,
  fixedClock,
  fromBase64Url,
  fromUtf8,
  getProvider,
  mintToken,
  sha256Hex,
  systemClock,
  tokenHash,
  tokenSigningInput,
} from '@tibet/core';
import { seededRandom, testIdentity } from '@tibet/core/testing';
import { AuditLog, lineHash, listSegments, verifyInclusion } from '@tibet/continuityd';
import { ensureBuilt } from '../../../test/support/build-dist.js';
import { renderHtml, walk, walkHtml, type GraphNode } from '../src/index.js';
import { loadLog, type LogLine } from '../src/log-read.js';
import {
  INC_DONE,
  INC_OK,
  MIN_PARALLEL_JOBS,
  NodeChecks,
  SIG_DONE,
  SIG_OK,
  startNodeChecks,
  type NodeCheckJob,
} from '../src/node-checks.js';
import { lineTokenHash, signatureBytes, signingInputOfLine } from '../src/walk.js';

const alice = testIdentity('jis:acme:alice', 'human');
const logKey = testIdentity('jis:acme:auditlog', 'system');
const directory = new IdentityRegistry();
directory.add(alice);
const N = MIN_PARALLEL_JOBS + 88;
const now = new Date('2026-12-01T00:00:00Z');
const now0 = fixedClock(new Date('2026-12-01T00:00:00Z'));
let dir: string;

beforeAll(async () => {
  // the workers run the built module (dist/node-checks.js)
  ensureBuilt(['core', 'tza', 'continuityd', 'keychain', 'cbom']);
  dir = mkdtempSync(join(tmpdir(), 'tibet-cbom-checks-'));
  const log = await AuditLog.open({
    dir,
    signer: logKey,
    registry: directory,
    clock: systemClock,
  });
  const random = seededRandom('cbom-node-checks');
  const pending: Promise<unknown>[] = [];
  for (let i = 0; i < N; i++) {
    const id = `sec_checks_${String(i).padStart(6, '0')}`;
    const t = mintToken(
      {
        actor: alice.id,
        actorClass: 'human',
        event: 'secret-imported',
        // every fifth reason is not ASCII: its line's bytes and characters differ in number
        erachter: i % 5 ? `test secret ${i}` : `tëst sécret ${i} — 🔑 «Schlüssel»`,
        erin: { secret_id: id, secret_type: 'api_key', version: 1 },
        eraan: [{ object_id: id }],
      },
      alice,
      { clock: fixedClock(new Date(Date.UTC(2026, 0, 1, 0, 0, i))), random },
    );
    pending.push(log.append(t, { objectId: id }));
  }
  await Promise.all(pending);
  await log.checkpoint();
  await log.close();
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

const both = async () => {
  const o = { logDir: dir, directory, subject: 'home', store: 'none' as const, now };
  const inline = await walk({ ...o, workers: 0 });
  const parallel = await walk({ ...o, workers: 1 });
  // walkHtml builds the page while the checks run and puts their results in at the end: the
  // same graph, and the page renderHtml gives for it afterwards, byte for byte
  let page = '';
  for (const workers of [0, 1]) {
    const { graph, html } = await walkHtml({ ...o, workers });
    expect(graph).toEqual(inline);
    expect(html).toBe(renderHtml(inline));
    page = html;
  }
  return [inline, parallel, page] as const;
};

/** The data block of a page. */
const pageData = (html: string): { checks: GraphNode['checks'][]; format: string } =>
  JSON.parse(
    /<script type="application\/json" id="tibet-data">([^]*?)<\/script>/.exec(html)![1]!,
  ) as { checks: GraphNode['checks'][]; format: string };

describe('node checks on worker threads', () => {
  it('starts workers for a large graph with a stock backend, none for a small one', async () => {
    const big = startNodeChecks(
      Array.from({ length: MIN_PARALLEL_JOBS }, () => ({})),
      getProvider(),
      undefined,
      1,
    );
    expect(big.workers).toBe(1);
    expect(await big.finish()).toHaveLength(MIN_PARALLEL_JOBS);
    const small = startNodeChecks([{}], getProvider(), undefined, 1);
    expect(small.workers).toBe(0);
  });

  it('cuts from each log line the signing input and token hash the token re-serialised has', async () => {
    const p = getProvider();
    const log = await loadLog(dir, p);
    expect(log.lines).toHaveLength(N);
    const whole = (x: Uint8Array | Uint8Array[] | undefined): Uint8Array | undefined =>
      x === undefined || x instanceof Uint8Array ? x : concatBytes(...x);
    let parts = 0;
    for (const line of log.lines) {
      const t = line.record!.token;
      const input = signingInputOfLine(line);
      if (Array.isArray(input)) parts++;
      expect(whole(input)).toEqual(tokenSigningInput(t));
      expect(lineTokenHash(line, p)).toBe(tokenHash(t, p));
      expect(line.hash).toBe(lineHash(line.bytes, p));
      expect(sha256Hex(line.bytes, getProvider('noble'))).toBe(line.hash);
    }
    expect(parts).toBe(N); // straight from the bytes, non-ASCII lines included
    expect(log.lines.filter((l) => l.bytes.length !== l.text.length)).toHaveLength(
      Math.ceil(N / 5),
    );
    // a line whose bytes are not exactly its text (a byte order mark the decoder dropped):
    // cut from the text instead, with the same result
    const { tokenHash: _hash, span: _span, ...src } = log.lines[5]!;
    const bom: LogLine = {
      ...src,
      bytes: concatBytes(Uint8Array.of(0xef, 0xbb, 0xbf), src.bytes),
      exact: false,
    };
    expect(whole(signingInputOfLine(bom))).toEqual(tokenSigningInput(src.record!.token));
    expect(lineTokenHash(bom, p)).toBe(tokenHash(src.record!.token, p));
    // a line not in the usual shape is left to re-serialisation
    expect(signingInputOfLine({ ...src, text: `${src.text} ` })).toBeUndefined();
    // a token whose signature or timestamp is not where the line has them (each piece of
    // `,"signature":"…"` and `,"timestamp":…,"typ":…}` is compared): left to re-serialisation
    const t = src.record!.token;
    const other = (o: Partial<typeof t>): LogLine => ({
      ...src,
      record: { ...src.record!, token: { ...t, ...o } },
    });
    const flip = (s: string, i: number): string =>
      s.slice(0, i) + (s[i] === 'A' ? 'B' : 'A') + s.slice(i + 1);
    for (const o of [
      { signature: flip(t.signature, 0) },
      { signature: flip(t.signature, t.signature.length - 1) },
      { signature: t.signature.slice(1) },
      { signature: `${t.signature}A` },
      { timestamp: t.timestamp.replace('Z', '+00:00') },
      { timestamp: `${t.timestamp.slice(0, -1)}1Z` },
    ])
      expect(signingInputOfLine(other(o))).toBeUndefined();
    const at = src.text.indexOf(`,"signature":"${t.signature}"`);
    const unquoted = { ...src, text: `${src.text.slice(0, at + 100)}x${src.text.slice(at + 101)}` };
    expect(signingInputOfLine(unquoted)).toBeUndefined(); // its closing quote
    const typ = src.text.lastIndexOf('"typ"');
    expect(
      signingInputOfLine({
        ...src,
        text: `${src.text.slice(0, typ)}"tip"${src.text.slice(typ + 5)}`,
      }),
    ).toBeUndefined();
  });

  it("reads each line's text as its own strict UTF-8 decoding ('' and LOG_LINE_MALFORMED when it is not UTF-8)", async () => {
    const p = getProvider();
    const src = await loadLog(dir, p);
    const segs = await listSegments(dir);
    const first = (k: number): Uint8Array => src.lines[k]!.bytes;
    const nl = Uint8Array.of(0x0a);
    const write = (lines: Uint8Array[], torn: Uint8Array): string => {
      const d = mkdtempSync(join(tmpdir(), 'tibet-cbom-text-'));
      writeFileSync(join(d, 'log.json'), readFileSync(join(dir, 'log.json')));
      const seg0 = join(d, 'segments');
      mkdirSync(seg0);
      writeFileSync(
        join(seg0, segs[0]!.path.slice(segs[0]!.path.lastIndexOf('/') + 1)),
        concatBytes(...lines.flatMap((l) => [l, nl]), torn),
      );
      return d;
    };
    const nonAscii = src.lines.findIndex((l) => l.bytes.length !== l.text.length);
    expect(nonAscii).toBeGreaterThanOrEqual(0);
    const bom = concatBytes(Uint8Array.of(0xef, 0xbb, 0xbf), first(1));
    const dirs: string[] = [];
    try {
      // valid UTF-8 throughout (a BOM kept, a non-ASCII line; a torn tail that is not UTF-8)
      const ok = [first(0), bom, first(nonAscii), first(2)];
      // one line that is not UTF-8: the others are read as ever
      const bad = [first(0), Uint8Array.of(0x7b, 0xff, 0x7d), bom, first(nonAscii)];
      for (const lines of [ok, bad]) {
        const d = write(lines, Uint8Array.of(0x7b, 0xe2, 0x82));
        dirs.push(d);
        const log = await loadLog(d, p);
        expect(log.lines.map((l) => l.text)).toEqual(
          lines.map((l) => {
            try {
              return fromUtf8(l);
            } catch {
              return '';
            }
          }),
        );
        expect(log.lines.map((l) => l.bytes)).toEqual(lines);
      }
      const damaged = await loadLog(dirs[1]!, p);
      expect(
        damaged.problems.filter((x) => x.code === 'LOG_LINE_MALFORMED').map((x) => x.detail),
      ).toEqual([expect.stringMatching(/^line 1 /), expect.stringMatching(/^line 2 /)]);
    } finally {
      for (const d of dirs) rmSync(d, { recursive: true, force: true });
    }
    expect(dirs).toHaveLength(2);
  });

  it('reads an ASCII segment as one text (each line a slice of it, the same as its own decoding) into shared memory', async () => {
    const p = getProvider();
    const d = mkdtempSync(join(tmpdir(), 'tibet-cbom-ascii-'));
    try {
      const log = await AuditLog.open({ dir: d, signer: logKey, registry: directory, clock: now0 });
      const random = seededRandom('cbom-ascii');
      for (let i = 0; i < 6; i++) {
        const id = `sec_ascii_${i}`;
        const t = mintToken(
          {
            actor: alice.id,
            actorClass: 'human',
            event: 'secret-imported',
            erachter: `ascii secret ${i}`,
            erin: { secret_id: id, secret_type: 'api_key', version: 1 },
            eraan: [{ object_id: id }],
          },
          alice,
          { clock: fixedClock(new Date(Date.UTC(2026, 0, 1, 0, 0, i))), random },
        );
        await log.append(t, { objectId: id });
      }
      await log.checkpoint();
      await log.close();
      const read = await loadLog(d, p);
      expect(read.problems).toEqual([]);
      expect(read.lines).toHaveLength(6);
      for (const l of read.lines) {
        expect(l.bytes.length).toBe(l.text.length); // ASCII
        expect(l.text).toBe(fromUtf8(l.bytes));
        expect(l.bytes.buffer).toBeInstanceOf(SharedArrayBuffer);
        expect(l.exact).toBe(true);
      }
      const seg = readFileSync((await listSegments(d))[0]!.path);
      expect(concatBytes(...read.lines.flatMap((l) => [l.bytes, Uint8Array.of(0x0a)]))).toEqual(
        new Uint8Array(seg),
      );
      // a graph of one secret (few of the log's lines: their texts are copied out of the
      // segment's) and of the whole log: every check passes, each node carries its line
      for (const subject of ['sec_ascii_4', 'home']) {
        const g = await walk({ logDir: d, directory, subject, store: 'none', now, workers: 0 });
        expect(g.nodes).toHaveLength(subject === 'home' ? 6 : 1);
        for (const n of g.nodes) {
          expect(n.checks).toMatchObject({ signature: 'pass', chain: 'pass', inclusion: 'pass' });
          const src = n.source as { kind: 'log'; index: number; line: string };
          expect(src.line).toBe(read.lines[src.index]!.text);
        }
        expect((await walkHtml({ logDir: d, directory, subject, store: 'none', now })).html).toBe(
          renderHtml(g),
        );
      }
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });

  it("decodes a log token's signature as fromBase64Url does, and only its canonical form", () => {
    const t = mintToken(
      { actor: alice.id, actorClass: 'human', event: 'x', erachter: 'sig' },
      alice,
      {
        clock: fixedClock(now),
        random: seededRandom('cbom-sig'),
      },
    );
    expect(signatureBytes(t.signature)).toEqual(fromBase64Url(t.signature, 'signature'));
    const last = t.signature.slice(0, 85);
    for (const other of [
      `${last}B`, // low bits set: not canonical
      `${last}=`,
      t.signature.slice(0, 85),
      `${t.signature}A`,
      `${last.slice(0, 84)}+${t.signature[85]}`,
      '',
    ]) {
      expect(signatureBytes(other)).toBeUndefined();
      expect(() => {
        const b = fromBase64Url(other, 'signature');
        if (b.length !== 64) throw new RangeError('not 64 bytes');
      }).toThrow();
    }
  });

  it('each job gets its own result, however the jobs arrive (streamed, in batches, early start)', async () => {
    const p = getProvider();
    const t = mintToken(
      { actor: alice.id, actorClass: 'human', event: 'x', erachter: 'queue test' },
      alice,
      { clock: fixedClock(now), random: seededRandom('cbom-queue') },
    );
    const input = tokenSigningInput(t);
    const sharedInput = new Uint8Array(new SharedArrayBuffer(input.length + 16), 16, input.length);
    sharedInput.set(input);
    const good = fromBase64Url(t.signature, 'signature');
    const bad = good.slice();
    bad[7] = bad[7]! ^ 1;
    const key = alice.signingPublicKey;
    const run = async (
      n: number,
      workers: number,
      early: boolean,
      help?: { end: number; leave: number },
    ) => {
      const c = new NodeChecks(p, workers);
      if (early) c.prestart();
      const want: boolean[] = [];
      for (let i = 0; i < n; i++) {
        const ok = i % 7 !== 3;
        want.push(ok);
        // a signing input whole, or in parts; copied into the batch, or read in place from
        // shared memory (as the walk's log segments are), or both
        const from = i % 3 === 0 ? sharedInput : input;
        const parts =
          i % 2
            ? from
            : i % 4
              ? [from.subarray(0, 100), from.subarray(100)]
              : [sharedInput.subarray(0, 7), input.subarray(7, 100), sharedInput.subarray(100)];
        expect(c.add({ sig: { key, input: parts, signature: ok ? good : bad } })).toBe(i);
        if (i === 700) c.flush();
      }
      // this thread helps first with the jobs below `end`, leaving the last of them to the
      // workers (as a walk does before it builds its page)
      if (help) c.help(help.end, help.leave);
      const started = c.workers;
      const bits = await c.finish();
      expect(Array.from(bits, (b) => (b & SIG_DONE ? Boolean(b & SIG_OK) : null))).toEqual(want);
      return started;
    };
    expect(await run(1_300, 1, false)).toBe(1);
    expect(await run(1_300, 1, true)).toBe(1);
    expect(await run(100, 1, true)).toBe(1); // started early, stopped unused
    expect(await run(100, 1, false)).toBe(0);
    expect(await run(600, 0, true)).toBe(0);
    for (const h of [
      { end: 1_300, leave: 0 },
      { end: 1_300, leave: 65 },
      { end: 900, leave: 200 },
      { end: 100, leave: 5_000 },
    ]) {
      expect(await run(1_300, 1, true, h)).toBe(1);
      expect(await run(1_300, 0, false, h)).toBe(0);
    }
  });

  it('every inclusion proof is checked in full, however much it shares with the one before', async () => {
    // (a thread hashes a step of a proof only when its input differs from that step of the
    // proof before: the damaged proofs below share every other step with their neighbours)
    const p = getProvider();
    const log = await loadLog(dir, p);
    const cp = log.checkpoint!;
    const jobs: NodeCheckJob[] = [];
    const want: boolean[] = [];
    for (let i = 0; i < N; i++) {
      const proof = log.inclusion(i)!.map((h) => h.slice());
      let leaf = log.lines[i]!.leaf;
      let index = i;
      switch (i % 11) {
        case 3: // one bit of the hash at one step
          proof[i % proof.length]![i % 32]! ^= 1;
          break;
        case 5: // the top step, which every proof before it had the same
          proof[proof.length - 1]![31]! ^= 0x80;
          break;
        case 7: // the neighbour's leaf, under the neighbour's path above the lowest step
          leaf = log.lines[i ^ 1]!.leaf;
          break;
        case 9: // the neighbour's index
          index = i ^ 1;
          break;
        case 10: // one hash too many, one too few
          if (i % 2) proof.push(proof[0]!);
          else proof.pop();
          break;
      }
      jobs.push({ inclusion: { leaf, index, proof } });
      let ok = true;
      try {
        verifyInclusion(leaf, index, cp.size, proof, cp.rootHash, p);
      } catch {
        ok = false;
      }
      want.push(ok);
    }
    // (every damaged proof fails when checked alone, every other one passes)
    expect(want).toEqual(want.map((_, i) => ![3, 5, 7, 9, 10].includes(i % 11)));
    // the same proofs with their hashes in shared memory, read in place by the threads (as the
    // walk's proofs are, cut from the tree it rebuilt): the same results
    const shared = new Uint8Array(new SharedArrayBuffer(32 * 64 * N));
    let at = 0;
    const inShared = (h: Uint8Array): Uint8Array => {
      shared.set(h, at);
      at += h.length;
      return shared.subarray(at - h.length, at);
    };
    const sharedJobs = jobs.map(({ inclusion: inc }) => ({
      inclusion: { ...inc!, leaf: inShared(inc!.leaf), proof: inc!.proof.map(inShared) },
    }));
    for (const workers of [0, 1])
      for (const list of [jobs, sharedJobs]) {
        const bits = await startNodeChecks(
          list,
          p,
          { root: cp.rootHash, size: cp.size },
          workers,
        ).finish();
        expect(Array.from(bits, (b) => (b & INC_DONE ? Boolean(b & INC_OK) : null))).toEqual(want);
      }
    // (the walk's own leaves and proofs are views of the tree's shared memory)
    expect(log.lines[0]!.leaf.buffer).toBeInstanceOf(SharedArrayBuffer);
    expect(log.inclusion(1)![0]!.buffer).toBe(log.lines[0]!.leaf.buffer);
  });

  it('a sound log: every signature and inclusion proof passes, the same graph either way', async () => {
    const [inline, parallel, page] = await both();
    expect(pageData(page).checks.every((c) => c.signature === 'pass')).toBe(true);
    expect(inline.nodes).toHaveLength(N);
    expect(inline.nodes.every((n) => n.checks.signature === 'pass')).toBe(true);
    expect(inline.nodes.every((n) => n.checks.inclusion === 'pass')).toBe(true);
    expect(parallel).toEqual(inline);
  });

  it('a forged signature on line 300 fails its node, the same graph either way', async () => {
    const seg = (await listSegments(dir))[0]!.path;
    const text = readFileSync(seg, 'utf8');
    const lines = text.split('\n');
    const k = 300;
    const sig = /"signature":"([A-Za-z0-9_-]{86})"/.exec(lines[k]!)![1]!;
    const forged = sig.slice(0, 10) + (sig[10] === 'A' ? 'B' : 'A') + sig.slice(11);
    lines[k] = lines[k]!.replace(sig, forged);
    writeFileSync(seg, lines.join('\n'));
    try {
      const [inline, parallel, page] = await both();
      expect(parallel).toEqual(inline);
      const bad = inline.nodes.filter((n) => n.checks.signature === 'fail');
      expect(bad.map((n) => n.source)).toEqual([expect.objectContaining({ index: k })]);
      // the page walkHtml built before the results came carries them (its checks table, last)
      const table = pageData(page).checks;
      expect(table).toEqual(inline.nodes.map((n) => n.checks));
      expect(table.filter((c) => c.signature === 'fail')).toHaveLength(1);
      expect(inline.problems.map((p) => p.code)).toContain('SIGNATURE_INVALID');
      // the line changed, so it is no longer the leaf the checkpoint signed
      expect(bad[0]!.checks.inclusion).toBe('fail');
    } finally {
      writeFileSync(seg, text);
    }
  });
});
