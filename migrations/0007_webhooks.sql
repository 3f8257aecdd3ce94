-- 0007_webhooks: events out, through a transactional outbox.
--
-- Every change to a booking writes its webhook messages in the change's own
-- transaction, from an AFTER trigger on booking.bookings — so every door (the
-- HTTP API, psql, PostgREST, supabase-js rpc) produces them, a rolled-back
-- change leaves none, and a committed one always has them.
--
-- One message row per (change, subscribed endpoint), fanned out when the
-- change is written: each endpoint has its own delivery state (attempts,
-- schedule, failure) and its own log, so one endpoint failing never delays or
-- re-sends to another, and a message is claimed, retried and resent as one
-- row. The cost is one INSERT … SELECT per change over the (small) endpoint
-- table; with no endpoints a change costs one index probe.
--
-- The delivery worker of every `booking serve` process claims due messages in
-- small batches (FOR UPDATE SKIP LOCKED, then a lease), POSTs them outside any
-- transaction, and settles each. A process that dies holding a lease loses it
-- when the lease runs out, and another picks the message up: nothing is stuck.

-- ---------------------------------------------------------------------------
-- Reminders: minutes before start at which a booking.reminder is due.
-- ---------------------------------------------------------------------------
ALTER TABLE booking.resources ADD COLUMN reminders_minutes int[] NOT NULL DEFAULT '{}',
  ADD CONSTRAINT resources_reminders_minutes CHECK (
    cardinality(reminders_minutes) <= 5
    AND array_position(reminders_minutes, NULL) IS NULL
    AND 1 <= ALL (reminders_minutes) AND 43200 >= ALL (reminders_minutes));

-- ---------------------------------------------------------------------------
-- Endpoints (administered by the service role).
-- ---------------------------------------------------------------------------
CREATE TABLE booking.webhook_endpoints (
  id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  url                   text NOT NULL
    CONSTRAINT webhook_endpoints_url CHECK (char_length(url) BETWEEN 10 AND 2048 AND url ~ '^https?://'),
  -- NULL: every event
  events                text[]
    CONSTRAINT webhook_endpoints_events CHECK (events IS NULL OR (
      cardinality(events) BETWEEN 1 AND 13 AND events <@ ARRAY['booking.created', 'booking.rescheduled',
        'booking.cancelled', 'booking.pending', 'booking.approved', 'booking.rejected', 'booking.expired',
        'booking.reminder', 'hold.created', 'hold.confirmed', 'hold.expired', 'series.created',
        'series.cancelled']::text[])),
  resource_id           uuid REFERENCES booking.resources (id) ON DELETE CASCADE,
  description           text
    CONSTRAINT webhook_endpoints_description CHECK (description IS NULL OR char_length(description) <= 500),
  secret                text NOT NULL CONSTRAINT webhook_endpoints_secret CHECK (secret ~ '^whsec_[A-Za-z0-9+/]{43}=$'),
  -- after a rotation the previous secret signs alongside until then
  previous_secret       text CONSTRAINT webhook_endpoints_previous_secret CHECK (previous_secret ~ '^whsec_[A-Za-z0-9+/]{43}=$'),
  previous_secret_until timestamptz,
  active                boolean NOT NULL DEFAULT true,
  disabled_reason       text,
  -- the first failure since the last success (NULL while healthy)
  failing_since         timestamptz,
  created_at            timestamptz NOT NULL DEFAULT clock_timestamp(),
  updated_at            timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX webhook_endpoints_created_idx ON booking.webhook_endpoints (created_at, id);

-- ---------------------------------------------------------------------------
-- Messages: the outbox.
-- ---------------------------------------------------------------------------
CREATE TABLE booking.webhook_messages (
  id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),  -- the webhook-id
  -- the order changes were written in (per endpoint and subject, messages are
  -- delivered in this order)
  seq            bigint GENERATED ALWAYS AS IDENTITY,
  -- no foreign key: its check would lock the endpoint's row (FOR KEY SHARE)
  -- in every booking write, and concurrent writers would queue on that one
  -- row. An endpoint is deleted in steps instead (turned off, its messages
  -- purged, then the row), and prune removes any message left without one.
  endpoint_id    uuid NOT NULL,
  event          text NOT NULL,
  -- the booking (hold, series) the message is about
  subject_id     uuid NOT NULL,
  -- the object after the change, with `previous` where it changed
  data           jsonb NOT NULL,
  created_at     timestamptz NOT NULL,
  due_at         timestamptz NOT NULL,
  state          text NOT NULL DEFAULT 'pending'
    CONSTRAINT webhook_messages_state CHECK (state IN ('pending', 'delivered', 'failed')),
  attempts       int NOT NULL DEFAULT 0,  -- every attempt ever made
  round_attempts int NOT NULL DEFAULT 0,  -- attempts since it was (re)sent: the retry schedule's step
  lease          uuid,                    -- the claim in progress, if any
  leased_until   timestamptz,
  last_status    int,
  last_error     text,
  finished_at    timestamptz
);
-- the claim walks each active endpoint's due messages (never a disabled
-- endpoint's backlog); the trigger finds a booking's pending reminders
CREATE INDEX webhook_messages_due_idx ON booking.webhook_messages (endpoint_id, due_at, seq) WHERE state = 'pending';
CREATE INDEX webhook_messages_reminders_idx ON booking.webhook_messages (subject_id)
  WHERE state = 'pending' AND event = 'booking.reminder';
CREATE INDEX webhook_messages_subject_idx ON booking.webhook_messages (subject_id, endpoint_id, seq)
  WHERE state = 'pending';
CREATE INDEX webhook_messages_finished_idx ON booking.webhook_messages (finished_at) WHERE state <> 'pending';
CREATE INDEX webhook_messages_endpoint_idx ON booking.webhook_messages (endpoint_id);

-- The delivery log: one row per attempt.
CREATE TABLE booking.webhook_attempts (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  endpoint_id uuid NOT NULL REFERENCES booking.webhook_endpoints (id) ON DELETE CASCADE,
  message_id  uuid NOT NULL REFERENCES booking.webhook_messages (id) ON DELETE CASCADE,
  event       text NOT NULL,
  attempt     int NOT NULL,
  status_code int,
  error       text,
  duration_ms int NOT NULL,
  at          timestamptz NOT NULL
);
CREATE INDEX webhook_attempts_endpoint_idx ON booking.webhook_attempts (endpoint_id, id DESC);
CREATE INDEX webhook_attempts_message_idx ON booking.webhook_attempts (message_id);

ALTER TABLE booking.webhook_endpoints ENABLE ROW LEVEL SECURITY;
ALTER TABLE booking.webhook_endpoints FORCE ROW LEVEL SECURITY;
ALTER TABLE booking.webhook_messages ENABLE ROW LEVEL SECURITY;
ALTER TABLE booking.webhook_messages FORCE ROW LEVEL SECURITY;
ALTER TABLE booking.webhook_attempts ENABLE ROW LEVEL SECURITY;
ALTER TABLE booking.webhook_attempts FORCE ROW LEVEL SECURITY;
-- No policy for authenticated or anon: users never see endpoints, secrets or
-- messages. The service role (BYPASSRLS) administers endpoints and reads the
-- outbox and the log; it writes messages and attempts only through the
-- functions below. The owner writes them from the trigger and the functions.
REVOKE ALL ON booking.webhook_endpoints, booking.webhook_messages, booking.webhook_attempts
  FROM PUBLIC, anon, authenticated, service_role;
GRANT SELECT, INSERT, UPDATE, DELETE ON booking.webhook_endpoints TO service_role;
GRANT SELECT ON booking.webhook_messages, booking.webhook_attempts TO service_role;
CREATE POLICY webhook_endpoints_definer ON booking.webhook_endpoints FOR ALL TO CURRENT_USER USING (true) WITH CHECK (true);
CREATE POLICY webhook_messages_definer ON booking.webhook_messages FOR ALL TO CURRENT_USER USING (true) WITH CHECK (true);
CREATE POLICY webhook_attempts_definer ON booking.webhook_attempts FOR ALL TO CURRENT_USER USING (true) WITH CHECK (true);

-- ---------------------------------------------------------------------------
-- Writing messages.
-- ---------------------------------------------------------------------------
-- A booking as webhook data (the API's fields; the server renders the times).
CREATE FUNCTION booking.booking_data(b booking.bookings) RETURNS jsonb
  LANGUAGE sql STABLE
  SET search_path = pg_catalog, pg_temp
  AS $$
    SELECT jsonb_build_object('id', b.id, 'resource_id', b.resource_id, 'user_id', b.user_id,
      'start', lower(b.period), 'end', upper(b.period), 'status', b.status, 'note', b.note,
      'version', b.version, 'created_at', b.created_at, 'updated_at', b.updated_at,
      'cancelled_at', b.cancelled_at)
  $$;

-- One message per active endpoint subscribed to `p_event` (and to the
-- resource, if it names one), due at `p_due` (default: now).
CREATE FUNCTION booking.enqueue_message(p_event text, p_resource uuid, p_subject uuid, p_data jsonb,
                                        p_due timestamptz DEFAULT NULL)
  RETURNS void
  LANGUAGE sql
  SET search_path = pg_catalog, pg_temp
  AS $$
    INSERT INTO booking.webhook_messages (endpoint_id, event, subject_id, data, created_at, due_at)
    SELECT e.id, p_event, p_subject, p_data, booking.clock(), coalesce(p_due, booking.clock())
      FROM booking.webhook_endpoints e
     WHERE e.active
       AND (e.events IS NULL OR p_event = ANY (e.events))
       AND (e.resource_id IS NULL OR e.resource_id = p_resource)
  $$;

-- AFTER INSERT/UPDATE on bookings: the change's message, and the booking's
-- reminders replaced (moved with it, dropped when it is no longer confirmed).
-- Runs as the writer: the owner, inside the SECURITY DEFINER write functions
-- (request roles cannot write bookings).
CREATE FUNCTION booking.bookings_outbox() RETURNS trigger
  LANGUAGE plpgsql
  SET search_path = pg_catalog, pg_temp
  AS $$
DECLARE
  ev text;
  d jsonb;
  at timestamptz;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM booking.webhook_endpoints) THEN
    RETURN NULL;  -- nobody listens: the common case costs one probe
  END IF;
  IF TG_OP = 'INSERT' THEN
    ev := CASE WHEN NEW.status = 'pending' THEN 'booking.pending' ELSE 'booking.created' END;
  ELSIF NEW.status <> OLD.status THEN
    ev := CASE
      WHEN OLD.status = 'pending' AND NEW.status = 'confirmed' THEN 'booking.approved'
      ELSE 'booking.' || NEW.status
    END;
  ELSIF NEW.period <> OLD.period THEN
    ev := 'booking.rescheduled';
  END IF;
  d := booking.booking_data(NEW);
  IF ev IS NOT NULL THEN
    PERFORM booking.enqueue_message(ev, NEW.resource_id, NEW.id,
      CASE WHEN TG_OP = 'UPDATE'
        THEN d || jsonb_build_object('previous', jsonb_build_object(
               'start', lower(OLD.period), 'end', upper(OLD.period), 'status', OLD.status))
        ELSE d END);
  END IF;
  -- reminders follow the booking's time and status (a note-only change
  -- leaves them); one being delivered right now is left to finish
  IF TG_OP = 'UPDATE' AND (NEW.period <> OLD.period OR NEW.status <> OLD.status) THEN
    DELETE FROM booking.webhook_messages
     WHERE subject_id = NEW.id AND state = 'pending' AND event = 'booking.reminder'
       AND (leased_until IS NULL OR leased_until < booking.clock());
  ELSIF TG_OP = 'UPDATE' THEN
    RETURN NULL;
  END IF;
  IF NEW.status = 'confirmed' THEN
    at := booking.clock();
    INSERT INTO booking.webhook_messages (endpoint_id, event, subject_id, data, created_at, due_at)
    SELECT e.id, 'booking.reminder', NEW.id, d, at, lower(NEW.period) - make_interval(mins => m)
      FROM booking.resources r
      CROSS JOIN LATERAL unnest(r.reminders_minutes) AS m
      JOIN booking.webhook_endpoints e
        ON e.active
       AND (e.events IS NULL OR 'booking.reminder' = ANY (e.events))
       AND (e.resource_id IS NULL OR e.resource_id = NEW.resource_id)
     WHERE r.id = NEW.resource_id
       AND lower(NEW.period) - make_interval(mins => m) > at
       ;
  END IF;
  RETURN NULL;
END
$$;
CREATE TRIGGER bookings_outbox AFTER INSERT OR UPDATE ON booking.bookings
  FOR EACH ROW EXECUTE FUNCTION booking.bookings_outbox();

-- ---------------------------------------------------------------------------
-- The delivery worker's functions (service role only).
-- ---------------------------------------------------------------------------
-- Claim up to p_limit due messages of active endpoints for p_lease_seconds,
-- at most 8 of one endpoint per claim, none of the endpoints in p_skip (the
-- caller's busiest), walking each active endpoint's due messages by index —
-- a disabled endpoint's backlog is never read. A message waits while an
-- earlier message about the same subject to the same endpoint is still
-- pending (so created → rescheduled → cancelled arrive in that order);
-- reminders are scheduled, not ordered.
CREATE FUNCTION booking.webhook_claim(p_limit int, p_lease_seconds int, p_skip uuid[] DEFAULT '{}')
  RETURNS TABLE (id uuid, lease uuid, endpoint_id uuid, event text, data jsonb, created_at timestamptz,
                 due_at timestamptz, attempt int, round_attempt int, url text, secret text,
                 previous_secret text)
  LANGUAGE plpgsql SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
  AS $$
#variable_conflict use_column
DECLARE
  at timestamptz := booking.clock();
  l uuid := gen_random_uuid();
BEGIN
  IF NOT booking.caller_is_service() THEN
    RAISE EXCEPTION 'service role only' USING ERRCODE = 'insufficient_privilege';
  END IF;
  RETURN QUERY
  WITH candidates AS (
    SELECT c.id, c.due_at, c.seq
      FROM booking.webhook_endpoints e
      CROSS JOIN LATERAL (
        SELECT m.id, m.due_at, m.seq FROM booking.webhook_messages m
         WHERE m.endpoint_id = e.id AND m.state = 'pending' AND m.due_at <= at
           AND (m.leased_until IS NULL OR m.leased_until < at)
           AND (m.event = 'booking.reminder' OR NOT EXISTS (
                 SELECT 1 FROM booking.webhook_messages p
                  WHERE p.subject_id = m.subject_id AND p.endpoint_id = m.endpoint_id
                    AND p.state = 'pending' AND p.seq < m.seq AND p.event <> 'booking.reminder'))
         ORDER BY m.due_at, m.seq
         LIMIT 8
      ) c
     WHERE e.active AND NOT (e.id = ANY (coalesce(p_skip, '{}')))
     ORDER BY c.due_at, c.seq
     LIMIT least(greatest(p_limit, 1), 100)
  ), due AS (
    SELECT m.id FROM booking.webhook_messages m
     WHERE m.id IN (SELECT id FROM candidates) AND m.state = 'pending'
       AND (m.leased_until IS NULL OR m.leased_until < at)
       FOR UPDATE SKIP LOCKED
  )
  UPDATE booking.webhook_messages m
     SET lease = l,
         leased_until = at + make_interval(secs => least(greatest(p_lease_seconds, 15), 600)),
         attempts = m.attempts + 1,
         round_attempts = m.round_attempts + 1
    FROM due, booking.webhook_endpoints e
   WHERE m.id = due.id AND e.id = m.endpoint_id
  RETURNING m.id, l, m.endpoint_id, m.event, m.data, m.created_at, m.due_at, m.attempts,
            m.round_attempts, e.url, e.secret,
            CASE WHEN e.previous_secret_until > at THEN e.previous_secret END;
END
$$;

-- Record an attempt and settle the message: p_outcome is 'delivered',
-- 'gone' (410: the endpoint is disabled), or 'failed' (retried after
-- p_retry_seconds, or given up when p_retry_seconds is NULL). Only the
-- holder of the lease settles the message (a lease that ran out and was
-- claimed again belongs to the new claim); the attempt is logged either way.
-- Endpoints failing for longer than p_disable_after_days (0: never) are
-- disabled.
CREATE FUNCTION booking.webhook_settle(p_id uuid, p_lease uuid, p_outcome text, p_status int, p_error text,
                                       p_duration_ms int, p_retry_seconds double precision,
                                       p_disable_after_days int)
  RETURNS void
  LANGUAGE plpgsql SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
  AS $$
DECLARE
  at timestamptz := booking.clock();
  m booking.webhook_messages;
BEGIN
  IF NOT booking.caller_is_service() THEN
    RAISE EXCEPTION 'service role only' USING ERRCODE = 'insufficient_privilege';
  END IF;
  IF p_outcome NOT IN ('delivered', 'gone', 'failed') THEN
    RAISE EXCEPTION 'unknown outcome %', p_outcome USING ERRCODE = 'invalid_parameter_value';
  END IF;
  SELECT * INTO m FROM booking.webhook_messages WHERE id = p_id;
  IF NOT FOUND THEN
    RETURN;  -- deleted meanwhile (a reminder moved with its booking, an endpoint deleted)
  END IF;
  INSERT INTO booking.webhook_attempts (endpoint_id, message_id, event, attempt, status_code, error, duration_ms, at)
  VALUES (m.endpoint_id, m.id, m.event, m.attempts, p_status, left(p_error, 500), greatest(p_duration_ms, 0), at);
  IF m.lease IS DISTINCT FROM p_lease OR m.state <> 'pending' THEN
    RETURN;
  END IF;
  IF p_outcome = 'delivered' THEN
    UPDATE booking.webhook_messages
       SET state = 'delivered', lease = NULL, leased_until = NULL, last_status = p_status,
           last_error = NULL, finished_at = at
     WHERE id = p_id;
    UPDATE booking.webhook_endpoints SET failing_since = NULL
     WHERE id = m.endpoint_id AND failing_since IS NOT NULL;
  ELSIF p_outcome = 'gone' THEN
    UPDATE booking.webhook_messages
       SET state = 'failed', lease = NULL, leased_until = NULL, last_status = p_status,
           last_error = left(p_error, 500), finished_at = at
     WHERE id = p_id;
    UPDATE booking.webhook_endpoints
       SET active = false, disabled_reason = 'the receiver answered 410 Gone', updated_at = at
     WHERE id = m.endpoint_id;
  ELSE
    UPDATE booking.webhook_messages
       SET state = CASE WHEN p_retry_seconds IS NULL THEN 'failed' ELSE 'pending' END,
           due_at = CASE WHEN p_retry_seconds IS NULL THEN due_at
                         ELSE at + make_interval(secs => p_retry_seconds) END,
           lease = NULL, leased_until = NULL, last_status = p_status, last_error = left(p_error, 500),
           finished_at = CASE WHEN p_retry_seconds IS NULL THEN at END
     WHERE id = p_id;
    UPDATE booking.webhook_endpoints
       SET failing_since = at
     WHERE id = m.endpoint_id AND failing_since IS NULL;
    IF p_disable_after_days > 0 THEN
      UPDATE booking.webhook_endpoints
         SET active = false, updated_at = at,
             disabled_reason = format('every delivery failed for %s days', p_disable_after_days)
       WHERE id = m.endpoint_id AND active
         AND failing_since < at - make_interval(days => p_disable_after_days);
    END IF;
  END IF;
END
$$;

-- Settle a batch of attempts in one call (one transaction for a whole
-- claimed batch): the arrays run in parallel, one element per attempt.
CREATE FUNCTION booking.webhook_settle_batch(p_ids uuid[], p_leases uuid[], p_outcomes text[], p_statuses int[],
                                             p_errors text[], p_durations int[], p_retries double precision[],
                                             p_disable_after_days int)
  RETURNS void
  LANGUAGE plpgsql SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
  AS $$
BEGIN
  IF NOT booking.caller_is_service() THEN
    RAISE EXCEPTION 'service role only' USING ERRCODE = 'insufficient_privilege';
  END IF;
  IF cardinality(p_ids) > 1000 THEN
    RAISE EXCEPTION 'at most 1000 attempts per batch' USING ERRCODE = 'program_limit_exceeded';
  END IF;
  FOR i IN 1 .. coalesce(cardinality(p_ids), 0) LOOP
    PERFORM booking.webhook_settle(p_ids[i], p_leases[i], p_outcomes[i], p_statuses[i], p_errors[i],
                                   p_durations[i], p_retries[i], p_disable_after_days);
  END LOOP;
END
$$;

-- Send a message again (admin): due now, a fresh retry schedule, the same id.
-- False when the endpoint has no such message.
CREATE FUNCTION booking.webhook_resend(p_endpoint uuid, p_id uuid)
  RETURNS boolean
  LANGUAGE plpgsql SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
  AS $$
BEGIN
  IF NOT booking.caller_is_service() THEN
    RAISE EXCEPTION 'service role only' USING ERRCODE = 'insufficient_privilege';
  END IF;
  UPDATE booking.webhook_messages
     SET state = 'pending', due_at = booking.clock(), round_attempts = 0, lease = NULL,
         leased_until = NULL, finished_at = NULL
   WHERE id = p_id AND endpoint_id = p_endpoint;
  RETURN FOUND;
END
$$;

-- Deleting an endpoint (admin), step two: after it was turned off, its
-- messages (and their log) go in bounded batches, each its own statement, so
-- a large backlog never holds one long transaction; returns how many went.
CREATE FUNCTION booking.webhook_purge_endpoint(p_endpoint uuid, p_limit int)
  RETURNS int
  LANGUAGE plpgsql SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
  AS $$
DECLARE
  n int;
BEGIN
  IF NOT booking.caller_is_service() THEN
    RAISE EXCEPTION 'service role only' USING ERRCODE = 'insufficient_privilege';
  END IF;
  DELETE FROM booking.webhook_messages WHERE id IN (
    SELECT id FROM booking.webhook_messages WHERE endpoint_id = p_endpoint
     LIMIT least(greatest(p_limit, 1), 10000));
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n;
END
$$;

-- Outbox depth and the age of the oldest due message (metrics).
CREATE FUNCTION booking.webhook_backlog()
  RETURNS TABLE (pending bigint, due bigint, oldest_due_seconds double precision)
  LANGUAGE plpgsql SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
  AS $$
#variable_conflict use_column
DECLARE
  at timestamptz := booking.clock();
BEGIN
  IF NOT booking.caller_is_service() THEN
    RAISE EXCEPTION 'service role only' USING ERRCODE = 'insufficient_privilege';
  END IF;
  RETURN QUERY
  SELECT count(*), count(*) FILTER (WHERE m.due_at <= at),
         coalesce(extract(epoch FROM at - min(m.due_at) FILTER (WHERE m.due_at <= at))::float8, 0)
    FROM booking.webhook_endpoints e
    JOIN booking.webhook_messages m ON m.endpoint_id = e.id AND m.state = 'pending'
   WHERE e.active;
END
$$;

-- Housekeeping: delivered and failed messages (and their log) are kept 30
-- days; at most p_limit per call.
CREATE FUNCTION booking.webhook_prune(p_limit int)
  RETURNS int
  LANGUAGE plpgsql SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
  AS $$
DECLARE
  n int;
BEGIN
  IF NOT booking.caller_is_service() THEN
    RAISE EXCEPTION 'service role only' USING ERRCODE = 'insufficient_privilege';
  END IF;
  DELETE FROM booking.webhook_messages WHERE id IN (
    (SELECT id FROM booking.webhook_messages
      WHERE state <> 'pending' AND finished_at < booking.clock() - interval '30 days'
      LIMIT least(greatest(p_limit, 1), 10000))
    UNION ALL
    -- written by a change that committed while its endpoint was being deleted
    (SELECT m.id FROM booking.webhook_messages m
      WHERE NOT EXISTS (SELECT 1 FROM booking.webhook_endpoints e WHERE e.id = m.endpoint_id)
      LIMIT least(greatest(p_limit, 1), 10000)));
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n;
END
$$;

REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA booking FROM PUBLIC, anon, authenticated, service_role;
-- re-grant 0006's (a blanket revoke above covers every function)
GRANT EXECUTE ON FUNCTION booking.schema_version() TO anon, authenticated, service_role;
GRANT EXECUTE ON FUNCTION booking.me() TO authenticated;
GRANT EXECUTE ON FUNCTION booking.set_display_name(text) TO authenticated;
GRANT EXECUTE ON FUNCTION booking.remember_response(text, text, int, text, jsonb) TO authenticated;
GRANT EXECUTE ON FUNCTION booking.create_booking(uuid, timestamptz, timestamptz, text) TO authenticated;
GRANT EXECUTE ON FUNCTION booking.reschedule_booking(uuid, timestamptz, timestamptz, boolean, text, int)
  TO authenticated, service_role;
GRANT EXECUTE ON FUNCTION booking.cancel_booking(uuid, int) TO authenticated, service_role;
GRANT EXECUTE ON FUNCTION booking.availability(uuid, timestamptz, timestamptz, int)
  TO authenticated, service_role;
GRANT EXECUTE ON FUNCTION booking.seats_in_use_beyond(uuid, int) TO service_role;
GRANT EXECUTE ON FUNCTION booking.webhook_claim(int, int, uuid[]) TO service_role;
GRANT EXECUTE ON FUNCTION booking.webhook_settle(uuid, uuid, text, int, text, int, double precision, int)
  TO service_role;
GRANT EXECUTE ON FUNCTION booking.webhook_settle_batch(uuid[], uuid[], text[], int[], text[], int[],
                                                       double precision[], int) TO service_role;
GRANT EXECUTE ON FUNCTION booking.webhook_resend(uuid, uuid) TO service_role;
GRANT EXECUTE ON FUNCTION booking.webhook_backlog() TO service_role;
GRANT EXECUTE ON FUNCTION booking.webhook_prune(int) TO service_role;
GRANT EXECUTE ON FUNCTION booking.webhook_purge_endpoint(uuid, int) TO service_role;
