/**
 * The watcher: checks every vault now (so that triggers missed while nothing ran fire on
 * start, once), then every `intervalMs`, until `signal` aborts. Embeddable in any
 * long-running process (the CLI's `tibet vault watch`, a gateway or continuityd daemon).
 */
import type { Clock } from '@tibet/core';
import type { CheckReport, Vault } from './vault.js';

export interface WatcherOptions {
  /** One vault home, or several. */
  vaults: Vault | readonly Vault[];
  /** The time each check uses (default: each vault's own clock). */
  clock?: Clock;
  /** Pause between checks (default 30 000 ms). */
  intervalMs?: number;
  /** Stops the watcher (after the check in progress). */
  signal?: AbortSignal;
  /** One check only. */
  once?: boolean;
  /** Called with each vault home's report. */
  onCheck?: (report: CheckReport, vault: Vault) => void;
  /** Called when a whole check fails (e.g. the clock file cannot be read); the watcher goes on. */
  onError?: (error: unknown, vault: Vault) => void;
}

function pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

/** Run until aborted (or once); resolves with the number of check rounds made. */
export async function runWatcher(o: WatcherOptions): Promise<number> {
  const vaults: readonly Vault[] = Array.isArray(o.vaults) ? o.vaults : [o.vaults as Vault];
  const interval = o.intervalMs ?? 30_000;
  if (!Number.isFinite(interval) || interval < 10)
    throw new RangeError(`"intervalMs" expected at least 10, got ${interval}`);
  let rounds = 0;
  for (;;) {
    if (o.signal?.aborted) return rounds;
    for (const v of vaults) {
      try {
        const report = await v.check(o.clock ? { at: o.clock.now() } : {});
        o.onCheck?.(report, v);
      } catch (e) {
        if (o.onError) o.onError(e, v);
      }
    }
    rounds++;
    if (o.once) return rounds;
    await pause(interval, o.signal);
  }
}
