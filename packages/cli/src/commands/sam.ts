import type { Command } from 'commander';
import type { Target } from './continuityd.js';
import { requestCommand, type GwRequestOpts } from './gateway.js';

const collect = (v: string, prev: string[] = []): string[] => [...prev, v];

export interface SamIssueOpts extends Target {
  for: string;
  action: string;
  intent: string;
  constraint?: string[];
  lane?: string;
  ttl?: string;
  toGateway?: string;
  upstreamUrl?: string;
  upstreamMethod?: string;
  supersedes?: string;
  note?: string[];
  receipt: boolean;
  out: string;
  as: string;
  service?: string;
  json?: boolean;
}

export interface SamReadOpts {
  asGateway?: string;
  json?: boolean;
}

export interface SamVerifyOpts extends SamReadOpts {
  actor?: string;
  action?: string;
  constraint?: string[];
  upstreamUrl?: string;
  upstreamMethod?: string;
  at?: string;
}

export interface SamConvertOpts extends SamReadOpts {
  out: string;
  as: string;
  receiver?: string;
  allowPlaintext?: boolean;
}

const EXIT_ISSUE = `
Exit codes:
  0  issued: the sam-issued event is durable in the audit log and the bundle is written
  1  refused: NOT_AUTHORIZED (not owner or custodian), POLICY_DENIED (the keychain's reason
     is printed), SECRET_UNAVAILABLE (exposed or rotation required), SECRET_NOT_FOUND,
     TTL_TOO_LONG, AUDIT_FAILED (nothing was issued), PASSPHRASE_WRONG
  2  usage error: INVALID_REQUEST, bad arguments, the output file exists, no log`;

/** `tibet sam …`: registration only; the work is loaded when a command runs. */
export function registerSam(program: Command): void {
  const sam = program
    .command('sam')
    .description(
      'one-shot capsules: authorise one act on a secret (issue, request), inspect, verify, convert to TBZ',
    )
    .addHelpText(
      'after',
      `
A capsule authorises one actor to have one act done with one secret, within minutes, under
constraints: intent, target action, constraints, expiry and a one-shot ephemeral id, signed
by the secret's owner or custodian and logged (sam-issued) before it exists. The agent
never sees the secret: a gateway checks the capsule and performs the act. See docs/sam.md.

Examples:
  $ tibet sam issue sec_npm_001 --for jis:acme:release-bot --action /upload/npm \\
      --intent "publish acme-lib 1.2.0" --lane publish --constraint registry=registry.npmjs.org \\
      --as jis:acme:alice -o publish.tza
  $ tibet sam request sec_npm_001 --as jis:acme:release-bot --action /upload/npm \\
      --intent "publish acme-lib 1.2.0" --lane publish --constraint registry=registry.npmjs.org \\
      -o publish.tza          # the agent asks a gateway daemon's issuer, signing with its key
  $ tibet sam inspect publish.tza
  $ tibet sam verify publish.tza --actor jis:acme:release-bot --action /upload/npm \\
      --constraint registry=registry.npmjs.org
  $ tibet sam to-tbz publish.tza --as jis:acme:alice -o publish.tbz

Exit codes: 0 ok · 1 refused or does not verify · 2 usage error · 70 internal error.`,
    );

  sam
    .command('issue')
    .description('authorise one act: check the keychain policy, log sam-issued, write the capsule')
    .argument('<secret-id>', 'the secret the act needs, e.g. sec_npm_001')
    .requiredOption('--for <actor>', 'the actor (agent) the capsule is for')
    .requiredOption('--action <target>', 'the target action, e.g. /upload/npm, /proxy/http')
    .requiredOption('--intent <text>', 'why: human-readable, recorded in the log')
    .option('--constraint <key=value>', 'a constraint the request must carry; repeatable', collect)
    .option('--lane <lane>', 'policy lane: publish, proxy-egress, …')
    .option('--ttl <seconds>', "lifetime (default min(300, the secret's max_capsule_ttl_s))")
    .option('--to-gateway <id>', 'encrypt the capsule to this gateway (its public identity)')
    .option('--upstream-url <url>', 'the upstream the act goes to (proxy-egress)')
    .option('--upstream-method <method>', 'the upstream HTTP method, e.g. POST')
    .option('--supersedes <sam-id>', 'the capsule this one replaces')
    .option('--note <text>', 'a note; repeatable', collect)
    .option('--no-receipt', 'the gateway need not seal a receipt (default: required)')
    .requiredOption('-o, --out <file>', 'where to write the capsule bundle (must not exist)')
    .requiredOption('--as <id>', "the issuer: the secret's owner or custodian (needs a passphrase)")
    .option('--service <id>', "the keychain's identity (default: from `tkc init`)")
    .option('--socket <path>', 'audit daemon Unix socket (default $TIBET_HOME/continuityd.sock)')
    .option('--url <url>', 'audit daemon loopback URL')
    .option('--dir <dir>', 'log folder for embedded mode (default $TIBET_HOME/log)')
    .option('--log-as <id>', "embedded mode: the log's identity")
    .option('--json', 'print the result as JSON on stdout')
    .addHelpText(
      'after',
      `
Examples:
  $ tibet sam issue sec_npm_001 --for jis:acme:release-bot --action /upload/npm \\
      --intent "publish acme-lib 1.2.0" --lane publish --as jis:acme:alice -o publish.tza
  $ tibet sam issue sec_api_7 --for jis:acme:agent --action /proxy/http --lane proxy-egress \\
      --upstream-url https://api.example.com/v1/charge --upstream-method POST \\
      --constraint host=api.example.com --intent "charge order 1234" --ttl 60 \\
      --to-gateway jis:acme:gateway --as jis:acme:keychain -o charge.tza
${EXIT_ISSUE}`,
    )
    .action(async (id: string, o: SamIssueOpts) => (await import('./sam-actions.js')).issue(id, o));

  // the agent's side: the same command as `tibet gateway request`
  requestCommand(sam.command('request')).action(async (id: string, o: GwRequestOpts) =>
    (await import('./gateway-actions.js')).requestCapsule(id, o),
  );

  sam
    .command('inspect')
    .description('show a capsule and whether it verifies (issuer pinned from $TIBET_HOME)')
    .argument('<file>', 'a capsule bundle: tza/1 or TBZ (- for stdin)')
    .option('--as-gateway <id>', 'decrypt an encrypted capsule as this gateway (passphrase)')
    .option('--json', 'print JSON on stdout')
    .addHelpText(
      'after',
      `
Without --as-gateway an encrypted capsule shows only its readable fields.

Examples:
  $ tibet sam inspect publish.tza
  $ tibet sam inspect charge.tza --as-gateway jis:acme:gateway --json

Exit codes: 0 verifies · 1 does not verify (BUNDLE_INVALID …) · 2 usage error.`,
    )
    .action(async (file: string, o: SamReadOpts) =>
      (await import('./sam-actions.js')).inspect(file, o),
    );

  sam
    .command('verify')
    .description("open a capsule and run the gateway's checks against a request")
    .argument('<file>', 'a capsule bundle: tza/1 or TBZ (- for stdin)')
    .option('--actor <id>', "the requesting actor (default: the capsule's)")
    .option('--action <target>', "the requested action (default: the capsule's)")
    .option(
      '--constraint <key=value>',
      "the request's constraints; repeatable (default: the capsule's own when no --actor/--action/--constraint is given)",
      collect,
    )
    .option('--upstream-url <url>', 'the upstream URL the request names')
    .option('--upstream-method <method>', 'the upstream method the request names')
    .option('--at <rfc3339>', 'check at this time (default now)')
    .option('--as-gateway <id>', 'decrypt an encrypted capsule as this gateway (passphrase)')
    .option('--json', 'print JSON on stdout')
    .addHelpText(
      'after',
      `
Prints each check (sam-received, sam-validated, sam-actor-match, sam-constraint-match,
sam-policy-lane) as pass or fail; the first failure gives the verdict (sam-expired,
sam-actor-mismatch, sam-target-mismatch, sam-constraint-mismatch, sam-policy-lane-invalid,
sam-upstream-missing, sam-upstream-invalid, sam-not-yet-valid, sam-bundle-invalid,
sam-signature-invalid). The keychain binding and the one-shot id are the gateway's checks.

Examples:
  $ tibet sam verify publish.tza --actor jis:acme:release-bot --action /upload/npm \\
      --constraint registry=registry.npmjs.org
  $ tibet sam verify charge.tza --as-gateway jis:acme:gateway --at 2026-11-28T12:01:00Z \\
      --upstream-url https://api.example.com/v1/charge --upstream-method POST --json

Exit codes: 0 every check passes · 1 denied (the verdict is printed) · 2 usage error.`,
    )
    .action(async (file: string, o: SamVerifyOpts) =>
      (await import('./sam-actions.js')).verify(file, o),
    );

  sam
    .command('to-tbz')
    .description("re-sign a verified capsule in the family's TBZ form (plaintext)")
    .argument('<file>', 'a capsule bundle (- for stdin)')
    .requiredOption('-o, --out <file>', 'the TBZ file to write (must not exist)')
    .requiredOption('--as <id>', "the capsule's issuer, who signs the TBZ (passphrase)")
    .option('--receiver <id>', 'name a receiver in the TBZ manifest (a label, not encryption)')
    .option('--as-gateway <id>', 'decrypt an encrypted capsule as this gateway')
    .option('--allow-plaintext', 'convert a capsule meant for one gateway anyway')
    .option('--json', 'print JSON on stdout')
    .addHelpText(
      'after',
      `
Nothing in a TBZ is encrypted.

Examples:
  $ tibet sam to-tbz publish.tza --as jis:acme:alice -o publish.tbz
  $ tibet sam to-tbz charge.tza --as jis:acme:keychain --as-gateway jis:acme:gateway \\
      --allow-plaintext --receiver jis:partner:gateway -o charge.tbz

Exit codes: 0 written · 1 the input does not verify, or --as is not the issuer · 2 usage.`,
    )
    .action(async (file: string, o: SamConvertOpts) =>
      (await import('./sam-actions.js')).toTbz(file, o),
    );

  sam
    .command('from-tbz')
    .description('verify a TBZ capsule (sender pinned) and re-seal it as tza/1')
    .argument('<file>', 'a TBZ capsule (- for stdin)')
    .requiredOption('-o, --out <file>', 'the .tza file to write (must not exist)')
    .requiredOption('--as <id>', "the capsule's issuer, who signs the bundle (passphrase)")
    .option('--json', 'print JSON on stdout')
    .addHelpText(
      'after',
      `
A capsule naming a gateway_id is encrypted to that gateway (its public identity from
$TIBET_HOME).

Examples:
  $ tibet sam from-tbz publish.tbz --as jis:acme:alice -o publish.tza
  $ tibet sam from-tbz - --as jis:acme:alice -o publish.tza --json < publish.tbz

Exit codes: 0 written · 1 the TBZ does not verify, or --as is not the issuer · 2 usage.`,
    )
    .action(async (file: string, o: SamConvertOpts) =>
      (await import('./sam-actions.js')).fromTbz(file, o),
    );
}
