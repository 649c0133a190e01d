import type { Command } from 'commander';

const collect = (v: string, prev: string[] = []): string[] => [...prev, v];

/** Where to reach the log: a daemon (socket or loopback URL) or the folder itself. */
export interface Target {
  socket?: string;
  url?: string;
  dir?: string;
  logAs?: string;
}

function target(c: Command): Command {
  return c
    .option(
      '--socket <path>',
      'daemon Unix socket (default $TIBET_HOME/continuityd.sock when it exists)',
    )
    .option('--url <url>', 'daemon loopback URL, e.g. http://127.0.0.1:7468')
    .option('--dir <dir>', 'log folder for embedded mode (default $TIBET_HOME/log)')
    .option('--log-as <id>', "embedded mode: the log's identity (signs checkpoints)");
}

export function registerContinuityd(program: Command): void {
  const c = program
    .command('continuityd')
    .description(
      'the tamper-evident audit log: append, serve, checkpoint, tail, query, prove, verify',
    )
    .addHelpText(
      'after',
      `
Lines are RFC 8785 JSON records holding signed TIBET tokens, hash-linked, each a leaf of an
RFC 9162 Merkle tree; checkpoints are C2SP signed notes. See docs/continuityd.md.

Examples:
  $ tibet id create jis:acme:auditlog --class system
  $ tibet continuityd serve --as jis:acme:auditlog &
  $ tibet continuityd append --as jis:acme:alice --event secret-created --why "new PyPI token" \\
      --object sec_pypi_001
  $ tibet continuityd checkpoint
  $ tibet continuityd query --object sec_pypi_001
  $ tibet continuityd prove 0 -o event0.tlog-proof`,
    );

  c.command('serve')
    .description('run the daemon: one writer, many clients, on a Unix socket and/or loopback HTTP')
    .requiredOption('--as <id>', "the log's identity (signs checkpoints; needs its passphrase)")
    .option('--dir <dir>', 'log folder (default $TIBET_HOME/log)')
    .option('--socket <path>', 'Unix socket path (default $TIBET_HOME/continuityd.sock)')
    .option('--no-socket', 'do not listen on a Unix socket')
    .option('--port <n>', 'also listen on 127.0.0.1:<n> (0 = any free port)')
    .option('--checkpoint-every <n>', 'sign a checkpoint every n appends (default 1000)')
    .option(
      '--watch-vaults [seconds]',
      'also run the vault watcher here, checking every n seconds (default 30)',
    )
    .option('--json', 'print the listening addresses as JSON')
    .addHelpText(
      'after',
      `
With --watch-vaults the daemon also releases vaults whose trigger is reached (see \`tibet
vault watch\`): it needs the passphrases of the keychain's and the vault's identities too,
and writes their events into this log directly.
Stops cleanly on SIGINT/SIGTERM (queued appends finish first).

Examples:
  $ tibet continuityd serve --as jis:acme:auditlog &
  $ tibet continuityd serve --as jis:acme:auditlog --port 7468 --checkpoint-every 100 --json
  $ tibet continuityd serve --as jis:acme:auditlog --dir /srv/tibet/log --watch-vaults 60

Exit codes: 0 stopped cleanly, 1 could not start (e.g. LOCKED), 2 usage error.`,
    )
    .action(
      async (o: {
        as: string;
        dir?: string;
        socket?: string | boolean;
        port?: string;
        checkpointEvery?: string;
        watchVaults?: string | boolean;
        json?: boolean;
      }) => (await import('./continuityd-actions.js')).serve(o),
    );

  target(
    c
      .command('append')
      .description('append one signed token (from a file/stdin, or minted here with --as)')
      .option('--token <file>', 'a signed token as JSON (- for stdin)')
      .option('--as <id>', 'mint the token as this actor (needs its passphrase)')
      .option('--event <event>', 'with --as: the event, e.g. secret-created')
      .option('--why <text>', 'with --as: the intent (erachter), required and human-readable')
      .option('--erin <json>', 'with --as: content, as JSON')
      .option('--parent <action-id>', 'with --as: the causal parent')
      .option('--object <id>', 'the object (e.g. a secret id) the event is about')
      .option('--continuity <id>', 'the line the token continues (default: object, else actor)')
      .option('--json', 'print the receipt as JSON'),
  )
    .addHelpText(
      'after',
      `
Exactly one of --token or --as. Without --socket or --url it writes through the daemon
whose socket is in $TIBET_HOME; with --log-as (and --dir) it opens the log folder itself.

Examples:
  $ tibet continuityd append --as jis:acme:alice --event secret-created --why "new PyPI token" \\
      --object sec_pypi_001
  $ tibet continuityd append --as jis:acme:alice --event secret-rotated --why "leaked in chat" \\
      --object sec_pypi_001 --parent act_1f0c2b7a9d3e4f50 --erin '{"ticket":"OPS-1234"}'
  $ tibet continuityd append --token signed-token.json --url http://127.0.0.1:7468 --json
  $ tibet continuityd append --token - --dir ./log --log-as jis:acme:auditlog < token.json

Exit codes: 0 durable, 1 refused (signature, unknown actor, causality, write failure),
2 usage error.`,
    )
    .action(
      async (
        o: Target & {
          token?: string;
          as?: string;
          event?: string;
          why?: string;
          erin?: string;
          parent?: string;
          object?: string;
          continuity?: string;
          json?: boolean;
        },
      ) => (await import('./continuityd-actions.js')).append(o),
    );

  target(
    c
      .command('checkpoint')
      .description('sign a checkpoint of the log now and print it')
      .option('--json', 'print JSON'),
  )
    .addHelpText(
      'after',
      `
Keep a checkpoint somewhere else: \`continuityd verify --trusted-checkpoint\` later proves
the log only grew since (nothing was rewritten).

Examples:
  $ tibet continuityd checkpoint
  $ tibet continuityd checkpoint > checkpoints/2026-11-28.note
  $ tibet continuityd checkpoint --dir ./log --log-as jis:acme:auditlog --json

Exit codes: 0 signed, 1 refused (e.g. LOCKED: a daemon holds the folder), 2 usage error.`,
    )
    .action(async (o: Target & { json?: boolean }) =>
      (await import('./continuityd-actions.js')).checkpoint(o),
    );

  target(
    c
      .command('head')
      .description('size, root and latest checkpoint')
      .option('--json', 'print JSON'),
  )
    .addHelpText(
      'after',
      `
Examples:
  $ tibet continuityd head
  $ tibet continuityd head --url http://127.0.0.1:7468 --json

Exit codes: 0 shown, 1 refused, 2 usage error (no daemon or log folder to reach).`,
    )
    .action(async (o: Target & { json?: boolean }) =>
      (await import('./continuityd-actions.js')).head(o),
    );

  c.command('tail')
    .description('print records (NDJSON with --json), optionally following new ones')
    .option('--dir <dir>', 'log folder (default $TIBET_HOME/log)')
    .option('--from <index>', 'first index; negative counts from the end (default -10)')
    .option('-f, --follow', 'keep printing new records until interrupted')
    .option('--json', 'NDJSON on stdout')
    .addHelpText(
      'after',
      `
Reads the folder directly (no daemon needed); safe beside a running writer.

Examples:
  $ tibet continuityd tail
  $ tibet continuityd tail --from -50 --follow
  $ tibet continuityd tail --dir /srv/tibet/log --from 0 --json > log.ndjson

Exit codes: 0 done (or interrupted while following), 2 usage error.`,
    )
    .action(async (o: { dir?: string; from?: string; follow?: boolean; json?: boolean }) =>
      (await import('./continuityd-actions.js')).tail(o),
    );

  c.command('query')
    .description('find records by action, object, actor and time range (reads only matching lines)')
    .option('--dir <dir>', 'log folder (default $TIBET_HOME/log)')
    .option('--action <id>', 'an action id')
    .option('--object <id>', 'an object id (e.g. a secret id)')
    .option('--actor <id>', 'an actor id')
    .option('--since <time>', 'RFC 3339: received at or after')
    .option('--until <time>', 'RFC 3339: received before')
    .option('--limit <n>', 'at most n records (default 100)')
    .option('--json', 'NDJSON on stdout')
    .addHelpText(
      'after',
      `
Give at least one of --action, --object, --actor, --since, --until.
Uses the persisted index (a few line reads even on a million-line log).

Examples:
  $ tibet continuityd query --object sec_pypi_001
  $ tibet continuityd query --actor jis:acme:release-bot --since 2026-11-01T00:00:00Z \\
      --until 2026-12-01T00:00:00Z --limit 20
  $ tibet continuityd query --action act_1f0c2b7a9d3e4f50 --json

Exit codes: 0 done (also with no match), 1 the index or a line is damaged, 2 usage error.`,
    )
    .action(
      async (o: {
        dir?: string;
        action?: string;
        object?: string;
        actor?: string;
        since?: string;
        until?: string;
        limit?: string;
        json?: boolean;
      }) => (await import('./continuityd-actions.js')).query(o),
    );

  c.command('verify')
    .description(
      'verify a whole log: chain, signatures, causality, Merkle root vs checkpoints, consistency',
    )
    .option('--dir <dir>', 'log folder (default $TIBET_HOME/log)')
    .option(
      '--trusted-checkpoint <file>',
      'an older checkpoint note you kept: the log must be consistent with it',
    )
    .option('--workers <n>', 'signature-checking threads (default: the CPU count)')
    .option('--json', 'print the report as JSON')
    .addHelpText(
      'after',
      `
Actors' keys come from $TIBET_HOME/identities; the log key from the folder's log.json.

Examples:
  $ tibet continuityd verify
  $ tibet continuityd verify --dir /srv/tibet/log --trusted-checkpoint checkpoints/2026-11-28.note
  $ tibet continuityd verify --workers 2 --json > verify-report.json

Exit codes: 0 the log verifies, 1 problems found (each with its code and location), 2 usage error.`,
    )
    .action(
      async (o: { dir?: string; trustedCheckpoint?: string; workers?: string; json?: boolean }) =>
        (await import('./continuityd-actions.js')).verify(o),
    );

  c.command('prove')
    .description('export a C2SP tlog-proof for one record, or check one offline')
    .argument('[index]', 'record index to prove')
    .option('--dir <dir>', 'log folder (default $TIBET_HOME/log)')
    .option('-o, --out <file>', 'write the proof here (default stdout)')
    .option(
      '--check <file>',
      'verify a tlog-proof file offline instead (needs --log-key and --entry)',
    )
    .option('--log-key <file>', "with --check: the log's log.json (its public key and name)")
    .option('--entry <file>', 'with --check: the record line the proof is about (- for stdin)')
    .option('--json', 'with --check: print the result as JSON')
    .addHelpText(
      'after',
      `
The proof file holds the record's index, its RFC 9162 inclusion proof and the signed
checkpoint it is proved against; anyone with the log's public key can check it offline.

Examples:
  $ tibet continuityd prove 41 -o event41.tlog-proof
  $ tibet continuityd prove --check event41.tlog-proof --log-key log.json --entry line41.json

Exit codes: 0 exported / proof valid, 1 invalid proof or record not yet covered by a
checkpoint, 2 usage error.`,
    )
    .action(
      async (
        index: string | undefined,
        o: {
          dir?: string;
          out?: string;
          check?: string;
          logKey?: string;
          entry?: string;
          json?: boolean;
        },
      ) => (await import('./continuityd-actions.js')).prove(index, o),
    );

  void collect;
}
