#!/usr/bin/env node
/**
 * The TIBET vault family on stage: one narrated scenario, end to end, with real processes —
 * the continuityd audit daemon, the gateway daemon, a loopback stand-in package registry and
 * an agent (every agent step is its own process, in its own TIBET_HOME that holds no secret
 * and no custodian key). Outputs land in `demo-out/`.
 *
 *   tibet-demo [--fast] [--step] [--serve[=PORT]] [--out DIR]
 */
import { createHash, randomBytes } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DemoFailure, Stage } from './stage.js';
import { startLiveView, type LiveView } from './live.js';
import { liveGraph } from './graph.js';

const HELP = `tibet-demo — the four primitives of the TIBET vault family on stage

Usage: tibet-demo [options]

Options:
  --fast          no pauses between lines (CI)
  --step          wait for Enter before each act (for a presenter; needs a terminal)
  --serve[=PORT]  a live web view on http://127.0.0.1:PORT (default: any free port): events
                  appear as they happen, each verified in the browser; the acts start when
                  a page opens (or after 60 s); keeps serving after the last act until Ctrl-C
  --out DIR       where everything goes (default ./demo-out; emptied first)
  -h, --help      this text

Acts: 1 import a registry token · 2 delegate to a release agent for one package · 3 the
agent asks for a capsule · 4 the gateway publishes, the agent never sees the token · 5 a
replay is denied · 6 the token leaks in a CI log: exposure, rotation, the old capsule denied ·
7 a root password under a dead-man switch goes to a successor · 8 a regulator checks "who
could have published, who did" offline.

Exit codes: 0 the scenario ran and no secret leaked, 1 a step did not go as scripted or a
leak was found, 2 usage error.`;

interface Args {
  fast: boolean;
  step: boolean;
  serve: number | null;
  out: string;
}

function parseArgs(argv: string[]): Args {
  const a: Args = { fast: false, step: false, serve: null, out: join(process.cwd(), 'demo-out') };
  for (let i = 0; i < argv.length; i++) {
    const v = argv[i]!;
    if (v === '--fast') a.fast = true;
    else if (v === '--step') a.step = true;
    else if (v === '--serve') a.serve = 0;
    else if (v.startsWith('--serve=')) {
      const p = Number(v.slice(8));
      if (!Number.isInteger(p) || p < 0 || p > 65535) usage(`bad port in ${v}`);
      a.serve = p;
    } else if (v === '--out') {
      const d = argv[++i];
      if (!d) usage('--out needs a folder');
      a.out = d;
    } else if (v === '-h' || v === '--help') {
      process.stdout.write(HELP + '\n');
      process.exit(0);
    } else usage(`unknown option ${v}`);
  }
  return a;
}

function usage(msg: string): never {
  process.stderr.write(`tibet-demo: ${msg}\n(add --help for usage)\n`);
  process.exit(2);
}

const ORG = 'acme';
const ALICE = 'jis:acme:alice';
const BOB = 'jis:acme:bob';
const BOT = 'jis:acme:release-bot';
const GW = 'jis:acme:gateway';
const KC = 'jis:acme:keychain';
const LOGID = 'jis:acme:auditlog';
const NPM = 'sec_npm_001';
const ROOT = 'sec_root_001';
const PKG = 'acme-lib';
const PKG_PATH = '/acme-lib';

/** A registry token in the style of npm's: `npm_` + 36 base62-ish characters. */
function newToken(): string {
  return `npm_${randomBytes(27).toString('base64url')}`;
}

function sha256Hex(s: string): string {
  return createHash('sha256').update(s, 'utf8').digest('hex');
}

/** Every form in which a token could leak: raw, hex, base64, base64url. */
function forms(secret: string): Buffer[] {
  const b = Buffer.from(secret, 'utf8');
  return [
    b,
    Buffer.from(b.toString('hex')),
    Buffer.from(b.toString('base64')),
    Buffer.from(b.toString('base64url')),
  ];
}

function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  for (const f of readdirSync(dir)) {
    const p = join(dir, f);
    const st = statSync(p);
    if (st.isDirectory()) out.push(...filesUnder(p));
    else if (st.isFile()) out.push(p);
  }
  return out;
}

function leaksIn(
  files: string[],
  texts: { name: string; text: string }[],
  secrets: string[],
): string[] {
  const found: string[] = [];
  const needles = secrets.flatMap(forms);
  for (const f of files) {
    const b = readFileSync(f);
    if (needles.some((n) => b.includes(n))) found.push(f);
  }
  for (const t of texts) {
    const b = Buffer.from(t.text, 'utf8');
    if (needles.some((n) => b.includes(n))) found.push(t.name);
  }
  return found;
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  const out = args.out;
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  const home = join(out, 'home');
  const agentHome = join(out, 'agent');
  /** Paths as the commands (which run in `out`) see them. */
  const r = (p: string): string => relative(out, p);
  const regDir = join(out, 'registry');
  const regulatorHome = join(out, 'regulator');
  for (const d of [home, agentHome, regDir, regulatorHome]) mkdirSync(d, { recursive: true });

  // Demo only: fixed passphrases in the environment so that nothing prompts on stage.
  const ownerEnv: NodeJS.ProcessEnv = {
    PATH: process.env['PATH'],
    HOME: process.env['HOME'],
    TIBET_HOME: home,
    TIBET_PASSPHRASE: 'demo only: never put a passphrase in a script',
    ...(process.env['NO_COLOR'] !== undefined ? { NO_COLOR: '1' } : {}),
  };
  // The agent's own environment: its own home and its own key's passphrase — no secret, no
  // custodian key, nothing of the owner's environment.
  const agentEnv: NodeJS.ProcessEnv = {
    PATH: process.env['PATH'],
    HOME: process.env['HOME'],
    TIBET_HOME: agentHome,
    TIBET_PASSPHRASE: 'the agent has its own key, and only that',
    NO_COLOR: '1',
  };
  const regulatorEnv: NodeJS.ProcessEnv = {
    PATH: process.env['PATH'],
    HOME: process.env['HOME'],
    TIBET_HOME: regulatorHome,
    NO_COLOR: '1',
  };

  let live: LiveView | null = null;
  const stage = new Stage({
    out,
    step: args.step,
    fast: args.fast,
    env: ownerEnv,
    onNarrate: (kind, text) => live?.narrate(kind, text),
  });
  const agentView: { name: string; text: string }[] = [];
  const agent = (argv: string[], o: { expect?: number; input?: string } = {}) => {
    const r = stage.tibet(argv, { ...o, env: agentEnv, who: 'agent' });
    agentView.push({ name: `agent: tibet ${argv.join(' ')}`, text: r.stdout + r.stderr });
    return r;
  };
  const refresh = async (): Promise<void> => {
    if (live) live.update(await liveGraph(home));
  };

  // Tests pass the two tokens in (TIBET_DEMO_TOKENS="v1,v2") so that they can search every
  // output for them on their own; otherwise they are random, as a registry's would be.
  const given = process.env['TIBET_DEMO_TOKENS']?.split(',');
  const tokens =
    given?.length === 2 && given.every((t) => /^[\x21-\x7e]{16,200}$/.test(t))
      ? { v1: given[0]!, v2: given[1]! }
      : { v1: newToken(), v2: newToken() };
  const startedAt = new Date(Date.now() - 1000).toISOString();
  const t0 = Date.now();
  const c = (code: string, s: string) => stage.c(code, s);
  process.stdout.write(c('1', 'TIBET vault family — causal-aware secret custody, on stage\n'));
  process.stdout.write(c('2', `outputs: ${relative(process.cwd(), out) || '.'}/\n`));

  try {
    // ------------------------------------------------------------------ the cast
    await stage.scene(
      'The cast',
      'Alice owns things; Bob is her successor; a release agent (class mcp-server) publishes\n' +
        'packages; the keychain, the audit log and the gateway are services. Each has an\n' +
        'Ed25519 identity; private keys are stored encrypted. The agent lives in its own home.',
    );
    stage.tibet(['keychain', 'init', '--org', ORG]);
    stage.tibet(['id', 'create', ALICE, '--class', 'human']);
    stage.tibet(['id', 'create', BOB, '--class', 'human']);
    stage.tibet(['id', 'create', GW, '--class', 'gateway']);
    stage.tibet(['vault', 'init', '--org', ORG], { quiet: true });
    agent(['id', 'create', BOT, '--class', 'mcp-server']);
    const botPub = join(out, 'release-bot.pub.json');
    agent(['id', 'export', BOT, '-o', r(botPub)]);
    stage.tibet(['id', 'import', r(botPub)]);
    stage.say("The agent trusts the gateway's and the keychain's public keys, and nothing more.");
    for (const who of [GW, KC]) {
      const pub = join(out, `${who.split(':')[2]!}.pub.json`);
      stage.tibet(['id', 'export', who, '-o', r(pub)], { quiet: true });
      agent(['id', 'import', r(pub)]);
    }

    stage.say('Three daemons start: the audit log, a stand-in package registry, the gateway.');
    const logd = await stage.daemon(
      'continuityd',
      [stage.bin, 'continuityd', 'serve', '--as', LOGID, '--checkpoint-every', '1', '--json'],
      /"socket"/,
    );
    stage.ok(
      `continuityd (pid ${logd.child.pid}) on ${join(relative(process.cwd(), home), 'continuityd.sock')}`,
    );
    const reg = await stage.daemon(
      'registry',
      [join(dirname(fileURLToPath(import.meta.url)), 'registry-main.js'), regDir],
      /"port":(\d+)/,
    );
    const regPort = Number(reg.match[1]);
    const regUrl = `http://127.0.0.1:${regPort}`;
    stage.ok(`stand-in registry (pid ${reg.child.pid}) on ${regUrl}`);
    const gwd = await stage.daemon(
      'gateway',
      [stage.bin, 'gateway', 'serve', '--as', GW, '--issuer', KC, '--json'],
      /"socket"/,
    );
    const gwSocket = join(home, 'gateway.sock');
    stage.ok(`gateway (pid ${gwd.child.pid}) on ${relative(process.cwd(), gwSocket)}`);

    if (args.serve !== null) {
      live = await startLiveView(await liveGraph(home), {
        port: args.serve,
        title: 'TIBET — live timeline',
      });
      process.stdout.write(`\n   ${c('1;35', `live view: ${live.url}`)}\n`);
      process.stdout.write(c('2', '   (the scenario starts when a page opens it, or in 60 s)\n'));
      await live.viewer(60_000);
    }

    // ------------------------------------------------------------------ act 1
    await stage.act(
      'Alice imports a registry publish token',
      'The registry issues Alice a token for acme-lib. She imports it into the keychain from\n' +
        'stdin (never an argument): sealed at once; the event is durable in the log first.',
    );
    writeFileSync(
      join(regDir, 'tokens.json'),
      JSON.stringify([{ sha256: sha256Hex(tokens.v1), packages: [PKG] }]),
    );
    stage.tibet(
      [
        'keychain',
        'add',
        NPM,
        '--type',
        'api_key',
        '--issuer',
        'registry (stand-in)',
        '--scope',
        `publish:${PKG}`,
        '--from-stdin',
        '--as',
        ALICE,
        '--why',
        'publish token for acme-lib',
      ],
      { input: tokens.v1 },
    );
    await refresh();

    // ------------------------------------------------------------------ act 2
    await stage.act(
      'Alice delegates use of it to the release agent, for one package only',
      'The agent becomes the active operator; the policy allows use only for the agent, only\n' +
        'to publish acme-lib, only in the publish lane, capsules living at most two minutes.',
    );
    stage.tibet([
      'keychain',
      'delegate',
      NPM,
      '--role',
      'active_operator',
      '--to',
      BOT,
      '--as',
      ALICE,
      '--why',
      'the release agent publishes acme-lib',
    ]);
    stage.tibet([
      'keychain',
      'policy',
      NPM,
      '--use',
      BOT,
      '--targets',
      `/upload/npm/${PKG}`,
      '--lanes',
      'publish',
      '--max-ttl',
      '120',
      '--as',
      ALICE,
      '--why',
      'one package, one lane, short capsules',
    ]);
    await refresh();

    // ------------------------------------------------------------------ act 3
    await stage.act(
      'The agent asks for a capsule to publish acme-lib 1.4.0',
      "The agent asks the gateway's issuer for a one-shot capsule. Alice's policy allows it: the\n" +
        'capsule is signed by the keychain (custodian), bound to the secret version, the agent,\n' +
        'the target, the registry and an expiry. A request for another package is refused.',
    );
    const cap1 = join(agentHome, 'capsule-1.4.0.tza');
    const reqArgs = (target: string, outFile: string, intent: string) => [
      'gateway',
      'request',
      NPM,
      '--as',
      BOT,
      '--socket',
      r(gwSocket),
      '--action',
      target,
      '--intent',
      intent,
      '--lane',
      'publish',
      '--constraint',
      `registry=${regUrl}`,
      '--constraint',
      `host=127.0.0.1:${regPort}`,
      '--constraint',
      'method=PUT',
      '--constraint',
      `path=${PKG_PATH}`,
      '--url',
      `${regUrl}${PKG_PATH}`,
      '--method',
      'PUT',
      '--ttl',
      '120',
      '-o',
      r(outFile),
    ];
    agent(reqArgs(`/upload/npm/${PKG}`, cap1, 'publish acme-lib 1.4.0'));
    agent(
      reqArgs('/upload/npm/acme-other', join(agentHome, 'capsule-other.tza'), 'publish acme-other'),
      { expect: 1 },
    );
    stage.tibet(['sam', 'inspect', r(cap1)]);
    await refresh();

    // ------------------------------------------------------------------ act 4
    await stage.act(
      'The gateway publishes; the agent never sees the token',
      'The agent presents the capsule. The gateway checks it, consumes its one-shot id, gets the\n' +
        'token from the keychain (secret-proxied, parent: the capsule), injects it, publishes,\n' +
        'wipes it, and seals a receipt. This is everything the agent sees:',
    );
    const publish = (version: string) => {
      const f = join(agentHome, `publish-${version}.json`);
      writeFileSync(
        f,
        JSON.stringify({
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ name: PKG, version }),
        }),
      );
      return f;
    };
    mkdirSync(join(out, 'receipts'), { recursive: true });
    /** The agent presents a capsule; the receipt it gets back is kept in receipts/. */
    const execAs = (cap: string, version: string, receipt: string, o: { expect?: number } = {}) =>
      agent(
        [
          'gateway',
          'exec',
          r(cap),
          '--as',
          BOT,
          '--socket',
          r(gwSocket),
          '--payload-file',
          r(publish(version)),
          '--receipt-out',
          `receipts/${receipt}`,
        ],
        o,
      );
    execAs(cap1, '1.4.0', 'publish-1.4.0.tza');
    const reqs = readFileSync(join(regDir, 'requests.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map(
        (l) => JSON.parse(l) as { status: number; version: string; token_sha256_prefix: string },
      );
    const last = reqs.at(-1)!;
    if (last.status !== 201) throw new DemoFailure(`the registry answered ${last.status}`);
    stage.ok(
      `the registry accepted ${PKG}@${last.version} with a token whose SHA-256 starts ${last.token_sha256_prefix} — the one Alice imported`,
    );
    await refresh();

    // ------------------------------------------------------------------ act 5
    await stage.act(
      'The agent replays the capsule',
      'The one-shot id was consumed durably before the act: the replay is denied, with a receipt.',
    );
    execAs(cap1, '1.4.0-replay', 'replay-denied.tza', { expect: 1 });
    await refresh();

    // ------------------------------------------------------------------ act 6
    await stage.act(
      'The token turns up in a CI log',
      'Before anyone notices, the agent already holds a capsule for 1.4.1. Bob reports the leak:\n' +
        'exposure recorded, rotation required. Every capsule is refused until Alice rotates.',
    );
    const cap2 = join(agentHome, 'capsule-1.4.1.tza');
    agent(reqArgs(`/upload/npm/${PKG}`, cap2, 'publish acme-lib 1.4.1'));
    stage.tibet([
      'keychain',
      'expose',
      NPM,
      '--state',
      'log-leaked',
      '--evidence',
      'ci run 4411, line 88',
      '--as',
      BOB,
      '--why',
      'the token is printed in a public CI log',
    ]);
    stage.say('While the token is exposed, no new capsule is issued:');
    agent(
      reqArgs(
        `/upload/npm/${PKG}`,
        join(agentHome, 'capsule-refused.tza'),
        'publish acme-lib 1.4.1 again',
      ),
      { expect: 1 },
    );
    stage.say(
      'Alice has the registry issue a new token and retire the old one, then rotates the keychain secret.',
    );
    writeFileSync(
      join(regDir, 'tokens.json'),
      JSON.stringify([{ sha256: sha256Hex(tokens.v2), packages: [PKG] }]),
    );
    stage.tibet(
      [
        'keychain',
        'rotate',
        NPM,
        '--from-stdin',
        '--as',
        ALICE,
        '--why',
        'rotate after the CI leak',
      ],
      { input: tokens.v2 },
    );
    stage.say('The capsule the agent got before the leak was for version 1 of the secret: denied.');
    execAs(cap2, '1.4.1', 'old-version-denied.tza', { expect: 1 });
    stage.say('A fresh capsule binds version 2, and the publish goes through with the new token.');
    const cap4 = join(agentHome, 'capsule-1.4.1-v2.tza');
    agent(reqArgs(`/upload/npm/${PKG}`, cap4, 'publish acme-lib 1.4.1 (after rotation)'));
    execAs(cap4, '1.4.1', 'publish-1.4.1.tza');
    stage.tibet(['keychain', 'show', NPM]);
    await refresh();

    // ------------------------------------------------------------------ act 7
    await stage.act(
      'A root password under a dead-man switch',
      'Alice generates a root password and puts it under a dead-man switch for Bob: if she sends\n' +
        'no heartbeat for 30 days, it is released to him. Nobody — Bob included — can read it before.',
    );
    stage.tibet([
      'keychain',
      'generate',
      ROOT,
      '--type',
      'root_password',
      '--issuer',
      'db-prod-1',
      '--scope',
      'root',
      '--as',
      ALICE,
      '--why',
      'root password of db-prod-1',
    ]);
    stage.tibet([
      'vault',
      'create',
      '--secret',
      ROOT,
      '--as',
      ALICE,
      '--beneficiary',
      BOB,
      '--dead-man',
      'P30D',
      '--note',
      'db-prod-1 root, for Bob if I am gone',
      '--id',
      'vlt_dbroot',
      '--why',
      'succession for db-prod-1',
    ]);
    stage.tibet(['vault', 'heartbeat', 'vlt_dbroot', '--as', ALICE, '--why', 'still here']);
    stage.tibet(['vault', 'open', 'vlt_dbroot', '--as', BOB, '--stdout', '--why', 'curious'], {
      expect: 1,
      quiet: false,
    });
    const later = new Date(Date.now() + 31 * 86_400_000).toISOString().replace(/\.\d+Z$/, 'Z');
    stage.say(`The demo clock jumps 31 days ahead (${later}): no heartbeat came.`);
    stage.tibet(['vault', 'check', '--at', later]);
    const opened = stage.tibet(
      ['vault', 'open', 'vlt_dbroot', '--as', BOB, '--stdout', '--why', 'taking over db-prod-1'],
      { quiet: true },
    );
    stage.ok(`Bob opened the vault: ${opened.stdout.length} characters (not shown)`);
    stage.say("The root password's whole story, as the timeline shows it:");
    stage.tibet(['cbom', 'timeline', ROOT]);
    await refresh();

    // ------------------------------------------------------------------ act 8
    await stage.act(
      'A regulator asks: who could have published, who did?',
      'Alice exports a report with tlog-proofs. The regulator checks it offline, in a home that\n' +
        'holds nothing but public keys.',
    );
    const report = join(out, 'report');
    const to = new Date(Date.now() + 1000).toISOString();
    stage.tibet(['cbom', 'report', NPM, '--from', startedAt, '--to', to, '--out', r(report)]);
    const vkey = (
      JSON.parse(readFileSync(join(home, 'log', 'log.json'), 'utf8')) as { verifier_key: string }
    ).verifier_key;
    stage.say("The regulator pins the log's public key (Acme publishes it) and checks the folder:");
    stage.tibet(['cbom', 'report', '--verify', r(report), '--log-key', vkey], {
      env: regulatorEnv,
      who: 'regulator',
    });

    stage.say('For the record: the timeline page, the Continuity BOM, CycloneDX CBOMs.');
    stage.tibet(['cbom', 'timeline', NPM]);
    stage.tibet(['cbom', 'verify', NPM]);
    stage.tibet(['cbom', 'timeline', 'home', '--format', 'html', '--out', 'timeline.html'], {
      quiet: true,
    });
    stage.tibet(['cbom', 'export', 'home', '--json', '--out', 'continuity-bom.json'], {
      quiet: true,
    });
    stage.tibet(['cbom', 'export', 'home', '--spec', '1.6', '--out', 'cbom-1.6.cdx.json'], {
      quiet: true,
    });
    stage.tibet(['cbom', 'export', 'home', '--spec', '1.7', '--out', 'cbom-1.7.cdx.json'], {
      quiet: true,
    });
    stage.ok(
      'timeline.html · continuity-bom.json · cbom-1.6.cdx.json · cbom-1.7.cdx.json · report/ · receipts/',
    );
    stage.tibet(['continuityd', 'verify']);
    await refresh();

    // ------------------------------------------------------------------ leaks
    const agentFiles = filesUnder(agentHome);
    const agentLeaks = leaksIn(agentFiles, agentView, [tokens.v1, tokens.v2]);
    const allLeaks = leaksIn(filesUnder(out), [], [tokens.v1, tokens.v2]);
    await stage.scene(
      'No leaks',
      "Every file and every output on the agent's side, and every file in the outputs, searched\n" +
        'for both tokens (raw, hex, base64, base64url).',
    );
    if (agentLeaks.length || allLeaks.length) {
      for (const l of [...agentLeaks, ...allLeaks]) stage.denied(`LEAK: ${l}`);
      return 1;
    }
    stage.ok(
      `agent side: ${agentFiles.length} files and ${agentView.length} outputs — neither token`,
    );
    stage.ok(`all outputs: ${filesUnder(out).length} files — neither token in the clear`);
    process.stdout.write(
      `\nDone in ${((Date.now() - t0) / 1000).toFixed(1)} s. Outputs in ${relative(process.cwd(), out) || '.'}/\n`,
    );
    if (live) {
      process.stdout.write(c('1;35', `live view still at ${live.url} — Ctrl-C to stop\n`));
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
      });
    }
    return 0;
  } catch (e) {
    if (e instanceof DemoFailure) {
      process.stderr.write(`\ndemo: ${e.message}\n`);
      return 1;
    }
    throw e;
  } finally {
    await live?.close();
    await stage.stopAll();
  }
}

process.exitCode = await main();
