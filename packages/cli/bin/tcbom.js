#!/usr/bin/env node
// `tcbom …` is `tibet cbom …`.
import { main } from '../dist/main.js';

for (const s of [process.stdout, process.stderr]) {
  s.on('error', (e) => {
    if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw e;
  });
}

const args = process.argv.slice(2);
const version = args.length === 1 && (args[0] === '--version' || args[0] === '-V');
process.exitCode = await main([...process.argv.slice(0, 2), ...(version ? [] : ['cbom']), ...args]);
