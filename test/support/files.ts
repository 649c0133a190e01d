/** Shared by the tests' searches for secret bytes: every file under a folder. */
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

/** Every regular file below `root` (a file removed while walking is skipped). */
export function filesUnder(root: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const f of readdirSync(d)) {
      const p = join(d, f);
      let st;
      try {
        st = statSync(p);
      } catch {
        continue; // removed while walking
      }
      if (st.isDirectory()) walk(p);
      else if (st.isFile()) out.push(p);
    }
  };
  walk(root);
  return out;
}
