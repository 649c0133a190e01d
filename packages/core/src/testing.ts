/**
 * Semi-internal helpers for tests and reproducible vectors. Not for production: the
 * randomness here is predictable.
 */
import { fixedClock, manualClock } from './clock.js';
import type { CryptoProvider } from './crypto/provider.js';
import { createIdentity, type ActorClass, type Identity } from './identity.js';
import { seededRandom } from './random.js';

/** scrypt parameters cheap enough for tests (N=2^10). Never use them for real keys. */
export const TEST_SCRYPT = { N: 2 ** 10, r: 8, p: 1 } as const;

/** A deterministic identity: same id, class, seed and provider → same keys. */
export function testIdentity(
  id: string,
  actorClass: ActorClass = 'human',
  opts: { seed?: string; provider?: CryptoProvider; createdAt?: string } = {},
): Identity {
  return createIdentity({
    id,
    actorClass,
    random: seededRandom(opts.seed ?? `identity:${id}`),
    clock: fixedClock(opts.createdAt ?? '2026-01-01T00:00:00.000Z'),
    ...(opts.provider ? { provider: opts.provider } : {}),
  });
}

export { seededRandom, fixedClock, manualClock };
