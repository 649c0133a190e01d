/**
 * Crash safety with real processes: a child (test/fixtures/keychain-child.mjs, plain node on
 * the BUILT packages, embedded audit log) repeats one kind of operation — add, rotate,
 * delegate with reseal, destroy, reveal — and prints `start n` before and `ack n` after each;
 * the parent SIGKILLs it at a random moment, or at a chosen step (new material written,
 * revision written, event durable, HEAD committed). Then the parent opens the log and a
 * Keychain in-process (recovery runs on access) and checks, every time:
 *
 *  - never torn: every secret opens; every acknowledged operation is there; the operation
 *    in flight is either wholly there (the new state, its material) or not at all (the old
 *    state) — old when killed before the event was durable, new after;
 *  - store and log agree (helpers.ts `auditSecret`): revisions 1..HEAD linked and signed,
 *    none above HEAD, every revision's action is in the log, every state-changing event of
 *    the secret has its revision, the secret's line in the log is linear;
 *  - material files: 1..material_seq, plus at most material_seq+1 — the documented leftover
 *    of an operation that never committed (store.ts `writeMaterial`: "a leftover from an
 *    operation that was never committed is replaced"); none once destroyed;
 *  - the secret's bytes (raw, hex, base64/base64url at every alignment) are in no file.
 *
 * Bugs this found are pinned by the `it.fails` tests at the end; a random kill that lands on
 * one of them is counted and reported (it cannot be an `it.fails`: whether it lands is
 * random). Reproduce a run with KC_CRASH_SEED=<seed printed in the summary>.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toHex, getProvider } from '@tibet/core';
import { seededRandom } from '@tibet/core/testing';
import {
  AuditLog,
  DaemonClient,
  EmbeddedClient,
  nodeIo,
  serveLog,
  type LogIo,
} from '@tibet/continuityd';
import { FileStore, Keychain, KeychainError, type SecretState } from '@tibet/keychain';
import {
  alice,
  auditSecret,
  carol,
  cleanup,
  dave,
  ensureBuilt,
  filesContainingSecret,
  filesUnder,
  logKey,
  makeDirectory,
  materialFiles,
  materialFor,
  materialPath,
  openMaterialFile,
  readLog,
  service,
  spawnChild,
  tmpHome,
  type ChildHandle,
  type SecretAudit,
} from './fixtures/helpers.js';

const SEED = process.env['KC_CRASH_SEED'] ?? String(Date.now());
const rnd = seededRandom(`kc-crash:${SEED}`);
const randInt = (lo: number, hi: number): number => {
  const [a = 0, b = 0] = rnd(2);
  return lo + ((a * 256 + b) % (hi - lo + 1));
};

const RANDOM_RUNS = 10;
const SECRET = 'sec_crash_001';
const directory = makeDirectory();
const dirs: string[] = [];

type Kind = 'add' | 'rotate' | 'reseal' | 'destroy' | 'reveal';
type Point = 'material-written' | 'revision-written' | 'appended' | 'committed';
/** Killed at these, the operation must be undone (its event never became durable). */
const BEFORE_EVENT = new Set<Point>(['material-written', 'revision-written']);

const KINDS: { kind: Kind; points: Point[] }[] = [
  { kind: 'add', points: ['material-written', 'revision-written', 'appended', 'committed'] },
  { kind: 'rotate', points: ['material-written', 'revision-written', 'appended', 'committed'] },
  { kind: 'reseal', points: ['material-written', 'revision-written', 'appended', 'committed'] },
  // 'appended' and 'committed' during a destroy: see the it.fails below
  { kind: 'destroy', points: ['revision-written'] },
  { kind: 'reveal', points: ['revision-written', 'appended', 'committed'] },
];

const tally = {
  runs: 0,
  /** Killed with an operation started and not acknowledged. */
  inFlight: 0,
  inFlightApplied: 0,
  inFlightUndone: 0,
  acknowledged: 0,
  /** Distinct material_seq+1 files left by an operation that never committed (documented). */
  leftoverMaterial: 0,
  /** Distinct `.HEAD.<random>.tmp` files left by a kill inside `commit` (no secret in them). */
  headTemp: 0,
  /** Known bug hits (see the it.fails tests). */
  emptyLock: 0,
  destroyedNotShredded: 0,
  resealNotShredded: 0,
};

const leftovers = new Set<string>();
const headTemps = new Set<string>();
const countLeftover = (home: string, id: string, seq: number): void => {
  leftovers.add(`${home}/${id}/${seq}`);
  tally.leftoverMaterial = leftovers.size;
};

beforeAll(() => ensureBuilt(), 180_000);
afterAll(() => {
  process.stdout.write(`[keychain crash] seed ${SEED}: ${JSON.stringify(tally)}\n`);
  cleanup(dirs);
});

const sha256Hex = (b: Uint8Array): string => toHex(getProvider().sha256(b));
const secretDir = (home: string, id: string): string => join(home, 'keychain', 'secrets', id);

/**
 * A LOCK that a kill left empty (between its O_EXCL create and its write) is never taken
 * over (lock.ts — see the it.fails below): count it and remove it, as an operator would.
 */
function clearEmptyLocks(home: string): void {
  const locks = [join(home, 'log', 'LOCK')];
  try {
    for (const id of readdirSync(join(home, 'keychain', 'secrets')))
      locks.push(join(secretDir(home, id), 'LOCK'));
  } catch {
    // no secrets yet
  }
  for (const l of locks) {
    let text: string;
    try {
      text = readFileSync(l, 'utf8');
    } catch {
      continue;
    }
    try {
      JSON.parse(text);
    } catch {
      tally.emptyLock++;
      rmSync(l, { force: true });
    }
  }
}

async function openAll(home: string): Promise<{ log: AuditLog; kc: Keychain }> {
  const log = await AuditLog.open({ dir: join(home, 'log'), signer: logKey, registry: directory });
  const kc = new Keychain({ home, audit: new EmbeddedClient(log), service, directory });
  return { log, kc };
}

interface Plan {
  run: number;
  point?: Point;
}

interface Model {
  seed: string;
  /** The label of the material the crash secret holds now. */
  current: string;
  /** Secrets already seen destroyed with material left (counted once). */
  unshredded: Set<string>;
  /** Superseded reseal bundles left by a kill between the event and their shredding. */
  supersededLeft: Set<number>;
}

/** The material files a secret may have in the state it is in. */
function checkMaterial(
  home: string,
  id: string,
  s: SecretState | undefined,
  ctx: string,
  inFlightDestroy: boolean,
  model: Model,
): void {
  const files = materialFiles(home, id);
  if (!s) {
    // an add that never committed may leave its sealed material-1
    expect(
      files.filter((f) => f !== 1),
      ctx,
    ).toEqual([]);
    if (files.length) countLeftover(home, id, 1);
    return;
  }
  if (s.lifecycle_state === 'destroyed') {
    if (files.length && !model.unshredded.has(id)) {
      // a kill after the destroy's event was durable and before shredding finished: recovery
      // never finishes it (it.fails "a destroy interrupted …"). Only the destroy in flight
      // may be caught like this.
      expect(
        inFlightDestroy,
        `${ctx}: ${id} destroyed earlier still has material ${files.join(',')}`,
      ).toBe(true);
      tally.destroyedNotShredded++;
      model.unshredded.add(id);
    }
    return;
  }
  // kept: every version (rotation keeps lineage; superseded reseals are checked with the
  // reseal runs); plus the documented leftover
  expect(
    files.every((f) => f >= 1 && f <= s.material_seq + 1),
    `${ctx}: ${id} files ${files.join(',')} seq ${s.material_seq}`,
  ).toBe(true);
  if (files.includes(s.material_seq + 1)) countLeftover(home, id, s.material_seq + 1);
  expect(files, ctx).toContain(s.material_seq);
  const bytes = new Uint8Array(readFileSync(materialPath(home, id, s.material_seq)));
  expect(sha256Hex(bytes), `${ctx}: ${id} current material digest`).toBe(
    s.versions.at(-1)!.material_sha256,
  );
}

function strayFiles(home: string, ctx: string): void {
  let ids: string[] = [];
  try {
    ids = readdirSync(join(home, 'keychain', 'secrets'));
  } catch {
    return;
  }
  for (const id of ids)
    for (const f of readdirSync(secretDir(home, id))) {
      if (/^(rev|material)-\d{6}\.tza$/.test(f) || f === 'HEAD') continue;
      if (/^\.HEAD\.[0-9a-f]{12}\.tmp$/.test(f)) {
        const text = readFileSync(join(secretDir(home, id), f), 'utf8');
        expect(
          text === '' ||
            /^\{"revision":\d+,"sha256":"[0-9a-f]{64}","action_id":"act_[0-9a-f]{16}"\}\n?$/.test(
              text,
            ),
          `${ctx}: ${f}`,
        ).toBe(true);
        headTemps.add(join(secretDir(home, id), f));
        tally.headTemp = headTemps.size;
        continue;
      }
      // a LOCK is released by the recovery that just ran
      throw new Error(`${ctx}: unexpected file ${id}/${f}`);
    }
}

async function runOnce(home: string, kind: Kind, plan: Plan, model: Model): Promise<void> {
  const { run, point } = plan;
  const ctx = `[seed ${SEED}] ${kind} run ${run}${point ? ` (at ${point})` : ''}`;
  const child: ChildHandle = spawnChild({
    home,
    seed: model.seed,
    mode: 'crash',
    kind,
    run,
    secret: SECRET,
    ...(point ? { hangAt: point } : {}),
  });
  let ready: Record<string, unknown>;
  try {
    ready = await child.ready;
  } catch (e) {
    child.kill();
    throw new Error(`${ctx}: ${(e as Error).message}`);
  }
  if (point) {
    const hungAt = await Promise.race([child.hung, child.exited.then(() => 'exited')]);
    expect(hungAt, `${ctx}: ${child.stderr()}`).toBe(point);
  } else await sleep(randInt(0, 120));
  child.kill();
  const end = await child.exited;
  expect(
    end.signal,
    `${ctx}: ${end.stderr} ${JSON.stringify(child.lines.filter((l) => l.kind === 'err'))}`,
  ).toBe('SIGKILL');
  tally.runs++;

  const acks = child.lines.filter((l) => l.kind === 'ack');
  const starts = child.lines.filter((l) => l.kind === 'start').map((l) => l.n);
  const last = starts.at(-1);
  const inFlight = last !== undefined && !acks.some((a) => a.n === last) ? last : undefined;
  acks.forEach((a, i) => expect(a.n, ctx).toBe(i));
  tally.acknowledged += acks.length;
  if (inFlight !== undefined) tally.inFlight++;

  clearEmptyLocks(home);
  const { log, kc } = await openAll(home);
  try {
    const records = await readLog(join(home, 'log'));
    const audits = new Map<string, SecretAudit>();
    for (const id of await kc.ids()) {
      const a = await auditSecret(kc, records, id);
      expect(a.problems, ctx).toEqual([]);
      audits.set(id, a);
    }
    const state = (id: string): SecretState | undefined => audits.get(id)?.state;
    /** Did the operation in flight take effect? */
    let applied = false;
    const newMaterials: string[] = [];

    if (kind === 'add') {
      for (const a of acks) {
        const id = `sec_add_r${run}_${a.n}`;
        expect(state(id)?.lifecycle_state, ctx).toBe('active');
        expect(openMaterialFile(home, id, 1, service), ctx).toEqual(
          materialFor(model.seed, `add:r${run}:${a.n}`),
        );
      }
      for (const n of starts) newMaterials.push(`add:r${run}:${n}`);
      if (inFlight !== undefined) {
        const id = `sec_add_r${run}_${inFlight}`;
        const s = state(id);
        applied = s !== undefined;
        if (s) {
          expect(s.lifecycle_state, ctx).toBe('active');
          expect(openMaterialFile(home, id, 1, service), ctx).toEqual(
            materialFor(model.seed, `add:r${run}:${inFlight}`),
          );
        }
      }
      const made = [...audits.keys()].filter(
        (id) => id.startsWith(`sec_add_r${run}_`) && state(id),
      );
      expect(made.length, ctx).toBe(acks.length + (applied ? 1 : 0));
    } else if (kind === 'destroy') {
      for (let k = 0; k < 12; k++) {
        const id = `sec_del_r${run}_${k}`;
        newMaterials.push(`del:r${run}:${k}`);
        const s = state(id);
        expect(s, ctx).toBeDefined();
        if (k < acks.length) {
          expect(s!.lifecycle_state, ctx).toBe('destroyed');
          expect(materialFiles(home, id), `${ctx}: acknowledged destroy of ${id}`).toEqual([]);
        } else if (k === inFlight) {
          applied = s!.lifecycle_state === 'destroyed';
          if (!applied)
            expect(openMaterialFile(home, id, s!.material_seq, service), ctx).toEqual(
              materialFor(model.seed, `del:r${run}:${k}`),
            );
        } else {
          expect(s!.lifecycle_state, ctx).toBe('active');
        }
      }
    } else {
      // rotate, reseal, reveal: one secret, sequential revisions
      const s = state(SECRET)!;
      const r0 = ready['revision'] as number;
      const head = (await kc.store.head(SECRET))!;
      acks.forEach((a, i) => expect(a.data['revision'], ctx).toBe(r0 + i + 1));
      const done = head.revision - r0 - acks.length;
      expect(
        done === 0 || (done === 1 && inFlight !== undefined),
        `${ctx}: HEAD ${head.revision}, ready at ${r0}, ${acks.length} acked`,
      ).toBe(true);
      applied = done === 1;
      const ops = acks.length + done; // operations of this run now in the store
      if (kind === 'rotate') {
        expect(s.version, ctx).toBe((ready['version'] as number) + ops);
        for (const n of starts) newMaterials.push(`rotate:r${run}:${n}`);
        if (ops > 0) model.current = `rotate:r${run}:${ops - 1}`;
        expect(openMaterialFile(home, SECRET, s.material_seq, alice), ctx).toEqual(
          materialFor(model.seed, model.current),
        );
      } else if (kind === 'reseal') {
        let custodian = ready['custodian'] as string;
        for (let i = 0; i < ops; i++) custodian = custodian === carol.id ? dave.id : carol.id;
        expect(s.custodian_id, ctx).toBe(custodian);
        expect(s.material_seq, ctx).toBe((ready['material_seq'] as number) + ops);
        const who = [carol, dave, service].find((x) => x.id === custodian)!;
        expect(openMaterialFile(home, SECRET, s.material_seq, who), ctx).toEqual(
          materialFor(model.seed, 'base'),
        );
        expect(openMaterialFile(home, SECRET, s.material_seq, alice), ctx).toEqual(
          materialFor(model.seed, 'base'),
        );
        // the bundle each acknowledged reseal superseded is shredded (keychain.ts #resealHooks
        // `after`); the one an applied in-flight reseal superseded stays when the kill came
        // between its event and that shredding (it.fails "a custody change killed …")
        const superseded = (ready['material_seq'] as number) + acks.length;
        if (done === 1 && materialFiles(home, SECRET).includes(superseded)) {
          tally.resealNotShredded++;
          model.supersededLeft.add(superseded);
        }
        expect(
          materialFiles(home, SECRET).filter(
            (f) => f < s.material_seq && !model.supersededLeft.has(f),
          ),
          `${ctx}: superseded bundles left`,
        ).toEqual([]);
      } else {
        const lastAccess = ops === 0 ? ready['last_access'] : head.action_id;
        expect(s.last_access_action_id, ctx).toBe(lastAccess);
        if (acks.length)
          expect(
            records.some((r) => r.token.action_id === acks.at(-1)!.data['action_id']),
            ctx,
          ).toBe(true);
      }
      newMaterials.push('base');
    }
    if (inFlight !== undefined) {
      if (applied) tally.inFlightApplied++;
      else tally.inFlightUndone++;
    }
    if (point)
      expect(applied, `${ctx}: in flight ${inFlight}, applied ${applied}`).toBe(
        !BEFORE_EVENT.has(point),
      );

    for (const [id, a] of audits)
      checkMaterial(
        home,
        id,
        a.state,
        ctx,
        kind === 'destroy' && id === `sec_del_r${run}_${inFlight}`,
        model,
      );
    strayFiles(home, ctx);
    // not even in the sealed bundles: they hold ciphertext only
    for (const label of newMaterials)
      expect(
        filesContainingSecret(home, materialFor(model.seed, label)),
        `${ctx}: ${label}`,
      ).toEqual([]);
  } finally {
    await log.close();
  }
}

it('the secret search finds a planted secret in each form it looks for', () => {
  const home = tmpHome(dirs, 'tibet-kc-plant-');
  const m = materialFor('plant', 'x');
  const b64 = (k: number): string =>
    Buffer.concat([Buffer.alloc(k, 7), Buffer.from(m), Buffer.alloc(5, 9)]).toString('base64');
  const plants = [
    Buffer.concat([Buffer.from('head'), Buffer.from(m), Buffer.from('tail')]),
    Buffer.from(`{"k":"${toHex(m)}"}`),
    Buffer.from(`{"k":"${toHex(m).toUpperCase()}"}`),
    Buffer.from(`{"k":"${b64(1)}"}`),
    Buffer.from(`{"k":"${b64(2)}"}`),
    Buffer.from(
      `{"k":"${Buffer.concat([Buffer.alloc(3), Buffer.from(m), Buffer.alloc(1)]).toString('base64url')}"}`,
    ),
  ];
  plants.forEach((p, i) => writeFileSync(join(home, `f${i}`), p));
  writeFileSync(join(home, 'clean'), Buffer.from(m.subarray(0, 20)));
  const hits = filesContainingSecret(home, m).map((h) => h.slice(home.length + 1).split(' ')[0]);
  expect([...new Set(hits)].sort()).toEqual(['f0', 'f1', 'f2', 'f3', 'f4', 'f5']);
});

describe.concurrent('SIGKILL during each kind of operation', () => {
  for (const { kind, points } of KINDS) {
    it(`${kind}: ${RANDOM_RUNS} kills at random moments and one at each step`, async () => {
      const home = tmpHome(dirs, `tibet-kc-crash-${kind}-`);
      const model: Model = {
        seed: `crash:${SEED}:${kind}`,
        current: 'base',
        unshredded: new Set(),
        supersededLeft: new Set(),
      };
      if (kind === 'rotate' || kind === 'reseal' || kind === 'reveal') {
        const { log, kc } = await openAll(home);
        await kc.add({
          actor: alice,
          secretId: SECRET,
          type: 'api_key',
          issuer: 'example.org',
          scope: 'all',
          material: materialFor(model.seed, 'base'),
          reason: 'the secret the child works on',
        });
        await log.close();
      }
      const plans: Plan[] = [
        ...points.map((point, i) => ({ run: i, point })),
        ...Array.from({ length: RANDOM_RUNS }, (_, i) => ({ run: points.length + i })),
      ];
      for (const plan of plans) await runOnce(home, kind, plan, model);
      expect(filesUnder(home).length).toBeGreaterThan(0);
    }, 120_000);
  }
});

// ---------------------------------------------------------------------------------------
// bugs, each reproduced deterministically
// ---------------------------------------------------------------------------------------

async function killAt(cfg: Record<string, unknown>, point: string): Promise<ChildHandle> {
  const child = spawnChild({ ...cfg, hangAt: point });
  await child.ready;
  const at = await Promise.race([child.hung, child.exited.then(() => `exited: ${child.stderr()}`)]);
  expect(at).toBe(point);
  child.kill();
  await child.exited;
  return child;
}

async function homeWithSecret(prefix: string, seed: string): Promise<string> {
  const home = tmpHome(dirs, prefix);
  const { log, kc } = await openAll(home);
  await kc.add({
    actor: alice,
    secretId: SECRET,
    type: 'api_key',
    issuer: 'example.org',
    scope: 'all',
    material: materialFor(seed, 'base'),
    reason: 'setup',
  });
  await log.close();
  return home;
}

describe('crash bugs', () => {
  // Each bug: a plain test reproduces it (its set-up is asserted, so it fails loudly if the
  // reproduction itself breaks) and records what happened; the `it.fails` beside it asserts
  // only the property that the bug violates.

  // BUG (keychain.ts `destroy` + `#recover`): material is shredded by the `after` hook, which
  // runs only in the process that made the change, after HEAD is committed. Killed once the
  // destroy's event is durable — before the commit (recovery then commits it) or during the
  // shredding — the secret is `destroyed` in the log and in HEAD, and its sealed material
  // stays on disk for good: recovery only reconciles revisions, never shreds. Reproduction:
  // child destroys with a hang after `audit.append` (or after `store.commit`), SIGKILL, open
  // a Keychain: state() = destroyed, material-000001.tza still there.
  for (const point of ['appended', 'committed'] as const) {
    const seen: { files?: number[] } = {};
    it(`reproduce: a destroy killed after its event is durable (${point})`, async () => {
      const seed = `crash-bug:${SEED}:${point}`;
      const home = await homeWithSecret(`tibet-kc-dbug-${point}-`, seed);
      await killAt({ home, seed, mode: 'one', op: 'destroy', secret: SECRET }, point);
      const { log, kc } = await openAll(home);
      try {
        const audit = await auditSecret(kc, await readLog(join(home, 'log')), SECRET);
        expect(audit.problems).toEqual([]);
        expect(audit.state?.lifecycle_state).toBe('destroyed');
        seen.files = materialFiles(home, SECRET);
      } finally {
        await log.close();
      }
    });
    it(`FIXED: … and then no material is left (${point})`, () => {
      expect(seen.files).toEqual([]);
    });
  }

  // BUG (keychain.ts `#resealHooks` `after` + `#recover`; same cause as the destroy bug above):
  // a custody or owner change shreds the superseded bundle — still sealed to the removed
  // holder — in its `after` hook, once HEAD is committed, in the process that made the change
  // only. Killed after the event is durable (after `audit.append`, or after `store.commit`)
  // and before that, the change is (or is made, by recovery) current, and the superseded
  // bundle stays for good: the removed custodian can still open the secret from the store.
  // (The in-process path was fixed in the working tree during this work; transitions.test.ts
  // checks it.) Reproduction: add with custodian carol; child delegates custodian → dave with
  // a hang after `store.commit`; SIGKILL; material-000001.tza still opens for carol.
  const resealLeft: { opens?: number[] } = {};
  it('reproduce: a custody change killed after its change is committed', async () => {
    const seed = `crash-bug:${SEED}:custody`;
    const home = tmpHome(dirs, 'tibet-kc-custody-');
    const first = await openAll(home);
    await first.kc.add({
      actor: alice,
      secretId: SECRET,
      type: 'api_key',
      issuer: 'x',
      scope: 'y',
      custodian: carol.id,
      material: materialFor(seed, 'base'),
      reason: 'setup',
    });
    await first.log.close();
    await killAt({ home, seed, mode: 'one', op: 'custody', secret: SECRET }, 'committed');
    const { log, kc } = await openAll(home);
    try {
      const a = await auditSecret(kc, await readLog(join(home, 'log')), SECRET);
      expect(a.problems).toEqual([]);
      expect(a.state?.custodian_id).toBe(dave.id);
      expect(openMaterialFile(home, SECRET, a.state!.material_seq, dave)).toEqual(
        materialFor(seed, 'base'),
      );
      resealLeft.opens = materialFiles(home, SECRET).filter((m) => {
        try {
          return openMaterialFile(home, SECRET, m, carol).length > 0;
        } catch {
          return false;
        }
      });
    } finally {
      await log.close();
    }
  });
  it('FIXED: … and then the removed custodian opens no stored bundle', () => {
    expect(resealLeft.opens).toEqual([]);
  });

  // BUG (keychain.ts `destroy` shreds 1..material_seq; `#recover` discards an uncommitted
  // revision but not the material it wrote): a rotate killed after writing material-(n+1)
  // and before its event leaves that sealed bundle — the NEW secret value — behind; destroy
  // then shreds 1..n and material-(n+1) survives the destruction, still openable by the
  // owner. Reproduction: child rotates with a hang after `store.writeMaterial`, SIGKILL;
  // destroy in-process; material-000002.tza remains and opens for alice.
  const orphan: { files?: number[] } = {};
  it('reproduce: destroy after a rotate was killed between its material and its event', async () => {
    const seed = `crash-bug:${SEED}:orphan`;
    const home = await homeWithSecret('tibet-kc-orphan-', seed);
    await killAt({ home, seed, mode: 'one', op: 'rotate', secret: SECRET }, 'material-written');
    const { log, kc } = await openAll(home);
    try {
      expect((await kc.state(SECRET)).version).toBe(1); // the rotate was undone
      const d = await kc.destroy({ actor: alice, secretId: SECRET, reason: 'shred it all' });
      expect(d.state.lifecycle_state).toBe('destroyed');
      orphan.files = materialFiles(home, SECRET);
      if (orphan.files.length)
        expect(openMaterialFile(home, SECRET, orphan.files[0]!, alice)).toEqual(
          materialFor(seed, 'one'),
        );
    } finally {
      await log.close();
    }
  });
  it('FIXED: … and then no material is left', () => {
    expect(orphan.files).toEqual([]);
  });

  // BUG (continuityd lock.ts `DirLock.acquire`, used by FileStore.lock for every secret and
  // by AuditLog.open): a LOCK file that a SIGKILL left empty — killed between the O_EXCL
  // create and the write of {pid, host} — reads as an unknown holder and is never taken over
  // (the comment "treat as held unless it stays so" is not implemented: there is no age
  // check), so every later operation on that secret fails with STORE_LOCKED after 15 s, for
  // ever. Reproduction: add a secret; leave an empty LOCK in its folder, an hour old;
  // store.lock(id) → STORE_LOCKED.
  const stuck: { code?: string } = {};
  it('reproduce: an empty LOCK, an hour old, in a secret folder', async () => {
    const home = await homeWithSecret('tibet-kc-lock-', `crash-bug:${SEED}:lock`);
    const lock = join(secretDir(home, SECRET), 'LOCK');
    writeFileSync(lock, '');
    const hourAgo = new Date(Date.now() - 3_600_000);
    utimesSync(lock, hourAgo, hourAgo);
    try {
      const release = await new FileStore(home).lock(SECRET, 1_000);
      await release();
      stuck.code = 'acquired';
    } catch (e) {
      expect(KeychainError.is(e)).toBe(true);
      stuck.code = (e as KeychainError).code;
    }
  });
  it('FIXED: … is taken over', () => {
    expect(stuck.code).toBe('acquired');
  });

  // BUG (continuityd lock.ts `DirLock.acquire`, the stale takeover): a process that finds a
  // LOCK left by a dead pid unlinks whatever file is at LOCK *now* and retries — but between
  // its read and its unlink another process may have done the same and created its own LOCK,
  // which is then deleted under it. So after a SIGKILL two (or three) processes that come to
  // the same secret at once can all "hold" its lock: both in #operate, one's #recover can
  // discard the other's revision in flight, both can write rev n+1. Reproduction: a LOCK
  // naming a dead pid (a child that has exited), three FileStore.lock(id) at once; in this
  // run's trials, more than one resolves (about one trial in five on the machine this was
  // found on).
  const race: { trials?: number; maxHolders?: number } = {};
  it('reproduce: three lockers find the LOCK of a killed process at once', async () => {
    const dead = spawnSync(process.execPath, ['-e', '']).pid;
    const home = tmpHome(dirs, 'tibet-kc-stale-');
    let max = 0;
    let t = 0;
    for (; t < 100 && max < 2; t++) {
      const id = `sec_stale_${t}`;
      const dir = secretDir(home, id);
      mkdirSync(dir, { recursive: true });
      writeFileSync(
        join(dir, 'LOCK'),
        JSON.stringify({
          pid: dead,
          host: hostname(),
          started_at: new Date().toISOString(),
          mode: 'keychain',
        }) + '\n',
      );
      const got = await Promise.allSettled([0, 1, 2].map(() => new FileStore(home).lock(id, 0)));
      const held = got.filter((g) => g.status === 'fulfilled');
      for (const g of got)
        if (g.status === 'rejected')
          expect(KeychainError.is(g.reason) && g.reason.code).toBe('STORE_LOCKED');
      expect(held.length).toBeGreaterThanOrEqual(1);
      max = Math.max(max, held.length);
      for (const h of held) await h.value();
    }
    race.trials = t;
    race.maxHolders = max;
  });
  it('FIXED: … only one of them gets it', () => {
    expect(race.maxHolders).toBe(1);
  });

  // BUG (continuityd log.ts `#poison`): when a batch fails to be written or synced, its
  // entries stay in `#pendingActions` / `#pendingLines`, so `log.action(id)` (and the daemon's
  // GET /v1/action) keeps reporting an action that is not in the log. Keychain recovery trusts
  // that answer: a client killed while its append was in flight at a daemon whose fsync then
  // failed gets its revision committed by the next client, so HEAD moves past what the log
  // holds — store and log disagree, for good. Reproduction: daemon with a datasync that fails;
  // child suspends through it and is SIGKILLed right after sending the append; the fsync fails;
  // another Keychain calls state() → `suspended`, with no secret-suspended event in the log.
  const ghost: { lifecycle?: string } = {};
  it('reproduce: a client killed with its append in flight at a daemon whose fsync then fails', async () => {
    const seed = `crash-bug:${SEED}:poison`;
    const home = tmpHome(dirs, 'tibet-kc-poison-');
    let gate: Promise<void> | undefined;
    let open!: () => void;
    let wrote!: () => void;
    const written = new Promise<void>((r) => (wrote = r));
    const io: LogIo = {
      ...nodeIo,
      write: async (fh, data, pos) => {
        await nodeIo.write(fh, data, pos);
        if (gate) wrote();
      },
      datasync: async (fh) => {
        if (gate) {
          await gate;
          throw new Error('EIO: injected');
        }
        return nodeIo.datasync(fh);
      },
    };
    const log = await AuditLog.open({
      dir: join(home, 'log'),
      signer: logKey,
      registry: directory,
      io,
    });
    const socketPath = join(home, 'd.sock');
    const daemon = await serveLog({ log, socketPath });
    try {
      const kc = new Keychain({
        home,
        audit: new DaemonClient({ socketPath }),
        service,
        directory,
      });
      await kc.add({
        actor: alice,
        secretId: SECRET,
        type: 'api_key',
        issuer: 'x',
        scope: 'y',
        material: materialFor(seed, 'base'),
        reason: 'setup',
      });
      gate = new Promise<void>((r) => (open = r));
      const child = spawnChild({
        home,
        seed,
        socketPath,
        mode: 'one',
        op: 'suspend',
        secret: SECRET,
        hangAt: 'append-sent',
      });
      await child.ready;
      await Promise.all([child.hung, written]);
      child.kill();
      await child.exited;
      open(); // the batch's fsync fails now: the log is poisoned, the append never durable
      await expect.poll(async () => (await readLog(join(home, 'log'))).length).toBe(1);
      const records = await readLog(join(home, 'log'));
      expect(records.map((r) => r.token.event)).toEqual(['secret-imported']);
      expect(await kc.store.revisions(SECRET)).toEqual([1, 2]); // the child's revision, uncommitted
      const s = await new Keychain({
        home,
        audit: new DaemonClient({ socketPath }),
        service,
        directory,
      }).state(SECRET);
      ghost.lifecycle = s.lifecycle_state;
    } finally {
      await daemon.close();
      await log.close().catch(() => undefined);
    }
  });
  it('FIXED: … the next client does not commit that revision', () => {
    expect(ghost.lifecycle).toBe('active');
  });
});
