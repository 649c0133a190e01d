import { existsSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { verifierKey } from '@tibet/continuityd';
import { fromBase64 } from '@tibet/core';
import { CbomError, verifyReport, writeReport, type ReportDocument } from '../src/index.js';
import { at, buildHome, cleanup, logKey, makeDirectory, tmp, type Home } from './fixtures/home.js';

const dirs: string[] = [];
afterEach(() => cleanup(dirs));

async function report(h: Home, from = at(2), to = at(7)) {
  const out = join(tmp(dirs, 'tibet-cbom-report-'), 'report');
  const doc = await writeReport({
    home: h.home,
    directory: h.directory,
    secretId: 'sec_sign_1',
    from,
    to,
    out,
    now: at(11),
  });
  return { out, doc };
}

const checkOf = (r: Awaited<ReturnType<typeof verifyReport>>, name: string) =>
  r.checks.find((c) => c.name === name);

describe('compliance report', () => {
  it('who could have signed, who did, with proofs a regulator checks offline with public keys', async () => {
    const h = await buildHome(dirs);
    const { out, doc } = await report(h);
    await h.close();
    expect(readdirSync(out).sort()).toEqual([
      'checkpoint.note',
      'events',
      'keys',
      'proofs',
      'report.json',
      'report.md',
    ]);
    // who did: the two gateway signatures for the bot in the window
    expect(doc.who_did_sign.signed.map((s) => [s.action_id, s.actor, s.on_behalf_of])).toEqual([
      [h.actions['sign1'], 'jis:acme:gateway', 'jis:acme:release-bot'],
      [h.actions['sign2'], 'jis:acme:gateway', 'jis:acme:release-bot'],
    ]);
    // who could: owner alice (custody, reveal), the keychain (custodian), the bot (use)
    expect(doc.who_could_have_signed.actors.map((a) => a.actor).sort()).toEqual(
      ['jis:acme:alice', 'jis:acme:keychain', 'jis:acme:release-bot'].sort(),
    );
    // the line up to the window's end, then the first event after it
    expect(doc.events.map((e) => [e.role, e.event])).toEqual([
      ['line', 'secret-created'],
      ['line', 'secret-delegated'],
      ['line', 'secret-proxied'],
      ['line', 'secret-proxied'],
      ['boundary', 'secret-unsealed'],
    ]);
    for (const e of doc.events) {
      expect(existsSync(join(out, e.file))).toBe(true);
      expect(readFileSync(join(out, e.proof), 'utf8')).toMatch(
        /^c2sp\.org\/tlog-proof@v1\nindex \d+\n/,
      );
    }
    const vkey = verifierKey(logKey.id + '/log', fromBase64(doc.log.public_key));
    expect(doc.log.verifier_key).toBe(vkey);
    expect(readFileSync(join(out, 'report.md'), 'utf8')).toContain('## Who could have signed');
    const ok = await verifyReport(out, { logKey: vkey, directory: makeDirectory() });
    expect(ok.checks.filter((c) => c.status !== 'pass')).toEqual([]);
    expect(ok).toMatchObject({ ok: true, authenticated: true, secret_id: 'sec_sign_1' });
    // without pinning: intact, but not authenticated
    const unpinned = await verifyReport(out);
    expect(unpinned).toMatchObject({ ok: true, authenticated: false });
    expect(checkOf(unpinned, 'log-key')!.status).toBe('warn');
  });

  it('a tampered proof, event, answer or key is caught offline', async () => {
    const h = await buildHome(dirs);
    const { out, doc } = await report(h);
    await h.close();
    const vkey = doc.log.verifier_key;
    const fresh = async (): Promise<string> => {
      const copy = join(tmp(dirs, 'tibet-cbom-copy-'), 'r');
      const { cpSync } = await import('node:fs');
      cpSync(out, copy, { recursive: true });
      return copy;
    };
    // a proof hash flipped
    {
      const f = await fresh();
      const e = doc.events[2]!;
      const text = readFileSync(join(f, e.proof), 'utf8').split('\n');
      text[2] = text[2]!.startsWith('A') ? `B${text[2]!.slice(1)}` : `A${text[2]!.slice(1)}`;
      writeFileSync(join(f, e.proof), text.join('\n'));
      const r = await verifyReport(f, { logKey: vkey });
      expect(r.ok).toBe(false);
      expect(checkOf(r, `event ${e.index}`)!.status).toBe('fail');
    }
    // an event line changed (a different reason): its proof no longer holds
    {
      const f = await fresh();
      const e = doc.events.find((x) => x.event === 'secret-proxied')!;
      const line = readFileSync(join(f, e.file), 'utf8');
      writeFileSync(join(f, e.file), line.replace('sign at 3.5', 'sign at 3.6'));
      const r = await verifyReport(f, { logKey: vkey });
      expect(r.ok).toBe(false);
      expect(checkOf(r, `event ${e.index}`)!.status).toBe('fail');
    }
    // an event left out: the line is no longer contiguous, the answers no longer recompute
    {
      const f = await fresh();
      const d = JSON.parse(readFileSync(join(f, 'report.json'), 'utf8')) as ReportDocument;
      d.events.splice(1, 1);
      writeFileSync(join(f, 'report.json'), JSON.stringify(d));
      const r = await verifyReport(f, { logKey: vkey });
      expect(r.ok).toBe(false);
      expect(checkOf(r, 'line')!.status).toBe('fail');
    }
    // an answer edited: a signer removed from "who did"
    {
      const f = await fresh();
      const d = JSON.parse(readFileSync(join(f, 'report.json'), 'utf8')) as ReportDocument;
      d.who_did_sign.signed.pop();
      writeFileSync(join(f, 'report.json'), JSON.stringify(d));
      const r = await verifyReport(f, { logKey: vkey });
      expect(checkOf(r, 'who-did-sign')!.status).toBe('fail');
    }
    // another log key pinned
    {
      const f = await fresh();
      const other = verifierKey('jis:acme:other/log', new Uint8Array(32).fill(7));
      const r = await verifyReport(f, { logKey: other });
      expect(r.ok).toBe(false);
      expect(checkOf(r, 'checkpoint')!.status).toBe('fail');
    }
    // a missing proof file
    {
      const f = await fresh();
      rmSync(join(f, doc.events[0]!.proof));
      expect((await verifyReport(f, { logKey: vkey })).ok).toBe(false);
    }
    // not a report
    await expect(verifyReport(tmp(dirs))).rejects.toSatisfy(
      (e) => CbomError.is(e) && e.code === 'REPORT_MALFORMED',
    );
  });

  it('reports on any credential (who could have used it, who did) and refuses a folder that is not empty', async () => {
    const h = await buildHome(dirs);
    const out = tmp(dirs);
    const doc = await writeReport({
      home: h.home,
      directory: h.directory,
      secretId: 'sec_pypi_001',
      from: at(0),
      to: at(9),
      out,
    });
    expect(doc.secret_type).toBe('pypi_token');
    expect(readFileSync(join(out, 'report.md'), 'utf8')).toMatch(
      /^# Who could have used it, who did/,
    );
    const checked = await verifyReport(out, { logKey: doc.log.verifier_key });
    expect(checked.ok, JSON.stringify(checked.checks)).toBe(true);
    writeFileSync(join(out, 'x'), 'x');
    await expect(
      writeReport({
        home: h.home,
        directory: h.directory,
        secretId: 'sec_sign_1',
        from: at(0),
        to: at(9),
        out,
      }),
    ).rejects.toSatisfy((e) => CbomError.is(e) && e.code === 'REPORT_EXISTS');
    await h.close();
  });
});
