/** The stand-in registry as its own process: `node registry-main.js <dir>`. */
import { startRegistry } from './registry.js';

const dir = process.argv[2];
if (!dir) {
  process.stderr.write('usage: registry-main <dir>\n');
  process.exit(2);
}
const server = await startRegistry(dir);
const a = server.address();
process.stdout.write(JSON.stringify({ port: typeof a === 'object' && a ? a.port : 0 }) + '\n');
process.on('SIGTERM', () => server.close(() => process.exit(0)));
