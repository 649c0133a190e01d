/**
 * Exit codes of every `tibet` command:
 *   0  success
 *   1  refused or failed for a reason the user can act on (verification failed, wrong
 *      passphrase, not a recipient, …)
 *   2  usage error (bad or missing arguments, unreadable input file)
 *  70  internal error: a bug, please report it
 */
export const EXIT = { ok: 0, failed: 1, usage: 2, internal: 70 } as const;

const USER_ERROR = Symbol.for('@tibet/cli/user-error');

/** An error the user can act on: printed as one line plus an optional hint, no stack. */
export class UserError extends Error {
  readonly [USER_ERROR] = true;
  override readonly name = 'UserError';
  readonly exitCode: number;
  readonly code: string | undefined;
  readonly hint: string | undefined;

  constructor(
    message: string,
    o: { exitCode?: number; code?: string; hint?: string; cause?: unknown } = {},
  ) {
    super(message, o.cause === undefined ? undefined : { cause: o.cause });
    this.exitCode = o.exitCode ?? EXIT.failed;
    this.code = o.code;
    this.hint = o.hint;
  }

  static is(e: unknown): e is UserError {
    return (
      typeof e === 'object' && e !== null && (e as Record<symbol, unknown>)[USER_ERROR] === true
    );
  }
}

export function usage(message: string, hint?: string): UserError {
  return new UserError(message, { exitCode: EXIT.usage, code: 'USAGE', ...(hint ? { hint } : {}) });
}

/**
 * A package's error (its message and string `code`) as a one-line UserError with that code:
 * exit 2 when the code is one of `usageCodes` (the input was wrong), else 1 (refused).
 */
export function refusal<C extends string>(
  e: Error & { readonly code: C },
  usageCodes: readonly C[],
  hint?: string,
  message: string = e.message,
): UserError {
  return new UserError(message, {
    exitCode: usageCodes.includes(e.code) ? EXIT.usage : EXIT.failed,
    code: e.code,
    cause: e,
    ...(hint ? { hint } : {}),
  });
}
