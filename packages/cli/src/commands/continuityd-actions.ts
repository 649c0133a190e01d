import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fromBase64, mintToken, parseActorId, parseRfc3339, type JsonValue } from '@tibet/core';
import {
  AuditLog,
  ContinuityError,
  DaemonClient,
  DiskIndex,
  queryLog,
  tailLog,
  verifyLog,
  EmbeddedClient,
  TREE_DIR,
  TreeStore,
  exportTlogProof,
  readLogLine,
  serveLog,
  verifyTlogProof,
  type AuditClient,
  type DaemonAddress,
} from '@tibet/continuityd';
import { UserError, usage } from '../errors.js';
import { readInput, tibetHome, writeFileAtomic } from '../home.js';
import { loadPrivateIdentity } from '../identities.js';
import { bold, dim, green, note, out, printJson } from '../output.js';
import { HomeRegistry } from '../registry.js';
import { untilSignalled } from '../signals.js';
import type { Target } from './continuityd.js';

export function logDir(dir?: string): string {
  return dir ?? join(tibetHome(), 'log');
}

export function defaultSocket(): string {
  return join(tibetHome(), 'continuityd.sock');
}

function parseUrl(u: string): DaemonAddress {
  let url: URL;
  try {
    url = new URL(u);
  } catch {
    throw usage(`--url: not a URL: ${u}`);
  }
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (url.protocol !== 'http:' || !['127.0.0.1', '::1', 'localhost'].includes(host)) {
    throw usage('--url must be http:// on a loopback address (127.0.0.1, ::1, localhost)');
  }
  return { host: host as '127.0.0.1', port: Number(url.port || 80) };
}

/** A daemon when one is named (or the default socket exists), else the folder itself. */
export async function connect(t: Target): Promise<AuditClient> {
  if (t.url) return new DaemonClient(parseUrl(t.url));
  if (t.socket) return new DaemonClient({ socketPath: t.socket });
  if (!t.dir && !t.logAs && existsSync(defaultSocket()))
    return new DaemonClient({ socketPath: defaultSocket() });
  if (!t.logAs) {
    throw usage(
      'no daemon found and no --log-as for embedded mode',
      'start `tibet continuityd serve --as <log id>`, or pass --dir and --log-as',
    );
  }
  const signer = await loadPrivateIdentity(tibetHome(), t.logAs);
  return new EmbeddedClient(await openLog(logDir(t.dir), signer, new HomeRegistry(tibetHome())));
}

/** Open the log with its Merkle node store as an observer (so proofs are O(log n)). */
export async function openLog(
  dir: string,
  signer: Awaited<ReturnType<typeof loadPrivateIdentity>>,
  registry: HomeRegistry,
  extra: { lockMode?: string; checkpointEvery?: number } = {},
): Promise<AuditLog> {
  const tree = await TreeStore.open(join(dir, TREE_DIR));
  try {
    return await AuditLog.open({
      dir,
      signer,
      registry,
      index: new DiskIndex(dir),
      observers: [tree],
      ...extra,
    });
  } catch (e) {
    await tree.close();
    throw e;
  }
}

export async function serve(o: {
  as: string;
  dir?: string;
  socket?: string | boolean;
  port?: string;
  checkpointEvery?: string;
  watchVaults?: string | boolean;
  json?: boolean;
}): Promise<void> {
  const port = o.port === undefined ? undefined : Number(o.port);
  const watchS =
    o.watchVaults === undefined || o.watchVaults === false
      ? undefined
      : o.watchVaults === true
        ? 30
        : Number(o.watchVaults);
  if (watchS !== undefined && !(Number.isFinite(watchS) && watchS >= 0.05 && watchS <= 86_400))
    throw usage('--watch-vaults takes seconds between 0.05 and 86400');
  if (port !== undefined && !(Number.isInteger(port) && port >= 0 && port < 65536))
    throw usage('--port must be 0..65535');
  const every = o.checkpointEvery === undefined ? undefined : Number(o.checkpointEvery);
  if (every !== undefined && !(Number.isInteger(every) && every >= 0))
    throw usage('--checkpoint-every must be a whole number');
  const socketPath =
    o.socket === false ? undefined : typeof o.socket === 'string' ? o.socket : defaultSocket();
  if (!socketPath && port === undefined)
    throw usage('nothing to listen on: give --port or keep the socket');
  const home = tibetHome();
  const signer = await loadPrivateIdentity(home, o.as);
  const registry = new HomeRegistry(home);
  const log = await openLog(logDir(o.dir), signer, registry, {
    lockMode: 'daemon',
    ...(every !== undefined ? { checkpointEvery: every } : {}),
  });
  const d = await serveLog({
    log,
    ...(socketPath ? { socketPath } : {}),
    ...(port !== undefined ? { port } : {}),
  });
  const info = {
    pid: process.pid,
    dir: log.dir,
    origin: log.origin,
    size: log.size,
    socket: d.socketPath ?? null,
    url: d.port !== undefined ? `http://127.0.0.1:${d.port}` : null,
  };
  if (o.json) printJson(info);
  else
    note(
      `${green('continuityd')} serving ${log.dir} (${log.size} records, ${registry.registry.all().length} actors)${d.socketPath ? `\n  socket ${d.socketPath}` : ''}${info.url ? `\n  http   ${info.url}` : ''}`,
    );
  // the vault watcher in this daemon: its events go straight into this log
  const stopWatch = new AbortController();
  let watching: Promise<void> | undefined;
  if (watchS !== undefined) {
    try {
      const { watchInDaemon } = await import('./vault-actions.js');
      ({ done: watching } = await watchInDaemon(
        new EmbeddedClient(log),
        Math.round(watchS * 1000),
        stopWatch.signal,
        (line) => note(line),
      ));
      note(`  vaults checked every ${watchS} s`);
    } catch (e) {
      await d.close();
      await log.close();
      throw e;
    }
  }
  await untilSignalled();
  stopWatch.abort();
  await watching?.catch(() => undefined);
  await d.close();
  await log.close();
  note('continuityd stopped');
}

export async function append(
  o: Target & {
    token?: string;
    as?: string;
    event?: string;
    why?: string;
    erin?: string;
    parent?: string;
    object?: string;
    continuity?: string;
    json?: boolean;
  },
): Promise<void> {
  if (Boolean(o.token) === Boolean(o.as))
    throw usage('give exactly one of --token <file> or --as <actor>');
  const client = await connect(o);
  try {
    const opts = {
      ...(o.object ? { objectId: o.object } : {}),
      ...(o.continuity ? { continuityId: o.continuity } : {}),
    };
    let token: unknown;
    if (o.token) {
      const text = new TextDecoder().decode(await readInput(o.token, 'token'));
      try {
        token = JSON.parse(text);
      } catch {
        throw usage('the token is not JSON');
      }
    } else {
      if (!o.event || !o.why) throw usage('--as needs --event and --why');
      let erin: JsonValue = null;
      if (o.erin !== undefined) {
        try {
          erin = JSON.parse(o.erin) as JsonValue;
        } catch {
          throw usage('--erin must be JSON');
        }
      }
      parseActorId(o.as!);
      const me = await loadPrivateIdentity(tibetHome(), o.as!);
      try {
        const line = o.continuity ?? o.object ?? me.id;
        const prev = await client.lastOnLine(line);
        const parent = o.parent ? await client.action(o.parent) : undefined;
        if (o.parent && !parent)
          throw new UserError(`parent ${o.parent} is not in the log`, {
            code: 'CAUSAL_PARENT_UNKNOWN',
          });
        token = mintToken(
          {
            actor: me.id,
            actorClass: me.actorClass,
            event: o.event,
            erachter: o.why,
            erin,
            eraan: o.object ? [{ object_id: o.object }] : [],
            prev: prev ? { hash: prev.tokenHash, generation: prev.generation } : null,
            parent:
              o.parent && parent ? { action_id: o.parent, generation: parent.generation } : null,
          },
          me,
        );
      } finally {
        me.destroy();
      }
    }
    const r = await client.append(token as never, opts);
    if (o.json) printJson(r);
    else out(`${green('appended')} #${r.index} ${r.actionId} ${dim(r.receivedAt)}`);
  } finally {
    await client.close();
  }
}

export async function checkpoint(o: Target & { json?: boolean }): Promise<void> {
  const client = await connect(o);
  try {
    const n = await client.checkpoint();
    if (o.json) printJson({ note: n });
    else process.stdout.write(n);
  } finally {
    await client.close();
  }
}

export async function head(o: Target & { json?: boolean }): Promise<void> {
  const client = await connect(o);
  try {
    const h = await client.head();
    if (o.json) printJson(h);
    else {
      out(`${bold(h.origin)}  size ${h.size}  root ${h.root}`);
      if (h.checkpoint) out(dim(h.checkpoint.trimEnd().replace(/^/gm, '  ')));
    }
  } finally {
    await client.close();
  }
}

export async function prove(
  index: string | undefined,
  o: {
    dir?: string;
    out?: string;
    check?: string;
    logKey?: string;
    entry?: string;
    json?: boolean;
  },
): Promise<void> {
  if (o.check) {
    if (!o.logKey || !o.entry)
      throw usage('--check needs --log-key <log.json> and --entry <line file>');
    const text = new TextDecoder().decode(await readInput(o.check, 'proof'));
    let meta: { key_name?: unknown; public_key?: unknown };
    try {
      meta = JSON.parse(
        new TextDecoder().decode(await readInput(o.logKey, 'log key')),
      ) as typeof meta;
    } catch {
      throw usage("--log-key must be the log's log.json");
    }
    if (typeof meta.key_name !== 'string' || typeof meta.public_key !== 'string')
      throw usage('--log-key: no key_name/public_key in that file');
    let entry = await readInput(o.entry, 'entry');
    if (entry.length && entry[entry.length - 1] === 0x0a)
      entry = entry.subarray(0, entry.length - 1);
    try {
      const r = verifyTlogProof(text, {
        entry,
        logKeyName: meta.key_name,
        logPublicKey: fromBase64(meta.public_key),
      });
      if (o.json)
        printJson({
          valid: true,
          index: r.index,
          size: r.checkpoint.size,
          origin: r.checkpoint.origin,
        });
      else
        out(
          `${green('VALID')} record ${r.index} is in ${r.checkpoint.origin} at tree size ${r.checkpoint.size}`,
        );
    } catch (e) {
      if (!ContinuityError.is(e)) throw e;
      if (o.json) printJson({ valid: false, code: e.code, reason: e.message });
      else out(`INVALID: ${e.message} [${e.code}]`);
      process.exitCode = 1;
    }
    return;
  }
  const n = Number(index);
  if (index === undefined || !Number.isSafeInteger(n) || n < 0)
    throw usage('give the record index to prove');
  const dir = logDir(o.dir);
  const proof = await exportTlogProof(dir, n);
  if (o.out) {
    await writeFileAtomic(o.out, proof);
    const line = await readLogLine(dir, n);
    await writeFileAtomic(`${o.out}.entry`, line);
    note(`wrote ${o.out} and the record line ${o.out}.entry`);
  } else process.stdout.write(proof);
}

function printRecord(
  hit: {
    index: number;
    record: {
      received_at: string;
      token: { actor: string; event: string; action_id: string; erachter: string };
      causal: { object_id: string | null };
    };
  },
  json?: boolean,
): void {
  if (json) {
    process.stdout.write(JSON.stringify({ index: hit.index, ...hit.record }) + '\n');
    return;
  }
  const r = hit.record;
  out(
    `#${String(hit.index).padEnd(6)} ${dim(r.received_at)}  ${bold(r.token.event.padEnd(22))} ${r.token.actor}${r.causal.object_id ? ` · ${r.causal.object_id}` : ''}  ${dim(r.token.action_id)}`,
  );
  out(`        ${r.token.erachter}`);
}

export async function tail(o: {
  dir?: string;
  from?: string;
  follow?: boolean;
  json?: boolean;
}): Promise<void> {
  const from = o.from === undefined ? -10 : Number(o.from);
  if (!Number.isSafeInteger(from)) throw usage('--from must be a whole number');
  const ac = new AbortController();
  const stop = (): void => ac.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    for await (const hit of tailLog(logDir(o.dir), {
      from,
      follow: Boolean(o.follow),
      signal: ac.signal,
    }))
      printRecord(hit, o.json);
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
}

export async function query(o: {
  dir?: string;
  action?: string;
  object?: string;
  actor?: string;
  since?: string;
  until?: string;
  limit?: string;
  json?: boolean;
}): Promise<void> {
  const limit = o.limit === undefined ? 100 : Number(o.limit);
  if (!Number.isSafeInteger(limit) || limit < 0) throw usage('--limit must be a whole number');
  const time = (v: string | undefined, name: string): Date | undefined => {
    if (v === undefined) return undefined;
    const d = parseRfc3339(v);
    if (!d) throw usage(`${name} must be an RFC 3339 UTC time, e.g. 2026-11-28T12:00:00Z`);
    return d;
  };
  const since = time(o.since, '--since');
  const until = time(o.until, '--until');
  if (!o.action && !o.object && !o.actor && !since && !until)
    throw usage('give at least one of --action, --object, --actor, --since, --until');
  const hits = await queryLog(logDir(o.dir), {
    ...(o.action ? { actionId: o.action } : {}),
    ...(o.object ? { objectId: o.object } : {}),
    ...(o.actor ? { actor: o.actor } : {}),
    ...(since ? { from: since } : {}),
    ...(until ? { to: until } : {}),
    limit,
  });
  for (const h of hits) printRecord(h, o.json);
  if (!hits.length && !o.json) note('no matching records');
}

export async function verify(o: {
  dir?: string;
  trustedCheckpoint?: string;
  workers?: string;
  json?: boolean;
}): Promise<void> {
  const dir = logDir(o.dir);
  let meta: { key_name?: unknown; public_key?: unknown };
  try {
    meta = JSON.parse(
      new TextDecoder().decode(await readInput(join(dir, 'log.json'), 'log.json')),
    ) as typeof meta;
  } catch (e) {
    if (UserError.is(e)) throw e;
    throw new UserError(`${join(dir, 'log.json')} is not valid JSON`, { code: 'META_INVALID' });
  }
  if (typeof meta.public_key !== 'string')
    throw new UserError('log.json has no public_key', { code: 'META_INVALID' });
  const workers = o.workers === undefined ? undefined : Number(o.workers);
  if (workers !== undefined && !(Number.isInteger(workers) && workers >= 0))
    throw usage('--workers must be a whole number');
  const trusted = o.trustedCheckpoint
    ? new TextDecoder().decode(await readInput(o.trustedCheckpoint, 'checkpoint'))
    : undefined;
  const tty = process.stderr.isTTY && !o.json;
  const report = await verifyLog(dir, {
    registry: new HomeRegistry(tibetHome()),
    logPublicKey: fromBase64(meta.public_key),
    ...(trusted ? { trustedCheckpoint: trusted } : {}),
    ...(workers !== undefined ? { workers } : {}),
    ...(tty
      ? {
          onProgress: (p: { lines?: number; bytes?: number; totalBytes?: number }) =>
            process.stderr.write(
              `\r  verifying… ${p.lines ?? 0} lines${p.totalBytes ? ` (${Math.round(((p.bytes ?? 0) / p.totalBytes) * 100)} %)` : ''}   `,
            ),
        }
      : {}),
  });
  if (tty) process.stderr.write('\n');
  if (o.json) printJson(report);
  else {
    out(
      report.ok
        ? `${green('VALID')}  ${dir}: ${report.size} lines, root ${report.root}`
        : `INVALID  ${dir}: ${report.problems.length} problem(s)`,
    );
    for (const p of report.problems.slice(0, 50)) {
      const where = [
        p.index !== undefined ? `line ${p.index}` : '',
        p.segment ? `segment ${p.segment}` : '',
        p.checkpoint ? `checkpoint ${p.checkpoint}` : '',
      ]
        .filter(Boolean)
        .join(', ');
      out(
        `  ${p.severity === 'warning' ? 'warning' : 'error  '} ${p.code}${where ? ` (${where})` : ''}: ${p.message}`,
      );
    }
    if (report.problems.length > 50)
      out(`  … ${report.problems.length - 50} more (--json for all)`);
  }
  if (!report.ok) process.exitCode = 1;
}
