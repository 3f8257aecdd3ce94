-- 0006_authority: the database is the only authority, at every door.
--
-- Until now the rules lived in functions the server called, but the tables
-- behind them were writable by `authenticated`: anyone holding that role with
-- their own claims (psql, PostgREST, supabase-js) could insert a booking off
-- the grid or in the past, shrink a booking's `blocked` range and let others
-- book over it, forge history on another user's booking (foreign-key checks
-- bypass RLS), pass a fake clock, or ignore the active-bookings cap, which
-- only Rust checked. From here on:
--
--   * request roles cannot write `bookings` or `booking_events` at all; every
--     booking write goes through create/reschedule/cancel below, which are
--     SECURITY DEFINER, take the caller only from auth.uid() (and the real
--     request role), time only from the database clock, and apply every rule:
--     the resource's rules, buffers, seats, the active-bookings cap, and "a
--     booking that has started does not move";
--   * `blocked` is derived from `period` and the buffer recorded on the row, on
--     every write, and a CHECK constraint says so (a note-only change used to
--     reset it to `period`, stripping the buffer);
--   * history is append-only for every role (a trigger refuses UPDATE, DELETE
--     and TRUNCATE, whoever asks);
--   * EXECUTE is revoked from PUBLIC on every function of the schema and
--     granted only where a request role needs it;
--   * a user who signed in elsewhere (a Supabase project) is provisioned from
--     their verified claims the first time they act, with their own id.
--
-- Applies in place to a database of the first release, with its data.

-- ---------------------------------------------------------------------------
-- Settings that every server instance on this database must share. One row.
-- `max_active_bookings` is written by `booking serve`/`migrate` from
-- BOOKING_MAX_ACTIVE_BOOKINGS at start; `clock_offset` shifts the database's
-- clock for tests and is writable only by the schema owner (migrations login).
-- ---------------------------------------------------------------------------
CREATE TABLE booking.settings (
  singleton           boolean PRIMARY KEY DEFAULT true CONSTRAINT settings_singleton CHECK (singleton),
  max_active_bookings int NOT NULL DEFAULT 100
                      CONSTRAINT settings_max_active_bookings CHECK (max_active_bookings BETWEEN 1 AND 1000000),
  clock_offset        interval NOT NULL DEFAULT '0 seconds'
);
INSERT INTO booking.settings DEFAULT VALUES;
ALTER TABLE booking.settings ENABLE ROW LEVEL SECURITY;
ALTER TABLE booking.settings FORCE ROW LEVEL SECURITY;
REVOKE ALL ON booking.settings FROM PUBLIC, anon, authenticated, service_role;
CREATE POLICY settings_owner ON booking.settings FOR ALL TO CURRENT_USER USING (true) WITH CHECK (true);

-- The database's clock: what every rule is judged against. Only the owner (and
-- the SECURITY DEFINER functions it owns) may call it. clock_timestamp(), not
-- now(): now() is the start of the transaction, so a caller who opens one and
-- waits would be judged by a clock that stood still (booking "in the future"
-- that is already past, moving a booking that has started).
CREATE FUNCTION booking.clock() RETURNS timestamptz
  LANGUAGE sql VOLATILE
  SET search_path = pg_catalog, pg_temp
  AS $$ SELECT clock_timestamp() + coalesce((SELECT clock_offset FROM booking.settings), interval '0') $$;

-- The write functions count and lock under READ COMMITTED (each statement
-- sees what committed before it) or SERIALIZABLE (conflicts abort). Under
-- REPEATABLE READ a count after a lock wait would read the transaction's
-- first snapshot and miss what the lock holder committed, so it is refused.
CREATE FUNCTION booking.require_fresh_snapshots() RETURNS void
  LANGUAGE plpgsql
  SET search_path = pg_catalog, pg_temp
  AS $$
BEGIN
  IF current_setting('transaction_isolation') = 'repeatable read' THEN
    RAISE EXCEPTION 'booking writes need READ COMMITTED or SERIALIZABLE isolation'
      USING ERRCODE = 'invalid_transaction_state';
  END IF;
END
$$;

-- Is the request running as the service role? The role actually switched to
-- (SET ROLE / set_config('role')), not a claim: claims are whatever the caller
-- set, a role switch needs membership. Unchanged inside SECURITY DEFINER.
CREATE FUNCTION booking.caller_is_service() RETURNS boolean
  LANGUAGE sql STABLE
  SET search_path = pg_catalog, pg_temp
  AS $$ SELECT current_setting('role', true) = 'service_role' $$;

-- ---------------------------------------------------------------------------
-- Users may come from another issuer (a Supabase project's Auth): their id is
-- the token's `sub`, they may have no phone (email sign-in), and a phone in
-- Supabase's claims has no '+'.
-- ---------------------------------------------------------------------------
ALTER TABLE booking.users ALTER COLUMN phone DROP NOT NULL;
-- Who vouched for the user: NULL for our own sign-in, else the `iss` of the
-- token that provisioned them. Our phone sign-in never signs anyone into a
-- user another issuer provisioned (that issuer may not have verified the
-- phone in its claims), so a phone claim cannot be used to take an account.
ALTER TABLE booking.users ADD COLUMN issuer text;

-- The caller's phone from their claims, normalised to E.164, or NULL.
CREATE FUNCTION booking.claim_phone() RETURNS text
  LANGUAGE sql STABLE
  SET search_path = pg_catalog, pg_temp
  AS $$
    SELECT CASE WHEN p ~ '^\+?[1-9][0-9]{1,14}$' THEN '+' || ltrim(p, '+') END
      FROM (SELECT regexp_replace(coalesce(auth.jwt() ->> 'phone', ''), '[\s().-]', '', 'g') AS p) x
  $$;

-- Make sure the caller (auth.uid()) has a booking.users row: the first act of
-- a user who signed in elsewhere creates it, with their id and, when their
-- claims carry one that nobody else has, their phone. Race-safe: concurrent
-- first requests all end with the one row.
CREATE FUNCTION booking.ensure_user(uid uuid) RETURNS void
  LANGUAGE plpgsql
  SET search_path = pg_catalog, pg_temp
  AS $$
BEGIN
  IF uid IS NULL OR EXISTS (SELECT 1 FROM booking.users WHERE id = uid) THEN
    RETURN;
  END IF;
  INSERT INTO booking.users (id, phone, issuer)
  VALUES (uid, booking.claim_phone(), coalesce(auth.jwt() ->> 'iss', 'unknown'))
  ON CONFLICT DO NOTHING;
  IF NOT FOUND THEN
    -- the id appeared meanwhile, or the phone belongs to another user
    INSERT INTO booking.users (id, phone, issuer)
    VALUES (uid, NULL, coalesce(auth.jwt() ->> 'iss', 'unknown'))
    ON CONFLICT (id) DO NOTHING;
  END IF;
END
$$;

-- The caller's user row, provisioned if need be (GET/PATCH /v1/me, and the
-- supabase-js door).
CREATE FUNCTION booking.me() RETURNS jsonb
  LANGUAGE plpgsql SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
  AS $$
DECLARE
  uid uuid := auth.uid();
  u booking.users;
BEGIN
  IF uid IS NULL OR booking.caller_is_service() THEN
    RETURN NULL;
  END IF;
  PERFORM booking.ensure_user(uid);
  SELECT * INTO u FROM booking.users WHERE id = uid;
  RETURN jsonb_build_object('id', u.id, 'phone', u.phone, 'display_name', u.display_name,
                            'created_at', u.created_at);
END
$$;

-- Rename yourself: the same rules as the HTTP API (trimmed, 1-100 characters,
-- no control characters, no < >); NULL clears. Request roles no longer update
-- `users` directly.
CREATE FUNCTION booking.set_display_name(p_name text) RETURNS jsonb
  LANGUAGE plpgsql SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
  AS $$
DECLARE
  uid uuid := auth.uid();
  n text := btrim(p_name);
BEGIN
  IF uid IS NULL OR booking.caller_is_service() THEN
    RETURN NULL;
  END IF;
  IF n IS NOT NULL AND (char_length(n) NOT BETWEEN 1 AND 100 OR n ~ '[\x01-\x1f\x7f-\x9f<>]') THEN
    RAISE EXCEPTION 'display_name must be 1 to 100 characters, without control characters or < >'
      USING ERRCODE = 'check_violation', CONSTRAINT = 'users_display_name_rules';
  END IF;
  PERFORM booking.ensure_user(uid);
  UPDATE booking.users SET display_name = n, updated_at = now() WHERE id = uid;
  RETURN booking.me();
END
$$;

-- ---------------------------------------------------------------------------
-- bookings.blocked, derived and checked. The buffer a booking was made (or
-- last moved) under is kept on the row, so that a later change of the
-- resource's buffer applies to bookings made after it, as documented, and a
-- change that does not move the booking (a note) keeps its range exactly.
-- Existing rows: the buffer is read back from their `blocked`.
-- ---------------------------------------------------------------------------
ALTER TABLE booking.bookings ADD COLUMN buffer_minutes int;
ALTER TABLE booking.bookings DISABLE TRIGGER USER;
UPDATE booking.bookings
   SET buffer_minutes = greatest(0, round(extract(epoch FROM upper(blocked) - upper(period)) / 60))::int;
ALTER TABLE booking.bookings ENABLE TRIGGER USER;
ALTER TABLE booking.bookings ALTER COLUMN buffer_minutes SET NOT NULL, ALTER COLUMN buffer_minutes SET DEFAULT 0,
  ADD CONSTRAINT bookings_buffer_minutes CHECK (buffer_minutes BETWEEN 0 AND 1440);
-- Rows whose `blocked` was not exactly `period` widened by whole minutes on the
-- right (none is expected) are brought in line before the check is added.
ALTER TABLE booking.bookings DISABLE TRIGGER USER;
UPDATE booking.bookings
   SET blocked = tstzrange(lower(period), upper(period) + make_interval(mins => buffer_minutes), '[)')
 WHERE blocked <> tstzrange(lower(period), upper(period) + make_interval(mins => buffer_minutes), '[)');
ALTER TABLE booking.bookings ENABLE TRIGGER USER;
ALTER TABLE booking.bookings ADD CONSTRAINT bookings_blocked_derived CHECK (
  blocked = tstzrange(lower(period), upper(period) + make_interval(mins => buffer_minutes), '[)'));

-- BEFORE INSERT/UPDATE, replacing 0002's: the same guards, and `blocked` is
-- recomputed on every write whatever the writer put there.
CREATE OR REPLACE FUNCTION booking.bookings_before_write() RETURNS trigger
  LANGUAGE plpgsql
  SET search_path = pg_catalog, pg_temp
  AS $$
DECLARE
  r record;
BEGIN
  IF TG_OP = 'UPDATE' THEN
    IF NEW.id <> OLD.id OR NEW.user_id <> OLD.user_id OR NEW.resource_id <> OLD.resource_id
       OR NEW.created_at <> OLD.created_at THEN
      RAISE EXCEPTION 'a booking''s id, user, resource and creation time never change'
        USING ERRCODE = 'check_violation', CONSTRAINT = 'bookings_immutable';
    END IF;
    IF OLD.status = 'cancelled' THEN
      RAISE EXCEPTION 'a cancelled booking cannot change'
        USING ERRCODE = 'check_violation', CONSTRAINT = 'bookings_cancelled_final';
    END IF;
    IF NEW.status = 'cancelled' AND NEW.period <> OLD.period THEN
      RAISE EXCEPTION 'a cancellation cannot move the booking'
        USING ERRCODE = 'check_violation', CONSTRAINT = 'bookings_cancel_keeps_period';
    END IF;
    NEW.version := OLD.version + 1;
    NEW.updated_at := clock_timestamp();
    NEW.cancelled_at := CASE WHEN NEW.status = 'cancelled' THEN clock_timestamp() END;
  ELSE
    NEW.version := 1;
    NEW.status := 'confirmed';
    NEW.created_at := clock_timestamp();
    NEW.updated_at := NEW.created_at;
    NEW.cancelled_at := NULL;
  END IF;
  IF TG_OP = 'INSERT' OR NEW.period <> OLD.period OR NEW.seat <> OLD.seat THEN
    SELECT buffer_minutes, capacity INTO r
      FROM booking.resources WHERE id = NEW.resource_id AND active;
    IF NOT FOUND THEN
      RAISE EXCEPTION 'no such active resource'
        USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'bookings_resource_id_fkey';
    END IF;
    IF NEW.seat > r.capacity THEN
      RAISE EXCEPTION 'seat % exceeds the resource''s capacity %', NEW.seat, r.capacity
        USING ERRCODE = 'check_violation', CONSTRAINT = 'bookings_seat_within_capacity';
    END IF;
    NEW.buffer_minutes := r.buffer_minutes;
  ELSE
    NEW.buffer_minutes := OLD.buffer_minutes;
  END IF;
  NEW.blocked := tstzrange(lower(NEW.period), upper(NEW.period) + make_interval(mins => NEW.buffer_minutes), '[)');
  RETURN NEW;
END
$$;

-- ---------------------------------------------------------------------------
-- History: append-only for every role, the owner included.
-- ---------------------------------------------------------------------------
CREATE FUNCTION booking.history_is_append_only() RETURNS trigger
  LANGUAGE plpgsql
  SET search_path = pg_catalog, pg_temp
  AS $$
BEGIN
  RAISE EXCEPTION 'booking history is append-only'
    USING ERRCODE = 'insufficient_privilege', CONSTRAINT = 'booking_events_append_only';
END
$$;
CREATE TRIGGER booking_events_append_only BEFORE UPDATE OR DELETE ON booking.booking_events
  FOR EACH ROW EXECUTE FUNCTION booking.history_is_append_only();
CREATE TRIGGER booking_events_no_truncate BEFORE TRUNCATE ON booking.booking_events
  FOR EACH STATEMENT EXECUTE FUNCTION booking.history_is_append_only();

-- ---------------------------------------------------------------------------
-- Privileges. Request roles read through RLS and write through the functions.
-- ---------------------------------------------------------------------------
REVOKE INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER
  ON booking.bookings, booking.booking_events
  FROM PUBLIC, anon, authenticated, service_role;
REVOKE ALL ON booking.schema_migrations FROM PUBLIC, anon, authenticated, service_role;
REVOKE TRUNCATE, REFERENCES, TRIGGER ON ALL TABLES IN SCHEMA booking FROM PUBLIC, anon, authenticated, service_role;
REVOKE ALL ON ALL TABLES IN SCHEMA booking FROM anon;
REVOKE UPDATE ON booking.users FROM authenticated;
-- nobody but the owner draws history ids (a drawn id is a gap that looks like
-- deleted history)
REVOKE ALL ON ALL SEQUENCES IN SCHEMA booking FROM PUBLIC, anon, authenticated, service_role;
DROP POLICY events_insert ON booking.booking_events;

-- The owner writes bookings and history inside the SECURITY DEFINER functions
-- (FORCE ROW LEVEL SECURITY applies to it too unless it is a superuser or has
-- BYPASSRLS, as Supabase's `postgres` has), and provisions users.
CREATE POLICY bookings_definer_write ON booking.bookings FOR ALL TO CURRENT_USER USING (true) WITH CHECK (true);
CREATE POLICY events_definer ON booking.booking_events FOR ALL TO CURRENT_USER USING (true) WITH CHECK (true);
CREATE POLICY users_definer ON booking.users FOR ALL TO CURRENT_USER USING (true) WITH CHECK (true);

-- ---------------------------------------------------------------------------
-- The write functions. 0002's versions took the clock as an argument and ran
-- as the caller; they are dropped, not kept beside these.
-- ---------------------------------------------------------------------------
DROP FUNCTION booking.create_booking(uuid, timestamptz, timestamptz, text, timestamptz);
DROP FUNCTION booking.reschedule_booking(uuid, timestamptz, timestamptz, boolean, text, int, timestamptz);
DROP FUNCTION booking.cancel_booking(uuid, int);
DROP FUNCTION booking.availability(uuid, timestamptz, timestamptz, int, timestamptz);

-- What a write function returns, one row: the outcome — created, updated,
-- unchanged (with the booking's columns), or not_found, invalid (with field
-- and message), slot_taken, user_overlap, precondition_failed, forbidden,
-- unauthenticated — as plain typed columns. The API's JSON is built by the
-- server from these, so changing the API never needs a migration.
CREATE TYPE booking.write_result AS (
  outcome      text,
  field        text,
  message      text,
  id           uuid,
  resource_id  uuid,
  user_id      uuid,
  starts_at    timestamptz,
  ends_at      timestamptz,
  status       text,
  note         text,
  version      int,
  created_at   timestamptz,
  updated_at   timestamptz,
  cancelled_at timestamptz
);

CREATE FUNCTION booking.refused(p_outcome text, p_problem jsonb DEFAULT NULL)
  RETURNS booking.write_result
  LANGUAGE sql IMMUTABLE
  SET search_path = pg_catalog, pg_temp
  AS $$
    SELECT ROW(p_outcome, p_problem ->> 'field', p_problem ->> 'message',
               NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)::booking.write_result
  $$;

CREATE FUNCTION booking.written(p_outcome text, b booking.bookings)
  RETURNS booking.write_result
  LANGUAGE sql IMMUTABLE
  SET search_path = pg_catalog, pg_temp
  AS $$
    SELECT ROW(p_outcome, NULL, NULL, b.id, b.resource_id, b.user_id, lower(b.period), upper(b.period),
               b.status, b.note, b.version, b.created_at, b.updated_at, b.cancelled_at)::booking.write_result
  $$;

-- The API's shape lives in the server now (see write_result).
DROP FUNCTION booking.booking_json(booking.bookings);

-- Note checks shared by create and reschedule (the HTTP layer says the same).
CREATE FUNCTION booking.note_problem(p_note text) RETURNS jsonb
  LANGUAGE sql IMMUTABLE
  SET search_path = pg_catalog, pg_temp
  AS $$
    SELECT CASE
      WHEN p_note IS NULL THEN NULL
      WHEN char_length(p_note) > 1000 THEN '{"field": "note", "message": "at most 1000 characters"}'::jsonb
      WHEN p_note ~ '[\x01-\x08\x0b-\x1f\x7f-\x9f]' THEN '{"field": "note", "message": "must not contain control characters"}'::jsonb
    END
  $$;

-- Create, as the caller (auth.uid()), never for anyone else. Outcomes:
-- created | not_found | invalid (+ field, message) | user_overlap | slot_taken
-- | unauthenticated (no user in the claims, or the service role).
-- The active-bookings cap is counted under a lock on the caller's own user row
-- (a row lock, not an advisory lock: anyone may take any advisory lock and so
-- block another user's creates; nobody but the definer can lock another's
-- row), in its own statement after the lock is granted, so that concurrent
-- creates by one user cannot all pass it (a plpgsql statement takes a fresh
-- snapshot under READ COMMITTED; REPEATABLE READ is refused).
CREATE FUNCTION booking.create_booking(p_resource uuid, p_start timestamptz, p_end timestamptz,
                                       p_note text DEFAULT NULL)
  RETURNS booking.write_result
  LANGUAGE plpgsql SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
  AS $$
DECLARE
  r booking.resources;
  b booking.bookings;
  uid uuid := auth.uid();
  at timestamptz := booking.clock();
  problem jsonb;
  seat_no int;
  cap int;
  n_active int;
  p tstzrange;
BEGIN
  IF uid IS NULL OR booking.caller_is_service() THEN
    RETURN booking.refused('unauthenticated');
  END IF;
  IF p_resource IS NULL OR p_start IS NULL OR p_end IS NULL THEN
    RETURN booking.refused('invalid', '{"field": "start", "message": "resource_id, start and end are required"}');
  END IF;
  SELECT * INTO r FROM booking.resources WHERE id = p_resource AND active;
  IF NOT FOUND THEN
    RETURN booking.refused('not_found');
  END IF;
  problem := coalesce(booking.note_problem(p_note), booking.slot_problem(r, p_start, p_end, at));
  IF problem IS NOT NULL THEN
    RETURN booking.refused('invalid', problem);
  END IF;
  p := tstzrange(p_start, p_end, '[)');
  PERFORM booking.require_fresh_snapshots();
  PERFORM booking.ensure_user(uid);
  PERFORM 1 FROM booking.users WHERE id = uid FOR UPDATE;
  SELECT max_active_bookings INTO cap FROM booking.settings;
  cap := coalesce(cap, 100);  -- the documented default, should the row ever be missing
  SELECT count(*) INTO n_active FROM booking.bookings
   WHERE user_id = uid AND status = 'confirmed' AND upper(period) > at;
  IF n_active >= cap THEN
    RETURN booking.refused('invalid', jsonb_build_object('field', 'active_bookings', 'message',
      format('you already hold %s active bookings (confirmed and not yet ended), the most allowed; cancel one first', cap)));
  END IF;
  FOR seat_no IN 1 .. r.capacity LOOP
    INSERT INTO booking.bookings (resource_id, user_id, period, blocked, seat, note)
    VALUES (p_resource, uid, p, p, seat_no, p_note)
    ON CONFLICT DO NOTHING
    RETURNING * INTO b;
    IF FOUND THEN
      RETURN booking.written('created', b);
    END IF;
    IF seat_no = 1 AND EXISTS (SELECT 1 FROM booking.bookings
                               WHERE user_id = uid AND status = 'confirmed' AND period && p) THEN
      RETURN booking.refused('user_overlap');
    END IF;
  END LOOP;
  RETURN booking.refused('slot_taken');
END
$$;

-- Reschedule: only the booking's own user (or the service role) moves it;
-- staff who own the resource see it but may not move it (forbidden); anyone
-- else gets not_found, exactly as for no booking. A booking that has started
-- does not move (so a finished booking cannot be brought back to escape the
-- cap); its note may still change. Atomic: the row is locked, the version
-- compared (If-Match), the rules applied to a new period, then seats tried
-- starting with the current one, each in a subtransaction, so a refused move
-- leaves the booking exactly as it was.
CREATE FUNCTION booking.reschedule_booking(p_id uuid, p_start timestamptz, p_end timestamptz,
                                           p_set_note boolean DEFAULT false, p_note text DEFAULT NULL,
                                           p_version int DEFAULT NULL)
  RETURNS booking.write_result
  LANGUAGE plpgsql SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
  AS $$
DECLARE
  b booking.bookings;
  r booking.resources;
  uid uuid := auth.uid();
  service boolean := booking.caller_is_service();
  at timestamptz := booking.clock();
  problem jsonb;
  seat_no int;
  cname text;
  p tstzrange;
BEGIN
  IF uid IS NULL AND NOT service THEN
    RETURN booking.refused('not_found');
  END IF;
  IF p_start IS NULL OR p_end IS NULL THEN
    RETURN booking.refused('invalid', '{"field": "start", "message": "start and end are required"}');
  END IF;
  PERFORM booking.require_fresh_snapshots();
  -- who may act is decided before any lock is taken: a caller must not be
  -- able to hold a lock on someone else's booking
  SELECT * INTO b FROM booking.bookings WHERE id = p_id;
  IF NOT FOUND THEN
    RETURN booking.refused('not_found');
  END IF;
  IF NOT service AND b.user_id IS DISTINCT FROM uid THEN
    IF EXISTS (SELECT 1 FROM booking.resources WHERE id = b.resource_id AND owner_id = uid) THEN
      RETURN booking.refused('forbidden');
    END IF;
    RETURN booking.refused('not_found');
  END IF;
  SELECT * INTO b FROM booking.bookings WHERE id = p_id FOR UPDATE;
  IF p_version IS NOT NULL AND b.version <> p_version THEN
    RETURN booking.refused('precondition_failed');
  END IF;
  IF b.status = 'cancelled' THEN
    RETURN booking.refused('invalid', '{"field": "status", "message": "a cancelled booking cannot be rescheduled"}');
  END IF;
  SELECT * INTO r FROM booking.resources WHERE id = b.resource_id AND active;
  IF NOT FOUND THEN
    RETURN booking.refused('not_found');
  END IF;
  IF p_set_note THEN
    problem := booking.note_problem(p_note);
    IF problem IS NOT NULL THEN
      RETURN booking.refused('invalid', problem);
    END IF;
  END IF;
  p := tstzrange(p_start, p_end, '[)');
  IF b.period <> p THEN
    IF lower(b.period) <= at THEN
      RETURN booking.refused('invalid', '{"field": "start", "message": "a booking that has started cannot be moved"}');
    END IF;
    problem := booking.slot_problem(r, p_start, p_end, at);
    IF problem IS NOT NULL THEN
      RETURN booking.refused('invalid', problem);
    END IF;
  END IF;
  FOR seat_no IN SELECT s FROM generate_series(1, r.capacity) s ORDER BY s <> b.seat, s LOOP
    BEGIN
      UPDATE booking.bookings
         SET period = p, seat = seat_no,
             note = CASE WHEN p_set_note THEN p_note ELSE note END
       WHERE id = p_id
      RETURNING * INTO b;
      RETURN booking.written('updated', b);
    EXCEPTION WHEN exclusion_violation THEN
      GET STACKED DIAGNOSTICS cname = CONSTRAINT_NAME;
      IF cname = 'bookings_user_no_overlap' THEN
        RETURN booking.refused('user_overlap');
      END IF;
    END;
  END LOOP;
  RETURN booking.refused('slot_taken');
END
$$;

-- Cancel: idempotent (a cancelled booking is returned unchanged). The
-- booking's user, the resource's owner (staff) or the service role; anyone
-- else gets not_found.
CREATE FUNCTION booking.cancel_booking(p_id uuid, p_version int DEFAULT NULL)
  RETURNS booking.write_result
  LANGUAGE plpgsql SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
  AS $$
DECLARE
  b booking.bookings;
  uid uuid := auth.uid();
BEGIN
  -- authorise first, lock after (see reschedule_booking)
  SELECT * INTO b FROM booking.bookings WHERE id = p_id;
  IF NOT FOUND OR NOT (booking.caller_is_service()
                       OR (uid IS NOT NULL AND (b.user_id = uid OR EXISTS (
                             SELECT 1 FROM booking.resources WHERE id = b.resource_id AND owner_id = uid)))) THEN
    RETURN booking.refused('not_found');
  END IF;
  SELECT * INTO b FROM booking.bookings WHERE id = p_id FOR UPDATE;
  IF b.status = 'cancelled' THEN
    RETURN booking.written('unchanged', b);
  END IF;
  IF p_version IS NOT NULL AND b.version <> p_version THEN
    RETURN booking.refused('precondition_failed');
  END IF;
  UPDATE booking.bookings SET status = 'cancelled' WHERE id = p_id RETURNING * INTO b;
  RETURN booking.written('updated', b);
END
$$;

-- Availability: as 0002's, judged against the database clock, and bounded in
-- cost: a range of at most 31 days and at most 3000 candidate starts (a
-- 31-day month on a 15-minute grid is 2976). Candidates step by
-- gcd(slot_minutes, 15) in UTC (every real UTC offset is a multiple of 15
-- minutes), so a 16-minute grid steps by 1 minute and that is what is
-- counted; beyond the bound the caller narrows the range (the HTTP API
-- answers 422 before asking).
CREATE FUNCTION booking.availability(p_resource uuid, p_from timestamptz, p_to timestamptz,
                                     p_minutes int)
  RETURNS TABLE (slot_start timestamptz, slot_end timestamptz, remaining int)
  LANGUAGE plpgsql STABLE SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
  AS $$
DECLARE
  r booking.resources;
  p_at timestamptz := booking.clock();
  step int;
  dur interval;
  buf interval;
  uid uuid := auth.uid();
  bl timestamptz[];
  bu timestamptz[];
  bs int[];
  lmax interval;
  n int;
  j int := 1;
  k int := 1;
  i int;
  seats int[];
  c record;
BEGIN
  IF p_from IS NULL OR p_to IS NULL OR p_minutes IS NULL OR p_to <= p_from
     OR p_to - p_from > interval '31 days' OR p_minutes NOT BETWEEN 1 AND 525600 THEN
    RAISE EXCEPTION 'availability: from < to, at most 31 days apart, duration 1-525600 minutes'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  SELECT * INTO r FROM booking.resources WHERE id = p_resource AND active;
  IF NOT FOUND OR p_minutes NOT BETWEEN r.min_duration_minutes AND r.max_duration_minutes THEN
    -- no such resource, or no booking of that length is ever accepted: no
    -- slot, and no work (the busy ranges of a year-long window are not read)
    RETURN;
  END IF;
  step := gcd(r.slot_minutes, 15);
  IF extract(epoch FROM p_to - p_from) / 60 / step > 3000 THEN
    RAISE EXCEPTION 'availability: at most 3000 candidate starts per request; narrow the range'
      USING ERRCODE = 'program_limit_exceeded';
  END IF;
  dur := make_interval(mins => p_minutes);
  buf := make_interval(mins => r.buffer_minutes);
  SELECT array_agg(lower(b.blocked) ORDER BY lower(b.blocked)),
         array_agg(upper(b.blocked) ORDER BY lower(b.blocked)),
         array_agg(b.seat ORDER BY lower(b.blocked)),
         max(upper(b.blocked) - lower(b.blocked))
    INTO bl, bu, bs, lmax
    FROM booking.bookings b
   WHERE b.resource_id = p_resource AND b.status = 'confirmed' AND b.seat <= r.capacity
     AND b.blocked && tstzrange(p_from, p_to + dur + buf, '[)');
  n := coalesce(array_length(bl, 1), 0);
  FOR c IN
    WITH mine AS MATERIALIZED (
      SELECT b.period FROM booking.bookings b
       WHERE b.user_id = uid AND b.status = 'confirmed'
         AND b.period && tstzrange(p_from, p_to + dur, '[)')
    ), cand AS (
      SELECT t AS s, t + dur AS e
        FROM generate_series(to_timestamp(ceil(extract(epoch FROM p_from) / (step * 60)) * step * 60),
                             p_to - interval '1 microsecond', make_interval(mins => step)) t
       WHERE t >= p_at + make_interval(mins => r.min_notice_minutes)
         AND t <= p_at + make_interval(days => r.max_advance_days)
    )
    SELECT cd.s, cd.e FROM cand cd
     WHERE booking.slot_problem(r, cd.s, cd.e, p_at) IS NULL
       AND NOT EXISTS (SELECT 1 FROM mine m WHERE m.period && tstzrange(cd.s, cd.e, '[)'))
     ORDER BY cd.s
  LOOP
    WHILE j <= n AND bl[j] < c.e + buf LOOP
      j := j + 1;
    END LOOP;
    WHILE k < j AND bl[k] + lmax <= c.s LOOP
      k := k + 1;
    END LOOP;
    seats := '{}';
    FOR i IN k .. j - 1 LOOP
      IF bu[i] > c.s AND NOT (bs[i] = ANY (seats)) THEN
        seats := seats || bs[i];
      END IF;
    END LOOP;
    IF r.capacity - cardinality(seats) > 0 THEN
      slot_start := c.s;
      slot_end := c.e;
      remaining := r.capacity - cardinality(seats);
      RETURN NEXT;
    END IF;
  END LOOP;
END
$$;

-- Idempotency records are written only here, in the request's transaction:
-- for the caller, stamped by the database, bounded in size, with only the
-- headers the server keeps (a caller writing records directly could make the
-- server replay anything to them, forever).
CREATE FUNCTION booking.remember_response(p_key text, p_fingerprint text, p_status int,
                                          p_body text, p_headers jsonb)
  RETURNS void
  LANGUAGE plpgsql SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
  AS $$
DECLARE
  uid uuid := auth.uid();
BEGIN
  IF uid IS NULL OR booking.caller_is_service() THEN
    RAISE EXCEPTION 'idempotency keys belong to a signed-in user' USING ERRCODE = 'insufficient_privilege';
  END IF;
  IF p_status NOT BETWEEN 200 AND 499 OR octet_length(p_body) > 65536
     OR octet_length(p_fingerprint) > 128 OR jsonb_typeof(p_headers) <> 'object'
     OR EXISTS (SELECT 1 FROM jsonb_each(p_headers) h
                 WHERE h.key NOT IN ('content-type', 'etag', 'location')
                    OR jsonb_typeof(h.value) <> 'string' OR octet_length(h.value #>> '{}') > 512) THEN
    RAISE EXCEPTION 'not a response the server would keep' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  INSERT INTO booking.idempotency_keys (user_id, key, fingerprint, response_status, response_body,
                                        response_headers, created_at)
  VALUES (uid, p_key, p_fingerprint, p_status, p_body, p_headers, now());
END
$$;
REVOKE INSERT ON booking.idempotency_keys FROM authenticated;
CREATE POLICY idempotency_definer ON booking.idempotency_keys FOR ALL TO CURRENT_USER USING (true) WITH CHECK (true);

-- Before a resource's capacity is lowered (service role, in the same
-- transaction as the update): block booking writes until that transaction
-- ends (SHARE conflicts with the ROW EXCLUSIVE lock every write takes), then
-- say whether a confirmed booking that has not ended holds a seat beyond the
-- new capacity. Writers that come after see the new capacity, and the
-- bookings trigger refuses a seat beyond it. The lock needs more than a
-- request role may hold on `bookings`, hence SECURITY DEFINER.
CREATE FUNCTION booking.seats_in_use_beyond(p_resource uuid, p_capacity int) RETURNS boolean
  LANGUAGE plpgsql SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
  AS $$
BEGIN
  IF NOT booking.caller_is_service() THEN
    RAISE EXCEPTION 'only the service role changes resources' USING ERRCODE = 'insufficient_privilege';
  END IF;
  LOCK TABLE booking.bookings IN SHARE MODE;
  RETURN EXISTS (SELECT 1 FROM booking.bookings
                  WHERE resource_id = p_resource AND status = 'confirmed'
                    AND seat > p_capacity AND upper(period) > booking.clock());
END
$$;

-- ---------------------------------------------------------------------------
-- EXECUTE: nobody by default, then exactly what each request role needs.
-- ---------------------------------------------------------------------------
-- (ALTER DEFAULT PRIVILEGES cannot take PUBLIC's EXECUTE away per schema, and
-- doing it for the owner everywhere would change a Supabase project's other
-- schemas; instead every migration revokes explicitly, and a test fails if any
-- function of the schema is executable by anyone not listed here.)
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA booking FROM PUBLIC, anon, authenticated, service_role;
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
