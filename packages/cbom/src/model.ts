/**
 * The causal graph model shared by the walker (`walk()`) and every renderer (text, Markdown,
 * JSON, HTML, CycloneDX). Binding names — see /tmp/helpers/CBOM_MODEL.md and docs/cbom.md.
 */
import type { ActorClass, PolicyDecision, TibetToken } from '@tibet/core';

export type CheckStatus = 'pass' | 'warn' | 'fail';

/** Renderer highlight of a node. */
export type NodeMark = 'exposure' | 'rotation' | 'denied' | 'custody' | 'proxied' | 'release';

/** Where a node was found: a line of the audit log, or an entry inside a bundle. */
export type NodeSource =
  | { kind: 'log'; index: number; /** the exact canonical JSONL line */ line: string }
  | { kind: 'bundle'; file: string; entry: string };

/** RFC 9162 inclusion proof of a log line against `graph.log.checkpoint`. */
export interface NodeInclusion {
  index: number;
  tree_size: number;
  /** hex SHA-256 hashes, leaf to root */
  hashes: string[];
}

/** What the walker checked (the HTML page re-checks signature and inclusion itself). */
export interface NodeChecks {
  signature: CheckStatus;
  chain: CheckStatus;
  inclusion: CheckStatus;
  detail: string[];
}

/** One event node: a signed TIBET token, as found in the audit log or inside a bundle. */
export interface GraphNode {
  action_id: string;
  parent_action_id: string | null;
  /** 'secret-rotated', 'sam-issued', 'sam-executed', 'vault-released', ... */
  event: string;
  /** jis: id */
  actor: string;
  actor_class: ActorClass;
  /** the token's timestamp (RFC 3339) */
  timestamp: string;
  generation: number;
  /** the secret this event is about, if any */
  secret_id: string | null;
  /** highlight for renderers */
  mark: NodeMark | null;
  /** one human line: 'alice delegated active_operator to release-bot (admin)' */
  summary: string;
  /** erachter */
  reason: string;
  decisions: PolicyDecision[];
  /** the full signed token (no secret ever inside) */
  token: TibetToken;
  /** Where it came from. */
  source: NodeSource;
  /** Inclusion proof of the log line against `graph.log.checkpoint`, when from the log. */
  inclusion: NodeInclusion | null;
  checks: NodeChecks;
}

export type EdgeKind = 'parent' | 'prev';
/** missing = the `from` action is nowhere to be found. */
export type EdgeStatus = 'ok' | 'broken' | 'missing';

export interface GraphEdge {
  /** action_id of the parent / previous event */
  from: string;
  /** action_id of the child / next event */
  to: string;
  kind: EdgeKind;
  status: EdgeStatus;
  detail?: string;
}

export interface GraphActor {
  id: string;
  class: ActorClass;
  /** base64url Ed25519 public key, from the directory (null when the directory lacks it) */
  public_key: string | null;
}

export type SubjectKind = 'secret' | 'bundle' | 'action' | 'capsule' | 'home';

export interface GraphSubject {
  kind: SubjectKind;
  id: string;
}

export interface GraphSecret {
  secret_id: string;
  secret_type: string;
  lifecycle_state: string;
  exposure_state: string;
  rotation_required: boolean;
  version: number;
}

/** The log the nodes' inclusion proofs are against. */
export interface GraphLog {
  origin: string;
  /** base64 Ed25519 raw public key */
  public_key: string;
  key_name: string;
  /** the full C2SP signed note */
  checkpoint: string;
  tree_size: number;
  /** hex */
  root_hash: string;
}

export interface GraphProblem {
  code: string;
  action_id?: string;
  detail: string;
  /** Addition: `error` breaks verification, `warning` is shown but does not (default error). */
  severity?: 'error' | 'warning';
}

export interface CausalGraph {
  subject: GraphSubject;
  generated_at: string;
  /** in causal order (generation, then log index) */
  nodes: GraphNode[];
  edges: GraphEdge[];
  /** one swimlane each, in first-appearance order */
  actors: GraphActor[];
  secrets: GraphSecret[];
  log: GraphLog | null;
  /** broken links etc., never hidden */
  problems: GraphProblem[];
}
