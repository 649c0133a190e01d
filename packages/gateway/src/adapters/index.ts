/** The gateway's execution adapters and the secret masker. */
import { HttpEgressAdapter, type HttpAdapterOptions } from './http.js';
import { ProcessAdapter, type ProcessAdapterOptions, type ProcessIsolation } from './process.js';
import { SignerAdapter, type SignerAdapterOptions } from './signer.js';
import type { Adapter } from './types.js';
import type { Capsule } from '@tibet/sam';

export interface DefaultAdaptersOptions {
  http?: HttpAdapterOptions;
  process?: ProcessAdapterOptions;
  signer?: SignerAdapterOptions;
}

/**
 * The built-in adapters: http-egress, process, signer (in that order). The process adapter
 * (`/exec`) is included only when `process` options name a `uid` (with `gid`) or say
 * `allowSameUser: true` (development only): a command run as the gateway's own OS user can
 * read its keys. `process` options with neither are refused (TypeError) rather than ignored.
 */
export function defaultAdapters(o: DefaultAdaptersOptions = {}): Adapter[] {
  const list: Adapter[] = [new HttpEgressAdapter(o.http)];
  if (o.process !== undefined) {
    if (o.process.uid === undefined && o.process.allowSameUser !== true) {
      throw new TypeError(
        '"process" expected "uid" and "gid" (or "allowSameUser: true", development only)',
      );
    }
    list.push(new ProcessAdapter(o.process));
  }
  list.push(new SignerAdapter(o.signer));
  return list;
}

/**
 * What `/v1/health` reports about `/exec`: the first process adapter's isolation mode
 * (`separate-user`, `same-user`, `refused`), `unknown` for a custom adapter named `process`,
 * null when no adapter performs `/exec`.
 */
export function execIsolation(
  adapters: readonly Adapter[],
): ProcessIsolation['mode'] | 'unknown' | null {
  const a = adapters.find((x) => x.name === 'process');
  if (a === undefined) return null;
  return a instanceof ProcessAdapter ? a.isolation().mode : 'unknown';
}

/** The first adapter that accepts the capsule's target action, if any. */
export function selectAdapter(adapters: readonly Adapter[], capsule: Capsule): Adapter | undefined {
  return adapters.find((a) => a.accepts(capsule));
}

export { HttpEgressAdapter, ProcessAdapter, SignerAdapter };
export { DEFAULT_SECRET_ENV } from './process.js';
export { REDACTED, createMasker, secretForms } from './mask.js';
export { GatewayAdapterError } from './types.js';
export type { HttpAdapterOptions, ProcessAdapterOptions, ProcessIsolation, SignerAdapterOptions };
export type { MaskStream, Masker } from './mask.js';
export type {
  Adapter,
  AdapterInput,
  AdapterName,
  AdapterResult,
  GatewayAdapterErrorCode,
} from './types.js';
