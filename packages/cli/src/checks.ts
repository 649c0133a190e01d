/** Argument checks shared by the command modules: one message and hint for each mistake. */
import { isActorId } from '@tibet/core';
import { usage } from './errors.js';

/** Refuse (exit 2, `USAGE`) an `id` that is not an actor id; `what` names the flag. */
export function checkActor(id: string, what: string): void {
  if (!isActorId(id))
    throw usage(
      `${what}: "${String(id)}" is not an actor id`,
      'actor ids look like jis:<org>:<name>',
    );
}
