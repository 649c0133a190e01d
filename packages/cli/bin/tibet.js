#!/usr/bin/env node
import { main } from '../dist/main.js';

// a closed pipe (`tibet … | head`) ends the command quietly instead of crashing it
for (const s of [process.stdout, process.stderr]) {
  s.on('error', (e) => {
    if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw e;
  });
}
process.exitCode = await main(process.argv);
