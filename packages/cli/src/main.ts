/**
 * The `tibet` command. Only this module decides the exit code; commands are registered
 * cheaply and load their implementation when they run.
 */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { EXIT, UserError } from './errors.js';

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return pkg.version;
}

function wantsJson(argv: readonly string[]): boolean {
  return argv.includes('--json');
}

function isTibetError(e: unknown): e is Error & { code: string } {
  return (
    typeof e === 'object' &&
    e !== null &&
    (e as Record<symbol, unknown>)[Symbol.for('@tibet/error')] === true
  );
}

/**
 * The whole command tree, every command registered (their work loads only when one runs).
 * `main` runs it; the help test walks it.
 */
export async function buildProgram(): Promise<Command> {
  const { Command } = await import('commander');
  const program = new Command('tibet')
    .description('TIBET vault family: causal-aware secret custody')
    .version(version(), '-V, --version')
    .showHelpAfterError('(add --help for usage)')
    .configureOutput({
      writeErr: (s) => process.stderr.write(s),
      writeOut: (s) => process.stdout.write(s),
    })
    .exitOverride()
    .addHelpText(
      'after',
      `
Environment:
  TIBET_HOME             where identities and state live (default: the user data folder)
  TIBET_PASSPHRASE       passphrase for private keys (else TIBET_PASSPHRASE_FILE or a prompt)
  TIBET_CRYPTO           crypto backend: node (default, OpenSSL) or noble (pure JS)
  NO_COLOR               no colour in output

Examples:
  $ tibet id create jis:acme:alice --class human
  $ tibet continuityd serve --as jis:acme:auditlog &
  $ tibet keychain list
  $ tibet cbom timeline sec_pypi_001

Exit codes: 0 ok · 1 refused/invalid · 2 usage error · 70 internal error (please report)`,
    );
  const { registerId } = await import('./commands/id.js');
  const { registerTza } = await import('./commands/tza.js');
  const { registerContinuityd } = await import('./commands/continuityd.js');
  const { registerKeychain } = await import('./commands/keychain.js');
  registerId(program);
  registerTza(program);
  registerContinuityd(program);
  registerKeychain(program);
  (await import('./commands/vault.js')).registerVault(program);
  (await import('./commands/sam.js')).registerSam(program);
  (await import('./commands/gateway.js')).registerGateway(program);
  (await import('./commands/cbom.js')).registerCbom(program);
  const { registerCompletion } = await import('./commands/completion.js');
  registerCompletion(program);
  return program;
}

/** Run the CLI with `argv` (as in process.argv); resolves to the exit code. */
export async function main(argv: readonly string[]): Promise<number> {
  // fast path: no module beyond this one for --version
  if (argv.length === 3 && (argv[2] === '--version' || argv[2] === '-V')) {
    process.stdout.write(version() + '\n');
    return EXIT.ok;
  }
  const { CommanderError } = await import('commander');
  const program = await buildProgram();
  for (const c of program.commands) {
    c.exitOverride();
    for (const s of c.commands) s.exitOverride();
  }
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : EXIT.ok;
  } catch (e) {
    if (e instanceof CommanderError) {
      if (
        e.code === 'commander.helpDisplayed' ||
        e.code === 'commander.version' ||
        e.code === 'commander.help'
      )
        return EXIT.ok;
      return EXIT.usage;
    }
    return report(e, wantsJson(argv));
  }
}

function report(e: unknown, json: boolean): number {
  if (UserError.is(e) || isTibetError(e)) {
    const code = (e as { code?: string }).code ?? 'ERROR';
    const exit = UserError.is(e) ? e.exitCode : EXIT.failed;
    const hint = UserError.is(e) ? e.hint : undefined;
    if (json)
      process.stdout.write(
        JSON.stringify({ error: { code, message: e.message, ...(hint ? { hint } : {}) } }) + '\n',
      );
    process.stderr.write(`error: ${e.message} [${code}]\n`);
    if (hint) process.stderr.write(`hint: ${hint}\n`);
    return exit;
  }
  const msg = e instanceof Error ? (e.stack ?? e.message) : String(e);
  process.stderr.write(
    `internal error: ${msg}\nThis is a bug in tibet; please report it with the command you ran.\n`,
  );
  return EXIT.internal;
}
