import type { Command } from 'commander';

const collect = (v: string, prev: string[] = []): string[] => [...prev, v];

/** Where an agent reaches the gateway daemon. */
export interface GwTarget {
  gateway?: string;
  socket?: string;
  json?: boolean;
}

export interface GwServeOpts {
  as: string;
  allowUnsignedAgents?: boolean;
  socket?: string | boolean;
  port?: string;
  issuer?: string;
  issueOverHttp?: boolean;
  encryptCapsules?: boolean;
  sessionTimeout?: string;
  execUid?: string;
  execGid?: string;
  allowExecSameUser?: boolean;
  service?: string;
  logSocket?: string;
  logUrl?: string;
  logDir?: string;
  logAs?: string;
  json?: boolean;
}

/** How the agent signs (proof of possession of its own identity key). */
export interface GwAgentOpts {
  /** The agent's identity (its key in this TIBET_HOME); default the requesting actor. */
  as?: string;
  /** Send no proof (only for a daemon run with --allow-unsigned-agents). */
  unsigned?: boolean;
}

export interface GwExecOpts extends GwTarget, GwAgentOpts {
  actor?: string;
  action?: string;
  constraint?: string[];
  url?: string;
  method?: string;
  payload?: string;
  payloadFile?: string;
  receiptOut?: string;
}

export interface GwRequestOpts extends GwTarget, GwAgentOpts {
  actor?: string;
  action: string;
  intent: string;
  constraint?: string[];
  lane?: string;
  ttl?: string;
  url?: string;
  method?: string;
  payloadFile?: string;
  out: string;
}

function target(c: Command): Command {
  return c
    .option('--gateway <url>', 'the gateway daemon on loopback HTTP, e.g. http://127.0.0.1:7469')
    .option('--socket <path>', 'the gateway daemon Unix socket (default $TIBET_HOME/gateway.sock)')
    .option('--json', 'print JSON on stdout');
}

const AGENT_HELP = `
Authentication: the agent signs with its OWN identity key (never a secret, never a custodian
key): --as <id> loads that identity from $TIBET_HOME (its passphrase from TIBET_PASSPHRASE,
TIBET_PASSPHRASE_FILE or a prompt); without --as the requesting actor's own key is used when
this home holds it. The gateway's home must know the agent's public identity
(\`tibet id export\` here, \`tibet id import\` there). --unsigned sends no proof: only a
daemon started with --allow-unsigned-agents accepts that.`;

/** The help of `request` under `group` (gateway or sam): its examples name that command. */
const requestHelp = (group: string): string => `
The agent asks the gateway daemon's issuer (the keychain's custodian) for a capsule, signing
the request (a sam-requested token) with its own key: the issuer verifies it, checks the
secret's policy for this actor, target and lane, logs the request and \`sam-issued\` (its
child) and seals the capsule. The agent never sees the secret. Also \`tibet ${
  group === 'sam' ? 'gateway' : 'sam'
} request\`.
${AGENT_HELP}

Examples:
  $ tibet ${group} request sec_npm_001 --as jis:acme:release-bot --action /upload/npm \\
      --intent "publish acme-widget 1.2.3" --constraint registry=https://registry.npmjs.org \\
      --lane publish --url https://registry.npmjs.org/acme-widget --method PUT -o cap.tza
  $ tibet ${group} request sec_sign_001 --as jis:acme:release-bot --action /sign \\
      --intent "sign the release manifest" --ttl 60 --gateway http://127.0.0.1:7469 -o cap.tza

Exit codes: 0 issued (file written), 1 refused (ISSUE_REFUSED with the sam code, e.g.
AGENT_UNAUTHENTICATED, PROOF_REPLAYED, POLICY_DENIED, NOT_AUTHORIZED, TTL_TOO_LONG;
NOT_CONFIGURED when the daemon has no issuer), 2 usage error (bad arguments, the file
exists, no key to sign with, no daemon to reach).`;

/**
 * The options of \`tibet gateway request\` and \`tibet sam request\` (one command, two
 * places): the caller adds the action.
 */
export function requestCommand(c: Command): Command {
  return target(
    c
      .description('ask the gateway daemon for a capsule, signed with the agent’s own key')
      .argument('<secret-id>', 'the secret to have used, e.g. sec_npm_001')
      .option('--as <id>', "the agent: sign with this identity's key (default: --actor's)")
      .option('--actor <id>', 'the requesting actor (default: --as)')
      .requiredOption('--action <action>', 'the target action, e.g. /upload/npm, /sign, /exec')
      .requiredOption('--intent <text>', 'why, in words (recorded)')
      .option('--constraint <key=value>', 'a constraint (repeatable)', collect)
      .option('--lane <lane>', 'the policy lane, e.g. publish, proxy-egress')
      .option('--ttl <seconds>', "the capsule's lifetime (capped by the secret's policy)")
      .option('--url <url>', 'fix the upstream URL')
      .option('--method <method>', 'fix the upstream method')
      .option('--payload-file <file>', 'fix the upstream payload (JSON)')
      .option('--unsigned', 'send no proof (only for a daemon with --allow-unsigned-agents)')
      .requiredOption('-o, --out <file>', 'where to write the capsule (never overwritten)'),
  ).addHelpText('after', requestHelp(c.parent?.name() ?? 'gateway'));
}

export function registerGateway(program: Command): void {
  const g = program
    .command('gateway')
    .description(
      'the execution boundary: verify a capsule, consume it once, act with the secret, seal a receipt',
    )
    .addHelpText(
      'after',
      `
The gateway daemon holds the keychain's identity and its own (class gateway); agents talk
to it over its Unix socket (0600) or loopback HTTP with a capsule and never see a secret.
See docs/gateway.md.

Examples:
  $ tibet id create jis:acme:gateway --class gateway
  $ tibet gateway serve --as jis:acme:gateway --issuer jis:acme:keychain &
  $ tibet gateway request sec_sign_001 --as jis:acme:release-bot --action /sign \\
      --intent "sign the release manifest" -o cap.tza
  $ tibet gateway exec cap.tza --as jis:acme:release-bot --payload "manifest sha256:…"

Exit codes: 0 ok · 1 refused/denied (the verdict is printed) · 2 usage error ·
70 internal error (please report).`,
    );

  g.command('serve')
    .description('run the gateway daemon (Unix socket and/or loopback HTTP)')
    .requiredOption('--as <id>', "the gateway's identity (class gateway; needs its passphrase)")
    .option('--socket <path>', 'Unix socket to listen on (default $TIBET_HOME/gateway.sock)')
    .option('--no-socket', 'no Unix socket (then --port is required)')
    .option('--port <n>', 'also listen on loopback HTTP (0 = any free port)')
    .option(
      '--issuer <id>',
      'issue capsules on POST /v1/capsules as this identity (the custodian, e.g. the keychain)',
    )
    .option('--issue-over-http', 'also issue on loopback HTTP (default: socket only)')
    .option('--encrypt-capsules', 'encrypt issued capsules to this gateway')
    .option(
      '--allow-unsigned-agents',
      'WEAKER: accept requests and execs without the agent’s signed proof (capsules become bearer tokens)',
    )
    .option('--session-timeout <ms>', 'abort an act and wipe its secret after this long', '30000')
    .option(
      '--exec-uid <n>',
      'enable /exec: run its commands as this OS user id (with --exec-gid; the daemon must run as root)',
    )
    .option('--exec-gid <n>', 'the group id of /exec commands (with --exec-uid)')
    .option(
      '--allow-exec-same-user',
      "DEVELOPMENT ONLY: enable /exec as the daemon's own OS user (the command can read its keys)",
    )
    .option('--service <id>', "the keychain's identity (default: the one `tkc init` recorded)")
    .option('--log-socket <path>', 'audit daemon socket (default $TIBET_HOME/continuityd.sock)')
    .option('--log-url <url>', 'audit daemon loopback URL')
    .option('--log-dir <dir>', 'log folder for embedded mode (default $TIBET_HOME/log)')
    .option('--log-as <id>', "embedded mode: the log's identity")
    .option('--json', 'print where it listens as JSON')
    .addHelpText(
      'after',
      `
Needs the passphrases of the gateway, the keychain and (with --issuer) the issuer
(TIBET_PASSPHRASE, TIBET_PASSPHRASE_FILE or prompts). Agents must sign every capsule request
and exec with their own identity key, registered in this home (\`tibet id import\`); an
agent imported while the daemon runs is picked up (the identities are read again, at most
every 2 s, when a key is not found). Stops on SIGINT/SIGTERM after the execs in flight
finish. Adapters: http-egress (/proxy/http, /upload/*), signer (/sign) and, only when
enabled, process (/exec).

/exec is OFF by default. A command run as the daemon's own OS user can read everything that
user can: the encrypted key files in $TIBET_HOME, TIBET_PASSPHRASE_FILE and
/proc/<daemon pid>/environ (which keeps TIBET_PASSPHRASE) — and with those decrypt every
secret. \`npm publish\` runs the package's own scripts, so this is not theoretical.
  --exec-uid <n> --exec-gid <n>   run /exec commands as that user (a dedicated one that owns
                                  nothing of the gateway's); the daemon must run as root to
                                  switch users. The command gets no supplementary groups and a
                                  fresh private working directory (also its HOME), removed
                                  afterwards. It still shares the machine and the network.
  --allow-exec-same-user          development only: run them as the daemon's own user; warned
                                  about on stderr and reported by /v1/health
                                  (exec_isolation: "same-user").
See docs/gateway-adapters.md §3 and docs/threat-model.md.

Examples:
  $ tibet gateway serve --as jis:acme:gateway --issuer jis:acme:keychain
  $ tibet gateway serve --as jis:acme:gateway --no-socket --port 7469 --json
  # as root (e.g. a systemd unit), /exec commands as the dedicated user tibet-exec:
  $ tibet gateway serve --as jis:acme:gateway --exec-uid "$(id -u tibet-exec)" \\
      --exec-gid "$(id -g tibet-exec)"

Exit codes: 0 stopped cleanly, 1 refused (wrong passphrase, not a gateway identity),
2 usage error (bad options, no keychain, no audit log to reach, an /exec user that would not
isolate: the daemon's own uid or gid, or a daemon not running as root).`,
    )
    .action(async (o: GwServeOpts) => (await import('./gateway-actions.js')).serve(o));

  target(
    g
      .command('exec')
      .description('present a capsule to the gateway: it acts, the agent gets a receipt')
      .argument('<capsule>', 'the capsule file (.tza or TBZ)')
      .option('--actor <id>', "the requesting actor (default: the capsule's actor_id)")
      .option('--action <action>', "the requested action (default: the capsule's target_action)")
      .option(
        '--constraint <key=value>',
        "a constraint of the request (repeatable; default: the capsule's own, when readable)",
        collect,
      )
      .option('--url <url>', 'the upstream URL (when the capsule does not fix one)')
      .option('--method <method>', 'the upstream method')
      .option('--payload <text>', 'the payload as a string (e.g. what to sign)')
      .option('--payload-file <file>', 'the payload as JSON from a file')
      .option('--receipt-out <file>', 'also write the sealed receipt (.tza) here')
      .option('--as <id>', "the agent: sign with this identity's key (default: the actor's)")
      .option('--unsigned', 'send no proof (only for a daemon with --allow-unsigned-agents)'),
  )
    .addHelpText(
      'after',
      `
The agent's side: holds no secret and no custodian key, only its own identity key, with
which it signs the exec request (a sam-exec-requested token over the capsule and the exact
request). Prints the receipt's summary (status, verdict, executed action, log index) and the
masked response; every receipt is checked against the gateway's public identity in
$TIBET_HOME when it is there.
${AGENT_HELP}

Examples:
  $ tibet gateway exec cap.tza --as jis:acme:release-bot --payload "release v1.2.3"
  $ tibet gateway exec cap.tza --as jis:acme:release-bot --payload-file publish.json \\
      --receipt-out receipt.tza --json

Exit codes: 0 executed, 1 denied (verdict printed, e.g. sam-actor-unauthenticated,
sam-expired, sam-replayed, sam-keychain-denied) or the receipt does not verify, 2 usage
error (bad arguments, no key to sign with, no daemon to reach, unreadable capsule).`,
    )
    .action(async (file: string, o: GwExecOpts) =>
      (await import('./gateway-actions.js')).exec(file, o),
    );

  requestCommand(g.command('request')).action(async (id: string, o: GwRequestOpts) =>
    (await import('./gateway-actions.js')).requestCapsule(id, o),
  );

  target(g.command('health').description('is the gateway daemon up; who is it'))
    .addHelpText(
      'after',
      `
Examples:
  $ tibet gateway health
  $ tibet gateway health --gateway http://127.0.0.1:7469 --json
  $ tibet gateway health --socket /run/tibet/gateway.sock

Exit codes: 0 up, 2 no daemon to reach.`,
    )
    .action(async (o: GwTarget) => (await import('./gateway-actions.js')).health(o));
}
