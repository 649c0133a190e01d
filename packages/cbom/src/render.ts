/**
 * Terminal and Markdown renderers of a walked graph and its Continuity BOM views. The
 * terminal form uses colour only when asked (`color: true`; {@link shouldColor} decides for a
 * stream: a TTY without NO_COLOR). Neither ever prints a token's content beyond the summary,
 * reason and ids: no secret is ever in a token, and none is printed.
 */
import type { CheckStatus, GraphNode, NodeMark } from './model.js';
import { shortActor } from './describe.js';
import {
  authorityView,
  inspectView,
  sourceLabel,
  timelineView,
  verifyView,
  type GraphInput,
} from './views.js';

export type View = 'inspect' | 'timeline' | 'authority' | 'verify';

export interface TextOptions {
  view?: View;
  /** ANSI colour (default false). */
  color?: boolean;
}

/** Colour for a stream: a TTY, NO_COLOR unset, TERM not `dumb`. */
export function shouldColor(
  stream: { isTTY?: boolean } = process.stdout,
  env: NodeJS.ProcessEnv = process.env,
): boolean {
  return Boolean(stream.isTTY) && !('NO_COLOR' in env) && env['TERM'] !== 'dumb';
}

type Paint = (s: string) => string;
interface Palette {
  red: Paint;
  green: Paint;
  yellow: Paint;
  cyan: Paint;
  dim: Paint;
  bold: Paint;
}

function palette(on: boolean): Palette {
  const w =
    (code: string): Paint =>
    (s) =>
      on ? `\u001b[${code}m${s}\u001b[0m` : s;
  return {
    red: w('31'),
    green: w('32'),
    yellow: w('33'),
    cyan: w('36'),
    dim: w('2'),
    bold: w('1'),
  };
}

const MARK_TEXT: Record<NodeMark, string> = {
  exposure: '!! EXPOSED',
  rotation: '<> ROTATED',
  denied: 'xx DENIED',
  custody: '=> CUSTODY',
  proxied: '-> PROXIED',
  release: '** RELEASE',
};

function markPaint(c: Palette, m: NodeMark): Paint {
  return m === 'exposure' || m === 'denied'
    ? c.red
    : m === 'rotation' || m === 'release'
      ? c.yellow
      : c.cyan;
}

function statusWord(c: Palette, s: CheckStatus): string {
  return s === 'pass' ? c.green('pass') : s === 'warn' ? c.yellow('warn') : c.red('FAIL');
}

function tick(c: Palette, s: CheckStatus): string {
  return s === 'pass' ? c.green('ok') : s === 'warn' ? c.yellow('~') : c.red('X');
}

function header(g: GraphInput, c: Palette): string[] {
  const out = [
    c.bold(`Continuity BOM · ${g.subject.kind} ${g.subject.id}`),
    c.dim(
      `${g.nodes.length} events · ${g.actors.length} actors · ${g.edges.length} links${g.log ? ` · log ${g.log.origin} checkpoint ${g.log.tree_size}` : ' · no checkpoint'} · generated ${g.generated_at}`,
    ),
  ];
  for (const s of g.secrets) {
    const leaked = !['sealed', 'in-use', 'rotated'].includes(s.exposure_state);
    out.push(
      `secret ${c.bold(s.secret_id)} ${s.secret_type} · v${s.version} · ${s.lifecycle_state === 'compromised' ? c.red(s.lifecycle_state) : s.lifecycle_state} · ${leaked ? c.red(s.exposure_state) : s.exposure_state}${s.rotation_required ? ` · ${c.yellow('rotation required')}` : ''}`,
    );
  }
  return out;
}

function linkLines(
  g: GraphInput,
  n: GraphNode,
  c: Palette,
  byId: Map<string, GraphNode>,
): string[] {
  const out: string[] = [];
  for (const e of g.edges) {
    if (e.to !== n.action_id) continue;
    const from = byId.get(e.from);
    const what = from ? `${e.from} ${from.event} by ${shortActor(from.actor)}` : e.from;
    if (e.status === 'ok')
      out.push(c.dim(`      ${e.kind === 'parent' ? '<-- parent' : '<-- prev  '} ${what}`));
    else
      out.push(
        c.red(
          `      ${e.kind === 'parent' ? '<-X parent' : '<-X prev  '} ${e.status.toUpperCase()}: ${e.detail ?? what}`,
        ),
      );
  }
  return out;
}

function timelineText(g: GraphInput, c: Palette): string[] {
  const byId = new Map(g.nodes.map((n) => [n.action_id, n]));
  const width = Math.min(
    28,
    Math.max(8, ...g.nodes.map((n) => shortActor(n.actor).length + n.actor_class.length + 3)),
  );
  const out: string[] = [];
  for (const n of g.nodes) {
    const who = `${shortActor(n.actor)} (${n.actor_class})`.padEnd(width);
    const mark = n.mark ? `${markPaint(c, n.mark)(MARK_TEXT[n.mark])} ` : '';
    const checks = `sig ${tick(c, n.checks.signature)} chain ${tick(c, n.checks.chain)} incl ${tick(c, n.checks.inclusion)}`;
    out.push(
      `g${String(n.generation).padEnd(4)} ${c.dim(n.timestamp)}  ${who} ${mark}${c.bold(n.event)}`,
    );
    out.push(`      ${n.summary}${n.reason ? c.dim(` — "${n.reason}"`) : ''}`);
    out.push(c.dim(`      ${n.action_id} · ${sourceLabel(n)} · `) + checks);
    out.push(...linkLines(g, n, c, byId));
  }
  if (!g.nodes.length) out.push(c.dim('(no events)'));
  return out;
}

function problemsText(g: GraphInput, c: Palette): string[] {
  if (!g.problems.length) return [c.green('no problems found')];
  const out = [c.bold(`problems (${g.problems.length}), never hidden:`)];
  for (const p of g.problems)
    out.push(
      `  ${p.severity === 'warning' ? c.yellow('warning') : c.red('error  ')} ${p.code}${p.action_id ? ` ${p.action_id}` : ''}: ${p.detail}`,
    );
  return out;
}

function inspectText(g: GraphInput, c: Palette): string[] {
  const v = inspectView(g);
  const out: string[] = [];
  for (const s of v.secrets) {
    out.push(c.bold(s.secret_id));
    const row = (k: string, x: string | null | number | boolean): void => {
      out.push(`  ${k.padEnd(16)}${x === null ? c.dim('—') : String(x)}`);
    };
    row('type', s.secret_type);
    row('issuer', s.issuer);
    row('scope', s.scope);
    row('created', s.created_at);
    row('expires', s.expires_at);
    row('lifecycle', s.lifecycle_state);
    row('exposure', s.exposure_state);
    row('rotation', s.rotation_required ? 'required' : 'not required');
    row('owner', s.owner_id);
    row('custodian', s.custodian_id);
    row('operator', s.active_operator_id);
    for (const x of s.versions)
      row(
        `v${x.version}`,
        `${x.state} · created ${x.created_at}${x.retired_at ? ` · retired ${x.retired_at}` : ''}`,
      );
  }
  if (v.log)
    out.push(`log ${v.log.origin} · checkpoint ${v.log.tree_size} · root ${v.log.root_hash}`);
  for (const b of v.bundles)
    out.push(
      `bundle ${statusWord(c, b.status)} ${b.kind ?? '?'} ${b.file}${b.signers.length ? ` · signed by ${b.signers.join(', ')}` : ''}${b.tokens ? ` · ${b.tokens} token(s)` : ''}`,
    );
  const k = v.counts;
  out.push(
    c.dim(
      `${k.events} events (${k.from_log} from the log, ${k.from_bundles} from bundles) · ${k.edges} links (${k.broken_edges} broken, ${k.missing_edges} missing) · ${k.actors} actors · ${k.problems} problems`,
    ),
  );
  return out;
}

function authorityText(g: GraphInput, c: Palette): string[] {
  const v = authorityView(g);
  const out: string[] = [];
  for (const s of v.secrets) {
    out.push(`${c.bold(s.secret_id)}  status ${s.status}`);
    out.push(
      `  owner ${s.owner_id ?? '—'} · custodian ${s.custodian_id ?? '—'} · operator ${s.active_operator_id ?? '—'}`,
    );
    if (s.pending_handoff)
      out.push(
        c.yellow(
          `  pending: ${s.pending_handoff.role} → ${s.pending_handoff.assignee} (offered by ${s.pending_handoff.offered_by})`,
        ),
      );
    for (const t of s.transitions)
      out.push(
        `  ${c.dim(t.at)} ${t.type.padEnd(9)} ${t.event} by ${t.actor} (${t.actor_class})${t.role ? ` ${t.role}` : ''}${t.to ? ` → ${t.to}` : ''}${t.authority_mode ? ` [${t.authority_mode}]` : ''}  ${c.dim(t.action_id)}`,
      );
  }
  out.push(c.bold('actors'));
  for (const a of v.actors)
    out.push(
      `  ${a.id} (${a.class}) · ${a.events} event(s)${a.roles.length ? ` · ${a.roles.join(', ')}` : ''}`,
    );
  return out;
}

function verifyText(g: GraphInput, c: Palette): string[] {
  const v = verifyView(g);
  const out = [`verify: ${statusWord(c, v.status)}`];
  for (const ch of v.checks) {
    out.push(`  ${statusWord(c, ch.status)}  ${ch.name}`);
    for (const d of ch.detail) out.push(c.dim(`          ${d}`));
  }
  return out;
}

/** The terminal rendering of one view (default the timeline), with the problems listed. */
export function renderText(g: GraphInput, o: TextOptions = {}): string {
  const c = palette(o.color === true);
  const view = o.view ?? 'timeline';
  const body =
    view === 'inspect'
      ? inspectText(g, c)
      : view === 'authority'
        ? authorityText(g, c)
        : view === 'verify'
          ? verifyText(g, c)
          : timelineText(g, c);
  return [...header(g, c), '', ...body, '', ...problemsText(g, c)].join('\n') + '\n';
}

// ------------------------------------------------------------------ Markdown

/** Escape text for a Markdown table cell or line. */
export function mdEscape(s: string): string {
  return s.replace(/[\\`*_{}[\]<>()#+!|~]/g, (ch) => `\\${ch}`).replace(/\r?\n/g, ' ');
}

const MD_MARK: Record<NodeMark, string> = {
  exposure: '**EXPOSED**',
  rotation: '**ROTATED**',
  denied: '**DENIED**',
  custody: 'custody',
  proxied: 'proxied',
  release: '**RELEASE**',
};

const mdStatus = (s: CheckStatus): string =>
  s === 'pass' ? 'pass' : s === 'warn' ? 'warn' : '**FAIL**';

/** Markdown for tickets and reports: the subject, secrets, one view as tables, the problems. */
export function renderMarkdown(g: GraphInput, o: { view?: View } = {}): string {
  const view = o.view ?? 'timeline';
  const e = mdEscape;
  const out: string[] = [
    `# Continuity BOM: ${e(g.subject.kind)} \`${g.subject.id.replace(/`/g, '')}\``,
    '',
    `Generated ${e(g.generated_at)} · ${g.nodes.length} events · ${g.actors.length} actors · ${g.edges.length} links` +
      (g.log
        ? ` · log \`${g.log.origin.replace(/`/g, '')}\`, checkpoint ${g.log.tree_size}, root \`${g.log.root_hash}\``
        : ' · no checkpoint'),
    '',
  ];
  if (g.secrets.length) {
    out.push(
      '| secret | type | version | lifecycle | exposure | rotation |',
      '|---|---|---|---|---|---|',
    );
    for (const s of g.secrets)
      out.push(
        `| ${e(s.secret_id)} | ${e(s.secret_type)} | v${s.version} | ${e(s.lifecycle_state)} | ${e(s.exposure_state)} | ${s.rotation_required ? '**required**' : 'no'} |`,
      );
    out.push('');
  }
  if (view === 'timeline') {
    out.push(
      '## Timeline',
      '',
      '| gen | time | actor | event | what | links | checks |',
      '|---|---|---|---|---|---|---|',
    );
    for (const t of timelineView(g)) {
      const links = t.links
        .map(
          (l) =>
            `${l.kind} ${l.status === 'ok' ? '←' : `**${l.status.toUpperCase()}**`} ${e(l.from)}`,
        )
        .join('<br>');
      out.push(
        `| ${t.generation} | ${e(t.timestamp)} | ${e(t.actor)} (${e(t.actor_class)}) | ${t.mark ? `${MD_MARK[t.mark]} ` : ''}${e(t.event)} | ${e(t.summary)}${t.reason ? ` — _${e(t.reason)}_` : ''} | ${links || '—'} | sig ${mdStatus(t.checks.signature)}, chain ${mdStatus(t.checks.chain)}, incl ${mdStatus(t.checks.inclusion)} |`,
      );
    }
  } else if (view === 'inspect') {
    const v = inspectView(g);
    out.push('## Inspect', '');
    for (const s of v.secrets) {
      out.push(`### ${e(s.secret_id)}`, '', '| field | value |', '|---|---|');
      for (const [k, x] of [
        ['type', s.secret_type],
        ['issuer', s.issuer],
        ['scope', s.scope],
        ['created', s.created_at],
        ['expires', s.expires_at],
        ['owner', s.owner_id],
        ['custodian', s.custodian_id],
        ['active operator', s.active_operator_id],
      ] as const)
        out.push(`| ${k} | ${x === null ? '—' : e(x)} |`);
      for (const x of s.versions)
        out.push(
          `| v${x.version} | ${e(x.state)}, created ${e(x.created_at)}${x.retired_at ? `, retired ${e(x.retired_at)}` : ''} |`,
        );
      out.push('');
    }
    if (v.bundles.length) {
      out.push('| bundle | kind | status | signers |', '|---|---|---|---|');
      for (const b of v.bundles)
        out.push(
          `| ${e(b.file)} | ${e(b.kind ?? '?')} | ${mdStatus(b.status)} | ${e(b.signers.join(', '))} |`,
        );
    }
  } else if (view === 'authority') {
    const v = authorityView(g);
    out.push('## Authority', '');
    for (const s of v.secrets) {
      out.push(
        `### ${e(s.secret_id)} — ${e(s.status)}`,
        '',
        `owner ${e(s.owner_id ?? '—')} · custodian ${e(s.custodian_id ?? '—')} · operator ${e(s.active_operator_id ?? '—')}`,
        '',
        '| time | type | event | actor | role → to | mode | action |',
        '|---|---|---|---|---|---|---|',
      );
      for (const t of s.transitions)
        out.push(
          `| ${e(t.at)} | ${t.type} | ${e(t.event)} | ${e(t.actor)} (${e(t.actor_class)}) | ${e(t.role ?? '')}${t.to ? ` → ${e(t.to)}` : ''} | ${e(t.authority_mode ?? '')} | ${e(t.action_id)} |`,
        );
      out.push('');
    }
  } else {
    const v = verifyView(g);
    out.push(
      `## Verify: ${mdStatus(v.status)}`,
      '',
      '| check | status | detail |',
      '|---|---|---|',
    );
    for (const ch of v.checks)
      out.push(`| ${ch.name} | ${mdStatus(ch.status)} | ${ch.detail.map(e).join('<br>')} |`);
  }
  out.push('', `## Problems (${g.problems.length})`, '');
  if (!g.problems.length) out.push('None found.');
  for (const p of g.problems)
    out.push(
      `- ${p.severity === 'warning' ? 'warning' : '**error**'} \`${p.code}\`${p.action_id ? ` ${e(p.action_id)}` : ''}: ${e(p.detail)}`,
    );
  return out.join('\n') + '\n';
}
