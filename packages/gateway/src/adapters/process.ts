/**
 * Process adapter (`/exec`): runs the command the capsule fixes, with the credential in one
 * environment variable, and returns its exit status and masked output.
 *
 * Who the child is. A child running as the gateway's own OS user can read everything that
 * user can: the encrypted key files under $TIBET_HOME, a TIBET_PASSPHRASE_FILE, and
 * `/proc/<gateway pid>/environ` (which keeps TIBET_PASSPHRASE after the daemon has deleted it
 * from `process.env`) — and with those, decrypt every secret. So the adapter runs a command
 * only under another user: options `uid` and `gid` (the gateway must run as root; node's
 * spawn clears the supplementary groups, then sets the gid, then the uid, and the kernel
 * clears every capability when all uids leave 0). Without a `uid`, or with the gateway's own
 * uid or gid, it refuses every exec (ADAPTER_REFUSED, verdict `sam-gateway-proxy-failed`,
 * nothing spawned) unless `allowSameUser: true` (development only). See `isolation()`.
 *
 * Constraints:
 * - `argv` (required): a JSON array of non-empty strings, e.g. `["/usr/bin/npm","publish"]`.
 *   The request cannot change it: its payload may carry only `stdin`.
 * - `env`: the variable that receives the credential (default `TIBET_SECRET`); not `PATH`,
 *   `HOME`, `LANG`, nor a dynamic-loader variable (`LD_*`, `DYLD_*`).
 * - `env_encoding`: `utf8` (default; the material must be UTF-8 without NUL), `hex` or `base64`.
 * - `cwd`: an absolute working directory (default: the adapter's `cwd` option, else a fresh
 *   private directory made for this exec). Under another user it must be reachable and
 *   readable by that user (checked on the mode bits before anything is spawned).
 *
 * Payload (the capsule's `upstream_payload` or the request's `payload`): absent/null or
 * `{ "stdin": string }`, written to the child's standard input as UTF-8.
 *
 * Each exec gets a fresh directory `<workRoot>/tibet-exec-XXXXXX` (mode 0700; owned by the
 * child's uid/gid when switching users), removed afterwards — under another user, by a
 * helper process running as that user, so that nothing the command left there (symlinks
 * included) is removed with the gateway's rights. It is the working directory unless one is
 * configured, and, under another user, the child's HOME unless the `env` option sets one.
 *
 * The child is spawned without a shell, in a new process group, with an environment of only
 * `PATH`, `HOME`, `LANG` (the gateway's values, or the adapter's `env` option) and the credential
 * variable. stdout and stderr are masked as they stream (see mask.ts) and each cut at
 * `maxOutputBytes` after masking; output beyond the limit is read and discarded. When the main
 * process exits, whatever is left of its process group is killed (the session is over; nothing
 * holding the credential outlives it). On the session signal or the adapter's time limit the
 * whole group is killed with SIGKILL and the adapter throws `ADAPTER_ABORTED`.
 *
 * A non-zero exit is a result, not an error: the agent sees `exit_code`, `signal` and the
 * masked output. JavaScript cannot wipe the environment string handed to the child.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { chown, mkdtemp, realpath, rm, stat } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { isAbsolute, join, parse, sep } from 'node:path';
import { toBase64, toHex, utf8, type JsonValue } from '@tibet/core';
import type { Capsule } from '@tibet/sam';
import {
  aborted,
  bytesText,
  constraint,
  failed,
  intOption,
  isObject,
  MaskedCollector,
  refuse,
  resolvePayload,
  textOrBase64,
} from './common.js';
import { createMasker, type Masker } from './mask.js';
import type { Adapter, AdapterInput, AdapterResult } from './types.js';

export interface ProcessAdapterOptions {
  /**
   * Run every command as this OS user id (with `gid`). Switching users needs the gateway to
   * run as root: anything else is refused at exec time. Use a dedicated user that owns
   * nothing of the gateway's.
   */
  uid?: number;
  /**
   * The command's group id; required with `uid` (the child would otherwise keep the
   * gateway's group). The child gets no supplementary groups at all (node's spawn calls
   * `setgroups(0, NULL)`; it does not call `initgroups`, so the user's own groups from
   * /etc/group are not added either).
   */
  gid?: number;
  /**
   * DEVELOPMENT ONLY. Allow the command to run as the gateway's own OS user (no `uid`, or
   * the gateway's own uid or gid). Such a command can read the gateway's key files, its
   * passphrase file and `/proc/<gateway pid>/environ`, and so decrypt every secret.
   */
  allowSameUser?: boolean;
  /** Where the per-exec private directories are made (default: the OS temp dir). */
  workRoot?: string;
  /** Time limit for the child, besides the session signal (default 60 000 ms). */
  timeoutMs?: number;
  /** Largest stdout and largest stderr returned, after masking (default 1 MiB each). */
  maxOutputBytes?: number;
  /** Largest stdin accepted (default 1 MiB). */
  maxStdinBytes?: number;
  /**
   * Working directory when the capsule has no `cwd` constraint (default: the fresh private
   * directory made for each exec).
   */
  cwd?: string;
  /**
   * The child's PATH, HOME and LANG (default: the gateway's own PATH, LANG `C.UTF-8` if
   * unset; HOME the gateway's own, or, under another user, the per-exec private directory).
   */
  env?: { PATH?: string; HOME?: string; LANG?: string };
  /** How long to wait for the output pipes to close after the group is killed (default 2000). */
  closeGraceMs?: number;
}

/**
 * Who runs `/exec` commands, as `ProcessAdapter.isolation()` sees it now:
 * - `separate-user`: another uid and gid, set by a gateway running as root;
 * - `same-user`: the gateway's own uid (or gid), allowed by `allowSameUser` (development only);
 * - `refused`: every exec is refused, for `reason` (nothing is spawned).
 */
export type ProcessIsolation =
  | { mode: 'separate-user'; uid: number; gid: number }
  | { mode: 'same-user'; uid: number | null; gid: number | null }
  | { mode: 'refused'; reason: string };

export const DEFAULT_SECRET_ENV = 'TIBET_SECRET';
/** The largest uid/gid accepted: `(uid_t) -1` means "unchanged" to setuid(2). */
const MAX_ID = 0xfffffffe;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const MAX_ARGV_CHARS = 64 * 1024;

function parseArgv(capsule: Capsule): string[] {
  const raw = constraint(capsule, 'argv');
  if (raw === undefined) throw refuse('sam-constraint-mismatch', 'the capsule has no "argv"');
  if (raw.length > MAX_ARGV_CHARS) throw refuse('sam-constraint-mismatch', '"argv" is too long');
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch {
    throw refuse('sam-constraint-mismatch', '"argv" is not a JSON array');
  }
  if (
    !Array.isArray(v) ||
    v.length === 0 ||
    !v.every((a): a is string => typeof a === 'string' && !a.includes('\u0000')) ||
    v[0] === ''
  ) {
    throw refuse('sam-constraint-mismatch', '"argv" must be a non-empty array of strings');
  }
  return v;
}

function envName(capsule: Capsule): string {
  const name = constraint(capsule, 'env') ?? DEFAULT_SECRET_ENV;
  if (!ENV_NAME.test(name) || ['PATH', 'HOME', 'LANG'].includes(name) || /^(LD|DYLD)_/.test(name)) {
    throw refuse('sam-constraint-mismatch', `"env" names an unusable variable`);
  }
  return name;
}

function envValue(capsule: Capsule, secret: Uint8Array): string {
  const enc = constraint(capsule, 'env_encoding') ?? 'utf8';
  switch (enc) {
    case 'hex':
      return toHex(secret);
    case 'base64':
      return toBase64(secret);
    case 'utf8': {
      let s: string;
      try {
        s = new TextDecoder('utf-8', { fatal: true }).decode(secret);
      } catch {
        throw refuse('sam-secret-unavailable', 'the secret is not UTF-8; set "env_encoding"');
      }
      if (s.includes('\u0000')) {
        throw refuse('sam-secret-unavailable', 'the secret contains NUL; set "env_encoding"');
      }
      return s;
    }
    default:
      throw refuse('sam-constraint-mismatch', '"env_encoding" must be utf8, hex or base64');
  }
}

function parseStdin(v: JsonValue | undefined, max: number): Uint8Array | null {
  if (v === undefined || v === null) return null;
  if (!isObject(v)) throw refuse('sam-constraint-mismatch', 'the /exec payload must be {stdin}');
  for (const k of Object.keys(v)) {
    if (k !== 'stdin') {
      throw refuse(
        'sam-constraint-mismatch',
        k === 'argv' || k === 'env' || k === 'cwd'
          ? `the request may not change "${k}"; the capsule fixes it`
          : `the /exec payload has an unknown key "${k}"`,
      );
    }
  }
  const s = v['stdin'];
  if (typeof s !== 'string') throw refuse('sam-constraint-mismatch', '"stdin" must be a string');
  const b = utf8(s);
  if (b.length > max) throw refuse('sam-constraint-mismatch', '"stdin" is larger than allowed');
  return b;
}

function errCode(e: unknown): string {
  const c = (e as { code?: unknown } | null)?.code;
  return typeof c === 'string' ? c : 'error';
}

function killGroup(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // ESRCH: the group is already gone
  }
}

function idOption(v: number | undefined, label: string): number | undefined {
  if (v === undefined) return undefined;
  if (!Number.isSafeInteger(v) || v < 0 || v > MAX_ID) {
    throw new RangeError(`"${label}" expected an integer 0..${MAX_ID}`);
  }
  return v;
}

/** The rwx bits (0..7) that `uid`/`gid`, with no supplementary groups, get on a file. */
function bitsFor(st: { uid: number; gid: number; mode: number }, uid: number, gid: number) {
  if (st.uid === uid) return (st.mode >> 6) & 7;
  if (st.gid === gid) return (st.mode >> 3) & 7;
  return st.mode & 7;
}

/**
 * Why `uid`/`gid` could not work in `dir` (every ancestor searchable, the directory itself
 * readable and searchable), judged on the mode bits along its real path; undefined when it
 * can. ACLs and security modules are not consulted: this is an early, readable refusal
 * before anything is spawned, not the control (the kernel is).
 */
async function unusableBy(dir: string, uid: number, gid: number): Promise<string | undefined> {
  let real: string;
  try {
    real = await realpath(dir);
  } catch {
    return `the working directory ${dir} does not exist`;
  }
  const root = parse(real).root;
  const parts = real.slice(root.length).split(sep).filter(Boolean);
  let p = root;
  for (let k = 0; k <= parts.length; k++) {
    if (k > 0) p = join(p, parts[k - 1]!);
    const st = await stat(p).catch(() => undefined);
    if (!st?.isDirectory()) return `the working directory ${dir} is not a directory`;
    const last = k === parts.length;
    const need = last ? 5 : 1;
    if ((bitsFor(st, uid, gid) & need) !== need) {
      return `uid ${uid} cannot ${last ? 'read' : 'reach'} the working directory ${dir}`;
    }
  }
  return undefined;
}

/**
 * Removes a per-exec directory as the child's user (the tree is that user's; a helper with
 * only its rights cannot be led by a planted symlink to remove anything else). Directories
 * the command made unreadable are opened up first; symlinks are never followed.
 */
const CLEAN = `const fs = require('node:fs'), path = require('node:path');
const open = (d) => { try { fs.chmodSync(d, 0o700);
  for (const e of fs.readdirSync(d, { withFileTypes: true }))
    if (e.isDirectory()) open(path.join(d, e.name)); } catch {} };
open(process.argv[1]); fs.rmSync(process.argv[1], { recursive: true, force: true });`;

function removeAs(dir: string, uid: number, gid: number): Promise<void> {
  return new Promise<void>((resolve) => {
    try {
      const c = spawn(process.execPath, ['-e', CLEAN, dir], {
        uid,
        gid,
        env: {},
        cwd: '/',
        stdio: 'ignore',
        timeout: 30_000,
        killSignal: 'SIGKILL',
      });
      c.on('error', () => resolve());
      c.on('close', () => resolve());
    } catch {
      resolve(); // best effort: the directory is private to the child's user
    }
  });
}

interface Outcome {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: Uint8Array;
  stderr: Uint8Array;
  stdoutTruncated: boolean;
  stderrTruncated: boolean;
}

export class ProcessAdapter implements Adapter {
  readonly name = 'process' as const;
  readonly #timeoutMs: number;
  readonly #maxOutput: number;
  readonly #maxStdin: number;
  readonly #closeGraceMs: number;
  readonly #cwd: string | undefined;
  readonly #workRoot: string;
  readonly #uid: number | undefined;
  readonly #gid: number | undefined;
  readonly #allowSameUser: boolean;
  readonly #env: { PATH: string; HOME: string | undefined; LANG: string };

  constructor(o: ProcessAdapterOptions = {}) {
    this.#timeoutMs = intOption(o.timeoutMs, 'timeoutMs', 60_000);
    this.#maxOutput = intOption(o.maxOutputBytes, 'maxOutputBytes', 1 << 20);
    this.#maxStdin = intOption(o.maxStdinBytes, 'maxStdinBytes', 1 << 20);
    this.#closeGraceMs = intOption(o.closeGraceMs, 'closeGraceMs', 2000);
    this.#uid = idOption(o.uid, 'uid');
    this.#gid = idOption(o.gid, 'gid');
    if ((this.#uid === undefined) !== (this.#gid === undefined)) {
      throw new TypeError('"uid" and "gid" must be given together');
    }
    if (o.allowSameUser !== undefined && typeof o.allowSameUser !== 'boolean') {
      throw new TypeError('"allowSameUser" expected a boolean');
    }
    this.#allowSameUser = o.allowSameUser === true;
    if (o.cwd !== undefined && !isAbsolute(o.cwd)) {
      throw new TypeError('"cwd" expected an absolute path');
    }
    if (o.workRoot !== undefined && !isAbsolute(o.workRoot)) {
      throw new TypeError('"workRoot" expected an absolute path');
    }
    this.#cwd = o.cwd;
    this.#workRoot = o.workRoot ?? tmpdir();
    this.#env = {
      PATH: o.env?.PATH ?? process.env['PATH'] ?? '/usr/local/bin:/usr/bin:/bin',
      HOME: o.env?.HOME,
      LANG: o.env?.LANG ?? process.env['LANG'] ?? 'C.UTF-8',
    };
  }

  /**
   * Who would run a command now. Refused (every exec): no `uid` without `allowSameUser`; the
   * gateway's own uid or gid without `allowSameUser`; another uid while the gateway is not
   * root (it could not switch; and a non-root process holding CAP_SETUID would pass ambient
   * capabilities on to the child); a uid on a system without POSIX user ids.
   */
  isolation(): ProcessIsolation {
    const own = typeof process.getuid === 'function' ? process.getuid() : undefined;
    const ownGid = typeof process.getgid === 'function' ? process.getgid() : undefined;
    const uid = this.#uid;
    const gid = this.#gid;
    if (uid === undefined || gid === undefined) {
      if (this.#allowSameUser) return { mode: 'same-user', uid: null, gid: null };
      return {
        mode: 'refused',
        reason:
          '/exec is not configured with another user (uid/gid): a command run as the ' +
          "gateway's own user could read its keys; set uid and gid, or allowSameUser for development",
      };
    }
    if (own === undefined || ownGid === undefined) {
      return { mode: 'refused', reason: 'switching users needs POSIX user ids' };
    }
    const shared = uid === own || gid === ownGid;
    if (shared && !this.#allowSameUser) {
      return {
        mode: 'refused',
        reason:
          `/exec is configured with the gateway's own ${uid === own ? `uid ${uid}` : `gid ${gid}`}: ` +
          "a command run so could read the gateway's keys; use a dedicated user",
      };
    }
    if ((uid !== own || gid !== ownGid) && own !== 0) {
      return {
        mode: 'refused',
        reason: `switching /exec commands to uid ${uid} gid ${gid} needs the gateway to run as root`,
      };
    }
    return shared ? { mode: 'same-user', uid, gid } : { mode: 'separate-user', uid, gid };
  }

  accepts(capsule: Capsule): boolean {
    return capsule.target_action === '/exec';
  }

  async execute(i: AdapterInput): Promise<AdapterResult> {
    const { capsule } = i;
    if (i.signal.aborted) throw aborted('the session ended before the process was started');
    if (!this.accepts(capsule)) {
      throw refuse('sam-target-mismatch', 'the process adapter does not perform this action');
    }
    const who = this.isolation();
    if (who.mode === 'refused') throw refuse('sam-gateway-proxy-failed', who.reason);
    const argv = parseArgv(capsule);
    const name = envName(capsule);
    const fixedCwd = constraint(capsule, 'cwd') ?? this.#cwd;
    if (fixedCwd !== undefined && !isAbsolute(fixedCwd)) {
      throw refuse('sam-constraint-mismatch', '"cwd" must be absolute');
    }
    // the ids to spawn with (configured ones, also in same-user mode), and whether the uid
    // changes: then the command gets its own HOME and must be able to use a configured cwd
    const ids = who.uid !== null && who.gid !== null ? { uid: who.uid, gid: who.gid } : undefined;
    const asRoot = process.getuid?.() === 0;
    const otherUid = ids !== undefined && ids.uid !== process.getuid?.();
    if (ids && otherUid && fixedCwd !== undefined) {
      const why = await unusableBy(fixedCwd, ids.uid, ids.gid);
      if (why !== undefined) throw refuse('sam-gateway-proxy-failed', why);
    }
    const stdin = parseStdin(resolvePayload(capsule, i.request), this.#maxStdin);
    const value = envValue(capsule, i.secret);
    // the per-exec directory belongs to the command's ids (a root gateway can give it)
    const owner = ids && asRoot ? ids : undefined;
    let masker: Masker;
    try {
      masker = createMasker(i.secret);
    } catch {
      throw refuse('sam-secret-unavailable', 'the secret cannot be masked safely');
    }
    const command = masker.maskText(`exec ${JSON.stringify(argv)}`);
    const shown = command.length > 300 ? `${command.slice(0, 297)}...` : command;
    let work: string | undefined;
    try {
      work = await this.#makeWorkDir(owner);
      const env = {
        PATH: this.#env.PATH,
        HOME: this.#env.HOME ?? (otherUid ? work : (process.env['HOME'] ?? homedir())),
        LANG: this.#env.LANG,
        [name]: value,
      };
      const out = await this.#run(argv, fixedCwd ?? work, env, stdin, masker, i, ids);
      const o = textOrBase64(out.stdout, out.stdoutTruncated);
      const e = textOrBase64(out.stderr, out.stderrTruncated);
      const status = out.signal !== null ? `killed by ${out.signal}` : `exit ${out.code}`;
      return {
        executed_action: shown,
        summary:
          `${status} (stdout ${bytesText(out.stdout.length)}` +
          `${out.stdoutTruncated ? ' truncated' : ''}, stderr ${bytesText(out.stderr.length)}` +
          `${out.stderrTruncated ? ' truncated' : ''})`,
        response: {
          exit_code: out.code,
          signal: out.signal,
          stdout: o.text,
          stdout_encoding: o.encoding,
          stdout_truncated: out.stdoutTruncated,
          stderr: e.text,
          stderr_encoding: e.encoding,
          stderr_truncated: out.stderrTruncated,
        },
      };
    } finally {
      stdin?.fill(0);
      masker.destroy();
      if (work !== undefined) await this.#removeWorkDir(work, owner);
    }
  }

  /** A fresh 0700 directory for one exec, given to `owner` (the command's ids) if any. */
  async #makeWorkDir(owner: { uid: number; gid: number } | undefined): Promise<string> {
    let dir: string;
    try {
      dir = await mkdtemp(join(this.#workRoot, 'tibet-exec-'));
    } catch (e) {
      throw failed(`the working directory could not be made (${errCode(e)})`);
    }
    if (!owner) return dir;
    try {
      await chown(dir, owner.uid, owner.gid);
    } catch (e) {
      await rm(dir, { recursive: true, force: true }).catch(() => undefined);
      throw failed(`the working directory could not be given to uid ${owner.uid} (${errCode(e)})`);
    }
    const why = await unusableBy(dir, owner.uid, owner.gid);
    if (why !== undefined) {
      await rm(dir, { recursive: true, force: true }).catch(() => undefined);
      throw refuse('sam-gateway-proxy-failed', `${why} (set workRoot)`);
    }
    return dir;
  }

  async #removeWorkDir(dir: string, owner: { uid: number; gid: number } | undefined) {
    if (owner) await removeAs(dir, owner.uid, owner.gid);
    else await rm(dir, { recursive: true, force: true }).catch(() => undefined);
  }

  #run(
    argv: string[],
    cwd: string,
    env: Record<string, string>,
    stdin: Uint8Array | null,
    masker: Masker,
    i: AdapterInput,
    ids: { uid: number; gid: number } | undefined,
  ): Promise<Outcome> {
    const signal = AbortSignal.any([i.signal, AbortSignal.timeout(this.#timeoutMs)]);
    const out = new MaskedCollector(masker, this.#maxOutput);
    const err = new MaskedCollector(masker, this.#maxOutput);
    return new Promise<Outcome>((resolve, reject) => {
      let settled = false;
      let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
      let grace: NodeJS.Timeout | undefined;
      let child: ChildProcessWithoutNullStreams;
      try {
        child = spawn(argv[0]!, argv.slice(1), {
          cwd,
          env,
          shell: false,
          detached: true, // its own process group, so the whole group can be killed
          stdio: ['pipe', 'pipe', 'pipe'],
          windowsHide: true,
          // libuv, in the child before exec: setgroups(0, NULL), setgid(gid), setuid(uid)
          ...(ids ? { uid: ids.uid, gid: ids.gid } : {}),
        });
      } catch (e) {
        // node throws (rather than emits) e.g. EPERM from setuid or ENOTDIR from chdir
        out.discard();
        err.discard();
        reject(failed(`the command could not be run (${errCode(e)})`));
        return;
      }
      const finish = (e?: Error): void => {
        if (settled) return;
        settled = true;
        signal.removeEventListener('abort', onAbort);
        if (grace !== undefined) clearTimeout(grace);
        killGroup(child.pid);
        if (e !== undefined) {
          out.discard();
          err.discard();
          reject(e);
          return;
        }
        resolve({
          code: exit?.code ?? null,
          signal: exit?.signal ?? null,
          stdout: out.end(),
          stderr: err.end(),
          stdoutTruncated: out.truncated,
          stderrTruncated: err.truncated,
        });
      };
      const onAbort = (): void => {
        finish(aborted('the process was killed: time limit or session end'));
      };
      signal.addEventListener('abort', onAbort);
      if (signal.aborted) onAbort();
      child.on('error', (e: NodeJS.ErrnoException) => {
        finish(
          failed(
            masker.maskText(
              `the command could not be run${typeof e.code === 'string' ? ` (${e.code})` : ''}`,
            ),
          ),
        );
      });
      child.stdout.on('data', (c: Buffer) => out.push(c));
      child.stderr.on('data', (c: Buffer) => err.push(c));
      child.stdin.on('error', () => {
        // EPIPE when the child does not read its input: not an error of the act
      });
      child.stdin.end(stdin ?? undefined);
      child.on('exit', (code, sig) => {
        exit = { code, signal: sig };
        // the session is over: nothing left in the group keeps the credential
        killGroup(child.pid);
        grace = setTimeout(() => {
          child.stdout.destroy();
          child.stderr.destroy();
          finish();
        }, this.#closeGraceMs);
      });
      child.on('close', () => finish());
    });
  }
}
