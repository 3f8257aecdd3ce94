// Regenerates the types from the live server into a temporary file and
// compares them with the committed src/schema.d.ts; exits 1 on any drift
// (then: `npm run generate` and commit). Env: BOOKING_OPENAPI_URL.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

const url = process.env.BOOKING_OPENAPI_URL;
if (!url) { console.error('set BOOKING_OPENAPI_URL, e.g. http://127.0.0.1:8080/openapi.json'); process.exit(2); }
const dir = mkdtempSync(path.join(tmpdir(), 'booking-schema-'));
const fresh = path.join(dir, 'schema.d.ts');
try {
  execFileSync(process.execPath, ['node_modules/openapi-typescript/bin/cli.js', url, '--default-non-nullable', 'false', '-o', fresh], { stdio: ['ignore', 'ignore', 'inherit'] });
  const committed = 'src/schema.d.ts';
  const a = readFileSync(committed, 'utf8'), b = readFileSync(fresh, 'utf8');
  if (a === b) {
    console.log(`check-drift: ${committed} matches ${url}`);
  } else {
    console.error(`check-drift: ${committed} differs from what ${url} generates:`);
    try { execFileSync('diff', ['-u', committed, fresh], { stdio: 'inherit' }); } catch { /* diff exits 1 on a difference */ }
    console.error('check-drift: run `npm run generate` against the current server and commit src/schema.d.ts');
    process.exitCode = 1;
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
