// Every `--help` page, at every level, shows examples, and every example still parses: each
// `$ tibet …` (or `tkc …`, `tcbom …`) command names real commands, only options that the
// command (or a parent) has, all its required options and a fitting number of arguments.
// The command tree is the one src/main.ts runs (buildProgram), root page included.
import type { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { buildProgram } from '../src/main.js';

/** The aliases installed beside `tibet`: the command path each one stands for. */
const ALIASES: Record<string, string[]> = { tibet: [], tkc: ['keychain'], tcbom: ['cbom'] };

/** Every command below the root, depth first, without commander's implicit `help`. */
function allCommands(c: Command): Command[] {
  return c.commands.filter((s) => s.name() !== 'help').flatMap((s) => [s, ...allCommands(s)]);
}

function pathOf(c: Command): string {
  const names: string[] = [];
  for (let x: Command | null = c; x; x = x.parent) names.unshift(x.name());
  return names.join(' ');
}

/** The whole page `tibet … --help` prints, addHelpText sections included. */
function helpPage(c: Command): string {
  let text = '';
  c.configureOutput({
    writeOut: (s) => {
      text += s;
    },
    writeErr: (s) => {
      text += s;
    },
    getOutHelpWidth: () => 80,
    getErrHelpWidth: () => 80,
  });
  c.outputHelp();
  return text;
}

/** The example commands of a page: each `$ …` line with its `\` continuation lines. */
function exampleLines(page: string): string[] {
  const lines = page.split('\n');
  const found: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const m = /^\s*\$ (.*)$/.exec(lines[i]!);
    if (!m) continue;
    let cmd = m[1]!;
    while (cmd.endsWith('\\') && i + 1 < lines.length) cmd = cmd.slice(0, -1) + lines[++i]!.trim();
    found.push(cmd);
  }
  return found;
}

type Word = { text: string; quoted: boolean } | { op: string };

/** Split a shell line into words and operators (quotes, backslashes, comments). */
function shellWords(line: string): Word[] {
  const words: Word[] = [];
  let cur = '';
  let quoted = false;
  let inWord = false;
  const end = (): void => {
    if (inWord) words.push({ text: cur, quoted });
    cur = '';
    quoted = false;
    inWord = false;
  };
  for (let i = 0; i < line.length; i++) {
    const ch = line[i]!;
    if (ch === "'" || ch === '"') {
      const close = line.indexOf(ch, i + 1);
      if (close < 0) throw new Error(`unbalanced ${ch} in: ${line}`);
      cur += line.slice(i + 1, close).replace(ch === '"' ? /\\(.)/g : /$^/, '$1');
      quoted = inWord = true;
      i = close;
    } else if (ch === '\\') {
      cur += line[++i] ?? '';
      inWord = true;
    } else if (/\s/.test(ch)) end();
    else if (ch === '#' && !inWord) break;
    else if ('|&;<>'.includes(ch)) {
      end();
      const two = line.slice(i, i + 2);
      const op = ['||', '&&', '>>'].includes(two) ? two : ch;
      i += op.length - 1;
      words.push({ op });
    } else {
      cur += ch;
      inWord = true;
    }
  }
  end();
  return words;
}

interface Invocation {
  line: string;
  words: Word[];
}

/** The `tibet`/`tkc`/`tcbom` commands in one example line (also inside `$( … )`). */
function invocations(line: string): Invocation[] {
  const subs: string[] = [];
  const outer = line.replace(/\$\(([^()]*)\)/g, (_m, inner: string) => {
    subs.push(inner);
    return 'SUBSTITUTED';
  });
  const found: Invocation[] = [];
  for (const text of [outer, ...subs]) {
    let segment: Word[] = [];
    const flush = (): void => {
      while (segment.length && 'text' in segment[0]! && /^[A-Za-z_]\w*=/.test(segment[0].text))
        segment.shift(); // VAR=value before the command
      const first = segment[0];
      if (first && 'text' in first && first.text in ALIASES) found.push({ line, words: segment });
      segment = [];
    };
    const words = shellWords(text);
    for (let i = 0; i < words.length; i++) {
      const w = words[i]!;
      if ('op' in w) {
        if (w.op === '>' || w.op === '>>' || w.op === '<')
          i++; // and its file
        else flush();
      } else segment.push(w);
    }
    flush();
  }
  return found;
}

interface Resolved {
  command: Command;
  problems: string[];
}

/** Parse one invocation against the command tree, as commander would, and list what is wrong. */
function resolve(program: Command, inv: Invocation): Resolved {
  const [head, ...rest] = inv.words as { text: string; quoted: boolean }[];
  let command = program;
  for (const name of ALIASES[head!.text]!)
    command = command.commands.find((c) => c.name() === name)!;
  let i = 0;
  for (; i < rest.length; i++) {
    const next = command.commands.find(
      (c) => c.name() === rest[i]!.text || c.aliases().includes(rest[i]!.text),
    );
    if (!next) break;
    command = next;
  }
  const where = `${pathOf(command)}  ←  $ ${inv.line}`;
  const problems: string[] = [];
  if (command.commands.length > 0) {
    // a group (or the root): only `--help` may follow
    const tail = rest.slice(i).map((w) => w.text);
    if (!(tail.length === 1 && (tail[0] === '--help' || tail[0] === '-h')))
      problems.push(`names no command${tail.length ? ` (${tail[0]}?)` : ''}: ${where}`);
    return { command, problems };
  }
  const known = [];
  for (let c: Command | null = command; c; c = c.parent) known.push(...c.options);
  const positional: string[] = [];
  const given = new Set<string>();
  for (; i < rest.length; i++) {
    const w = rest[i]!;
    if (w.quoted || !/^-[-A-Za-z]/.test(w.text)) {
      positional.push(w.text);
      continue;
    }
    const [flag, inline] = w.text.split('=', 2) as [string, string | undefined];
    if (flag === '--help' || flag === '-h') return { command, problems };
    const opt = known.find((o) => o.long === flag || o.short === flag);
    if (!opt) {
      problems.push(`unknown option ${flag}: ${where}`);
      continue;
    }
    given.add(opt.attributeName());
    if (inline !== undefined) continue;
    if (opt.required) {
      if (i + 1 >= rest.length) problems.push(`${flag} needs a value: ${where}`);
      i++;
    } else if (opt.optional && i + 1 < rest.length && !rest[i + 1]!.text.startsWith('-')) i++;
  }
  for (const o of command.options)
    if (o.mandatory && !given.has(o.attributeName()))
      problems.push(`required option ${o.long ?? o.short} missing: ${where}`);
  const args = command.registeredArguments;
  const min = args.filter((a) => a.required).length;
  const max = args.some((a) => a.variadic) ? Infinity : args.length;
  if (positional.length < min || positional.length > max)
    problems.push(
      `${positional.length} argument(s) [${positional.join(' ')}], expected ${min}..${max}: ${where}`,
    );
  return { command, problems };
}

function isWithin(c: Command, ancestor: Command): boolean {
  for (let x: Command | null = c; x; x = x.parent) if (x === ancestor) return true;
  return false;
}

const program = await buildProgram();
// the root page too: `tibet --help`
const commands = [program, ...allCommands(program)];

describe('tibet --help at every level', () => {
  it('walks the tree src/main.ts runs (buildProgram)', () => {
    // sanity: the walk sees the groups and the commands the issue lists
    expect(commands.length).toBeGreaterThan(70);
    for (const p of [
      'tibet id create',
      'tibet tza rewrap',
      'tibet continuityd prove',
      'tibet keychain who-could',
      'tibet vault watch',
      'tibet gateway health',
      'tibet sam request',
      'tibet cbom export',
      'tibet completion',
    ])
      expect(commands.map(pathOf)).toContain(p);
  });

  it.each(commands.map((c) => [pathOf(c), c] as const))('%s', (_path, command) => {
    const page = helpPage(command);
    expect(page).toMatch(/^Usage: tibet /m);
    expect(page).toMatch(/^Examples:$/m);
    expect(page).toMatch(/^ {2}\$ tibet /m);
    // readable in a 100-column terminal (commander wraps its own part at 80)
    expect(page.split('\n').filter((l) => l.length > 100)).toEqual([]);
    const lines = exampleLines(page);
    const resolved = lines.flatMap((l) => invocations(l)).map((inv) => resolve(program, inv));
    expect(resolved.length).toBeGreaterThan(0);
    expect(resolved.flatMap((r) => r.problems)).toEqual([]);
    if (command.commands.length === 0) {
      // a command's page shows that very command at work (not only its neighbours)
      expect(resolved.some((r) => r.command === command)).toBe(true);
      expect(page).toMatch(/Exit codes/);
    } else {
      expect(resolved.some((r) => r.command !== command && isWithin(r.command, command))).toBe(
        true,
      );
    }
  });

  it('the example checker itself catches stale examples', () => {
    const check = (line: string): string[] =>
      invocations(line).flatMap((inv) => resolve(program, inv).problems);
    expect(check('tibet id create jis:acme:alice --class human')).toEqual([]);
    expect(check('tibet id create jis:acme:alice --klass human')[0]).toMatch(
      /unknown option --klass/,
    );
    expect(check('tibet id create jis:acme:alice')[0]).toMatch(/required option --class/);
    expect(check('tibet id crate jis:acme:alice --class human')[0]).toMatch(/names no command/);
    expect(check('tibet vault heartbeat --as jis:acme:alice')[0]).toMatch(/0 argument/);
    expect(check('tkc show sec_pypi_001 --full --json')).toEqual([]);
    expect(check('tcbom timeline sec_pypi_001 --verbose')[0]).toMatch(/unknown option --verbose/);
    expect(check('printf %s "$T" | tibet tza pack --kind secret --sealed t=- -o t.tza')).toEqual([
      'required option --signer missing: tibet tza pack  ←  $ printf %s "$T" | tibet tza pack --kind secret --sealed t=- -o t.tza',
    ]);
    expect(check('X="$(tibet id show jis:acme:alice --jsn)" echo "--not-a-flag"')[0]).toMatch(
      /unknown option --jsn/,
    );
    expect(check('tibet continuityd tail --from -50 --follow # --nope')).toEqual([]);
  });
});
