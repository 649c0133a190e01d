/**
 * One human line per event, and the renderer highlight (`mark`), from a token alone.
 * Knows the keychain's events (docs/keychain.md §3) and reads sam / gateway / vault events
 * generically: nothing here fails on an event it does not know.
 */
import type { JsonValue, TibetToken } from '@tibet/core';
import type { NodeMark } from './model.js';

function obj(v: JsonValue | undefined): Record<string, JsonValue> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? v : {};
}

function s(o: Record<string, JsonValue>, k: string): string | undefined {
  const v = o[k];
  return typeof v === 'string' ? v : undefined;
}

const JIS_ID = /^jis:[^:]+:(.+)$/;
/** Short names already worked out (a graph has few actors and many events; bounded). */
const shortNames = new Map<string, string>();

/** `jis:acme:alice` → `alice` (the name part; the whole id when it is not a jis id). */
export function shortActor(id: string): string {
  let short = shortNames.get(id);
  if (short === undefined) {
    const m = JIS_ID.exec(id);
    short = m ? m[1]! : id;
    if (shortNames.size >= 1024) shortNames.clear();
    shortNames.set(id, short);
  }
  return short;
}

/** The secret an event is about: its `erin.secret_id`, else the log object id when it looks like one. */
export function secretOf(t: TibetToken, objectId: string | null): string | null {
  const sid = s(obj(t.erin), 'secret_id');
  if (sid) return sid;
  if (objectId && t.event.startsWith('secret-')) return objectId;
  return null;
}

export function markOf(t: TibetToken): NodeMark | null {
  const e = t.event;
  if (e === 'secret-exposed') return 'exposure';
  if (e === 'secret-rotated') return 'rotation';
  if (e === 'secret-denied' || e.endsWith('-denied') || t.policy.some((d) => d.decision === 'deny'))
    return 'denied';
  if (e === 'secret-delegated' || e === 'secret-accepted') return 'custody';
  if (e === 'secret-proxied') return 'proxied';
  if (e === 'secret-unsealed' || e.startsWith('vault-release') || e === 'vault-released')
    return 'release';
  return null;
}

export function summaryOf(t: TibetToken): string {
  const who = shortActor(t.actor);
  const erin = obj(t.erin);
  const ctx = obj(t.eromheen);
  const id = s(erin, 'secret_id') ?? '';
  const mode = s(ctx, 'authority_mode');
  const m = mode ? ` (${mode})` : '';
  switch (t.event) {
    case 'secret-created':
      return `${who} generated ${id} (${s(erin, 'secret_type') ?? '?'})`;
    case 'secret-imported':
      return `${who} imported ${id} (${s(erin, 'secret_type') ?? '?'})`;
    case 'secret-unsealed':
      return `${who} revealed ${id}${s(erin, 'revealed_to') && s(erin, 'revealed_to') !== t.actor ? ` to ${shortActor(s(erin, 'revealed_to')!)}` : ''}`;
    case 'secret-proxied': {
      const obo = s(erin, 'on_behalf_of');
      const target = s(erin, 'target_action');
      return `${who} used ${id}${obo ? ` for ${shortActor(obo)}` : ''}${target ? ` → ${target}` : ''}`;
    }
    case 'secret-delegated':
      return `${who} delegated ${s(erin, 'role') ?? '?'} to ${shortActor(s(erin, 'target_assignee') ?? '?')}${m}`;
    case 'secret-accepted':
      return `${who} accepted the handoff of ${id}`;
    case 'secret-exposed':
      return `${who} reported ${id} ${s(erin, 'exposure_state') ?? 'exposed'}${s(erin, 'evidence') ? `: ${s(erin, 'evidence')}` : ''}`;
    case 'secret-rotated':
      return `${who} rotated ${id} to v${typeof erin['version'] === 'number' ? erin['version'] : '?'}`;
    case 'secret-denied':
      return `${who} refused ${s(erin, 'operation') ?? '?'} by ${shortActor(s(erin, 'requested_by') ?? '?')} [${s(erin, 'code') ?? '?'}]`;
    case 'secret-policy-changed':
      return `${who} changed the policy of ${id}`;
    default: {
      const verb = t.event.startsWith('secret-') ? t.event.slice(7) : t.event;
      return `${who} ${verb}${id ? ` ${id}` : ''}${m}`;
    }
  }
}
