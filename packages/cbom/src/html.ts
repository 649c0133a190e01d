/**
 * The self-contained, self-verifying HTML timeline of a causal graph: one file with its CSS,
 * its JavaScript, its SVG and its data inline, and no reference to anything outside it. The
 * page draws one swimlane per actor with the events in causal order, and checks every event
 * in the browser with WebCrypto: the token's Ed25519 signature, the log line's RFC 9162
 * inclusion proof and the C2SP checkpoint's signature (see docs/cbom.md, "The HTML timeline").
 *
 * `renderHtml` is a single O(n) string build: the graph goes into the page as one JSON block
 * (escaped so that no text in it can end the script element) and the log lines verbatim in a
 * plain-text block beside it; the page's script reads them with JSON.parse and split, and
 * inserts every value with textContent.
 */
import { getProvider, toBase64, utf8 } from '@tibet/core';
import { RECORD_VERSION } from '@tibet/continuityd';
import { PAGE_CSS, UI_JS } from './html-client.js';
import { VERIFY_JS } from './html-verify.js';
import type { CausalGraph, GraphActor, GraphLog, GraphNode } from './model.js';
import { tokenInLine } from './token-lines.js';

/** Format tag of the JSON block inside the page. */
export const HTML_FORMAT = 'tibet-cbom-html/3';

export interface RenderHtmlOptions {
  /** The page title (default: "CBOM timeline — <subject kind> <subject id>"). */
  title?: string;
  /**
   * Live mode: the URL of a server-sent event stream (a path such as `/events` on the server
   * that serves the page, or an absolute http(s) URL). Each `message` event carries one
   * GraphNode as JSON and is appended and verified; an `actor` event carries a GraphActor (a
   * lane and key for an actor not yet on the page); a `log` event carries a GraphLog (a newer
   * checkpoint of the same log key). See {@link liveEvent}.
   */
  liveUrl?: string;
}

const MAX_TITLE = 300;

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

const JSON_UNSAFE = /[<>&\u2028\u2029]/g;

/**
 * JSON text that is safe inside a `<script type="application/json">` element: `<`, `>`, `&`,
 * U+2028 and U+2029 become `\u` escapes (JSON.parse reads them back unchanged), so nothing in
 * the data can close the element or start a comment. (These characters can only occur inside
 * JSON strings, where the escape means the same character.)
 */
export function jsonForScript(value: unknown): string {
  const text = JSON.stringify(value) as string | undefined;
  if (text === undefined) throw new TypeError('value is not JSON-serialisable');
  return scriptSafe(text);
}

/** {@link jsonForScript}'s escaping of JSON text (character by character, so piece by piece). */
function scriptSafe(text: string): string {
  // (five indexOf scans of a page's ~6 MB of JSON take a fraction of one RegExp scan)
  if (
    text.indexOf('<') < 0 &&
    text.indexOf('>') < 0 &&
    text.indexOf('&') < 0 &&
    text.indexOf('\u2028') < 0 &&
    text.indexOf('\u2029') < 0
  )
    return text;
  return text.replace(JSON_UNSAFE, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/**
 * `,"key":<JSON of value>`, script-safe, as JSON.stringify writes a member after the first;
 * '' when JSON.stringify leaves the member out (an undefined value).
 */
function nextMember(key: string, value: unknown): string {
  const text = JSON.stringify(value) as string | undefined;
  return text === undefined ? '' : `,"${key}":${scriptSafe(text)}`;
}

function checkLiveUrl(url: unknown): { url: string; connect: string } {
  if (typeof url !== 'string' || url === '' || url.length > 2048)
    throw new TypeError('"liveUrl" must be a non-empty string of at most 2048 characters');
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u0020\u007f]/.test(url))
    throw new TypeError('"liveUrl" must not contain spaces or controls');
  if (url.startsWith('/') && !url.startsWith('//')) return { url, connect: "'self'" };
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new TypeError('"liveUrl" must be a path ("/events") or an absolute http(s) URL');
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:')
    throw new TypeError('"liveUrl" must be a path ("/events") or an absolute http(s) URL');
  if (u.username || u.password) throw new TypeError('"liveUrl" must not carry credentials');
  return { url: u.href, connect: u.origin };
}

function checkGraph(graph: unknown): asserts graph is CausalGraph {
  if (typeof graph !== 'object' || graph === null)
    throw new TypeError('"graph" must be a CausalGraph object');
  const g = graph as Record<string, unknown>;
  for (const k of ['nodes', 'edges', 'actors', 'secrets', 'problems'] as const)
    if (!Array.isArray(g[k])) throw new TypeError(`"graph.${k}" must be an array`);
  const s = g['subject'] as Record<string, unknown> | null;
  if (typeof s !== 'object' || s === null || typeof s['id'] !== 'string')
    throw new TypeError('"graph.subject" must be { kind, id }');
}

const LINE_TAIL = `,"v":"${RECORD_VERSION}"}`;

/**
 * What the page shows of an event and the token member it must equal (see html-verify.ts),
 * by the node's field name.
 */
const SHOWN: Readonly<Record<string, string>> = Object.assign(Object.create(null) as object, {
  action_id: 'action_id',
  parent_action_id: 'parent_action_id',
  event: 'event',
  actor: 'actor',
  actor_class: 'actor_class',
  timestamp: 'timestamp',
  generation: 'generation',
  reason: 'erachter',
});

/**
 * A line goes into the lines block only when the HTML parser hands its text back unchanged
 * and it cannot end the element: no `<`, no newline (the separator), no CR or NUL (which the
 * parser rewrites). Any other line stays a JSON string in the data block.
 */
function lineSafe(line: string): boolean {
  return (
    line.indexOf('<') < 0 &&
    line.indexOf('\n') < 0 &&
    line.indexOf('\r') < 0 &&
    line.indexOf('\0') < 0
  );
}

/** The page's data for a graph: each line, proof hash and token once. */
class PageData {
  readonly lines: string[] = [];
  readonly hashes: string[] = [];
  readonly #hashAt = new Map<string, number>();

  #prev: readonly unknown[] = [];
  #prevRefs: number[] = [];

  /** The table numbers of a proof's hashes (undefined unless they are all strings). */
  #hashRefs(hashes: readonly unknown[]): number[] | undefined {
    const refs = new Array<number>(hashes.length);
    const prev = this.#prev;
    const prevRefs = this.#prevRefs;
    for (let j = 0; j < hashes.length; j++) {
      const h = hashes[j];
      if (typeof h !== 'string') return undefined;
      // the next event's proof mostly repeats the upper levels of the one before
      if (prev[j] === h) {
        refs[j] = prevRefs[j]!;
        continue;
      }
      let k = this.#hashAt.get(h);
      if (k === undefined) {
        k = this.hashes.push(h) - 1;
        this.#hashAt.set(h, k);
      }
      refs[j] = k;
    }
    this.#prev = hashes;
    this.#prevRefs = refs;
    return refs;
  }

  /**
   * A node as the page carries it, without its `checks`: the page carries them in a table of
   * their own, last (`checks`, by node), so that it can be built while the walk's checks still
   * run and their results put in at the end. A log line goes into the lines block (`in_lines`: its number there) and its proof hashes
   * into one table (`inclusion.hash_refs`). When the line holds exactly the token's JSON text
   * (the walk says so for the frozen tokens it parsed from their lines; any other token is
   * compared by its JSON text), the token is carried once, inside its line
   * (`token_in_line: [start, end]`); what the page shows that is the token's (action, actor,
   * event, reason, decisions, …) is then left out too, and the page takes it from the token.
   * Any difference keeps the value. The page's script (`expandData`) puts everything back.
   */
  node(n: GraphNode): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    const src = n.source;
    const t = n.token;
    let line: string | undefined;
    let tokenAt: [number, number] | undefined;
    if (src.kind === 'log' && typeof src.line === 'string') {
      line = src.line;
      tokenAt = tokenInLine(t, line);
      if (!tokenAt && typeof t === 'object' && t !== null && line.endsWith(LINE_TAIL)) {
        const text = JSON.stringify(t);
        const end = line.length - LINE_TAIL.length;
        const start = end - text.length;
        // (slice and ===: V8 compares flat strings with memcmp, startsWith character by character)
        if (
          start >= 10 &&
          line.slice(start - 9, start) === ',"token":' &&
          line.slice(start, end) === text
        )
          tokenAt = [start, end];
      }
    }
    for (const key in n) {
      if (!Object.hasOwn(n, key)) continue;
      const k = key as keyof GraphNode;
      const v = n[k];
      switch (k) {
        case 'token':
          if (!tokenAt) out[k] = v;
          continue;
        case 'decisions':
          // (the walk's decisions are its token's policy; a copy's are compared by JSON text)
          if (!tokenAt || (v !== t.policy && JSON.stringify(v) !== JSON.stringify(t.policy)))
            out[k] = v;
          continue;
        case 'source':
          if (line !== undefined && lineSafe(line)) {
            out[k] = without(src, 'line');
            out['in_lines'] = this.lines.push(line) - 1;
          } else out[k] = v;
          continue;
        case 'inclusion': {
          const inc = v as GraphNode['inclusion'];
          const refs = inc && Array.isArray(inc.hashes) ? this.#hashRefs(inc.hashes) : undefined;
          if (refs) {
            const o = without(inc!, 'hashes');
            o['hash_refs'] = refs;
            out[k] = o;
          } else out[k] = v;
          continue;
        }
        case 'checks':
          continue;
        default:
          if (tokenAt && shownFromToken(k, v, t)) continue;
          out[k] = v;
      }
    }
    if (tokenAt) out['token_in_line'] = tokenAt;
    return out;
  }
}

function shownFromToken(k: string, v: unknown, t: GraphNode['token']): boolean {
  const member = SHOWN[k];
  return member !== undefined && v === (t as unknown as Record<string, unknown>)[member];
}

/** A copy of `o`'s own enumerable members but `key`, in their order (as `{ key: _, ...rest }`). */
function without(o: object, key: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k in o)
    if (k !== key && Object.hasOwn(o, k)) out[k] = (o as Record<string, unknown>)[k];
  return out;
}

let cached: { script: string; scriptHash: string; styleHash: string } | undefined;

function assets(): { script: string; scriptHash: string; styleHash: string } {
  if (!cached) {
    const p = getProvider();
    const script = `${VERIFY_JS}\n${UI_JS}`;
    cached = {
      script,
      scriptHash: `'sha256-${toBase64(p.sha256(utf8(script)))}'`,
      styleHash: `'sha256-${toBase64(p.sha256(utf8(PAGE_CSS)))}'`,
    };
  }
  return cached;
}

/**
 * Render a causal graph as one self-contained HTML page (a string; write it as UTF-8). The
 * page needs no network: its Content-Security-Policy allows only its own inline script and
 * style (by hash) and, in live mode, the event stream. Throws TypeError on a malformed
 * graph or option.
 */
export function renderHtml(graph: CausalGraph, o: RenderHtmlOptions = {}): string {
  return preparePage(graph, o).finish(graph);
}

/** A page built but for what a walk knows last: see {@link preparePage}. */
export interface PreparedPage {
  /**
   * The page, with each node's `checks`, the secrets and the problems of `graph` as they are
   * now. `graph` is the graph the page was prepared from (the same node objects, edges, actors
   * and log), its checks, secrets and problems completed since.
   */
  finish(graph: CausalGraph): string;
}

/**
 * A walk's log, for the lines block (internal: see {@link preparePage}): its lines' texts,
 * and `joined`, which is exactly `lines.map((l) => l.text).join('\n')`, put together without
 * copying them (see log-read.ts, `joinedText`).
 */
export interface LogText {
  lines: readonly { text: string }[];
  joined: string;
}

/**
 * The lines block: `lines.join('\n')` — or, when those lines are the walk's log lines, every
 * one of them in order (the same strings), the walk's text of them, which is the same string.
 */
function joinLines(lines: readonly string[], log: LogText | undefined): string {
  if (log && lines.length === log.lines.length) {
    let i = 0;
    while (i < lines.length && lines[i] === log.lines[i]!.text) i++;
    if (i === lines.length) return log.joined;
  }
  return lines.join('\n');
}

/** Check `renderHtml`'s options (a TypeError when one is malformed). */
export function checkHtmlOptions(o: RenderHtmlOptions): void {
  if (typeof o !== 'object' || o === null) throw new TypeError('"options" must be an object');
  if (o.title !== undefined && (typeof o.title !== 'string' || o.title.length > MAX_TITLE))
    throw new TypeError(`"title" must be a string of at most ${MAX_TITLE} characters`);
  if (o.liveUrl !== undefined) checkLiveUrl(o.liveUrl);
}

/**
 * Build everything of `graph`'s page but what a walk knows last — each node's `checks`, the
 * secrets and the problems — which {@link PreparedPage.finish} puts in: a walk prepares the
 * page while its worker threads are still verifying signatures and proofs, and finishes it
 * once their results are in. The data block is one JSON object whose members those three
 * are, last (the nodes' checks as a table by node, `checks`); its text is what
 * `JSON.stringify` gives for the whole object, so `renderHtml(graph)` — this and `finish` at
 * once — is the same page. A walk passes its log's text (`logText`), so that the lines block
 * need not be copied together again when it holds every line of the log.
 */
export function preparePage(
  graph: CausalGraph,
  o: RenderHtmlOptions = {},
  logText?: LogText,
): PreparedPage {
  checkGraph(graph);
  checkHtmlOptions(o);
  const live = o.liveUrl === undefined ? null : checkLiveUrl(o.liveUrl);
  const title = o.title ?? `CBOM timeline \u2014 ${graph.subject.kind} ${graph.subject.id}`;
  const { script, scriptHash, styleHash } = assets();
  const page = new PageData();
  const nodes = graph.nodes;
  const count = nodes.length;
  const front = jsonForScript({
    format: HTML_FORMAT,
    title,
    subject: graph.subject,
    generated_at: graph.generated_at,
    nodes: nodes.map((n) => page.node(n)),
    edges: graph.edges,
    actors: graph.actors,
    log: graph.log,
    live: live ? live.url : null,
    hashes: page.hashes,
  });
  // (`format` is always there, so the members that follow are written with a comma before)
  const open = front.slice(0, -1);
  const lines = joinLines(page.lines, logText);
  const csp = [
    "default-src 'none'",
    `script-src ${scriptHash}`,
    `style-src ${styleHash}`,
    'img-src data:',
    `connect-src ${live ? live.connect : "'none'"}`,
    "base-uri 'none'",
    "form-action 'none'",
  ].join('; ');
  const t = escapeHtml(title);
  const top = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="${escapeHtml(csp)}">
<meta name="referrer" content="no-referrer">
<meta name="generator" content="@tibet/cbom ${HTML_FORMAT}">
<title>${t}</title>
<link rel="icon" href="data:,">
<style>${PAGE_CSS}</style>
</head>
<body>
<header>
<h1 id="title">${t}</h1>
<div class="sub" id="subject"></div>
<div class="bar">
<div id="summary" class="summary has-unknown" data-done="no" aria-live="polite"><span><span id="n-total">${count}</span> events</span><span class="c-pass">\u2713 <span id="n-pass">0</span></span><span class="c-fail">\u2717 <span id="n-fail">0</span></span><span class="c-unknown">? <span id="n-unknown">0</span></span><span class="c-pending" id="n-pending"></span></div>
<div id="cp" class="cp st-pending" data-status="pending"><span class="mk">\u2026</span> log checkpoint: checking\u2026</div>
<span id="live" class="live" hidden></span>
<button id="theme" type="button">theme: auto</button>
</div>
</header>
<div id="nocrypto" class="warnbox" role="alert" hidden></div>
<noscript><div class="warnbox">This page draws and verifies its timeline with its inline JavaScript. With scripts off, the events are in the JSON block at the end of this file, and their log lines after it.</div></noscript>
<ul id="legend" aria-label="Legend"></ul>
<main>
<div id="view"><div class="row"><div id="lanes" aria-label="Actors"></div><svg id="tl" role="group" aria-label="Causal timeline: one lane per actor, events left to right in causal order" width="0" height="0"><defs><marker id="arrow-parent" viewBox="0 0 10 10" refX="8" refY="5" markerUnits="userSpaceOnUse" markerWidth="16" markerHeight="16" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z"/></marker><marker id="arrow-prev" viewBox="0 0 10 10" refX="8" refY="5" markerUnits="userSpaceOnUse" markerWidth="9" markerHeight="9" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z"/></marker></defs><g id="lanebg"></g><g id="bands"></g><g id="edges"></g><g id="nodes"></g></svg></div></div>
<aside id="panel" aria-label="Event details" hidden><div class="panel-head"><h2 id="panel-title"></h2><button id="close" type="button" aria-label="Close the details">\u2715</button></div><div id="panel-body"></div></aside>
</main>
<footer>
<section id="problems" hidden><h2>Problems</h2><ul id="problems-list"></ul></section>
<section id="secrets" hidden><h2>Secrets</h2><table><thead><tr><th>secret</th><th>type</th><th>lifecycle</th><th>exposure</th><th>rotation required</th><th>version</th></tr></thead><tbody id="secrets-body"></tbody></table></section>
<section><h2>What a \u2713 means</h2>
<p>This browser checked, with WebCrypto: the Ed25519 signature of each event's token (its RFC 8785 form without the signature) with the actor's key listed below; that the event's audit-log line holds that token and is a leaf of the log's Merkle tree (RFC 9162 inclusion proof); that the log's checkpoint carries a valid signature by the log key listed below; and that each event's links to the events before it on this page hold. A \u2713 proves that the holder of those keys signed exactly this; it relies on the keys printed here, which came with the page: compare them with keys you hold from elsewhere. It does not prove that what an event says is true, nor that the page shows every event there is.</p>
<p id="logkey" class="mono"></p>
<table><thead><tr><th>actor</th><th>class</th><th>Ed25519 public key (base64url)</th></tr></thead><tbody id="keys-body"></tbody></table>
</section>
</footer>
<script type="application/json" id="tibet-data">`;
  const bottom = `</script>
<script type="text/plain" id="tibet-lines">${lines}</script>
<script>${script}</script>
</body>
</html>
`;
  return {
    finish(g: CausalGraph): string {
      if (g.nodes.length !== count) throw new TypeError('"graph" is not the graph prepared');
      const checks = new Array<unknown>(count);
      for (let i = 0; i < count; i++) checks[i] = g.nodes[i]!.checks;
      const data =
        open +
        // the model's fields only: a walker may attach more (such as a secret's whole state)
        nextMember(
          'secrets',
          g.secrets.map((x) => ({
            secret_id: x.secret_id,
            secret_type: x.secret_type,
            lifecycle_state: x.lifecycle_state,
            exposure_state: x.exposure_state,
            rotation_required: x.rotation_required,
            version: x.version,
          })),
        ) +
        nextMember('problems', g.problems) +
        nextMember('checks', checks) +
        '}';
      return `${top}${data}${bottom}`;
    },
  };
}

/** What a live event stream sends (see {@link RenderHtmlOptions.liveUrl}). */
export type LiveEvent =
  | { kind: 'node'; value: GraphNode }
  | { kind: 'actor'; value: GraphActor }
  | { kind: 'log'; value: GraphLog };

/**
 * One server-sent event frame for a live page: `data: <json>\n\n` for a node (the default
 * `message` event), `event: actor` / `event: log` before the data for the others.
 */
export function liveEvent(e: LiveEvent): string {
  const json = JSON.stringify(e.value);
  if (typeof json !== 'string') throw new TypeError('"value" is not JSON-serialisable');
  switch (e.kind) {
    case 'node':
      return `data: ${json}\n\n`;
    case 'actor':
      return `event: actor\ndata: ${json}\n\n`;
    case 'log':
      return `event: log\ndata: ${json}\n\n`;
  }
}
