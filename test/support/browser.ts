/**
 * The headless browser of the web-view tests: Debian's `chromium` driven by playwright-core
 * (no bundled browser download). Each launch gets a fresh temporary profile (Playwright
 * creates and removes it), no QUIC, no background networking, no component updates, no sync.
 *
 * A missing /usr/bin/chromium skips the browser tests with a loud reason on a developer
 * machine, and FAILS them when `CI` is set: .ci/run installs chromium before the tests, so a
 * missing browser there is a broken CI, never a silent pass.
 */
import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';

export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/**
 * Whether the browser tests run. Throws in CI when chromium is missing; elsewhere prints why
 * they are skipped and returns false.
 */
export function browserAvailable(
  path: string = CHROMIUM,
  env: NodeJS.ProcessEnv = process.env,
  warn: (message: string) => void = console.warn,
): boolean {
  if (existsSync(path)) return true;
  if (env['CI']) {
    throw new Error(
      `${path} is missing but CI is set: the browser tests must run in CI (.ci/run installs Debian's chromium)`,
    );
  }
  warn(
    `\n*** SKIPPING the browser tests: ${path} is missing. ` +
      `Install Debian's chromium (apt-get install --no-install-recommends chromium) to run them. ***\n`,
  );
  return false;
}

export function launchBrowser(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: 30_000 });
}
