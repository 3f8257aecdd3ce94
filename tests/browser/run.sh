#!/usr/bin/env bash
# The booking page in a real browser, against a real server.
# Starts `booking serve` ($BOOKING_BIN) with its own cluster in a temporary
# data dir, echo OTP and no rate limits, on a free port; mints a service
# token; runs page.test.mjs with Debian's Chromium; stops the server by PID.
#   BOOKING_BIN=target/debug/booking tests/browser/run.sh
# BOOKING_WEB_DEV: 1 = serve web/ through web/dev-server.mjs in front of the
# server (for a binary that does not serve GET / yet); 0 (default) = the
# binary serves the page itself; auto = 1 if the binary's GET / is not the page.
# Needs: node >= 20, `npm ci` done here, /usr/bin/chromium (or $CHROMIUM).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
: "${BOOKING_BIN:?set BOOKING_BIN to the booking binary}"
BIN=$(cd "$(dirname "$BOOKING_BIN")" && pwd)/$(basename "$BOOKING_BIN")
MODE=${BOOKING_WEB_DEV:-0}

WORK=$(mktemp -d /tmp/booking-browser.XXXXXX)
chmod 755 "$WORK" # as root, the private cluster runs as the postgres user
SERVER_PID= WEB_PID=
stop() { # by PID: TERM, wait up to 10 s, then KILL
  local pid=$1
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
}
cleanup() {
  stop "$WEB_PID"
  stop "$SERVER_PID"
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }
PORT=$(free_port)
export BOOKING_ADDR="127.0.0.1:$PORT" BOOKING_DATA_DIR="$WORK/data" BOOKING_OTP_DELIVERY=echo \
  BOOKING_RATE_LIMITS=off RUST_LOG=${RUST_LOG:-warn}
unset DATABASE_URL BOOKING_SERVE_DATABASE_URL BOOKING_JWT_SECRET BOOKING_PUBLIC_URL

"$BIN" migrate 2>"$WORK/migrate.log" || { cat "$WORK/migrate.log"; exit 1; }
BOOKING_SERVICE_TOKEN=$("$BIN" token --service --ttl 3600 2>>"$WORK/migrate.log")
export BOOKING_SERVICE_TOKEN

"$BIN" serve 2>"$WORK/server.log" &
SERVER_PID=$!
API="http://127.0.0.1:$PORT"
for i in $(seq 1 300); do
  if curl -fsS "$API/readyz" >/dev/null 2>&1; then break; fi
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then echo "server exited during start:"; tail -n 30 "$WORK/server.log"; exit 1; fi
  [ "$i" = 300 ] && { echo "server not ready after 30 s"; tail -n 30 "$WORK/server.log"; exit 1; }
  sleep 0.1
done

if [ "$MODE" = auto ]; then
  if curl -fsS "$API/" 2>/dev/null | grep -q 'src="/app.js"'; then MODE=0; else MODE=1; fi
  echo "== browser: BOOKING_WEB_DEV=auto -> $MODE"
fi
BOOKING_URL=$API
if [ "$MODE" = 1 ]; then
  WEB_PORT=$(free_port)
  BOOKING_UPSTREAM=$API WEB_PORT=$WEB_PORT node "$ROOT/web/dev-server.mjs" >"$WORK/web.log" 2>&1 &
  WEB_PID=$!
  for i in $(seq 1 100); do
    grep -q listening "$WORK/web.log" 2>/dev/null && break
    [ "$i" = 100 ] && { echo "web/dev-server.mjs did not start"; cat "$WORK/web.log"; exit 1; }
    sleep 0.1
  done
  BOOKING_URL="http://127.0.0.1:$WEB_PORT"
  echo "== browser: web/ through web/dev-server.mjs on $BOOKING_URL, API on $API"
else
  echo "== browser: the page as the binary serves it, on $BOOKING_URL"
fi
export BOOKING_URL

status=0
(cd "$HERE" && node --test --test-concurrency=1 page.test.mjs) || status=$?
if [ "$status" != 0 ]; then
  echo "== browser: FAILED; last server log lines:"
  tail -n 30 "$WORK/server.log" || true
fi
exit "$status"
