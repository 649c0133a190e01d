// The file replay store on a real file system.
import { mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FileReplayStore, GatewayError, type ReplayRecord } from '../src/index.js';
import { cleanup, tmpHome } from './fixtures/world.js';

const dirs: string[] = [];
afterEach(() => cleanup(dirs));

const rec = (id: string, until = '2026-11-28T12:05:00.000Z'): ReplayRecord => ({
  ephemeral_id: id,
  sam_id: 'sam_0123456789ab',
  gateway_id: 'jis:acme:gateway',
  consumed_at: '2026-11-28T12:00:00.000Z',
  valid_until: until,
  received_action_id: 'act_0123456789abcdef',
});

describe('FileReplayStore', () => {
  it('consumes once; the record is a 0600 file under <home>/gateway/replay/<xx>/', async () => {
    const home = tmpHome(dirs);
    const s = new FileReplayStore(home);
    expect(await s.get('eph_aa0000000001')).toBeUndefined();
    expect(await s.consume(rec('eph_aa0000000001'))).toEqual({ consumed: true });
    const again = await s.consume(rec('eph_aa0000000001'));
    expect(again.consumed).toBe(false);
    expect(again.consumed === false && again.previous).toEqual(rec('eph_aa0000000001'));
    const path = join(home, 'gateway', 'replay', 'aa', 'eph_aa0000000001.json');
    expect(s.pathOf('eph_aa0000000001')).toBe(path);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    // a second store instance (another process's view) sees it
    expect((await new FileReplayStore(home).consume(rec('eph_aa0000000001'))).consumed).toBe(false);
  });

  it('concurrent consumers: exactly one wins', async () => {
    const home = tmpHome(dirs);
    const stores = [0, 1, 2, 3].map(() => new FileReplayStore(home));
    const rs = await Promise.all(
      Array.from({ length: 16 }, (_, i) => stores[i % 4]!.consume(rec('eph_bb0000000002'))),
    );
    expect(rs.filter((r) => r.consumed)).toHaveLength(1);
  });

  it('an empty or corrupt record (a crash mid-write) still counts as consumed', async () => {
    const home = tmpHome(dirs);
    const s = new FileReplayStore(home);
    mkdirSync(join(home, 'gateway', 'replay', 'cc'), { recursive: true });
    writeFileSync(s.pathOf('eph_cc0000000003'), '');
    expect(await s.get('eph_cc0000000003')).toBeNull();
    expect(await s.consume(rec('eph_cc0000000003'))).toEqual({ consumed: false, previous: null });
  });

  it('fails closed when it cannot write, and refuses malformed ids', async () => {
    const home = tmpHome(dirs);
    const s = new FileReplayStore(home);
    await expect(s.consume(rec('../../etc/passwd'))).rejects.toThrow(TypeError);
    await expect(s.consume(rec('eph_XYZ'))).rejects.toThrow(TypeError);
    // the shard folder is a file: the create fails (ENOTDIR), also for root
    mkdirSync(join(home, 'gateway', 'replay'), { recursive: true });
    writeFileSync(join(home, 'gateway', 'replay', 'dd'), 'not a folder');
    const err = await s.consume(rec('eph_dd0000000004')).catch((e: unknown) => e);
    expect(GatewayError.is(err) && err.code).toBe('REPLAY_STORE_FAILED');
  });

  it('prunes records of capsules expired beyond the skew', async () => {
    const home = tmpHome(dirs);
    const s = new FileReplayStore(home);
    await s.consume(rec('eph_ee0000000005', '2026-11-28T12:05:00.000Z'));
    await s.consume(rec('eph_ee0000000006', '2026-11-28T13:05:00.000Z'));
    expect(await s.prune(new Date('2026-11-28T12:10:00.000Z'))).toBe(0); // within the skew
    expect(await s.prune(new Date('2026-11-28T12:16:00.000Z'))).toBe(1);
    expect(await s.get('eph_ee0000000005')).toBeUndefined();
    expect(await s.get('eph_ee0000000006')).toBeDefined();
  });
});
