import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { IdentityRegistry, type KeyResolver } from '@tibet/core';

/**
 * The actors a log accepts: every public identity under `$TIBET_HOME/identities`. On a
 * miss the folder is read again (at most every 2 s), so identities created while a daemon
 * runs are picked up without a restart.
 */
export class HomeRegistry implements KeyResolver {
  #reg = new IdentityRegistry();
  #loadedAt = 0;

  constructor(readonly home: string) {
    this.reload();
  }

  reload(): number {
    const reg = new IdentityRegistry();
    const root = join(this.home, 'identities');
    let orgs: string[] = [];
    try {
      orgs = readdirSync(root);
    } catch {
      orgs = [];
    }
    for (const org of orgs) {
      let files: string[] = [];
      try {
        files = readdirSync(join(root, org));
      } catch {
        continue;
      }
      for (const f of files) {
        if (!f.endsWith('.pub.json')) continue;
        try {
          reg.add(JSON.parse(readFileSync(join(root, org, f), 'utf8')) as never);
        } catch {
          // an unreadable or invalid public identity is simply not trusted
        }
      }
    }
    this.#reg = reg;
    this.#loadedAt = Date.now();
    return reg.all().length;
  }

  signingKey(actor: string, kid: string): Uint8Array | undefined {
    const k = this.#reg.signingKey(actor, kid);
    if (k || Date.now() - this.#loadedAt < 2000) return k;
    this.reload();
    return this.#reg.signingKey(actor, kid);
  }

  get registry(): IdentityRegistry {
    return this.#reg;
  }
}
