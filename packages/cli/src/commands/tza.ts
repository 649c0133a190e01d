import type { Command } from 'commander';

const collect = (v: string, prev: string[] = []): string[] => [...prev, v];

export interface PackOpts {
  kind: string;
  entry?: string[];
  sealed?: string[];
  mediaType?: string[];
  meta?: string[];
  recipient?: string[];
  signer: string[];
  out: string;
  json?: boolean;
}

/** `tibet tza …`: registration only; the work is loaded when a command runs. */
export function registerTza(program: Command): void {
  const tza = program
    .command('tza')
    .description(
      'sealed bundles (tza/1): pack, inspect, verify, open, unpack, rewrap; reads the family TBZ too',
    )
    .addHelpText(
      'after',
      `
A .tza bundle is a deterministic tar: manifest.cbor (readable metadata), the entries
(sealed ones encrypted with XChaCha20-Poly1305 under a data key wrapped with HPKE to each
recipient), and signatures.cbor (COSE_Sign1 by each signer). See docs/tza.md.

Examples:
  $ printf %s "$TOKEN" | tibet tza pack --kind secret --sealed token=- \\
      --recipient jis:acme:alice --recipient jis:acme:bob --signer jis:acme:alice -o token.tza
  $ tibet tza inspect token.tza
  $ tibet tza verify token.tza --trust jis:acme:alice
  $ tibet tza open token.tza --as jis:acme:bob --entry token --stdout`,
    );

  tza
    .command('pack')
    .description('build and sign a bundle')
    .requiredOption('--kind <kind>', 'bundle kind: secret, capsule, receipt, vault, file, …')
    .option(
      '--entry <name=path>',
      'add a readable entry from a file (- for stdin); repeatable',
      collect,
    )
    .option(
      '--sealed <name=path>',
      'add an encrypted entry from a file (- for stdin); repeatable',
      collect,
    )
    .option(
      '--media-type <name=type>',
      'media type of an entry (default application/octet-stream)',
      collect,
    )
    .option('--meta <key=value>', 'readable metadata; repeatable', collect)
    .option(
      '--recipient <id|file>',
      'who may open sealed entries (id in $TIBET_HOME or a .pub.json); repeatable',
      collect,
    )
    .requiredOption('--signer <id|file>', 'who signs (needs the private key); repeatable', collect)
    .requiredOption('-o, --out <file>', 'where to write the bundle')
    .option('--json', 'print a JSON summary')
    .addHelpText(
      'after',
      `
Secrets are read from files or stdin, never from arguments.

Examples:
  $ printf %s "$TOKEN" | tibet tza pack --kind secret --sealed token=- \\
      --recipient jis:acme:bob --signer jis:acme:alice -o token.tza
  $ tibet tza pack --kind file --entry notes.md=./notes.md --media-type notes.md=text/markdown \\
      --meta project=acme-lib --signer jis:acme:alice -o notes.tza

Exit codes: 0 written, 1 refused, 2 usage error.`,
    )
    .action(async (o: PackOpts) => (await import('./tza-actions.js')).pack(o));

  tza
    .command('inspect')
    .description('show metadata, recipients, entries and signers (never decrypts)')
    .argument('<file>', 'a .tza (tza/1 or TBZ) bundle')
    .option('--json', 'print JSON')
    .addHelpText(
      'after',
      `
Examples:
  $ tibet tza inspect token.tza
  $ tibet tza inspect drop.tbz --json

Exit codes: 0 shown (even if a signature fails: see "valid"), 1 unreadable bundle, 2 usage error.`,
    )
    .action(async (file: string, o: { json?: boolean }) =>
      (await import('./tza-actions.js')).inspect(file, o),
    );

  tza
    .command('verify')
    .description('check structure, digests and every signature; with --trust, pin the signers')
    .argument('<file>', 'a .tza (tza/1 or TBZ) bundle')
    .option(
      '--trust <id|file>',
      'a signer key to trust (id in $TIBET_HOME or a .pub.json); repeatable',
      collect,
    )
    .option('--require-signer <id>', 'this actor must have signed; repeatable', collect)
    .option('--json', 'print the report as JSON')
    .addHelpText(
      'after',
      `
Without --trust the signatures are checked against the keys the bundle names (integrity,
not who signed).

Examples:
  $ tibet tza verify token.tza --trust jis:acme:alice
  $ tibet tza verify token.tza --trust alice.pub.json --require-signer jis:acme:alice --json

Exit codes: 0 valid, 1 invalid (the reason and its code are printed), 2 usage error.`,
    )
    .action(
      async (file: string, o: { trust?: string[]; requireSigner?: string[]; json?: boolean }) =>
        (await import('./tza-actions.js')).verify(file, o),
    );

  tza
    .command('open')
    .description('verify, then decrypt entries as a recipient')
    .argument('<file>', 'a .tza bundle')
    .requiredOption('--as <id|file>', 'the recipient identity (needs its private key)')
    .option('--entry <name>', 'only this entry')
    .option('--stdout', 'write the (single) entry to stdout')
    .option('--out-dir <dir>', 'write entries under this folder (never overwrites)')
    .option('--trust <id|file>', 'require a trusted signer; repeatable', collect)
    .option('--json', 'with --out-dir: print what was written as JSON (never the content)')
    .addHelpText(
      'after',
      `
Exactly one of --stdout (with --entry) or --out-dir; --json goes with --out-dir.

Examples:
  $ tibet tza open token.tza --as jis:acme:bob --entry token --stdout
  $ tibet tza open token.tza --as jis:acme:bob --trust jis:acme:alice --out-dir ./opened

Exit codes: 0 opened, 1 refused (invalid, untrusted, not a recipient), 2 usage error.`,
    )
    .action(
      async (
        file: string,
        o: {
          as: string;
          entry?: string;
          stdout?: boolean;
          outDir?: string;
          trust?: string[];
          json?: boolean;
        },
      ) => (await import('./tza-actions.js')).open(file, o),
    );

  tza
    .command('unpack')
    .description('verify, then write manifest.json and every entry under a folder')
    .argument('<file>', 'a .tza (tza/1 or TBZ) bundle')
    .argument('<dir>', 'target folder (created; existing files are never overwritten)')
    .option('--as <id|file>', 'decrypt sealed entries as this recipient (else they are skipped)')
    .option('--trust <id|file>', 'require a trusted signer; repeatable', collect)
    .option('--json', 'print JSON')
    .addHelpText(
      'after',
      `
Examples:
  $ tibet tza unpack notes.tza ./notes
  $ tibet tza unpack token.tza ./token --as jis:acme:bob --trust jis:acme:alice --json

Exit codes: 0 unpacked, 1 refused (invalid bundle, unsafe path, file exists), 2 usage error.`,
    )
    .action(
      async (file: string, dir: string, o: { as?: string; trust?: string[]; json?: boolean }) =>
        (await import('./tza-actions.js')).unpack(file, dir, o),
    );

  tza
    .command('rewrap')
    .description('add or remove recipients without re-encrypting the payload (or --rekey)')
    .argument('<file>', 'a .tza bundle')
    .requiredOption('--as <id|file>', 'a current recipient (to unwrap the data key)')
    .option('--add <id|file>', 'recipient to add; repeatable', collect)
    .option('--remove <id>', 'recipient to remove; repeatable', collect)
    .option(
      '--rekey',
      're-encrypt under a fresh data key (what a removed recipient kept is then useless)',
    )
    .requiredOption('--signer <id|file>', 'who signs the new bundle; repeatable', collect)
    .requiredOption('-o, --out <file>', 'where to write the new bundle')
    .option('--trust <id|file>', 'require a trusted signer on the input; repeatable', collect)
    .option('--json', 'print the new bundle and its recipients as JSON')
    .addHelpText(
      'after',
      `
Without --rekey the payload keeps its data key, so a removed recipient who kept that key
could still decrypt the new bundle; --rekey seals it again under a fresh one.

Examples:
  $ tibet tza rewrap token.tza --as jis:acme:alice --add jis:acme:carol \\
      --signer jis:acme:alice -o token-v2.tza
  $ tibet tza rewrap token.tza --as jis:acme:alice --remove jis:acme:bob --rekey \\
      --signer jis:acme:alice -o token-v2.tza

Exit codes: 0 written, 1 refused, 2 usage error.`,
    )
    .action(
      async (
        file: string,
        o: {
          as: string;
          add?: string[];
          remove?: string[];
          rekey?: boolean;
          signer: string[];
          out: string;
          trust?: string[];
          json?: boolean;
        },
      ) => (await import('./tza-actions.js')).rewrap(file, o),
    );
}
