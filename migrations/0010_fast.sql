-- 0010: performance round two (#14). Same rules, same results, less work per
-- booking:
--
-- * Small helpers in PL/pgSQL instead of LANGUAGE sql. A SQL function with a
--   SET clause is never inlined, and PL/pgSQL evaluates the expression that
--   calls it in a fresh executor state per transaction, so its body was
--   parsed and planned again on every call: `written` cost ~235 µs and each
--   of the four `clock()` calls ~74 µs per create (pg_stat_user_functions,
--   32 clients). A PL/pgSQL function keeps its plans for the session.
-- * The active-bookings cap in O(1): a per-user counter, kept by the bookings
--   trigger in the writing transaction (every door), read without a lock by
--   the write functions (a pre-check with the friendly answer), and enforced
--   under the counter row's lock by the trigger itself. The counter is an
--   upper bound of the user's active rows (rows end by time without a write),
--   so only when it says "over" is the exact number counted — once, under
--   the lock, and the counter reset to it.
-- * Availability set-based: the busy periods from one indexed range scan, the
--   opening hours evaluated once per local day, the candidates judged by SQL
--   joins instead of one PL/pgSQL rule call per candidate.

-- ---------------------------------------------------------------------------
-- Helpers: PL/pgSQL (see above). Same signatures, same results.
-- ---------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION booking.clock() RETURNS timestamptz
  LANGUAGE plpgsql VOLATILE
  SET search_path = pg_catalog, pg_temp
  AS $$
BEGIN
  RETURN clock_timestamp() + coalesce((SELECT clock_offset FROM booking.settings), interval '0');
END
$$;

CREATE OR REPLACE FUNCTION booking.caller_is_service() RETURNS boolean
  LANGUAGE plpgsql STABLE
  SET search_path = pg_catalog, pg_temp
  AS $$
BEGIN
  RETURN coalesce(current_setting('role', true) = 'service_role', false);
END
$$;

CREATE OR REPLACE FUNCTION booking.note_problem(p_note text) RETURNS jsonb
  LANGUAGE plpgsql IMMUTABLE
  SET search_path = pg_catalog, pg_temp
  AS $$
BEGIN
  RETURN CASE
    WHEN p_note IS NULL THEN NULL
    WHEN char_length(p_note) > 1000 THEN '{"field": "note", "message": "at most 1000 characters"}'::jsonb
    WHEN p_note ~ '[\x01-\x08\x0b-\x1f\x7f-\x9f]' THEN '{"field": "note", "message": "must not contain control characters"}'::jsonb
  END;
END
$$;

CREATE OR REPLACE FUNCTION booking.refused(p_outcome text, p_problem jsonb DEFAULT NULL)
  RETURNS booking.write_result
  LANGUAGE plpgsql IMMUTABLE
  SET search_path = pg_catalog, pg_temp
  AS $$
BEGIN
  RETURN ROW(p_outcome, p_problem ->> 'field', p_problem ->> 'message',
             NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)::booking.write_result;
END
$$;

CREATE OR REPLACE FUNCTION booking.written(p_outcome text, b booking.bookings)
  RETURNS booking.write_result
  LANGUAGE plpgsql IMMUTABLE
  SET search_path = pg_catalog, pg_temp
  AS $$
BEGIN
  RETURN ROW(p_outcome, NULL, NULL, b.id, b.resource_id, b.user_id, lower(b.period), upper(b.period),
             b.status, b.note, b.version, b.created_at, b.updated_at, b.cancelled_at, b.expires_at,
             b.series_id)::booking.write_result;
END
$$;

CREATE OR REPLACE FUNCTION booking.user_busy(p_user uuid, p tstzrange, p_at timestamptz, p_except uuid DEFAULT NULL)
  RETURNS boolean
  LANGUAGE plpgsql STABLE
  SET search_path = pg_catalog, pg_temp
  AS $$
BEGIN
  RETURN EXISTS (SELECT 1 FROM booking.bookings
                  WHERE user_id = p_user AND status IN ('held', 'pending', 'confirmed')
                    AND (expires_at IS NULL OR expires_at > p_at) AND period && p
                    AND id IS DISTINCT FROM p_except);
END
$$;

CREATE OR REPLACE FUNCTION booking.booking_data(b booking.bookings) RETURNS jsonb
  LANGUAGE plpgsql STABLE
  SET search_path = pg_catalog, pg_temp
  AS $$
BEGIN
  RETURN jsonb_build_object('id', b.id, 'resource_id', b.resource_id, 'user_id', b.user_id,
    'start', lower(b.period), 'end', upper(b.period), 'status', b.status, 'note', b.note,
    'version', b.version, 'created_at', b.created_at, 'updated_at', b.updated_at,
    'cancelled_at', b.cancelled_at, 'series_id', b.series_id);
END
$$;

CREATE OR REPLACE FUNCTION booking.hold_data(b booking.bookings) RETURNS jsonb
  LANGUAGE plpgsql STABLE
  SET search_path = pg_catalog, pg_temp
  AS $$
BEGIN
  RETURN jsonb_build_object('id', b.id, 'resource_id', b.resource_id, 'user_id', b.user_id,
    'start', lower(b.period), 'end', upper(b.period), 'expires_at', b.expires_at);
END
$$;

-- ---------------------------------------------------------------------------
-- The cap's counter.
-- ---------------------------------------------------------------------------
-- `live`: an upper bound of the user's active rows (held, pending or
-- confirmed, not yet ended, not expired). The trigger adds 1 when a row
-- becomes active; rows that are cancelled, end or expire stay counted until
-- the next exact count (under the counter row's lock), which a write makes
-- when the counter says the cap is reached. Nobody but the owner reads or writes
-- it (no grants, RLS forced, the owner's policy only); a table of its own so
-- that no role's UPDATE on `users` reaches it.
CREATE TABLE booking.active_counts (
  user_id uuid PRIMARY KEY REFERENCES booking.users (id) ON DELETE CASCADE,
  live int NOT NULL CHECK (live >= 0)
);
ALTER TABLE booking.active_counts ENABLE ROW LEVEL SECURITY;
ALTER TABLE booking.active_counts FORCE ROW LEVEL SECURITY;
CREATE POLICY active_counts_owner ON booking.active_counts FOR ALL TO CURRENT_USER USING (true) WITH CHECK (true);
REVOKE ALL ON booking.active_counts FROM PUBLIC;

-- Today's exact numbers (writers wait for this migration's lock on bookings).
LOCK TABLE booking.bookings IN SHARE MODE;
INSERT INTO booking.active_counts (user_id, live)
SELECT user_id, count(*)
  FROM booking.bookings
 WHERE status IN ('held', 'pending', 'confirmed') AND upper(period) > booking.clock()
   AND (expires_at IS NULL OR expires_at > booking.clock())
 GROUP BY user_id;

-- The exact count now used by the slow path runs on the per-user exclusion
-- constraint's GiST index (user_id, period, live rows only): the separate
-- (user_id, upper(period)) index of 0008 is one index less to write per row.
DROP INDEX booking.bookings_user_live_end_idx;

-- The user's active rows, exactly (the slow path; `at` is the clock).
CREATE FUNCTION booking.active_exact(uid uuid, at timestamptz) RETURNS int
  LANGUAGE plpgsql STABLE
  SET search_path = pg_catalog, pg_temp
  AS $$
BEGIN
  RETURN (SELECT count(*) FROM booking.bookings
           WHERE user_id = uid AND status IN ('held', 'pending', 'confirmed')
             AND period && tstzrange(at, NULL, '(]')
             AND (expires_at IS NULL OR expires_at > at));
END
$$;

-- The refusal text (one place).
CREATE FUNCTION booking.cap_message(n int, cap int) RETURNS text
  LANGUAGE plpgsql IMMUTABLE
  SET search_path = pg_catalog, pg_temp
  AS $$
BEGIN
  RETURN format('you already hold %s active bookings (holds, pending and confirmed, not yet ended) and at most %s are allowed; cancel one first',
                n, cap);
END
$$;

-- The write functions' pre-check (the friendly answer): the counter, read
-- without a lock; only when it says "over" the exact number, under the
-- counter row's lock, which also resets the counter. NULL when `p_adding`
-- more fit. The trigger below enforces the same cap under the lock, so two
-- racing writes cannot both pass.
CREATE OR REPLACE FUNCTION booking.cap_problem(uid uuid, p_adding int)
  RETURNS jsonb
  LANGUAGE plpgsql
  SET search_path = pg_catalog, pg_temp
  AS $$
DECLARE
  cap int;
  n int;
  at timestamptz;
BEGIN
  PERFORM booking.require_fresh_snapshots();
  SELECT c.live INTO n FROM booking.active_counts c WHERE c.user_id = uid;
  IF NOT FOUND THEN
    PERFORM booking.ensure_user(uid);
    n := 0;
  END IF;
  SELECT max_active_bookings INTO cap FROM booking.settings;
  cap := coalesce(cap, 100);
  IF n + p_adding <= cap THEN
    RETURN NULL;
  END IF;
  -- the slow path: count exactly under the counter row's lock
  PERFORM 1 FROM booking.active_counts WHERE user_id = uid FOR UPDATE;
  at := booking.clock();
  n := booking.active_exact(uid, at);
  UPDATE booking.active_counts SET live = n WHERE user_id = uid AND live <> n;
  IF n + p_adding > cap THEN
    RETURN jsonb_build_object('field', 'active_bookings', 'message', booking.cap_message(n, cap));
  END IF;
  RETURN NULL;
END
$$;

-- AFTER INSERT/UPDATE: history (0008's), and the counter with the cap.
CREATE OR REPLACE FUNCTION booking.bookings_after_write() RETURNS trigger
  LANGUAGE plpgsql
  SET search_path = pg_catalog, pg_temp
  AS $$
DECLARE
  act text;
  at timestamptz;
  cap int;
  was_active boolean := false;
  is_active boolean;
  n int;
BEGIN
  SELECT clock_timestamp() + s.clock_offset, s.max_active_bookings INTO at, cap FROM booking.settings s;
  at := coalesce(at, clock_timestamp());
  cap := coalesce(cap, 100);
  IF TG_OP = 'INSERT' THEN
    act := CASE WHEN NEW.status = 'held' THEN 'held' ELSE 'created' END;
  ELSE
    IF NEW.status <> OLD.status THEN
      act := CASE
        WHEN OLD.status = 'held' AND NEW.status IN ('confirmed', 'pending') THEN 'confirmed'
        WHEN OLD.status = 'held' AND NEW.status = 'cancelled' THEN 'released'
        WHEN OLD.status = 'pending' AND NEW.status = 'confirmed' THEN 'approved'
        ELSE NEW.status  -- cancelled, rejected, expired
      END;
    ELSIF NEW.period <> OLD.period THEN
      act := 'rescheduled';
    ELSE
      act := 'updated';
    END IF;
    was_active := OLD.status IN ('held', 'pending', 'confirmed') AND upper(OLD.period) > at
                  AND (OLD.expires_at IS NULL OR OLD.expires_at > at);
  END IF;
  -- checked after the row is in place, i.e. after any wait for another
  -- transaction's conflicting row: a write that waited past its start is
  -- refused, so nothing is booked (or moved) into the past
  IF (TG_OP = 'INSERT' OR NEW.period <> OLD.period) AND NEW.status IN ('held', 'pending', 'confirmed')
     AND current_setting('role', true) IN ('authenticated', 'service_role', 'anon')
     AND lower(NEW.period) < at THEN
    RAISE EXCEPTION 'start is in the past'
      USING ERRCODE = 'check_violation', CONSTRAINT = 'bookings_start_not_past';
  END IF;
  -- the counter: +1 when a row becomes active. Never -1: a decrement decided
  -- before waiting for the counter row's lock could subtract a row that an
  -- exact count made meanwhile (under that lock) had already left out, and
  -- it would make one user's cancel (by staff, say) hold another's lock.
  -- Only an exact count under the lock brings the counter down.
  is_active := NEW.status IN ('held', 'pending', 'confirmed') AND upper(NEW.period) > at
               AND (NEW.expires_at IS NULL OR NEW.expires_at > at);
  IF is_active AND NOT was_active THEN
    INSERT INTO booking.active_counts AS c (user_id, live) VALUES (NEW.user_id, 1)
    ON CONFLICT (user_id) DO UPDATE SET live = c.live + 1
    RETURNING c.live INTO n;
    IF n > cap THEN
      -- over by the counter: count exactly (the row lock is ours now)
      n := booking.active_exact(NEW.user_id, at);
      UPDATE booking.active_counts SET live = n WHERE user_id = NEW.user_id AND live <> n;
      IF n > cap THEN
        RAISE EXCEPTION '%', booking.cap_message(n - 1, cap)
          USING ERRCODE = 'check_violation', CONSTRAINT = 'bookings_active_cap';
      END IF;
    END IF;
  END IF;
  INSERT INTO booking.booking_events (booking_id, action, actor_id, old_period, new_period)
  VALUES (NEW.id, act, CASE WHEN act = 'expired' THEN NULL ELSE auth.uid() END,
          CASE WHEN TG_OP = 'UPDATE' THEN OLD.period END, NEW.period);
  RETURN NULL;
END
$$;

-- ---------------------------------------------------------------------------
-- Create (0008's), lean: one read of the settings and of the caller's
-- counter (the cap's fast path), the clock read once after the locks, and
-- the common case — a free first seat on a resource without approval —
-- inserted here; everything else (other seats, expired rows in the way,
-- pending) through place() as before.
-- ---------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION booking.create_booking(p_resource uuid, p_start timestamptz, p_end timestamptz,
                                                  p_note text DEFAULT NULL)
  RETURNS booking.write_result
  LANGUAGE plpgsql SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
  AS $$
DECLARE
  r booking.resources;
  uid uuid := auth.uid();
  at timestamptz;
  problem jsonb;
  cap int;
  off interval;
  live int;
  p tstzrange;
  b booking.bookings;
BEGIN
  -- as a signed-in user, switched to `authenticated` (the login that may
  -- call this itself, for the one-statement create, must switch too: the
  -- checks keyed on the role, like the trigger's past-start check, apply)
  IF uid IS NULL OR coalesce(current_setting('role', true), 'none') <> 'authenticated' THEN
    RETURN booking.refused('unauthenticated');
  END IF;
  IF p_resource IS NULL OR p_start IS NULL OR p_end IS NULL THEN
    RETURN booking.refused('invalid', '{"field": "start", "message": "resource_id, start and end are required"}');
  END IF;
  IF current_setting('transaction_isolation') <> 'read committed' THEN
    RAISE EXCEPTION 'booking writes need READ COMMITTED isolation'
      USING ERRCODE = 'invalid_transaction_state';
  END IF;
  -- the resource row first (a closure being added waits for us, or we for
  -- it, and then see it), the cap, then the clock and the rules: every check
  -- after every lock it may have waited for
  SELECT * INTO r FROM booking.resources WHERE id = p_resource AND active FOR KEY SHARE;
  IF NOT FOUND THEN
    RETURN booking.refused('not_found');
  END IF;
  IF p_note IS NOT NULL THEN
    problem := booking.note_problem(p_note);
    IF problem IS NOT NULL THEN
      RETURN booking.refused('invalid', problem);
    END IF;
  END IF;
  -- the cap: the counter says "fits" (the common case), else cap_problem
  -- decides (a first booking, or an exact count under the lock)
  SELECT s.max_active_bookings, s.clock_offset INTO cap, off FROM booking.settings s;
  SELECT c.live INTO live FROM booking.active_counts c WHERE c.user_id = uid;
  IF live IS NULL OR live + 1 > coalesce(cap, 100) THEN
    problem := booking.cap_problem(uid, 1);
    IF problem IS NOT NULL THEN
      RETURN booking.refused('invalid', problem);
    END IF;
  END IF;
  at := clock_timestamp() + coalesce(off, interval '0');
  problem := booking.slot_problem(r, p_start, p_end, at);
  IF problem IS NOT NULL THEN
    RETURN booking.refused('invalid', problem);
  END IF;
  p := tstzrange(p_start, p_end, '[)');
  IF r.requires_approval THEN
    RETURN booking.place(r, uid, p, p_note, 'pending',
                         at + make_interval(mins => r.approval_timeout_minutes), NULL, at);
  END IF;
  INSERT INTO booking.bookings (resource_id, user_id, period, blocked, seat, note, status)
  VALUES (r.id, uid, p, p, 1, p_note, 'confirmed')
  ON CONFLICT DO NOTHING
  RETURNING * INTO b;
  IF FOUND THEN
    RETURN ROW('created', NULL, NULL, b.id, b.resource_id, b.user_id, lower(b.period), upper(b.period),
               b.status, b.note, b.version, b.created_at, b.updated_at, b.cancelled_at, b.expires_at,
               b.series_id)::booking.write_result;
  END IF;
  RETURN booking.place(r, uid, p, p_note, 'confirmed', NULL, NULL, at);
END
$$;

-- The test clock (settings.clock_offset) may move backwards, which would let
-- a row that had ended count as active again: every change of it resets the
-- counters to the exact numbers.
CREATE FUNCTION booking.recount_active() RETURNS trigger
  LANGUAGE plpgsql
  SET search_path = pg_catalog, pg_temp
  AS $$
DECLARE
  at timestamptz;
BEGIN
  LOCK TABLE booking.active_counts IN EXCLUSIVE MODE;
  at := booking.clock();  -- after the lock, which may have been waited for
  DELETE FROM booking.active_counts;
  INSERT INTO booking.active_counts (user_id, live)
  SELECT user_id, count(*)
    FROM booking.bookings
   WHERE status IN ('held', 'pending', 'confirmed') AND upper(period) > at
     AND (expires_at IS NULL OR expires_at > at)
   GROUP BY user_id;
  RETURN NULL;
END
$$;
CREATE TRIGGER settings_clock_recount AFTER UPDATE OF clock_offset ON booking.settings
  FOR EACH ROW WHEN (OLD.clock_offset IS DISTINCT FROM NEW.clock_offset)
  EXECUTE FUNCTION booking.recount_active();

-- ---------------------------------------------------------------------------
-- Referential integrity without a check per booking. The foreign keys from
-- bookings to users and resources, and from history to bookings, locked the
-- referenced rows (FOR KEY SHARE) in every write: ~15 % of create throughput.
-- The same guarantee, paid for by the rare statement instead: a booking's
-- user and resource must exist when it is written (the BEFORE trigger checks
-- both; it already checked the resource), they cannot be deleted while
-- bookings refer to them (their DELETE waits for every writer of bookings,
-- then looks), and bookings are never deleted (they are cancelled; history
-- refers to them).
-- ---------------------------------------------------------------------------
ALTER TABLE booking.bookings DROP CONSTRAINT bookings_user_id_fkey;
ALTER TABLE booking.bookings DROP CONSTRAINT bookings_resource_id_fkey;
ALTER TABLE booking.booking_events DROP CONSTRAINT booking_events_booking_id_fkey;

-- BEFORE INSERT/UPDATE (0008's), now also checking that the user exists
-- (the resource it checked already; a booking's user never changes).
CREATE OR REPLACE FUNCTION booking.bookings_before_write() RETURNS trigger
  LANGUAGE plpgsql
  SET search_path = pg_catalog, pg_temp
  AS $$
DECLARE
  r record;
BEGIN
  PERFORM booking.require_fresh_snapshots();
  IF TG_OP = 'UPDATE' THEN
    IF NEW.id <> OLD.id OR NEW.user_id <> OLD.user_id OR NEW.resource_id <> OLD.resource_id
       OR NEW.created_at <> OLD.created_at OR NEW.series_id IS DISTINCT FROM OLD.series_id THEN
      RAISE EXCEPTION 'a booking''s id, user, resource, series and creation time never change'
        USING ERRCODE = 'check_violation', CONSTRAINT = 'bookings_immutable';
    END IF;
    IF OLD.status IN ('cancelled', 'rejected', 'expired') THEN
      RAISE EXCEPTION 'a % booking cannot change', OLD.status
        USING ERRCODE = 'check_violation', CONSTRAINT = 'bookings_cancelled_final';
    END IF;
    IF NEW.is_hold AND NOT OLD.is_hold THEN
      RAISE EXCEPTION 'a booking never becomes a hold'
        USING ERRCODE = 'check_violation', CONSTRAINT = 'bookings_hold_status';
    END IF;
    IF NEW.status <> OLD.status AND NEW.period <> OLD.period THEN
      RAISE EXCEPTION 'a change of status cannot move the booking'
        USING ERRCODE = 'check_violation', CONSTRAINT = 'bookings_cancel_keeps_period';
    END IF;
    NEW.version := OLD.version + 1;
    NEW.updated_at := clock_timestamp();
    NEW.cancelled_at := CASE WHEN NEW.status = 'cancelled' THEN clock_timestamp() END;
    IF NEW.status IN ('confirmed', 'cancelled', 'rejected') THEN
      NEW.expires_at := NULL;
    END IF;
  ELSE
    NEW.version := 1;
    IF NEW.status IS NULL OR NEW.status NOT IN ('held', 'pending') THEN
      NEW.status := 'confirmed';
      NEW.expires_at := NULL;
    END IF;
    NEW.is_hold := (NEW.status = 'held');
    NEW.created_at := clock_timestamp();
    NEW.updated_at := NEW.created_at;
    NEW.cancelled_at := NULL;
  END IF;
  IF TG_OP = 'INSERT' AND NOT EXISTS (SELECT 1 FROM booking.users WHERE id = NEW.user_id) THEN
    RAISE EXCEPTION 'no such user'
      USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'bookings_user_id_fkey';
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

CREATE FUNCTION booking.bookings_never_deleted() RETURNS trigger
  LANGUAGE plpgsql
  SET search_path = pg_catalog, pg_temp
  AS $$
BEGIN
  RAISE EXCEPTION 'bookings are never deleted; cancel them'
    USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'booking_events_booking_id_fkey';
END
$$;
CREATE TRIGGER bookings_never_deleted BEFORE DELETE ON booking.bookings
  FOR EACH STATEMENT EXECUTE FUNCTION booking.bookings_never_deleted();

-- nor emptied at once, and neither are the tables they refer to
CREATE FUNCTION booking.never_truncated() RETURNS trigger
  LANGUAGE plpgsql
  SET search_path = pg_catalog, pg_temp
  AS $$
BEGIN
  RAISE EXCEPTION '% is never truncated', TG_TABLE_NAME
    USING ERRCODE = 'foreign_key_violation',
          CONSTRAINT = CASE TG_TABLE_NAME WHEN 'users' THEN 'bookings_user_id_fkey'
                                          WHEN 'resources' THEN 'bookings_resource_id_fkey'
                                          ELSE 'booking_events_booking_id_fkey' END;
END
$$;
CREATE TRIGGER bookings_never_truncated BEFORE TRUNCATE ON booking.bookings
  FOR EACH STATEMENT EXECUTE FUNCTION booking.never_truncated();
CREATE TRIGGER users_never_truncated BEFORE TRUNCATE ON booking.users
  FOR EACH STATEMENT EXECUTE FUNCTION booking.never_truncated();
CREATE TRIGGER resources_never_truncated BEFORE TRUNCATE ON booking.resources
  FOR EACH STATEMENT EXECUTE FUNCTION booking.never_truncated();

CREATE FUNCTION booking.referenced_by_bookings() RETURNS trigger
  LANGUAGE plpgsql
  SET search_path = pg_catalog, pg_temp
  AS $$
BEGIN
  IF TG_OP = 'UPDATE' THEN
    IF NEW.id IS DISTINCT FROM OLD.id THEN
      RAISE EXCEPTION 'an id never changes'
        USING ERRCODE = 'foreign_key_violation',
              CONSTRAINT = CASE WHEN TG_TABLE_NAME = 'users' THEN 'bookings_user_id_fkey' ELSE 'bookings_resource_id_fkey' END;
    END IF;
    RETURN NEW;
  END IF;
  -- every transaction writing bookings finishes first, none starts until we do
  LOCK TABLE booking.bookings IN SHARE MODE;
  IF TG_TABLE_NAME = 'users' AND EXISTS (SELECT 1 FROM booking.bookings WHERE user_id = OLD.id) THEN
    RAISE EXCEPTION 'the user has bookings'
      USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'bookings_user_id_fkey';
  END IF;
  IF TG_TABLE_NAME = 'resources' AND EXISTS (SELECT 1 FROM booking.bookings WHERE resource_id = OLD.id) THEN
    RAISE EXCEPTION 'the resource has bookings'
      USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'bookings_resource_id_fkey';
  END IF;
  RETURN OLD;
END
$$;
CREATE TRIGGER users_referenced BEFORE DELETE OR UPDATE OF id ON booking.users
  FOR EACH ROW EXECUTE FUNCTION booking.referenced_by_bookings();
CREATE TRIGGER resources_referenced BEFORE DELETE OR UPDATE OF id ON booking.resources
  FOR EACH ROW EXECUTE FUNCTION booking.referenced_by_bookings();

-- ---------------------------------------------------------------------------
-- Availability (0008's), set-based. The same answers: every rule of
-- slot_problem, the seats and the caller's own rows — computed as
--   * the resource's busy periods: one range scan, folded into one
--     multirange per seat (is a seat free for [s, e + buffer)? one
--     logarithmic test) when the resource has at most 8 seats, else swept in
--     start order as 0008 did (a candidate looks only at what can overlap it);
--   * the caller's own live periods and the closures: a multirange each;
--   * the opening hours: once per local date of the window, through the
--     same conversion slot_problem uses (local_instant), not per candidate;
--   * the grid, notice and advance: plain expressions per candidate.
-- ---------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION booking.availability(p_resource uuid, p_from timestamptz, p_to timestamptz,
                                                p_minutes int)
  RETURNS TABLE (slot_start timestamptz, slot_end timestamptz, remaining int)
  LANGUAGE plpgsql STABLE SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
  AS $$
DECLARE
  r booking.resources;
  p_at timestamptz := booking.clock();
  uid uuid := auth.uid();
  step int;
  dur interval;
  buf interval;
  closed tstzmultirange;
  mine tstzmultirange;
  seats tstzmultirange[];
  lo timestamptz;
  hi timestamptz;
  starts timestamptz[];
  busy1 tstzmultirange := '{}';
  cs timestamptz;
  ce timestamptz;
  bl timestamptz[];
  bu timestamptz[];
  bs int[];
  lmax interval;
  n int;
  j int := 1;
  k int := 1;
  i int;
  used int[];
BEGIN
  IF p_from IS NULL OR p_to IS NULL OR p_minutes IS NULL OR p_to <= p_from
     OR p_to - p_from > interval '31 days' OR p_minutes NOT BETWEEN 1 AND 525600 THEN
    RAISE EXCEPTION 'availability: from < to, at most 31 days apart, duration 1-525600 minutes'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  SELECT * INTO r FROM booking.resources WHERE id = p_resource AND active;
  IF NOT FOUND OR p_minutes NOT BETWEEN r.min_duration_minutes AND r.max_duration_minutes THEN
    RETURN;
  END IF;
  step := gcd(r.slot_minutes, 15);
  IF extract(epoch FROM p_to - p_from) / 60 / step > 3000 THEN
    RAISE EXCEPTION 'availability: at most 3000 candidate starts per request; narrow the range'
      USING ERRCODE = 'program_limit_exceeded';
  END IF;
  dur := make_interval(mins => p_minutes);
  buf := make_interval(mins => r.buffer_minutes);
  -- the candidates' first and last start (the grid of `step` minutes from the
  -- epoch, within the notice and the advance window)
  lo := greatest(to_timestamp(ceil(extract(epoch FROM p_from) / (step * 60)) * step * 60),
                 p_at + make_interval(mins => r.min_notice_minutes));
  lo := to_timestamp(ceil(extract(epoch FROM lo) / (step * 60)) * step * 60);
  hi := least(p_to - interval '1 microsecond', p_at + make_interval(days => r.max_advance_days));
  IF lo > hi THEN
    RETURN;
  END IF;
  SELECT coalesce(range_agg(cl.period), '{}'::tstzmultirange) INTO closed
    FROM booking.closures cl
   WHERE cl.resource_id = p_resource AND cl.period && tstzrange(lo, hi + dur, '[]');
  SELECT coalesce(range_agg(b.period), '{}'::tstzmultirange) INTO mine
    FROM booking.bookings b
   WHERE uid IS NOT NULL AND b.user_id = uid AND b.status IN ('held', 'pending', 'confirmed')
     AND (b.expires_at IS NULL OR b.expires_at > p_at)
     AND b.period && tstzrange(lo, hi + dur, '[]');
  -- few seats (at most 8): one multirange of busy periods per seat, so that
  -- a seat's answer for [s, e + buffer) is one logarithmic overlap test; one
  -- seat: that test is part of the candidates' filter
  IF r.capacity <= 8 THEN
    SELECT array_agg(x.busy) INTO seats
      FROM (SELECT range_agg(b.blocked) AS busy
              FROM booking.bookings b
             WHERE b.resource_id = p_resource AND b.status IN ('held', 'pending', 'confirmed')
               AND (b.expires_at IS NULL OR b.expires_at > p_at) AND b.seat <= r.capacity
               AND b.blocked && tstzrange(lo, hi + dur + buf, '[]')
             GROUP BY b.seat) x;
    seats := coalesce(seats, '{}');
    IF r.capacity = 1 THEN
      busy1 := coalesce(seats[1], '{}'::tstzmultirange);
    END IF;
  END IF;
  -- the candidates every rule allows, in order
  SELECT array_agg(ok.s ORDER BY ok.s) INTO starts
    FROM (
      WITH days AS MATERIALIZED (
        -- each local date a candidate can start on, with its hours: NULL =
        -- open all day, [] = closed (slot_problem's precedence: override,
        -- week, open)
        SELECT d::date AS day,
               CASE
                 WHEN r.date_overrides IS NOT NULL AND r.date_overrides ? to_char(d, 'YYYY-MM-DD')
                   THEN r.date_overrides -> to_char(d, 'YYYY-MM-DD')
                 WHEN r.opening_hours IS NOT NULL AND jsonb_typeof(r.opening_hours) = 'object'
                   THEN coalesce(r.opening_hours -> (ARRAY['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'])[extract(dow FROM d)::int + 1],
                                 '[]'::jsonb)
               END AS hours
          FROM generate_series((lo AT TIME ZONE r.timezone)::date::timestamp,
                               (hi AT TIME ZONE r.timezone)::date::timestamp, interval '1 day') d
      ), open AS MATERIALIZED (
        SELECT dy.day, dy.hours IS NULL AS all_day,
               CASE WHEN iv IS NOT NULL THEN booking.local_instant(dy.day + (iv ->> 0)::time, r.timezone, true) END AS o,
               CASE WHEN iv IS NOT NULL THEN booking.local_instant(
                 CASE WHEN iv ->> 1 = '24:00' THEN (dy.day + 1)::timestamp ELSE dy.day + (iv ->> 1)::time END,
                 r.timezone, false) END AS c
          FROM days dy
          LEFT JOIN LATERAL jsonb_array_elements(CASE WHEN jsonb_typeof(dy.hours) = 'array' THEN dy.hours END) AS iv ON true
      ), cand AS (
        SELECT t AS s, t + dur AS e, t AT TIME ZONE r.timezone AS ls, (t + dur) AT TIME ZONE r.timezone AS le
          FROM generate_series(lo, hi, make_interval(mins => step)) t
      )
      SELECT cd.s
        FROM cand cd
       -- on the grid in local time: the slot divides the day (a CHECK on
       -- resources), so a local time is on it exactly when its seconds since
       -- the local epoch are a multiple of the slot
       WHERE extract(epoch FROM cd.ls) % (r.slot_minutes * 60) = 0
         AND extract(epoch FROM cd.le) % (r.slot_minutes * 60) = 0
         AND NOT (closed && tstzrange(cd.s, cd.e, '[)'))
         AND NOT (busy1 && tstzrange(cd.s, cd.e + buf, '[)'))
         AND NOT (mine && tstzrange(cd.s, cd.e, '[)'))
         AND EXISTS (SELECT 1 FROM open op
                      WHERE op.day = cd.ls::date AND (op.all_day OR (cd.s >= op.o AND cd.e <= op.c)))
    ) ok;
  IF starts IS NULL THEN
    RETURN;
  END IF;
  IF r.capacity = 1 THEN
    -- every candidate left is free
    RETURN QUERY SELECT t, t + dur, 1 FROM unnest(starts) WITH ORDINALITY AS u(t, n) ORDER BY u.n;
    RETURN;
  END IF;
  IF r.capacity <= 8 THEN
    RETURN QUERY
      SELECT u.t, u.t + dur, x.left_
        FROM unnest(starts) WITH ORDINALITY AS u(t, n)
       CROSS JOIN LATERAL (SELECT r.capacity - (SELECT count(*) FROM unnest(seats) AS busy
                                                 WHERE busy && tstzrange(u.t, u.t + dur + buf, '[)'))::int AS left_) x
       WHERE x.left_ > 0
       ORDER BY u.n;
    RETURN;
  END IF;
  -- many seats: 0008's sweep over the busy periods in start order, each
  -- candidate looking only at the periods that can overlap it
  SELECT array_agg(lower(b.blocked) ORDER BY lower(b.blocked)),
         array_agg(upper(b.blocked) ORDER BY lower(b.blocked)),
         array_agg(b.seat ORDER BY lower(b.blocked)),
         max(upper(b.blocked) - lower(b.blocked))
    INTO bl, bu, bs, lmax
    FROM booking.bookings b
   WHERE b.resource_id = p_resource AND b.status IN ('held', 'pending', 'confirmed')
     AND (b.expires_at IS NULL OR b.expires_at > p_at) AND b.seat <= r.capacity
     AND b.blocked && tstzrange(lo, hi + dur + buf, '[]');
  n := coalesce(array_length(bl, 1), 0);
  FOREACH cs IN ARRAY starts LOOP
    ce := cs + dur;
    WHILE j <= n AND bl[j] < ce + buf LOOP
      j := j + 1;
    END LOOP;
    WHILE k < j AND bl[k] + lmax <= cs LOOP
      k := k + 1;
    END LOOP;
    used := '{}';
    FOR i IN k .. j - 1 LOOP
      IF bu[i] > cs AND NOT (bs[i] = ANY (used)) THEN
        used := used || bs[i];
      END IF;
    END LOOP;
    IF r.capacity - cardinality(used) > 0 THEN
      slot_start := cs;
      slot_end := ce;
      remaining := r.capacity - cardinality(used);
      RETURN NEXT;
    END IF;
  END LOOP;
END
$$;

-- ---------------------------------------------------------------------------
-- One round trip per create: the serving login may call create_booking in
-- the statement that also sets the caller's role and claims (see
-- `db::bookings::create_scoped`). EXECUTE is checked when a statement
-- starts, before that statement switches the role, so the login itself needs
-- it. It gives the login nothing new: it may already switch to
-- `authenticated` with any claims. Granted to the logins we know (ours and
-- Supabase's); another login falls back to BEGIN / set_config / create /
-- COMMIT.
-- ---------------------------------------------------------------------------
DO $$
DECLARE
  login text;
BEGIN
  FOR login IN SELECT rolname FROM pg_roles WHERE rolname IN ('booking_authenticator', 'authenticator') LOOP
    EXECUTE format('GRANT USAGE ON SCHEMA booking TO %I', login);
    EXECUTE format('GRANT EXECUTE ON FUNCTION booking.create_booking(uuid, timestamptz, timestamptz, text) TO %I', login);
  END LOOP;
END
$$;

-- ---------------------------------------------------------------------------
-- EXECUTE: nobody by default, then exactly what each request role needs
-- (0009's list; the new functions are internal).
-- ---------------------------------------------------------------------------
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
GRANT EXECUTE ON FUNCTION booking.webhook_claim(int, int, uuid[]) TO service_role;
GRANT EXECUTE ON FUNCTION booking.webhook_settle(uuid, uuid, text, int, text, int, double precision, int)
  TO service_role;
GRANT EXECUTE ON FUNCTION booking.webhook_settle_batch(uuid[], uuid[], text[], int[], text[], int[],
                                                       double precision[], int) TO service_role;
GRANT EXECUTE ON FUNCTION booking.webhook_resend(uuid, uuid) TO service_role;
GRANT EXECUTE ON FUNCTION booking.webhook_backlog() TO service_role;
GRANT EXECUTE ON FUNCTION booking.webhook_prune(int) TO service_role;
GRANT EXECUTE ON FUNCTION booking.webhook_purge_endpoint(uuid, int) TO service_role;
GRANT EXECUTE ON FUNCTION booking.create_hold(uuid, timestamptz, timestamptz, int) TO authenticated;
GRANT EXECUTE ON FUNCTION booking.confirm_hold(uuid, text) TO authenticated, service_role;
GRANT EXECUTE ON FUNCTION booking.release_hold(uuid) TO authenticated, service_role;
GRANT EXECUTE ON FUNCTION booking.decide_booking(uuid, boolean) TO authenticated, service_role;
GRANT EXECUTE ON FUNCTION booking.create_series(uuid, timestamptz, timestamptz, text, int, text[], int,
                                                timestamptz, text, text) TO authenticated;
GRANT EXECUTE ON FUNCTION booking.cancel_series(uuid, timestamptz) TO authenticated, service_role;
GRANT EXECUTE ON FUNCTION booking.add_closure(uuid, timestamptz, timestamptz, text, boolean) TO service_role;
GRANT EXECUTE ON FUNCTION booking.remove_closure(uuid, uuid) TO service_role;
GRANT EXECUTE ON FUNCTION booking.expire_due(int) TO service_role;
GRANT EXECUTE ON FUNCTION booking.create_calendar_feed(uuid, bytea) TO authenticated;
GRANT EXECUTE ON FUNCTION booking.revoke_calendar_feed(uuid) TO authenticated;
GRANT EXECUTE ON FUNCTION booking.calendar_feed(bytea) TO anon, authenticated;
GRANT EXECUTE ON FUNCTION booking.calendar_feed_exists(bytea) TO anon, authenticated;
