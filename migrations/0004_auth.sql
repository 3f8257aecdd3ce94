-- 0004_auth: sign-in by phone. One-time codes (OTP), sessions with rotating
-- refresh tokens, the key the codes are hashed with, and per-IP request
-- counters.
--
-- Who touches these tables: only the server's sign-in code, running as
-- service_role (which has BYPASSRLS). No request role ever reads them: a user
-- has no business seeing another's codes, sessions or counters, and not even
-- their own (a hash of a refresh token is as good as nothing to them, and
-- nothing to leak). So each table has RLS ENABLEd and FORCEd with no policy at
-- all — for anon and authenticated that means "no rows, ever", whatever grant
-- might be added by mistake later — and privileges are revoked from them too.
--
-- Secrets are never stored in plain: a code is kept as HMAC-SHA256 under the
-- server key below (a database dump alone does not let anyone test the 10^6
-- candidates without also reading that key; a log line never holds it), a
-- refresh token as its SHA-256 (it is 256 random bits: no key needed).
--
-- All times are written by the server from its own clock, not with now(), so
-- that every decision (expiry, windows) is taken against one clock.

-- ---------------------------------------------------------------------------
-- server_keys: secrets every server instance on this database must share
-- (today one row, name 'otp_hmac': the HMAC key of the sign-in codes). The
-- first instance that needs a key generates it from the OS CSPRNG and inserts
-- it with ON CONFLICT DO NOTHING; every instance then reads the one winner.
-- Kept in the database rather than in each instance's data dir so that a code
-- sent by one instance verifies on another.
-- ---------------------------------------------------------------------------
CREATE TABLE booking.server_keys (
  name       text PRIMARY KEY,
  secret     bytea NOT NULL CONSTRAINT server_keys_secret_length CHECK (octet_length(secret) >= 32),
  created_at timestamptz NOT NULL DEFAULT now()
);

-- ---------------------------------------------------------------------------
-- otp_codes: the current sign-in code of a phone, at most one (the primary
-- key is the phone: a new code replaces the old one). code_hash is
-- HMAC-SHA256(server key, phone || 0x00 || code). attempts counts wrong tries;
-- the row is deleted when it is used, when it reaches 5 wrong tries, or when it
-- is found expired. Phones here need not belong to a user: codes are sent to
-- any valid number, so the answer never tells whether the phone is known.
-- ---------------------------------------------------------------------------
CREATE TABLE booking.otp_codes (
  phone      text PRIMARY KEY CONSTRAINT otp_codes_phone_e164 CHECK (phone ~ '^\+[1-9][0-9]{1,14}$'),
  id         uuid NOT NULL DEFAULT gen_random_uuid(),
  code_hash  bytea NOT NULL CONSTRAINT otp_codes_hash_length CHECK (octet_length(code_hash) = 32),
  attempts   int NOT NULL DEFAULT 0 CONSTRAINT otp_codes_attempts CHECK (attempts BETWEEN 0 AND 5),
  created_at timestamptz NOT NULL,
  expires_at timestamptz NOT NULL,
  CONSTRAINT otp_codes_expiry CHECK (expires_at > created_at)
);
-- Housekeeping deletes expired codes of phones that never came back.
CREATE INDEX otp_codes_expires_idx ON booking.otp_codes (expires_at);

-- ---------------------------------------------------------------------------
-- otp_sends: one row per code sent, for the per-phone rules that always hold
-- (not within 60 s of the last one, at most 5 per rolling hour). They protect
-- the phone's owner from being flooded with SMS and bound guessing: each code
-- dies after 5 wrong tries, so at most 25 guesses per phone per hour. A send
-- whose delivery failed is removed again, so the caller may retry at once.
-- Rows older than an hour mean nothing and are deleted.
-- ---------------------------------------------------------------------------
CREATE TABLE booking.otp_sends (
  id      uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  phone   text NOT NULL,
  sent_at timestamptz NOT NULL
);
CREATE INDEX otp_sends_phone_idx ON booking.otp_sends (phone, sent_at);
CREATE INDEX otp_sends_sent_idx ON booking.otp_sends (sent_at);

-- ---------------------------------------------------------------------------
-- auth_sessions: one per successful sign-in; its id is the access token's
-- session_id claim. Revoked on logout, or when a refresh token of it is used a
-- second time (the sign of a stolen token: the thief and the owner both hold
-- it, and we cannot tell which one is asking, so both lose the session).
-- ---------------------------------------------------------------------------
CREATE TABLE booking.auth_sessions (
  id             uuid PRIMARY KEY,
  user_id        uuid NOT NULL REFERENCES booking.users (id) ON DELETE CASCADE,
  created_at     timestamptz NOT NULL,
  revoked_at     timestamptz,
  revoked_reason text CONSTRAINT auth_sessions_reason CHECK (revoked_reason IN ('logout', 'refresh_token_reused')),
  CONSTRAINT auth_sessions_revoked CHECK ((revoked_at IS NULL) = (revoked_reason IS NULL))
);
CREATE INDEX auth_sessions_user_idx ON booking.auth_sessions (user_id);

-- ---------------------------------------------------------------------------
-- refresh_tokens: every refresh token ever issued in a session, by SHA-256.
-- A token works once: using it sets used_at and issues the next one. A used
-- token is kept (until it would have expired) precisely so that its reuse is
-- recognised and revokes the session. The session row is locked while a
-- token is checked and rotated, so two concurrent uses of one token cannot
-- both succeed.
-- ---------------------------------------------------------------------------
CREATE TABLE booking.refresh_tokens (
  token_hash bytea PRIMARY KEY CONSTRAINT refresh_tokens_hash_length CHECK (octet_length(token_hash) = 32),
  session_id uuid NOT NULL REFERENCES booking.auth_sessions (id) ON DELETE CASCADE,
  created_at timestamptz NOT NULL,
  expires_at timestamptz NOT NULL,
  used_at    timestamptz,
  CONSTRAINT refresh_tokens_expiry CHECK (expires_at > created_at)
);
CREATE INDEX refresh_tokens_session_idx ON booking.refresh_tokens (session_id);
CREATE INDEX refresh_tokens_expires_idx ON booking.refresh_tokens (expires_at);

-- ---------------------------------------------------------------------------
-- rate_limits: request counters per bucket (e.g. 'auth:ip:203.0.113.7') and
-- fixed window. Kept here, not in process memory, so a limit holds across
-- every server instance behind a load balancer. One upsert per request:
-- INSERT ... ON CONFLICT (bucket, window_start) DO UPDATE SET hits = hits + 1.
-- Old windows are deleted by housekeeping.
-- ---------------------------------------------------------------------------
CREATE TABLE booking.rate_limits (
  bucket       text NOT NULL,
  window_start timestamptz NOT NULL,
  hits         int NOT NULL CONSTRAINT rate_limits_hits CHECK (hits >= 1),
  PRIMARY KEY (bucket, window_start)
);
CREATE INDEX rate_limits_window_idx ON booking.rate_limits (window_start);

-- ---------------------------------------------------------------------------
-- Row Level Security: on, forced (the owner too), and no policy for anyone:
-- only BYPASSRLS service_role gets through.
-- ---------------------------------------------------------------------------
ALTER TABLE booking.server_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE booking.server_keys FORCE ROW LEVEL SECURITY;
ALTER TABLE booking.otp_codes ENABLE ROW LEVEL SECURITY;
ALTER TABLE booking.otp_codes FORCE ROW LEVEL SECURITY;
ALTER TABLE booking.otp_sends ENABLE ROW LEVEL SECURITY;
ALTER TABLE booking.otp_sends FORCE ROW LEVEL SECURITY;
ALTER TABLE booking.auth_sessions ENABLE ROW LEVEL SECURITY;
ALTER TABLE booking.auth_sessions FORCE ROW LEVEL SECURITY;
ALTER TABLE booking.refresh_tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE booking.refresh_tokens FORCE ROW LEVEL SECURITY;
ALTER TABLE booking.rate_limits ENABLE ROW LEVEL SECURITY;
ALTER TABLE booking.rate_limits FORCE ROW LEVEL SECURITY;

REVOKE ALL ON booking.server_keys, booking.otp_codes, booking.otp_sends,
  booking.auth_sessions, booking.refresh_tokens, booking.rate_limits
  FROM PUBLIC, anon, authenticated;

-- service_role: what the sign-in code needs, nothing more (no TRUNCATE, no
-- REFERENCES, no TRIGGER). The server key is only ever inserted and read.
GRANT SELECT, INSERT ON booking.server_keys TO service_role;
GRANT SELECT, INSERT, UPDATE, DELETE ON booking.otp_codes, booking.otp_sends,
  booking.auth_sessions, booking.refresh_tokens, booking.rate_limits
  TO service_role;
