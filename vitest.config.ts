import { defineConfig } from 'vitest/config';

export default defineConfig({
  resolve: { conditions: ['@tibet/source'] },
  ssr: { resolve: { conditions: ['@tibet/source'] } },
  test: {
    include: ['packages/*/test/**/*.test.ts', 'apps/*/test/**/*.test.ts', 'test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
  },
});
