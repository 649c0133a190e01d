import type { Command } from 'commander';

interface Node {
  name: string;
  options: string[];
  children: Node[];
}

function tree(c: Command): Node {
  return {
    name: c.name(),
    options: c.options
      .map((o) => o.long ?? o.short ?? '')
      .filter(Boolean)
      .concat(['--help']),
    children: c.commands.filter((s) => !(s as unknown as { _hidden?: boolean })._hidden).map(tree),
  };
}

/** A bash completion script generated from the command tree (static: no process per TAB). */
export function bashScript(root: Command): string {
  const t = tree(root);
  const cases: string[] = [];
  const walk = (n: Node, path: string[]): void => {
    const key = path.join(' ');
    const words = [...n.children.map((c) => c.name), ...n.options].join(' ');
    cases.push(`    "${key}") words="${words}" ;;`);
    for (const c of n.children) walk(c, [...path, c.name]);
  };
  walk(t, []);
  return `# bash completion for tibet — add to ~/.bashrc:  eval "$(tibet completion bash)"
_tibet_complete() {
  local cur path="" w i
  cur="\${COMP_WORDS[COMP_CWORD]}"
  # the aliases start one level down: tkc = tibet keychain, tcbom = tibet cbom
  case "\${COMP_WORDS[0]##*/}" in
    tkc) path="keychain" ;;
    tcbom) path="cbom" ;;
  esac
  for ((i = 1; i < COMP_CWORD; i++)); do
    w="\${COMP_WORDS[i]}"
    [[ "$w" == -* ]] && continue
    case "\${path:+$path }$w" in
${cases
  .map((c) => c.replace(/^ {4}"([^"]*)".*$/, '      "$1") path="$1" ;;'))
  .filter((l) => !l.includes('"")'))
  .join('\n')}
    esac
  done
  local words=""
  case "$path" in
${cases.join('\n')}
  esac
  COMPREPLY=($(compgen -W "$words" -- "$cur"))
}
complete -o default -F _tibet_complete tibet
complete -o default -F _tibet_complete tkc 2>/dev/null || true
complete -o default -F _tibet_complete tcbom 2>/dev/null || true
`;
}

/** A zsh completion script (uses bash completion through bashcompinit). */
export function zshScript(root: Command): string {
  return `# zsh completion for tibet — add to ~/.zshrc:  eval "$(tibet completion zsh)"
autoload -U +X bashcompinit && bashcompinit
${bashScript(root)}`;
}

export function registerCompletion(program: Command): void {
  program
    .command('completion')
    .description('print a shell completion script (bash or zsh)')
    .argument('<shell>', 'bash or zsh')
    .addHelpText(
      'after',
      `
Covers tkc and tcbom too. The script is static: regenerate it after upgrading tibet.

Examples:
  $ eval "$(tibet completion bash)"   # in ~/.bashrc
  $ eval "$(tibet completion zsh)"    # in ~/.zshrc
  $ tibet completion bash | sudo tee /etc/bash_completion.d/tibet >/dev/null

Exit codes: 0 printed, 2 unknown shell.`,
    )
    .action((shell: string) => {
      if (shell !== 'bash' && shell !== 'zsh') {
        process.stderr.write(`error: unknown shell "${shell}" (bash or zsh) [USAGE]\n`);
        process.exitCode = 2;
        return;
      }
      process.stdout.write(shell === 'bash' ? bashScript(program) : zshScript(program));
    });
}
