/**
 * The verifier that the HTML timeline runs in the browser, as JavaScript source text. It
 * has no DOM code, so the tests evaluate the very same text in Node (`new Function`) and
 * check it against `@tibet/core` and `@tibet/continuityd` on real data.
 *
 * It defines one global, `TibetVerify`, with: an RFC 8785 canonicaliser (`canonicalize`),
 * the token signature check (Ed25519 over the canonical token without `signature`, key id
 * rule of docs/core-token.md §6), the RFC 9162 inclusion proof of a log line, the C2SP
 * signed-note checkpoint signature, the causal links between the events on the page, and
 * `createVerifier`, which runs all of them over a graph (and over nodes added later).
 *
 * Written for any browser with WebCrypto (ES2017: async functions; no modules, no
 * template literals — this text sits inside a TypeScript template literal).
 */
export const VERIFY_JS = String.raw`var TibetVerify = (function () {
  'use strict';
  var enc = new TextEncoder();
  var HEX = '0123456789abcdef';
  var B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  var TOKEN_TYPE = 'tibet-token/1';
  // RFC 8032 §7.1 TEST 1 (empty message): a known-good signature for the self-test.
  var ED_PUB = 'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a';
  var ED_SIG = 'e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b';
  var SHA_ABC = 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad';

  // ---------------------------------------------------------------- RFC 8785 (JCS)
  var PLAIN = /^[^"\\\u0000-\u001f\ud800-\udfff]*$/;
  function jcsString(s) {
    if (PLAIN.test(s)) return '"' + s + '"';
    var out = '"';
    for (var i = 0; i < s.length; i++) {
      var c = s.charCodeAt(i);
      if (c >= 0xd800 && c <= 0xdbff) {
        var d = i + 1 < s.length ? s.charCodeAt(i + 1) : 0;
        if (d < 0xdc00 || d > 0xdfff) throw new Error('a string with a lone surrogate');
        out += s.charAt(i) + s.charAt(i + 1);
        i++;
      } else if (c >= 0xdc00 && c <= 0xdfff) {
        throw new Error('a string with a lone surrogate');
      } else if (c === 0x22) out += '\\"';
      else if (c === 0x5c) out += '\\\\';
      else if (c < 0x20) {
        if (c === 0x08) out += '\\b';
        else if (c === 0x09) out += '\\t';
        else if (c === 0x0a) out += '\\n';
        else if (c === 0x0c) out += '\\f';
        else if (c === 0x0d) out += '\\r';
        else out += '\\u00' + HEX.charAt(c >> 4) + HEX.charAt(c & 15);
      } else out += s.charAt(i);
    }
    return out + '"';
  }
  // Member names compare as arrays of UTF-16 code units: exactly what < does on strings.
  function byCodeUnits(a, b) {
    return a < b ? -1 : a > b ? 1 : 0;
  }
  function jcs(v, depth, omit) {
    if (depth > 128) throw new Error('nesting deeper than 128');
    if (v === null) return 'null';
    var t = typeof v;
    if (t === 'boolean') return v ? 'true' : 'false';
    if (t === 'number') {
      if (!isFinite(v)) throw new Error('a non-finite number');
      // RFC 8785 §3.2.2.3: the ECMAScript Number serialisation; -0 is written 0.
      return v === 0 ? '0' : String(v);
    }
    if (t === 'string') return jcsString(v);
    if (t === 'object') {
      var parts = [];
      if (Array.isArray(v)) {
        for (var i = 0; i < v.length; i++) {
          if (v[i] === undefined) throw new Error('undefined in an array');
          parts.push(jcs(v[i], depth + 1));
        }
        return '[' + parts.join(',') + ']';
      }
      var proto = Object.getPrototypeOf(v);
      if (proto !== Object.prototype && proto !== null) throw new Error('a non-plain object');
      var keys = Object.keys(v).sort(byCodeUnits);
      for (var k = 0; k < keys.length; k++) {
        var key = keys[k];
        if (key === omit || v[key] === undefined) continue;
        parts.push(jcsString(key) + ':' + jcs(v[key], depth + 1));
      }
      return '{' + parts.join(',') + '}';
    }
    throw new Error('a value of type ' + t);
  }
  /** The RFC 8785 form of a JSON value (throws on anything that is not JSON). */
  function canonicalize(v) {
    return jcs(v, 0, undefined);
  }

  // ---------------------------------------------------------------- bytes
  function toHex(b) {
    var s = '';
    for (var i = 0; i < b.length; i++) s += HEX.charAt(b[i] >> 4) + HEX.charAt(b[i] & 15);
    return s;
  }
  function fromHex(s, n, what) {
    if (typeof s !== 'string' || s.length !== 2 * n || !/^[0-9a-f]*$/.test(s))
      throw new Error(what + ' is not ' + n + ' bytes of lowercase hex');
    var b = new Uint8Array(n);
    for (var i = 0; i < n; i++) b[i] = parseInt(s.substr(2 * i, 2), 16);
    return b;
  }
  function b64enc(b, url) {
    var a = B64 + (url ? '-_' : '+/');
    var s = '';
    for (var i = 0; i < b.length; i += 3) {
      var n = (b[i] << 16) | ((i + 1 < b.length ? b[i + 1] : 0) << 8) | (i + 2 < b.length ? b[i + 2] : 0);
      s += a.charAt((n >> 18) & 63) + a.charAt((n >> 12) & 63);
      s += i + 1 < b.length ? a.charAt((n >> 6) & 63) : url ? '' : '=';
      s += i + 2 < b.length ? a.charAt(n & 63) : url ? '' : '=';
    }
    return s;
  }
  /** Strict: the text must be exactly the canonical encoding of the bytes it decodes to. */
  function b64dec(s, url, what) {
    if (typeof s !== 'string' || s.length > 1048576) throw new Error(what + ' is not a string');
    var a = B64 + (url ? '-_' : '+/');
    var body = url ? s : s.replace(/={1,2}$/, '');
    var out = new Uint8Array(Math.floor((body.length * 6) / 8));
    var acc = 0;
    var bits = 0;
    var j = 0;
    for (var i = 0; i < body.length; i++) {
      var v = a.indexOf(body.charAt(i));
      if (v < 0) throw new Error(what + ' is not ' + (url ? 'base64url' : 'base64'));
      acc = ((acc << 6) | v) & 0xffffff;
      bits += 6;
      if (bits >= 8) {
        bits -= 8;
        out[j++] = (acc >> bits) & 255;
      }
    }
    if (b64enc(out, url) !== s) throw new Error(what + ' is not canonical ' + (url ? 'base64url' : 'base64'));
    return out;
  }
  function concat(list) {
    var n = 0;
    for (var i = 0; i < list.length; i++) n += list[i].length;
    var out = new Uint8Array(n);
    var o = 0;
    for (var k = 0; k < list.length; k++) {
      out.set(list[k], o);
      o += list[k].length;
    }
    return out;
  }
  function equalBytes(a, b) {
    if (a.length !== b.length) return false;
    var d = 0;
    for (var i = 0; i < a.length; i++) d |= a[i] ^ b[i];
    return d === 0;
  }

  // ---------------------------------------------------------------- WebCrypto
  function subtle() {
    return typeof crypto !== 'undefined' && crypto && crypto.subtle ? crypto.subtle : null;
  }
  function sha256(bytes) {
    return subtle()
      .digest('SHA-256', bytes)
      .then(function (d) {
        return new Uint8Array(d);
      });
  }
  var keys = Object.create(null);
  function edKey(pub) {
    var id = toHex(pub);
    if (!keys[id]) keys[id] = subtle().importKey('raw', pub, { name: 'Ed25519' }, false, ['verify']);
    return keys[id];
  }
  // docs/core-token.md §5 "Ed25519 verification rule", as @tibet/core applies it, whatever the
  // browser's own Ed25519 accepts: the key decodes strictly (y < p) and is not of small order
  // (its y, sign bit aside, is none of the five below: 0, 1, p − 1 and the two order-8 points),
  // S < L, and the browser checks the cofactorless equation against the bytes of R.
  var P_LE = 'edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f';
  var L_LE = 'edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010';
  var SMALL_ORDER_Y = [
    '0000000000000000000000000000000000000000000000000000000000000000',
    '0100000000000000000000000000000000000000000000000000000000000000',
    'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
    '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05',
    'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a',
  ];
  function belowLE(a, bound) {
    var b = fromHex(bound, 32, 'bound');
    for (var i = 31; i >= 0; i--) if (a[i] !== b[i]) return a[i] < b[i];
    return false;
  }
  /** Why an Ed25519 public key is refused (null when it is acceptable). */
  function edKeyProblem(pub) {
    if (!(pub instanceof Uint8Array) || pub.length !== 32) return 'not 32 bytes';
    var y = pub.slice();
    y[31] &= 0x7f;
    if (!belowLE(y, P_LE)) return 'a non-canonical point encoding';
    if (SMALL_ORDER_Y.indexOf(toHex(y)) >= 0) return 'a point of small order';
    return null;
  }
  function edVerify(pub, sig, msg) {
    if (edKeyProblem(pub) || sig.length !== 64 || !belowLE(sig.subarray(32), L_LE)) return Promise.resolve(false);
    return edKey(pub).then(function (key) {
      return subtle().verify({ name: 'Ed25519' }, key, sig, msg);
    });
  }
  var support = null;
  /**
   * What this browser can check: { sha, ed, reason }. Both are self-tested against known
   * answers (SHA-256("abc"); RFC 8032 TEST 1, which must verify, and the same signature with
   * one bit flipped, which must not), so that a missing or broken Ed25519 can never pass.
   */
  function cryptoSupport() {
    if (support) return support;
    support = (async function () {
      if (!subtle())
        return { sha: false, ed: false, reason: 'not checked (WebCrypto unavailable: open the file directly, or from localhost or https)' };
      try {
        if (toHex(await sha256(enc.encode('abc'))) !== SHA_ABC)
          return { sha: false, ed: false, reason: 'not checked (the browser failed the SHA-256 self-test)' };
      } catch (e) {
        return { sha: false, ed: false, reason: 'not checked (browser lacks SHA-256)' };
      }
      try {
        var pub = fromHex(ED_PUB, 32, 'key');
        var sig = fromHex(ED_SIG, 64, 'sig');
        var bad = sig.slice();
        bad[5] ^= 1;
        var good = await edVerify(pub, sig, new Uint8Array(0));
        var forged = await edVerify(pub, bad, new Uint8Array(0));
        if (good !== true || forged !== false)
          return { sha: true, ed: false, reason: 'not checked (the browser failed the Ed25519 self-test)' };
      } catch (e) {
        return { sha: true, ed: false, reason: 'not checked (browser lacks Ed25519)' };
      }
      return { sha: true, ed: true, reason: '' };
    })();
    return support;
  }

  function res(status, reason) {
    return { status: status, reason: reason };
  }
  function isObject(v) {
    return typeof v === 'object' && v !== null && !Array.isArray(v);
  }
  function short(hex) {
    return hex.slice(0, 16) + '…';
  }

  // ---------------------------------------------------------------- checkpoint (C2SP)
  /**
   * The C2SP signed note of the log: parsed strictly, its origin, size and root equal to
   * what the page says, and an Ed25519 signature line by the log's key name whose key ID is
   * the first 4 bytes of SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key), over the note text.
   * The result carries size and root so that inclusion proofs can use them.
   */
  async function checkCheckpoint(log, sup) {
    var r = { status: 'unknown', reason: '', size: -1, root: null, origin: '', keyName: '' };
    function done(status, reason) {
      r.status = status;
      r.reason = reason;
      return r;
    }
    if (!isObject(log)) return done('unknown', 'no log checkpoint in this page');
    try {
      var note = log.checkpoint;
      if (typeof note !== 'string' || note.length > 65536) throw new Error('not a note of at most 64 KiB');
      if (note.charAt(note.length - 1) !== '\n') throw new Error('the note must end with a newline');
      var sep = note.indexOf('\n\n');
      if (sep < 0) throw new Error('no blank line before the signatures');
      var text = note.slice(0, sep + 1);
      var lines = text.slice(0, -1).split('\n');
      if (lines.length < 3) throw new Error('needs origin, size and root hash lines');
      if (!/^(0|[1-9][0-9]{0,15})$/.test(lines[1])) throw new Error('bad tree size line');
      var size = Number(lines[1]);
      if (!Number.isSafeInteger(size)) throw new Error('tree size too large');
      var root = b64dec(lines[2], false, 'the root hash');
      if (root.length !== 32) throw new Error('the root hash is not 32 bytes');
      var sigLines = note.slice(sep + 2, -1).split('\n');
      var parsed = [];
      for (var i = 0; i < sigLines.length; i++) {
        var m = /^\u2014 (\S+) ([A-Za-z0-9+/=]+)$/.exec(sigLines[i]);
        if (!m) throw new Error('bad signature line ' + (i + 1));
        var raw = b64dec(m[2], false, 'a note signature');
        if (raw.length < 5) throw new Error('signature line ' + (i + 1) + ' too short');
        parsed.push({ name: m[1], keyId: raw.slice(0, 4), sig: raw.slice(4) });
      }
    } catch (e) {
      return done('fail', 'the checkpoint note is malformed: ' + e.message);
    }
    r.origin = lines[0];
    r.keyName = String(log.key_name);
    if (lines[0] !== log.origin)
      return done('fail', 'the note is for origin "' + lines[0] + '", the page says "' + log.origin + '"');
    if (size !== log.tree_size || toHex(root) !== log.root_hash)
      return done('fail', 'the note says size ' + size + ' and root ' + short(toHex(root)) + '; the page says size ' + log.tree_size + ' and root ' + short(String(log.root_hash)));
    r.size = size;
    r.root = root;
    if (!sup.ed) return done('unknown', sup.reason);
    var pub;
    try {
      pub = b64dec(log.public_key, false, 'the log key');
      if (pub.length !== 32) throw new Error('the log key is not 32 bytes');
    } catch (e) {
      return done('fail', e.message);
    }
    var id = (await sha256(concat([enc.encode(String(log.key_name)), Uint8Array.of(0x0a, 0x01), pub]))).slice(0, 4);
    var mine = parsed.filter(function (p) {
      return p.name === log.key_name && equalBytes(p.keyId, id);
    });
    if (!mine.length)
      return done('fail', 'no signature by ' + log.key_name + ' with the key in this page (key ID ' + toHex(id) + '): another key signed this checkpoint, or the page holds the wrong key');
    var msg = enc.encode(text);
    for (var k = 0; k < mine.length; k++) {
      if (mine[k].sig.length !== 64 || !(await edVerify(pub, mine[k].sig, msg)))
        return done('fail', 'the signature by ' + log.key_name + ' (key ID ' + toHex(id) + ') does not verify: the note was changed after signing');
    }
    return done('pass', 'signed by ' + log.key_name + ' (key ID ' + toHex(id) + '): ' + size + ' lines, root ' + short(toHex(root)));
  }

  // ---------------------------------------------------------------- token signature
  var SHOWN = [
    ['action_id', 'action_id'],
    ['parent_action_id', 'parent_action_id'],
    ['event', 'event'],
    ['actor', 'actor'],
    ['actor_class', 'actor_class'],
    ['timestamp', 'timestamp'],
    ['generation', 'generation'],
    ['reason', 'erachter'],
  ];
  /**
   * The token's Ed25519 signature over the RFC 8785 form of the token without "signature",
   * with the actor's public key from the page; the kid must be the key's id (first 8 bytes
   * of SHA-256 of the key, hex). Also: what the page shows about the event (actor, event,
   * reason, …) must be what the token says.
   */
  async function checkSignature(node, actor, sup) {
    var t = node.token;
    if (!isObject(t)) return res('fail', 'the event has no token');
    var diff = [];
    for (var i = 0; i < SHOWN.length; i++)
      if (node[SHOWN[i][0]] !== t[SHOWN[i][1]]) diff.push(SHOWN[i][0]);
    try {
      if (canonicalize(node.decisions) !== canonicalize(t.policy)) diff.push('decisions');
    } catch (e) {
      diff.push('decisions');
    }
    if (diff.length) return res('fail', 'the page shows ' + diff.join(', ') + ' different from what the signed token says');
    if (t.typ !== TOKEN_TYPE) return res('fail', 'typ is not ' + TOKEN_TYPE);
    if (typeof t.signature !== 'string' || !/^[A-Za-z0-9_-]{85}[AQgw]$/.test(t.signature))
      return res('fail', 'the signature is not 64 bytes of base64url');
    if (typeof t.kid !== 'string' || !/^[0-9a-f]{16}$/.test(t.kid)) return res('fail', 'the kid is not 16 hex digits');
    if (!isObject(actor) || typeof actor.public_key !== 'string')
      return res('unknown', 'no public key for ' + t.actor + ' in this page');
    if (!sup.ed) return res('unknown', sup.reason);
    var pub;
    try {
      pub = b64dec(actor.public_key, true, 'the key of ' + t.actor);
      if (pub.length !== 32) throw new Error('the key of ' + t.actor + ' is not 32 bytes');
    } catch (e) {
      return res('fail', e.message);
    }
    var kid = toHex((await sha256(pub)).slice(0, 8));
    if (kid !== t.kid)
      return res('fail', 'kid ' + t.kid + ' is not the id of the key of ' + t.actor + ' in this page (' + kid + ')');
    var input;
    try {
      input = enc.encode(jcs(t, 0, 'signature'));
    } catch (e) {
      return res('fail', 'the token is not canonical JSON: ' + e.message);
    }
    var ok = await edVerify(pub, b64dec(t.signature, true, 'the signature'), input);
    return ok
      ? res('pass', 'Ed25519 signature by ' + t.actor + ' (kid ' + kid + ') over the RFC 8785 form of the token (' + input.length + ' bytes) verifies')
      : res('fail', 'the Ed25519 signature does not verify: the token was changed after signing, or another key signed it');
  }

  // ---------------------------------------------------------------- inclusion (RFC 9162)
  /** RFC 9162 §2.1.3.2: the root that a leaf hash and its inclusion proof lead to. */
  async function rootFromProof(leaf, index, size, proof) {
    if (!Number.isSafeInteger(index) || !Number.isSafeInteger(size) || index < 0 || index >= size)
      throw new Error('index ' + index + ' is not below tree size ' + size);
    var fn = index;
    var sn = size - 1;
    var r = leaf;
    for (var i = 0; i < proof.length; i++) {
      if (sn === 0) throw new Error('too many proof hashes');
      if (fn % 2 === 1 || fn === sn) {
        r = await sha256(concat([Uint8Array.of(1), proof[i], r]));
        if (fn % 2 === 0) {
          while (fn % 2 === 0 && fn !== 0) {
            fn = Math.floor(fn / 2);
            sn = Math.floor(sn / 2);
          }
        }
      } else {
        r = await sha256(concat([Uint8Array.of(1), r, proof[i]]));
      }
      fn = Math.floor(fn / 2);
      sn = Math.floor(sn / 2);
    }
    if (sn !== 0) throw new Error('too few proof hashes');
    return r;
  }
  /**
   * The event's log line: in RFC 8785 form, holding this very token at the index the proof
   * names, and its leaf hash SHA-256(0x00 ‖ line) leads through the proof to the root of the
   * checkpoint of that tree size.
   */
  async function checkInclusion(node, cp, sup) {
    var source = node.source;
    if (!isObject(source) || source.kind !== 'log')
      return res('unknown', 'not from the log' + (isObject(source) && source.kind === 'bundle' ? ' (found in ' + source.file + ' › ' + source.entry + ')' : '') + ': no inclusion proof');
    var inc = node.inclusion;
    if (!isObject(inc)) return res('unknown', 'no inclusion proof in this page');
    if (typeof source.line !== 'string') return res('fail', 'the log line is missing');
    var rec;
    try {
      rec = JSON.parse(source.line);
      if (canonicalize(rec) !== source.line) return res('fail', 'the log line is not in RFC 8785 form');
    } catch (e) {
      return res('fail', 'the log line is not JSON');
    }
    if (!isObject(rec) || rec.index !== source.index || inc.index !== source.index)
      return res('fail', 'the line, its source and its proof name different log positions');
    try {
      if (canonicalize(rec.token) !== canonicalize(node.token))
        return res('fail', 'the log line holds a different token than the one shown');
    } catch (e) {
      return res('fail', 'the token is not canonical JSON: ' + e.message);
    }
    if (!sup.sha) return res('unknown', sup.reason);
    if (!cp || !cp.root) return res('unknown', 'no checkpoint of ' + inc.tree_size + ' lines in this page');
    var proof = [];
    try {
      if (!Array.isArray(inc.hashes) || inc.hashes.length > 64) throw new Error('the proof is not a list of at most 64 hashes');
      for (var i = 0; i < inc.hashes.length; i++) proof.push(fromHex(inc.hashes[i], 32, 'proof hash ' + i));
      var leaf = await sha256(concat([Uint8Array.of(0), enc.encode(source.line)]));
      var root = await rootFromProof(leaf, inc.index, inc.tree_size, proof);
    } catch (e) {
      return res('fail', 'the inclusion proof is malformed: ' + e.message);
    }
    if (!equalBytes(root, cp.root))
      return res('fail', 'the line and its ' + proof.length + ' proof hashes do not lead to the checkpoint root: the line or the proof was changed');
    return res('pass', 'line ' + inc.index + ' is in the log: its leaf hash and ' + proof.length + ' proof hashes lead to the root of the checkpoint of ' + inc.tree_size + ' lines');
  }

  /** SHA-256 of the canonical form of the whole signed token: what a successor's prev holds. */
  async function tokenHash(token) {
    return 'sha256:' + toHex(await sha256(enc.encode(canonicalize(token))));
  }

  // ---------------------------------------------------------------- causal links
  /**
   * prev must be the hash of a token on the page (the walker's prev edge names which one),
   * the parent must be on the page, and the generation must follow the causal-time rule.
   * Links to events outside the page are "unknown", not failures.
   */
  function checkChain(node, ctx) {
    var t = node.token;
    if (!isObject(t)) return res('fail', 'the event has no token');
    var notes = [];
    var status = 'pass';
    var known = true;
    var gPrev = 0;
    var gParent = 0;
    if (t.prev !== null) {
      var p = ctx.byHash[t.prev];
      if (p) {
        gPrev = p.token.generation;
        notes.push('prev is the hash of ' + p.action_id);
      } else {
        var from = ctx.prevFrom[node.action_id];
        if (from && ctx.byId[from] && ctx.hashed[from])
          return res('fail', 'prev is not the hash of ' + from + ', the token before it on its line, as this page shows it: that token or this link was changed');
        known = false;
        status = 'unknown';
        notes.push('the token before it on its line is not in this page');
      }
    }
    if (t.parent_action_id !== null) {
      var par = ctx.byId[t.parent_action_id];
      if (par && isObject(par.token)) {
        gParent = par.token.generation;
        notes.push('parent ' + par.action_id + ' is here');
      } else {
        known = false;
        status = 'unknown';
        notes.push('parent ' + t.parent_action_id + ' is not in this page');
      }
    }
    if (known) {
      var want = 1 + Math.max(gPrev, gParent);
      if (t.generation !== want)
        return res('fail', 'generation ' + t.generation + ', the causal-time rule gives ' + want);
      notes.push('generation ' + t.generation + ' follows the causal-time rule');
    }
    return res(status, notes.length ? notes.join('; ') : 'first event of its line');
  }

  /**
   * An event's overall mark: ✗ if any check failed (a broken link included), ? if the
   * signature, the inclusion or the checkpoint could not be checked, ✓ only when all three
   * passed (the checkpoint only counts for log events).
   */
  function overall(r) {
    var list = [r.signature, r.inclusion, r.chain];
    if (r.checkpoint) list.push(r.checkpoint);
    for (var i = 0; i < list.length; i++) if (list[i].status === 'fail') return 'fail';
    var core = [r.signature, r.inclusion];
    if (r.checkpoint) core.push(r.checkpoint);
    for (var k = 0; k < core.length; k++) if (core[k].status !== 'pass') return 'unknown';
    return 'pass';
  }

  // ---------------------------------------------------------------- the verifier
  var ACTION_ID = /^act_[0-9a-f]{16}$/;
  /** Why a node cannot be shown at all (null when it can). */
  function nodeProblem(n) {
    if (!isObject(n)) return 'not an object';
    if (typeof n.action_id !== 'string' || !ACTION_ID.test(n.action_id)) return 'no valid action_id';
    if (typeof n.actor !== 'string' || typeof n.event !== 'string') return 'no actor or event';
    if (!isObject(n.token)) return 'no token';
    if (!isObject(n.source)) return 'no source';
    return null;
  }

  /**
   * The page carries a log event's token once, inside its log line, when the two are the
   * same text: token_in_line = [start, end] in the line. Put the token back on the node, and
   * what the page shows of the event (action, actor, event, reason, decisions, ...) where the
   * node leaves it out: then it is the token's.
   */
  function expandNode(n) {
    if (isObject(n) && n.token === undefined && Array.isArray(n.token_in_line) && isObject(n.source) && typeof n.source.line === 'string') {
      try {
        n.token = JSON.parse(n.source.line.slice(n.token_in_line[0], n.token_in_line[1]));
      } catch (e) {
        n.token = undefined;
      }
      delete n.token_in_line;
    }
    if (isObject(n) && isObject(n.token)) {
      for (var i = 0; i < SHOWN.length; i++) if (n[SHOWN[i][0]] === undefined) n[SHOWN[i][0]] = n.token[SHOWN[i][1]];
      if (n.decisions === undefined) n.decisions = n.token.policy;
    }
    return n;
  }

  function entry(list, k) {
    return typeof k === 'number' && Number.isInteger(k) && k >= 0 && k < list.length ? list[k] : undefined;
  }
  /**
   * The page's data as renderHtml writes it: each log line once, verbatim, in the lines block
   * (a node names its line by number: in_lines), each proof hash once (inclusion.hash_refs
   * index data.hashes), each log token once, inside its line, and the walker's checks of the
   * nodes in a table of their own, last (data.checks, by node). Put it all back on the nodes
   * (in place), so that they are GraphNodes again.
   */
  function expandData(data, linesText) {
    if (!isObject(data) || !Array.isArray(data.nodes)) return data;
    var lines = typeof linesText === 'string' && linesText.length ? linesText.split('\n') : [];
    var table = Array.isArray(data.hashes) ? data.hashes : [];
    var checks = Array.isArray(data.checks) ? data.checks : [];
    for (var i = 0; i < data.nodes.length; i++) {
      var n = data.nodes[i];
      if (!isObject(n)) continue;
      if (n.checks === undefined && isObject(entry(checks, i))) n.checks = checks[i];
      if (n.in_lines !== undefined) {
        if (isObject(n.source) && n.source.line === undefined) n.source.line = entry(lines, n.in_lines);
        delete n.in_lines;
      }
      var inc = n.inclusion;
      if (isObject(inc) && inc.hash_refs !== undefined) {
        if (inc.hashes === undefined && Array.isArray(inc.hash_refs))
          inc.hashes = inc.hash_refs.map(function (k) {
            return entry(table, k);
          });
        delete inc.hash_refs;
      }
      expandNode(n);
    }
    delete data.hashes;
    delete data.checks;
    return data;
  }

  /**
   * Verify a graph's events, and events added later (live). Runs one job at a time;
   * idle() resolves when all queued work is done. Callbacks: onResult(node, result),
   * onCheckpoint(result), onEdges(edges) for links derived for nodes added without edges.
   */
  function createVerifier(opts) {
    var o = opts || {};
    // maps keyed by ids from the data: no prototype, so no id can be "__proto__" trouble
    var state = {
      nodes: [],
      byId: Object.create(null),
      byHash: Object.create(null),
      hashed: Object.create(null),
      prevFrom: Object.create(null),
      actors: Object.create(null),
      checkpoints: Object.create(null),
      pin: null,
      results: Object.create(null),
      problems: [],
    };
    var tail = Promise.resolve();
    function queue(job) {
      tail = tail.then(job).catch(function (e) {
        state.problems.push('verifier error: ' + (e && e.message ? e.message : String(e)));
        if (o.onProblem) o.onProblem(state.problems[state.problems.length - 1]);
      });
      return tail;
    }
    function tick() {
      return new Promise(function (resolve) {
        setTimeout(resolve, 0);
      });
    }
    function problem(msg) {
      state.problems.push(msg);
      if (o.onProblem) o.onProblem(msg);
    }
    function addActor(a) {
      if (!isObject(a) || typeof a.id !== 'string') {
        problem('an actor without an id was ignored');
        return false;
      }
      var had = state.actors[a.id];
      if (had && had.public_key && had.public_key !== a.public_key) {
        problem('a different key for ' + a.id + ' was ignored: the page keeps the key it was given first');
        return false;
      }
      if (had && had.public_key) return false;
      state.actors[a.id] = { id: a.id, class: a.class, public_key: typeof a.public_key === 'string' ? a.public_key : null };
      // a key that arrives after the actor's events (live): check those events again
      if (had && state.actors[a.id].public_key)
        queue(async function () {
          var sup = await cryptoSupport();
          for (var i = 0; i < state.nodes.length; i++)
            if (state.nodes[i].token.actor === a.id) await verifyNode(state.nodes[i], sup);
        });
      return !had;
    }
    async function verifyNode(n, sup) {
      var r = {};
      var actor = state.actors[n.token.actor];
      r.signature = await checkSignature(n, actor, sup);
      var inc = isObject(n.inclusion) ? n.inclusion : null;
      var cp = inc ? state.checkpoints[inc.tree_size] : null;
      r.inclusion = await checkInclusion(n, cp, sup);
      if (isObject(n.source) && n.source.kind === 'log')
        r.checkpoint = cp
          ? res(cp.status, cp.reason)
          : res('unknown', inc ? 'no checkpoint of ' + inc.tree_size + ' lines in this page' : 'no checkpoint');
      r.chain = checkChain(n, state);
      r.status = overall(r);
      state.results[n.action_id] = r;
      if (o.onResult) o.onResult(n, r);
    }
    function addCheckpoint(log) {
      return queue(async function () {
        var sup = await cryptoSupport();
        if (!isObject(log)) return;
        if (state.pin && (log.public_key !== state.pin.public_key || log.key_name !== state.pin.key_name || log.origin !== state.pin.origin)) {
          problem('a checkpoint from another log or key was ignored: the page keeps the log key it was given first');
          return;
        }
        if (!state.pin) state.pin = { public_key: log.public_key, key_name: log.key_name, origin: log.origin };
        var cp = await checkCheckpoint(log, sup);
        // a note that could not even be read still fails the events that claim its size
        var at = cp.size >= 0 ? cp.size : log.tree_size;
        if (Number.isSafeInteger(at)) state.checkpoints[at] = cp;
        if (o.onCheckpoint) o.onCheckpoint(cp, log);
        // events waiting for this checkpoint
        for (var i = 0; i < state.nodes.length; i++) {
          var n = state.nodes[i];
          if (isObject(n.inclusion) && n.inclusion.tree_size === cp.size) await verifyNode(n, sup);
        }
      });
    }
    function addNodes(list, edges) {
      return queue(async function () {
        var sup = await cryptoSupport();
        var fresh = [];
        for (var i = 0; i < list.length; i++) {
          var n = expandNode(list[i]);
          var why = nodeProblem(n);
          if (why) {
            problem('an event was ignored: ' + why);
            continue;
          }
          if (state.byId[n.action_id]) continue;
          state.byId[n.action_id] = n;
          state.nodes.push(n);
          fresh.push(n);
        }
        if (Array.isArray(edges))
          edges.forEach(function (e) {
            if (isObject(e) && e.kind === 'prev') state.prevFrom[e.to] = e.from;
          });
        // hashes first (a node's prev may name any node of the batch), then the checks
        for (var a = 0; a < fresh.length; a += 256) {
          var part = fresh.slice(a, a + 256);
          if (sup.sha)
            await Promise.all(
              part.map(function (n) {
                return tokenHash(n.token).then(
                  function (h) {
                    state.byHash[h] = n;
                    state.hashed[n.action_id] = h;
                  },
                  function () {
                    return undefined;
                  },
                );
              }),
            );
          await tick();
        }
        if (!Array.isArray(edges)) {
          var derived = [];
          fresh.forEach(function (n) {
            var t = n.token;
            if (typeof t.prev === 'string') {
              var p = state.byHash[t.prev];
              derived.push(p ? { from: p.action_id, to: n.action_id, kind: 'prev', status: 'ok' } : { from: t.prev, to: n.action_id, kind: 'prev', status: 'missing' });
              if (p) state.prevFrom[n.action_id] = p.action_id;
            }
            if (typeof t.parent_action_id === 'string')
              derived.push({ from: t.parent_action_id, to: n.action_id, kind: 'parent', status: state.byId[t.parent_action_id] ? 'ok' : 'missing' });
          });
          if (o.onEdges) o.onEdges(derived);
        }
        for (var b = 0; b < fresh.length; b += 128) {
          await Promise.all(
            fresh.slice(b, b + 128).map(function (n) {
              return verifyNode(n, sup);
            }),
          );
          await tick();
        }
        // older events whose predecessor or parent just arrived
        if (fresh.length && fresh.length < state.nodes.length)
          state.nodes.forEach(function (n) {
            var r = state.results[n.action_id];
            if (r && r.chain.status === 'unknown' && fresh.indexOf(n) < 0) {
              r.chain = checkChain(n, state);
              r.status = overall(r);
              if (o.onResult) o.onResult(n, r);
            }
          });
      });
    }
    return {
      state: state,
      addActor: addActor,
      addCheckpoint: addCheckpoint,
      addNodes: addNodes,
      idle: function () {
        return tail;
      },
    };
  }

  return {
    canonicalize: canonicalize,
    cryptoSupport: cryptoSupport,
    checkCheckpoint: checkCheckpoint,
    checkSignature: checkSignature,
    checkInclusion: checkInclusion,
    checkChain: checkChain,
    rootFromProof: rootFromProof,
    tokenHash: tokenHash,
    overall: overall,
    nodeProblem: nodeProblem,
    edVerify: edVerify,
    edKeyProblem: edKeyProblem,
    expandNode: expandNode,
    expandData: expandData,
    createVerifier: createVerifier,
    toHex: toHex,
    b64dec: b64dec,
    b64enc: b64enc,
  };
})();
`;
