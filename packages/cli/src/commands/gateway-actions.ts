import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { IdentityRegistry, type Identity, type JsonValue } from '@tibet/core';
import {
  FileReplayStore,
  Gateway,
  GatewayClient,
  GatewayError,
  ProcessAdapter,
  defaultAdapters,
  serveGateway,
  type Adapter,
  type ClientExecResult,
  type GatewayErrorCode,
  type ProcessAdapterOptions,
  type ProcessIsolation,
} from '@tibet/gateway';
import { Keychain } from '@tibet/keychain';
import { inspectCapsule, type CapsuleRequest, type ExecRequest } from '@tibet/sam';
import { checkActor } from '../checks.js';
import { keychainServiceId } from '../config.js';
import { EXIT, UserError, refusal, usage } from '../errors.js';
import { readInput, tibetHome, writeFileAtomic } from '../home.js';
import { identityPaths, loadPrivateIdentity } from '../identities.js';
import { bold, dim, green, note, out, printJson, red } from '../output.js';
import { HomeRegistry } from '../registry.js';
import { untilSignalled } from '../signals.js';
import { connect } from './continuityd-actions.js';
import type { GwAgentOpts, GwExecOpts, GwRequestOpts, GwServeOpts, GwTarget } from './gateway.js';

// ------------------------------------------------------------------ helpers

const USAGE_CODES: readonly GatewayErrorCode[] = ['INVALID_REQUEST', 'DAEMON_UNAVAILABLE'];

function hintFor(code: GatewayErrorCode): string | undefined {
  switch (code) {
    case 'DAEMON_UNAVAILABLE':
      return 'start it with `tibet gateway serve --as <gateway id>`, or pass --socket / --gateway';
    case 'NOT_CONFIGURED':
      return 'the daemon issues capsules only with --issuer, and by default only on its socket';
    case 'ISSUE_REFUSED':
      return 'see the sam code: AGENT_UNAUTHENTICATED (sign with --as; the gateway must know the agent: `tibet id import`), or the keychain policy’s refusal (`tkc policy <secret-id>`)';
    case 'AUDIT_FAILED':
      return 'nothing was executed; check the log with `tibet continuityd head`';
    case 'AUDIT_INCOMPLETE':
      return 'the act happened but its receipt event is not in the log; keep the receipt';
    case 'BACKPRESSURE':
      return 'the gateway is busy; try again';
    case 'RECEIPT_INVALID':
      return 'do not trust this answer: the receipt is not signed by a registered gateway';
    default:
      return undefined;
  }
}

function translate(e: unknown): unknown {
  if (!GatewayError.is(e)) return e;
  const detail = e.detailCode ? ` (${e.detailCode})` : '';
  return refusal(e, USAGE_CODES, hintFor(e.code), `${e.message}${detail}`);
}

function constraints(list: string[] | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const kv of list ?? []) {
    const i = kv.indexOf('=');
    if (i <= 0) throw usage(`--constraint: "${kv}" is not key=value`);
    out[kv.slice(0, i)] = kv.slice(i + 1);
  }
  return out;
}

async function readJsonFile(path: string, what: string): Promise<JsonValue> {
  const bytes = await readInput(path, what);
  try {
    return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes)) as JsonValue;
  } catch {
    throw usage(`${what} ${path} is not JSON`);
  }
}

function client(o: GwTarget, agent?: Identity): GatewayClient {
  const directory = new HomeRegistry(tibetHome()).registry;
  const opts = { directory, ...(agent ? { agent } : {}) };
  if (o.gateway !== undefined) {
    try {
      return new GatewayClient(o.gateway, opts);
    } catch (e) {
      throw usage(`--gateway: ${(e as Error).message}`);
    }
  }
  const socketPath = o.socket ?? join(tibetHome(), 'gateway.sock');
  if (o.socket === undefined && !existsSync(socketPath))
    throw new UserError(`no gateway daemon at ${socketPath}`, {
      exitCode: EXIT.usage,
      code: 'DAEMON_UNAVAILABLE',
      hint: hintFor('DAEMON_UNAVAILABLE')!,
    });
  return new GatewayClient({ socketPath }, opts);
}

/**
 * The agent's own identity, to sign with: `--as`, else the requesting actor when this home
 * holds its key; none with `--unsigned`. Never a custodian's or a secret.
 */
async function agentIdentity(o: GwAgentOpts, actor: string): Promise<Identity | undefined> {
  if (o.unsigned) {
    if (o.as !== undefined) throw usage('give --as or --unsigned, not both');
    return undefined;
  }
  const home = tibetHome();
  const id = o.as ?? actor;
  checkActor(id, '--as');
  if (id !== actor)
    throw usage(
      `--as ${id} is not the requesting actor ${actor}`,
      'an agent signs only for itself',
    );
  if (o.as === undefined && !existsSync(identityPaths(home, id).key))
    throw usage(
      `no key of ${id} in ${home} to sign the request with`,
      'pass --as <agent id> with the agent’s TIBET_HOME, or --unsigned for a daemon run with --allow-unsigned-agents',
    );
  const who = await loadPrivateIdentity(home, id);
  if (who.id !== id) {
    who.destroy();
    throw new UserError(`the key file of ${id} holds ${who.id}`, { code: 'KEYFILE_INVALID' });
  }
  return who;
}

/**
 * The gateway's directory: the public identities under the home, read again (at most every
 * 2 s) when a key is not found, so that an agent imported while the daemon runs is known.
 */
class LiveHomeRegistry extends IdentityRegistry {
  readonly #home: string;
  #loadedAt = 0;
  constructor(home: string) {
    super();
    this.#home = home;
    this.#load();
  }
  #load(): void {
    for (const p of new HomeRegistry(this.#home).registry.all()) {
      try {
        this.add(p);
      } catch {
        // an invalid public identity is simply not trusted
      }
    }
    this.#loadedAt = Date.now();
  }
  override signingKey(actor: string, kid: string): Uint8Array | undefined {
    const k = super.signingKey(actor, kid);
    if (k || Date.now() - this.#loadedAt < 2000) return k;
    this.#load();
    return super.signingKey(actor, kid);
  }
}

// ------------------------------------------------------------------ serve

function numericId(v: string | undefined, flag: string): number | undefined {
  if (v === undefined) return undefined;
  const n = /^\d{1,10}$/.test(v) ? Number(v) : Number.NaN;
  if (!(n <= 0xfffffffe))
    throw usage(`${flag} must be a numeric id 0..4294967294`, 'e.g. `id -u tibet-exec`');
  return n;
}

/**
 * The adapters, with `/exec` only when asked for: under another user (--exec-uid/--exec-gid)
 * or, for development, as the daemon's own (--allow-exec-same-user). A configuration that
 * would not isolate is a usage error here, before anything starts (the adapter would refuse
 * every exec, burning capsules).
 */
function serveAdapters(o: GwServeOpts): { adapters: Adapter[]; exec: ProcessIsolation | null } {
  const uid = numericId(o.execUid, '--exec-uid');
  const gid = numericId(o.execGid, '--exec-gid');
  if ((uid === undefined) !== (gid === undefined))
    throw usage('give --exec-uid and --exec-gid together');
  const enabled = uid !== undefined || o.allowExecSameUser === true;
  const proc: ProcessAdapterOptions = {
    ...(uid !== undefined && gid !== undefined ? { uid, gid } : {}),
    ...(o.allowExecSameUser ? { allowSameUser: true } : {}),
  };
  const adapters = defaultAdapters(enabled ? { process: proc } : {});
  const p = adapters.find((a): a is ProcessAdapter => a instanceof ProcessAdapter);
  const exec = p ? p.isolation() : null;
  if (exec?.mode === 'refused')
    throw usage(
      `--exec-uid: ${exec.reason}`,
      'run the daemon as root with a dedicated user for /exec, or --allow-exec-same-user (development only)',
    );
  return { adapters, exec };
}

function sameUserWarning(x: { uid: number | null; gid: number | null }): string {
  const own = process.getuid?.();
  const user = x.uid === null || x.uid === own;
  return (
    `WARNING: /exec commands run ${user ? `as this daemon's own OS user (uid ${own ?? '?'})` : `with this daemon's own group (gid ${x.gid})`}. ` +
    `They can read ${user ? 'its key files, TIBET_PASSPHRASE_FILE and ' + `/proc/${process.pid}/environ, and so decrypt every secret in the keychain` : 'whatever that group can'}. ` +
    'For development only (--allow-exec-same-user); use --exec-uid/--exec-gid with a dedicated user.'
  );
}

export async function serve(o: GwServeOpts): Promise<void> {
  checkActor(o.as, '--as');
  if (o.issuer !== undefined) checkActor(o.issuer, '--issuer');
  const port = o.port === undefined ? undefined : Number(o.port);
  if (port !== undefined && !(Number.isInteger(port) && port >= 0 && port < 65536))
    throw usage('--port must be 0..65535');
  const timeout = Number(o.sessionTimeout ?? '30000');
  if (!(Number.isSafeInteger(timeout) && timeout > 0))
    throw usage('--session-timeout must be a positive number of milliseconds');
  const home = tibetHome();
  const socketPath =
    o.socket === false
      ? undefined
      : typeof o.socket === 'string'
        ? o.socket
        : join(home, 'gateway.sock');
  if (!socketPath && port === undefined)
    throw usage('nothing to listen on: give --port or keep the socket');
  const { adapters, exec: execUser } = serveAdapters(o);
  if (execUser?.mode === 'same-user') note(red(sameUserWarning(execUser), process.stderr));
  const sid = await keychainServiceId(home, o.service);
  const audit = await connect({
    ...(o.logSocket !== undefined ? { socket: o.logSocket } : {}),
    ...(o.logUrl !== undefined ? { url: o.logUrl } : {}),
    ...(o.logDir !== undefined ? { dir: o.logDir } : {}),
    ...(o.logAs !== undefined ? { logAs: o.logAs } : {}),
  });
  const held: Identity[] = [];
  const load = async (id: string): Promise<Identity> => {
    const found = held.find((x) => x.id === id);
    if (found) return found;
    const i = await loadPrivateIdentity(home, id);
    if (i.id !== id)
      throw new UserError(`the key file of ${id} holds ${i.id}`, { code: 'KEYFILE_INVALID' });
    held.push(i);
    return i;
  };
  try {
    const identity = await load(o.as);
    if (identity.actorClass !== 'gateway')
      throw new UserError(`${o.as} is of class ${identity.actorClass}, not gateway`, {
        code: 'NOT_A_GATEWAY',
        hint: 'create one with `tibet id create <id> --class gateway`',
      });
    const service = await load(sid);
    const issuer = o.issuer !== undefined ? await load(o.issuer) : undefined;
    const directory = new LiveHomeRegistry(home);
    const keychain = new Keychain({ home, audit, service, directory });
    const gateway = new Gateway({
      keychain,
      identity,
      directory,
      replayStore: new FileReplayStore(home),
      adapters,
      sessionTimeoutMs: timeout,
      requireAgentProof: !o.allowUnsignedAgents,
    });
    const d = await serveGateway({
      gateway,
      ...(socketPath ? { socketPath } : {}),
      ...(port !== undefined ? { port } : {}),
      ...(issuer ? { issuer } : {}),
      ...(o.issueOverHttp ? { issueOverHttp: true } : {}),
      ...(o.encryptCapsules ? { encryptCapsules: true } : {}),
    });
    const info = {
      pid: process.pid,
      gateway: identity.id,
      issuer: issuer?.id ?? null,
      socket: d.socketPath ?? null,
      url: d.port !== undefined ? `http://127.0.0.1:${d.port}` : null,
      agent_proof_required: gateway.requireAgentProof,
      adapters: gateway.adapters.map((a) => a.name),
      exec_isolation: execUser?.mode ?? null,
      ...(execUser?.mode === 'separate-user'
        ? { exec_uid: execUser.uid, exec_gid: execUser.gid }
        : {}),
    };
    const execLine =
      execUser === null
        ? `\n  exec   ${dim('off (enable with --exec-uid/--exec-gid)')}`
        : execUser.mode === 'separate-user'
          ? `\n  exec   as uid ${execUser.uid} gid ${execUser.gid}`
          : `\n  exec   ${red('NOT isolated: the daemon’s own user or group (development only)', process.stderr)}`;
    if (o.json) printJson(info);
    else
      note(
        `${green('gateway')} ${identity.id} serving${issuer ? ` (issues as ${issuer.id})` : ''}${d.socketPath ? `\n  socket ${d.socketPath}` : ''}${info.url ? `\n  http   ${info.url}` : ''}${execLine}${gateway.requireAgentProof ? '' : `\n  ${red('agents are NOT authenticated')} (--allow-unsigned-agents)`}`,
      );
    await untilSignalled();
    await d.close();
    await gateway.close();
  } catch (e) {
    throw translate(e);
  } finally {
    for (const i of held) i.destroy();
    await audit.close().catch(() => undefined);
  }
}

// ------------------------------------------------------------------ exec

function summary(r: ClientExecResult, json: boolean | undefined): void {
  const rc = r.receipt;
  if (json) {
    printJson({
      status: rc.status,
      policy_verdict: rc.policy_verdict,
      executed_action: rc.executed_action,
      result_summary: rc.result_summary,
      log_index: r.logIndex,
      receipt_verified: r.verified,
      receipt: rc,
      response: r.response,
    });
    return;
  }
  const ok = rc.status === 'executed';
  out(
    `${ok ? green('executed') : red('denied')} ${bold(rc.sam_id ?? '(unreadable capsule)')}  ${dim(`${rc.policy_verdict} · log #${r.logIndex} · ${rc.receipt_action_id}${r.verified ? ' · receipt verified' : ''}`)}`,
  );
  if (rc.executed_action) out(`  ${rc.executed_action}`);
  out(`  ${rc.result_summary}`);
  if (r.response !== null) out(JSON.stringify(r.response, null, 2));
}

export async function exec(file: string, o: GwExecOpts): Promise<void> {
  if (o.payload !== undefined && o.payloadFile !== undefined)
    throw usage('give --payload or --payload-file, not both');
  const home = tibetHome();
  const bytes = await readInput(file, 'capsule');
  // what the agent can read of its own capsule (never needs a key)
  let readable: { actor_id?: string; target_action?: string } = {};
  let own: Record<string, string> | undefined;
  try {
    const ins = inspectCapsule(bytes, { directory: new HomeRegistry(home).registry });
    readable = ins.readable;
    if (ins.capsule) own = Object.fromEntries(ins.capsule.constraints.map((c) => [c.key, c.value]));
  } catch {
    readable = {}; // the gateway will refuse it; the agent must then say who and what
  }
  const actor = o.actor ?? o.as ?? readable.actor_id;
  const action = o.action ?? readable.target_action;
  if (!actor || !action) throw usage('the capsule is unreadable here: give --actor and --action');
  if (o.actor !== undefined) checkActor(o.actor, '--actor');
  const req: ExecRequest = {
    actor_id: actor,
    action,
    constraints: o.constraint?.length ? constraints(o.constraint) : (own ?? {}),
    ...(o.url !== undefined ? { upstream_url: o.url } : {}),
    ...(o.method !== undefined ? { upstream_method: o.method.toUpperCase() } : {}),
    ...(o.payload !== undefined ? { payload: o.payload } : {}),
    ...(o.payloadFile !== undefined
      ? { payload: await readJsonFile(o.payloadFile, 'payload file') }
      : {}),
  };
  const agent = await agentIdentity(o, actor);
  let r: ClientExecResult;
  try {
    r = await client(o, agent).exec(bytes, req);
  } catch (e) {
    throw translate(e);
  } finally {
    agent?.destroy();
  }
  if (o.receiptOut !== undefined)
    await writeFileAtomic(o.receiptOut, r.receiptBytes, { mode: 0o644, exclusive: true });
  summary(r, o.json);
  if (!r.verified)
    note(dim('(receipt not verified: the gateway’s public identity is not in this home)'));
  if (r.receipt.status !== 'executed') process.exitCode = EXIT.failed;
}

// ------------------------------------------------------------------ request

export async function requestCapsule(secretId: string, o: GwRequestOpts): Promise<void> {
  const actor = o.actor ?? o.as;
  if (actor === undefined) throw usage('give --as <agent id> (or --actor with --unsigned)');
  checkActor(actor, o.actor !== undefined ? '--actor' : '--as');
  if (!o.intent.trim()) throw usage('--intent must not be empty');
  const ttl = o.ttl === undefined ? undefined : Number(o.ttl);
  if (ttl !== undefined && !(Number.isSafeInteger(ttl) && ttl > 0))
    throw usage('--ttl must be a positive number of seconds');
  if (existsSync(o.out)) throw usage(`${o.out} exists; capsules are never overwritten`);
  const req: CapsuleRequest = {
    secret_id: secretId,
    actor_id: actor,
    target_action: o.action,
    intent: o.intent,
    constraints: Object.entries(constraints(o.constraint)).map(([key, value]) => ({ key, value })),
    ...(o.lane !== undefined ? { policy_lane: o.lane } : {}),
    ...(ttl !== undefined ? { ttl_seconds: ttl } : {}),
    ...(o.url !== undefined ? { upstream_url: o.url } : {}),
    ...(o.method !== undefined ? { upstream_method: o.method.toUpperCase() } : {}),
    ...(o.payloadFile !== undefined
      ? { upstream_payload: await readJsonFile(o.payloadFile, 'payload file') }
      : {}),
  };
  const agent = await agentIdentity(o, actor);
  let issued;
  try {
    issued = await client(o, agent).requestCapsule(req);
  } catch (e) {
    if (!GatewayError.is(e) && (e as { code?: string }).code === 'INVALID_REQUEST')
      throw new UserError((e as Error).message, { exitCode: EXIT.usage, code: 'INVALID_REQUEST' });
    throw translate(e);
  } finally {
    agent?.destroy();
  }
  await writeFileAtomic(o.out, issued.bytes, { mode: 0o600, exclusive: true });
  const c = issued.capsule;
  if (o.json)
    printJson({
      file: o.out,
      sam_id: c.sam_id,
      action_id: c.action_id,
      valid_until: c.valid_until,
      verified: issued.verified,
      capsule: c,
    });
  else
    out(
      `${green('issued')} ${bold(c.sam_id)} → ${o.out}  ${dim(`${c.target_action} for ${c.actor_id} · valid until ${c.valid_until} · ${c.action_id}`)}`,
    );
  if (!issued.verified)
    note(dim(`(capsule not verified here: the issuer ${c.issuer_id} is not in this home)`));
}

// ------------------------------------------------------------------ health

export async function health(o: GwTarget): Promise<void> {
  let h;
  try {
    h = await client(o).health();
  } catch (e) {
    throw translate(e);
  }
  if (o.json) printJson(h);
  else
    out(
      `${green('up')} ${h.gateway}  ${dim(`adapters ${h.adapters.join(', ')} · issuer ${h.issuer ?? '—'}`)}${
        h.exec_isolation === 'same-user'
          ? `  ${red('/exec runs as the gateway’s own user')}`
          : h.exec_isolation
            ? dim(` · /exec ${h.exec_isolation}`)
            : ''
      }`,
    );
}
