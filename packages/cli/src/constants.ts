/** Kept here (not imported from @tibet/core) so that registering commands stays cheap. */
export const ACTOR_CLASSES = [
  'human',
  'machine',
  'external',
  'mcp-server',
  'gateway',
  'system',
] as const;
