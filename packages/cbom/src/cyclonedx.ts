/**
 * CycloneDX 1.6 / 1.7 CBOM (Cryptography BOM) export of a walked graph, hand-built as JSON
 * per the mapping in shared/spec/standards.md and docs/cbom.md §5: one
 * `cryptographic-asset` component per secret version (`related-crypto-material`, NIST SP
 * 800-57 state, dates, `securedBy`), rotation lineage in `pedigree.ancestors`, custody and
 * exposure in `tibet:` properties, the timeline in `annotations`, who used what (principal →
 * gateway → version, from the causal links) in `dependencies`. Never a `value`, never a hash
 * of a secret: only the public key of a key pair is fingerprinted (1.7).
 */
import { randomUUID } from 'node:crypto';
import {
  fromBase64,
  fromBase64Url,
  fromHex,
  getProvider,
  utf8,
  type JsonValue,
  sha256Hex,
} from '@tibet/core';
import type { SecretState } from '@tibet/keychain';
import type { GraphNode, GraphSecret } from './model.js';
import { CBOM_VERSION, type GraphInput } from './views.js';

export type CycloneDxSpec = '1.6' | '1.7';

export interface CycloneDxOptions {
  /** Default 1.6. */
  spec?: CycloneDxSpec;
  /** `urn:uuid:…` (default a random UUID v4). */
  serialNumber?: string;
  /** `metadata.timestamp` (default the graph's `generated_at`). */
  timestamp?: string;
}

type Json = Record<string, unknown>;

/** Secret types → CycloneDX relatedCryptoMaterialType (19 values, no api-key). */
const MATERIAL_TYPE: Record<string, string> = {
  api_key: 'token',
  oauth_token: 'token',
  pypi_token: 'token',
  crates_token: 'token',
  github_pat: 'token',
  signing_key: 'private-key',
  ssh_key: 'private-key',
  smart_contract_signer: 'private-key',
  tls_cert: 'private-key',
  webhook_signer: 'secret-key',
  root_password: 'password',
  service_account_credential: 'credential',
};

export function materialType(secretType: string): string {
  return MATERIAL_TYPE[secretType] ?? 'other';
}

const ALGORITHMS: Record<string, Json> = {
  'crypto:xchacha20-poly1305': {
    name: 'XChaCha20-Poly1305',
    primitive: 'ae',
    functions: ['encrypt', 'decrypt'],
    level: 256,
  },
  'crypto:hpke-x25519-sha256-chacha20poly1305': {
    name: 'HPKE DHKEM(X25519, HKDF-SHA256) HKDF-SHA256 ChaCha20-Poly1305',
    primitive: 'kem',
    functions: ['encapsulate', 'decapsulate'],
    level: 128,
  },
  'crypto:ed25519': {
    name: 'Ed25519',
    primitive: 'signature',
    functions: ['sign', 'verify'],
    level: 128,
  },
  'crypto:ecdsa-secp256k1': {
    name: 'ECDSA secp256k1',
    primitive: 'signature',
    functions: ['sign', 'verify'],
    level: 128,
  },
};

const KEY_ALGORITHM: Record<string, string> = {
  signing_key: 'crypto:ed25519',
  ssh_key: 'crypto:ed25519',
  smart_contract_signer: 'crypto:ecdsa-secp256k1',
};

const SEALED_BY = 'crypto:xchacha20-poly1305';
const WRAPPED_BY = 'crypto:hpke-x25519-sha256-chacha20poly1305';

function algorithmComponent(ref: string): Json {
  const a = ALGORITHMS[ref]!;
  return {
    type: 'cryptographic-asset',
    'bom-ref': ref,
    name: a['name'],
    cryptoProperties: {
      assetType: 'algorithm',
      algorithmProperties: {
        primitive: a['primitive'],
        cryptoFunctions: a['functions'],
        classicalSecurityLevel: a['level'],
      },
    },
  };
}

const prop = (name: string, value: string | number | boolean | null | undefined): Json[] =>
  value === null || value === undefined ? [] : [{ name, value: String(value) }];

function obj(v: JsonValue | undefined): Record<string, JsonValue> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? v : {};
}

export const versionRef = (id: string, v: number): string => `secret:${id}@v${v}`;
export const actorRef = (id: string): string => `actor:${id}`;

/**
 * The version each node of a secret is about: a keychain event's own `erin.version` (the
 * state after it); for another event (a capsule, a receipt) its parent's version, else a
 * child's, else the last version seen before it in causal order.
 */
function versionsOfNodes(mine: readonly GraphNode[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const n of mine) {
    const e = obj(n.token.erin)['version'];
    if (typeof e === 'number' && Number.isSafeInteger(e) && e >= 1) out.set(n.action_id, e);
  }
  const childOf = new Map<string, string>();
  for (const n of mine)
    if (n.parent_action_id && out.has(n.action_id) && !childOf.has(n.parent_action_id))
      childOf.set(n.parent_action_id, n.action_id);
  let last = 1;
  for (const n of mine) {
    const own = out.get(n.action_id);
    if (own !== undefined) {
      last = own;
      continue;
    }
    const fromParent = n.parent_action_id ? out.get(n.parent_action_id) : undefined;
    const fromChild = childOf.get(n.action_id);
    out.set(n.action_id, fromParent ?? (fromChild ? out.get(fromChild)! : last));
  }
  return out;
}

function secretComponents(
  s: GraphSecret & { state?: SecretState },
  nodes: readonly GraphNode[],
  spec: CycloneDxSpec,
  algs: Set<string>,
): Json[] {
  const st = s.state;
  const type = materialType(s.secret_type);
  const last = nodes.at(-1)?.timestamp;
  const versions = st?.versions ?? [
    {
      version: s.version,
      created_at: last ?? '',
      material_sha256: null,
      state: s.lifecycle_state,
      retired_at: null,
      action_id: '',
    },
  ];
  const keyAlg = KEY_ALGORITHM[s.secret_type];
  algs.add(SEALED_BY);
  algs.add(WRAPPED_BY);
  if (keyAlg) algs.add(keyAlg);
  return versions.map((v) => {
    const current = v.version === s.version;
    const rcm: Json = {
      type,
      id: `${s.secret_id}@v${v.version}`,
      state: v.state,
      ...(v.created_at ? { creationDate: v.created_at, activationDate: v.created_at } : {}),
      ...((current ? last : v.retired_at) ? { updateDate: current ? last : v.retired_at } : {}),
      ...(st?.expires_at ? { expirationDate: st.expires_at } : {}),
      securedBy: { mechanism: 'Software', algorithmRef: SEALED_BY },
    };
    if (spec === '1.6' && keyAlg) rcm['algorithmRef'] = keyAlg;
    if (spec === '1.7') {
      const related: Json[] = [
        { type: 'algorithm', ref: SEALED_BY },
        { type: 'algorithm', ref: WRAPPED_BY },
      ];
      if (keyAlg) related.push({ type: 'algorithm', ref: keyAlg });
      if (current && st?.public_key)
        related.push({ type: 'publicKey', ref: `${versionRef(s.secret_id, v.version)}:public` });
      rcm['relatedCryptographicAssets'] = related;
    }
    const properties: Json[] = [
      ...prop('tibet:secret:type', s.secret_type),
      ...prop('tibet:secret:issuer', st?.issuer),
      ...prop('tibet:secret:scope', st?.scope),
      ...prop('tibet:version:current', current),
      ...prop('tibet:version:action_id', v.action_id || null),
      ...prop('tibet:version:retired_at', v.retired_at),
      ...prop('tibet:version:sealed_bundle_sha256', v.material_sha256),
      ...prop(
        'tibet:securedBy',
        'tza/1 sealed bundle: XChaCha20-Poly1305 payload, data key wrapped with HPKE (RFC 9180) to the keychain, owner and custodian',
      ),
    ];
    if (current) {
      properties.push(
        ...prop('tibet:lifecycle:state', s.lifecycle_state),
        ...prop('tibet:custody:owner', st?.owner_id),
        ...prop('tibet:custody:custodian', st?.custodian_id),
        ...prop('tibet:custody:active_operator', st?.active_operator_id),
        ...prop(
          'tibet:custody:pending_handoff',
          st?.pending_handoff
            ? `${st.pending_handoff.role} → ${st.pending_handoff.assignee}`
            : null,
        ),
        ...prop('tibet:exposure:state', s.exposure_state),
        ...prop('tibet:exposure:evidence', st?.exposure_evidence),
        ...prop('tibet:rotation:required', s.rotation_required),
        ...prop('tibet:archived', st?.archived),
      );
      for (const t of st?.transitions ?? [])
        properties.push({
          name: 'tibet:lifecycle:transition',
          value: `${t.state} at ${t.at} by ${t.action_id}`,
        });
    }
    const c: Json = {
      type: 'cryptographic-asset',
      'bom-ref': versionRef(s.secret_id, v.version),
      name: s.secret_id,
      version: String(v.version),
      description: `${s.secret_type}${st ? ` issued by ${st.issuer} for ${st.scope}` : ''}, version ${v.version}`,
      cryptoProperties: {
        assetType: 'related-crypto-material',
        relatedCryptoMaterialProperties: rcm,
      },
      properties,
    };
    if (v.version > 1)
      c['pedigree'] = {
        ancestors: versions
          .filter((a) => a.version < v.version)
          .reverse()
          .map((a) => ({
            type: 'cryptographic-asset',
            name: s.secret_id,
            version: String(a.version),
            cryptoProperties: {
              assetType: 'related-crypto-material',
              relatedCryptoMaterialProperties: {
                type,
                id: `${s.secret_id}@v${a.version}`,
                state: a.state,
              },
            },
          })),
      };
    return c;
  });
}

/**
 * SHA-256 of the raw public key as the keychain records it: `ed25519:<base64url>` (the 32
 * bytes), `secp256k1:<hex>` (the compressed point), an OpenSSH line (the wire-format blob, as
 * `ssh-keygen -l` hashes it); any other form is hashed as its UTF-8 text.
 */
export function publicKeyDigest(pk: string): string {
  let raw: Uint8Array;
  try {
    if (pk.startsWith('ed25519:')) raw = fromBase64Url(pk.slice(8));
    else if (pk.startsWith('secp256k1:')) raw = fromHex(pk.slice(10));
    else if (/^ssh-[a-z0-9-]+ [A-Za-z0-9+/]+=*( |$)/.test(pk)) raw = fromBase64(pk.split(' ')[1]!);
    else raw = utf8(pk);
  } catch {
    raw = utf8(pk);
  }
  return sha256Hex(raw, getProvider());
}

function publicKeyComponent(
  s: GraphSecret & { state?: SecretState },
  spec: CycloneDxSpec,
): Json | undefined {
  const pk = s.state?.public_key;
  if (!pk) return undefined;
  const digest = publicKeyDigest(pk);
  const rcm: Json = {
    type: 'public-key',
    id: `${s.secret_id}@v${s.version}:public`,
    state: s.lifecycle_state,
  };
  if (spec === '1.7') rcm['fingerprint'] = { alg: 'SHA-256', content: digest };
  return {
    type: 'cryptographic-asset',
    'bom-ref': `${versionRef(s.secret_id, s.version)}:public`,
    name: `${s.secret_id} public key`,
    version: String(s.version),
    cryptoProperties: {
      assetType: 'related-crypto-material',
      relatedCryptoMaterialProperties: rcm,
    },
    properties: [...prop('tibet:public_key', pk), ...prop('tibet:public_key:sha256', digest)],
  };
}

function annotator(n: GraphNode): Json {
  return n.actor_class === 'human'
    ? { individual: { name: n.actor } }
    : {
        service: {
          name: n.actor,
          properties: [{ name: 'tibet:actor_class', value: n.actor_class }],
        },
      };
}

/**
 * The CycloneDX CBOM of a walked graph (a secret or a whole home). The result validates with
 * `@cyclonedx/cyclonedx-library`'s strict JSON validator for its spec version.
 */
export function exportCycloneDx(g: GraphInput, o: CycloneDxOptions = {}): Json {
  const spec = o.spec ?? '1.6';
  if (spec !== '1.6' && spec !== '1.7') throw new RangeError('"spec" must be "1.6" or "1.7"');
  const serial = o.serialNumber ?? `urn:uuid:${randomUUID()}`;
  if (!/^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(serial))
    throw new TypeError('"serialNumber" must be urn:uuid:<lowercase uuid>');
  const algs = new Set<string>();
  const components: Json[] = [];
  const known = new Set<string>();
  const versionAt = new Map<string, Map<string, number>>();
  const bySecret = new Map<string, GraphNode[]>();
  for (const n of g.nodes) {
    if (!n.secret_id) continue;
    const l = bySecret.get(n.secret_id);
    if (l) l.push(n);
    else bySecret.set(n.secret_id, [n]);
  }
  for (const s of g.secrets) {
    const mine = bySecret.get(s.secret_id) ?? [];
    for (const c of secretComponents(s, mine, spec, algs)) {
      components.push(c);
      known.add(c['bom-ref'] as string);
    }
    const pk = publicKeyComponent(s, spec);
    if (pk) components.push(pk);
    versionAt.set(s.secret_id, versionsOfNodes(mine));
  }
  for (const ref of [...algs].sort()) components.unshift(algorithmComponent(ref));
  // who used what: principal → gateway → version, from the proxied uses
  const services = new Map<string, Json>();
  const deps = new Map<string, Set<string>>();
  const dep = (from: string, to: string): void => {
    const s = deps.get(from) ?? new Set<string>();
    s.add(to);
    deps.set(from, s);
  };
  const service = (id: string, cls: string): void => {
    if (!services.has(id))
      services.set(id, {
        'bom-ref': actorRef(id),
        name: id,
        properties: [{ name: 'tibet:actor_class', value: cls }],
      });
  };
  const classOf = new Map(g.actors.map((a) => [a.id, a.class as string]));
  for (const n of g.nodes) {
    if (n.event !== 'secret-proxied' || !n.secret_id) continue;
    const v = versionAt.get(n.secret_id)?.get(n.action_id);
    const ref = v ? versionRef(n.secret_id, v) : undefined;
    if (!ref || !known.has(ref)) continue;
    service(n.actor, n.actor_class);
    dep(actorRef(n.actor), ref);
    const obo = obj(n.token.erin)['on_behalf_of'];
    if (typeof obo === 'string' && obo !== n.actor) {
      service(obo, classOf.get(obo) ?? 'unknown');
      dep(actorRef(obo), actorRef(n.actor));
    }
  }
  for (const c of components) {
    const ref = c['bom-ref'] as string;
    if (!ref.startsWith('secret:') || ref.endsWith(':public')) continue;
    dep(ref, SEALED_BY);
    dep(ref, WRAPPED_BY);
  }
  const dependencies: Json[] = [];
  for (const c of components) {
    const ref = c['bom-ref'] as string;
    dependencies.push({ ref, dependsOn: [...(deps.get(ref) ?? [])].sort() });
  }
  for (const s of services.values()) {
    const ref = s['bom-ref'] as string;
    dependencies.push({ ref, dependsOn: [...(deps.get(ref) ?? [])].sort() });
  }
  // the timeline
  const annotations: Json[] = [];
  for (const n of g.nodes) {
    if (!n.secret_id) continue;
    const v = versionAt.get(n.secret_id)?.get(n.action_id);
    const ref = v ? versionRef(n.secret_id, v) : undefined;
    if (!ref || !known.has(ref)) continue;
    annotations.push({
      subjects: [ref],
      annotator: annotator(n),
      timestamp: n.timestamp,
      text: `${n.event}${n.mark ? ` [${n.mark}]` : ''}: ${n.summary}. Why: ${n.reason} (action ${n.action_id}${n.parent_action_id ? `, parent ${n.parent_action_id}` : ''}, ${n.source.kind === 'log' ? `log #${n.source.index}` : `bundle ${n.source.file}`}; signature ${n.checks.signature}, chain ${n.checks.chain}, inclusion ${n.checks.inclusion})`,
    });
  }
  const metaProps: Json[] = [
    ...prop('tibet:subject', `${g.subject.kind} ${g.subject.id}`),
    ...prop('tibet:log:origin', g.log?.origin),
    ...prop('tibet:log:tree_size', g.log?.tree_size),
    ...prop('tibet:log:root_hash', g.log?.root_hash),
    ...prop('tibet:walk:events', g.nodes.length),
    ...prop('tibet:walk:problems', g.problems.length),
  ];
  for (const p of g.problems.slice(0, 1000))
    metaProps.push({
      name: 'tibet:walk:problem',
      value: `${p.code}${p.action_id ? ` ${p.action_id}` : ''}: ${p.detail}`,
    });
  const bom: Json = {
    $schema: `http://cyclonedx.org/schema/bom-${spec}.schema.json`,
    bomFormat: 'CycloneDX',
    specVersion: spec,
    serialNumber: serial,
    version: 1,
    metadata: {
      timestamp: o.timestamp ?? g.generated_at,
      tools: {
        components: [
          {
            type: 'application',
            group: '@tibet',
            name: 'cbom',
            version: CBOM_VERSION,
            description: 'TIBET causal walker and CBOM exporter',
          },
        ],
      },
      properties: metaProps,
    },
    components,
    ...(services.size ? { services: [...services.values()] } : {}),
    dependencies,
    ...(annotations.length ? { annotations } : {}),
  };
  return bom;
}
