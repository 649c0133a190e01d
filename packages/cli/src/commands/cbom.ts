import type { Command } from 'commander';

const collect = (v: string, prev: string[] = []): string[] => [...prev, v];

export const CBOM_FORMATS = ['text', 'md', 'html', 'json', 'cyclonedx'] as const;
export const CBOM_VIEWS = ['inspect', 'timeline', 'authority', 'verify'] as const;

/** Options of every `tibet cbom` command that walks. */
export interface CbomOpts {
  home?: string;
  log?: string;
  keychain?: string;
  bundle?: string[];
  kind?: string;
  format?: string;
  json?: boolean;
  spec?: string;
  out?: string;
  store?: boolean;
}

export interface CbomReportOpts extends CbomOpts {
  from?: string;
  to?: string;
  verify?: string;
  logKey?: string;
}

function walking(c: Command): Command {
  return c
    .argument(
      '[subject]',
      'a secret id, an action id (act_…), a bundle or capsule file, or "home" (default: home)',
    )
    .option('--home <dir>', 'the TIBET home (default $TIBET_HOME)')
    .option('--log <dir>', 'the audit log folder (default <home>/log)')
    .option('--keychain <dir>', 'the keychain folder (default <home>/keychain)')
    .option('--bundle <file>', 'a further bundle to walk across (repeatable)', collect)
    .option('--kind <kind>', 'what the subject is: secret | action | bundle | capsule | home')
    .option('--no-store', 'do not check the keychain store against the log')
    .option('--out <file>', 'write the output to a new file instead of stdout');
}

const EXAMPLES = `
Examples:
  $ tibet cbom timeline sec_pypi_001
  $ tibet cbom timeline sec_pypi_001 --bundle capsule.tza --bundle receipt.tza --format md
  $ tibet cbom timeline act_1f0c2b7a9d3e4f50 --format html --out timeline.html
  $ tibet cbom verify sec_pypi_001 --json
  $ tibet cbom export home --spec 1.7 --out cbom.cdx.json
  $ tibet cbom report sec_sign_001 --from 2026-01-01T00:00:00Z --to 2026-04-01T00:00:00Z --out ./q1
  $ tibet cbom report --verify ./q1 --log-key 'jis:acme:auditlog/log+1a2b3c4d+AZ…'
Also installed as \`tcbom\` (\`tcbom timeline …\` = \`tibet cbom timeline …\`).`;

/** Per-command examples (the group page shows them all, above). */
const VIEW_EXAMPLES: Record<(typeof CBOM_VIEWS)[number], string> = {
  inspect: `
Examples:
  $ tibet cbom inspect
  $ tibet cbom inspect sec_pypi_001 --json
  $ tibet cbom inspect publish.tza --bundle receipt.tza`,
  timeline: `
Examples:
  $ tibet cbom timeline sec_pypi_001
  $ tibet cbom timeline sec_pypi_001 --bundle capsule.tza --bundle receipt.tza --format md
  $ tibet cbom timeline act_1f0c2b7a9d3e4f50 --format html --out timeline.html`,
  authority: `
Examples:
  $ tibet cbom authority sec_pypi_001
  $ tibet cbom authority sec_pypi_001 --format md --out custody.md`,
  verify: `
Examples:
  $ tibet cbom verify sec_pypi_001 --json
  $ tibet cbom verify home --home /srv/tibet --log /srv/tibet/log
  $ tibet cbom verify sec_pypi_001 --no-store    # the log and bundles only, not the store`,
};

const VIEW_NOTE = `
Every signature, prev and parent link, log inclusion and checkpoint is checked on the way;
a broken or missing link is shown (and listed under problems), never skipped.`;

const EXIT_VIEW = `
Exit codes: 0 shown (for verify: no check failed), 1 verify found a failing check or the
subject is nowhere, 2 usage error.`;

/** `tibet cbom …` (also the `tcbom` command): registration only. */
export function registerCbom(program: Command): void {
  const cbom = program
    .command('cbom')
    .description(
      'walk a secret, action, bundle or home back through the log and bundles; render it, export CBOM',
    )
    .addHelpText(
      'after',
      `
Two meanings of CBOM: the family's Continuity BOM (inspect, timeline, authority, verify:
how a secret got here and what happened to it) and the CycloneDX 1.6/1.7 Cryptography BOM
(export). Formats: text (terminal; colour only on a TTY without NO_COLOR), md, html (one
self-verifying page), json (the Continuity BOM), cyclonedx.
${EXAMPLES}`,
    );
  for (const view of ['inspect', 'timeline', 'authority', 'verify'] as const) {
    walking(
      cbom.command(view).description(
        {
          inspect: 'what the subject is: secrets, versions, custody, bundles, log',
          timeline: 'the causal timeline: actors, events, causal arrows, exposures, rotations',
          authority: 'custody and authority: who holds which role, every transition',
          verify: "the family's verify checks, each pass | warn | fail",
        }[view],
      ),
    )
      .option('--format <format>', 'text | md | html | json | cyclonedx (default text)')
      .option('--spec <version>', 'with cyclonedx: 1.6 | 1.7 (default 1.6)')
      .option('--json', 'the Continuity BOM as JSON on stdout (= --format json)')
      .addHelpText('after', `${VIEW_NOTE}\n${VIEW_EXAMPLES[view]}\n${EXIT_VIEW}`)
      .action(async (subject: string | undefined, o: CbomOpts) =>
        (await import('./cbom-actions.js')).view(view, subject, o),
      );
  }
  walking(
    cbom
      .command('export')
      .description('the CycloneDX 1.6 / 1.7 CBOM (default) or the Continuity BOM JSON'),
  )
    .option('--format <format>', 'cyclonedx | json (default cyclonedx)')
    .option('--spec <version>', '1.6 | 1.7 (default 1.6)')
    .option('--json', 'the Continuity BOM as JSON (= --format json)')
    .addHelpText(
      'after',
      `
One cryptographic-asset component per secret version (NIST state, dates, securedBy),
rotation lineage in pedigree, custody and exposure in tibet: properties, the timeline in
annotations, who used what in dependencies. Never a secret value.

Examples:
  $ tibet cbom export home --spec 1.7 --out cbom.cdx.json
  $ tibet cbom export sec_pypi_001 --bundle capsule.tza --bundle receipt.tza > sec_pypi_001.cdx.json
  $ tibet cbom export sec_pypi_001 --format json --out sec_pypi_001.cbom.json

Exit codes: 0 written, 1 the subject is nowhere, 2 usage error.`,
    )
    .action(async (subject: string | undefined, o: CbomOpts) =>
      (await import('./cbom-actions.js')).exportBom(subject, o),
    );
  cbom
    .command('report')
    .description(
      '"who could have signed (or used it), who did" for a key or credential and a window, as a folder',
    )
    .argument('[secret-id]', 'the signing key or credential (e.g. a publish token)')
    .option('--from <rfc3339>', 'start of the window')
    .option('--to <rfc3339>', 'end of the window')
    .option('--out <dir>', 'the folder to create (must not exist or be empty)')
    .option('--verify <dir>', 'check a report folder offline instead')
    .option('--log-key <vkey>', "with --verify: the log's C2SP verifier key to pin")
    .option('--home <dir>', 'the TIBET home (default $TIBET_HOME)')
    .option('--log <dir>', 'the audit log folder (default <home>/log)')
    .option('--json', 'print the result as JSON on stdout')
    .addHelpText(
      'after',
      `
The folder holds report.json and report.md (custody and permission holders, signatures,
reveals, refusals), checkpoint.note, events/ (the exact log lines of the key's whole line
up to the window's end), proofs/ (a C2SP tlog-proof per line) and keys/ (the log key and
the actors' public identities): anyone can check it offline with nothing but public keys.
For a signing key the question is who could have signed and who did; for any other
credential, who could have used it and who did (the gateway's proxied uses, e.g. publishes).

Examples:
  $ tibet cbom report sec_sign_001 --from 2026-01-01T00:00:00Z --to 2026-04-01T00:00:00Z --out ./q1
  $ tibet cbom report sec_pypi_001 --from 2026-11-28T00:00:00Z --to 2026-11-29T00:00:00Z \\
      --home /srv/tibet --out ./pypi-incident --json
  $ tibet cbom report --verify ./q1 --log-key 'jis:acme:auditlog/log+1a2b3c4d+AZ…'

Exit codes: 0 written / verified and the log key pinned, 1 refused (not
provable yet, folder not empty) or verification failed or not pinned, 2 usage error.`,
    )
    .action(async (id: string | undefined, o: CbomReportOpts) =>
      (await import('./cbom-actions.js')).report(id, o),
    );
}
