/**
 * Pieces shared by the bench scripts.
 */
import os from 'node:os';
import { Worker } from 'node:worker_threads';

const VERIFY_WORKER = `
  const { parentPort, workerData } = require('node:worker_threads');
  const { createPublicKey, verify } = require('node:crypto');
  const keys = new Map(workerData.keys.map(([id, x]) => [id, createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x }, format: 'jwk' })]));
  parentPort.postMessage('ready');
  parentPort.once('message', () => {
    let bad = 0;
    const jobs = workerData.jobs;
    for (let i = 0; i < workerData.count; i++) {
      const [id, msg, sig] = jobs[i % jobs.length];
      if (!verify(null, msg, keys.get(id), sig)) bad++;
    }
    parentPort.postMessage(bad);
  });`;

/**
 * The floor of "Ed25519 verifies on all cores": bare `crypto.verify` calls, one worker thread
 * per core, each with the keys imported and its share of `jobs` in hand before the clock
 * starts. `keys`: [actor id, base64url public key]; `jobs`: [actor id, message, signature],
 * dealt round robin; `count` verifies in all (cycling through each worker's share when it is
 * more than `jobs`). Returns verifies per second; throws when a verify fails.
 */
export async function bareVerifiesAllCores(
  keys,
  jobs,
  count = jobs.length,
  cores = os.cpus().length,
) {
  const shares = Array.from({ length: cores }, () => []);
  jobs.forEach((j, i) => shares[i % cores].push(j));
  const workers = await Promise.all(
    shares.map(
      (share, w) =>
        new Promise((res, rej) => {
          const n = Math.floor(count / cores) + (w < count % cores ? 1 : 0);
          const wk = new Worker(VERIFY_WORKER, {
            eval: true,
            workerData: { keys, jobs: share, count: n },
          });
          wk.once('message', () => res(wk));
          wk.once('error', rej);
        }),
    ),
  );
  const t0 = performance.now();
  const bad = await Promise.all(
    workers.map(
      (w) =>
        new Promise((res, rej) => {
          w.once('message', res);
          w.once('error', rej);
          w.postMessage('go');
        }),
    ),
  );
  const ms = performance.now() - t0;
  await Promise.all(workers.map((w) => w.terminate()));
  if (bad.some((b) => b !== 0)) throw new Error('floor: a bare verify failed');
  return (count / ms) * 1000;
}
