import { readFile } from 'node:fs/promises';
import { UserError } from './errors.js';

/**
 * A passphrase, never from a command-line argument: `TIBET_PASSPHRASE`, else the first
 * line of the file named by `TIBET_PASSPHRASE_FILE`, else a prompt on the terminal
 * (echo off). Fails with exit 2 when none is available (no TTY and no variable).
 */
export async function getPassphrase(
  prompt: string,
  o: { confirm?: boolean } = {},
): Promise<string> {
  const env = process.env['TIBET_PASSPHRASE'];
  if (env !== undefined && env !== '') return env;
  const file = process.env['TIBET_PASSPHRASE_FILE'];
  if (file) {
    const text = await readFile(file, 'utf8').catch((e: NodeJS.ErrnoException) => {
      throw new UserError(`cannot read TIBET_PASSPHRASE_FILE: ${e.code ?? String(e)}`, {
        exitCode: 2,
        code: 'USAGE',
      });
    });
    const line = text.split(/\r?\n/)[0] ?? '';
    if (line) return line;
  }
  if (!process.stdin.isTTY || !process.stderr.isTTY) {
    throw new UserError('a passphrase is needed', {
      exitCode: 2,
      code: 'PASSPHRASE_REQUIRED',
      hint: 'set TIBET_PASSPHRASE or TIBET_PASSPHRASE_FILE, or run in a terminal to be prompted',
    });
  }
  const first = await promptHidden(prompt);
  if (o.confirm) {
    const again = await promptHidden('Repeat passphrase: ');
    if (again !== first)
      throw new UserError('passphrases do not match', { code: 'PASSPHRASE_MISMATCH' });
  }
  if (!first)
    throw new UserError('an empty passphrase is not allowed', { code: 'PASSPHRASE_REQUIRED' });
  return first;
}

function promptHidden(prompt: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const stdin = process.stdin;
    process.stderr.write(prompt);
    stdin.setRawMode(true);
    stdin.resume();
    let s = '';
    const done = (err?: Error): void => {
      stdin.setRawMode(false);
      stdin.pause();
      stdin.off('data', onData);
      process.stderr.write('\n');
      if (err) reject(err);
      else resolve(s);
    };
    const onData = (buf: Buffer): void => {
      for (const ch of buf.toString('utf8')) {
        if (ch === '\r' || ch === '\n') return done();
        if (ch === '\u0003') return done(new UserError('cancelled', { code: 'CANCELLED' }));
        if (ch === '\u007f' || ch === '\b') s = s.slice(0, -1);
        else s += ch;
      }
    };
    stdin.on('data', onData);
  });
}
