/** The family's keychain vocabulary (tibet-keychain), plus NIST SP 800-57 key states. */

export const SECRET_TYPES = [
  'api_key',
  'oauth_token',
  'signing_key',
  'service_account_credential',
  'pypi_token',
  'crates_token',
  'github_pat',
  'ssh_key',
  'root_password',
  'smart_contract_signer',
  'tls_cert',
  'webhook_signer',
] as const;
export type SecretType = (typeof SECRET_TYPES)[number];

/** Accepts the README's short spelling `service_account_cred`; writes the long form. */
export function parseSecretType(v: unknown): SecretType | undefined {
  if (v === 'service_account_cred') return 'service_account_credential';
  return (SECRET_TYPES as readonly unknown[]).includes(v) ? (v as SecretType) : undefined;
}

/** Types whose material the keychain can generate itself. */
export const GENERATABLE_TYPES: readonly SecretType[] = [
  'signing_key',
  'ssh_key',
  'webhook_signer',
  'smart_contract_signer',
  'root_password',
];

export const TIMELINE_EVENTS = [
  'secret-created',
  'secret-imported',
  'secret-sealed',
  'secret-unsealed',
  'secret-proxied',
  'secret-delegated',
  'secret-exposed',
  'secret-rotated',
  'secret-revoked',
  'secret-archived',
  // this project's additions, so every NIST state and every decision is on the timeline
  'secret-suspended',
  'secret-resumed',
  'secret-destroyed',
  'secret-accepted',
  'secret-policy-changed',
  'secret-denied',
] as const;
export type TimelineEvent = (typeof TIMELINE_EVENTS)[number];

export const EXPOSURE_STATES = [
  'sealed',
  'in-use',
  'chat-disclosed',
  'git-leaked',
  'log-leaked',
  'suspected',
  'rotated',
] as const;
export type ExposureState = (typeof EXPOSURE_STATES)[number];

/** Exposures that can be reported (`expose`). */
export const REPORTABLE_EXPOSURES = [
  'chat-disclosed',
  'git-leaked',
  'log-leaked',
  'suspected',
] as const;
export type ReportableExposure = (typeof REPORTABLE_EXPOSURES)[number];

/** Exposures that block any use of the secret (the family's keychain binding check). */
export const LEAKED: readonly ExposureState[] = ['chat-disclosed', 'git-leaked', 'log-leaked'];

export const AUTHORITY_MODES = ['agent', 'admin', 'triage', 'shared', 'system'] as const;
export type AuthorityMode = (typeof AUTHORITY_MODES)[number];

/** NIST SP 800-57 Part 1 key states. */
export const LIFECYCLE_STATES = [
  'pre-activation',
  'active',
  'suspended',
  'deactivated',
  'compromised',
  'destroyed',
] as const;
export type LifecycleState = (typeof LIFECYCLE_STATES)[number];

export const CUSTODY_ROLES = ['owner', 'custodian', 'active_operator'] as const;
export type CustodyRole = (typeof CUSTODY_ROLES)[number];

/** `sec_<type-ish>_<n>` in the family; any 3–96 of [a-z0-9_.-] starting with a letter here. */
export const SECRET_ID = /^[a-z][a-z0-9_.-]{2,95}$/;
