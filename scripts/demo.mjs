#!/usr/bin/env node
// The main job until apps/demo lands: a short narrated end-to-end run of the `tibet` CLI.
// Identities; a registry token sealed to two recipients (inspect, verify, a tampered copy
// failing, open, a non-recipient refused, rewrap); then the keychain takes custody of it
// (delegate to a bot, a refused reveal on the record, exposure, rotation, history,
// who-could, verify) and a tlog-proof of the exposure is checked offline. Everything it
// writes goes to ./demo-out/.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const root = join(import.meta.dirname, '..');
const outDir = join(root, 'demo-out');
rmSync(outDir, { recursive: true, force: true });
mkdirSync(outDir, { recursive: true });
const home = join(outDir, 'home');
const tty = process.stdout.isTTY && !('NO_COLOR' in process.env);
const c = (code, s) => (tty ? `\u001b[${code}m${s}\u001b[0m` : s);
// Demo only: a fixed passphrase in the environment so that nothing prompts on stage.
const env = {
  ...process.env,
  TIBET_HOME: home,
  TIBET_PASSPHRASE: 'demo only: never use a passphrase from a script',
};
const token = `pypi-${randomBytes(24).toString('base64url')}`;

let stepNo = 0;
function say(text) {
  process.stdout.write(`\n${c('1;36', `${++stepNo}. ${text}`)}\n`);
}
function tibet(args, { input, expect = 0, quiet = false } = {}) {
  process.stdout.write(c('2', `   $ tibet ${args.join(' ')}\n`));
  const r = spawnSync(process.execPath, [join(root, 'packages/cli/bin/tibet.js'), ...args], {
    env,
    input,
    encoding: 'utf8',
  });
  const shown = (r.stdout + r.stderr).trimEnd();
  if (!quiet && shown) process.stdout.write(shown.replace(/^/gm, '   ') + '\n');
  if (r.status !== expect) {
    process.stderr.write(
      `demo: "tibet ${args.join(' ')}" exited ${r.status}, expected ${expect}\n${r.stderr}`,
    );
    process.exit(1);
  }
  return r;
}

const t0 = Date.now();
process.stdout.write(c('1', 'TIBET vault family: a sealed secret, end to end\n'));
process.stdout.write(`home: ${home}\n`);

say(
  'Three actors get identities (Ed25519 to sign, X25519 to receive); private keys are stored encrypted.',
);
tibet(['id', 'create', 'jis:acme:alice', '--class', 'human']);
tibet(['id', 'create', 'jis:acme:bob', '--class', 'human']);
tibet(['id', 'create', 'jis:acme:release-bot', '--class', 'mcp-server']);

say(
  'Alice seals a registry token for herself and Bob. The token comes in on stdin, never as an argument.',
);
const bundle = join(outDir, 'pypi-token.tza');
tibet(
  [
    'tza',
    'pack',
    '--kind',
    'secret',
    '--sealed',
    'token=-',
    '--meta',
    'secret_id=sec_pypi_001',
    '--meta',
    'secret_type=pypi_token',
    '--meta',
    'scope=pypi:upload:acme-lib',
    '--recipient',
    'jis:acme:alice',
    '--recipient',
    'jis:acme:bob',
    '--signer',
    'jis:acme:alice',
    '-o',
    bundle,
  ],
  { input: token },
);

say('Anyone can read the metadata and check the signatures; nobody sees the token.');
tibet(['tza', 'inspect', bundle]);
tibet(['tza', 'verify', bundle, '--trust', 'jis:acme:alice', '--require-signer', 'jis:acme:alice']);

say('One flipped byte in a copy: verification fails with a stable code (exit 1).');
const tampered = join(outDir, 'pypi-token.tampered.tza');
const bytes = readFileSync(bundle);
bytes[600] ^= 0x01;
writeFileSync(tampered, bytes);
tibet(['tza', 'verify', tampered, '--trust', 'jis:acme:alice'], { expect: 1 });

say('Bob opens it (verify first, then HPKE unwrap, then decrypt).');
const opened = tibet(
  ['tza', 'open', bundle, '--as', 'jis:acme:bob', '--entry', 'token', '--stdout'],
  { quiet: true },
);
process.stdout.write(
  `   opened ${opened.stdout.length} bytes; equal to what Alice sealed: ${opened.stdout === token ? c('32', 'yes') : c('31', 'NO')}\n`,
);
if (opened.stdout !== token) process.exit(1);

say('The release bot is not a recipient: refused.');
tibet(['tza', 'open', bundle, '--as', 'jis:acme:release-bot', '--entry', 'token', '--stdout'], {
  expect: 1,
});

say('Alice adds the bot by rewrapping the data key; the encrypted payload is not touched.');
const rewrapped = join(outDir, 'pypi-token.rewrapped.tza');
tibet([
  'tza',
  'rewrap',
  bundle,
  '--as',
  'jis:acme:alice',
  '--add',
  'jis:acme:release-bot',
  '--signer',
  'jis:acme:alice',
  '-o',
  rewrapped,
]);
const bot = tibet(
  ['tza', 'open', rewrapped, '--as', 'jis:acme:release-bot', '--entry', 'token', '--stdout'],
  { quiet: true },
);
process.stdout.write(
  `   the bot can open the new bundle: ${bot.stdout === token ? c('32', 'yes') : c('31', 'NO')}\n`,
);

say('The keychain takes custody (init makes the keychain and audit-log identities).');
tibet(['keychain', 'init', '--org', 'acme']);
const LOG = ['--log-as', 'jis:acme:auditlog'];
tibet(
  [
    'keychain',
    'add',
    'sec_pypi_001',
    '--type',
    'pypi_token',
    '--issuer',
    'pypi.org',
    '--scope',
    'upload:acme-lib',
    '--from-stdin',
    '--as',
    'jis:acme:alice',
    '--why',
    'publish token for acme-lib',
    ...LOG,
  ],
  { input: token },
);
tibet([
  'keychain',
  'delegate',
  'sec_pypi_001',
  '--role',
  'active_operator',
  '--to',
  'jis:acme:release-bot',
  '--as',
  'jis:acme:alice',
  '--why',
  'the release bot publishes acme-lib',
  ...LOG,
]);

say('The bot asks to see the token: refused, and the refusal itself is on the record.');
tibet(
  [
    'keychain',
    'reveal',
    'sec_pypi_001',
    '--stdout',
    '--as',
    'jis:acme:release-bot',
    '--why',
    'curious',
    ...LOG,
  ],
  { expect: 1 },
);

say('The token turns up in a CI log: exposure recorded, rotation required; then rotated.');
tibet([
  'keychain',
  'expose',
  'sec_pypi_001',
  '--state',
  'log-leaked',
  '--evidence',
  'ci run 4411, line 88',
  '--as',
  'jis:acme:bob',
  '--why',
  'token printed in a CI log',
  ...LOG,
]);
const token2 = `pypi-${randomBytes(24).toString('base64url')}`;
tibet(
  [
    'keychain',
    'rotate',
    'sec_pypi_001',
    '--from-stdin',
    '--as',
    'jis:acme:alice',
    '--why',
    'rotate after the CI leak',
    ...LOG,
  ],
  { input: token2 },
);
tibet(['keychain', 'show', 'sec_pypi_001', ...LOG]);

say('The timeline, and who could use the token now; the keychain verifies against the log.');
tibet(['keychain', 'history', 'sec_pypi_001', ...LOG]);
tibet(['keychain', 'who-could', 'sec_pypi_001', '--action', 'use', ...LOG]);
tibet(['keychain', 'verify', ...LOG]);

say(
  'A regulator gets a proof for the exposure event and checks it offline, with the log key only.',
);
tibet(['continuityd', 'checkpoint', ...LOG]);
const hits = tibet(['continuityd', 'query', '--object', 'sec_pypi_001', '--json'], { quiet: true });
const exposed = hits.stdout
  .trim()
  .split('\n')
  .map((l) => JSON.parse(l))
  .find((r) => r.token.event === 'secret-exposed');
const proofFile = join(outDir, 'exposure.tlog-proof');
tibet(['continuityd', 'prove', String(exposed.index), '-o', proofFile]);
tibet([
  'continuityd',
  'prove',
  '--check',
  proofFile,
  '--log-key',
  join(home, 'log', 'log.json'),
  '--entry',
  `${proofFile}.entry`,
]);
tibet(['continuityd', 'verify']);

say('No file in demo-out/ holds either token in the clear.');
const leaks = [];
const walk = (d) => {
  for (const f of readdirSync(d)) {
    const p = join(d, f);
    if (statSync(p).isDirectory()) walk(p);
    else if (
      readFileSync(p).includes(Buffer.from(token)) ||
      readFileSync(p).includes(Buffer.from(token2))
    )
      leaks.push(p);
  }
};
walk(outDir);
process.stdout.write(
  leaks.length
    ? c('31', `   LEAK in ${leaks.join(', ')}\n`)
    : `   ${c('32', 'none')} (${bundle})\n`,
);
process.stdout.write(
  `\nDone in ${((Date.now() - t0) / 1000).toFixed(1)} s. Outputs in ${outDir}\n`,
);
process.exit(leaks.length ? 1 : 0);
