#!/usr/bin/env node
// Development only: serves web/ at /, /app.js, /app.css with the CSP that
// `booking serve` sends, and proxies every other path to a booking server.
// Node built-ins only.
//   BOOKING_UPSTREAM=http://127.0.0.1:18080 WEB_PORT=18081 node web/dev-server.mjs
// Prints "listening http://127.0.0.1:PORT" once ready (WEB_PORT=0: a free port).
import http from 'node:http';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; " +
  "img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";
const DIR = path.dirname(fileURLToPath(import.meta.url));
const upstream = new URL(process.env.BOOKING_UPSTREAM || 'http://127.0.0.1:18080');
const ASSETS = {
  '/': ['index.html', 'text/html; charset=utf-8'],
  '/app.js': ['app.js', 'text/javascript; charset=utf-8'],
  '/app.css': ['app.css', 'text/css; charset=utf-8'],
};

const server = http.createServer(async (req, res) => {
  const { pathname } = new URL(req.url, 'http://x');
  const asset = ASSETS[pathname];
  if (asset && (req.method === 'GET' || req.method === 'HEAD')) {
    const body = await readFile(path.join(DIR, asset[0])); // read each time: edit and reload
    res.writeHead(200, {
      'content-type': asset[1], 'content-length': body.length, 'cache-control': 'no-cache',
      'content-security-policy': CSP, 'x-content-type-options': 'nosniff', 'referrer-policy': 'no-referrer',
    });
    return res.end(req.method === 'HEAD' ? undefined : body);
  }
  const headers = { ...req.headers, host: upstream.host };
  const out = http.request({ host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers }, (up) => {
    res.writeHead(up.statusCode, up.headers);
    up.pipe(res);
  });
  out.on('error', (e) => {
    if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
    res.end(`upstream: ${e.message}\n`);
  });
  req.pipe(out);
});
server.listen(Number(process.env.WEB_PORT ?? 18081), process.env.WEB_HOST || '127.0.0.1', () => {
  const a = server.address();
  console.log(`listening http://${a.address}:${a.port}`);
});
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => { server.close(() => process.exit(0)); server.closeAllConnections(); });
