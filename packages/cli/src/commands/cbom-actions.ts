import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { parseRfc3339 } from '@tibet/core';
import { SIGNING_TYPES, type SecretType } from '@tibet/keychain';
import {
  CbomError,
  continuityBom,
  exportCycloneDx,
  renderHtml,
  renderMarkdown,
  renderText,
  shouldColor,
  verifyReport,
  verifyView,
  walk,
  walkHtml,
  writeReport,
  type GraphSubject,
  type View,
  type WalkOptions,
  type WalkResult,
} from '@tibet/cbom';
import { EXIT, refusal, usage } from '../errors.js';
import { tibetHome } from '../home.js';
import { green, note, red, yellow } from '../output.js';
import { HomeRegistry } from '../registry.js';
import { CBOM_FORMATS, type CbomOpts, type CbomReportOpts } from './cbom.js';

type Format = (typeof CBOM_FORMATS)[number];

const KINDS = ['secret', 'action', 'bundle', 'capsule', 'home'] as const;

function translate(e: unknown): unknown {
  if (!CbomError.is(e)) return e;
  const hint =
    e.code === 'NOT_PROVABLE'
      ? 'sign a checkpoint (`tibet continuityd checkpoint`) and try again'
      : e.code === 'SUBJECT_NOT_FOUND'
        ? 'see `tkc list`, or pass the bundle with --bundle'
        : undefined;
  return refusal(e, ['INVALID_INPUT'], hint);
}

function formatOf(o: CbomOpts, dflt: Format): Format {
  if (o.json) {
    if (o.format !== undefined && o.format !== 'json') throw usage('--json and --format disagree');
    return 'json';
  }
  const f = o.format ?? dflt;
  if (!(CBOM_FORMATS as readonly string[]).includes(f))
    throw usage(`--format must be one of ${CBOM_FORMATS.join(', ')}; got "${f}"`);
  return f as Format;
}

function specOf(o: CbomOpts): '1.6' | '1.7' {
  const s = o.spec ?? '1.6';
  if (s !== '1.6' && s !== '1.7') throw usage(`--spec must be 1.6 or 1.7; got "${s}"`);
  return s;
}

function subjectOf(subject: string | undefined, o: CbomOpts): GraphSubject | string {
  if (o.kind === undefined) return subject ?? 'home';
  if (!(KINDS as readonly string[]).includes(o.kind))
    throw usage(`--kind must be one of ${KINDS.join(', ')}`);
  return { kind: o.kind as GraphSubject['kind'], id: subject ?? '*' };
}

function walkOptions(subject: string | undefined, o: CbomOpts): WalkOptions {
  const home = o.home ?? tibetHome();
  return {
    home,
    ...(o.log ? { logDir: o.log } : {}),
    ...(o.keychain ? { keychainDir: o.keychain } : {}),
    bundles: o.bundle ?? [],
    directory: new HomeRegistry(home).registry,
    subject: subjectOf(subject, o),
    store: o.store === false ? 'none' : 'full',
  };
}

async function walkFor(subject: string | undefined, o: CbomOpts): Promise<WalkResult> {
  try {
    return await walk(walkOptions(subject, o));
  } catch (e) {
    throw translate(e);
  }
}

/** The walk and its HTML page, built while the walk's checks run (`walkHtml`). */
async function walkForHtml(
  subject: string | undefined,
  o: CbomOpts,
): Promise<{ graph: WalkResult; html: string }> {
  try {
    return await walkHtml(walkOptions(subject, o));
  } catch (e) {
    throw translate(e);
  }
}

/** Write to a new file (never over an existing one), durably; or to stdout. */
async function emit(text: string, out: string | undefined): Promise<void> {
  if (out === undefined) {
    await new Promise<void>((res, rej) =>
      process.stdout.write(text, (err) => (err ? rej(err) : res())),
    );
    return;
  }
  let fh;
  try {
    fh = await open(out, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o644);
  } catch (e) {
    throw usage(
      `cannot create ${out}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`,
      'choose a new file name',
    );
  }
  try {
    await fh.writeFile(text);
    await fh.sync();
  } finally {
    await fh.close();
  }
  note(`wrote ${out}`);
}

function render(g: WalkResult, view: View, format: Format, o: CbomOpts): string {
  switch (format) {
    case 'json':
      return JSON.stringify(continuityBom(g), null, 2) + '\n';
    case 'md':
      return renderMarkdown(g, { view });
    case 'html':
      return renderHtml(g); // (the views use walkHtml: the same page)
    case 'cyclonedx':
      return JSON.stringify(exportCycloneDx(g, { spec: specOf(o) }), null, 2) + '\n';
    case 'text':
      return renderText(g, { view, color: o.out === undefined && shouldColor(process.stdout) });
  }
}

/** `tibet cbom inspect|timeline|authority|verify [subject]`. */
export async function view(name: View, subject: string | undefined, o: CbomOpts): Promise<void> {
  const format = formatOf(o, 'text');
  if (format !== 'cyclonedx' && o.spec !== undefined) throw usage('--spec goes with cyclonedx');
  let g: WalkResult;
  let text: string;
  if (format === 'html') ({ graph: g, html: text } = await walkForHtml(subject, o));
  else text = render((g = await walkFor(subject, o)), name, format, o);
  await emit(text, o.out);
  if (name === 'verify' && verifyView(g).status === 'fail') process.exitCode = EXIT.failed;
}

/** `tibet cbom export [subject]`. */
export async function exportBom(subject: string | undefined, o: CbomOpts): Promise<void> {
  const format = formatOf(o, 'cyclonedx');
  if (format !== 'cyclonedx' && format !== 'json')
    throw usage('export writes cyclonedx or json; use a view for text, md or html');
  const g = await walkFor(subject, o);
  await emit(render(g, 'timeline', format, o), o.out);
  if (g.problems.some((p) => p.severity !== 'warning'))
    note(
      yellow(
        `warning: ${g.problems.length} problem(s) found while walking (listed in the document's metadata)`,
        process.stderr,
      ),
    );
}

function date(v: string | undefined, what: string): Date {
  if (v === undefined)
    throw usage(`${what} is required`, 'an RFC 3339 UTC time, e.g. 2026-01-01T00:00:00Z');
  const d = parseRfc3339(v);
  if (!d) throw usage(`${what}: "${v}" is not an RFC 3339 UTC time`, 'e.g. 2026-01-01T00:00:00Z');
  return d;
}

/** `tibet cbom report <secret-id> --from --to --out`, or `--verify <folder>`. */
export async function report(id: string | undefined, o: CbomReportOpts): Promise<void> {
  if (o.verify !== undefined) {
    if (id !== undefined || o.out !== undefined || o.from !== undefined || o.to !== undefined)
      throw usage('--verify takes only a folder (and --log-key)');
    let r;
    try {
      r = await verifyReport(o.verify, o.logKey !== undefined ? { logKey: o.logKey } : {});
    } catch (e) {
      if (e instanceof TypeError) throw usage(e.message);
      throw translate(e);
    }
    if (o.json) process.stdout.write(JSON.stringify(r, null, 2) + '\n');
    else {
      for (const c of r.checks)
        process.stdout.write(
          `${c.status === 'pass' ? green('pass', process.stdout) : c.status === 'warn' ? yellow('warn', process.stdout) : red('FAIL', process.stdout)}  ${c.name}: ${c.detail}\n`,
        );
      process.stdout.write(
        r.authenticated
          ? `${green('verified', process.stdout)}: every event proven under the pinned log key\n`
          : r.ok
            ? `${yellow('intact but not authenticated', process.stdout)}: pass --log-key to pin the log's key\n`
            : `${red('NOT verified', process.stdout)}\n`,
      );
    }
    if (!r.authenticated) process.exitCode = EXIT.failed;
    return;
  }
  if (id === undefined) throw usage('report needs a secret id (or --verify <folder>)');
  if (o.out === undefined) throw usage('report needs --out <folder>');
  const from = date(o.from, '--from');
  const to = date(o.to, '--to');
  const home = o.home ?? tibetHome();
  let doc;
  try {
    doc = await writeReport({
      home,
      logDir: o.log ?? join(home, 'log'),
      directory: new HomeRegistry(home).registry,
      secretId: id,
      from,
      to,
      out: o.out,
    });
  } catch (e) {
    throw translate(e);
  }
  if (o.json)
    process.stdout.write(
      JSON.stringify(
        {
          out: o.out,
          secret_id: doc.secret_id,
          from: doc.from,
          to: doc.to,
          could: doc.who_could_have_signed.actors.map((a) => a.actor),
          signed: doc.who_did_sign.signed.length,
          events: doc.events.length,
          log_key: doc.log.verifier_key,
        },
        null,
        2,
      ) + '\n',
    );
  note(
    SIGNING_TYPES.includes(doc.secret_type as SecretType)
      ? `wrote ${o.out}: ${doc.who_could_have_signed.actors.length} actor(s) could have signed, ${doc.who_did_sign.signed.length} signature(s), ${doc.events.length} proven event(s)`
      : `wrote ${o.out}: ${doc.who_could_have_signed.actors.length} actor(s) could have used it, ${doc.who_did_sign.signed.length} use(s) through a gateway, ${doc.events.length} proven event(s)`,
  );
  note(`check it offline: tibet cbom report --verify ${o.out} --log-key '${doc.log.verifier_key}'`);
}
