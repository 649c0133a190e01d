import type { Command } from 'commander';
import type { Target } from './continuityd.js';

/*
 * The vocabulary below is copied from @tibet/keychain so that registering commands stays
 * cheap (nothing but commander is loaded for `--help`); test/keychain-cli.test.ts checks
 * that the copies match the package.
 */
export const SECRET_TYPES = [
  'api_key',
  'oauth_token',
  'signing_key',
  'service_account_credential',
  'pypi_token',
  'crates_token',
  'github_pat',
  'ssh_key',
  'root_password',
  'smart_contract_signer',
  'tls_cert',
  'webhook_signer',
] as const;
export const GENERATABLE_TYPES = [
  'signing_key',
  'ssh_key',
  'webhook_signer',
  'smart_contract_signer',
  'root_password',
] as const;
export const CUSTODY_ROLES = ['owner', 'custodian', 'active_operator'] as const;
export const AUTHORITY_MODES = ['agent', 'admin', 'triage', 'shared', 'system'] as const;
export const REPORTABLE_EXPOSURES = [
  'chat-disclosed',
  'git-leaked',
  'log-leaked',
  'suspected',
] as const;

/** Options every keychain command takes: which keychain, where the log is, output. */
export interface KcCommon extends Target {
  service?: string;
  json?: boolean;
}

/** Options of a command that changes a secret (and so writes an event). */
export interface KcActing extends KcCommon {
  as: string;
  why: string;
}

/** Where new material comes from: never an argument. */
export interface KcSource {
  fromStdin?: boolean;
  fromFile?: string;
  fromEnv?: string;
}

export interface KcAddOpts extends KcActing, KcSource {
  type: string;
  issuer: string;
  scope: string;
  expires?: string;
  operator?: string;
}

export interface KcPolicyOpts extends KcCommon {
  as?: string;
  why?: string;
  reveal?: string;
  use?: string;
  targets?: string;
  lanes?: string;
  maxTtl?: string;
}

/** Exit codes shared by every command that changes a secret. */
const EXIT_ACTING = `
Exit codes:
  0  done (the event is durable in the audit log)
  1  refused: the reason and its code are printed, e.g. NOT_AUTHORIZED, POLICY_DENIED,
     INVALID_TRANSITION, SECRET_EXPOSED, SECRET_NOT_FOUND, AUDIT_FAILED, PASSPHRASE_WRONG;
     a refusal by policy is itself logged (secret-denied, signed by the keychain)
  2  usage error: bad or missing arguments, INVALID_INPUT, INVALID_SECRET_ID,
     INVALID_SECRET_TYPE, no passphrase available, no log to write to`;

const EXIT_READING = `
Exit codes: 0 shown, 1 refused (e.g. SECRET_NOT_FOUND, STORE_CORRUPT, PASSPHRASE_WRONG),
2 usage error (bad arguments, no keychain in this home, no log to read from).`;

const SOURCES = `
The secret is read from stdin (a pipe, not a terminal), a file, or an environment
variable; never from an argument, where it would show in \`ps\` and shell history.
It is stored byte for byte: use \`printf %s\`, not \`echo\`, to avoid a trailing newline.`;

/** An \`Examples:\` block: one command per argument (continuation lines already indented). */
function examples(...commands: string[]): string {
  return `\nExamples:\n${commands.map((c) => `  $ ${c}`).join('\n')}\n`;
}

function common(c: Command): Command {
  return c
    .option(
      '--service <id>',
      "the keychain's identity (default: the one `tkc init` recorded in $TIBET_HOME)",
    )
    .option(
      '--socket <path>',
      'audit daemon Unix socket (default $TIBET_HOME/continuityd.sock when it exists)',
    )
    .option('--url <url>', 'audit daemon loopback URL, e.g. http://127.0.0.1:7468')
    .option('--dir <dir>', 'log folder for embedded mode (default $TIBET_HOME/log)')
    .option('--log-as <id>', "embedded mode: the log's identity (no daemon needed)")
    .option('--json', 'print JSON on stdout');
}

function acting(c: Command): Command {
  return common(c)
    .requiredOption('--as <id>', 'who acts (needs their passphrase)')
    .requiredOption('--why <text>', 'the reason, recorded in the event (required)');
}

function sources(c: Command): Command {
  return c
    .option('--from-stdin', 'read the secret from stdin')
    .option('--from-file <path>', 'read the secret from a file')
    .option('--from-env <var>', 'read the secret from an environment variable');
}

/** `tibet keychain …` (also the `tkc` command): registration only. */
export interface KcQueryOpts extends KcCommon {
  at?: string;
  action?: string;
  target?: string;
  lane?: string;
  json?: boolean;
}

export function registerKeychain(program: Command): void {
  const kc = program
    .command('keychain')
    .description(
      'secret custody with a provable timeline: add, reveal, delegate, expose, rotate, revoke, …',
    )
    .addHelpText(
      'after',
      `
Also installed as \`tkc\` (\`tkc add …\` = \`tibet keychain add …\`).

Each secret is sealed (encrypted to the keychain, its owner, its custodian and every actor
named by id in its reveal policy) under
$TIBET_HOME/keychain; every change is a signed event in the audit log, and a change that
cannot be logged does not happen. The log is a continuityd daemon (its socket in
$TIBET_HOME is found by itself), or the log folder opened here with --log-as.

Examples:
  $ tkc init --org acme
  $ tibet continuityd serve --as jis:acme:auditlog &
  $ printf %s "$PYPI_TOKEN" | tkc add sec_pypi_001 --type pypi_token --issuer pypi.org \\
      --scope upload:acme-lib --from-stdin --as jis:acme:alice --why "publish token"
  $ tkc delegate sec_pypi_001 --role active_operator --to jis:acme:release-bot \\
      --as jis:acme:alice --why "release bot publishes"
  $ tkc reveal sec_pypi_001 --stdout --as jis:acme:alice --why "debug upload" | …
  $ tkc expose sec_pypi_001 --state chat-disclosed --evidence "pasted in #ops" \\
      --as jis:acme:bob --why "saw it in chat"
  $ tkc rotate sec_pypi_001 --from-file new-token.txt --as jis:acme:alice --why "leaked"
  $ tkc list
  $ tkc show sec_pypi_001 --json

Exit codes: 0 ok · 1 refused (the reason and its code are printed) · 2 usage error ·
70 internal error (please report). Each command's --help says more.`,
    );

  kc.command('init')
    .description("create the keychain's service identity and the log's identity if missing")
    .requiredOption('--org <org>', 'the organisation: makes jis:<org>:keychain')
    .option('--log <id>', "the audit log's identity (default jis:<org>:auditlog)")
    .option('--json', 'print what was made as JSON')
    .addHelpText(
      'after',
      `
Both identities are of class system; each new one asks for a passphrase. The keychain's
identity signs every revision and every refusal, and can open sealed material: guard
its passphrase. Running init again is safe: existing identities are kept.
${examples(
  'tibet keychain init --org acme',
  'tibet keychain init --org acme --log jis:acme:audit-primary --json',
)}
Exit codes: 0 done, 1 refused (an existing identity is not of class system, or the home
already has another keychain), 2 usage error (bad org or id, no passphrase available).`,
    )
    .action(async (o: { org: string; log?: string; json?: boolean }) =>
      (await import('./keychain-actions.js')).init(o),
    );

  sources(
    acting(
      kc
        .command('add')
        .description('import a secret (secret-imported): sealed at once, never stored in clear')
        .argument('<secret-id>', 'e.g. sec_pypi_001 (3–96 of a-z 0-9 _ . -, starting a-z)')
        .requiredOption('--type <type>', `one of ${SECRET_TYPES.join(', ')}`)
        .requiredOption('--issuer <issuer>', 'who issued it, e.g. pypi.org')
        .requiredOption('--scope <scope>', 'what it grants, e.g. upload:acme-lib')
        .option('--expires <rfc3339>', 'when it expires, e.g. 2027-01-01T00:00:00Z')
        .option('--operator <id>', 'the active operator (e.g. a bot that uses it via a gateway)'),
    ),
  )
    .addHelpText(
      'after',
      `${SOURCES}\nExactly one source is required.\n${examples(
        `printf %s "$PYPI_TOKEN" | tibet keychain add sec_pypi_001 --type pypi_token \\
      --issuer pypi.org --scope upload:acme-lib --from-stdin --as jis:acme:alice \\
      --why "publish token"`,
        `tibet keychain add sec_gh_ci --type github_pat --issuer github.com \\
      --scope repo:acme/acme-lib --from-env GH_TOKEN --expires 2027-01-01T00:00:00Z \\
      --operator jis:acme:release-bot --as jis:acme:alice --why "CI pushes release tags"`,
      )}${EXIT_ACTING}`,
    )
    .action(async (id: string, o: KcAddOpts) => (await import('./keychain-actions.js')).add(id, o));

  acting(
    kc
      .command('generate')
      .description('generate a secret here (secret-created); prints its public part if any')
      .argument('<secret-id>', 'e.g. sec_deploy_key')
      .requiredOption('--type <type>', `one of ${GENERATABLE_TYPES.join(', ')}`)
      .requiredOption('--issuer <issuer>', 'who it is for, e.g. github.com')
      .requiredOption('--scope <scope>', 'what it grants')
      .option('--expires <rfc3339>', 'when it expires')
      .option('--operator <id>', 'the active operator'),
  )
    .addHelpText(
      'after',
      `
The material is made and sealed here, never printed; for a key pair the public part is.
${examples(
  `tibet keychain generate sec_deploy_key --type ssh_key --issuer github.com \\
      --scope deploy:acme/acme-lib --as jis:acme:alice --why "deploy key for CI"`,
  `tibet keychain generate sec_sign_001 --type signing_key --issuer acme.example \\
      --scope sign:releases --expires 2027-06-30T00:00:00Z --as jis:acme:alice \\
      --why "release signing key" --json`,
)}${EXIT_ACTING}`,
    )
    .action(async (id: string, o: Omit<KcAddOpts, keyof KcSource>) =>
      (await import('./keychain-actions.js')).generate(id, o),
    );

  acting(
    kc
      .command('reveal')
      .description('decrypt the secret for a person (secret-unsealed, logged first)')
      .argument('<secret-id>')
      .option('--out <file>', 'write it to a new file (mode 0600; never overwrites)')
      .option('--stdout', 'write it to stdout (nothing else goes there)'),
  )
    .addHelpText(
      'after',
      `
Exactly one destination: --out FILE or --stdout (with --stdout, --json is not allowed).
The reveal is durable in the log before the secret is decrypted. By default only the
owner may reveal (see \`policy\`).
${examples(
  `tibet keychain reveal sec_pypi_001 --out pypi-token.txt --as jis:acme:alice \\
      --why "debug upload"`,
  `TWINE_PASSWORD="$(tibet keychain reveal sec_pypi_001 --stdout --as jis:acme:alice \\
      --why "upload by hand")" twine upload -u __token__ dist/*`,
)}${EXIT_ACTING}`,
    )
    .action(async (id: string, o: KcActing & { out?: string; stdout?: boolean }) =>
      (await import('./keychain-actions.js')).reveal(id, o),
    );

  acting(
    kc
      .command('delegate')
      .description('assign a custody role (secret-delegated); an owner handoff awaits `accept`')
      .argument('<secret-id>')
      .requiredOption('--role <role>', CUSTODY_ROLES.join(' | '))
      .requiredOption('--to <id>', 'the new holder of the role')
      .option('--authority <mode>', `${AUTHORITY_MODES.join(' | ')} (default admin)`),
  )
    .addHelpText(
      'after',
      `
The owner assigns any role, the custodian the active operator. A new owner or custodian
gets the material re-encrypted to them; an active operator never gets the material.
${examples(
  `tibet keychain delegate sec_pypi_001 --role active_operator --to jis:acme:release-bot \\
      --authority agent --as jis:acme:alice --why "release bot publishes"`,
  `tibet keychain delegate sec_pypi_001 --role owner --to jis:acme:bob --as jis:acme:alice \\
      --why "alice hands PyPI publishing to bob"`,
)}${EXIT_ACTING}`,
    )
    .action(async (id: string, o: KcActing & { role: string; to: string; authority?: string }) =>
      (await import('./keychain-actions.js')).delegate(id, o),
    );

  acting(
    kc
      .command('accept')
      .description('accept a pending owner handoff (secret-accepted)')
      .argument('<secret-id>'),
  )
    .addHelpText(
      'after',
      `
Only the actor named by the pending \`delegate --role owner\` may accept; until then the
previous owner stays owner.
${examples('tibet keychain accept sec_pypi_001 --as jis:acme:bob --why "taking over PyPI publishing"')}${EXIT_ACTING}`,
    )
    .action(async (id: string, o: KcActing) =>
      (await import('./keychain-actions.js')).accept(id, o),
    );

  acting(
    kc
      .command('expose')
      .description('report an exposure (secret-exposed): rotation becomes required')
      .argument('<secret-id>')
      .requiredOption('--state <state>', REPORTABLE_EXPOSURES.join(' | '))
      .requiredOption('--evidence <text>', 'where and how (never the secret itself)'),
  )
    .addHelpText(
      'after',
      `
Anyone registered may report. A leak (not \`suspected\`) marks the secret compromised;
reveal and use are refused until it is rotated.
${examples(
  `tibet keychain expose sec_pypi_001 --state chat-disclosed --evidence "pasted in #ops" \\
      --as jis:acme:bob --why "saw it in chat"`,
  `tibet keychain expose sec_gh_ci --state suspected --evidence "laptop lost on a train" \\
      --as jis:acme:alice --why "precaution"`,
)}${EXIT_ACTING}`,
    )
    .action(async (id: string, o: KcActing & { state: string; evidence: string }) =>
      (await import('./keychain-actions.js')).expose(id, o),
    );

  sources(
    acting(
      kc
        .command('rotate')
        .description('a new version (secret-rotated); the old one is deactivated, lineage kept')
        .argument('<secret-id>')
        .option('--generate', 'generate the new version here (generatable types only)'),
    ),
  )
    .addHelpText(
      'after',
      `${SOURCES}\nExactly one of --from-stdin, --from-file, --from-env or --generate.\n${examples(
        'tibet keychain rotate sec_pypi_001 --from-file new-token.txt --as jis:acme:alice --why "leaked"',
        `tibet keychain rotate sec_deploy_key --generate --as jis:acme:alice \\
      --why "yearly rotation"`,
      )}${EXIT_ACTING}`,
    )
    .action(async (id: string, o: KcActing & KcSource & { generate?: boolean }) =>
      (await import('./keychain-actions.js')).rotate(id, o),
    );

  for (const [name, what, example] of [
    [
      'revoke',
      'revoke the secret (secret-revoked): deactivated, or compromised if exposed',
      'tibet keychain revoke sec_pypi_001 --as jis:acme:alice --why "moved to trusted publishing"',
    ],
    [
      'archive',
      'archive the secret (secret-archived): kept for the record, no longer used',
      'tibet keychain archive sec_gh_ci --as jis:acme:alice --why "repository archived"',
    ],
    [
      'suspend',
      'suspend the secret (secret-suspended) until `resume`',
      'tibet keychain suspend sec_pypi_001 --as jis:acme:alice --why "release freeze"',
    ],
    [
      'resume',
      'resume a suspended secret (secret-resumed)',
      'tibet keychain resume sec_pypi_001 --as jis:acme:alice --why "release freeze over"',
    ],
    [
      'destroy',
      'shred every version of the material (secret-destroyed); the timeline stays',
      'tibet keychain destroy sec_gh_ci --as jis:acme:alice --why "retention period over"',
    ],
  ] as const) {
    acting(kc.command(name).description(what).argument('<secret-id>'))
      .addHelpText(
        'after',
        `${name === 'destroy' ? '\nOnly the owner may destroy. This cannot be undone.\n' : ''}${examples(example)}${EXIT_ACTING}`,
      )
      .action(async (id: string, o: KcActing) =>
        (await import('./keychain-actions.js')).lifecycle(name, id, o),
      );
  }

  common(
    kc
      .command('list')
      .description('every secret: type, lifecycle, exposure, owner, version')
      .option('--full', 'with --json: the whole state (lifecycle, versions, policy, custody)'),
  )
    .addHelpText(
      'after',
      `\nWith --json, one JSON SecretRecord per line (NDJSON).\n${examples(
        'tibet keychain list',
        'tibet keychain list --json --full > secrets.ndjson',
      )}${EXIT_READING}`,
    )
    .action(async (o: KcCommon & { full?: boolean }) =>
      (await import('./keychain-actions.js')).list(o),
    );

  common(
    kc
      .command('show')
      .description('one secret: record, lifecycle, versions, custody, policy (never the secret)')
      .argument('<secret-id>')
      .option('--full', 'with --json: the whole state instead of the SecretRecord'),
  )
    .addHelpText(
      'after',
      `\nWith --json, the family's SecretRecord exactly (see docs).\n${examples(
        'tibet keychain show sec_pypi_001',
        'tibet keychain show sec_pypi_001 --json --full',
      )}${EXIT_READING}`,
    )
    .action(async (id: string, o: KcCommon & { full?: boolean }) =>
      (await import('./keychain-actions.js')).show(id, o),
    );

  common(
    kc
      .command('policy')
      .description('print the policy, or change it (secret-policy-changed) with any option')
      .argument('<secret-id>')
      .option('--reveal <list>', 'who may reveal: ids and role:<role>, comma-separated')
      .option('--use <list>', 'for whom it may be used (capsules / gateway)')
      .option('--targets <list>', 'allowed target actions, e.g. /upload/pypi, /proxy/*, *')
      .option('--lanes <list>', 'allowed policy lanes, * for any')
      .option('--max-ttl <seconds>', 'longest capsule lifetime accepted, 1..86400')
      .option('--as <id>', 'with a change: who changes it (the owner)')
      .option('--why <text>', 'with a change: the reason'),
  )
    .addHelpText(
      'after',
      `
A list replaces the current one; an empty string ("") empties it. Options left out keep
their value. A change needs --as and --why.
${examples(
  'tibet keychain policy sec_pypi_001',
  `tibet keychain policy sec_pypi_001 --reveal jis:acme:alice,role:custodian \\
      --use jis:acme:release-bot --targets /upload/pypi --lanes publish --max-ttl 300 \\
      --as jis:acme:alice --why "the bot publishes through the gateway"`,
  `tibet keychain policy sec_pypi_001 --reveal "" --as jis:acme:alice \\
      --why "nobody reveals it any more"`,
)}${EXIT_ACTING}`,
    )
    .action(async (id: string, o: KcPolicyOpts) =>
      (await import('./keychain-actions.js')).policy(id, o),
    );

  // The timeline queries: answered from the audit log (every answer cites the events,
  // by log index, action id and line hash, that support it).
  const QUERY_NOTE = `
Answers come from the audit log; --json adds the evidence (log index, action id, line hash).`;
  const QUERY_EXIT = `
Exit codes: 0 answered (for verify: the keychain verifies), 1 refused, or verify found
problems, 2 usage error.`;
  const queries: [string, string, (c: Command) => Command, string[]][] = [
    [
      'history',
      "the secret's timeline, event by event, from the audit log",
      (c) => c,
      ['tibet keychain history sec_pypi_001', 'tibet keychain history sec_pypi_001 --json'],
    ],
    [
      'who-could',
      'who could reveal or use the secret at a time, and by which rule',
      (c) =>
        c
          .option('--at <rfc3339>', 'the time asked about (default: now)')
          .option('--action <action>', 'reveal | use (default use)')
          .option('--target <action>', 'with use: the target action, e.g. /upload/pypi')
          .option('--lane <lane>', 'with use: the policy lane'),
      [
        'tibet keychain who-could sec_pypi_001 --action reveal',
        `tibet keychain who-could sec_pypi_001 --at 2026-11-28T12:00:00Z \\
      --target /upload/pypi --lane publish --json`,
      ],
    ],
    [
      'who-did',
      'who revealed or used the secret, and who was refused',
      (c) => c.option('--action <action>', 'reveal | use (default both)'),
      [
        'tibet keychain who-did sec_pypi_001',
        'tibet keychain who-did sec_pypi_001 --action use --json',
      ],
    ],
    [
      'last-used',
      'when the secret was last revealed or used, by whom',
      (c) => c,
      ['tibet keychain last-used sec_pypi_001', 'tibet keychain last-used sec_pypi_001 --json'],
    ],
    [
      'dependents',
      'what depends on the secret: capsules and sessions that used it',
      (c) => c,
      ['tibet keychain dependents sec_pypi_001'],
    ],
    [
      'verify',
      'check the store against the log: every revision logged, signatures, chain',
      (c) => c,
      [
        'tibet keychain verify',
        'tibet keychain verify sec_pypi_001 --dir ./log --log-as jis:acme:auditlog --json',
      ],
    ],
  ];
  for (const [name, what, opts, lines] of queries) {
    opts(
      common(
        kc
          .command(name)
          .description(what)
          .argument(name === 'verify' ? '[secret-id]' : '<secret-id>'),
      ),
    )
      .addHelpText('after', `${QUERY_NOTE}\n${examples(...lines)}${QUERY_EXIT}`)
      .action(async (id: string | undefined, o: KcQueryOpts) =>
        (await import('./keychain-actions.js')).query(name, id, o),
      );
  }
}
