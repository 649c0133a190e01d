/* eslint-disable @typescript-eslint/no-explicit-any, @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-assignment, @typescript-eslint/no-unsafe-call --
   the test walks the emitted CycloneDX JSON, which is untyped by nature */
import { afterEach, describe, expect, it } from 'vitest';
import { exportCycloneDx, materialType, walk } from '../src/index.js';
import { validateCycloneDx } from './fixtures/validate.js';
import { PYPI_TOKEN, PYPI_TOKEN_V2, buildHome, cleanup, leaks } from './fixtures/home.js';

const dirs: string[] = [];
afterEach(() => cleanup(dirs));

const validate = validateCycloneDx;

type Json = Record<string, any>;

function keysDeep(v: unknown, out = new Set<string>()): Set<string> {
  if (Array.isArray(v)) for (const x of v) keysDeep(x, out);
  else if (typeof v === 'object' && v !== null)
    for (const [k, x] of Object.entries(v)) {
      out.add(k);
      keysDeep(x, out);
    }
  return out;
}

describe('CycloneDX CBOM', () => {
  it('a secret and a whole home validate strictly for 1.6 and 1.7, mapped as the standards say', async () => {
    const h = await buildHome(dirs);
    const secret = await walk({
      home: h.home,
      directory: h.directory,
      subject: 'sec_pypi_001',
      bundles: [h.capsule1, h.receipt, h.capsule2],
    });
    const home = await walk({ home: h.home, directory: h.directory, subject: 'home' });
    for (const spec of ['1.6', '1.7'] as const) {
      for (const g of [secret, home]) {
        const bom = exportCycloneDx(g, { spec });
        expect(await validate(bom, spec)).toBeNull();
        expect(bom['specVersion']).toBe(spec);
        expect(bom['serialNumber']).toMatch(/^urn:uuid:[0-9a-f-]{36}$/);
        const keys = keysDeep(bom);
        // no `value` inside any relatedCryptoMaterialProperties
        for (const c of bom['components'] as Json[])
          expect(c['cryptoProperties']?.relatedCryptoMaterialProperties?.value).toBeUndefined();
        // 1.7-only fields only in 1.7
        expect(keys.has('relatedCryptographicAssets')).toBe(spec === '1.7');
        expect(keys.has('fingerprint')).toBe(spec === '1.7' && g === home);
        const text = JSON.stringify(bom);
        expect(leaks(text, PYPI_TOKEN)).toEqual([]);
        expect(leaks(text, PYPI_TOKEN_V2)).toEqual([]);
      }
    }
    const bom = exportCycloneDx(secret, {
      spec: '1.6',
      serialNumber: 'urn:uuid:00000000-0000-4000-8000-000000000000',
    });
    const comps = bom['components'] as Json[];
    const v1 = comps.find((c) => c['bom-ref'] === 'secret:sec_pypi_001@v1')!;
    const v2 = comps.find((c) => c['bom-ref'] === 'secret:sec_pypi_001@v2')!;
    expect(v1['cryptoProperties']).toMatchObject({
      assetType: 'related-crypto-material',
      relatedCryptoMaterialProperties: {
        type: 'token',
        state: 'compromised',
        securedBy: { mechanism: 'Software', algorithmRef: 'crypto:xchacha20-poly1305' },
      },
    });
    expect(v2['cryptoProperties'].relatedCryptoMaterialProperties.state).toBe('active');
    expect(v2['pedigree']).toMatchObject({ ancestors: [{ name: 'sec_pypi_001', version: '1' }] });
    const props = Object.fromEntries(
      (v2['properties'] as Json[]).map((p) => [p['name'], p['value']]),
    );
    expect(props).toMatchObject({
      'tibet:secret:type': 'pypi_token',
      'tibet:custody:owner': 'jis:acme:alice',
      'tibet:custody:custodian': 'jis:acme:bob',
      'tibet:custody:active_operator': 'jis:acme:release-bot',
      'tibet:exposure:state': 'in-use',
      'tibet:rotation:required': 'false',
    });
    expect(v1['properties'].some((p: Json) => p['name'] === 'tibet:custody:owner')).toBe(false);
    // one annotation per event of the secret, on the version current at the time
    const ann = bom['annotations'] as Json[];
    expect(ann.filter((a) => a['subjects'][0] === 'secret:sec_pypi_001@v1')).toHaveLength(7);
    expect(ann.filter((a) => a['subjects'][0] === 'secret:sec_pypi_001@v2')).toHaveLength(3);
    expect(ann.find((a) => a['text'].startsWith('secret-exposed'))!['annotator']).toEqual({
      individual: { name: 'jis:acme:bob' },
    });
    // who used what, from the causal links: release-bot → gateway → the versions it used
    const deps = Object.fromEntries(
      (bom['dependencies'] as Json[]).map((d) => [d['ref'], d['dependsOn']]),
    );
    expect(deps['actor:jis:acme:release-bot']).toEqual(['actor:jis:acme:gateway']);
    expect(deps['actor:jis:acme:gateway']).toEqual([
      'secret:sec_pypi_001@v1',
      'secret:sec_pypi_001@v2',
    ]);
    await h.close();
  });

  it('maps every secret type onto an allowed material type', () => {
    expect(materialType('api_key')).toBe('token');
    expect(materialType('github_pat')).toBe('token');
    expect(materialType('signing_key')).toBe('private-key');
    expect(materialType('webhook_signer')).toBe('secret-key');
    expect(materialType('root_password')).toBe('password');
    expect(materialType('service_account_credential')).toBe('credential');
    expect(materialType('something-new')).toBe('other');
    expect(() => exportCycloneDx({} as never, { spec: '1.5' as never })).toThrow(RangeError);
  });
});
