-- 0002_rules: what every write goes through. Triggers keep the derived and
-- immutable columns honest whoever writes; plpgsql functions apply the
-- resource's rules and try seats with INSERT ... ON CONFLICT DO NOTHING, which
-- never deadlocks on a hot slot (a plain INSERT racing the exclusion constraint
-- does: 40P01 after deadlock_timeout, p99 of seconds). Functions are SECURITY
-- INVOKER unless noted, so RLS and grants of the calling role apply inside them.

-- JSON shape of a booking, as the API returns it.
CREATE FUNCTION booking.booking_json(b booking.bookings) RETURNS jsonb
  LANGUAGE sql STABLE
  SET search_path = pg_catalog, pg_temp
  AS $$
    SELECT jsonb_build_object(
      'id', b.id, 'resource_id', b.resource_id, 'user_id', b.user_id,
      'start', lower(b.period), 'end', upper(b.period), 'status', b.status,
      'note', b.note, 'version', b.version, 'created_at', b.created_at,
      'updated_at', b.updated_at, 'cancelled_at', b.cancelled_at)
  $$;

-- BEFORE INSERT/UPDATE: the server cannot forget (and a client cannot forge)
-- version, timestamps, the buffer-widened `blocked` range or a seat beyond
-- capacity. Identity columns never change; a cancelled booking is final; a
-- cancellation cannot move the booking (staff may cancel, never reschedule).
CREATE FUNCTION booking.bookings_before_write() RETURNS trigger
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
    NEW.blocked := tstzrange(lower(NEW.period), upper(NEW.period) + make_interval(mins => r.buffer_minutes), '[)');
  END IF;
  RETURN NEW;
END
$$;
CREATE TRIGGER bookings_before_write BEFORE INSERT OR UPDATE ON booking.bookings
  FOR EACH ROW EXECUTE FUNCTION booking.bookings_before_write();

-- AFTER INSERT/UPDATE: the history row is written by the database in the same
-- transaction as the change, so no change can exist without its event.
CREATE FUNCTION booking.bookings_after_write() RETURNS trigger
  LANGUAGE plpgsql
  SET search_path = pg_catalog, pg_temp
  AS $$
DECLARE
  act text;
BEGIN
  IF TG_OP = 'INSERT' THEN
    act := 'created';
  ELSIF NEW.status = 'cancelled' AND OLD.status = 'confirmed' THEN
    act := 'cancelled';
  ELSIF NEW.period <> OLD.period THEN
    act := 'rescheduled';
  ELSE
    act := 'updated';
  END IF;
  INSERT INTO booking.booking_events (booking_id, action, actor_id, old_period, new_period)
  VALUES (NEW.id, act, auth.uid(), CASE WHEN TG_OP = 'UPDATE' THEN OLD.period END, NEW.period);
  RETURN NULL;
END
$$;
CREATE TRIGGER bookings_after_write AFTER INSERT OR UPDATE ON booking.bookings
  FOR EACH ROW EXECUTE FUNCTION booking.bookings_after_write();

-- The instant that local wall-clock time `l` in zone `tz` names, for an edge
-- of an opening-hours window (`first` for an opening, else a closing). Most
-- local times name exactly one instant. On a fall-back day a repeated time
-- names two: an opening takes the first, a closing the last, so the window
-- runs from the first moment the clock shows its opening time to the last
-- moment it shows its closing time, as a shift worked that night does
-- (01:00-04:00 on the fall-back day in Europe/Berlin is 4 hours; 02:00-05:00
-- opens at 02:00 CEST).
-- On a spring-forward day a skipped time (02:30 in Europe/Berlin) names none:
-- either edge is the moment the clock jumps over it, so a window that closes
-- at 02:30 closes at 03:00 CEST, not half an hour later. PostgreSQL's own
-- `l AT TIME ZONE tz` takes the later instant of a repeated time and moves a
-- skipped one forward by the length of the jump, which gets both wrong.
CREATE FUNCTION booking.local_instant(l timestamp, tz text, first boolean)
  RETURNS timestamptz
  LANGUAGE plpgsql STABLE
  SET search_path = pg_catalog, pg_temp
  AS $$
DECLARE
  x timestamptz := l AT TIME ZONE tz;
  probe timestamptz;
  y timestamptz;
  lo bigint;
  hi bigint;
  mid bigint;
BEGIN
  IF (x AT TIME ZONE tz) = l THEN
    -- l exists. It may exist twice: read it with the UTC offset of a day
    -- earlier (for the first instant) or later (for the last) and keep that
    -- reading if it is another instant showing the same local time.
    probe := CASE WHEN first THEN x - interval '1 day' ELSE x + interval '1 day' END;
    y := (l - ((probe AT TIME ZONE tz) - (probe AT TIME ZONE 'UTC'))) AT TIME ZONE 'UTC';
    IF (CASE WHEN first THEN y < x ELSE y > x END) AND (y AT TIME ZONE tz) = l THEN
      RETURN y;
    END IF;
    RETURN x;
  END IF;
  -- l was skipped: find the jump, the first second whose local time is past l.
  -- x (l read with the offset before the jump) is after it; l read with the
  -- offset after the jump (x's own) is before it.
  lo := floor(extract(epoch FROM (l - ((x AT TIME ZONE tz) - (x AT TIME ZONE 'UTC'))) AT TIME ZONE 'UTC'));
  hi := ceil(extract(epoch FROM x));
  WHILE hi - lo > 1 LOOP
    mid := (lo + hi) / 2;
    IF (to_timestamp(mid) AT TIME ZONE tz) > l THEN
      hi := mid;
    ELSE
      lo := mid;
    END IF;
  END LOOP;
  RETURN to_timestamp(hi);
END
$$;

-- The resource's rules for one candidate period, evaluated at instant `at`
-- (the server's clock, injectable in tests). NULL when acceptable, otherwise
-- {"field","message"}. Create, reschedule and availability all call this one
-- function, so "offered" and "accepted" cannot drift apart.
-- Local times use the resource's IANA zone through PostgreSQL's tz database, so
-- daylight-saving days have their true length (a 01:00-04:00 window on the
-- spring-forward day in Europe/Berlin is 2 hours; see local_instant).
CREATE FUNCTION booking.slot_problem(r booking.resources, s timestamptz, e timestamptz, at timestamptz)
  RETURNS jsonb
  LANGUAGE plpgsql STABLE
  SET search_path = pg_catalog, pg_temp
  AS $$
DECLARE
  ls timestamp := s AT TIME ZONE r.timezone;
  le timestamp := e AT TIME ZONE r.timezone;
  minutes numeric := extract(epoch FROM e - s) / 60;
  day_key text;
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
  IF r.opening_hours IS NOT NULL AND jsonb_typeof(r.opening_hours) = 'object' THEN
    day_key := (ARRAY['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'])[extract(dow FROM ls)::int + 1];
    -- Nearly every day has one UTC offset throughout (the offset is the same
    -- two days before s and two days after): its local times convert plainly,
    -- which is much cheaper than local_instant.
    steady := ((s - interval '2 days') AT TIME ZONE r.timezone) - ((s - interval '2 days') AT TIME ZONE 'UTC')
            = ((s + interval '2 days') AT TIME ZONE r.timezone) - ((s + interval '2 days') AT TIME ZONE 'UTC');
    FOR iv IN SELECT value FROM jsonb_array_elements(coalesce(r.opening_hours -> day_key, '[]'::jsonb)) LOOP
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
  END IF;
  RETURN NULL;
END
$$;

-- Create: one round trip for the whole request. Seats are tried in turn with
-- ON CONFLICT DO NOTHING (it covers exclusion constraints); when seat 1 is
-- refused we look whether the caller's own overlapping booking was the reason.
-- Returns {"outcome": created|not_found|invalid|user_overlap|slot_taken, ...}.
CREATE FUNCTION booking.create_booking(p_resource uuid, p_start timestamptz, p_end timestamptz,
                                       p_note text, p_at timestamptz)
  RETURNS jsonb
  LANGUAGE plpgsql
  SET search_path = pg_catalog, pg_temp
  AS $$
DECLARE
  r booking.resources;
  b booking.bookings;
  uid uuid := auth.uid();
  problem jsonb;
  seat_no int;
  p tstzrange := tstzrange(p_start, p_end, '[)');
BEGIN
  SELECT * INTO r FROM booking.resources WHERE id = p_resource AND active;
  IF NOT FOUND THEN
    RETURN '{"outcome": "not_found"}';
  END IF;
  problem := booking.slot_problem(r, p_start, p_end, p_at);
  IF problem IS NOT NULL THEN
    RETURN jsonb_build_object('outcome', 'invalid') || problem;
  END IF;
  FOR seat_no IN 1 .. r.capacity LOOP
    INSERT INTO booking.bookings (resource_id, user_id, period, blocked, seat, note)
    VALUES (p_resource, uid, p, p, seat_no, p_note)
    ON CONFLICT DO NOTHING
    RETURNING * INTO b;
    IF FOUND THEN
      RETURN jsonb_build_object('outcome', 'created', 'booking', booking.booking_json(b));
    END IF;
    IF seat_no = 1 AND EXISTS (SELECT 1 FROM booking.bookings
                               WHERE user_id = uid AND status = 'confirmed' AND period && p) THEN
      RETURN '{"outcome": "user_overlap"}';
    END IF;
  END LOOP;
  RETURN '{"outcome": "slot_taken"}';
END
$$;

-- Reschedule: atomic. The row is locked, the version compared (If-Match), the
-- rules applied, then seats tried starting with the current one; an exclusion
-- violation rolls back only its subtransaction, so a refused move leaves the
-- booking exactly as it was. Outcomes as create, plus precondition_failed,
-- forbidden (staff may see but not move) and cancelled.
CREATE FUNCTION booking.reschedule_booking(p_id uuid, p_start timestamptz, p_end timestamptz,
                                           p_set_note boolean, p_note text, p_version int,
                                           p_at timestamptz)
  RETURNS jsonb
  LANGUAGE plpgsql
  SET search_path = pg_catalog, pg_temp
  AS $$
DECLARE
  b booking.bookings;
  r booking.resources;
  problem jsonb;
  seat_no int;
  cname text;
  p tstzrange := tstzrange(p_start, p_end, '[)');
BEGIN
  SELECT * INTO b FROM booking.bookings WHERE id = p_id;
  IF NOT FOUND THEN
    RETURN '{"outcome": "not_found"}';
  END IF;
  IF b.user_id IS DISTINCT FROM auth.uid() AND current_user <> 'service_role' THEN
    RETURN '{"outcome": "forbidden"}';
  END IF;
  SELECT * INTO b FROM booking.bookings WHERE id = p_id FOR UPDATE;
  IF p_version IS NOT NULL AND b.version <> p_version THEN
    RETURN '{"outcome": "precondition_failed"}';
  END IF;
  IF b.status = 'cancelled' THEN
    RETURN '{"outcome": "invalid", "field": "status", "message": "a cancelled booking cannot be rescheduled"}';
  END IF;
  SELECT * INTO r FROM booking.resources WHERE id = b.resource_id AND active;
  IF NOT FOUND THEN
    RETURN '{"outcome": "not_found"}';
  END IF;
  IF b.period <> p THEN
    problem := booking.slot_problem(r, p_start, p_end, p_at);
    IF problem IS NOT NULL THEN
      RETURN jsonb_build_object('outcome', 'invalid') || problem;
    END IF;
  END IF;
  FOR seat_no IN SELECT s FROM generate_series(1, r.capacity) s ORDER BY s <> b.seat, s LOOP
    BEGIN
      UPDATE booking.bookings
         SET period = p, blocked = p, seat = seat_no,
             note = CASE WHEN p_set_note THEN p_note ELSE note END
       WHERE id = p_id
      RETURNING * INTO b;
      RETURN jsonb_build_object('outcome', 'updated', 'booking', booking.booking_json(b));
    EXCEPTION WHEN exclusion_violation THEN
      GET STACKED DIAGNOSTICS cname = CONSTRAINT_NAME;
      IF cname = 'bookings_user_no_overlap' THEN
        RETURN '{"outcome": "user_overlap"}';
      END IF;
    END;
  END LOOP;
  RETURN '{"outcome": "slot_taken"}';
END
$$;

-- Cancel: idempotent (a cancelled booking is returned unchanged). Customers
-- cancel their own bookings, staff those of their resources (RLS decides).
CREATE FUNCTION booking.cancel_booking(p_id uuid, p_version int)
  RETURNS jsonb
  LANGUAGE plpgsql
  SET search_path = pg_catalog, pg_temp
  AS $$
DECLARE
  b booking.bookings;
BEGIN
  SELECT * INTO b FROM booking.bookings WHERE id = p_id FOR UPDATE;
  IF NOT FOUND THEN
    RETURN '{"outcome": "not_found"}';
  END IF;
  IF b.status = 'cancelled' THEN
    RETURN jsonb_build_object('outcome', 'unchanged', 'booking', booking.booking_json(b));
  END IF;
  IF p_version IS NOT NULL AND b.version <> p_version THEN
    RETURN '{"outcome": "precondition_failed"}';
  END IF;
  UPDATE booking.bookings SET status = 'cancelled' WHERE id = p_id RETURNING * INTO b;
  RETURN jsonb_build_object('outcome', 'updated', 'booking', booking.booking_json(b));
END
$$;

-- Availability reads other users' busy periods, which RLS hides from the
-- caller; so it is SECURITY DEFINER, with a pinned search_path, EXECUTE only
-- for the request roles, and it returns nothing but free slots and a count of
-- free seats: never who booked, never a booking id. The caller's own bookings
-- (auth.uid()) are excluded as create would refuse them (user_overlap).
CREATE FUNCTION booking.availability(p_resource uuid, p_from timestamptz, p_to timestamptz,
                                     p_minutes int, p_at timestamptz)
  RETURNS TABLE (slot_start timestamptz, slot_end timestamptz, remaining int)
  LANGUAGE plpgsql STABLE SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
  AS $$
DECLARE
  r booking.resources;
  step int;
  dur interval := make_interval(mins => p_minutes);
  buf interval;
  uid uuid := auth.uid();
  bl timestamptz[];  -- busy ranges of the window, sorted by start: lower,
  bu timestamptz[];  -- upper,
  bs int[];          -- and seat
  lmax interval;     -- the longest busy range
  n int;
  j int := 1;        -- busy[1..j) start before the candidate's blocked range ends
  k int := 1;        -- busy[1..k) ended before the candidate starts, for sure
  i int;
  seats int[];
  c record;
BEGIN
  SELECT * INTO r FROM booking.resources WHERE id = p_resource AND active;
  IF NOT FOUND THEN
    RETURN;
  END IF;
  buf := make_interval(mins => r.buffer_minutes);
  -- Every real UTC offset is a multiple of 15 minutes, so every instant whose
  -- local time is on the grid is on this UTC grid too.
  step := gcd(r.slot_minutes, 15);
  -- Busy seats, read once (a seat beyond a lowered capacity — a booking that
  -- ended but is still in its buffer — is not one a new booking could take).
  SELECT array_agg(lower(b.blocked) ORDER BY lower(b.blocked)),
         array_agg(upper(b.blocked) ORDER BY lower(b.blocked)),
         array_agg(b.seat ORDER BY lower(b.blocked)),
         max(upper(b.blocked) - lower(b.blocked))
    INTO bl, bu, bs, lmax
    FROM booking.bookings b
   WHERE b.resource_id = p_resource AND b.status = 'confirmed' AND b.seat <= r.capacity
     AND b.blocked && tstzrange(p_from, p_to + dur + buf, '[)');
  n := coalesce(array_length(bl, 1), 0);
  -- Candidates in start order that pass the rules (the same slot_problem()
  -- create applies) and do not overlap the caller's own bookings; then a
  -- sweep counts the distinct busy seats overlapping each one's blocked range
  -- [start, end + buffer) — linear in candidates + busy ranges, instead of
  -- comparing every candidate with every busy range.
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
REVOKE EXECUTE ON FUNCTION booking.availability(uuid, timestamptz, timestamptz, int, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION booking.availability(uuid, timestamptz, timestamptz, int, timestamptz) TO authenticated, service_role;
