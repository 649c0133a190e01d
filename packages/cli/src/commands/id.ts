import type { Command } from 'commander';
import { ACTOR_CLASSES } from '../constants.js';

/** `tibet id …`: registration only; the work is loaded when a command runs. */
export function registerId(program: Command): void {
  const id = program
    .command('id')
    .description('actor identities: an Ed25519 signing key and an X25519 encryption key each')
    .addHelpText(
      'after',
      `
Private keys are stored encrypted under a passphrase (scrypt + XChaCha20-Poly1305) in
$TIBET_HOME/identities/<org>/<name>.key.json. The passphrase comes from TIBET_PASSPHRASE,
TIBET_PASSPHRASE_FILE, or a prompt; never from an argument.

Examples:
  $ tibet id create jis:acme:alice --class human
  $ tibet id list
  $ tibet id export jis:acme:alice > alice.pub.json
  $ tibet id import alice.pub.json          # on another machine: trust alice's public keys`,
    );

  id.command('create')
    .description('make a new identity and store its encrypted private keys')
    .argument('<id>', 'actor id, jis:<org>:<name>')
    .requiredOption('--class <class>', `actor class: ${ACTOR_CLASSES.join(', ')}`)
    .option('--json', 'print the public identity as JSON')
    .addHelpText(
      'after',
      `
Asks for a new passphrase (twice) unless TIBET_PASSPHRASE or TIBET_PASSPHRASE_FILE is set.

Examples:
  $ tibet id create jis:acme:alice --class human
  $ tibet id create jis:acme:release-bot --class machine --json
  $ TIBET_PASSPHRASE_FILE=/run/secrets/log.pass tibet id create jis:acme:auditlog --class system

Exit codes: 0 created, 1 refused, 2 usage error (bad id/class, already exists).`,
    )
    .action(async (idArg: string, o: { class: string; json?: boolean }) =>
      (await import('./id-actions.js')).create(idArg, o),
    );

  id.command('list')
    .description('list the identities in $TIBET_HOME')
    .option('--json', 'print JSON')
    .addHelpText(
      'after',
      `
Lists your own identities (with private keys) and the ones imported with \`tibet id import\`.

Examples:
  $ tibet id list
  $ tibet id list --json

Exit codes: 0 listed (also when there are none), 2 usage error.`,
    )
    .action(async (o: { json?: boolean }) => (await import('./id-actions.js')).list(o));

  id.command('show')
    .description('show one identity (public part only)')
    .argument('<id>', 'actor id or path to a .pub.json / .key.json file')
    .option('--json', 'print JSON')
    .addHelpText(
      'after',
      `
Never prints or decrypts a private key (no passphrase needed).

Examples:
  $ tibet id show jis:acme:alice
  $ tibet id show ./bob.pub.json --json

Exit codes: 0 shown, 1 unreadable or invalid identity file, 2 usage error (unknown id).`,
    )
    .action(async (ref: string, o: { json?: boolean }) =>
      (await import('./id-actions.js')).show(ref, o),
    );

  id.command('export')
    .description('print the self-signed public identity (to give to others)')
    .argument('<id>', 'actor id or path to a .pub.json / .key.json file')
    .option('-o, --out <file>', 'write to a file instead of stdout')
    .option(
      '--json',
      'with --out: print what was written as JSON (without --out the output is JSON)',
    )
    .addHelpText(
      'after',
      `
Only the public keys and the self-signature; hand the file to others for \`tibet id import\`.

Examples:
  $ tibet id export jis:acme:alice > alice.pub.json
  $ tibet id export jis:acme:release-bot -o release-bot.pub.json

Exit codes: 0 exported, 1 unreadable or invalid identity file, 2 usage error (unknown id).`,
    )
    .action(async (ref: string, o: { out?: string; json?: boolean }) =>
      (await import('./id-actions.js')).exportPublic(ref, o),
    );

  id.command('import')
    .description("trust another actor's public identity (checks its self-signature)")
    .argument('<file>', 'a .pub.json from `tibet id export` (- for stdin)')
    .option('--json', 'print the imported identity as JSON')
    .addHelpText(
      'after',
      `
The file is checked (format, id, class, key lengths, self-signature) and stored as
$TIBET_HOME/identities/<org>/<name>.pub.json. Importing the same identity again is a no-op;
a different key for an id that is already known is refused (exit 1).

Examples:
  $ tibet id import alice.pub.json
  $ ssh build-host tibet id export jis:acme:release-bot | tibet id import - --json

Exit codes: 0 imported, 1 refused (invalid, or a different key for a known id), 2 usage error.`,
    )
    .action(async (file: string, o: { json?: boolean }) =>
      (await import('./id-actions.js')).importPublic(file, o),
    );
}
