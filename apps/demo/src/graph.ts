/** The whole home's causal graph, for the live view (read-only: the daemons keep writing). */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { IdentityRegistry, type PublicIdentity } from '@tibet/core';
import { walk, type CausalGraph } from '@tibet/cbom';

/** Every public identity under `<home>/identities` that checks out (self-signature included). */
export function homeDirectory(home: string): IdentityRegistry {
  const reg = new IdentityRegistry();
  const root = join(home, 'identities');
  let orgs: string[] = [];
  try {
    orgs = readdirSync(root);
  } catch {
    return reg;
  }
  for (const org of orgs) {
    for (const f of readdirSync(join(root, org))) {
      if (!f.endsWith('.pub.json')) continue;
      try {
        // add() checks the format and the self-signature
        reg.add(JSON.parse(readFileSync(join(root, org, f), 'utf8')) as PublicIdentity);
      } catch {
        // an invalid public identity is not trusted; the walk reports its events as unverified
      }
    }
  }
  return reg;
}

export async function liveGraph(home: string): Promise<CausalGraph> {
  return walk({ home, directory: homeDirectory(home), subject: 'home', store: 'none' });
}
