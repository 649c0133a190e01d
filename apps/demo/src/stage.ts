/**
 * The stage: narration (colour only on a TTY, never with NO_COLOR), the `tibet` commands the
 * presenter "types" (each a real child process), the long-running daemons, and a transcript of
 * everything shown, written to `demo-out/transcript.txt`.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { appendFileSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export interface StageOptions {
  /** The outputs folder; every command runs there, so paths on screen stay short. */
  out: string;
  /** Pause before each act until the presenter presses Enter. */
  step: boolean;
  /** No pause between acts (on a terminal there is a short one, for an audience). */
  fast: boolean;
  env: NodeJS.ProcessEnv;
  /** Called for each act heading and each narrated line (the live view shows them). */
  onNarrate?: (kind: 'act' | 'say', text: string) => void;
}

export interface RunResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

export class DemoFailure extends Error {
  override readonly name = 'DemoFailure';
}

/** The built `tibet` entry point of @tibet/cli. */
export function tibetBin(): string {
  const pkg = fileURLToPath(import.meta.resolve('@tibet/cli/package.json'));
  return join(dirname(pkg), 'bin', 'tibet.js');
}

export class Stage {
  readonly o: StageOptions;
  readonly transcript: string;
  readonly #tty: boolean;
  readonly #daemons: { name: string; child: ChildProcess }[] = [];
  #act = 0;
  /** The `tibet` entry point every command runs. */
  readonly bin = tibetBin();

  constructor(o: StageOptions) {
    this.o = o;
    mkdirSync(o.out, { recursive: true });
    this.transcript = join(o.out, 'transcript.txt');
    this.#tty = Boolean(process.stdout.isTTY) && !('NO_COLOR' in process.env);
  }

  c(code: string, s: string): string {
    return this.#tty ? `\u001b[${code}m${s}\u001b[0m` : s;
  }

  #write(s: string): void {
    process.stdout.write(s);
    // the transcript is plain text: colour codes (ESC [ … m) removed
    // eslint-disable-next-line no-control-regex
    appendFileSync(this.transcript, s.replace(/\u001b\[[0-9;]*m/g, ''));
  }

  act(title: string, text: string): Promise<void> {
    return this.#heading(title, text, true);
  }

  async #heading(title: string, text: string, numbered: boolean): Promise<void> {
    if (numbered) this.#act += 1;
    const head = numbered ? `Act ${this.#act}. ${title}` : title;
    if (this.o.step && process.stdin.isTTY) {
      process.stdout.write(this.c('2', `\n   (Enter: ${head}) `));
      await new Promise<void>((resolve) => {
        const rl = createInterface({ input: process.stdin });
        rl.once('line', () => {
          rl.close();
          resolve();
        });
      });
    }
    // on a terminal, a beat between acts so that an audience can read; none with --fast
    if (!this.o.fast && !this.o.step && process.stdout.isTTY)
      await new Promise((r) => setTimeout(r, 1200));
    this.#write(`\n${this.c('1;36', head)}\n`);
    this.#write(`${this.c('36', indent(text))}\n`);
    this.o.onNarrate?.('act', head);
  }

  /** An unnumbered scene (the prologue, the epilogue). */
  scene(title: string, text: string): Promise<void> {
    return this.#heading(title, text, false);
  }

  say(text: string): void {
    this.#write(`${indent(text)}\n`);
    this.o.onNarrate?.('say', text);
  }

  ok(text: string): void {
    this.#write(`   ${this.c('32', '✓')} ${text}\n`);
  }

  denied(text: string): void {
    this.#write(`   ${this.c('31', '✗')} ${text}\n`);
  }

  /**
   * Run `tibet …` as its own process. `expect` is the exit code the scenario needs (a denial
   * is exit 1); anything else stops the demo with the command's own error text.
   */
  tibet(
    args: string[],
    o: {
      input?: string;
      expect?: number;
      quiet?: boolean;
      env?: NodeJS.ProcessEnv;
      who?: string;
    } = {},
  ): RunResult {
    const shownArgs = args.map((a) => (/\s/.test(a) ? JSON.stringify(a) : a)).join(' ');
    this.#write(this.c('2', `   ${o.who ? `[${o.who}] ` : ''}$ tibet ${shownArgs}\n`));
    const r = spawnSync(process.execPath, [this.bin, ...args], {
      env: { ...this.o.env, ...o.env },
      cwd: this.o.out,
      input: o.input ?? '',
      encoding: 'utf8',
      timeout: 60_000,
    });
    const shown = (r.stdout + r.stderr).trimEnd();
    if (!o.quiet && shown) this.#write(indent(shown, '     ') + '\n');
    const expect = o.expect ?? 0;
    if (r.status !== expect) {
      throw new DemoFailure(
        `"tibet ${shownArgs}" exited ${String(r.status)}, expected ${expect}\n${r.stdout}${r.stderr}`,
      );
    }
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  }

  /**
   * Start a long-running process and wait until `ready` matches a line of its stdout or
   * stderr. Stopped (SIGTERM, then SIGKILL) by {@link stopAll}.
   */
  async daemon(
    name: string,
    args: string[],
    ready: RegExp,
    o: { env?: NodeJS.ProcessEnv; stdin?: string; timeoutMs?: number } = {},
  ): Promise<{ child: ChildProcess; match: RegExpMatchArray }> {
    const child = spawn(process.execPath, args, {
      env: { ...this.o.env, ...o.env },
      cwd: this.o.out,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    this.#daemons.push({ name, child });
    child.stdin.end(o.stdin ?? '');
    const log = join(this.o.out, 'daemons', `${name}.log`);
    mkdirSync(dirname(log), { recursive: true });
    return new Promise((resolve, reject) => {
      let seen = '';
      const timer = setTimeout(
        () => reject(new DemoFailure(`${name} did not start in time:\n${seen}`)),
        o.timeoutMs ?? 20_000,
      );
      const onData = (b: Buffer): void => {
        const s = b.toString('utf8');
        appendFileSync(log, s);
        seen += s;
        const m = ready.exec(seen);
        if (m) {
          clearTimeout(timer);
          resolve({ child, match: m });
        }
      };
      child.stdout.on('data', onData);
      child.stderr.on('data', onData);
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(
          new DemoFailure(
            `${name} exited (${String(code ?? signal)}) before it was ready:\n${seen}`,
          ),
        );
      });
    });
  }

  async stopAll(): Promise<void> {
    await Promise.all(
      this.#daemons.map(
        ({ child }) =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null || child.signalCode !== null) return resolve();
            const kill = setTimeout(() => child.kill('SIGKILL'), 3000);
            child.once('exit', () => {
              clearTimeout(kill);
              resolve();
            });
            child.kill('SIGTERM');
          }),
      ),
    );
  }
}

/** Run a command synchronously (not narrated), e.g. the agent process. */
export function runNode(args: string[], env: NodeJS.ProcessEnv, input = ''): RunResult {
  const r = spawnSync(process.execPath, args, { env, input, encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

export function indent(s: string, pad = '   '): string {
  return s.replace(/^/gm, pad);
}
