#!/usr/bin/env bash
# The TypeScript client against a real server: starts `booking serve`
# ($BOOKING_BIN) with its own cluster in a temporary data dir, echo OTP and no
# rate limits, on a free port; then
#   1. check-drift: the committed src/schema.d.ts is what /openapi.json generates
#   2. typecheck:   tsc --strict, and no casts in the e2e and the wrapper
#   3. e2e:         e2e/flow.ts, compiled, against the server
# and stops the server by PID. Needs node >= 20 and `npm ci` done here.
#   BOOKING_BIN=target/debug/booking clients/typescript/run.sh
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
: "${BOOKING_BIN:?set BOOKING_BIN to the booking binary}"
BIN=$(cd "$(dirname "$BOOKING_BIN")" && pwd)/$(basename "$BOOKING_BIN")

WORK=$(mktemp -d /tmp/booking-ts.XXXXXX)
chmod 755 "$WORK" # as root, the private cluster runs as the postgres user
SERVER_PID=
cleanup() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

PORT=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
export BOOKING_ADDR="127.0.0.1:$PORT" BOOKING_DATA_DIR="$WORK/data" BOOKING_OTP_DELIVERY=echo \
  BOOKING_RATE_LIMITS=off RUST_LOG=${RUST_LOG:-warn}
unset DATABASE_URL BOOKING_SERVE_DATABASE_URL BOOKING_JWT_SECRET BOOKING_PUBLIC_URL

"$BIN" migrate 2>"$WORK/migrate.log" || { cat "$WORK/migrate.log"; exit 1; }
BOOKING_SERVICE_TOKEN=$("$BIN" token --service --ttl 3600 2>>"$WORK/migrate.log")
"$BIN" serve 2>"$WORK/server.log" &
SERVER_PID=$!
export BOOKING_URL="http://127.0.0.1:$PORT" BOOKING_SERVICE_TOKEN
export BOOKING_OPENAPI_URL="$BOOKING_URL/openapi.json"
for i in $(seq 1 300); do
  if curl -fsS "$BOOKING_URL/readyz" >/dev/null 2>&1; then break; fi
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then echo "server exited during start:"; tail -n 30 "$WORK/server.log"; exit 1; fi
  [ "$i" = 300 ] && { echo "server not ready after 30 s"; tail -n 30 "$WORK/server.log"; exit 1; }
  sleep 0.1
done

cd "$HERE"
status=0
echo "== ts client: check-drift against $BOOKING_OPENAPI_URL"
npm run -s check-drift || status=1
echo "== ts client: typecheck (tsc --strict, no casts)"
npm run -s typecheck || status=1
echo "== ts client: e2e against $BOOKING_URL"
if [ "$status" = 0 ]; then
  npm run -s e2e || status=1
else
  echo "(skipped: the steps above failed)"
fi
if [ "$status" != 0 ]; then
  echo "== ts client: FAILED; last server log lines:"
  tail -n 20 "$WORK/server.log" || true
fi
exit "$status"
