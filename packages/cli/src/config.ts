/**
 * The configuration files of a TIBET home that more than one command reads: the keychain's
 * `keychain/config.json`, written by `tkc init` and read by tkc, sam, vault and gateway.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isActorId } from '@tibet/core';
import { checkActor } from './checks.js';
import { UserError, usage } from './errors.js';

export interface KeychainConfig {
  format: 'tibet-keychain-config/1';
  /** The keychain's own identity. */
  service: string;
  /** The audit log's identity. */
  log: string;
}

export function keychainConfigPath(home: string): string {
  return join(home, 'keychain', 'config.json');
}

/**
 * The JSON value of a configuration file: undefined when the file does not exist, null when
 * it is not JSON. A file that exists but cannot be read is a usage error (exit 2).
 */
export async function readJsonConfig(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw usage(`cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

/** The keychain configuration of `home`, or undefined when there is none (`CONFIG_INVALID`). */
export async function readKeychainConfig(home: string): Promise<KeychainConfig | undefined> {
  const path = keychainConfigPath(home);
  const c = (await readJsonConfig(path)) as Partial<KeychainConfig> | null | undefined;
  if (c === undefined) return undefined;
  if (
    c?.format !== 'tibet-keychain-config/1' ||
    !isActorId(c.service) ||
    (c.log !== undefined && !isActorId(c.log))
  )
    throw new UserError(`${path} is not a keychain configuration`, {
      code: 'CONFIG_INVALID',
      hint: 'remove it and run `tkc init` again',
    });
  return c as KeychainConfig;
}

/**
 * The keychain's identity: `--service` when given (checked), else the one in the home's
 * keychain configuration; a home without one is a usage error (exit 2).
 */
export async function keychainServiceId(home: string, given: string | undefined): Promise<string> {
  if (given !== undefined) {
    checkActor(given, '--service');
    return given;
  }
  const c = await readKeychainConfig(home);
  if (!c)
    throw usage(
      `no keychain in ${home}`,
      'run `tkc init --org <org>` first, or pass --service <id>',
    );
  return c.service;
}
