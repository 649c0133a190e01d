import type { Command } from 'commander';
import type { Target } from './continuityd.js';

/** Options every vault command takes: which vault/keychain identities, where the log is, output. */
export interface VaultCommon extends Target {
  vault?: string;
  service?: string;
  json?: boolean;
}

export interface VaultCreateOpts extends VaultCommon {
  as: string;
  why?: string;
  note: string;
  beneficiary: string[];
  unlockAt?: string;
  deadMan?: string;
  secret?: string;
  type?: string;
  id?: string;
  fromStdin?: boolean;
  fromFile?: string;
  fromEnv?: string;
}

export interface VaultActingOpts extends VaultCommon {
  as: string;
  why?: string;
}

export interface VaultOpenOpts extends VaultActingOpts {
  out?: string;
  stdout?: boolean;
}

export interface VaultListOpts extends VaultCommon {
  owner?: string;
  beneficiary?: string;
}

export interface VaultWatchOpts extends VaultCommon {
  once?: boolean;
  interval?: string;
}

const EXIT_ACTING = `
Exit codes:
  0  done (the event is durable in the audit log)
  1  refused: the reason and its code are printed (NOT_OWNER, NOT_BENEFICIARY,
     NOT_RELEASED, ALREADY_RELEASED, SIGNATURE_INVALID, KEYCHAIN_REFUSED, VAULT_NOT_FOUND,
     AUDIT_FAILED, PASSPHRASE_WRONG, …); a refusal by rule is itself logged
  2  usage error: bad or missing arguments, INVALID_INPUT, INVALID_VAULT_ID, no passphrase
     available, no log to write to`;

const EXIT_READING = `
Exit codes: 0 shown, 1 refused (VAULT_NOT_FOUND, STORE_CORRUPT, PASSPHRASE_WRONG),
2 usage error (bad arguments, no vault in this home, no log to read from).`;

function common(c: Command): Command {
  return c
    .option('--vault <id>', "the vault's identity (default: the one `tibet vault init` recorded)")
    .option('--service <id>', "the keychain's identity (default: the one `tkc init` recorded)")
    .option(
      '--socket <path>',
      'audit daemon Unix socket (default $TIBET_HOME/continuityd.sock when it exists)',
    )
    .option('--url <url>', 'audit daemon loopback URL, e.g. http://127.0.0.1:7468')
    .option('--dir <dir>', 'log folder for embedded mode (default $TIBET_HOME/log)')
    .option('--log-as <id>', "embedded mode: the log's identity (no daemon needed)")
    .option('--json', 'print JSON on stdout');
}

const collect = (v: string, prev: string[] = []): string[] => [...prev, v];

/** An \`Examples:\` block: one command per argument (continuation lines already indented). */
function examples(...commands: string[]): string {
  return `\nExamples:\n${commands.map((c) => `  $ ${c}`).join('\n')}\n`;
}

/** `tibet vault …`: registration only (the work is in vault-actions.ts, loaded on use). */
export function registerVault(program: Command): void {
  const v = program
    .command('vault')
    .description('release a keychain secret on a date or by a dead-man switch')
    .addHelpText(
      'after',
      `
A vault holds one keychain secret sealed (nobody may reveal it, its owner and its
beneficiaries included) until its trigger: a date (--unlock-at), a dead-man switch
(--dead-man: no heartbeat from the owner for that long), or both (then the later of the
two). A watcher (\`tibet vault watch\`, or any \`check\`, heartbeat or open) then releases
it: the first beneficiary becomes its owner and every beneficiary may open it. Every step
is a signed event in the audit log and in the secret's keychain timeline.

Examples:
  $ tkc init --org acme && tibet vault init --org acme
  $ tibet continuityd serve --as jis:acme:auditlog &
  $ printf %s "$RECOVERY_PHRASE" | tibet vault create --from-stdin --as jis:acme:alice \\
      --beneficiary jis:acme:bob --dead-man P30D --note "alice's recovery phrase"
  $ tibet vault heartbeat vlt_0123456789abcdef --as jis:acme:alice
  $ tibet vault watch &
  $ tibet vault info vlt_0123456789abcdef
  $ tibet vault open vlt_0123456789abcdef --as jis:acme:bob --out phrase.txt

Exit codes: 0 ok · 1 refused (the reason and its code are printed) · 2 usage error ·
70 internal error (please report). Each command's --help says more.`,
    );

  v.command('init')
    .description("create the vault's identity (class system) and record it in $TIBET_HOME")
    .requiredOption('--org <org>', 'the organisation: makes jis:<org>:vault')
    .option('--json', 'print what was made as JSON')
    .addHelpText(
      'after',
      `
The vault's identity signs its records, its releases and its refusals, and releases
secrets in the keychain in \`system\` authority mode: guard its passphrase (see
docs/vault.md, "what the holder of the vault's key can do"). Running init again is safe.
${examples('tibet vault init --org acme', 'tibet vault init --org acme --json')}
Exit codes: 0 done, 1 refused (the identity exists with another class), 2 usage error.`,
    )
    .action(async (o: { org: string; json?: boolean }) =>
      (await import('./vault-actions.js')).init(o),
    );

  common(
    v
      .command('create')
      .description(
        'seal content (or an existing keychain secret) until a date or a dead-man switch',
      )
      .requiredOption('--as <id>', 'the owner (needs their passphrase); only they send heartbeats')
      .requiredOption(
        '--beneficiary <id>',
        'who receives it (repeat for several; the first becomes its owner)',
        collect,
      )
      .requiredOption('--note <text>', 'a public note, shown by info and list (never the secret)')
      .option('--unlock-at <rfc3339>', 'release on this date, e.g. 2027-01-01T00:00:00Z')
      .option('--dead-man <duration>', 'release after this long without a heartbeat (P30D, PT12H)')
      .option('--from-stdin', 'the content from stdin (a pipe)')
      .option('--from-file <path>', 'the content from a file')
      .option('--from-env <var>', 'the content from an environment variable')
      .option('--secret <id>', 'seal an existing keychain secret you own instead')
      .option('--type <type>', 'keychain type of new content (default api_key)')
      .option('--id <vault-id>', 'the vault id (default: vlt_ + 16 random hex)')
      .option('--why <text>', 'the reason, recorded in the event'),
  )
    .addHelpText(
      'after',
      `
Give --unlock-at, --dead-man, or both (then it releases at the later of the two). The
content is never taken from an argument; exactly one of --from-stdin, --from-file,
--from-env or --secret. It becomes a keychain secret vault.<vault-id> whose reveal
policy is empty until the release.
${examples(
  `printf %s "$RECOVERY_PHRASE" | tibet vault create --from-stdin --as jis:acme:alice \\
      --beneficiary jis:acme:bob --dead-man P30D --note "alice's recovery phrase"`,
  `tibet vault create --secret sec_root_pw --as jis:acme:alice --beneficiary jis:acme:bob \\
      --beneficiary jis:acme:carol --unlock-at 2027-01-01T00:00:00Z --dead-man P90D \\
      --note "root password for the successor" --why "succession plan"`,
  `tibet vault create --from-env DR_API_KEY --type api_key --id vlt_dr_api_key \\
      --as jis:acme:alice --beneficiary jis:acme:bob --dead-man PT12H --note "DR key" --json`,
)}${EXIT_ACTING}`,
    )
    .action(async (o: VaultCreateOpts) => (await import('./vault-actions.js')).create(o));

  common(
    v
      .command('heartbeat')
      .description('the owner is alive: reset the dead-man deadline (a signed event)')
      .argument('<vault-id>')
      .requiredOption('--as <id>', 'the owner (needs their passphrase)')
      .option('--why <text>', 'the reason, recorded in the event'),
  )
    .addHelpText(
      'after',
      `
Anyone else is refused, and the refusal is logged (vault-heartbeat-denied). A heartbeat
after the trigger was reached releases the vault instead (ALREADY_RELEASED).
${examples(
  'tibet vault heartbeat vlt_0123456789abcdef --as jis:acme:alice',
  `tibet vault heartbeat vlt_0123456789abcdef --as jis:acme:alice \\
      --why "back from holiday" --json`,
)}${EXIT_ACTING}`,
    )
    .action(async (id: string, o: VaultActingOpts) =>
      (await import('./vault-actions.js')).heartbeat(id, o),
    );

  common(
    v
      .command('check')
      .description('check every vault once: release those whose trigger is reached')
      .option(
        '--at <rfc3339>',
        'check as if the clock read this time (drills and demos; see below)',
      ),
  )
    .addHelpText(
      'after',
      `
Prints one line per vault (JSON: the whole report). A release happens exactly once, even
when several watchers run. A clock that reads earlier than the latest time already seen
releases nothing (logged once per jump as vault-clock-regressed).
--at moves the vault's clock forward for one check: what a drill or a demo needs, and what
anyone holding the vault's key could do anyway. It leaves a trace: the release token carries
the time checked at, while the audit log records when the event really arrived; and later
checks see the real clock as gone backwards until it passes that time.
${examples(
  'tibet vault check',
  'tibet vault check --at 2027-01-01T00:00:00Z --json    # a drill: as on 1 January 2027',
)}
Exit codes: 0 checked (per-vault errors are in the report), 1 refused, 2 usage error.`,
    )
    .action(async (o: VaultCommon & { at?: string }) =>
      (await import('./vault-actions.js')).check(o),
    );

  common(
    v
      .command('open')
      .description('a beneficiary reads a released vault (vault-opened, then secret-unsealed)')
      .argument('<vault-id>')
      .requiredOption('--as <id>', 'a beneficiary (needs their passphrase)')
      .option('--out <file>', 'write the content to a new file (mode 0600; never overwrites)')
      .option('--stdout', 'write the content to stdout (nothing else goes there)')
      .option('--why <text>', 'the reason, recorded in the event'),
  )
    .addHelpText(
      'after',
      `
Exactly one destination: --out FILE or --stdout (with --stdout, --json is not allowed).
Before the release, or by anyone who is not a beneficiary: refused and logged
(vault-open-denied).
${examples(
  'tibet vault open vlt_0123456789abcdef --as jis:acme:bob --out phrase.txt',
  `tibet vault open vlt_0123456789abcdef --as jis:acme:bob --stdout \\
      --why "restore alice's wallet" | gpg --encrypt -r bob@acme.example > phrase.gpg`,
)}${EXIT_ACTING}`,
    )
    .action(async (id: string, o: VaultOpenOpts) =>
      (await import('./vault-actions.js')).open(id, o),
    );

  common(
    v
      .command('list')
      .description('every vault: status and time until release (never content)')
      .option('--owner <id>', "only this owner's vaults")
      .option('--beneficiary <id>', 'only vaults for this beneficiary'),
  )
    .addHelpText(
      'after',
      `${examples(
        'tibet vault list',
        'tibet vault list --owner jis:acme:alice',
        'tibet vault list --beneficiary jis:acme:bob --json',
      )}${EXIT_READING}`,
    )
    .action(async (o: VaultListOpts) => (await import('./vault-actions.js')).list(o));

  common(
    v
      .command('info')
      .description('one vault: metadata, status, deadline, time until release (never content)')
      .argument('<vault-id>'),
  )
    .addHelpText(
      'after',
      `${examples(
        'tibet vault info vlt_0123456789abcdef',
        'tibet vault info vlt_0123456789abcdef --url http://127.0.0.1:7468 --json',
      )}${EXIT_READING}`,
    )
    .action(async (id: string, o: VaultCommon) => (await import('./vault-actions.js')).info(id, o));

  common(
    v
      .command('watch')
      .description('check now (triggers missed while down fire once), then every --interval')
      .option('--once', 'one check, then exit')
      .option('--interval <seconds>', 'pause between checks (default 30)'),
  )
    .addHelpText(
      'after',
      `
Runs until SIGINT or SIGTERM. With --json, one report per check as NDJSON on stdout;
otherwise a line per release or error on stderr. The same watcher can run inside another
daemon (runWatcher of @tibet/vault), e.g. \`tibet continuityd serve --watch-vaults\`.
${examples(
  'tibet vault watch &',
  'tibet vault watch --once',
  'tibet vault watch --interval 300 --json >> vault-watch.ndjson',
)}
Exit codes: 0 stopped, 1 refused, 2 usage error.`,
    )
    .action(async (o: VaultWatchOpts) => (await import('./vault-actions.js')).watch(o));
}
