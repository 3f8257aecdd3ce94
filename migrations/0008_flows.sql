-- 0008_flows: bookings as businesses use them — holds, approval, recurring
-- series, closures and date overrides — all under the same constraints as
-- every booking.
--
-- Holds and pending bookings are rows of booking.bookings, so the two
-- exclusion constraints cover them with every other booking: a live hold, a
-- pending booking and a confirmed one can never overlap on a seat (or for one
-- user). A hold or a pending booking carries `expires_at`. A constraint
-- predicate cannot mention the clock, so an expired row keeps its place in
-- the constraint until it is retired (status `expired`) — and every writer
-- that is refused because of a row retires the expired rows in its way, in
-- its own transaction, and tries again (booking.place). So an expired hold
-- never blocks anyone, whether or not the sweeper (which only makes the
-- status visible sooner and sends hold.expired / booking.expired) has run.
-- Readers (availability, the cap) treat an expired row as free by comparing
-- expires_at with the clock themselves.

-- ---------------------------------------------------------------------------
-- Statuses, holds, expiry, series.
-- ---------------------------------------------------------------------------
CREATE TABLE booking.series (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  resource_id uuid NOT NULL REFERENCES booking.resources (id),
  user_id     uuid NOT NULL REFERENCES booking.users (id),
  rrule       text NOT NULL CONSTRAINT series_rrule_length CHECK (char_length(rrule) <= 500),
  created_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX series_user_idx ON booking.series (user_id);
CREATE INDEX series_resource_idx ON booking.series (resource_id);

ALTER TABLE booking.bookings
  ADD COLUMN is_hold boolean NOT NULL DEFAULT false,
  ADD COLUMN expires_at timestamptz,
  ADD COLUMN series_id uuid REFERENCES booking.series (id);
ALTER TABLE booking.bookings DROP CONSTRAINT bookings_status_check;
ALTER TABLE booking.bookings ADD CONSTRAINT bookings_status_check
  CHECK (status IN ('held', 'pending', 'confirmed', 'cancelled', 'rejected', 'expired'));
-- a hold is `held` until confirmed (then it is a booking) or it ends
ALTER TABLE booking.bookings ADD CONSTRAINT bookings_hold_status
  CHECK (is_hold = (status = 'held') OR (is_hold AND status IN ('cancelled', 'expired')));
ALTER TABLE booking.bookings ADD CONSTRAINT bookings_expiry
  CHECK ((status IN ('held', 'pending')) = (expires_at IS NOT NULL) OR status = 'expired');
CREATE INDEX bookings_expiring_idx ON booking.bookings (expires_at) WHERE status IN ('held', 'pending');
-- The cap counts a user's live rows that have not ended: this index reaches
-- exactly those (at most the cap's worth), however many bookings the user
-- has had, instead of every booking of the user.
CREATE INDEX bookings_user_live_end_idx ON booking.bookings (user_id, upper(period))
  WHERE status IN ('held', 'pending', 'confirmed');
CREATE INDEX bookings_series_idx ON booking.bookings (series_id, lower(period)) WHERE series_id IS NOT NULL;

-- The invariants, now over every row that occupies a seat.
ALTER TABLE booking.bookings DROP CONSTRAINT bookings_no_overlap;
ALTER TABLE booking.bookings ADD CONSTRAINT bookings_no_overlap
  EXCLUDE USING gist (resource_id WITH =, seat WITH =, blocked WITH &&)
  WHERE (status IN ('held', 'pending', 'confirmed'));
ALTER TABLE booking.bookings DROP CONSTRAINT bookings_user_no_overlap;
ALTER TABLE booking.bookings ADD CONSTRAINT bookings_user_no_overlap
  EXCLUDE USING gist (user_id WITH =, period WITH &&)
  WHERE (status IN ('held', 'pending', 'confirmed'));

ALTER TABLE booking.booking_events DROP CONSTRAINT booking_events_action_check;
ALTER TABLE booking.booking_events ADD CONSTRAINT booking_events_action_check
  CHECK (action IN ('created', 'rescheduled', 'updated', 'cancelled', 'held', 'confirmed', 'released',
                    'approved', 'rejected', 'expired'));

-- Resources: approval, date overrides.
ALTER TABLE booking.resources
  ADD COLUMN requires_approval boolean NOT NULL DEFAULT false,
  ADD COLUMN approval_timeout_minutes int NOT NULL DEFAULT 1440
    CONSTRAINT resources_approval_timeout CHECK (approval_timeout_minutes BETWEEN 1 AND 43200),
  ADD COLUMN date_overrides jsonb
    CONSTRAINT resources_date_overrides CHECK (date_overrides IS NULL OR jsonb_typeof(date_overrides) = 'object');

-- Closures: periods a resource is closed (admin).
CREATE TABLE booking.closures (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  resource_id uuid NOT NULL REFERENCES booking.resources (id),
  period      tstzrange NOT NULL CONSTRAINT closures_period_bounded CHECK (
    NOT isempty(period) AND NOT lower_inf(period) AND NOT upper_inf(period)),
  reason      text CONSTRAINT closures_reason_length CHECK (char_length(reason) <= 500),
  created_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX closures_resource_period_idx ON booking.closures USING gist (resource_id, period);

ALTER TABLE booking.series ENABLE ROW LEVEL SECURITY;
ALTER TABLE booking.series FORCE ROW LEVEL SECURITY;
ALTER TABLE booking.closures ENABLE ROW LEVEL SECURITY;
ALTER TABLE booking.closures FORCE ROW LEVEL SECURITY;
REVOKE ALL ON booking.series, booking.closures FROM PUBLIC, anon, authenticated, service_role;
GRANT SELECT ON booking.series TO authenticated, service_role;
GRANT SELECT ON booking.closures TO service_role;
CREATE POLICY series_select_own ON booking.series FOR SELECT TO authenticated
  USING (user_id = (SELECT auth.uid()));
CREATE POLICY series_select_staff ON booking.series FOR SELECT TO authenticated
  USING (resource_id IN (SELECT r.id FROM booking.resources r WHERE r.owner_id = (SELECT auth.uid())));
CREATE POLICY series_definer ON booking.series FOR ALL TO CURRENT_USER USING (true) WITH CHECK (true);
CREATE POLICY closures_definer ON booking.closures FOR ALL TO CURRENT_USER USING (true) WITH CHECK (true);

-- Staff see every booking on their resources, but not holds: only the holder
-- (and the service role) sees a hold.
DROP POLICY bookings_select_staff ON booking.bookings;
CREATE POLICY bookings_select_staff ON booking.bookings FOR SELECT TO authenticated
  USING (NOT is_hold AND resource_id IN (SELECT r.id FROM booking.resources r WHERE r.owner_id = (SELECT auth.uid())));

-- ---------------------------------------------------------------------------
-- Snapshots. Under SERIALIZABLE a writer keeps the snapshot of its first
-- statement: a capacity lowered, a closure added or a booking made by a
-- READ COMMITTED session after it would go unseen (and the conflict
-- detection of SERIALIZABLE only covers other SERIALIZABLE transactions). So
-- booking writes run under READ COMMITTED only (0006 refused REPEATABLE
-- READ; the server's connections always read committed), checked in the write
-- functions and again by the trigger every booking write passes.
-- ---------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION booking.require_fresh_snapshots() RETURNS void
  LANGUAGE plpgsql
  SET search_path = pg_catalog, pg_temp
  AS $$
BEGIN
  IF current_setting('transaction_isolation') <> 'read committed' THEN
    RAISE EXCEPTION 'booking writes need READ COMMITTED isolation'
      USING ERRCODE = 'invalid_transaction_state';
  END IF;
END
$$;

-- ---------------------------------------------------------------------------
-- Triggers.
-- ---------------------------------------------------------------------------
-- BEFORE INSERT/UPDATE, replacing 0006's: the same guards, extended to the
-- new statuses. Final statuses (cancelled, rejected, expired) never change; a
-- booking never becomes a hold again.
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

-- AFTER INSERT/UPDATE: history, replacing 0002's, with the new actions.
CREATE OR REPLACE FUNCTION booking.bookings_after_write() RETURNS trigger
  LANGUAGE plpgsql
  SET search_path = pg_catalog, pg_temp
  AS $$
DECLARE
  act text;
BEGIN
  IF TG_OP = 'INSERT' THEN
    act := CASE WHEN NEW.status = 'held' THEN 'held' ELSE 'created' END;
  ELSIF NEW.status <> OLD.status THEN
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
  -- checked after the row is in place, i.e. after any wait for another
  -- transaction's conflicting row: a write that waited past its start is
  -- refused, so nothing is booked (or moved) into the past
  IF (TG_OP = 'INSERT' OR NEW.period <> OLD.period) AND NEW.status IN ('held', 'pending', 'confirmed')
     AND current_setting('role', true) IN ('authenticated', 'service_role', 'anon')
     AND lower(NEW.period) < booking.clock() THEN
    RAISE EXCEPTION 'start is in the past'
      USING ERRCODE = 'check_violation', CONSTRAINT = 'bookings_start_not_past';
  END IF;
  INSERT INTO booking.booking_events (booking_id, action, actor_id, old_period, new_period)
  VALUES (NEW.id, act, CASE WHEN act = 'expired' THEN NULL ELSE auth.uid() END,
          CASE WHEN TG_OP = 'UPDATE' THEN OLD.period END, NEW.period);
  RETURN NULL;
END
$$;

-- Webhook data of a booking (0007's, with series_id) and of a hold.
CREATE OR REPLACE FUNCTION booking.booking_data(b booking.bookings) RETURNS jsonb
  LANGUAGE sql STABLE
  SET search_path = pg_catalog, pg_temp
  AS $$
    SELECT jsonb_build_object('id', b.id, 'resource_id', b.resource_id, 'user_id', b.user_id,
      'start', lower(b.period), 'end', upper(b.period), 'status', b.status, 'note', b.note,
      'version', b.version, 'created_at', b.created_at, 'updated_at', b.updated_at,
      'cancelled_at', b.cancelled_at, 'series_id', b.series_id)
  $$;

CREATE FUNCTION booking.hold_data(b booking.bookings) RETURNS jsonb
  LANGUAGE sql STABLE
  SET search_path = pg_catalog, pg_temp
  AS $$
    SELECT jsonb_build_object('id', b.id, 'resource_id', b.resource_id, 'user_id', b.user_id,
      'start', lower(b.period), 'end', upper(b.period), 'expires_at', b.expires_at)
  $$;

-- The outbox trigger (0007's), with holds and approval, and lean: one clock
-- read, and the change's message and the booking's reminders written by one
-- INSERT (a create with endpoints costs the probe, the clock and that insert).
CREATE OR REPLACE FUNCTION booking.bookings_outbox() RETURNS trigger
  LANGUAGE plpgsql
  SET search_path = pg_catalog, pg_temp
  AS $$
DECLARE
  ev text;
  d jsonb;
  dd jsonb;
  at timestamptz;
  reminders boolean;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM booking.webhook_endpoints) THEN
    RETURN NULL;  -- nobody listens: the common case costs one probe
  END IF;
  at := booking.clock();
  d := booking.booking_data(NEW);
  IF TG_OP = 'INSERT' THEN
    IF NEW.status = 'held' THEN
      ev := 'hold.created';
      dd := booking.hold_data(NEW);
    ELSE
      ev := CASE WHEN NEW.status = 'pending' THEN 'booking.pending' ELSE 'booking.created' END;
      dd := d;
    END IF;
  ELSIF OLD.status = 'held' THEN
    IF NEW.status IN ('confirmed', 'pending') THEN
      PERFORM booking.enqueue_message('hold.confirmed', NEW.resource_id, NEW.id,
        booking.hold_data(OLD) || jsonb_build_object('booking_id', NEW.id));
      ev := CASE WHEN NEW.status = 'pending' THEN 'booking.pending' ELSE 'booking.created' END;
      dd := d;
    ELSIF NEW.status = 'expired' THEN
      ev := 'hold.expired';
      dd := booking.hold_data(OLD);
    END IF;
  ELSE
    -- a change of the note only: no event, and the reminders stay
    IF NEW.period = OLD.period AND NEW.status = OLD.status THEN
      RETURN NULL;
    END IF;
    ev := CASE
      WHEN NEW.status = OLD.status THEN 'booking.rescheduled'
      WHEN OLD.status = 'pending' AND NEW.status = 'confirmed' THEN 'booking.approved'
      ELSE 'booking.' || NEW.status
    END;
    dd := d || jsonb_build_object('previous', jsonb_build_object(
            'start', lower(OLD.period), 'end', upper(OLD.period), 'status', OLD.status));
    -- reminders follow the booking's time and status; one being delivered
    -- right now is left to finish
    DELETE FROM booking.webhook_messages
     WHERE subject_id = NEW.id AND state = 'pending' AND event = 'booking.reminder'
       AND (leased_until IS NULL OR leased_until < at);
  END IF;
  reminders := NEW.status = 'confirmed';
  INSERT INTO booking.webhook_messages (endpoint_id, event, subject_id, data, created_at, due_at)
  SELECT e.id, ev, NEW.id, dd, at, at
    FROM booking.webhook_endpoints e
   WHERE ev IS NOT NULL AND e.active
     AND (e.events IS NULL OR ev = ANY (e.events))
     AND (e.resource_id IS NULL OR e.resource_id = NEW.resource_id)
  UNION ALL
  SELECT e.id, 'booking.reminder', NEW.id, d, at, lower(NEW.period) - make_interval(mins => m)
    FROM booking.resources r
    CROSS JOIN LATERAL unnest(r.reminders_minutes) AS m
    JOIN booking.webhook_endpoints e
      ON e.active
     AND (e.events IS NULL OR 'booking.reminder' = ANY (e.events))
     AND (e.resource_id IS NULL OR e.resource_id = NEW.resource_id)
   WHERE reminders AND r.id = NEW.resource_id
     AND lower(NEW.period) - make_interval(mins => m) > at;
  RETURN NULL;
END
$$;

-- ---------------------------------------------------------------------------
-- The one rule function (0002's), with closures and date overrides: create,
-- reschedule, holds, series and availability all call it. `p_closed`: the
-- resource's closures over a whole window, when the caller (availability,
-- judging many candidates) has read them once; NULL: read them here.
-- ---------------------------------------------------------------------------
DROP FUNCTION booking.slot_problem(booking.resources, timestamptz, timestamptz, timestamptz);
CREATE FUNCTION booking.slot_problem(r booking.resources, s timestamptz, e timestamptz, at timestamptz,
                                     p_closed tstzmultirange DEFAULT NULL)
  RETURNS jsonb
  LANGUAGE plpgsql STABLE
  SET search_path = pg_catalog, pg_temp
  AS $$
DECLARE
  ls timestamp := s AT TIME ZONE r.timezone;
  le timestamp := e AT TIME ZONE r.timezone;
  minutes numeric := extract(epoch FROM e - s) / 60;
  day_key text;
  date_key text;
  hours jsonb;
  iv jsonb;
  open_at timestamptz;
  close_at timestamptz;
  open_l timestamp;
  close_l timestamp;
  steady boolean;
BEGIN
  IF e <= s THEN
    RETURN jsonb_build_object('field', 'end', 'message', 'end must be after start');
  END IF;
  IF s < at THEN
    RETURN jsonb_build_object('field', 'start', 'message', 'start is in the past');
  END IF;
  IF s < at + make_interval(mins => r.min_notice_minutes) THEN
    RETURN jsonb_build_object('field', 'start', 'message',
      format('start must be at least %s minutes from now', r.min_notice_minutes));
  END IF;
  IF s > at + make_interval(days => r.max_advance_days) THEN
    RETURN jsonb_build_object('field', 'start', 'message',
      format('start must be at most %s days ahead', r.max_advance_days));
  END IF;
  IF extract(second FROM ls) <> 0
     OR (extract(hour FROM ls) * 60 + extract(minute FROM ls))::int % r.slot_minutes <> 0 THEN
    RETURN jsonb_build_object('field', 'start', 'message',
      format('start must be on the resource''s %s-minute grid (local time in %s)', r.slot_minutes, r.timezone));
  END IF;
  IF extract(second FROM le) <> 0
     OR (extract(hour FROM le) * 60 + extract(minute FROM le))::int % r.slot_minutes <> 0 THEN
    RETURN jsonb_build_object('field', 'end', 'message',
      format('end must be on the resource''s %s-minute grid (local time in %s)', r.slot_minutes, r.timezone));
  END IF;
  IF minutes < r.min_duration_minutes OR minutes > r.max_duration_minutes THEN
    RETURN jsonb_build_object('field', 'end', 'message',
      format('duration must be between %s and %s minutes', r.min_duration_minutes, r.max_duration_minutes));
  END IF;
  IF (p_closed IS NOT NULL AND p_closed && tstzrange(s, e, '[)'))
     OR (p_closed IS NULL AND EXISTS (SELECT 1 FROM booking.closures c
                                       WHERE c.resource_id = r.id AND c.period && tstzrange(s, e, '[)'))) THEN
    RETURN jsonb_build_object('field', 'start', 'message', 'the resource is closed then');
  END IF;
  -- a date override replaces that local date's opening hours
  date_key := to_char(ls::date, 'YYYY-MM-DD');
  IF r.date_overrides IS NOT NULL AND r.date_overrides ? date_key THEN
    hours := r.date_overrides -> date_key;
  ELSIF r.opening_hours IS NOT NULL AND jsonb_typeof(r.opening_hours) = 'object' THEN
    day_key := (ARRAY['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'])[extract(dow FROM ls)::int + 1];
    hours := coalesce(r.opening_hours -> day_key, '[]'::jsonb);
  ELSE
    RETURN NULL;  -- always open
  END IF;
  -- Nearly every day has one UTC offset throughout (the offset is the same
  -- two days before s and two days after): its local times convert plainly,
  -- which is much cheaper than local_instant.
  steady := ((s - interval '2 days') AT TIME ZONE r.timezone) - ((s - interval '2 days') AT TIME ZONE 'UTC')
          = ((s + interval '2 days') AT TIME ZONE r.timezone) - ((s + interval '2 days') AT TIME ZONE 'UTC');
  FOR iv IN SELECT value FROM jsonb_array_elements(hours) LOOP
    open_l := ls::date + (iv ->> 0)::time;
    close_l := CASE WHEN iv ->> 1 = '24:00' THEN (ls::date + 1)::timestamp ELSE ls::date + (iv ->> 1)::time END;
    IF steady THEN
      open_at := open_l AT TIME ZONE r.timezone;
      close_at := close_l AT TIME ZONE r.timezone;
    ELSE
      open_at := booking.local_instant(open_l, r.timezone, true);
      close_at := booking.local_instant(close_l, r.timezone, false);
    END IF;
    IF s >= open_at AND e <= close_at THEN
      RETURN NULL;
    END IF;
  END LOOP;
  RETURN jsonb_build_object('field', 'start', 'message', 'the period is outside the resource''s opening hours');
END
$$;

-- ---------------------------------------------------------------------------
-- What a write returns: 0006's columns, and the expiry (holds, pending) and
-- the series.
-- ---------------------------------------------------------------------------
ALTER TYPE booking.write_result ADD ATTRIBUTE expires_at timestamptz, ADD ATTRIBUTE series_id uuid;

CREATE OR REPLACE FUNCTION booking.refused(p_outcome text, p_problem jsonb DEFAULT NULL)
  RETURNS booking.write_result
  LANGUAGE sql IMMUTABLE
  SET search_path = pg_catalog, pg_temp
  AS $$
    SELECT ROW(p_outcome, p_problem ->> 'field', p_problem ->> 'message',
               NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)::booking.write_result
  $$;

CREATE OR REPLACE FUNCTION booking.written(p_outcome text, b booking.bookings)
  RETURNS booking.write_result
  LANGUAGE sql IMMUTABLE
  SET search_path = pg_catalog, pg_temp
  AS $$
    SELECT ROW(p_outcome, NULL, NULL, b.id, b.resource_id, b.user_id, lower(b.period), upper(b.period),
               b.status, b.note, b.version, b.created_at, b.updated_at, b.cancelled_at, b.expires_at,
               b.series_id)::booking.write_result
  $$;

-- ---------------------------------------------------------------------------
-- Placing a row on a seat (internal: called by the write functions only).
-- ---------------------------------------------------------------------------
-- Retire (status `expired`) every expired hold or pending booking that stands
-- in the way of `p_period` on the resource (with buffers) or for the user.
CREATE FUNCTION booking.retire_expired(p_resource uuid, p_blocked tstzrange, p_user uuid,
                                       p_period tstzrange, p_at timestamptz)
  RETURNS int
  LANGUAGE plpgsql
  SET search_path = pg_catalog, pg_temp
  AS $$
DECLARE
  n int;
BEGIN
  UPDATE booking.bookings SET status = 'expired'
   WHERE status IN ('held', 'pending') AND expires_at <= p_at
     AND ((resource_id = p_resource AND blocked && p_blocked) OR (user_id = p_user AND period && p_period));
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n;
END
$$;

-- Whether the user holds a live row overlapping p (the user_overlap answer).
CREATE FUNCTION booking.user_busy(p_user uuid, p tstzrange, p_at timestamptz, p_except uuid DEFAULT NULL)
  RETURNS boolean
  LANGUAGE sql STABLE
  SET search_path = pg_catalog, pg_temp
  AS $$
    SELECT EXISTS (SELECT 1 FROM booking.bookings
                    WHERE user_id = p_user AND status IN ('held', 'pending', 'confirmed')
                      AND (expires_at IS NULL OR expires_at > p_at) AND period && p
                      AND id IS DISTINCT FROM p_except)
  $$;

-- Insert a row on the first free seat. Refused on every seat: the expired
-- rows in the way are retired and the seats tried once more.
CREATE FUNCTION booking.place(r booking.resources, uid uuid, p tstzrange, p_note text, p_status text,
                              p_expires timestamptz, p_series uuid, at timestamptz)
  RETURNS booking.write_result
  LANGUAGE plpgsql
  SET search_path = pg_catalog, pg_temp
  AS $$
DECLARE
  b booking.bookings;
  seat_no int := 1;
  retired boolean := false;
BEGIN
  WHILE seat_no <= r.capacity LOOP
    INSERT INTO booking.bookings (resource_id, user_id, period, blocked, seat, note, status, expires_at, series_id)
    VALUES (r.id, uid, p, p, seat_no, p_note, p_status, p_expires, p_series)
    ON CONFLICT DO NOTHING
    RETURNING * INTO b;
    IF FOUND THEN
      RETURN booking.written('created', b);
    END IF;
    IF seat_no = 1 THEN
      IF booking.user_busy(uid, p, at) THEN
        RETURN booking.refused('user_overlap');
      END IF;
      -- once, at the first refusal: retire every expired row in the way (on
      -- any seat, or the user's own), then start over from seat 1
      IF NOT retired THEN
        retired := true;
        IF booking.retire_expired(r.id, tstzrange(lower(p), upper(p) + make_interval(mins => r.buffer_minutes), '[)'),
                                  uid, p, at) > 0 THEN
          CONTINUE;
        END IF;
      END IF;
    END IF;
    seat_no := seat_no + 1;
  END LOOP;
  RETURN booking.refused('slot_taken');
END
$$;

-- The active-bookings cap, counted under a lock on the caller's own user row
-- (see 0006). Holds and pending bookings count: they occupy seats. NULL
-- when `p_adding` more fit, else the refusal.
CREATE FUNCTION booking.cap_problem(uid uuid, p_adding int)
  RETURNS jsonb
  LANGUAGE plpgsql
  SET search_path = pg_catalog, pg_temp
  AS $$
DECLARE
  cap int;
  n_active int;
  at timestamptz;
BEGIN
  PERFORM booking.require_fresh_snapshots();
  PERFORM booking.ensure_user(uid);
  PERFORM 1 FROM booking.users WHERE id = uid FOR UPDATE;
  at := booking.clock();  -- after the lock, which may have been waited for
  SELECT max_active_bookings INTO cap FROM booking.settings;
  cap := coalesce(cap, 100);
  SELECT count(*) INTO n_active FROM booking.bookings
   WHERE user_id = uid AND status IN ('held', 'pending', 'confirmed') AND upper(period) > at
     AND (expires_at IS NULL OR expires_at > at);
  IF n_active + p_adding > cap THEN
    RETURN jsonb_build_object('field', 'active_bookings', 'message',
      format('you already hold %s active bookings (holds, pending and confirmed, not yet ended) and at most %s are allowed; cancel one first',
             n_active, cap));
  END IF;
  RETURN NULL;
END
$$;

-- ---------------------------------------------------------------------------
-- Create (0006's, with approval): `pending` on resources that require it.
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
  at timestamptz := booking.clock();
  problem jsonb;
BEGIN
  IF uid IS NULL OR booking.caller_is_service() THEN
    RETURN booking.refused('unauthenticated');
  END IF;
  IF p_resource IS NULL OR p_start IS NULL OR p_end IS NULL THEN
    RETURN booking.refused('invalid', '{"field": "start", "message": "resource_id, start and end are required"}');
  END IF;
  -- the resource row first (a closure being added waits for us, or we for
  -- it, and then see it), the cap (under the user's row), then the clock and
  -- the rules: every check after every lock it may have waited for
  PERFORM booking.require_fresh_snapshots();
  SELECT * INTO r FROM booking.resources WHERE id = p_resource AND active FOR KEY SHARE;
  IF NOT FOUND THEN
    RETURN booking.refused('not_found');
  END IF;
  problem := coalesce(booking.note_problem(p_note), booking.cap_problem(uid, 1));
  IF problem IS NULL THEN
    at := booking.clock();
    problem := booking.slot_problem(r, p_start, p_end, at);
  END IF;
  IF problem IS NOT NULL THEN
    RETURN booking.refused('invalid', problem);
  END IF;
  IF r.requires_approval THEN
    RETURN booking.place(r, uid, tstzrange(p_start, p_end, '[)'), p_note, 'pending',
                         at + make_interval(mins => r.approval_timeout_minutes), NULL, at);
  END IF;
  RETURN booking.place(r, uid, tstzrange(p_start, p_end, '[)'), p_note, 'confirmed', NULL, NULL, at);
END
$$;

-- ---------------------------------------------------------------------------
-- Holds.
-- ---------------------------------------------------------------------------
CREATE FUNCTION booking.create_hold(p_resource uuid, p_start timestamptz, p_end timestamptz,
                                    p_seconds int DEFAULT 300)
  RETURNS booking.write_result
  LANGUAGE plpgsql SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
  AS $$
DECLARE
  r booking.resources;
  uid uuid := auth.uid();
  at timestamptz := booking.clock();
  problem jsonb;
BEGIN
  IF uid IS NULL OR booking.caller_is_service() THEN
    RETURN booking.refused('unauthenticated');
  END IF;
  IF p_resource IS NULL OR p_start IS NULL OR p_end IS NULL THEN
    RETURN booking.refused('invalid', '{"field": "start", "message": "resource_id, start and end are required"}');
  END IF;
  IF p_seconds IS NULL OR p_seconds NOT BETWEEN 30 AND 3600 THEN
    RETURN booking.refused('invalid', '{"field": "expires_in_seconds", "message": "must be between 30 and 3600"}');
  END IF;
  PERFORM booking.require_fresh_snapshots();
  SELECT * INTO r FROM booking.resources WHERE id = p_resource AND active FOR KEY SHARE;
  IF NOT FOUND THEN
    RETURN booking.refused('not_found');
  END IF;
  problem := booking.cap_problem(uid, 1);
  IF problem IS NULL THEN
    at := booking.clock();
    problem := booking.slot_problem(r, p_start, p_end, at);
  END IF;
  IF problem IS NOT NULL THEN
    RETURN booking.refused('invalid', problem);
  END IF;
  RETURN booking.place(r, uid, tstzrange(p_start, p_end, '[)'), NULL, 'held',
                       at + make_interval(secs => p_seconds), NULL, at);
END
$$;

-- Confirm: the hold's row becomes the booking — same id, seat and period, in
-- one UPDATE, so there is no moment at which the seat is free. `pending` on a
-- resource that requires approval. An expired hold: hold_expired.
CREATE FUNCTION booking.confirm_hold(p_id uuid, p_note text DEFAULT NULL)
  RETURNS booking.write_result
  LANGUAGE plpgsql SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
  AS $$
DECLARE
  b booking.bookings;
  r booking.resources;
  uid uuid := auth.uid();
  at timestamptz := booking.clock();
  problem jsonb;
BEGIN
  PERFORM booking.require_fresh_snapshots();
  SELECT * INTO b FROM booking.bookings WHERE id = p_id AND is_hold;
  IF NOT FOUND OR NOT (booking.caller_is_service() OR (uid IS NOT NULL AND b.user_id = uid)) THEN
    RETURN booking.refused('not_found');
  END IF;
  problem := booking.note_problem(p_note);
  IF problem IS NOT NULL THEN
    RETURN booking.refused('invalid', problem);
  END IF;
  SELECT * INTO b FROM booking.bookings WHERE id = p_id FOR UPDATE;
  at := booking.clock();  -- after the lock, which may have been waited for
  IF NOT b.is_hold OR b.status = 'cancelled' THEN
    RETURN booking.refused('not_found');
  END IF;
  IF b.status = 'expired' THEN
    RETURN booking.refused('hold_expired');
  END IF;
  IF b.expires_at <= at THEN
    UPDATE booking.bookings SET status = 'expired' WHERE id = p_id;
    RETURN booking.refused('hold_expired');
  END IF;
  SELECT * INTO r FROM booking.resources WHERE id = b.resource_id;
  UPDATE booking.bookings
     SET status = CASE WHEN r.requires_approval THEN 'pending' ELSE 'confirmed' END,
         expires_at = CASE WHEN r.requires_approval THEN at + make_interval(mins => r.approval_timeout_minutes) END,
         is_hold = false, note = p_note
   WHERE id = p_id
  RETURNING * INTO b;
  RETURN booking.written('created', b);
END
$$;

-- Release a hold (its holder or the service role). Releasing one that ended
-- changes nothing.
CREATE FUNCTION booking.release_hold(p_id uuid)
  RETURNS booking.write_result
  LANGUAGE plpgsql SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
  AS $$
DECLARE
  b booking.bookings;
  uid uuid := auth.uid();
BEGIN
  SELECT * INTO b FROM booking.bookings WHERE id = p_id AND is_hold;
  IF NOT FOUND OR NOT (booking.caller_is_service() OR (uid IS NOT NULL AND b.user_id = uid)) THEN
    RETURN booking.refused('not_found');
  END IF;
  SELECT * INTO b FROM booking.bookings WHERE id = p_id FOR UPDATE;
  IF b.status <> 'held' OR NOT b.is_hold THEN
    RETURN booking.written('unchanged', b);
  END IF;
  UPDATE booking.bookings SET status = 'cancelled' WHERE id = p_id RETURNING * INTO b;
  RETURN booking.written('updated', b);
END
$$;

-- ---------------------------------------------------------------------------
-- Approval: the resource's owner or the service role decides a pending
-- booking. Anything but a live pending booking: not_allowed.
-- ---------------------------------------------------------------------------
CREATE FUNCTION booking.decide_booking(p_id uuid, p_approve boolean)
  RETURNS booking.write_result
  LANGUAGE plpgsql SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
  AS $$
DECLARE
  b booking.bookings;
  uid uuid := auth.uid();
  at timestamptz := booking.clock();
BEGIN
  PERFORM booking.require_fresh_snapshots();
  SELECT * INTO b FROM booking.bookings WHERE id = p_id AND NOT is_hold;
  IF NOT FOUND THEN
    RETURN booking.refused('not_found');
  END IF;
  IF NOT (booking.caller_is_service() OR (uid IS NOT NULL AND EXISTS (
            SELECT 1 FROM booking.resources WHERE id = b.resource_id AND owner_id = uid))) THEN
    IF uid IS NOT NULL AND b.user_id = uid THEN
      RETURN booking.refused('forbidden');
    END IF;
    RETURN booking.refused('not_found');
  END IF;
  SELECT * INTO b FROM booking.bookings WHERE id = p_id FOR UPDATE;
  at := booking.clock();
  IF b.status <> 'pending' THEN
    RETURN booking.refused('not_allowed');
  END IF;
  IF b.expires_at <= at THEN
    UPDATE booking.bookings SET status = 'expired' WHERE id = p_id;
    RETURN booking.refused('not_allowed');
  END IF;
  UPDATE booking.bookings SET status = CASE WHEN p_approve THEN 'confirmed' ELSE 'rejected' END
   WHERE id = p_id RETURNING * INTO b;
  RETURN booking.written('updated', b);
END
$$;

-- ---------------------------------------------------------------------------
-- Reschedule and cancel (0006's), for the new statuses: holds are not
-- bookings here; only confirmed and pending bookings move; seats refused by
-- an expired row are retried after it is retired.
-- ---------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION booking.reschedule_booking(p_id uuid, p_start timestamptz, p_end timestamptz,
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
  round int;
  cname text;
  p tstzrange;
  user_clash boolean;
BEGIN
  IF uid IS NULL AND NOT service THEN
    RETURN booking.refused('not_found');
  END IF;
  IF p_start IS NULL OR p_end IS NULL THEN
    RETURN booking.refused('invalid', '{"field": "start", "message": "start and end are required"}');
  END IF;
  PERFORM booking.require_fresh_snapshots();
  SELECT * INTO b FROM booking.bookings WHERE id = p_id AND NOT is_hold;
  IF NOT FOUND THEN
    RETURN booking.refused('not_found');
  END IF;
  IF NOT service AND b.user_id IS DISTINCT FROM uid THEN
    IF EXISTS (SELECT 1 FROM booking.resources WHERE id = b.resource_id AND owner_id = uid) THEN
      RETURN booking.refused('forbidden');
    END IF;
    RETURN booking.refused('not_found');
  END IF;
  -- the resource row (closures being added), then the booking, then the clock
  SELECT * INTO r FROM booking.resources WHERE id = b.resource_id AND active FOR KEY SHARE;
  IF NOT FOUND THEN
    RETURN booking.refused('not_found');
  END IF;
  SELECT * INTO b FROM booking.bookings WHERE id = p_id FOR UPDATE;
  at := booking.clock();
  IF p_version IS NOT NULL AND b.version <> p_version THEN
    RETURN booking.refused('precondition_failed');
  END IF;
  IF b.status = 'cancelled' THEN
    RETURN booking.refused('invalid', '{"field": "status", "message": "a cancelled booking cannot be rescheduled"}');
  END IF;
  IF b.status NOT IN ('confirmed', 'pending') OR (b.status = 'pending' AND b.expires_at <= at) THEN
    RETURN booking.refused('not_allowed');
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
    -- an approved booking moved by its user would skip the approval
    IF r.requires_approval AND b.status = 'confirmed' AND NOT service THEN
      RETURN booking.refused('not_allowed');
    END IF;
    problem := booking.slot_problem(r, p_start, p_end, at);
    IF problem IS NOT NULL THEN
      RETURN booking.refused('invalid', problem);
    END IF;
  END IF;
  FOR round IN 1 .. 2 LOOP
    user_clash := false;
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
          user_clash := true;
          EXIT;
        END IF;
      END;
    END LOOP;
    EXIT WHEN round = 2 OR booking.retire_expired(
      r.id, tstzrange(p_start, p_end + make_interval(mins => r.buffer_minutes), '[)'), b.user_id, p, at) = 0;
  END LOOP;
  IF user_clash THEN
    RETURN booking.refused('user_overlap');
  END IF;
  RETURN booking.refused('slot_taken');
END
$$;

CREATE OR REPLACE FUNCTION booking.cancel_booking(p_id uuid, p_version int DEFAULT NULL)
  RETURNS booking.write_result
  LANGUAGE plpgsql SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
  AS $$
DECLARE
  b booking.bookings;
  uid uuid := auth.uid();
BEGIN
  SELECT * INTO b FROM booking.bookings WHERE id = p_id AND NOT is_hold;
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
  IF b.status NOT IN ('confirmed', 'pending') THEN
    RETURN booking.refused('not_allowed');
  END IF;
  UPDATE booking.bookings SET status = 'cancelled' WHERE id = p_id RETURNING * INTO b;
  RETURN booking.written('updated', b);
END
$$;

-- ---------------------------------------------------------------------------
-- Recurring series: expanded here, in the resource's time zone, so that
-- 09:00 stays 09:00 across a DST change (a local start that does not exist
-- that day — a spring-forward gap — is the instant the clock jumps over it;
-- every occurrence lasts as long as the first). All or nothing: every
-- occurrence passes the rules and takes a seat, or nothing is created and
-- one row per refused occurrence says which and why (`field`
-- occurrences[i], the message naming its start; only the caller's own
-- information).
-- ---------------------------------------------------------------------------
CREATE FUNCTION booking.series_starts(p_start timestamptz, p_tz text, p_freq text, p_interval int,
                                      p_byday text[], p_count int, p_until timestamptz)
  RETURNS TABLE (i int, s timestamptz)
  LANGUAGE plpgsql STABLE
  SET search_path = pg_catalog, pg_temp
  AS $$
DECLARE
  ls timestamp := p_start AT TIME ZONE p_tz;
  days text[] := ARRAY['MO', 'TU', 'WE', 'TH', 'FR', 'SA', 'SU'];
  wanted int[];
  week0 date := date_trunc('week', ls)::date;  -- the Monday of the first week
  k int := 0;
  n int := 0;
  d date;
  dow int;
  x timestamptz;
BEGIN
  IF p_freq = 'WEEKLY' THEN
    IF p_byday IS NULL OR cardinality(p_byday) = 0 THEN
      wanted := ARRAY[extract(isodow FROM ls)::int];
    ELSE
      SELECT array_agg(DISTINCT array_position(days, b) ORDER BY array_position(days, b)) INTO wanted
        FROM unnest(p_byday) b;
    END IF;
  END IF;
  WHILE k < 1000 LOOP
    FOR dow IN SELECT unnest(CASE WHEN p_freq = 'WEEKLY' THEN wanted ELSE ARRAY[0] END) LOOP
      d := CASE WHEN p_freq = 'WEEKLY' THEN week0 + (k * p_interval * 7) + (dow - 1)
                ELSE ls::date + k * p_interval END;
      CONTINUE WHEN d < ls::date;
      x := booking.local_instant(d + ls::time, p_tz, true);
      IF (p_count IS NOT NULL AND n >= p_count) OR (p_until IS NOT NULL AND x > p_until) THEN
        RETURN;
      END IF;
      n := n + 1;
      IF n > 100 THEN
        i := 101;  -- the caller refuses more than 100
        s := x;
        RETURN NEXT;
        RETURN;
      END IF;
      i := n;
      s := x;
      RETURN NEXT;
    END LOOP;
    k := k + 1;
  END LOOP;
END
$$;

CREATE FUNCTION booking.create_series(p_resource uuid, p_start timestamptz, p_end timestamptz,
                                      p_freq text, p_interval int, p_byday text[], p_count int,
                                      p_until timestamptz, p_rrule text, p_note text DEFAULT NULL)
  RETURNS SETOF booking.write_result
  LANGUAGE plpgsql SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
  AS $$
DECLARE
  r booking.resources;
  uid uuid := auth.uid();
  at timestamptz := booking.clock();
  dur interval := p_end - p_start;
  sid uuid;
  occ record;
  res booking.write_result;
  problem jsonb;
  refusals booking.write_result[] := '{}';
  created booking.write_result[] := '{}';
  n int;
BEGIN
  IF uid IS NULL OR booking.caller_is_service() THEN
    RETURN NEXT booking.refused('unauthenticated');
    RETURN;
  END IF;
  IF p_resource IS NULL OR p_start IS NULL OR p_end IS NULL OR p_end <= p_start THEN
    RETURN NEXT booking.refused('invalid', '{"field": "end", "message": "start and end are required, end after start"}');
    RETURN;
  END IF;
  IF p_freq IS NULL OR p_freq NOT IN ('DAILY', 'WEEKLY') OR p_interval IS NULL OR p_interval NOT BETWEEN 1 AND 52
     OR (p_count IS NULL) = (p_until IS NULL) OR p_count NOT BETWEEN 1 AND 100
     OR (p_byday IS NOT NULL AND (p_freq <> 'WEEKLY' OR cardinality(p_byday) > 7
         OR NOT p_byday <@ ARRAY['MO', 'TU', 'WE', 'TH', 'FR', 'SA', 'SU'])) THEN
    RETURN NEXT booking.refused('invalid', '{"field": "rrule", "message": "FREQ=DAILY|WEEKLY, INTERVAL 1-52, BYDAY only with WEEKLY, and exactly one of COUNT (1-100) or UNTIL"}');
    RETURN;
  END IF;
  problem := booking.note_problem(p_note);
  IF problem IS NOT NULL THEN
    RETURN NEXT booking.refused('invalid', problem);
    RETURN;
  END IF;
  IF p_rrule IS NULL OR p_rrule !~ '^[A-Za-z0-9=;,:]{1,200}$' THEN
    RETURN NEXT booking.refused('invalid', '{"field": "rrule", "message": "an RRULE: letters, digits and = ; , : only, at most 200 characters"}');
    RETURN;
  END IF;
  PERFORM booking.require_fresh_snapshots();
  SELECT * INTO r FROM booking.resources WHERE id = p_resource AND active FOR KEY SHARE;
  IF NOT FOUND THEN
    RETURN NEXT booking.refused('not_found');
    RETURN;
  END IF;
  SELECT count(*) INTO n
    FROM booking.series_starts(p_start, r.timezone, p_freq, p_interval, p_byday, p_count, p_until);
  IF n > 100 THEN
    RETURN NEXT booking.refused('invalid', '{"field": "rrule", "message": "at most 100 occurrences"}');
    RETURN;
  END IF;
  problem := booking.cap_problem(uid, n);
  IF problem IS NOT NULL THEN
    RETURN NEXT booking.refused('invalid', problem);
    RETURN;
  END IF;
  at := booking.clock();
  BEGIN
    INSERT INTO booking.series (resource_id, user_id, rrule) VALUES (r.id, uid, p_rrule) RETURNING id INTO sid;
    FOR occ IN SELECT * FROM booking.series_starts(p_start, r.timezone, p_freq, p_interval, p_byday, p_count, p_until) LOOP
      problem := booking.slot_problem(r, occ.s, occ.s + dur, at);
      IF problem IS NOT NULL THEN
        res := booking.refused('invalid', problem);
      ELSE
        res := booking.place(r, uid, tstzrange(occ.s, occ.s + dur, '[)'), p_note,
                             CASE WHEN r.requires_approval THEN 'pending' ELSE 'confirmed' END,
                             CASE WHEN r.requires_approval THEN at + make_interval(mins => r.approval_timeout_minutes) END,
                             sid, at);
      END IF;
      IF res.outcome = 'created' THEN
        created := created || res;
      ELSE
        res.field := format('occurrences[%s]', occ.i - 1);
        res.message := format('%s: %s', to_char(occ.s AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
          CASE res.outcome
            WHEN 'slot_taken' THEN 'the time is not available'
            WHEN 'user_overlap' THEN 'you already hold an overlapping booking'
            ELSE coalesce(res.message, res.outcome) END);
        res.starts_at := occ.s;
        res.ends_at := occ.s + dur;
        refusals := refusals || res;
      END IF;
    END LOOP;
    IF cardinality(refusals) > 0 THEN
      RAISE EXCEPTION 'series refused' USING ERRCODE = 'BKS01';
    END IF;
    PERFORM booking.enqueue_message('series.created', r.id, sid, jsonb_build_object(
      'id', sid, 'resource_id', r.id, 'user_id', uid, 'rrule', p_rrule,
      'bookings', (SELECT jsonb_agg(booking.booking_data(b) ORDER BY lower(b.period))
                     FROM booking.bookings b WHERE b.series_id = sid)))
      WHERE EXISTS (SELECT 1 FROM booking.webhook_endpoints);
  EXCEPTION WHEN SQLSTATE 'BKS01' THEN
    RETURN QUERY SELECT * FROM unnest(refusals);
    RETURN;
  END;
  RETURN QUERY SELECT * FROM unnest(created);
END
$$;

-- Cancel a series' live occurrences starting at or after p_from (its user,
-- the resource's owner, or the service role). Returns how many it cancelled,
-- or NULL when the caller may not see the series.
CREATE FUNCTION booking.cancel_series(p_id uuid, p_from timestamptz)
  RETURNS int
  LANGUAGE plpgsql SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
  AS $$
DECLARE
  s booking.series;
  uid uuid := auth.uid();
  n int;
BEGIN
  SELECT * INTO s FROM booking.series WHERE id = p_id;
  IF NOT FOUND OR NOT (booking.caller_is_service()
                       OR (uid IS NOT NULL AND (s.user_id = uid OR EXISTS (
                             SELECT 1 FROM booking.resources WHERE id = s.resource_id AND owner_id = uid)))) THEN
    RETURN NULL;
  END IF;
  UPDATE booking.bookings SET status = 'cancelled'
   WHERE series_id = p_id AND status IN ('confirmed', 'pending')
     AND lower(period) >= coalesce(p_from, booking.clock());
  GET DIAGNOSTICS n = ROW_COUNT;
  IF n > 0 AND EXISTS (SELECT 1 FROM booking.webhook_endpoints) THEN
    PERFORM booking.enqueue_message('series.cancelled', s.resource_id, s.id, jsonb_build_object(
      'id', s.id, 'resource_id', s.resource_id, 'user_id', s.user_id, 'rrule', s.rrule,
      'bookings', (SELECT jsonb_agg(booking.booking_data(b) ORDER BY lower(b.period))
                     FROM booking.bookings b WHERE b.series_id = s.id)));
  END IF;
  RETURN n;
END
$$;

-- ---------------------------------------------------------------------------
-- Closures (service role). Writes to the resource's bookings wait while one
-- is added (they take the resource row FOR KEY SHARE before their checks), so
-- no booking can slip into it between the check and the insert.
-- Returns one row: ('created', closure id) — or, when live bookings (and
-- holds) lie inside and p_cancel is false, one ('conflict', booking id) row
-- per booking and nothing is created; with p_cancel they are cancelled
-- (with history) and the closure is created.
-- ---------------------------------------------------------------------------
CREATE FUNCTION booking.add_closure(p_resource uuid, p_start timestamptz, p_end timestamptz,
                                    p_reason text, p_cancel boolean)
  RETURNS TABLE (outcome text, id uuid)
  LANGUAGE plpgsql SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
  AS $$
#variable_conflict use_column
DECLARE
  at timestamptz := booking.clock();
  p tstzrange;
  cid uuid;
BEGIN
  IF NOT booking.caller_is_service() THEN
    RAISE EXCEPTION 'service role only' USING ERRCODE = 'insufficient_privilege';
  END IF;
  IF p_start IS NULL OR p_end IS NULL OR p_end <= p_start THEN
    RAISE EXCEPTION 'a closure needs start < end' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  p := tstzrange(p_start, p_end, '[)');
  -- the resource's row: every writer of this resource takes it FOR KEY
  -- SHARE first, so writers in flight finish before, and later ones see the
  -- closure (other resources' writers are not held up)
  PERFORM 1 FROM booking.resources WHERE id = p_resource FOR UPDATE;
  IF NOT p_cancel THEN
    RETURN QUERY
      SELECT 'conflict'::text, b.id FROM booking.bookings b
       WHERE b.resource_id = p_resource AND b.status IN ('held', 'pending', 'confirmed')
         AND (b.expires_at IS NULL OR b.expires_at > at) AND b.period && p
       ORDER BY lower(b.period), b.id;
    IF FOUND THEN
      RETURN;
    END IF;
  ELSE
    UPDATE booking.bookings b SET status = 'cancelled'
     WHERE b.resource_id = p_resource AND b.status IN ('held', 'pending', 'confirmed')
       AND (b.expires_at IS NULL OR b.expires_at > at) AND b.period && p;
  END IF;
  INSERT INTO booking.closures (resource_id, period, reason) VALUES (p_resource, p, p_reason)
  RETURNING closures.id INTO cid;
  RETURN QUERY SELECT 'created'::text, cid;
END
$$;

CREATE FUNCTION booking.remove_closure(p_resource uuid, p_id uuid)
  RETURNS boolean
  LANGUAGE plpgsql SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
  AS $$
BEGIN
  IF NOT booking.caller_is_service() THEN
    RAISE EXCEPTION 'service role only' USING ERRCODE = 'insufficient_privilege';
  END IF;
  DELETE FROM booking.closures WHERE id = p_id AND resource_id = p_resource;
  RETURN FOUND;
END
$$;

-- ---------------------------------------------------------------------------
-- Availability (0006's): live holds and pending bookings are busy, expired
-- ones free; closures and date overrides through slot_problem.
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
  closed tstzmultirange;
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
  -- the closures over the whole window, read once (not once per candidate)
  SELECT coalesce(range_agg(cl.period), '{}'::tstzmultirange) INTO closed
    FROM booking.closures cl
   WHERE cl.resource_id = p_resource AND cl.period && tstzrange(p_from, p_to + make_interval(mins => p_minutes), '[)');
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
   WHERE b.resource_id = p_resource AND b.status IN ('held', 'pending', 'confirmed')
     AND (b.expires_at IS NULL OR b.expires_at > p_at) AND b.seat <= r.capacity
     AND b.blocked && tstzrange(p_from, p_to + dur + buf, '[)');
  n := coalesce(array_length(bl, 1), 0);
  FOR c IN
    WITH mine AS MATERIALIZED (
      SELECT b.period FROM booking.bookings b
       WHERE b.user_id = uid AND b.status IN ('held', 'pending', 'confirmed')
         AND (b.expires_at IS NULL OR b.expires_at > p_at)
         AND b.period && tstzrange(p_from, p_to + dur, '[)')
    ), cand AS (
      SELECT t AS s, t + dur AS e
        FROM generate_series(to_timestamp(ceil(extract(epoch FROM p_from) / (step * 60)) * step * 60),
                             p_to - interval '1 microsecond', make_interval(mins => step)) t
       WHERE t >= p_at + make_interval(mins => r.min_notice_minutes)
         AND t <= p_at + make_interval(days => r.max_advance_days)
    )
    SELECT cd.s, cd.e FROM cand cd
     WHERE booking.slot_problem(r, cd.s, cd.e, p_at, closed) IS NULL
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

-- Lowering capacity (0006's): every live row counts.
CREATE OR REPLACE FUNCTION booking.seats_in_use_beyond(p_resource uuid, p_capacity int) RETURNS boolean
  LANGUAGE plpgsql SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
  AS $$
BEGIN
  IF NOT booking.caller_is_service() THEN
    RAISE EXCEPTION 'only the service role changes resources' USING ERRCODE = 'insufficient_privilege';
  END IF;
  -- the resource's row, as a closure does (see add_closure)
  PERFORM 1 FROM booking.resources WHERE id = p_resource FOR UPDATE;
  RETURN EXISTS (SELECT 1 FROM booking.bookings
                  WHERE resource_id = p_resource AND status IN ('held', 'pending', 'confirmed')
                    AND (expires_at IS NULL OR expires_at > booking.clock())
                    AND seat > p_capacity AND upper(period) > booking.clock());
END
$$;

-- The sweeper (service role): retire up to p_limit expired holds and pending
-- bookings, so their status shows and hold.expired / booking.expired go out.
-- Nothing correct depends on it (see the top of this file).
CREATE FUNCTION booking.expire_due(p_limit int)
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
  UPDATE booking.bookings SET status = 'expired'
   WHERE id IN (SELECT id FROM booking.bookings
                 WHERE status IN ('held', 'pending') AND expires_at <= booking.clock()
                 ORDER BY expires_at
                 LIMIT least(greatest(p_limit, 1), 1000)
                   FOR UPDATE SKIP LOCKED);
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n;
END
$$;

-- ---------------------------------------------------------------------------
-- EXECUTE: nobody by default, then exactly what each request role needs.
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
