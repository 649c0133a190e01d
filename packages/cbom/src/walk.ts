/**
 * The walker: from a secret, an action, a bundle, a capsule or a whole home, follow parent
 * and prev links across the audit log and bundles into one causal graph, checking every
 * token signature, every prev link, every parent link, the causal-time generation rule, the
 * inclusion of every log line under the latest signed checkpoint, the checkpoint itself,
 * every bundle's signatures, and (with a keychain folder) the store's revisions against the
 * log. Nothing broken is dropped: it is an edge with status `broken`/`missing`, a failing
 * node check, and an entry in `problems`. See docs/cbom.md §2.
 */
import { existsSync } from 'node:fs';
import { readFile, readdir } from 'node:fs/promises';
import { basename, join } from 'node:path';
import {
  canonicalize,
  fromUtf8,
  getProvider,
  isSignatureText,
  keyIdOf,
  signingInputOfCanonical,
  TOKEN_TYPE,
  toBase64Url,
  toHex,
  tokenHash,
  tokenSigningInput,
  utf8,
  verifyToken,
  type CryptoProvider,
  type IdentityRegistry,
  type TibetToken,
  sha256Hex,
} from '@tibet/core';
import type { LogRecord } from '@tibet/continuityd';
import { readTza } from '@tibet/tza';
import {
  SECRET_ID,
  replay,
  secretLine,
  type RecordHashes,
  type ReplayProblem,
  type SecretState,
} from '@tibet/keychain';
import { loadBundle, loadBundleBytes, type GraphBundle, type LoadedBundle } from './bundles.js';
import { markOf, secretOf, summaryOf } from './describe.js';
import {
  checkHtmlOptions,
  preparePage,
  type PreparedPage,
  type RenderHtmlOptions,
} from './html.js';
import { CbomError } from './errors.js';
import {
  loadLog,
  type LoadHooks,
  type LoadedLog,
  type LogLine,
  type TokenSpan,
} from './log-read.js';
import { INC_OK, MIN_PARALLEL_JOBS, NodeChecks, SIG_DONE, SIG_OK } from './node-checks.js';
import { noteTokenInLine } from './token-lines.js';
import type {
  CausalGraph,
  CheckStatus,
  GraphActor,
  GraphEdge,
  GraphNode,
  GraphProblem,
  GraphSecret,
  GraphSubject,
  NodeSource,
  SubjectKind,
} from './model.js';

export type { GraphBundle } from './bundles.js';

export interface WalkOptions {
  /** A TIBET home: the log is `<home>/log`, the keychain `<home>/keychain`. */
  home?: string;
  /** The audit log folder (default `<home>/log`). */
  logDir?: string;
  /** The keychain folder holding `secrets/` (default `<home>/keychain` when it exists). */
  keychainDir?: string;
  /** Further bundle files to walk across (capsules, receipts, vault bundles, TBZ files). */
  bundles?: readonly string[];
  /** The public identities every signature is checked against. */
  directory: IdentityRegistry;
  /**
   * What to start from. A string is recognised: `act_…` an action, an existing file a bundle
   * (a capsule when its kind or payload type says so), a secret id a secret, `home` or `*`
   * everything.
   */
  subject: GraphSubject | string;
  /**
   * How much of the keychain store to check for each secret in the graph: every revision and
   * the current material (`full`, default), the HEAD revision and current material (`head`),
   * or nothing (`none`).
   */
  store?: 'full' | 'head' | 'none';
  /** `generated_at` (default now). */
  now?: Date;
  provider?: CryptoProvider;
  /**
   * Worker threads that share the signature and inclusion-proof checks with the calling
   * thread (default: cores − 1, at most 7; 0 = all on the calling thread). Used only with a
   * stock crypto backend, and started once the log has 512 lines or 512 checks are queued
   * (idle ones wait 2 s for the next walk); the checks are the same either way.
   */
  workers?: number;
}

/** The graph plus what the walker read, for the views and exports built on it. */
export interface WalkResult extends CausalGraph {
  bundles: GraphBundle[];
  secrets: (GraphSecret & { state?: SecretState })[];
}

interface Candidate {
  token: TibetToken;
  source: NodeSource;
  line: LogLine | undefined;
  record: LogRecord | undefined;
  objectId: string | null;
}

const ACTION = /^act_[0-9a-f]{16}$/;

function classifySubject(s: GraphSubject | string): GraphSubject {
  if (typeof s !== 'string') {
    if (typeof s !== 'object' || s === null || typeof s.id !== 'string')
      throw new TypeError('"subject" expected { kind, id } or a string');
    return s;
  }
  if (s === 'home' || s === '*' || s === '') return { kind: 'home', id: '*' };
  if (ACTION.test(s)) return { kind: 'action', id: s };
  if (existsSync(s)) return { kind: 'bundle', id: s };
  if (SECRET_ID.test(s)) return { kind: 'secret', id: s };
  throw new CbomError(
    'SUBJECT_NOT_FOUND',
    `"${s}" is not an action id (act_…), an existing bundle file or a secret id`,
  );
}

const SUBJECT_KINDS: readonly SubjectKind[] = ['secret', 'bundle', 'action', 'capsule', 'home'];

/**
 * Walk the causal graph of `o.subject`. Never throws for broken evidence (that is what the
 * graph reports); throws `SUBJECT_NOT_FOUND` when the subject is nowhere, `LOG_UNREADABLE`
 * when the log folder given is not a log, `BUNDLE_UNREADABLE` when a bundle file cannot be read.
 */
export async function walk(o: WalkOptions): Promise<WalkResult> {
  return (await walking(o, undefined)).graph;
}

/**
 * `walk(o)` and `renderHtml` of its graph in one: the page is built while the worker threads
 * are still verifying the signatures and inclusion proofs, and each event's check results are
 * put in once they are in. `html` is byte for byte `renderHtml(graph, htmlOptions)`. Throws
 * what `walk` throws, and a TypeError for a malformed `htmlOptions` (before walking).
 */
export async function walkHtml(
  o: WalkOptions,
  htmlOptions: RenderHtmlOptions = {},
): Promise<{ graph: WalkResult; html: string }> {
  checkHtmlOptions(htmlOptions);
  const { graph, html } = await walking(o, htmlOptions);
  return { graph, html: html! };
}

async function walking(
  o: WalkOptions,
  html: RenderHtmlOptions | undefined,
): Promise<{ graph: WalkResult; html: string | undefined }> {
  if (typeof o !== 'object' || o === null) throw new TypeError('"options" expected an object');
  if (!o.directory || typeof o.directory.signingKey !== 'function')
    throw new TypeError('"directory" expected an IdentityRegistry');
  const p = o.provider ?? getProvider();
  const subject = classifySubject(o.subject);
  if (!SUBJECT_KINDS.includes(subject.kind))
    throw new TypeError(`"subject.kind" must be one of ${SUBJECT_KINDS.join(', ')}`);
  const checks = new NodeChecks(p, o.workers);
  try {
    return await walkWith(o, p, subject, checks, html);
  } catch (e) {
    checks.cancel();
    throw e;
  }
}

async function walkWith(
  o: WalkOptions,
  p: CryptoProvider,
  first: GraphSubject,
  checks: NodeChecks,
  html: RenderHtmlOptions | undefined,
): Promise<{ graph: WalkResult; html: string | undefined }> {
  let subject = first;
  const logDir = o.logDir ?? (o.home ? join(o.home, 'log') : undefined);
  const keychainDir =
    o.keychainDir ??
    (o.home && existsSync(join(o.home, 'keychain')) ? join(o.home, 'keychain') : undefined);
  const storeMode = o.store ?? 'full';
  const problems: GraphProblem[] = [];

  // ---- the signature check of a log token, queued for the worker threads. The lines certain
  // to be in the graph (every line for a home, the secret's own line for a secret) are queued
  // while the log is still being read; the rest of the graph once it is chosen. A token whose
  // key is missing, or whose key id is not its kid, takes the inline path when its node is built.
  // (one lookup per key: a registry hands out a fresh copy of the key on every call)
  const keys = new Map<string, Map<string, Uint8Array | undefined>>();
  const keyOf = (t: TibetToken): Uint8Array | undefined => {
    let byKid = keys.get(t.actor);
    if (!byKid) keys.set(t.actor, (byKid = new Map<string, Uint8Array | undefined>()));
    let key = byKid.get(t.kid);
    if (key === undefined && !byKid.has(t.kid)) {
      key = o.directory.signingKey(t.actor, t.kid);
      byKid.set(t.kid, key);
    }
    return key;
  };
  const kidOf = new Map<Uint8Array, string>();
  const sigJob: (number | undefined)[] = []; // log position → job
  const queueSignature = (line: LogLine): void => {
    const t = line.record!.token;
    const key = keyOf(t);
    if (!key) return;
    let kid = kidOf.get(key);
    if (kid === undefined) {
      kid = keyIdOf(key, p);
      kidOf.set(key, kid);
    }
    if (kid !== t.kid) return;
    const signature = signatureBytes(t.signature);
    if (!signature) return;
    const input = signingInputOfLine(line) ?? tokenSigningInput(t);
    sigJob[line.position] = checks.add({ sig: { key, input, signature } });
  };
  const early: LoadHooks =
    subject.kind === 'home' || subject.kind === 'secret'
      ? {
          lines(count) {
            if (count >= MIN_PARALLEL_JOBS) checks.prestart();
          },
          record:
            subject.kind === 'home'
              ? queueSignature
              : (line): void => {
                  if (line.record!.causal.object_id === subject.id) queueSignature(line);
                },
        }
      : {};

  // ---- sources
  const log: LoadedLog | undefined =
    logDir && (o.logDir !== undefined || existsSync(logDir))
      ? await loadLog(logDir, p, early)
      : undefined;
  checks.flush();
  if (log) problems.push(...log.problems);
  const bundleFiles = [...(o.bundles ?? [])];
  if ((subject.kind === 'bundle' || subject.kind === 'capsule') && existsSync(subject.id))
    if (!bundleFiles.includes(subject.id)) bundleFiles.push(subject.id);
  const loaded: LoadedBundle[] = [];
  for (const f of bundleFiles) loaded.push(await loadBundle(f, o.directory, p));
  if (subject.kind === 'capsule' && !existsSync(subject.id)) {
    // a capsule named by id: the bundle whose metadata carries it
    const hit = loaded.find(
      (b) =>
        Object.values(b.info.meta).some((v) => v === subject.id) || b.info.bundle_id === subject.id,
    );
    if (!hit)
      throw new CbomError('SUBJECT_NOT_FOUND', `no bundle given holds capsule ${subject.id}`);
    subject = { kind: 'capsule', id: hit.info.file };
  }
  if (subject.kind === 'bundle') {
    const b = loaded.find((x) => x.info.file === subject.id);
    if (b && /capsule/.test(b.info.kind ?? '')) subject = { kind: 'capsule', id: subject.id };
  }

  // ---- candidates: every token in the log and in the bundles, by action id
  const cands = new Map<string, Candidate>();
  if (log)
    for (const line of log.lines) {
      const r = line.record;
      if (!r || cands.has(r.token.action_id)) continue;
      cands.set(r.token.action_id, {
        token: r.token,
        source: { kind: 'log', index: line.position, line: line.text },
        line,
        record: r,
        objectId: r.causal.object_id,
      });
    }
  for (const b of loaded)
    for (const { entry, token } of b.tokens) {
      const had = cands.get(token.action_id);
      if (had) {
        if (canonicalize(had.token) !== canonicalize(token))
          problems.push({
            code: 'BUNDLE_TOKEN_MISMATCH',
            severity: 'error',
            action_id: token.action_id,
            detail: `${b.info.file} (${entry}) carries another token under the action id ${token.action_id} than ${had.source.kind === 'log' ? `log line ${had.source.index}` : had.source.file}`,
          });
        continue;
      }
      cands.set(token.action_id, {
        token,
        source: { kind: 'bundle', file: b.info.file, entry },
        line: undefined,
        record: undefined,
        objectId: null,
      });
    }
  const children = new Map<string, string[]>();
  for (const c of cands.values()) {
    const par = c.token.parent_action_id;
    if (!par) continue;
    const l = children.get(par);
    if (l) l.push(c.token.action_id);
    else children.set(par, [c.token.action_id]);
  }
  // token hashes, computed on demand (prev links of bundle tokens need all of them)
  let byHash: Map<string, string> | undefined;
  const hashIndex = (): Map<string, string> => {
    if (!byHash) {
      byHash = new Map();
      for (const c of cands.values()) byHash.set(tokenHash(c.token, p), c.token.action_id);
    }
    return byHash;
  };
  const th = new WeakMap<TibetToken, string>();
  const hashOf = (t: TibetToken, line?: LogLine): string => {
    if (line?.record?.token === t) return lineTokenHash(line, p);
    let h = th.get(t);
    if (h === undefined) {
      h = tokenHash(t, p);
      th.set(t, h);
    }
    return h;
  };
  const linePred = (c: Candidate): LogLine | null | undefined => {
    // undefined: not a log token; null: first on its line
    if (!c.line || !c.record || !log) return undefined;
    const list = log.byContinuity.get(c.record.causal.continuity_id) ?? [];
    const k = c.line.onLine;
    return k > 0 ? list[k - 1]! : null;
  };
  const lineSucc = (c: Candidate): LogLine | undefined => {
    if (!c.line || !c.record || !log) return undefined;
    const list = log.byContinuity.get(c.record.causal.continuity_id) ?? [];
    const k = c.line.onLine;
    return k >= 0 ? list[k + 1] : undefined;
  };
  const predOf = (c: Candidate): string | undefined => {
    const lp = linePred(c);
    if (lp) return lp.record?.token.action_id;
    if (lp === null || !c.token.prev) return undefined;
    return hashIndex().get(c.token.prev);
  };

  // ---- selection
  const chosen = new Set<string>();
  const secretIds = new Set<string>();
  /**
   * Everything the seeds rest on: their parents, and each parent's own past (its prev links,
   * and their parents) — e.g. a vault's heartbeats before the release a delegation names.
   */
  const upParents = (seed: Iterable<string>): void => {
    const stack = [...seed];
    const seen = new Set<string>(stack);
    const up = (a: string | null | undefined): void => {
      if (a && cands.has(a) && !seen.has(a)) {
        seen.add(a);
        chosen.add(a);
        stack.push(a);
      }
    };
    while (stack.length) {
      const a = stack.pop()!;
      const c = cands.get(a);
      if (!c) continue;
      up(c.token.parent_action_id);
      up(predOf(c)); // for a seed: its own line, already in; for a parent: that line's past
    }
  };
  const downChildren = (seed: Iterable<string>): void => {
    const stack = [...seed];
    while (stack.length) {
      const a = stack.pop()!;
      for (const ch of children.get(a) ?? [])
        if (!chosen.has(ch)) {
          chosen.add(ch);
          stack.push(ch);
        }
    }
  };
  /** The causal cone: everything that happened before (prev, parent) and after (next, children). */
  const cone = (seeds: readonly string[]): void => {
    const past = [...seeds];
    const seenPast = new Set<string>(seeds);
    while (past.length) {
      const a = past.pop()!;
      chosen.add(a);
      const c = cands.get(a);
      if (!c) continue;
      for (const up of [c.token.parent_action_id, predOf(c)])
        if (up && cands.has(up) && !seenPast.has(up)) {
          seenPast.add(up);
          past.push(up);
        }
    }
    const future = [...seeds];
    const seenFuture = new Set<string>(seeds);
    while (future.length) {
      const a = future.pop()!;
      chosen.add(a);
      const c = cands.get(a);
      if (!c) continue;
      const next = lineSucc(c)?.record?.token.action_id;
      for (const down of [...(children.get(a) ?? []), ...(next ? [next] : [])])
        if (!seenFuture.has(down)) {
          seenFuture.add(down);
          future.push(down);
        }
    }
  };

  switch (subject.kind) {
    case 'home':
      for (const a of cands.keys()) chosen.add(a);
      break;
    case 'secret': {
      const id = subject.id;
      secretIds.add(id);
      for (const l of log?.byObject.get(id) ?? [])
        if (l.record) chosen.add(l.record.token.action_id);
      for (const c of cands.values())
        if (c.source.kind === 'bundle' && secretOf(c.token, null) === id)
          chosen.add(c.token.action_id);
      const own = [...chosen];
      upParents(own);
      downChildren(own);
      const inStore = keychainDir !== undefined && existsSync(join(keychainDir, 'secrets', id));
      if (!chosen.size && !inStore)
        throw new CbomError(
          'SUBJECT_NOT_FOUND',
          `secret ${id} is neither in the log nor in the store`,
        );
      break;
    }
    case 'action': {
      if (!cands.has(subject.id))
        throw new CbomError(
          'SUBJECT_NOT_FOUND',
          `action ${subject.id} is in neither the log nor the bundles given`,
        );
      cone([subject.id]);
      break;
    }
    case 'bundle':
    case 'capsule': {
      const b = loaded.find((x) => x.info.file === subject.id);
      if (!b) throw new CbomError('SUBJECT_NOT_FOUND', `bundle ${subject.id} was not read`);
      const seeds = [...b.info.tokens, ...b.info.refs].filter((a) => cands.has(a));
      const sid = b.info.meta['secret_id'];
      if (typeof sid === 'string') secretIds.add(sid);
      cone(seeds);
      for (const r of b.info.refs)
        if (!cands.has(r))
          problems.push({
            code: 'BUNDLE_REF_MISSING',
            severity: 'error',
            action_id: r,
            detail: `${b.info.file} names action ${r}, which is in neither the log nor the bundles`,
          });
      break;
    }
  }

  // ---- nodes
  const picked = [...chosen].map((a) => cands.get(a)!).filter(Boolean);
  picked.sort(
    (a, b) =>
      a.token.generation - b.token.generation ||
      (a.line?.position ?? Number.MAX_SAFE_INTEGER) -
        (b.line?.position ?? Number.MAX_SAFE_INTEGER) ||
      a.token.timestamp.localeCompare(b.token.timestamp) ||
      a.token.action_id.localeCompare(b.token.action_id),
  );
  // A graph that keeps few of the log's lines gets their texts as strings of their own: a line
  // of an ASCII segment is read as a slice of the segment's text (see log-read.ts), and would
  // keep the whole segment's text alive with the graph.
  if (log && 2 * picked.length < log.lines.length)
    for (const c of picked)
      if (c.line && c.source.kind === 'log') {
        c.line.text = fromUtf8(c.line.bytes);
        c.source = { ...c.source, line: c.line.text };
      }
  // (every chosen action is a candidate, as a rule: then the graph's actions are `chosen`)
  const inGraph =
    picked.length === chosen.size ? chosen : new Set(picked.map((c) => c.token.action_id));
  const edges: GraphEdge[] = [];
  const actors = new Map<string, GraphActor>();
  const cp = log?.checkpoint;
  const cpOk = Boolean(log?.checkpointValid && log.rootMatches);

  // ---- the rest of the expensive checks, for the worker threads: the signature of each log
  // token not queued while reading, and each log line's inclusion proof. Bundle tokens and
  // anything unusual (a key whose id is not the kid) take the inline path below.
  const n = picked.length;
  const incJob: (number | undefined)[] = new Array<number | undefined>(n);
  const proofs: (Uint8Array[] | undefined)[] = new Array<Uint8Array[] | undefined>(n);
  for (const c of picked)
    if (c.line && c.record && sigJob[c.line.position] === undefined) queueSignature(c.line);
  checks.setCheckpoint(cp ? { root: cp.rootHash, size: cp.size } : undefined);
  const signatureJobs = checks.size; // (the proofs are queued after every signature)
  for (let i = 0; i < n; i++) {
    const c = picked[i]!;
    if (c.line && cp && log && c.line.position < cp.size) {
      const proof = log.inclusion(c.line.position);
      proofs[i] = proof;
      if (proof)
        incJob[i] = checks.add({
          inclusion: { leaf: c.line.leaf, index: c.line.position, proof },
        });
    }
  }
  checks.flush();

  // ---- meanwhile on this thread: which secrets the graph holds, and their replays
  if (subject.kind !== 'secret')
    for (const c of picked) {
      const sid = secretOf(c.token, c.objectId);
      if (sid) secretIds.add(sid);
    }
  if (subject.kind === 'home' && keychainDir)
    for (const name of await readdir(join(keychainDir, 'secrets')).catch(() => [] as string[]))
      if (SECRET_ID.test(name)) secretIds.add(name);
  // hex of tree hashes: each leaf (for the replay and a proof) and the upper nodes proofs repeat
  const hexOf = new Map<Uint8Array, string>();
  const hex = (h: Uint8Array): string => {
    let x = hexOf.get(h);
    if (x === undefined) {
      x = hexString(h);
      hexOf.set(h, x);
    }
    return x;
  };
  // a proof's hashes in hex: the next line's proof mostly repeats the upper levels (the same
  // tree nodes) of the one before
  let lastProof: readonly Uint8Array[] = [];
  let lastHex: string[] = [];
  const proofHex = (proof: readonly Uint8Array[]): string[] => {
    const out = new Array<string>(proof.length);
    for (let j = 0; j < proof.length; j++)
      out[j] = proof[j] === lastProof[j] ? lastHex[j]! : hex(proof[j]!);
    lastProof = proof;
    lastHex = out;
    return out;
  };
  // (only what the graph takes from a replay is kept: its steps, a state per event, are
  // dropped at once rather than carried through the rest of the walk)
  const replays = new Map<
    string,
    { events: number; state: SecretState | undefined; problems: ReplayProblem[] }
  >();
  for (const id of [...secretIds].sort()) {
    const lines = (log?.byObject.get(id) ?? []).filter((l) => l.record);
    // the line of a record: secretLine asks in log order, as a rule (else by a map)
    let next = 0;
    let lineOf: Map<LogRecord, LogLine> | undefined;
    const lineOfRecord = (r: LogRecord): LogLine | undefined => {
      if (next < lines.length && lines[next]!.record === r) return lines[next++];
      lineOf ??= new Map(lines.map((l) => [l.record!, l]));
      return lineOf.get(r);
    };
    // the hashes of each line as read (the same values secretLine would compute from the
    // record: a valid record's line is its RFC 8785 encoding)
    const known = (r: LogRecord): RecordHashes | undefined => {
      const l = lineOfRecord(r);
      if (!l?.exact) return undefined;
      return { line_hash: l.hash, leaf_hash: hex(l.leaf), token_hash: lineTokenHash(l, p) };
    };
    const records = lines.map((l) => l.record!);
    const r = replay(secretLine(records, id, p, known).events, { steps: false });
    replays.set(id, { events: records.length, state: r.state, problems: r.problems });
  }

  // ---- and every node, but for the results of the checks the workers are running: what it
  // shows, its links, the causal-time rule, its proof; and the signatures that take the inline
  // path. Its problems wait (in `later`) so that they are listed in the same order as ever:
  // the node's signature first.
  const later: GraphProblem[][] = new Array<GraphProblem[]>(n);
  const inline: ('pass' | 'fail' | 'no-key' | undefined)[] = new Array<
    'pass' | 'fail' | 'no-key' | undefined
  >(n);
  const nodes: GraphNode[] = new Array<GraphNode>(n);
  for (let i = 0; i < n; i++) {
    const c = picked[i]!;
    const t = c.token;
    const detail: string[] = [];
    const mine: GraphProblem[] = [];
    later[i] = mine;
    const problem = (code: string, d: string, severity: 'error' | 'warning' = 'error'): void => {
      mine.push({ code, severity, action_id: t.action_id, detail: d });
      detail.push(d);
    };
    // signature: on a worker, or here
    const key = keyOf(t);
    if (c.line === undefined || sigJob[c.line.position] === undefined) {
      if (!key) inline[i] = 'no-key';
      else
        try {
          verifyToken(t, key, p);
          inline[i] = 'pass';
        } catch {
          inline[i] = 'fail';
        }
    }
    if (!actors.has(t.actor))
      actors.set(t.actor, {
        id: t.actor,
        class: t.actor_class,
        public_key: key ? toBase64Url(key) : null,
      });
    else if (actors.get(t.actor)!.class !== t.actor_class)
      problem(
        'ACTOR_CLASS_CHANGED',
        `${t.actor} signs as ${t.actor_class} here but as ${actors.get(t.actor)!.class} earlier`,
        'warning',
      );
    // prev
    let chain: CheckStatus = 'pass';
    let gPrev: number | undefined = t.prev === null ? 0 : undefined;
    const lp = linePred(c);
    if (lp !== undefined) {
      const want = lp?.record ? hashOf(lp.record.token, lp) : null;
      if (lp?.record) gPrev = lp.record.token.generation;
      if (t.prev !== want) {
        chain = 'fail';
        if (lp?.record) {
          const d = `prev of ${t.action_id} does not name ${lp.record.token.action_id}, the event before it on line ${c.record!.causal.continuity_id} (an event was changed, removed or inserted)`;
          problem('PREV_BROKEN', d);
          if (inGraph.has(lp.record.token.action_id))
            edges.push({
              from: lp.record.token.action_id,
              to: t.action_id,
              kind: 'prev',
              status: 'broken',
              detail: d,
            });
        } else {
          const d = `${t.action_id} names a previous event ${t.prev ?? 'null'} that is not on its line ${c.record!.causal.continuity_id} (removed?)`;
          problem('PREV_MISSING', d);
          edges.push({
            from: t.prev ?? 'null',
            to: t.action_id,
            kind: 'prev',
            status: 'missing',
            detail: d,
          });
        }
      } else if (lp?.record && inGraph.has(lp.record.token.action_id)) {
        edges.push({
          from: lp.record.token.action_id,
          to: t.action_id,
          kind: 'prev',
          status: 'ok',
        });
      }
    } else if (t.prev !== null) {
      const from = hashIndex().get(t.prev);
      if (from) {
        gPrev = cands.get(from)!.token.generation;
        if (inGraph.has(from)) edges.push({ from, to: t.action_id, kind: 'prev', status: 'ok' });
      } else {
        chain = 'fail';
        const d = `${t.action_id} (in ${c.source.kind === 'bundle' ? c.source.file : 'the log'}) names a previous event ${t.prev} found nowhere`;
        problem('PREV_MISSING', d);
        edges.push({ from: t.prev, to: t.action_id, kind: 'prev', status: 'missing', detail: d });
      }
    }
    // parent
    let gParent: number | undefined = t.parent_action_id === null ? 0 : undefined;
    if (t.parent_action_id) {
      const par = cands.get(t.parent_action_id);
      if (!par) {
        chain = 'fail';
        const d = `parent ${t.parent_action_id} of ${t.action_id} is in neither the log nor the bundles given`;
        problem('PARENT_MISSING', d);
        edges.push({
          from: t.parent_action_id,
          to: t.action_id,
          kind: 'parent',
          status: 'missing',
          detail: d,
        });
      } else {
        gParent = par.token.generation;
        const ok = gParent < t.generation;
        if (!ok) chain = 'fail';
        const d = ok
          ? undefined
          : `generation ${t.generation} is not after its parent's ${gParent}`;
        if (d) problem('GENERATION_INVALID', d);
        edges.push({
          from: par.token.action_id,
          to: t.action_id,
          kind: 'parent',
          status: ok ? 'ok' : 'broken',
          ...(d ? { detail: d } : {}),
        });
      }
    }
    if (gPrev !== undefined && gParent !== undefined) {
      const want = 1 + Math.max(gPrev, gParent);
      if (t.generation !== want) {
        chain = 'fail';
        problem(
          'GENERATION_INVALID',
          `generation ${t.generation} of ${t.action_id}, expected ${want} (1 + max(prev, parent))`,
        );
      }
    }
    // inclusion: what can be said before the proof is checked
    let inclusion: GraphNode['inclusion'] = null;
    let inc: CheckStatus = 'fail';
    if (!c.line) {
      inc = 'warn';
      detail.push(`not in the log: carried by ${c.source.kind === 'bundle' ? c.source.file : '?'}`);
    } else if (!cp) {
      inc = 'warn';
      detail.push('the log has no checkpoint: inclusion cannot be proven');
    } else if (c.line.position >= cp.size) {
      inc = 'warn';
      detail.push(`log line ${c.line.position} is after the latest checkpoint (size ${cp.size})`);
    } else {
      const proof = proofs[i];
      if (proof)
        inclusion = { index: c.line.position, tree_size: cp.size, hashes: proofHex(proof) };
    }
    if (c.line) {
      const sp = tokenSpan(c.line);
      if (sp) noteTokenInLine(t, c.line.text, sp.start, sp.end);
    }
    nodes[i] = {
      action_id: t.action_id,
      parent_action_id: t.parent_action_id,
      event: t.event,
      actor: t.actor,
      actor_class: t.actor_class,
      timestamp: t.timestamp,
      generation: t.generation,
      secret_id: secretOf(t, c.objectId),
      mark: markOf(t),
      summary: summaryOf(t),
      reason: t.erachter,
      decisions: t.policy,
      token: t,
      source: c.source,
      inclusion,
      checks: { signature: 'pass', chain, inclusion: inc, detail },
    };
  }

  // ---- meanwhile, too: the bundles, the secrets (replayed above from their own line with the
  // keychain's state machine) and the store. Their problems come after the nodes' (in `tail`).
  const tail: GraphProblem[] = [];
  const bundles: GraphBundle[] = loaded.map((b) => b.info);
  for (const b of loaded)
    if (b.info.status !== 'pass')
      tail.push({
        code: 'BUNDLE_INVALID',
        severity: 'error',
        detail: `${b.info.file}: ${b.info.detail.join('; ')}`,
      });
  const secrets: WalkResult['secrets'] = [];
  for (const [id, { events, state: s, problems: replayed }] of replays) {
    for (const x of replayed) tail.push(replayProblem(x));
    if (s)
      secrets.push({
        secret_id: id,
        secret_type: s.secret_type,
        lifecycle_state: s.lifecycle_state,
        exposure_state: s.exposure_state,
        rotation_required: s.rotation_required,
        version: s.version,
        state: s,
      });
    else if (events === 0)
      tail.push({
        code: 'SECRET_NOT_IN_LOG',
        severity: 'error',
        detail: `secret ${id} has no events in the log`,
      });
    if (keychainDir && storeMode !== 'none')
      await checkStore(keychainDir, id, s, storeMode, log, o.directory, p, bundles, tail);
  }

  const generated_at = (o.now ?? new Date()).toISOString();
  const graph: WalkResult = {
    subject,
    generated_at,
    nodes,
    edges,
    actors: [...actors.values()],
    secrets,
    log:
      log?.key && cp
        ? {
            origin: log.key.origin,
            public_key: log.key.public_key,
            key_name: log.key.key_name,
            checkpoint: cp.note,
            tree_size: cp.size,
            root_hash: toHex(cp.rootHash),
          }
        : null,
    problems,
    bundles,
  };

  // ---- and the page, when asked for: all of it but the results of the checks. This thread
  // first helps with the signatures (the long part), then builds the page while the workers
  // check the inclusion proofs (the short part, queued last), then helps with what is left.
  let prepared: PreparedPage | undefined;
  if (html) {
    // (the page costs this thread about what ~5 % of the signatures cost a worker, less
    // the proofs: so many are left to each worker, that none waits for the page)
    checks.help(signatureJobs, Math.ceil(n / 20));
    prepared = preparePage(
      graph,
      html,
      log?.joinedText !== undefined ? { lines: log.lines, joined: log.joinedText } : undefined,
    );
  }

  // ---- the workers' results: each node's signature and inclusion, and its problems in order
  const results = await checks.finish();
  for (let i = 0; i < n; i++) {
    const c = picked[i]!;
    const t = c.token;
    const node = nodes[i]!;
    const detail = node.checks.detail;
    let signature: CheckStatus = 'pass';
    let sigProblem: GraphProblem | undefined;
    const job = c.line ? sigJob[c.line.position] : undefined;
    const bits = job === undefined ? 0 : results[job]!;
    const status = job === undefined ? inline[i] : bits & SIG_OK ? 'pass' : 'fail';
    if (status === 'no-key') {
      signature = 'fail';
      sigProblem = {
        code: 'SIGNATURE_UNKNOWN_KEY',
        severity: 'error',
        action_id: t.action_id,
        detail: `no key ${t.kid} of ${t.actor} in the directory: the signature cannot be checked`,
      };
    } else if (status !== 'pass' || (job !== undefined && !(bits & SIG_DONE))) {
      signature = 'fail';
      sigProblem = {
        code: 'SIGNATURE_INVALID',
        severity: 'error',
        action_id: t.action_id,
        detail: `the signature of ${t.action_id} by ${t.actor} does not verify`,
      };
    }
    if (sigProblem) {
      problems.push(sigProblem);
      detail.unshift(sigProblem.detail);
    }
    for (const x of later[i]!) problems.push(x);
    node.checks.signature = signature;
    if (node.checks.inclusion === 'fail') {
      const ij = incJob[i];
      const ok = ij !== undefined && results[ij]! & INC_OK && cpOk;
      if (ok) node.checks.inclusion = 'pass';
      else
        detail.push(
          !log!.checkpointValid
            ? 'the checkpoint does not verify under the log key'
            : `log line ${c.line!.position} is not included under the checkpoint's root`,
        );
    }
  }

  for (const x of tail) problems.push(x);
  return { graph, html: prepared?.finish(graph) };
}

/**
 * A log token's 64 signature bytes: `fromBase64Url(signature)` without its round trip, which
 * the format makes needless — in the canonical base64url of 64 bytes (checked here again) each
 * text has exactly one decoding and each 64 bytes exactly one text. Undefined for any other
 * text (the token then takes the inline path, as when `fromBase64Url` throws).
 */
export function signatureBytes(sig: string): Uint8Array | undefined {
  if (!isSignatureText(sig)) return undefined;
  const b = Buffer.from(sig, 'base64url');
  return new Uint8Array(b.buffer, b.byteOffset, b.length);
}

/** Lowercase hex, as `toHex` writes it, in one flat string (Buffer's encoder). */
function hexString(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.length).toString('hex');
}

const LINE_END = ',"v":"tibet-log/1"}';
const TOKEN_MEMBER = ',"token":{';
const TOKEN_MEMBER_BYTES = Buffer.from(TOKEN_MEMBER, 'latin1');

/**
 * Where a log line's token is, without re-canonicalizing it: the line is the RFC 8785 form of
 * the record (checked by `parseRecord`), whose members sort as causal, index, prev,
 * received_at, token, v — so the token's canonical text is the slice between `,"token":` and
 * the fixed `,"v":"tibet-log/1"}`. (A `"` inside a string is always escaped, so the markers
 * cannot occur inside values.) `start`/`end` index the line's text; `byteStart`/`byteEnd` its
 * bytes, when they are exactly the UTF-8 of the text (`exact`), else `byteStart` is −1. Both
 * markers are ASCII, and UTF-8 encodes ASCII characters, and only them, as single bytes below
 * 0x80, so the first marker in the bytes is the first marker in the text, and the tail after
 * the token is as many bytes as characters. Undefined when the line does not have that shape.
 */
function tokenSpan(line: LogLine): TokenSpan | undefined {
  if (line.span === undefined) line.span = findTokenSpan(line) ?? null;
  return line.span ?? undefined;
}

function findTokenSpan(line: LogLine): TokenSpan | undefined {
  const text = line.text;
  if (!line.record || !text.endsWith(LINE_END)) return undefined;
  const at = text.indexOf(TOKEN_MEMBER);
  if (at < 0) return undefined;
  const b = line.bytes;
  let byteStart = -1;
  if (line.exact) {
    if (b.length === text.length)
      byteStart = at + 9; // as many bytes as UTF-16 code units: every character is ASCII
    else {
      const k = Buffer.from(b.buffer, b.byteOffset, b.length).indexOf(TOKEN_MEMBER_BYTES);
      if (k >= 0) byteStart = k + 9;
    }
  }
  return {
    start: at + 9,
    end: text.length - LINE_END.length,
    byteStart,
    byteEnd: b.length - LINE_END.length,
  };
}

/**
 * `sha256:<hex>` of a log line's token (its `tokenHash`), hashed from the line itself (see
 * {@link tokenSpan}) and kept on the line.
 */
export function lineTokenHash(line: LogLine, p: CryptoProvider): string {
  if (line.tokenHash !== undefined) return line.tokenHash;
  const sp = tokenSpan(line);
  const h = !sp
    ? tokenHash(line.record!.token, p)
    : `sha256:${sha256Hex(
        sp.byteStart >= 0
          ? line.bytes.subarray(sp.byteStart, sp.byteEnd)
          : utf8(line.text.slice(sp.start, sp.end)),
        p,
      )}`;
  line.tokenHash = h;
  return h;
}

const TIMESTAMP_MEMBER = ',"timestamp":';
const TYP_END = `,"typ":"${TOKEN_TYPE}"}`;
const SIGNATURE_MEMBER = ',"signature":"';

/**
 * The signing input of a log line's token, cut from the line: `signingInputOfCanonical` of the
 * token's text (the text without its `signature` member), taken straight from the line's
 * bytes as two parts when they are exactly its UTF-8 — the token's bytes up to the
 * signature member, then the `timestamp` and `typ` members, whose characters are all ASCII
 * (the timestamp is RFC 3339), so that the byte positions follow from the text's.
 * Undefined when the line does not have that shape (the caller then re-serialises the token).
 */
export function signingInputOfLine(line: LogLine): Uint8Array | Uint8Array[] | undefined {
  const sp = tokenSpan(line);
  if (!sp) return undefined;
  const t = line.record!.token;
  const text = line.text;
  if (sp.byteStart < 0) return signingInputOfCanonical(text.slice(sp.start, sp.end), t);
  // after = `,"timestamp":${JSON.stringify(t.timestamp)}${TYP_END}` and
  // member = `,"signature":"${t.signature}"`, compared piece by piece where they must be
  const ts = JSON.stringify(t.timestamp);
  const sig = t.signature;
  const afterLength = TIMESTAMP_MEMBER.length + ts.length + TYP_END.length;
  const memberLength = SIGNATURE_MEMBER.length + sig.length + 1;
  const at = sp.end - afterLength;
  const cut = at - memberLength;
  if (
    cut <= sp.start ||
    !text.startsWith(TIMESTAMP_MEMBER, at) ||
    !text.startsWith(ts, at + TIMESTAMP_MEMBER.length) ||
    !text.startsWith(TYP_END, sp.end - TYP_END.length)
  )
    return undefined;
  if (
    !text.startsWith(SIGNATURE_MEMBER, cut) ||
    !text.startsWith(sig, cut + SIGNATURE_MEMBER.length) ||
    text.charCodeAt(at - 1) !== 0x22 // the signature's closing quote
  )
    return undefined;
  const b = line.bytes;
  const tail = sp.byteEnd - afterLength;
  return [b.subarray(sp.byteStart, tail - memberLength), b.subarray(tail, sp.byteEnd)];
}

function replayProblem(x: ReplayProblem): GraphProblem {
  return {
    code: x.code,
    severity: x.code === 'GENESIS_INCOMPLETE' ? 'warning' : 'error',
    action_id: x.action_id,
    detail: x.message,
  };
}

const REV = /^rev-(\d{6})\.tza$/;

/**
 * The keychain store beside the log, for one secret: each revision verifies under a key in
 * the directory, describes itself, links to the one before (`prev_sha256`), names a logged
 * action with its event; HEAD names the last one; HEAD's state is the log's replay; the
 * current material bundle verifies and hashes to the state's digest.
 */
async function checkStore(
  dir: string,
  id: string,
  replayed: SecretState | undefined,
  mode: 'full' | 'head',
  log: LoadedLog | undefined,
  directory: IdentityRegistry,
  p: CryptoProvider,
  bundles: GraphBundle[],
  problems: GraphProblem[],
): Promise<void> {
  const sdir = join(dir, 'secrets', id);
  const err = (code: string, detail: string, action_id?: string): void => {
    problems.push({ code, severity: 'error', detail, ...(action_id ? { action_id } : {}) });
  };
  let names: string[];
  try {
    names = await readdir(sdir);
  } catch {
    if (replayed)
      err('SECRET_NOT_IN_STORE', `the log has events of ${id}; the store ${sdir} does not have it`);
    return;
  }
  let head: { revision: number; sha256: string; action_id: string } | undefined;
  try {
    head = JSON.parse(await readFile(join(sdir, 'HEAD'), 'utf8')) as typeof head;
  } catch {
    err('HEAD_MISSING', `${sdir}/HEAD is missing or not JSON`);
  }
  const revs = names
    .map((n) => REV.exec(n))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => Number(m[1]))
    .sort((a, b) => a - b);
  const last = head?.revision ?? revs[revs.length - 1] ?? 0;
  const todo = mode === 'full' ? revs.filter((r) => r <= last) : revs.filter((r) => r === last);
  let prevSha: string | null | undefined = mode === 'full' ? null : undefined;
  let headState: unknown;
  for (let k = 0; k < todo.length; k++) {
    const r = todo[k]!;
    if (mode === 'full' && r !== k + 1) {
      err('REVISION_MISSING', `${id}: revision ${k + 1} is missing`);
      prevSha = undefined;
    }
    const file = join(sdir, `rev-${String(r).padStart(6, '0')}.tza`);
    const bytes = new Uint8Array(await readFile(file));
    const b = loadBundleBytes(file, bytes, directory, p).info;
    const sha = sha256Hex(bytes, p);
    bundles.push(b);
    const action = typeof b.meta['action_id'] === 'string' ? b.meta['action_id'] : undefined;
    if (b.status !== 'pass') {
      err('REVISION_INVALID', `${file}: ${b.detail.join('; ')}`, action);
      continue;
    }
    if (b.meta['secret_id'] !== id || b.meta['revision'] !== r || b.kind !== 'secret-state')
      err(
        'REVISION_METADATA',
        `${file} does not describe itself as revision ${r} of ${id}`,
        action,
      );
    if (prevSha !== undefined && b.meta['prev_sha256'] !== prevSha)
      err(
        'REVISION_CHAIN_BROKEN',
        `${file}: prev_sha256 is not the digest of revision ${r - 1}`,
        action,
      );
    prevSha = sha;
    const logged = action ? log?.byAction.get(action)?.record : undefined;
    if (!logged)
      err(
        'REVISION_NOT_LOGGED',
        `${file} names action ${action ?? '?'}, which is not in the log`,
        action,
      );
    else if (logged.token.event !== b.meta['event'])
      err(
        'REVISION_EVENT_MISMATCH',
        `${file} records ${String(b.meta['event'])}, the log ${logged.token.event}`,
        action,
      );
    if (r === last) {
      if (head && (head.sha256 !== sha || head.action_id !== action))
        err(
          'HEAD_MISMATCH',
          `${id}: HEAD does not name revision ${r} by digest and action`,
          action,
        );
      try {
        const parsed = readTza(bytes, { provider: p });
        const i = parsed.manifest.entries.findIndex((e) => e.name === 'state.json' && !e.sealed);
        headState = i >= 0 ? JSON.parse(new TextDecoder().decode(parsed.stored[i])) : undefined;
      } catch {
        headState = undefined;
      }
    }
  }
  if (replayed && headState !== undefined && canonicalize(headState) !== canonicalize(replayed))
    err(
      'STATE_MISMATCH',
      `${id}: the store's current state (HEAD) is not the replay of its events in the log`,
    );
  // the current material
  const st = (headState ?? replayed) as SecretState | undefined;
  if (st && st.lifecycle_state !== 'destroyed' && typeof st.material_seq === 'number') {
    const file = join(sdir, `material-${String(st.material_seq).padStart(6, '0')}.tza`);
    let bytes: Uint8Array | undefined;
    try {
      bytes = new Uint8Array(await readFile(file));
    } catch {
      err('MATERIAL_MISSING', `${id}: the current material ${basename(file)} is missing`);
    }
    if (bytes) {
      const b = loadBundleBytes(file, bytes, directory, p).info;
      bundles.push(b);
      const want = st.versions[st.versions.length - 1]?.material_sha256;
      if (b.status !== 'pass') err('MATERIAL_INVALID', `${file}: ${b.detail.join('; ')}`);
      else if (want && sha256Hex(bytes, p) !== want)
        err('MATERIAL_DIGEST_MISMATCH', `${file} does not hash to the state's material_sha256`);
    }
  }
}
