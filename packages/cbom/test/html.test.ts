/**
 * The HTML timeline without a browser: the page's own verifier (the exact script text the
 * page inlines, evaluated in Node) against @tibet/core and @tibet/continuityd and their
 * published vectors, on a real home; and renderHtml's output (self-contained, no injection,
 * CSP hashes, options, speed at 10,000 events). The browser side is html-browser.test.ts.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fc, test } from '@fast-check/vitest';
import { canonicalize, getProvider, toBase64 } from '@tibet/core';
import { testIdentity } from '@tibet/core/testing';
import { HTML_FORMAT, jsonForScript, liveEvent, preparePage, renderHtml } from '../src/html.js';
import { walkHtml } from '../src/walk.js';
import { VERIFY_JS } from '../src/html-verify.js';
import { PAGE_CSS, UI_JS } from '../src/html-client.js';
import type { CausalGraph, GraphNode } from '../src/model.js';
import { INJECTION, NOW, cleanup, clone, realHome } from './support/html-home.js';

const ROOT = join(import.meta.dirname, '..', '..', '..');
const vector = <T>(rel: string): T => JSON.parse(readFileSync(join(ROOT, rel), 'utf8')) as T;

type Status = 'pass' | 'fail' | 'unknown';
interface Check {
  status: Status;
  reason: string;
}
interface NodeResult {
  signature: Check;
  inclusion: Check;
  checkpoint?: Check;
  chain: Check;
  status: Status;
}
interface Support {
  sha: boolean;
  ed: boolean;
  reason: string;
}
interface Verifier {
  state: { results: Record<string, NodeResult>; problems: string[] };
  addActor(a: unknown): boolean;
  addCheckpoint(log: unknown): Promise<void>;
  addNodes(nodes: unknown[], edges: unknown[] | null): Promise<void>;
  idle(): Promise<void>;
}
interface TibetVerify {
  canonicalize(v: unknown): string;
  cryptoSupport(): Promise<Support>;
  checkCheckpoint(log: unknown, sup: Support): Promise<Check & { size: number }>;
  checkSignature(node: unknown, actor: unknown, sup: Support): Promise<Check>;
  rootFromProof(
    leaf: Uint8Array,
    index: number,
    size: number,
    proof: Uint8Array[],
  ): Promise<Uint8Array>;
  createVerifier(o: {
    onCheckpoint?: (c: Check) => void;
    onEdges?: (e: unknown[]) => void;
  }): Verifier;
  toHex(b: Uint8Array): string;
  edVerify(pub: Uint8Array, sig: Uint8Array, msg: Uint8Array): Promise<boolean>;
  expandNode(n: unknown): unknown;
  expandData(data: unknown, lines: string): { nodes: unknown[] };
}

/** The page's verifier, from the very text the page inlines; `crypto` can be replaced. */
function loadVerifier(cryptoImpl: unknown = globalThis.crypto): TibetVerify {
  // eslint-disable-next-line @typescript-eslint/no-implied-eval
  const make = new Function('crypto', `${VERIFY_JS}\nreturn TibetVerify;`) as (
    c: unknown,
  ) => TibetVerify;
  return make(cryptoImpl);
}

const TV = loadVerifier();
const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s, 'hex'));
const sha256 = (b: Uint8Array): Uint8Array =>
  Uint8Array.from(createHash('sha256').update(b).digest());

/** Run the verifier over a graph the way the page does; results by action id. */
async function verifyGraph(
  g: CausalGraph,
  tv: TibetVerify = TV,
): Promise<{ results: Record<string, NodeResult>; checkpoint: Check | undefined }> {
  let checkpoint: Check | undefined;
  const v = tv.createVerifier({ onCheckpoint: (c) => (checkpoint = c) });
  for (const a of g.actors) v.addActor(a);
  if (g.log) void v.addCheckpoint(g.log);
  void v.addNodes(g.nodes, g.edges);
  await v.idle();
  expect(v.state.problems).toEqual([]);
  return { results: v.state.results, checkpoint };
}

const byEvent = (g: CausalGraph, event: string): GraphNode => {
  const n = g.nodes.find((x) => x.event === event);
  if (!n) throw new Error(`no ${event} in the graph`);
  return n;
};

describe('TibetVerify.canonicalize (the page’s RFC 8785)', () => {
  it('gives the RFC 8785 vectors (cases and the number table)', () => {
    const v = vector<{
      cases: { name: string; input: string; expected: string }[];
      numbers: { ieee754_hex: string; expected?: string; expect?: string }[];
    }>('packages/core/test/vectors/rfc8785-jcs.json');
    for (const c of v.cases) expect(TV.canonicalize(JSON.parse(c.input)), c.name).toBe(c.expected);
    for (const n of v.numbers) {
      const x = Buffer.from(n.ieee754_hex, 'hex').readDoubleBE(0);
      if (n.expect === 'error') expect(() => TV.canonicalize(x)).toThrow();
      else expect(TV.canonicalize(x), n.ieee754_hex).toBe(n.expected);
    }
  });

  it('escapes, sorts by UTF-16 code units, and rejects what core rejects', () => {
    expect(TV.canonicalize('\b\t\n\f\r"\\/\u0000\u001f\u007f\u2028é😀')).toBe(
      canonicalize('\b\t\n\f\r"\\/\u0000\u001f\u007f\u2028é😀'),
    );
    const o = { '\ufb33': 1, '\u{1f600}': 2, a: 3, B: 4, '10': 5, '9': 6 };
    expect(TV.canonicalize(o)).toBe('{"10":5,"9":6,"B":4,"a":3,"\u{1f600}":2,"\ufb33":1}');
    const proto = JSON.parse('{"__proto__":{"x":1},"a":-0}') as unknown;
    expect(TV.canonicalize(proto)).toBe(canonicalize(proto));
    for (const bad of ['\ud800', 'a\udc00', { ['\udbff']: 1 }, NaN, Infinity, [undefined], 1n])
      expect(() => TV.canonicalize(bad)).toThrow();
    let deep: unknown = 1;
    for (let i = 0; i < 130; i++) deep = [deep];
    expect(() => TV.canonicalize(deep)).toThrow(/128/);
  });

  const anyString = fc.oneof(
    fc.string({ unit: 'grapheme' }),
    fc.string({ unit: 'binary' }), // lone surrogates included
    fc.string({ unit: fc.constantFrom('\u0000', '\u001f', '"', '\\', '\u2028', 'é', '\ud83d') }),
  );
  const anyJson = fc.letrec((tie) => ({
    value: fc.oneof(
      { depthSize: 'small' },
      fc.constant(null),
      fc.boolean(),
      fc.double(),
      fc.integer(),
      anyString,
      fc.array(tie('value')),
      fc.dictionary(anyString, tie('value')),
    ),
  })).value;

  test.prop([anyJson], { numRuns: 800 })('equals core’s canonicalize on random JSON', (v) => {
    let want: string | Error;
    try {
      want = canonicalize(v);
    } catch (e) {
      want = e as Error;
    }
    if (want instanceof Error) expect(() => TV.canonicalize(v)).toThrow();
    else expect(TV.canonicalize(v)).toBe(want);
  });

  test.prop([fc.jsonValue()], { numRuns: 400 })('equals core on fc.jsonValue()', (v) => {
    expect(TV.canonicalize(v)).toBe(canonicalize(v));
  });
});

describe('TibetVerify against the published vectors', () => {
  it('token signatures: the golden token passes, every signature failure fails', async () => {
    const v = vector<{
      identities: Record<string, { signing_key: string; actor_class: string }>;
      cases: {
        name: string;
        api: string;
        key?: string;
        token?: Record<string, unknown>;
        expect: string;
        code?: string;
      }[];
    }>('packages/core/test/vectors/token-cases.json');
    const sup = await TV.cryptoSupport();
    expect(sup).toEqual({ sha: true, ed: true, reason: '' });
    let checked = 0;
    for (const c of v.cases) {
      if (c.api !== 'verifyToken' || !c.token || !c.key) continue;
      const t = c.token;
      const node = {
        action_id: t['action_id'],
        parent_action_id: t['parent_action_id'],
        event: t['event'],
        actor: t['actor'],
        actor_class: t['actor_class'],
        timestamp: t['timestamp'],
        generation: t['generation'],
        reason: t['erachter'],
        decisions: t['policy'],
        token: t,
      };
      const actor = { id: c.key, public_key: v.identities[c.key]!.signing_key };
      const r = await TV.checkSignature(node, actor, sup);
      if (c.expect === 'valid') expect(r.status, c.name).toBe('pass');
      if (c.code === 'TOKEN_SIGNATURE_INVALID')
        expect(r.status, `${c.name}: ${r.reason}`).toBe('fail');
      if (/^signature (padded|in base64|with non-zero)/.test(c.name))
        expect(r.status, c.name).toBe('fail');
      checked++;
    }
    expect(checked).toBeGreaterThanOrEqual(20);
  });

  it('Ed25519: the same verdicts as @tibet/core on the "Taming the many EdDSAs" cases', async () => {
    const v = vector<{
      cases: {
        case: number;
        message: string;
        public_key: string;
        signature: string;
        expect: string;
      }[];
    }>('packages/core/test/vectors/ed25519-speccheck.json');
    const provider = getProvider();
    const accepted: number[] = [];
    for (const c of v.cases) {
      const [pub, sig, msg] = [hex(c.public_key), hex(c.signature), hex(c.message)];
      let core: boolean;
      try {
        core = provider.ed25519Verify(pub, msg, sig);
      } catch {
        core = false;
      }
      const page = await TV.edVerify(pub, sig, msg);
      expect(page, `case ${c.case}`).toBe(core);
      expect(page, `case ${c.case}`).toBe(c.expect === 'accept');
      if (page) accepted.push(c.case);
    }
    expect(accepted).toEqual([2, 3]);
  });

  it('RFC 9162 inclusion proofs: the transparency-dev/merkle vectors', async () => {
    const v = vector<{
      leaf_inputs: string[];
      root_hashes: string[];
      inclusion: { index: number; size: number; proof: string[] }[];
    }>('packages/continuityd/test/vectors/rfc6962-reference.json');
    for (const p of v.inclusion) {
      const leaf = sha256(Uint8Array.from([0, ...hex(v.leaf_inputs[p.index]!)]));
      const root = await TV.rootFromProof(leaf, p.index, p.size, p.proof.map(hex));
      expect(TV.toHex(root)).toBe(v.root_hashes[p.size]);
      if (p.proof.length) {
        const bent = p.proof.map(hex);
        bent[0]![0]! ^= 1;
        expect(TV.toHex(await TV.rootFromProof(leaf, p.index, p.size, bent))).not.toBe(
          v.root_hashes[p.size],
        );
        await expect(
          TV.rootFromProof(leaf, p.index, p.size, p.proof.slice(1).map(hex)),
        ).rejects.toThrow(/too few/);
        await expect(
          TV.rootFromProof(leaf, p.index, p.size, [...p.proof, p.proof[0]!].map(hex)),
        ).rejects.toThrow(/too many/);
      }
    }
    await expect(TV.rootFromProof(new Uint8Array(32), 3, 3, [])).rejects.toThrow(/below/);
  });

  it('C2SP checkpoints: continuityd’s golden notes verify with log.json’s key, not another', async () => {
    const dir = 'packages/continuityd/test/vectors/tlog/log';
    const meta = vector<{ origin: string; key_name: string; public_key: string }>(
      `${dir}/log.json`,
    );
    const sup = await TV.cryptoSupport();
    for (const f of ['0000000000000007.note', '0000000000000012.note']) {
      const note = readFileSync(join(ROOT, dir, 'checkpoints', f), 'utf8');
      const lines = note.split('\n');
      const log = {
        origin: meta.origin,
        key_name: meta.key_name,
        public_key: meta.public_key,
        checkpoint: note,
        tree_size: Number(lines[1]),
        root_hash: Buffer.from(lines[2]!, 'base64').toString('hex'),
      };
      const ok = await TV.checkCheckpoint(log, sup);
      expect(ok.status, ok.reason).toBe('pass');
      expect(ok.size).toBe(Number(lines[1]));
      const other = toBase64(testIdentity('jis:acme:other', 'system').signingPublicKey);
      const wrong = await TV.checkCheckpoint({ ...log, public_key: other }, sup);
      expect(wrong.status).toBe('fail');
      expect(wrong.reason).toMatch(/no signature by jis:acme:continuityd\/log with the key/);
      // the same key ID and name, the text changed: the signature itself must fail
      const bumped = note.replace(
        /^(.*\n)(\d+)\n/,
        (_m, o: string, n: string) => `${o}${Number(n) + 1}\n`,
      );
      const t2 = await TV.checkCheckpoint(
        { ...log, checkpoint: bumped, tree_size: log.tree_size + 1 },
        sup,
      );
      expect(t2.status).toBe('fail');
      expect(t2.reason).toMatch(/does not verify/);
      // what the page says about the log must be what the note says
      const claim = await TV.checkCheckpoint({ ...log, tree_size: log.tree_size + 1 }, sup);
      expect(claim.status).toBe('fail');
      for (const broken of [note.slice(0, -1), note.replace('\n\n', '\n'), `${note}junk\n`]) {
        const b = await TV.checkCheckpoint({ ...log, checkpoint: broken }, sup);
        expect(b.status).toBe('fail');
        expect(b.reason).toMatch(/malformed/);
      }
    }
  });

  it('never passes without a working Ed25519: missing, broken or always-true', async () => {
    const real = globalThis.crypto.subtle as unknown as Record<
      string,
      (...a: unknown[]) => unknown
    >;
    const fake = (patch: Record<string, unknown>) => ({
      subtle: new Proxy(real, {
        get: (t, k: string) => (k in patch ? patch[k] : t[k]!.bind(t)),
      }),
    });
    const noEd = fake({
      importKey: (...a: unknown[]) =>
        (a[2] as { name: string }).name === 'Ed25519'
          ? Promise.reject(new Error('NotSupportedError'))
          : real['importKey']!.apply(real, a),
    });
    const alwaysTrue = fake({ verify: () => Promise.resolve(true) });
    const cases: [unknown, RegExp][] = [
      [noEd, /browser lacks Ed25519/],
      [alwaysTrue, /failed the Ed25519 self-test/],
      [null, /WebCrypto unavailable/],
      [{ subtle: undefined }, /WebCrypto unavailable/],
    ];
    for (const [c, why] of cases) {
      const sup = await loadVerifier(c).cryptoSupport();
      expect(sup.ed).toBe(false);
      expect(sup.reason).toMatch(why);
    }
  });
});

describe('the page’s verifier on a real home (walk() of a keychain over an AuditLog)', () => {
  const dirs: string[] = [];
  let graph: CausalGraph;
  beforeAll(async () => {
    const h = await realHome(dirs);
    graph = await h.graph();
    await h.close();
  });
  afterAll(() => cleanup(dirs));

  it('passes every check of every event, and derives the checkpoint', async () => {
    expect(graph.nodes.length).toBe(7);
    expect(graph.problems).toEqual([]);
    const { results, checkpoint } = await verifyGraph(graph);
    expect(checkpoint?.status).toBe('pass');
    for (const n of graph.nodes) {
      const r = results[n.action_id]!;
      expect(r.status, `${n.event}: ${JSON.stringify(r)}`).toBe('pass');
      expect(r.signature.reason).toMatch(/^Ed25519 signature by jis:acme:/);
      expect(r.inclusion.reason).toMatch(/is in the log/);
      expect(r.chain.status).toBe('pass');
    }
  });

  it('a token changed after signing fails its signature (and its successor’s link)', async () => {
    const g = clone(graph);
    const n = byEvent(g, 'secret-exposed');
    n.token.erachter = 'nothing was leaked';
    n.reason = 'nothing was leaked';
    const { results } = await verifyGraph(g);
    const r = results[n.action_id]!;
    expect(r.signature.status).toBe('fail');
    expect(r.signature.reason).toMatch(/does not verify/);
    expect(r.inclusion.status).toBe('fail'); // the log line still holds the signed token
    expect(r.inclusion.reason).toMatch(/different token/);
    expect(r.status).toBe('fail');
    const next = g.nodes.find(
      (x) =>
        x.parent_action_id === null &&
        x.token.prev !== null &&
        g.edges.some((e) => e.kind === 'prev' && e.from === n.action_id && e.to === x.action_id),
    )!;
    expect(results[next.action_id]!.chain.status).toBe('fail');
    expect(results[next.action_id]!.signature.status).toBe('pass');
    const others = g.nodes.filter((x) => x !== n && x !== next);
    for (const o of others) expect(results[o.action_id]!.status).toBe('pass');
  });

  it('the page showing something other than the token fails, even with a good signature', async () => {
    const g = clone(graph);
    const n = byEvent(g, 'secret-delegated');
    n.actor = 'jis:acme:bob';
    const { results } = await verifyGraph(g);
    expect(results[n.action_id]!.signature.status).toBe('fail');
    expect(results[n.action_id]!.signature.reason).toMatch(/page shows actor/);
  });

  it('a changed log line fails inclusion; a changed proof hash too; the signature stays good', async () => {
    const g = clone(graph);
    const a = byEvent(g, 'secret-proxied');
    if (a.source.kind !== 'log') throw new Error('expected a log node');
    a.source.line = a.source.line.replace(
      /"received_at":"2026-11-28T12:0/,
      '"received_at":"2026-11-28T13:0',
    );
    const b = byEvent(g, 'secret-denied');
    b.inclusion!.hashes[0] = b.inclusion!.hashes[0]!.replace(/^./, (c) => (c === '0' ? '1' : '0'));
    const { results } = await verifyGraph(g);
    for (const n of [a, b]) {
      const r = results[n.action_id]!;
      expect(r.inclusion.status).toBe('fail');
      expect(r.inclusion.reason).toMatch(/do not lead to the checkpoint root/);
      expect(r.signature.status).toBe('pass');
      expect(r.status).toBe('fail');
    }
  });

  it('a wrong log key fails the checkpoint of every log event', async () => {
    const g = clone(graph);
    g.log!.public_key = toBase64(
      testIdentity('jis:acme:auditlog-impostor', 'system').signingPublicKey,
    );
    const { results, checkpoint } = await verifyGraph(g);
    expect(checkpoint?.status).toBe('fail');
    for (const n of g.nodes) {
      expect(results[n.action_id]!.checkpoint?.status).toBe('fail');
      expect(results[n.action_id]!.status).toBe('fail');
    }
  });

  it('a checkpoint that cannot be read fails every log event, not just the header', async () => {
    for (const change of [
      (l: NonNullable<CausalGraph['log']>) => (l.origin = 'jis:acme:another/log'),
      (l: NonNullable<CausalGraph['log']>) => (l.checkpoint = l.checkpoint.replace('\n\n', '\n')),
    ]) {
      const g = clone(graph);
      change(g.log!);
      const { results, checkpoint } = await verifyGraph(g);
      expect(checkpoint?.status).toBe('fail');
      for (const n of g.nodes) {
        expect(results[n.action_id]!.checkpoint?.status).toBe('fail');
        expect(results[n.action_id]!.status).toBe('fail');
      }
    }
  });

  it('unknown, never ✓: no actor key, a bundle event, a parent outside the page, no log', async () => {
    const g = clone(graph);
    const bobNode = byEvent(g, 'secret-exposed');
    g.actors = g.actors.map((a) => (a.id === bobNode.actor ? { ...a, public_key: null } : a));
    const rot = byEvent(g, 'secret-rotated');
    rot.source = { kind: 'bundle', file: 'receipt.tza', entry: 'token.json' };
    rot.inclusion = null;
    const proxied = byEvent(g, 'secret-proxied');
    g.nodes = g.nodes.filter((n) => n.event !== 'sam-issued');
    const { results } = await verifyGraph(g);
    expect(results[bobNode.action_id]!.signature).toMatchObject({
      status: 'unknown',
      reason: /no public key/,
    });
    expect(results[bobNode.action_id]!.status).toBe('unknown');
    expect(results[rot.action_id]!.inclusion).toMatchObject({
      status: 'unknown',
      reason: /not from the log \(found in receipt.tza/,
    });
    expect(results[rot.action_id]!.checkpoint).toBeUndefined();
    expect(results[rot.action_id]!.status).toBe('unknown');
    expect(results[proxied.action_id]!.chain).toMatchObject({
      status: 'unknown',
      reason: /parent act_[0-9a-f]+ is not in this page/,
    });
    expect(results[proxied.action_id]!.status).toBe('pass');
    const none = await verifyGraph({ ...clone(graph), log: null });
    for (const n of graph.nodes) expect(none.results[n.action_id]!.status).toBe('unknown');
  });

  it('a browser without Ed25519 shows every event as not checked', async () => {
    const real = globalThis.crypto.subtle;
    const noEd = {
      subtle: {
        digest: real.digest.bind(real),
        importKey: () => Promise.reject(new Error('NotSupportedError')),
        verify: real.verify.bind(real),
      },
    };
    const { results, checkpoint } = await verifyGraph(graph, loadVerifier(noEd));
    expect(checkpoint).toMatchObject({
      status: 'unknown',
      reason: 'not checked (browser lacks Ed25519)',
    });
    for (const n of graph.nodes) {
      const r = results[n.action_id]!;
      expect(r.status).toBe('unknown');
      expect(r.signature.reason).toBe('not checked (browser lacks Ed25519)');
    }
  });

  it('nodes added later (live) derive their links, wait for their checkpoint, then pass', async () => {
    const first = graph.nodes.slice(0, 5);
    const later = graph.nodes.slice(5);
    const edges: unknown[] = [];
    let cp: Check | undefined;
    const v = TV.createVerifier({
      onEdges: (e) => edges.push(...e),
      onCheckpoint: (c) => (cp = c),
    });
    for (const a of graph.actors) v.addActor(a);
    void v.addNodes(first, graph.edges);
    void v.addNodes(later, null);
    await v.idle();
    for (const n of later) {
      expect(v.state.results[n.action_id]!.status).toBe('unknown');
      expect(v.state.results[n.action_id]!.inclusion.reason).toMatch(/no checkpoint of 7 lines/);
    }
    expect(edges).toEqual(graph.edges.filter((e) => later.some((n) => n.action_id === e.to)));
    void v.addCheckpoint(graph.log);
    await v.idle();
    expect(cp?.status).toBe('pass');
    for (const n of graph.nodes) expect(v.state.results[n.action_id]!.status).toBe('pass');
    // an actor whose key arrives after its events: they are checked again
    const v2 = TV.createVerifier({});
    void v2.addCheckpoint(graph.log);
    void v2.addNodes(graph.nodes, graph.edges);
    await v2.idle();
    expect(new Set(Object.values(v2.state.results).map((r) => r.status))).toEqual(
      new Set(['unknown']),
    );
    for (const a of graph.actors) v2.addActor({ ...a, public_key: null });
    for (const a of graph.actors) v2.addActor(a);
    await v2.idle();
    expect(new Set(Object.values(v2.state.results).map((r) => r.status))).toEqual(
      new Set(['pass']),
    );
    // a checkpoint under another key is refused: the page keeps the key it was given first
    const other = {
      ...graph.log!,
      public_key: toBase64(testIdentity('jis:x:y', 'system').signingPublicKey),
    };
    void v.addCheckpoint(other);
    await v.idle();
    expect(v.state.problems.at(-1)).toMatch(/another log or key was ignored/);
    // and so is a second key for a known actor
    expect(v.addActor({ ...graph.actors[0]!, public_key: other.public_key })).toBe(false);
    expect(v.state.problems.at(-1)).toMatch(/different key for/);
  });
});

describe('renderHtml', () => {
  const dirs: string[] = [];
  let graph: CausalGraph;
  let html: string;
  let walked: { graph: CausalGraph; html: string };
  let badOption: unknown;
  beforeAll(async () => {
    const h = await realHome(dirs);
    graph = await h.graph();
    // the same walk, its page built while the checks ran (store checks included)
    const o = { home: h.home, directory: h.directory, subject: 'home', now: NOW };
    walked = await walkHtml(o, { title: 'Q4 audit' });
    badOption = await walkHtml(o, { title: 42 as unknown as string }).catch((e: unknown) => e);
    await h.close();
    html = renderHtml(graph);
  });
  afterAll(() => cleanup(dirs));

  const dataOf = (page: string): Record<string, unknown> => {
    const m = /<script type="application\/json" id="tibet-data">([^]*?)<\/script>/.exec(page);
    if (!m) throw new Error('no data block');
    return JSON.parse(m[1]!) as Record<string, unknown>;
  };
  const linesOf = (page: string): string => {
    const m = /<script type="text\/plain" id="tibet-lines">([^]*?)<\/script>/.exec(page);
    if (!m) throw new Error('no lines block');
    return m[1]!;
  };

  it('references nothing outside the file', () => {
    // the only URL is the SVG namespace the script passes to createElementNS (never fetched)
    const urls = html.match(/\b[a-z][a-z0-9+.-]*:\/\/[^\s"'<>)]*/gi) ?? [];
    expect(new Set(urls)).toEqual(new Set(['http://www.w3.org/2000/svg']));
    // markup and code (the data block is JSON text, where "src=" is just characters)
    const code = html
      .replace(/(<script type="application\/json" id="tibet-data">)[^]*?(<\/script>)/, '$1$2')
      .replace(/(<script type="text\/plain" id="tibet-lines">)[^]*?(<\/script>)/, '$1$2');
    expect(code.length).toBeLessThan(html.length);
    expect(code.match(/\bsrc\s*=/gi)).toBeNull();
    expect(code.match(/\bhref\s*=\s*"[^"]*"/gi)).toEqual(['href="data:,"']);
    expect(code.match(/@import|url\((?!#)/gi)).toBeNull();
    expect(code.match(/\b(fetch|XMLHttpRequest|WebSocket|sendBeacon|importScripts)\b/g)).toBeNull();
    const csp = /<meta http-equiv="Content-Security-Policy" content="([^"]+)">/.exec(html)![1]!;
    expect(csp.replace(/&#39;/g, "'")).toMatch(
      /^default-src 'none'; script-src 'sha256-[^']+'; style-src 'sha256-[^']+'; img-src data:; connect-src 'none'; base-uri 'none'; form-action 'none'$/,
    );
  });

  it('pins its inline script and style by hash in the CSP', () => {
    const csp = /<meta http-equiv="Content-Security-Policy" content="([^"]+)">/
      .exec(html)![1]!
      .replace(/&#39;/g, "'");
    const scripts = [...html.matchAll(/<script>([^]*?)<\/script>/g)].map((m) => m[1]!);
    // the other two script elements are data, which no browser runs
    expect([...html.matchAll(/<script( [^>]*)?>/g)].map((m) => m[1])).toEqual([
      ' type="application/json" id="tibet-data"',
      ' type="text/plain" id="tibet-lines"',
      undefined,
    ]);
    expect(scripts).toEqual([`${VERIFY_JS}\n${UI_JS}`]);
    const b64 = (s: string) => createHash('sha256').update(s, 'utf8').digest('base64');
    expect(csp).toContain(`script-src 'sha256-${b64(scripts[0]!)}'`);
    expect(csp).toContain(`style-src 'sha256-${b64(PAGE_CSS)}'`);
    expect(html).toContain(`<style>${PAGE_CSS}</style>`);
    // the script text itself cannot end its element or open a comment
    for (const s of [VERIFY_JS, UI_JS, PAGE_CSS]) expect(s).not.toMatch(/<\/(script|style)|<!--/i);
  });

  it('embeds the graph as JSON that no text can break out of', () => {
    expect(graph.nodes.some((n) => n.reason.includes(INJECTION))).toBe(true);
    expect(html.match(/<script/g)).toHaveLength(3);
    expect(html.match(/<\/script>/g)).toHaveLength(3);
    expect(html.includes('<img')).toBe(false);
    expect(html.includes(INJECTION)).toBe(false);
    const data = dataOf(html);
    expect(data['format']).toBe(HTML_FORMAT);
    // each log line is carried once, verbatim, in the lines block; each log event's token once,
    // inside its line; what the page shows that is the token's, not at all; each proof hash
    // once. The page's expandData gives the graph's nodes back unchanged.
    const nodes = data['nodes'] as Record<string, unknown>[];
    expect(nodes.every((n) => n['token'] === undefined && Array.isArray(n['token_in_line']))).toBe(
      true,
    );
    expect(nodes.every((n) => n['actor'] === undefined && n['decisions'] === undefined)).toBe(true);
    const lines = linesOf(html);
    const logLines = graph.nodes.flatMap((n) => (n.source.kind === 'log' ? [n.source.line] : []));
    // (a line with "<" in it, such as the one whose erachter is INJECTION, stays in the JSON)
    expect(logLines.some((l) => l.includes(INJECTION))).toBe(true);
    expect(lines.split('\n')).toEqual(logLines.filter((l) => !l.includes('<')));
    expect(nodes.filter((n) => typeof n['in_lines'] === 'number')).toHaveLength(
      lines.split('\n').length,
    );
    expect(new Set(data['hashes'] as string[]).size).toBe((data['hashes'] as string[]).length);
    expect(TV.expandData(dataOf(html), lines).nodes).toEqual(
      JSON.parse(JSON.stringify(graph.nodes)),
    );
    // a token that is not its line's text is carried whole, with what the page shows of it
    const g = clone(graph);
    g.nodes[2]!.token.erachter = 'changed';
    const page2 = renderHtml(g);
    const again = dataOf(page2)['nodes'] as Record<string, unknown>[];
    expect(again[2]!['token']).toEqual(g.nodes[2]!.token);
    expect(again[2]!['token_in_line']).toBeUndefined();
    expect(again[2]!['reason']).toBe(g.nodes[2]!.reason);
    expect(again.filter((n) => n['token'] === undefined)).toHaveLength(graph.nodes.length - 1);
    expect(TV.expandData(dataOf(page2), linesOf(page2)).nodes).toEqual(
      JSON.parse(JSON.stringify(g.nodes)),
    );
    // a line the HTML parser would not give back as it is stays a JSON string
    const h = clone(graph);
    const src = h.nodes[1]!.source;
    if (src.kind !== 'log') throw new Error('expected a log event');
    src.line = src.line.replace('"index":', '"x":"a<b\r\u0000c\nd","index":');
    const page3 = renderHtml(h);
    const third = dataOf(page3)['nodes'] as Record<string, unknown>[];
    expect((third[1]!['source'] as { line: string }).line).toBe(src.line);
    expect(third[1]!['in_lines']).toBeUndefined();
    expect(linesOf(page3).split('\n')).toHaveLength(lines.split('\n').length - 1);
    expect(TV.expandData(dataOf(page3), linesOf(page3)).nodes).toEqual(
      JSON.parse(JSON.stringify(h.nodes)),
    );
    expect(data['edges']).toEqual(graph.edges);
    expect(data['log']).toEqual(graph.log);
    expect(data['live']).toBeNull();
    // the secrets table carries the model's fields only (never the walker's full state)
    expect(Object.keys((data['secrets'] as object[])[0]!).sort()).toEqual([
      'exposure_state',
      'lifecycle_state',
      'rotation_required',
      'secret_id',
      'secret_type',
      'version',
    ]);
    const tricky = '\u2028\u2029</script><!--<script>&amp;';
    expect(JSON.parse(jsonForScript({ s: tricky })) as unknown).toEqual({ s: tricky });
    expect(jsonForScript({ s: tricky })).not.toMatch(/[<>&\u2028\u2029]/);
  });

  it('a node that differs from its token in any member it shows, or is not shaped as the walk makes it, keeps what differs', () => {
    // every node is written member by member: what differs from its token is kept, and the
    // nodes come back unchanged
    const base = graph.nodes.find((n) => n.source.kind === 'log' && n.inclusion !== null)!;
    const variants: Record<string, unknown>[] = [];
    const vary = (f: (n: Record<string, unknown>) => void): void => {
      const n = clone({ ...graph, nodes: [base] }).nodes[0] as unknown as Record<string, unknown>;
      f(n);
      variants.push(n);
    };
    for (const k of [
      'action_id',
      'parent_action_id',
      'event',
      'actor',
      'actor_class',
      'timestamp',
      'reason',
      'secret_id',
      'mark',
      'summary',
    ])
      vary((n) => (n[k] = `other ${k}`));
    vary((n) => (n['generation'] = 99));
    vary((n) => (n['parent_action_id'] = null));
    vary((n) => (n['decisions'] = []));
    vary((n) => (n['decisions'] = (n['token'] as { policy: unknown }).policy));
    vary((n) => (n['source'] = { kind: 'log', index: 0 }));
    vary((n) => {
      const s = n['source'] as Record<string, unknown>;
      n['source'] = { line: s['line'], kind: s['kind'], index: s['index'] };
    });
    vary((n) => (n['inclusion'] = null));
    vary((n) => ((n['inclusion'] as { hashes: unknown[] }).hashes[0] = 7));
    vary((n) => {
      const i = n['inclusion'] as Record<string, unknown>;
      n['inclusion'] = { tree_size: i['tree_size'], index: i['index'], hashes: i['hashes'] };
    });
    vary((n) => ((n['inclusion'] as Record<string, unknown>)['extra'] = 1));
    vary((n) => (n['extra'] = 'kept'));
    vary((n) => {
      const { action_id: a, ...rest } = n;
      for (const k of Object.keys(n)) delete n[k];
      Object.assign(n, rest, { action_id: a });
    });
    vary((n) => delete n['mark']);
    for (const v of variants) {
      const g = { ...graph, nodes: [v as unknown as GraphNode] };
      const page = renderHtml(g);
      const [out] = dataOf(page)['nodes'] as Record<string, unknown>[];
      const inLine = typeof (v['source'] as { line?: unknown }).line === 'string';
      expect(Array.isArray(out!['token_in_line'])).toBe(inLine);
      expect(TV.expandData(dataOf(page), linesOf(page)).nodes).toEqual(
        JSON.parse(JSON.stringify(g.nodes)),
      );
      // and member by member as before: what is not the token's is there, in the node's order
      const shown: Record<string, string> = {
        action_id: 'action_id',
        parent_action_id: 'parent_action_id',
        event: 'event',
        actor: 'actor',
        actor_class: 'actor_class',
        timestamp: 'timestamp',
        generation: 'generation',
        reason: 'erachter',
      };
      const t = v['token'] as Record<string, unknown>;
      const want = Object.keys(v).filter(
        (k) =>
          k !== 'checks' &&
          !(inLine && k === 'token') &&
          !(inLine && k in shown && v[k] === t[shown[k]!]) &&
          !(inLine && k === 'decisions' && JSON.stringify(v[k]) === JSON.stringify(t['policy'])),
      );
      const got = Object.keys(out!).filter((k) => k !== 'in_lines' && k !== 'token_in_line');
      expect(got).toEqual(want);
    }
  });

  it('takes a walk’s text of its log for the lines block only when the block is every line of it', () => {
    const lines = linesOf(html).split('\n');
    expect(lines.length).toBeGreaterThan(3);
    const pageWith = (texts: string[], joined: string): string =>
      preparePage(graph, {}, { lines: texts.map((text) => ({ text })), joined }).finish(graph);
    // the same lines, in the same order: the walk's text (here a marker, to tell)
    expect(linesOf(pageWith([...lines], 'JOINED'))).toBe('JOINED');
    expect(pageWith([...lines], lines.join('\n'))).toBe(html);
    // any other lines: joined line by line
    for (const other of [
      [...lines, 'one more'],
      lines.slice(1),
      [...lines.slice(0, 2), lines[2] + ' ', ...lines.slice(3)],
      [...lines].reverse(),
    ])
      expect(linesOf(pageWith(other, 'JOINED'))).toBe(lines.join('\n'));
  });

  it('a walked graph and a copy of it give the same page (the walk freezes the tokens it read)', () => {
    const t = graph.nodes[0]!.token;
    expect(Object.isFrozen(t) && Object.isFrozen(t.policy) && Object.isFrozen(t.erin)).toBe(true);
    expect(() => {
      (t as { erachter: string }).erachter = 'changed';
    }).toThrow(TypeError);
    // the walk's tokens are carried in their lines without being serialised again; a copy's
    // are compared by their JSON text: the pages are the same
    const copy = clone(graph);
    expect(Object.isFrozen(copy.nodes[0]!.token)).toBe(false);
    expect(renderHtml(copy)).toBe(html);
  });

  it('escapes the title', () => {
    const page = renderHtml(graph, { title: '<b>"Q4" & \'audit\'</b>' });
    expect(page).toContain(
      '<title>&#60;b&#62;&#34;Q4&#34; &#38; &#39;audit&#39;&#60;/b&#62;</title>',
    );
    expect(page).not.toContain('<b>');
    expect(dataOf(page)['title']).toBe('<b>"Q4" & \'audit\'</b>');
    expect(renderHtml(graph)).toContain(`<title>CBOM timeline \u2014 home *</title>`);
  });

  it('live mode: the stream URL is in the data and the only connect-src', () => {
    const rel = renderHtml(graph, { liveUrl: '/events' });
    expect(dataOf(rel)['live']).toBe('/events');
    expect(rel).toContain('connect-src &#39;self&#39;;');
    const abs = renderHtml(graph, { liveUrl: 'http://127.0.0.1:8377/events?since=3' });
    expect(dataOf(abs)['live']).toBe('http://127.0.0.1:8377/events?since=3');
    expect(abs).toContain('connect-src http://127.0.0.1:8377;');
    for (const bad of [
      '',
      'javascript:alert(1)',
      '//evil.example/x',
      'ftp://h/x',
      'http://u:p@h/x',
      '/a b',
      'events',
      42,
    ])
      expect(() => renderHtml(graph, { liveUrl: bad as string }), String(bad)).toThrow(TypeError);
  });

  it('walkHtml gives the graph walk gives and the page renderHtml gives for it, byte for byte', () => {
    expect(walked.graph).toEqual(graph);
    expect(walked.html).toBe(renderHtml(graph, { title: 'Q4 audit' }));
    // the walker's checks are in a table of their own, last; the page puts them back
    const data = dataOf(walked.html);
    expect(Object.keys(data).slice(-3)).toEqual(['secrets', 'problems', 'checks']);
    expect(data['checks']).toEqual(graph.nodes.map((n) => n.checks));
    expect((data['nodes'] as object[]).every((n) => !('checks' in n))).toBe(true);
    expect(badOption).toBeInstanceOf(TypeError);
  });

  it('rejects what is not a graph or an option', () => {
    expect(() => renderHtml(null as unknown as CausalGraph)).toThrow(TypeError);
    expect(() => renderHtml({ ...graph, nodes: undefined } as unknown as CausalGraph)).toThrow(
      /graph.nodes/,
    );
    expect(() => renderHtml({ ...graph, subject: null } as unknown as CausalGraph)).toThrow(
      /subject/,
    );
    expect(() => renderHtml(graph, { title: 'x'.repeat(301) })).toThrow(TypeError);
    expect(() => renderHtml(graph, null as unknown as object)).toThrow(TypeError);
  });

  it('liveEvent frames a node, an actor and a checkpoint for server-sent events', () => {
    const n = graph.nodes[0]!;
    const f = liveEvent({ kind: 'node', value: n });
    expect(f).toBe(`data: ${JSON.stringify(n)}\n\n`);
    expect(f.slice(0, -2)).not.toContain('\n');
    expect(liveEvent({ kind: 'actor', value: graph.actors[0]! })).toMatch(
      /^event: actor\ndata: \{.*\}\n\n$/,
    );
    expect(liveEvent({ kind: 'log', value: graph.log! })).toMatch(/^event: log\ndata: \{.*\}\n\n$/);
  });

  it('renders 10,000 events in well under a second, in linear size', () => {
    const big = (k: number): CausalGraph => {
      const nodes: GraphNode[] = [];
      for (let i = 0; i < k; i++) {
        const n = graph.nodes[i % graph.nodes.length]!;
        const id = `act_${i.toString(16).padStart(16, '0')}`;
        const source =
          n.source.kind === 'log'
            ? { ...n.source, line: n.source.line.replaceAll(n.action_id, id) }
            : n.source;
        nodes.push({ ...n, action_id: id, token: { ...n.token, action_id: id }, source });
      }
      return { ...graph, nodes };
    };
    const g1 = big(1_000);
    const g10 = big(10_000);
    renderHtml(g1); // warm up
    const t0 = performance.now();
    const page = renderHtml(g10);
    const ms = performance.now() - t0;
    console.log(
      `renderHtml: 10,000 events in ${ms.toFixed(0)} ms, ${(page.length / 1e6).toFixed(1)} MB`,
    );
    expect(ms).toBeLessThan(1500); // ≈ 150–350 ms on an idle 2-core machine
    const r = page.length / renderHtml(g1).length;
    expect(r).toBeGreaterThan(8);
    expect(r).toBeLessThan(10.5);
  });
});
