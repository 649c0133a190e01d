/**
 * The compliance report "who could have signed, who did": for a signing key and a window,
 * the actors who held custody or permission (keychain `whoCouldHaveSigned`), the signatures
 * and reveals (`whoDidSign`), the events they rest on — the secret's whole line up to the
 * window's end, each as its exact log line with a C2SP tlog-proof — the log's signed
 * checkpoint and public key, and the actors' public identities: a folder that anyone can
 * check offline with {@link verifyReport} (`tibet cbom report --verify`), with nothing but
 * public keys. See docs/cbom.md §6.
 */
import { mkdir, readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import {
  canonicalize,
  fromBase64,
  fromBase64Url,
  getProvider,
  keyIdOf,
  parsePublicIdentity,
  parseRfc3339,
  toBase64,
  toHex,
  tokenHash,
  utf8,
  verifyToken,
  type CryptoProvider,
  type IdentityRegistry,
  sha256Hex,
} from '@tibet/core';
import {
  formatTlogProof,
  fsyncDir,
  writeNewFile,
  noteKeyId,
  parseCheckpoint,
  parseRecord,
  verifierKey,
  verifyCheckpoint,
  verifyTlogProof,
  type LogRecord,
} from '@tibet/continuityd';
import {
  SIGNING_TYPES,
  secretLine,
  whoCouldHaveSigned,
  whoDidSign,
  type WhoCouldHaveSignedAnswer,
  type WhoDidSignAnswer,
} from '@tibet/keychain';
import { CbomError } from './errors.js';
import type { CheckStatus, GraphNode } from './model.js';
import { mdEscape } from './render.js';
import { CBOM_VERSION } from './views.js';
import { walk, type WalkOptions } from './walk.js';

export const REPORT_FORMAT = 'tibet-cbom-report/1';

export interface ReportEvent {
  index: number;
  action_id: string;
  event: string;
  actor: string;
  timestamp: string;
  /** `line`: the secret's line up to the window's end; `boundary`: the first event after it; `parent`: a capsule or other parent of a signature. */
  role: 'line' | 'boundary' | 'parent';
  /** `events/<index>.json`: the exact log line. */
  file: string;
  /** hex SHA-256 of the line */
  line_sha256: string;
  /** `proofs/<index>.tlog-proof` */
  proof: string;
}

export interface ReportDocument {
  format: typeof REPORT_FORMAT;
  version: 1;
  generated_at: string;
  generator: { name: '@tibet/cbom'; version: string };
  secret_id: string;
  secret_type: string;
  from: string;
  to: string;
  log: {
    origin: string;
    key_name: string;
    /** base64 raw Ed25519 */
    public_key: string;
    /** C2SP verifier key: pin this one */
    verifier_key: string;
    checkpoint: 'checkpoint.note';
    tree_size: number;
    root_hash: string;
  };
  events: ReportEvent[];
  keys: { actor: string; kid: string; file: string }[];
  who_could_have_signed: WhoCouldHaveSignedAnswer;
  who_did_sign: WhoDidSignAnswer;
  /** The one command that checks the folder offline. */
  verify_command: string;
}

export interface WriteReportOptions extends Omit<WalkOptions, 'subject' | 'store'> {
  secretId: string;
  from: Date;
  to: Date;
  /** The folder to create (must not exist, or be empty). */
  out: string;
}

const pad = (n: number): string => String(n).padStart(12, '0');

/** Each file of the folder: created exclusively and fsync'd; the folders are fsync'd at the end. */
const writeDurable = (path: string, data: string | Uint8Array): Promise<void> =>
  writeNewFile(path, data, { mode: 0o644, syncDir: false });

const safeName = (actor: string): string => actor.replace(/[^A-Za-z0-9._-]/g, '_');

/**
 * Build and write the report folder — for a signing key (who could have signed, who did) or
 * any other credential (who could have used it, who did: the gateway's proxied uses). Refuses
 * (`INVALID_INPUT`) an empty window, (`NOT_PROVABLE`) when an event it rests on is not covered by a
 * valid signed checkpoint, (`REPORT_EXISTS`) a folder that is not empty.
 */
export async function writeReport(o: WriteReportOptions): Promise<ReportDocument> {
  const { secretId, from, to, out } = o;
  if (!(from instanceof Date) || !(to instanceof Date) || isNaN(+from) || isNaN(+to))
    throw new TypeError('"from" and "to" must be valid dates');
  if (+from > +to)
    throw new CbomError('INVALID_INPUT', `the window ends (${to.toISOString()}) before it starts`);
  const p = o.provider ?? getProvider();
  const g = await walk({ ...o, subject: { kind: 'secret', id: secretId }, store: 'none' });
  if (!g.log)
    throw new CbomError('NOT_PROVABLE', 'the log has no valid signed checkpoint: sign one first');
  const secret = g.secrets.find((s) => s.secret_id === secretId);
  if (!secret)
    throw new CbomError('SUBJECT_NOT_FOUND', `secret ${secretId} has no events in the log`);
  const byAction = new Map(g.nodes.map((n) => [n.action_id, n]));
  const lineNodes: { node: GraphNode; record: LogRecord }[] = [];
  for (const n of g.nodes) {
    if (n.source.kind !== 'log') continue;
    const record = parseRecord(utf8(n.source.line));
    if (record.causal.continuity_id === secretId && record.causal.object_id === secretId)
      lineNodes.push({ node: n, record });
  }
  lineNodes.sort((a, b) => a.record.index - b.record.index);
  // the causal prefix up to `to`, then the first event after it
  const cut = lineNodes.findIndex((x) => Date.parse(x.record.token.timestamp) > +to);
  const prefix = cut < 0 ? lineNodes : lineNodes.slice(0, cut);
  const boundary = cut < 0 ? undefined : lineNodes[cut];
  const { events } = secretLine(
    prefix.map((x) => x.record),
    secretId,
    p,
  );
  const could = whoCouldHaveSigned(secretId, events, from, to, { anyType: true });
  const did = whoDidSign(secretId, events, from, to, { anyType: true });
  const parents: GraphNode[] = [];
  for (const a of did.signed)
    if (a.parent_action_id) {
      const par = byAction.get(a.parent_action_id);
      if (par && par.source.kind === 'log' && !parents.includes(par)) parents.push(par);
    }
  const chosen: { node: GraphNode; role: ReportEvent['role'] }[] = [
    ...prefix.map((x) => ({ node: x.node, role: 'line' as const })),
    ...(boundary ? [{ node: boundary.node, role: 'boundary' as const }] : []),
    ...parents.map((node) => ({ node, role: 'parent' as const })),
  ];
  for (const { node } of chosen)
    if (node.checks.inclusion !== 'pass' || !node.inclusion || node.checks.signature !== 'pass')
      throw new CbomError(
        'NOT_PROVABLE',
        `${node.action_id} (log #${node.source.kind === 'log' ? node.source.index : '?'}) cannot be proven: signature ${node.checks.signature}, inclusion ${node.checks.inclusion} — sign a checkpoint after it and check the log`,
      );
  // the folder
  await mkdir(out, { recursive: true, mode: 0o755 });
  if ((await readdir(out)).length) throw new CbomError('REPORT_EXISTS', `${out} is not empty`);
  for (const d of ['events', 'proofs', 'keys']) await mkdir(join(out, d));
  const log = g.log;
  const vkey = verifierKey(log.key_name, fromBase64(log.public_key, 'public_key'), p);
  await writeDurable(join(out, 'checkpoint.note'), log.checkpoint);
  const listed: ReportEvent[] = [];
  for (const { node, role } of chosen) {
    if (node.source.kind !== 'log' || !node.inclusion) continue;
    const i = node.source.index;
    const bytes = utf8(node.source.line);
    const file = `events/${pad(i)}.json`;
    const proof = `proofs/${pad(i)}.tlog-proof`;
    await writeDurable(join(out, file), bytes);
    await writeDurable(
      join(out, proof),
      formatTlogProof({
        index: i,
        proof: node.inclusion.hashes.map((h) => Uint8Array.from(Buffer.from(h, 'hex'))),
        checkpoint: log.checkpoint,
      }),
    );
    listed.push({
      index: i,
      action_id: node.action_id,
      event: node.event,
      actor: node.actor,
      timestamp: node.timestamp,
      role,
      file,
      line_sha256: sha256Hex(bytes, p),
      proof,
    });
  }
  const keys: ReportDocument['keys'] = [];
  for (const e of listed) {
    const t = byAction.get(e.action_id)!.token;
    if (keys.some((k) => k.actor === t.actor && k.kid === t.kid)) continue;
    const pub = o.directory
      .get(t.actor)
      .find((x) => keyIdOf(fromBase64Url(x.signing_key), p) === t.kid);
    if (!pub)
      throw new CbomError(
        'NOT_PROVABLE',
        `no public identity of ${t.actor} (key ${t.kid}) in the directory`,
      );
    const file = `keys/${safeName(t.actor)}.${t.kid}.pub.json`;
    await writeDurable(join(out, file), JSON.stringify(pub, null, 2) + '\n');
    keys.push({ actor: t.actor, kid: t.kid, file });
  }
  await writeDurable(
    join(out, 'keys', 'log.json'),
    JSON.stringify(
      {
        origin: log.origin,
        key_name: log.key_name,
        public_key: log.public_key,
        verifier_key: vkey,
      },
      null,
      2,
    ) + '\n',
  );
  const doc: ReportDocument = {
    format: REPORT_FORMAT,
    version: 1,
    generated_at: g.generated_at,
    generator: { name: '@tibet/cbom', version: CBOM_VERSION },
    secret_id: secretId,
    secret_type: secret.secret_type,
    from: from.toISOString(),
    to: to.toISOString(),
    log: {
      origin: log.origin,
      key_name: log.key_name,
      public_key: log.public_key,
      verifier_key: vkey,
      checkpoint: 'checkpoint.note',
      tree_size: log.tree_size,
      root_hash: log.root_hash,
    },
    events: listed,
    keys,
    who_could_have_signed: could,
    who_did_sign: did,
    verify_command: `tibet cbom report --verify <this folder> --log-key '${vkey}'`,
  };
  await writeDurable(join(out, 'report.json'), JSON.stringify(doc, null, 2) + '\n');
  await writeDurable(join(out, 'report.md'), reportMarkdown(doc));
  for (const d of ['events', 'proofs', 'keys']) await fsyncDir(join(out, d));
  await fsyncDir(out);
  return doc;
}

/** The human form of a report. */
export function reportMarkdown(d: ReportDocument): string {
  const e = mdEscape;
  // a signing key signs; any other credential is used (a publish, an API call, a login)
  const act = (SIGNING_TYPES as readonly string[]).includes(d.secret_type) ? 'signed' : 'used it';
  const out = [
    `# Who could have ${act}, who did: \`${d.secret_id.replace(/`/g, '')}\``,
    '',
    `${e(d.secret_type)} · window ${e(d.from)} – ${e(d.to)} · log \`${d.log.origin.replace(/`/g, '')}\`, checkpoint ${d.log.tree_size}, root \`${d.log.root_hash}\``,
    '',
    'Check this folder offline, with nothing but public keys (pin the log key from a source you trust):',
    '',
    '```',
    d.verify_command,
    '```',
    '',
    `## Who could have ${act}`,
    '',
    '| actor | how | role / rule | from | to | version | since action |',
    '|---|---|---|---|---|---|---|',
  ];
  for (const a of d.who_could_have_signed.actors)
    for (const w of a.ways)
      out.push(
        `| ${e(a.actor)} | ${e(w.how)} | ${e(w.role ?? w.rule ?? '')} | ${e(w.from)} | ${e(w.to)} | v${w.version} | ${e(w.action_id)} |`,
      );
  out.push(
    '',
    `_${e(d.who_could_have_signed.note)}_`,
    '',
    '## Who did',
    '',
    `| time | ${act === 'signed' ? 'signed' : 'used'} by (gateway) | for | target | version | action | parent |`,
    '|---|---|---|---|---|---|---|',
  );
  for (const s of d.who_did_sign.signed)
    out.push(
      `| ${e(s.at)} | ${e(s.actor)} | ${e(s.on_behalf_of ?? '')} | ${e(s.target_action ?? '')} | v${s.version ?? '?'} | ${e(s.action_id)} | ${e(s.parent_action_id ?? '')} |`,
    );
  if (d.who_did_sign.revealed.length) {
    out.push('', 'Revealed in the window (the secret left the keychain):', '');
    for (const r of d.who_did_sign.revealed)
      out.push(`- ${e(r.at)} ${e(r.actor)} (${e(r.action_id)})`);
  }
  if (d.who_did_sign.denied.length) {
    out.push('', 'Refused attempts:', '');
    for (const r of d.who_did_sign.denied)
      out.push(`- ${e(r.at)} ${e(r.requested_by)} ${e(r.operation)} [${e(r.code)}]`);
  }
  out.push(
    '',
    '## Evidence',
    '',
    '| log # | event | actor | time | role | proof |',
    '|---|---|---|---|---|---|',
  );
  for (const x of d.events)
    out.push(
      `| ${x.index} | ${e(x.event)} | ${e(x.actor)} | ${e(x.timestamp)} | ${x.role} | ${e(x.proof)} |`,
    );
  return out.join('\n') + '\n';
}

// ------------------------------------------------------------------ offline verification

export interface VerifyReportOptions {
  /** The log's key to pin: a C2SP verifier key (`name+hex+base64`) or name + raw key. */
  logKey?: string | { name: string; publicKey: Uint8Array };
  /** Pin the actors' keys too (else the public identities in the folder are used). */
  directory?: IdentityRegistry;
  provider?: CryptoProvider;
}

export interface ReportCheck {
  name: string;
  status: CheckStatus;
  detail: string;
}

export interface VerifiedReport {
  /** No check failed. */
  ok: boolean;
  /** `ok` and the log key was pinned by the caller. */
  authenticated: boolean;
  secret_id: string | null;
  checks: ReportCheck[];
}

function parseVerifierKey(v: string): { name: string; publicKey: Uint8Array } {
  const m = /^([^+\s]+)\+([0-9a-f]{8})\+([A-Za-z0-9+/=]+)$/.exec(v);
  if (!m) throw new TypeError('"logKey" must be a C2SP verifier key: <name>+<8 hex>+<base64>');
  const raw = fromBase64(m[3]!, 'verifier key');
  if (raw.length !== 33 || raw[0] !== 0x01)
    throw new TypeError('"logKey" is not an Ed25519 verifier key');
  const publicKey = raw.slice(1);
  if (toHex(noteKeyId(m[1]!, publicKey)) !== m[2])
    throw new TypeError('"logKey" key id does not match');
  return { name: m[1]!, publicKey };
}

async function readJson(folder: string, file: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(join(folder, file), 'utf8');
  } catch (cause) {
    throw new CbomError('REPORT_MALFORMED', `${file} cannot be read`, { cause });
  }
  try {
    return JSON.parse(text);
  } catch (cause) {
    throw new CbomError('REPORT_MALFORMED', `${file} is not JSON`, { cause });
  }
}

const RELATIVE = /^(events|proofs|keys)\/[A-Za-z0-9._-]{1,200}$/;

function shape(v: unknown): ReportDocument {
  const d = v as ReportDocument;
  const bad = (m: string): never => {
    throw new CbomError('REPORT_MALFORMED', `report.json: ${m}`);
  };
  if (typeof d !== 'object' || d === null) bad('not an object');
  if (d.format !== REPORT_FORMAT) bad(`format must be tibet-cbom-report/1`);
  if (typeof d.secret_id !== 'string') bad('secret_id missing');
  if (!parseRfc3339(d.from) || !parseRfc3339(d.to)) bad('from/to must be RFC 3339 UTC');
  if (typeof d.log !== 'object' || d.log === null || typeof d.log.key_name !== 'string')
    bad('log missing');
  if (!Array.isArray(d.events) || !Array.isArray(d.keys)) bad('events/keys missing');
  for (const e of d.events)
    if (
      typeof e !== 'object' ||
      !Number.isSafeInteger(e.index) ||
      !RELATIVE.test(String(e.file)) ||
      !RELATIVE.test(String(e.proof)) ||
      !['line', 'boundary', 'parent'].includes(e.role)
    )
      bad('an event entry is malformed');
  for (const k of d.keys) if (!RELATIVE.test(String(k.file))) bad('a key entry is malformed');
  if (typeof d.who_could_have_signed !== 'object' || typeof d.who_did_sign !== 'object')
    bad('answers missing');
  return d;
}

/**
 * Check a report folder offline: the checkpoint under the (pinned) log key; each event's
 * exact line against its tlog-proof under that checkpoint; each token's signature under the
 * public identity in the folder (self-signed; pinned by `directory` when given); the
 * secret's line contiguous from its creation through the window's end; and both answers
 * recomputed from the proven events and compared. Never throws for a folder that fails a
 * check (that is a `fail` in the result); `REPORT_MALFORMED` when it is not a report at all.
 */
export async function verifyReport(
  folder: string,
  o: VerifyReportOptions = {},
): Promise<VerifiedReport> {
  const p = o.provider ?? getProvider();
  const checks: ReportCheck[] = [];
  const add = (name: string, status: CheckStatus, detail: string): void => {
    checks.push({ name, status, detail });
  };
  const doc = shape(await readJson(folder, 'report.json'));
  // the log key
  const inFolder = (await readJson(folder, 'keys/log.json')) as Record<string, unknown>;
  let key: { name: string; publicKey: Uint8Array };
  let pinned = false;
  if (o.logKey !== undefined) {
    key = typeof o.logKey === 'string' ? parseVerifierKey(o.logKey) : o.logKey;
    pinned = true;
    add('log-key', 'pass', `pinned by the caller: ${key.name}`);
    if (inFolder['key_name'] !== key.name || inFolder['public_key'] !== toBase64(key.publicKey))
      add('log-key-folder', 'fail', 'keys/log.json names another key than the one pinned');
  } else {
    try {
      key = {
        name: String(inFolder['key_name']),
        publicKey: fromBase64(String(inFolder['public_key']), 'public_key'),
      };
    } catch (cause) {
      throw new CbomError('REPORT_MALFORMED', 'keys/log.json has no valid key', { cause });
    }
    add(
      'log-key',
      'warn',
      'NOT pinned: the key in keys/log.json was used; pass the log key from a source you trust',
    );
  }
  // the checkpoint
  let note = '';
  try {
    note = await readFile(join(folder, 'checkpoint.note'), 'utf8');
    const cp = verifyCheckpoint(parseCheckpoint(note), key.name, key.publicKey, p);
    if (cp.origin !== doc.log.origin)
      throw new Error(`origin ${cp.origin} is not ${doc.log.origin}`);
    add(
      'checkpoint',
      'pass',
      `signed by ${key.name}: ${cp.size} lines, root ${toHex(cp.rootHash)}`,
    );
  } catch (e) {
    add('checkpoint', 'fail', `checkpoint.note does not verify: ${(e as Error).message}`);
  }
  // actor keys
  const keys = new Map<string, Uint8Array>();
  for (const k of doc.keys) {
    try {
      const pub = parsePublicIdentity(await readJson(folder, k.file), p);
      if (pub.id !== k.actor || keyIdOf(pub.signingKey, p) !== k.kid)
        throw new Error('names another actor or key');
      if (o.directory && !o.directory.has(pub.id, pub.signingKey))
        throw new Error('not in the pinned directory');
      keys.set(`${k.actor} ${k.kid}`, pub.signingKey);
    } catch (e) {
      add(`key ${k.actor}`, 'fail', `${k.file}: ${(e as Error).message}`);
    }
  }
  add(
    'actor-keys',
    o.directory ? 'pass' : 'warn',
    o.directory
      ? `${keys.size} actor key(s) pinned by the directory`
      : `${keys.size} self-signed public identities from the folder (not pinned)`,
  );
  // events
  const records: { role: ReportEvent['role']; record: LogRecord }[] = [];
  let evFail = 0;
  for (const e of doc.events) {
    const fail = (m: string): void => {
      evFail++;
      add(`event ${e.index}`, 'fail', `${e.action_id}: ${m}`);
    };
    let bytes: Uint8Array;
    try {
      const b = await readFile(join(folder, e.file));
      bytes = new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
    } catch {
      fail(`${e.file} is missing`);
      continue;
    }
    let record: LogRecord;
    try {
      record = parseRecord(bytes, e.index);
    } catch (x) {
      fail(`${e.file} is not log record ${e.index}: ${(x as Error).message}`);
      continue;
    }
    if (record.token.action_id !== e.action_id) fail(`${e.file} holds ${record.token.action_id}`);
    try {
      const proofText = await readFile(join(folder, e.proof), 'utf8');
      const v = verifyTlogProof(proofText, {
        entry: bytes,
        logKeyName: key.name,
        logPublicKey: key.publicKey,
        origin: doc.log.origin,
        provider: p,
      });
      if (v.index !== e.index) throw new Error(`proves index ${v.index}`);
      if (v.checkpoint.note !== note)
        throw new Error('is against another checkpoint than checkpoint.note');
    } catch (x) {
      fail(`${e.proof}: ${(x as Error).message}`);
      continue;
    }
    const k = keys.get(`${record.token.actor} ${record.token.kid}`);
    if (!k) fail(`no public key of ${record.token.actor} (${record.token.kid}) in the folder`);
    else
      try {
        verifyToken(record.token, k, p);
      } catch {
        fail('the token signature does not verify');
        continue;
      }
    records.push({ role: e.role, record });
  }
  add(
    'events',
    evFail ? 'fail' : 'pass',
    `${records.length} of ${doc.events.length} event(s) proven in the log and signed by their actors`,
  );
  // the line: contiguous from creation to the window's end
  const line = records
    .filter((r) => r.role === 'line')
    .map((r) => r.record)
    .sort((a, b) => a.index - b.index);
  let prev: string | null = null;
  let contiguous = true;
  for (const r of line) {
    if (r.causal.continuity_id !== doc.secret_id || r.causal.object_id !== doc.secret_id)
      contiguous = false;
    if (r.token.prev !== prev) contiguous = false;
    prev = tokenHash(r.token, p);
  }
  const bound = records.find((r) => r.role === 'boundary')?.record;
  if (
    bound &&
    (bound.token.prev !== prev || Date.parse(bound.token.timestamp) <= Date.parse(doc.to))
  )
    contiguous = false;
  add(
    'line',
    contiguous && line.length ? 'pass' : 'fail',
    contiguous && line.length
      ? `${line.length} event(s) from the creation of ${doc.secret_id}, each naming the one before${bound ? `; the next event is after the window (${bound.token.timestamp})` : '; no later event at the time of the checkpoint'}`
      : "the events do not form the secret's line from its creation (one is missing, changed or out of order)",
  );
  // the answers, recomputed
  try {
    const { events } = secretLine(line, doc.secret_id, p);
    const from = new Date(doc.from);
    const to = new Date(doc.to);
    const could = whoCouldHaveSigned(doc.secret_id, events, from, to, { anyType: true });
    const did = whoDidSign(doc.secret_id, events, from, to, { anyType: true });
    add(
      'who-could-have-signed',
      canonicalize(could) === canonicalize(doc.who_could_have_signed) ? 'pass' : 'fail',
      'recomputed from the proven events',
    );
    add(
      'who-did-sign',
      canonicalize(did) === canonicalize(doc.who_did_sign) ? 'pass' : 'fail',
      'recomputed from the proven events',
    );
    const listed = new Set(records.map((r) => r.record.token.action_id));
    const parentsMissing = did.signed.filter(
      (s) => s.parent_action_id && !listed.has(s.parent_action_id),
    );
    add(
      'parents',
      parentsMissing.length ? 'warn' : 'pass',
      parentsMissing.length
        ? `${parentsMissing.length} signature(s) whose parent (capsule) is not in the log`
        : "every signature's parent is proven",
    );
  } catch (e) {
    add('answers', 'fail', `cannot recompute: ${(e as Error).message}`);
  }
  const ok = !checks.some((c) => c.status === 'fail');
  return { ok, authenticated: ok && pinned, secret_id: doc.secret_id, checks };
}
