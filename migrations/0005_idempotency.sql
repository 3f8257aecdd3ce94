-- 0005_idempotency: Idempotency-Key records (IETF httpapi draft semantics,
-- Stripe's retention). A record is written in the SAME transaction as the
-- booking change it belongs to, so a crash can never leave a booking without
-- its key or a key without its booking. Concurrent requests with one key are
-- serialised by a transaction-level advisory lock taken by the server before
-- it looks the key up (a second request while the first runs gets 409
-- idempotency_in_progress, as the contract says).

CREATE TABLE booking.idempotency_keys (
  user_id          uuid NOT NULL,
  key              text NOT NULL CHECK (char_length(key) BETWEEN 1 AND 255),
  -- sha256 of method, path and the canonical JSON body: a reused key with a
  -- different request is 422 idempotency_key_reused.
  fingerprint      text NOT NULL,
  response_status  int  NOT NULL,
  -- the first response, byte for byte, and the headers that matter
  response_body    text NOT NULL,
  response_headers jsonb NOT NULL DEFAULT '{}',
  created_at       timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (user_id, key)
);
-- The expiry sweep walks this index in small batches.
CREATE INDEX idempotency_keys_created_idx ON booking.idempotency_keys (created_at);

-- One user's keys are invisible to another: a key is scoped to its user.
ALTER TABLE booking.idempotency_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE booking.idempotency_keys FORCE ROW LEVEL SECURITY;
REVOKE ALL ON booking.idempotency_keys FROM PUBLIC, anon, authenticated;
GRANT SELECT, INSERT ON booking.idempotency_keys TO authenticated;
GRANT SELECT, INSERT, UPDATE, DELETE ON booking.idempotency_keys TO service_role;
CREATE POLICY idempotency_select_own ON booking.idempotency_keys FOR SELECT TO authenticated
  USING (user_id = (SELECT auth.uid()));
CREATE POLICY idempotency_insert_own ON booking.idempotency_keys FOR INSERT TO authenticated
  WITH CHECK (user_id = (SELECT auth.uid()));
