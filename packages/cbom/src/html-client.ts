/**
 * The HTML timeline's drawing code and style sheet, as text inlined into the page. The
 * drawing code reads the graph from the page's JSON block, draws the SVG swimlanes (only the
 * columns near the viewport, so 10,000 events stay responsive), runs `TibetVerify` (see
 * html-verify.ts) and shows each event's result, and opens a side panel on click.
 *
 * Every piece of data goes into the page through `textContent` or an SVG attribute set with
 * `setAttribute`; the code never parses data as HTML. `window.tibetTimeline` is its API:
 * add(node), addActor(actor), addCheckpoint(log), select(id), results(), idle().
 */
export const UI_JS = String.raw`(function () {
  'use strict';
  var V = TibetVerify;
  var NS = 'http://www.w3.org/2000/svg';
  var COL = 120;
  var LANE = 104;
  var TOP = 56;
  var PADL = 24;
  var R = 18;
  var GLYPH = { exposure: '!', rotation: '\u21bb', denied: '\u2298', custody: '\u21c4', proxied: '\u2192', release: '\u2691' };
  var MARK_TEXT = { exposure: 'exposure', rotation: 'rotation', denied: 'denied', custody: 'custody change', proxied: 'proxied use', release: 'release' };
  var BADGE = { pass: '\u2713', fail: '\u2717', unknown: '?', pending: '\u2026' };
  var STATUS_TEXT = { pass: 'verified', fail: 'failed', unknown: 'not checked', pending: 'checking' };

  var dataEl = document.getElementById('tibet-data');
  var linesEl = document.getElementById('tibet-lines');
  var DATA = V.expandData(JSON.parse(dataEl.textContent), linesEl ? linesEl.textContent : '');
  var nodes = [];
  var index = Object.create(null);
  var edges = [];
  var lanes = [];
  var laneOf = Object.create(null);
  var results = Object.create(null);
  var problems = [];
  var selected = null;
  var cpResult = null;
  var dirty = true;
  var lastWindow = '';
  var framePending = false;

  function $(id) {
    return document.getElementById(id);
  }
  function h(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function s(tag, attrs, text) {
    var e = document.createElementNS(NS, tag);
    if (attrs) for (var k in attrs) if (Object.prototype.hasOwnProperty.call(attrs, k)) e.setAttribute(k, String(attrs[k]));
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function shortId(id) {
    var i = String(id).lastIndexOf(':');
    return i >= 0 ? String(id).slice(i + 1) : String(id);
  }
  function label(ev) {
    var t = String(ev).replace(/^secret-/, '');
    return t.length > 15 ? t.slice(0, 14) + '\u2026' : t;
  }
  function timeOf(ts) {
    var m = /T(\d\d:\d\d:\d\d)/.exec(String(ts));
    return m ? m[1] : '';
  }
  function statusOf(id) {
    var r = results[id];
    return r ? r.status : 'pending';
  }
  function knownClass(c) {
    return ['human', 'machine', 'external', 'mcp-server', 'gateway', 'system'].indexOf(c) >= 0 ? c : 'other';
  }
  function knownMark(m) {
    return Object.prototype.hasOwnProperty.call(GLYPH, m) ? m : null;
  }

  // ---------------------------------------------------------------- model
  function addLane(actor) {
    if (Object.prototype.hasOwnProperty.call(laneOf, actor.id)) return;
    laneOf[actor.id] = lanes.length;
    lanes.push({ id: actor.id, class: knownClass(actor.class) });
    var row = h('div', 'lane lane-' + knownClass(actor.class));
    row.setAttribute('data-actor', actor.id);
    row.appendChild(h('span', 'lane-name', shortId(actor.id)));
    row.appendChild(h('span', 'lane-id', actor.id));
    var chip = h('span', 'chip', knownClass(actor.class));
    row.appendChild(chip);
    if (!actor.public_key) row.appendChild(h('span', 'lane-warn', 'no public key'));
    $('lanes').appendChild(row);
    dirty = true;
  }
  function addActor(a) {
    var fresh = verifier.addActor(a);
    if (!a || typeof a.id !== 'string') return fresh;
    if (!Object.prototype.hasOwnProperty.call(laneOf, a.id)) addLane(verifier.state.actors[a.id] || a);
    else if (verifier.state.actors[a.id] && verifier.state.actors[a.id].public_key) {
      var row = $('lanes').children[laneOf[a.id]];
      var warn = row && row.querySelector('.lane-warn');
      if (warn) warn.remove();
    }
    return fresh;
  }
  function addEdges(list) {
    for (var i = 0; i < list.length; i++) {
      var e = list[i];
      if (e && typeof e.from === 'string' && typeof e.to === 'string') edges.push(e);
    }
    dirty = true;
    schedule();
  }
  function acceptNodes(list) {
    var ok = [];
    for (var i = 0; i < list.length; i++) {
      var n = V.expandNode(list[i]);
      if (V.nodeProblem(n) || Object.prototype.hasOwnProperty.call(index, n.action_id)) continue;
      if (!Object.prototype.hasOwnProperty.call(laneOf, n.actor)) addActor({ id: n.actor, class: n.actor_class, public_key: null });
      index[n.action_id] = nodes.length;
      nodes.push(n);
      ok.push(n);
    }
    dirty = true;
    return ok;
  }

  // ---------------------------------------------------------------- drawing
  function xOf(i) {
    return PADL + i * COL + COL / 2;
  }
  function yOf(lane) {
    return TOP + lane * LANE + LANE / 2;
  }
  function size() {
    var svg = $('tl');
    var w = PADL * 2 + Math.max(nodes.length, 1) * COL;
    var ht = TOP + Math.max(lanes.length, 1) * LANE + 16;
    svg.setAttribute('width', w);
    svg.setAttribute('height', ht);
    svg.setAttribute('viewBox', '0 0 ' + w + ' ' + ht);
    var bg = $('lanebg');
    bg.replaceChildren();
    for (var l = 0; l < lanes.length; l++) {
      bg.appendChild(s('rect', { class: 'stripe ' + (l % 2 ? 'odd' : 'even'), x: 0, y: TOP + l * LANE, width: w, height: LANE }));
      bg.appendChild(s('line', { class: 'laneline lc-' + lanes[l].class, x1: 0, y1: yOf(l), x2: w, y2: yOf(l) }));
    }
  }
  function markerShape(mark, cls) {
    if (mark === 'release') return s('polygon', { class: cls, points: '0,' + -R * 1.25 + ' ' + R * 1.25 + ',0 0,' + R * 1.25 + ' ' + -R * 1.25 + ',0' });
    if (mark === 'denied') {
      var a = R * 1.05;
      var b = R * 0.43;
      return s('polygon', { class: cls, points: [-b, -a, b, -a, a, -b, a, b, b, a, -b, a, -a, b, -a, -b].join(' ').replace(/(\S+) (\S+)/g, '$1,$2') });
    }
    return s('circle', { class: cls, r: R });
  }
  function drawNode(n, i, layer) {
    var mark = knownMark(n.mark);
    var st = statusOf(n.action_id);
    var r = results[n.action_id];
    var g = s('g', {
      class: 'ev st-' + st + ' mk-' + (mark || 'none') + (selected === n.action_id ? ' sel' : ''),
      transform: 'translate(' + xOf(i) + ',' + yOf(laneOf[n.actor]) + ')',
      tabindex: 0,
      role: 'button',
      'data-id': n.action_id,
      'data-status': st,
      'data-signature': r ? r.signature.status : 'pending',
      'data-inclusion': r ? r.inclusion.status : 'pending',
      'data-checkpoint': r && r.checkpoint ? r.checkpoint.status : 'none',
      'data-chain': r ? r.chain.status : 'pending',
      'aria-label': n.event + ' by ' + n.actor + ': ' + STATUS_TEXT[st],
    });
    g.appendChild(s('title', null, n.event + ' by ' + n.actor + ' \u2014 ' + STATUS_TEXT[st] + (n.summary ? '\n' + n.summary : '')));
    g.appendChild(s('circle', { class: 'halo', r: R + 9 }));
    g.appendChild(markerShape(mark, 'marker'));
    if (mark) g.appendChild(s('text', { class: 'glyph', y: 1 }, GLYPH[mark]));
    var badge = s('g', { class: 'badge', transform: 'translate(' + R * 0.9 + ',' + -R * 0.9 + ')' });
    badge.appendChild(s('circle', { r: 10.5 }));
    badge.appendChild(s('text', { y: 1 }, BADGE[st]));
    g.appendChild(badge);
    g.appendChild(s('text', { class: 'evlabel', y: R + 24 }, label(n.event)));
    g.appendChild(s('text', { class: 'evtime', y: R + 42 }, timeOf(n.timestamp)));
    layer.appendChild(g);
  }
  function edgePath(x1, y1, x2, y2) {
    if (y1 === y2) {
      var lift = Math.min(LANE * 0.42, 18 + (x2 - x1) * 0.12);
      return 'M' + (x1 + R * 0.7) + ',' + (y1 - R * 0.7) + ' C' + (x1 + R) + ',' + (y1 - lift - 10) + ' ' + (x2 - R) + ',' + (y2 - lift - 10) + ' ' + (x2 - R * 0.7) + ',' + (y2 - R * 0.7);
    }
    var dir = y2 > y1 ? 1 : -1;
    var sx = x1 + R * 0.6;
    var sy = y1 + dir * R * 0.8;
    var ex = x2 - R * 0.75;
    var ey = y2 - dir * R * 0.75;
    var mx = (sx + ex) / 2;
    return 'M' + sx + ',' + sy + ' C' + mx + ',' + sy + ' ' + mx + ',' + ey + ' ' + ex + ',' + ey;
  }
  function drawEdge(e, layer) {
    var to = index[e.to];
    if (to === undefined) return;
    var tx = xOf(to);
    var ty = yOf(laneOf[nodes[to].actor]);
    var from = Object.prototype.hasOwnProperty.call(index, e.from) ? index[e.from] : undefined;
    var rel = selected && (selected === e.to || selected === e.from) ? ' rel' : '';
    var cls = 'edge ' + (e.kind === 'parent' ? 'parent' : 'prev') + ' es-' + (e.status === 'ok' ? 'ok' : e.status === 'broken' ? 'broken' : 'missing') + rel;
    if (from === undefined || e.status === 'missing') {
      var p = s('path', { class: cls, d: 'M' + (tx - COL * 0.55) + ',' + (ty - LANE * 0.32) + ' L' + (tx - R * 0.8) + ',' + (ty - R * 0.6), 'marker-end': 'url(#arrow-' + (e.kind === 'parent' ? 'parent' : 'prev') + ')' });
      p.appendChild(s('title', null, (e.kind === 'parent' ? 'parent ' : 'previous token ') + e.from + ' is not in this page'));
      layer.appendChild(p);
      layer.appendChild(s('text', { class: 'missing-q', x: tx - COL * 0.6, y: ty - LANE * 0.32 }, '?'));
      return;
    }
    var fx = xOf(from);
    var fy = yOf(laneOf[nodes[from].actor]);
    var path = s('path', { class: cls, d: edgePath(fx, fy, tx, ty), 'marker-end': 'url(#arrow-' + (e.kind === 'parent' ? 'parent' : 'prev') + ')' });
    path.appendChild(s('title', null, (e.kind === 'parent' ? 'parent: ' : 'previous on its line: ') + e.from + ' \u2192 ' + e.to + (e.status === 'broken' ? ' (broken' + (e.detail ? ': ' + e.detail : '') + ')' : '')));
    layer.appendChild(path);
  }
  function draw() {
    framePending = false;
    var view = $('view');
    var laneW = $('lanes').offsetWidth;
    var left = Math.max(0, view.scrollLeft - laneW);
    var width = view.clientWidth;
    var c0 = Math.max(0, Math.floor((left - PADL) / COL) - 24);
    var c1 = Math.min(nodes.length - 1, Math.ceil((left + width - PADL) / COL) + 24);
    c0 = Math.floor(c0 / 32) * 32;
    c1 = Math.min(nodes.length - 1, Math.ceil((c1 + 1) / 32) * 32 - 1);
    var key = c0 + ':' + c1;
    if (!dirty && key === lastWindow) return;
    if (dirty) size();
    dirty = false;
    lastWindow = key;
    var bands = $('bands');
    var edgeLayer = $('edges');
    var nodeLayer = $('nodes');
    var bandFrag = document.createDocumentFragment();
    var edgeFrag = document.createDocumentFragment();
    var nodeFrag = document.createDocumentFragment();
    var ht = TOP + lanes.length * LANE;
    for (var i = c0; i <= c1; i++) {
      var n = nodes[i];
      if (n.mark === 'exposure' || n.mark === 'rotation') {
        bandFrag.appendChild(s('rect', { class: 'band band-' + n.mark, x: xOf(i) - COL / 2 + 6, y: 6, width: COL - 12, height: ht - 6, rx: 8 }));
        bandFrag.appendChild(s('text', { class: 'bandlabel bl-' + n.mark, x: xOf(i), y: 30 }, n.mark === 'exposure' ? 'EXPOSED' : 'ROTATED'));
      }
      drawNode(n, i, nodeFrag);
    }
    var xl = xOf(c0) - COL;
    var xr = xOf(c1) + COL;
    for (var k = 0; k < edges.length; k++) {
      var e = edges[k];
      var t = index[e.to];
      if (t === undefined) continue;
      var f = Object.prototype.hasOwnProperty.call(index, e.from) ? index[e.from] : t;
      var lo = Math.min(xOf(f), xOf(t)) - COL;
      var hi = Math.max(xOf(f), xOf(t));
      if (hi < xl || lo > xr) continue;
      drawEdge(e, edgeFrag);
    }
    bands.replaceChildren(bandFrag);
    edgeLayer.replaceChildren(edgeFrag);
    nodeLayer.replaceChildren(nodeFrag);
  }
  function schedule() {
    if (framePending) return;
    framePending = true;
    requestAnimationFrame(draw);
  }
  function redrawNode(id) {
    var i = index[id];
    if (i === undefined) return;
    var old = $('nodes').querySelector('g.ev[data-id="' + id + '"]');
    if (!old) return;
    var frag = document.createDocumentFragment();
    drawNode(nodes[i], i, frag);
    old.replaceWith(frag);
  }

  // ---------------------------------------------------------------- summary
  function counts() {
    var c = { pass: 0, fail: 0, unknown: 0, pending: 0 };
    for (var i = 0; i < nodes.length; i++) c[statusOf(nodes[i].action_id)]++;
    return c;
  }
  var summaryPending = false;
  function summary() {
    if (summaryPending) return;
    summaryPending = true;
    setTimeout(function () {
      summaryPending = false;
      var c = counts();
      $('n-total').textContent = String(nodes.length);
      $('n-pass').textContent = String(c.pass);
      $('n-fail').textContent = String(c.fail);
      $('n-unknown').textContent = String(c.unknown);
      $('n-pending').textContent = c.pending ? String(c.pending) + ' checking\u2026' : '';
      var bar = $('summary');
      bar.setAttribute('data-done', c.pending ? 'no' : 'yes');
      bar.className = 'summary ' + (c.fail ? 'has-fail' : c.unknown || c.pending ? 'has-unknown' : 'all-pass');
    }, 30);
  }
  function showCheckpoint(cp, log) {
    cpResult = cp;
    var el = $('cp');
    el.className = 'cp st-' + cp.status;
    el.setAttribute('data-status', cp.status);
    el.replaceChildren(h('span', 'mk', BADGE[cp.status]), h('span', null, ' log checkpoint: ' + cp.reason));
    el.title = log && typeof log.checkpoint === 'string' ? log.checkpoint : '';
  }
  function pageProblem(msg) {
    problems.push(msg);
    var list = $('problems-list');
    list.appendChild(h('li', null, msg));
    $('problems').hidden = false;
  }

  // ---------------------------------------------------------------- the panel
  function row(dl, k, v) {
    dl.appendChild(h('dt', null, k));
    var dd = h('dd', null, v === null || v === undefined ? '\u2014' : v);
    dl.appendChild(dd);
    return dd;
  }
  function linkTo(dd, id) {
    if (!id || !Object.prototype.hasOwnProperty.call(index, id)) return;
    dd.textContent = '';
    var b = h('button', 'link', id);
    b.type = 'button';
    b.addEventListener('click', function () {
      select(id);
    });
    dd.appendChild(b);
  }
  function section(panel, title, open) {
    var d = h('details', 'sec');
    if (open) d.open = true;
    d.appendChild(h('summary', null, title));
    panel.appendChild(d);
    return d;
  }
  function renderPanel() {
    var body = $('panel-body');
    body.replaceChildren();
    if (!selected || !Object.prototype.hasOwnProperty.call(index, selected)) {
      $('panel').hidden = true;
      document.body.classList.remove('panel-open');
      return;
    }
    var n = nodes[index[selected]];
    var r = results[selected];
    var st = statusOf(selected);
    $('panel').hidden = false;
    document.body.classList.add('panel-open');
    $('panel-title').textContent = n.event;
    var head = h('p', 'p-status st-' + st);
    head.setAttribute('data-status', st);
    head.appendChild(h('span', 'mk', BADGE[st]));
    head.appendChild(h('span', null, ' ' + STATUS_TEXT[st]));
    body.appendChild(head);
    if (n.summary) body.appendChild(h('p', 'p-summary', n.summary));
    var why = h('blockquote', 'p-reason', n.reason);
    body.appendChild(why);
    var checks = h('ul', 'checks');
    checks.id = 'p-checks';
    var names = [['signature', 'Signature'], ['inclusion', 'In the log'], ['checkpoint', 'Checkpoint'], ['chain', 'Causal links']];
    for (var i = 0; i < names.length; i++) {
      var c = r ? r[names[i][0]] : { status: 'pending', reason: 'checking\u2026' };
      if (!c) continue;
      var li = h('li', 'st-' + c.status);
      li.setAttribute('data-check', names[i][0]);
      li.setAttribute('data-status', c.status);
      li.appendChild(h('span', 'mk', BADGE[c.status]));
      li.appendChild(h('strong', null, ' ' + names[i][1] + ': '));
      li.appendChild(h('span', 'why', c.reason));
      checks.appendChild(li);
    }
    body.appendChild(checks);
    var wc = n.checks && typeof n.checks === 'object' ? n.checks : null;
    if (wc) {
      var w = h('p', 'walker', 'The walker (when the page was made): signature ' + wc.signature + ', chain ' + wc.chain + ', inclusion ' + wc.inclusion + '.');
      body.appendChild(w);
      if (Array.isArray(wc.detail) && wc.detail.length) {
        var ul = h('ul', 'walker-detail');
        wc.detail.forEach(function (d) {
          ul.appendChild(h('li', null, d));
        });
        body.appendChild(ul);
      }
    }
    var dl = h('dl', 'facts');
    row(dl, 'actor', n.actor + ' (' + n.actor_class + ')');
    row(dl, 'action', n.action_id);
    linkTo(row(dl, 'parent', n.parent_action_id), n.parent_action_id);
    var prevEdge = null;
    for (var k = 0; k < edges.length; k++) if (edges[k].to === n.action_id && edges[k].kind === 'prev') prevEdge = edges[k];
    if (prevEdge) linkTo(row(dl, 'previous', prevEdge.from), prevEdge.from);
    row(dl, 'time', n.timestamp);
    row(dl, 'generation', n.generation);
    row(dl, 'secret', n.secret_id);
    row(dl, 'highlight', n.mark ? MARK_TEXT[n.mark] || n.mark : null);
    var where = n.source || {};
    row(dl, 'source', where.kind === 'log' ? 'audit log line ' + where.index : where.kind === 'bundle' ? where.file + ' \u203a ' + where.entry : '?');
    body.appendChild(dl);
    if (Array.isArray(n.decisions) && n.decisions.length) {
      var pol = section(body, 'Policy decisions (' + n.decisions.length + ')', true);
      var pl = h('ul', 'policy');
      n.decisions.forEach(function (d) {
        var li = h('li', d && d.decision === 'deny' ? 'deny' : 'allow');
        li.appendChild(h('strong', null, String(d && d.decision) + ' '));
        li.appendChild(h('span', null, String(d && d.rule) + (d && d.detail ? ' \u2014 ' + d.detail : '')));
        pl.appendChild(li);
      });
      pol.appendChild(pl);
    }
    var tok = section(body, 'Signed token', true);
    var pre = h('pre', 'json', JSON.stringify(n.token, null, 2));
    pre.id = 'p-token';
    tok.appendChild(pre);
    var si = section(body, 'Signing input (RFC 8785, without "signature")', false);
    var input = '';
    try {
      var copy = {};
      Object.keys(n.token).forEach(function (key) {
        if (key !== 'signature') Object.defineProperty(copy, key, { value: n.token[key], enumerable: true });
      });
      input = V.canonicalize(copy);
    } catch (e) {
      input = 'not canonical JSON: ' + e.message;
    }
    si.appendChild(h('pre', 'json', input));
    if (n.inclusion) {
      var inc = section(body, 'Inclusion proof (RFC 9162)', true);
      var idl = h('dl', 'facts');
      row(idl, 'leaf index', n.inclusion.index);
      row(idl, 'tree size', n.inclusion.tree_size);
      row(idl, 'hashes', Array.isArray(n.inclusion.hashes) ? n.inclusion.hashes.length : 0);
      inc.appendChild(idl);
      var hp = h('pre', 'json hashes', Array.isArray(n.inclusion.hashes) ? n.inclusion.hashes.join('\n') : '');
      hp.id = 'p-proof';
      inc.appendChild(hp);
    }
    if (where.kind === 'log') {
      var line = section(body, 'Log line (the RFC 9162 leaf entry)', false);
      line.appendChild(h('pre', 'json', where.line));
    }
    if (DATA.log && where.kind === 'log') {
      var cpd = section(body, 'Checkpoint (C2SP signed note)', false);
      cpd.appendChild(h('pre', 'json', DATA.log.checkpoint));
    }
  }
  /** Scroll the selected event into view (the panel may just have narrowed the timeline). */
  function reveal() {
    if (!selected || !Object.prototype.hasOwnProperty.call(index, selected)) return;
    var view = $('view');
    var room = view.clientWidth - $('lanes').offsetWidth;
    var x = xOf(index[selected]);
    if (x - COL < view.scrollLeft || x + COL > view.scrollLeft + room) view.scrollLeft = Math.max(0, x - room / 2);
  }
  function select(id) {
    if (id && !Object.prototype.hasOwnProperty.call(index, id)) return false;
    var before = selected;
    selected = id || null;
    if (before) redrawNode(before);
    if (selected) redrawNode(selected);
    dirty = true;
    schedule();
    renderPanel();
    if (selected) requestAnimationFrame(reveal);
    return true;
  }

  // ---------------------------------------------------------------- legend, facts, theme
  function legend() {
    var box = $('legend');
    function item(mark, text) {
      var li = h('li');
      var svg = s('svg', { width: 44, height: 44, viewBox: '-22 -22 44 44', 'aria-hidden': 'true' });
      var g = s('g', { class: 'lg mk-' + (mark || 'none') });
      g.appendChild(markerShape(mark, 'marker'));
      if (mark) g.appendChild(s('text', { class: 'glyph', y: 1 }, GLYPH[mark]));
      svg.appendChild(g);
      li.appendChild(svg);
      li.appendChild(h('span', null, text));
      box.appendChild(li);
    }
    function badge(st, text) {
      var li = h('li');
      var svg = s('svg', { width: 32, height: 32, viewBox: '-16 -16 32 32', 'aria-hidden': 'true' });
      var g = s('g', { class: 'lg st-' + st });
      var b = s('g', { class: 'badge' });
      b.appendChild(s('circle', { r: 12 }));
      b.appendChild(s('text', { y: 1 }, BADGE[st]));
      g.appendChild(b);
      svg.appendChild(g);
      li.appendChild(svg);
      li.appendChild(h('span', null, text));
      box.appendChild(li);
    }
    item(null, 'event');
    item('exposure', 'exposure');
    item('rotation', 'rotation');
    item('denied', 'denied');
    item('custody', 'custody');
    item('proxied', 'proxied use');
    item('release', 'release');
    badge('pass', 'verified here');
    badge('fail', 'failed');
    badge('unknown', 'not checked');
    var p = h('li', 'lg-edge');
    var svg = s('svg', { width: 120, height: 32, viewBox: '0 0 120 32', 'aria-hidden': 'true' });
    svg.appendChild(s('path', { class: 'edge parent es-ok', d: 'M4,26 C40,26 40,8 52,8', 'marker-end': 'url(#arrow-parent)' }));
    svg.appendChild(s('path', { class: 'edge prev es-ok', d: 'M68,20 C80,8 100,8 112,20', 'marker-end': 'url(#arrow-prev)' }));
    p.appendChild(svg);
    p.appendChild(h('span', null, 'parent \u00b7 previous'));
    box.appendChild(p);
  }
  function facts() {
    var sub = DATA.subject || {};
    $('subject').textContent = String(sub.kind || '') + ' ' + String(sub.id || '') + (DATA.generated_at ? ' \u00b7 made ' + DATA.generated_at : '');
    var secrets = Array.isArray(DATA.secrets) ? DATA.secrets : [];
    if (secrets.length) {
      var tb = $('secrets-body');
      secrets.forEach(function (x) {
        var tr = h('tr');
        [x.secret_id, x.secret_type, x.lifecycle_state, x.exposure_state, x.rotation_required ? 'yes' : 'no', x.version].forEach(function (v, i) {
          var td = h('td', i === 3 && v !== 'sealed' ? 'warn' : i === 4 && v === 'yes' ? 'warn' : null, v);
          tr.appendChild(td);
        });
        tb.appendChild(tr);
      });
      $('secrets').hidden = false;
    }
    (Array.isArray(DATA.problems) ? DATA.problems : []).forEach(function (p) {
      pageProblem((p && p.code ? p.code + ': ' : '') + (p && p.action_id ? p.action_id + ': ' : '') + (p && p.detail ? p.detail : ''));
    });
    if (DATA.log) {
      $('logkey').textContent = 'Trusted log key ' + DATA.log.key_name + ' ' + DATA.log.public_key;
    }
    var keys = $('keys-body');
    (Array.isArray(DATA.actors) ? DATA.actors : []).forEach(function (a) {
      var tr = h('tr');
      tr.appendChild(h('td', null, a && a.id));
      tr.appendChild(h('td', null, a && a.class));
      tr.appendChild(h('td', 'mono', a && a.public_key ? a.public_key : 'none'));
      keys.appendChild(tr);
    });
  }
  var THEMES = ['auto', 'dark', 'light'];
  function theme() {
    var b = $('theme');
    var cur = 0;
    b.addEventListener('click', function () {
      cur = (cur + 1) % THEMES.length;
      if (THEMES[cur] === 'auto') document.documentElement.removeAttribute('data-theme');
      else document.documentElement.setAttribute('data-theme', THEMES[cur]);
      b.textContent = 'theme: ' + THEMES[cur];
    });
  }

  // ---------------------------------------------------------------- verification
  var verifier = V.createVerifier({
    onResult: function (n, r) {
      results[n.action_id] = r;
      redrawNode(n.action_id);
      if (selected === n.action_id) renderPanel();
      summary();
    },
    onCheckpoint: showCheckpoint,
    onEdges: addEdges,
    onProblem: pageProblem,
  });

  // ---------------------------------------------------------------- live
  var follow = true;
  function live(url) {
    var el = $('live');
    el.hidden = false;
    if (typeof EventSource === 'undefined') {
      el.textContent = 'live: not supported by this browser';
      return;
    }
    var es = new EventSource(url);
    el.textContent = '\u25cf connecting\u2026';
    es.onopen = function () {
      el.textContent = '\u25cf live';
      el.className = 'live on';
    };
    es.onerror = function () {
      el.textContent = '\u25cb reconnecting\u2026';
      el.className = 'live off';
    };
    function parse(e) {
      try {
        return JSON.parse(e.data);
      } catch (x) {
        pageProblem('a live message that is not JSON was ignored');
        return null;
      }
    }
    es.onmessage = function (e) {
      var v = parse(e);
      if (v) api.add(v);
    };
    es.addEventListener('actor', function (e) {
      var v = parse(e);
      if (v) api.addActor(v);
    });
    es.addEventListener('log', function (e) {
      var v = parse(e);
      if (v) api.addCheckpoint(v);
    });
  }

  var api = {
    /** Append one event (a GraphNode); verified in turn. Returns false if it was ignored. */
    add: function (n) {
      var why = V.nodeProblem(V.expandNode(n));
      if (why) {
        pageProblem('a live event was ignored: ' + why);
        return false;
      }
      if (Object.prototype.hasOwnProperty.call(index, n.action_id)) return false;
      var view = $('view');
      follow = view.scrollLeft + view.clientWidth >= view.scrollWidth - COL * 2;
      acceptNodes([n]);
      verifier.addNodes([n], null);
      schedule();
      summary();
      if (follow)
        requestAnimationFrame(function () {
          view.scrollLeft = view.scrollWidth;
        });
      return true;
    },
    addActor: function (a) {
      var fresh = addActor(a);
      schedule();
      return fresh;
    },
    addCheckpoint: function (log) {
      return verifier.addCheckpoint(log);
    },
    select: function (id) {
      return select(id);
    },
    results: function () {
      return nodes.map(function (n) {
        var r = results[n.action_id];
        return { action_id: n.action_id, actor: n.actor, event: n.event, status: statusOf(n.action_id), checks: r || null };
      });
    },
    checkpoint: function () {
      return cpResult;
    },
    problems: function () {
      return problems.slice();
    },
    idle: function () {
      return verifier.idle().then(function () {
        return new Promise(function (resolve) {
          setTimeout(resolve, 40);
        });
      });
    },
  };
  window.tibetTimeline = api;

  // ---------------------------------------------------------------- start
  document.title = String(DATA.title || document.title);
  $('title').textContent = String(DATA.title || '');
  legend();
  facts();
  theme();
  (Array.isArray(DATA.actors) ? DATA.actors : []).forEach(addActor);
  var first = acceptNodes(Array.isArray(DATA.nodes) ? DATA.nodes : []);
  addEdges(Array.isArray(DATA.edges) ? DATA.edges : []);
  $('view').addEventListener('scroll', schedule, { passive: true });
  window.addEventListener('resize', function () {
    lastWindow = '';
    schedule();
  });
  $('nodes').addEventListener('click', function (e) {
    var g = e.target && e.target.closest ? e.target.closest('g.ev') : null;
    if (g) select(g.getAttribute('data-id'));
  });
  $('nodes').addEventListener('keydown', function (e) {
    var g = e.target && e.target.closest ? e.target.closest('g.ev') : null;
    if (g && (e.key === 'Enter' || e.key === ' ')) {
      e.preventDefault();
      select(g.getAttribute('data-id'));
    }
  });
  $('close').addEventListener('click', function () {
    select(null);
  });
  document.addEventListener('keydown', function (e) {
    if (e.key === 'Escape') select(null);
    if ((e.key === 'ArrowRight' || e.key === 'ArrowLeft') && nodes.length && !(e.target && /INPUT|TEXTAREA/.test(e.target.tagName))) {
      var i = selected ? index[selected] : -1;
      i = e.key === 'ArrowRight' ? Math.min(nodes.length - 1, i + 1) : Math.max(0, i - 1);
      select(nodes[i].action_id);
      e.preventDefault();
    }
  });
  summary();
  draw();
  V.cryptoSupport().then(function (sup) {
    if (!sup.ed || !sup.sha) {
      var w = $('nocrypto');
      w.textContent = 'This browser cannot check the signatures: ' + sup.reason.replace(/^not checked \(|\)$/g, '') + '. Events show ? (not checked), never \u2713.';
      w.hidden = false;
    }
  });
  if (DATA.log) verifier.addCheckpoint(DATA.log);
  else showCheckpoint({ status: 'unknown', reason: 'this page has no log checkpoint' }, null);
  verifier.addNodes(first, Array.isArray(DATA.edges) ? DATA.edges : []);
  if (typeof DATA.live === 'string' && DATA.live) live(DATA.live);
})();
`;

/** The page's style sheet: large type and strong contrast for a projector, dark and light. */
export const PAGE_CSS = String.raw`
:root {
  --bg: #ffffff; --fg: #0b1220; --muted: #3d4757; --faint: #d5dbe5; --panel: #f5f7fb;
  --stripe-a: #f4f6fa; --stripe-b: #e9edf4; --edge: #1e293b; --prev: #7c8799;
  --exposure: #c81e1e; --rotation: #b45309; --denied: #9d174d; --custody: #1d4ed8;
  --proxied: #0e7490; --release: #15803d; --plain: #334155;
  --pass: #15803d; --fail: #c81e1e; --unknown: #6b7280; --pending: #94a3b8;
  --human: #2563eb; --machine: #475569; --external: #4d7c0f; --mcp-server: #7c3aed;
  --gateway: #0e7490; --system: #78716c; --other: #64748b;
  --band-exposure: rgba(220, 38, 38, 0.13); --band-rotation: rgba(217, 119, 6, 0.15);
  color-scheme: light dark;
}
@media (prefers-color-scheme: dark) {
  :root:not([data-theme='light']) {
    --bg: #0a0e16; --fg: #f3f6fb; --muted: #b8c2d1; --faint: #2b3443; --panel: #111827;
    --stripe-a: #111722; --stripe-b: #171f2d; --edge: #e2e8f0; --prev: #8390a5;
    --exposure: #f87171; --rotation: #fbbf24; --denied: #f472b6; --custody: #60a5fa;
    --proxied: #22d3ee; --release: #4ade80; --plain: #94a3b8;
    --pass: #22c55e; --fail: #f87171; --unknown: #9ca3af; --pending: #64748b;
    --human: #60a5fa; --machine: #94a3b8; --external: #a3e635; --mcp-server: #a78bfa;
    --gateway: #22d3ee; --system: #a8a29e; --other: #94a3b8;
    --band-exposure: rgba(248, 113, 113, 0.16); --band-rotation: rgba(251, 191, 36, 0.16);
  }
}
:root[data-theme='dark'] {
  --bg: #0a0e16; --fg: #f3f6fb; --muted: #b8c2d1; --faint: #2b3443; --panel: #111827;
  --stripe-a: #111722; --stripe-b: #171f2d; --edge: #e2e8f0; --prev: #8390a5;
  --exposure: #f87171; --rotation: #fbbf24; --denied: #f472b6; --custody: #60a5fa;
  --proxied: #22d3ee; --release: #4ade80; --plain: #94a3b8;
  --pass: #22c55e; --fail: #f87171; --unknown: #9ca3af; --pending: #64748b;
  --human: #60a5fa; --machine: #94a3b8; --external: #a3e635; --mcp-server: #a78bfa;
  --gateway: #22d3ee; --system: #a8a29e; --other: #94a3b8;
  --band-exposure: rgba(248, 113, 113, 0.16); --band-rotation: rgba(251, 191, 36, 0.16);
  color-scheme: dark;
}
:root[data-theme='light'] { color-scheme: light; }
* { box-sizing: border-box; }
html, body { margin: 0; background: var(--bg); color: var(--fg); }
body {
  font: 18px/1.45 system-ui, -apple-system, 'Segoe UI', Roboto, 'Noto Sans', 'DejaVu Sans', sans-serif;
  display: flex; flex-direction: column; min-height: 100vh;
}
header { padding: 14px 22px 8px; border-bottom: 2px solid var(--faint); }
h1 { font-size: 30px; margin: 0 0 2px; line-height: 1.2; }
.sub { color: var(--muted); font-size: 16px; word-break: break-all; }
.bar { display: flex; flex-wrap: wrap; gap: 10px 22px; align-items: center; margin-top: 10px; }
.summary { display: flex; gap: 18px; font-size: 22px; font-weight: 650; padding: 6px 14px;
  border-radius: 10px; border: 2px solid var(--faint); }
.summary.all-pass { border-color: var(--pass); }
.summary.has-fail { border-color: var(--fail); }
.summary .c-pass { color: var(--pass); } .summary .c-fail { color: var(--fail); }
.summary .c-unknown { color: var(--unknown); } .summary .c-pending { color: var(--muted); font-weight: 400; }
.cp { font-size: 17px; max-width: 70ch; }
.cp .mk, .p-status .mk, .checks .mk { font-weight: 800; }
.st-pass > .mk { color: var(--pass); } .st-fail > .mk { color: var(--fail); }
.st-unknown > .mk, .st-pending > .mk { color: var(--unknown); }
.cp.st-fail { color: var(--fail); font-weight: 600; }
button { font: inherit; font-size: 16px; color: var(--fg); background: var(--panel);
  border: 2px solid var(--faint); border-radius: 8px; padding: 4px 12px; cursor: pointer; }
button:focus-visible, g.ev:focus-visible { outline: 3px solid var(--custody); outline-offset: 2px; }
.live { font-weight: 700; } .live.on { color: var(--pass); } .live.off { color: var(--rotation); }
.warnbox { margin: 10px 22px 0; padding: 10px 14px; border: 2px solid var(--rotation);
  border-radius: 10px; font-weight: 600; }
#legend { display: flex; flex-wrap: wrap; gap: 4px 20px; list-style: none; margin: 8px 22px;
  padding: 0; font-size: 16px; color: var(--muted); }
#legend li { display: flex; align-items: center; gap: 6px; }
main { flex: 1; display: flex; min-height: 0; position: relative; }
#view { flex: 1; overflow: auto; position: relative; min-height: 360px; }
.row { display: flex; width: max-content; min-width: 100%; }
#lanes { position: sticky; left: 0; z-index: 2; background: var(--bg); padding-top: 56px;
  width: 270px; flex: none; border-right: 2px solid var(--faint); }
.lane { height: 104px; padding: 10px 12px 8px 16px; display: flex; flex-direction: column;
  justify-content: center; border-left: 8px solid var(--other); overflow: hidden; }
.lane-name { font-size: 24px; font-weight: 750; line-height: 1.1; }
.lane-id { font-size: 14px; color: var(--muted); white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.chip { align-self: flex-start; font-size: 14px; font-weight: 700; padding: 0 8px; border-radius: 999px;
  color: var(--bg); background: var(--other); margin-top: 3px; }
.lane-warn { font-size: 13px; color: var(--rotation); font-weight: 700; }
.lane-human { border-left-color: var(--human); } .lane-human .chip { background: var(--human); }
.lane-machine { border-left-color: var(--machine); } .lane-machine .chip { background: var(--machine); }
.lane-external { border-left-color: var(--external); } .lane-external .chip { background: var(--external); }
.lane-mcp-server { border-left-color: var(--mcp-server); } .lane-mcp-server .chip { background: var(--mcp-server); }
.lane-gateway { border-left-color: var(--gateway); } .lane-gateway .chip { background: var(--gateway); }
.lane-system { border-left-color: var(--system); } .lane-system .chip { background: var(--system); }
svg#tl { display: block; flex: none; }
.stripe.even { fill: var(--stripe-a); } .stripe.odd { fill: var(--stripe-b); }
.laneline { stroke: var(--faint); stroke-width: 2; }
.lc-human { stroke: var(--human); } .lc-machine { stroke: var(--machine); } .lc-external { stroke: var(--external); }
.lc-mcp-server { stroke: var(--mcp-server); } .lc-gateway { stroke: var(--gateway); } .lc-system { stroke: var(--system); }
.laneline { stroke-opacity: 0.35; }
.band-exposure { fill: var(--band-exposure); } .band-rotation { fill: var(--band-rotation); }
.bandlabel { font-size: 15px; font-weight: 800; text-anchor: middle; letter-spacing: 0.06em; }
.bl-exposure { fill: var(--exposure); } .bl-rotation { fill: var(--rotation); }
.edge { fill: none; }
.edge.parent { stroke: var(--edge); stroke-width: 3; }
.edge.prev { stroke: var(--prev); stroke-width: 1.6; stroke-dasharray: 5 5; }
.edge.es-broken { stroke: var(--fail); stroke-width: 3; stroke-dasharray: 8 5; }
.edge.es-missing { stroke: var(--unknown); stroke-dasharray: 3 5; }
.edge.rel { stroke-width: 4.5; stroke: var(--custody); stroke-dasharray: none; }
.missing-q { fill: var(--unknown); font-weight: 800; font-size: 18px; text-anchor: middle; }
#arrow-parent path { fill: var(--edge); } #arrow-prev path { fill: var(--prev); }
g.ev { cursor: pointer; }
g.ev .halo { fill: transparent; stroke: none; }
g.ev.sel .halo { fill: none; stroke: var(--custody); stroke-width: 4; }
g.ev:hover .halo { stroke: var(--muted); stroke-width: 2; }
.marker { fill: var(--plain); stroke: var(--bg); stroke-width: 3; }
.mk-exposure .marker { fill: var(--exposure); } .mk-rotation .marker { fill: var(--rotation); }
.mk-denied .marker { fill: var(--denied); } .mk-custody .marker { fill: var(--custody); }
.mk-proxied .marker { fill: var(--proxied); } .mk-release .marker { fill: var(--release); }
.glyph { fill: #ffffff; font-size: 20px; font-weight: 800; text-anchor: middle; dominant-baseline: central; pointer-events: none; }
.badge circle { fill: var(--pending); stroke: var(--bg); stroke-width: 2.5; }
.badge text { fill: #ffffff; font-size: 14px; font-weight: 900; text-anchor: middle; dominant-baseline: central; }
.st-pass .badge circle { fill: var(--pass); } .st-fail .badge circle { fill: var(--fail); }
.st-unknown .badge circle { fill: var(--unknown); }
.st-fail .marker { stroke: var(--fail); stroke-width: 4; }
.evlabel { fill: var(--fg); font-size: 16px; font-weight: 650; text-anchor: middle; }
.evtime { fill: var(--muted); font-size: 13px; text-anchor: middle; }
#panel { width: min(46vw, 760px); min-width: 380px; flex: none; border-left: 2px solid var(--faint);
  background: var(--panel); overflow: auto; padding: 14px 20px 40px; font-size: 17px; }
#panel[hidden] { display: none; }
.panel-head { display: flex; justify-content: space-between; align-items: center; gap: 10px; }
#panel h2 { margin: 0; font-size: 26px; word-break: break-all; }
.p-status { font-size: 22px; font-weight: 750; margin: 6px 0; }
.p-status.st-pass { color: var(--pass); } .p-status.st-fail { color: var(--fail); }
.p-summary { font-size: 19px; margin: 4px 0; }
.p-reason { margin: 8px 0; padding: 6px 12px; border-left: 4px solid var(--custody); font-style: italic; }
.checks { list-style: none; padding: 0; margin: 10px 0; }
.checks li { margin: 6px 0; }
.checks li.st-fail { color: var(--fail); }
.walker, .walker-detail { color: var(--muted); font-size: 15px; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 14px; margin: 10px 0; }
dl.facts dt { color: var(--muted); } dl.facts dd { margin: 0; word-break: break-all; }
button.link { padding: 0 6px; font-family: ui-monospace, 'DejaVu Sans Mono', monospace; font-size: 15px; }
details.sec { margin: 10px 0; border-top: 1px solid var(--faint); padding-top: 6px; }
details.sec summary { font-weight: 700; cursor: pointer; font-size: 18px; }
pre.json { font: 14px/1.4 ui-monospace, 'DejaVu Sans Mono', Menlo, Consolas, monospace; white-space: pre-wrap;
  word-break: break-all; background: var(--bg); padding: 10px; border-radius: 8px; border: 1px solid var(--faint); }
.policy li.deny strong { color: var(--fail); } .policy li.allow strong { color: var(--pass); }
footer { padding: 10px 22px 24px; border-top: 2px solid var(--faint); font-size: 16px; color: var(--muted); }
footer h2 { font-size: 20px; color: var(--fg); margin: 12px 0 4px; }
footer table { border-collapse: collapse; font-size: 15px; }
footer td, footer th { text-align: left; padding: 2px 14px 2px 0; vertical-align: top; }
td.mono, .mono { font-family: ui-monospace, 'DejaVu Sans Mono', monospace; word-break: break-all; }
td.warn { color: var(--fail); font-weight: 700; }
#problems li { color: var(--fail); }
@media (max-width: 900px) { #lanes { width: 170px; } .lane-name { font-size: 19px; } #panel { min-width: 0; width: 100vw; position: absolute; inset: 0; } }
`;
