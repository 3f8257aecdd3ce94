-- tests/citus/check.sql: the distributed schema (migrations/citus/0100_citus.sql) checked through
-- the coordinator, the way the server talks to it: the role with set_config('role', …, true), the
-- claims with separate SET LOCAL statements (propagated to the workers). Users act on each
-- other's rows; resources and users are chosen so that the rows land on known workers.
-- Run by the superuser on a fresh coordinator after 0001-0009, tests/citus/before.sql and 0100:
--   psql "$URL" -X -q -v ON_ERROR_STOP=1 -f tests/citus/check.sql
-- Leaves the schema citus_check (one function) behind. Every check prints "ok   …" or stops the script with "CHECK FAILED: …".
\set ON_ERROR_STOP 1
\pset footer off
\pset tuples_only on

SET client_min_messages = error;  -- (pg_temp functions stay local: Citus warns)
-- the check function lives in a real schema, created on every node: Citus sends a router query
-- (a check over one shard) to the worker whole, function call included
CREATE SCHEMA IF NOT EXISTS citus_check;
CREATE OR REPLACE FUNCTION citus_check.ok(cond boolean, label text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  IF cond IS NOT TRUE THEN
    RAISE EXCEPTION 'CHECK FAILED: %', label;
  END IF;
  RETURN 'ok   ' || label;
END $$;
-- a uuid whose shard of table t is placed on the worker listening on `port`
CREATE FUNCTION pg_temp.uuid_on(t regclass, port int) RETURNS uuid LANGUAGE plpgsql AS $$
DECLARE
  u uuid;
BEGIN
  LOOP
    u := gen_random_uuid();
    IF (SELECT nodeport FROM pg_dist_shard_placement
         WHERE shardid = get_shard_id_for_distribution_column(t, u)) = port THEN
      RETURN u;
    END IF;
  END LOOP;
END $$;
CREATE FUNCTION pg_temp.port_of(t regclass, u uuid) RETURNS int LANGUAGE sql AS $$
  SELECT nodeport FROM pg_dist_shard_placement WHERE shardid = get_shard_id_for_distribution_column(t, u)
$$;

RESET client_min_messages;
SELECT min(nodeport) AS w1, max(nodeport) AS w2 FROM pg_dist_node WHERE groupid <> 0 \gset
SELECT (date_trunc('day', now()) + interval '2 days')::timestamptz AS d \gset

-- users: A's and C's user_busy shards on worker 1, B's and S's on worker 2
SELECT pg_temp.uuid_on('booking.user_busy', :w1) AS ua, pg_temp.uuid_on('booking.user_busy', :w2) AS ub,
       pg_temp.uuid_on('booking.user_busy', :w1) AS uc, pg_temp.uuid_on('booking.user_busy', :w2) AS us \gset
-- resources: r1, r3 on worker 1; r2, r4, r5 on worker 2 (bookings' shards)
SELECT pg_temp.uuid_on('booking.bookings', :w1) AS r1, pg_temp.uuid_on('booking.bookings', :w2) AS r2,
       pg_temp.uuid_on('booking.bookings', :w1) AS r3, pg_temp.uuid_on('booking.bookings', :w2) AS r4,
       pg_temp.uuid_on('booking.bookings', :w2) AS r5 \gset
INSERT INTO booking.users (id, phone) VALUES (:'ua', '+14155550001'), (:'ub', '+14155550002'),
  (:'uc', '+14155550003'), (:'us', '+14155550004');
INSERT INTO booking.resources (id, name, timezone, min_duration_minutes, owner_id, requires_approval) VALUES
  (:'r1', 'R1', 'UTC', 15, NULL, false), (:'r2', 'R2', 'UTC', 15, NULL, false), (:'r3', 'R3', 'UTC', 15, NULL, false),
  (:'r4', 'R4 (approval, staff S)', 'UTC', 15, :'us', true), (:'r5', 'R5', 'UTC', 15, NULL, false);
SELECT count(*) AS ntrig FROM pg_trigger WHERE tgrelid = 'booking.bookings'::regclass AND NOT tgisinternal AND tgenabled = 'O' \gset
SELECT citus_check.ok(bool_and(result = :'ntrig'), 'set-up: the ' || :ntrig || ' bookings triggers are enabled on all ' || count(*) || ' shards')
  FROM run_command_on_shards('booking.bookings',
    $$SELECT count(*) FROM pg_trigger WHERE tgrelid = '%s'::regclass AND NOT tgisinternal AND tgenabled = 'O'$$);
SELECT citus_check.ok(pg_temp.port_of('booking.user_busy', :'ua') <> pg_temp.port_of('booking.bookings', :'r2'),
                  'set-up: A''s user_busy shard and R2''s bookings shard are on different workers');

SELECT json_build_object('sub', :'ua', 'role', 'authenticated')::text AS ca,
       json_build_object('sub', :'ub', 'role', 'authenticated')::text AS cb,
       json_build_object('sub', :'uc', 'role', 'authenticated')::text AS cc,
       json_build_object('sub', :'us', 'role', 'authenticated')::text AS cs,
       json_build_object('role', 'service_role')::text AS csvc \gset

-- Each block below acts as one user, as the server does in distributed mode: the role with
-- set_config('role', …, true), then every claim in its own SET LOCAL statement.

\echo '== 1. A books R1 10:00-11:00'
BEGIN;
SELECT set_config('role', 'authenticated', true) \gset cfg_
SET LOCAL "request.jwt.claims" = :'ca';
SET LOCAL "request.jwt.claim.sub" = :'ua';
SET LOCAL "request.jwt.claim.role" = 'authenticated';
SELECT outcome AS o1, id AS b1, status AS s1 FROM booking.create_booking(:'r1', :'d'::timestamptz + interval '10 hours', :'d'::timestamptz + interval '11 hours', 'first') \gset
COMMIT;
SELECT citus_check.ok(:'o1' = 'created' AND :'s1' = 'confirmed', 'A creates a booking on R1: created');
SELECT citus_check.ok((SELECT count(*) FROM booking.user_busy WHERE user_id = :'ua' AND booking_id = :'b1' AND status = 'confirmed') = 1,
                  'its user_busy row exists (confirmed)');
SELECT citus_check.ok((SELECT actor_id FROM booking.booking_events WHERE resource_id = :'r1' AND booking_id = :'b1' AND action = 'created') = :'ua',
                  'its history row (written by the trigger on the worker) names A as actor: the SET LOCAL claims reached the worker');

\echo '== 2. B wants the same slot'
BEGIN;
SELECT set_config('role', 'authenticated', true) \gset cfg_
SET LOCAL "request.jwt.claims" = :'cb';
SET LOCAL "request.jwt.claim.sub" = :'ub';
SET LOCAL "request.jwt.claim.role" = 'authenticated';
SELECT outcome AS o2 FROM booking.create_booking(:'r1', :'d'::timestamptz + interval '10 hours', :'d'::timestamptz + interval '11 hours') \gset
COMMIT;
SELECT citus_check.ok(:'o2' = 'slot_taken', 'B, same slot on R1: slot_taken');
SELECT citus_check.ok((SELECT count(*) FROM booking.user_busy WHERE user_id = :'ub') = 0, 'B has no user_busy row left behind');

\echo '== 3. A overlaps itself on R2 (another worker)'
BEGIN;
SELECT set_config('role', 'authenticated', true) \gset cfg_
SET LOCAL "request.jwt.claims" = :'ca';
SET LOCAL "request.jwt.claim.sub" = :'ua';
SET LOCAL "request.jwt.claim.role" = 'authenticated';
SELECT outcome AS o3 FROM booking.create_booking(:'r2', :'d'::timestamptz + interval '10 hours 30 minutes', :'d'::timestamptz + interval '11 hours 30 minutes') \gset
SELECT outcome AS o4, id AS b2 FROM booking.create_booking(:'r2', :'d'::timestamptz + interval '13 hours', :'d'::timestamptz + interval '14 hours') \gset
COMMIT;
SELECT citus_check.ok(:'o3' = 'user_overlap', 'A, overlapping period on R2 (worker ' || pg_temp.port_of('booking.bookings', :'r2') || '): user_overlap');
SELECT citus_check.ok((SELECT count(*) FROM booking.bookings WHERE resource_id = :'r2' AND lower(period) = :'d'::timestamptz + interval '10 hours 30 minutes') = 0,
                  'no booking row on R2 for the refused request');
SELECT citus_check.ok(:'o4' = 'created', 'A, R2 13:00-14:00: created (booking on one worker, user_busy on the other: 2PC)');

\echo '== 4. a refused user_busy takes the booking change with it'
BEGIN;
SELECT set_config('role', 'authenticated', true) \gset cfg_
SET LOCAL "request.jwt.claims" = :'ca';
SET LOCAL "request.jwt.claim.sub" = :'ua';
SET LOCAL "request.jwt.claim.role" = 'authenticated';
SELECT outcome AS o5 FROM booking.reschedule_booking(:'b2', :'d'::timestamptz + interval '10 hours 30 minutes', :'d'::timestamptz + interval '11 hours 30 minutes') \gset
COMMIT;
SELECT citus_check.ok(:'o5' = 'user_overlap', 'A moves the R2 booking onto its own R1 time: user_overlap');
SELECT citus_check.ok((SELECT lower(period) FROM booking.bookings WHERE resource_id = :'r2' AND id = :'b2') = :'d'::timestamptz + interval '13 hours'
                  AND (SELECT lower(period) FROM booking.user_busy WHERE user_id = :'ua' AND booking_id = :'b2') = :'d'::timestamptz + interval '13 hours',
                  'the booking and its user_busy row are unchanged');
-- the same at the lowest level: a booking row on worker 2 and a refused user_busy row on worker 1
-- in one transaction: the refusal (23P01 from the worker) aborts both
\echo '(the ERROR below is expected: the user_busy row is refused)'
\set ON_ERROR_STOP 0
BEGIN;
INSERT INTO booking.bookings (id, resource_id, user_id, period, blocked, seat)
VALUES ('00000000-0000-4000-8000-00000000dead', :'r2', :'ua', tstzrange(:'d'::timestamptz + interval '15 hours', :'d'::timestamptz + interval '16 hours'),
        tstzrange(:'d'::timestamptz + interval '15 hours', :'d'::timestamptz + interval '16 hours'), 1);
INSERT INTO booking.user_busy (user_id, booking_id, resource_id, period, status)
VALUES (:'ua', '00000000-0000-4000-8000-00000000dead', :'r2', tstzrange(:'d'::timestamptz + interval '10 hours', :'d'::timestamptz + interval '16 hours'), 'confirmed');
COMMIT;
\set ON_ERROR_STOP 1
SELECT citus_check.ok(:'LAST_ERROR_SQLSTATE' = '23P01', 'raw: the user_busy insert is refused by the worker (23P01)');
SELECT citus_check.ok((SELECT count(*) FROM booking.bookings WHERE id = '00000000-0000-4000-8000-00000000dead') = 0,
                  'raw: the booking row written on the other worker is gone too');
-- the worker's error has no constraint name; booking.citus_reraise gives it back
DO $$
DECLARE
  c1 text;
  c2 text;
  ua uuid;
  p tstzrange;
  st text; msg text; det text; hin text;
BEGIN
  SELECT user_id, period INTO ua, p FROM booking.user_busy WHERE status = 'confirmed' LIMIT 1;
  BEGIN
    INSERT INTO booking.user_busy (user_id, booking_id, resource_id, period, status)
    VALUES (ua, gen_random_uuid(), gen_random_uuid(), p, 'confirmed');
  EXCEPTION WHEN exclusion_violation THEN
    GET STACKED DIAGNOSTICS c1 = CONSTRAINT_NAME, st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT,
                            det = PG_EXCEPTION_DETAIL, hin = PG_EXCEPTION_HINT;
  END;
  BEGIN
    PERFORM booking.citus_reraise(st, msg, det, hin, c1);
  EXCEPTION WHEN exclusion_violation THEN
    GET STACKED DIAGNOSTICS c2 = CONSTRAINT_NAME;
  END;
  IF coalesce(c1, '') <> '' OR c2 <> 'bookings_user_no_overlap' THEN
    RAISE EXCEPTION 'CHECK FAILED: constraint name from the worker %, after citus_reraise %', c1, c2;
  END IF;
  RAISE NOTICE 'ok   a worker''s 23P01 arrives without constraint name (message: %); citus_reraise names it %', msg, c2;
END $$;

\echo '== 5. Row Level Security across the workers'
BEGIN;
SELECT set_config('role', 'authenticated', true) \gset cfg_
SET LOCAL "request.jwt.claims" = :'cb';
SET LOCAL "request.jwt.claim.sub" = :'ub';
SET LOCAL "request.jwt.claim.role" = 'authenticated';
SELECT count(*) FILTER (WHERE user_id = :'ua') AS b_sees_a, count(*) AS b_sees_all FROM booking.bookings \gset
SELECT count(*) AS b_sees_a_hist FROM booking.booking_events WHERE booking_id IN (:'b1', :'b2') \gset
SELECT count(*) AS b_sees_users FROM booking.users \gset
COMMIT;
BEGIN;
SELECT set_config('role', 'authenticated', true) \gset cfg_
SET LOCAL "request.jwt.claims" = :'ca';
SET LOCAL "request.jwt.claim.sub" = :'ua';
SET LOCAL "request.jwt.claim.role" = 'authenticated';
SELECT count(*) FILTER (WHERE user_id = :'ua') AS a_sees_a, count(*) AS a_sees_all FROM booking.bookings \gset
SELECT count(*) AS a_sees_a_hist FROM booking.booking_events WHERE booking_id IN (:'b1', :'b2') \gset
SELECT count(*) AS a_sees_one FROM booking.bookings WHERE resource_id = :'r2' AND id = :'b2' \gset
COMMIT;
SELECT citus_check.ok(:b_sees_a = 0 AND :b_sees_all = 0, 'B sees 0 of A''s bookings (multi-shard read under RLS)');
SELECT citus_check.ok(:b_sees_a_hist = 0, 'B sees none of their history');
SELECT citus_check.ok(:b_sees_users = 1, 'B sees only its own user row (reference table)');
SELECT citus_check.ok(:a_sees_a = 2 AND :a_sees_all = 2, 'A sees its own 2 bookings (non-empty: the claims reached every worker)');
SELECT citus_check.ok(:a_sees_a_hist >= 2, 'A sees their history (' || :a_sees_a_hist || ' rows, policy function on the worker)');
SELECT citus_check.ok(:a_sees_one = 1, 'A reads one booking by (resource, id): router query under RLS');

\echo '== 6. cancel frees the slot and the user_busy row'
BEGIN;
SELECT set_config('role', 'authenticated', true) \gset cfg_
SET LOCAL "request.jwt.claims" = :'ca';
SET LOCAL "request.jwt.claim.sub" = :'ua';
SET LOCAL "request.jwt.claim.role" = 'authenticated';
SELECT outcome AS o6, status AS s6 FROM booking.cancel_booking(:'b1') \gset
COMMIT;
SELECT citus_check.ok(:'o6' = 'updated' AND :'s6' = 'cancelled', 'A cancels the R1 booking: updated, cancelled');
SELECT citus_check.ok((SELECT status FROM booking.user_busy WHERE user_id = :'ua' AND booking_id = :'b1') = 'cancelled',
                  'its user_busy row is cancelled (out of the EXCLUDE)');
BEGIN;
SELECT set_config('role', 'authenticated', true) \gset cfg_
SET LOCAL "request.jwt.claims" = :'cb';
SET LOCAL "request.jwt.claim.sub" = :'ub';
SET LOCAL "request.jwt.claim.role" = 'authenticated';
SELECT outcome AS o7, id AS b3 FROM booking.create_booking(:'r1', :'d'::timestamptz + interval '10 hours', :'d'::timestamptz + interval '11 hours') \gset
COMMIT;
BEGIN;
SELECT set_config('role', 'authenticated', true) \gset cfg_
SET LOCAL "request.jwt.claims" = :'ca';
SET LOCAL "request.jwt.claim.sub" = :'ua';
SET LOCAL "request.jwt.claim.role" = 'authenticated';
SELECT outcome AS o8, id AS b4 FROM booking.create_booking(:'r2', :'d'::timestamptz + interval '10 hours', :'d'::timestamptz + interval '11 hours') \gset
SELECT outcome AS o8b, starts_at AS o8s FROM booking.reschedule_booking(:'b4', :'d'::timestamptz + interval '11 hours', :'d'::timestamptz + interval '12 hours', true, 'moved') \gset
COMMIT;
SELECT citus_check.ok(:'o7' = 'created', 'B now gets the freed R1 slot: created');
SELECT citus_check.ok(:'o8' = 'created', 'A books the same period on R2: created (its user_busy period is free again)');
SELECT citus_check.ok(:'o8b' = 'updated' AND (SELECT lower(period) FROM booking.user_busy WHERE user_id = :'ua' AND booking_id = :'b4') = :'d'::timestamptz + interval '11 hours',
                  'A reschedules it to 11:00: updated, user_busy moved with it');

\echo '== 7. hold, then confirm'
BEGIN;
SELECT set_config('role', 'authenticated', true) \gset cfg_
SET LOCAL "request.jwt.claims" = :'ca';
SET LOCAL "request.jwt.claim.sub" = :'ua';
SET LOCAL "request.jwt.claim.role" = 'authenticated';
SELECT outcome AS o9, id AS h1, status AS s9 FROM booking.create_hold(:'r3', :'d'::timestamptz + interval '15 hours', :'d'::timestamptz + interval '16 hours', 300) \gset
COMMIT;
SELECT citus_check.ok(:'o9' = 'created' AND :'s9' = 'held'
                  AND (SELECT status FROM booking.user_busy WHERE user_id = :'ua' AND booking_id = :'h1') = 'held',
                  'A holds R3 15:00: held, user_busy held');
BEGIN;
SELECT set_config('role', 'authenticated', true) \gset cfg_
SET LOCAL "request.jwt.claims" = :'ca';
SET LOCAL "request.jwt.claim.sub" = :'ua';
SET LOCAL "request.jwt.claim.role" = 'authenticated';
SELECT outcome AS o10, id AS c10, status AS s10 FROM booking.confirm_hold(:'h1', 'paid') \gset
COMMIT;
SELECT citus_check.ok(:'o10' = 'created' AND :'c10' = :'h1' AND :'s10' = 'confirmed'
                  AND (SELECT status || '/' || (expires_at IS NULL) FROM booking.user_busy WHERE user_id = :'ua' AND booking_id = :'h1') = 'confirmed/true',
                  'A confirms: the same row becomes the confirmed booking; user_busy follows');

\echo '== 8. an expired hold blocks nobody'
BEGIN;
SELECT set_config('role', 'authenticated', true) \gset cfg_
SET LOCAL "request.jwt.claims" = :'cb';
SET LOCAL "request.jwt.claim.sub" = :'ub';
SET LOCAL "request.jwt.claim.role" = 'authenticated';
SELECT outcome AS o11, id AS h2 FROM booking.create_hold(:'r3', :'d'::timestamptz + interval '17 hours', :'d'::timestamptz + interval '18 hours', 30) \gset
COMMIT;
BEGIN;
SELECT set_config('role', 'authenticated', true) \gset cfg_
SET LOCAL "request.jwt.claims" = :'ca';
SET LOCAL "request.jwt.claim.sub" = :'ua';
SET LOCAL "request.jwt.claim.role" = 'authenticated';
SELECT outcome AS o12, id AS h3 FROM booking.create_hold(:'r5', :'d'::timestamptz + interval '19 hours', :'d'::timestamptz + interval '20 hours', 30) \gset
SELECT outcome AS o12b, id AS h4 FROM booking.create_hold(:'r5', :'d'::timestamptz + interval '21 hours', :'d'::timestamptz + interval '22 hours', 30) \gset
COMMIT;
SELECT citus_check.ok(:'o11' = 'created' AND :'o12' = 'created' AND :'o12b' = 'created', 'B holds R3 17:00, A holds R5 19:00 and 21:00 (30 s each)');
-- the database clock moves 5 minutes on (the settings row is a reference table: every node)
UPDATE booking.settings SET clock_offset = interval '5 minutes';
BEGIN;
SELECT set_config('role', 'authenticated', true) \gset cfg_
SET LOCAL "request.jwt.claims" = :'cb';
SET LOCAL "request.jwt.claim.sub" = :'ub';
SET LOCAL "request.jwt.claim.role" = 'authenticated';
SELECT outcome AS o13 FROM booking.create_booking(:'r1', :'d'::timestamptz + interval '17 hours', :'d'::timestamptz + interval '18 hours') \gset
COMMIT;
BEGIN;
SELECT set_config('role', 'authenticated', true) \gset cfg_
SET LOCAL "request.jwt.claims" = :'cc';
SET LOCAL "request.jwt.claim.sub" = :'uc';
SET LOCAL "request.jwt.claim.role" = 'authenticated';
SELECT outcome AS o14 FROM booking.create_booking(:'r5', :'d'::timestamptz + interval '19 hours', :'d'::timestamptz + interval '20 hours') \gset
COMMIT;
BEGIN;
SELECT set_config('role', 'authenticated', true) \gset cfg_
SET LOCAL "request.jwt.claims" = :'ca';
SET LOCAL "request.jwt.claim.sub" = :'ua';
SET LOCAL "request.jwt.claim.role" = 'authenticated';
SELECT outcome AS o15 FROM booking.confirm_hold(:'h4') \gset
COMMIT;
SELECT citus_check.ok(:'o13' = 'created', 'B books R1 over the time of its own expired hold: created (the user''s expired row retired)');
SELECT citus_check.ok(:'o14' = 'created', 'C books R5 over A''s expired hold: created (the resource''s expired row retired)');
SELECT citus_check.ok(:'o15' = 'hold_expired', 'A confirms an expired hold: hold_expired');
WITH b AS MATERIALIZED (SELECT id, status FROM booking.bookings WHERE id IN (:'h2', :'h3', :'h4')),
     u AS MATERIALIZED (SELECT booking_id, status FROM booking.user_busy WHERE booking_id IN (:'h2', :'h3', :'h4'))
SELECT citus_check.ok(count(*) = 3 AND bool_and(b.status = 'expired' AND u.status = 'expired'),
                  'the three expired holds are retired in bookings and user_busy')
  FROM b JOIN u ON u.booking_id = b.id;

\echo '== 9. availability'
BEGIN;
SELECT set_config('role', 'authenticated', true) \gset cfg_
SET LOCAL "request.jwt.claims" = :'ca';
SET LOCAL "request.jwt.claim.sub" = :'ua';
SET LOCAL "request.jwt.claim.role" = 'authenticated';
SELECT count(*) AS av_n,
       count(*) FILTER (WHERE slot_start = :'d'::timestamptz + interval '8 hours' AND remaining = 1) AS av_8,
       count(*) FILTER (WHERE slot_start = :'d'::timestamptz + interval '10 hours') AS av_10,
       count(*) FILTER (WHERE slot_start = :'d'::timestamptz + interval '13 hours') AS av_13,
       count(*) FILTER (WHERE slot_start = :'d'::timestamptz + interval '17 hours') AS av_17
  FROM booking.availability(:'r1', :'d'::timestamptz + interval '8 hours', :'d'::timestamptz + interval '20 hours', 60) \gset
COMMIT;
SELECT citus_check.ok(:av_n > 0 AND :av_8 = 1, 'availability answers A for R1 (' || :av_n || ' free starts, 08:00 free)');
SELECT citus_check.ok(:av_10 = 0 AND :av_17 = 0, 'B''s bookings at 10:00 and 17:00 are not offered');
SELECT citus_check.ok(:av_13 = 0, 'A''s own R2 booking at 13:00 is not offered to A (its user_busy rows)');

\echo '== 10. request roles cannot write the tables'
BEGIN;
SELECT set_config('role', 'authenticated', true) \gset cfg_
SET LOCAL "request.jwt.claims" = :'ca';
SET LOCAL "request.jwt.claim.sub" = :'ua';
SET LOCAL "request.jwt.claim.role" = 'authenticated';
DO $$
DECLARE
  stmt text;
  ua uuid := auth.uid();
  refused int := 0;
BEGIN
  FOREACH stmt IN ARRAY ARRAY[
    format($q$INSERT INTO booking.bookings (resource_id, user_id, period, blocked, seat)
              SELECT resource_id, %L, tstzrange(now() + interval '30 days', now() + interval '31 days'),
                     tstzrange(now() + interval '30 days', now() + interval '31 days'), 1 FROM booking.bookings LIMIT 1$q$, ua),
    format('UPDATE booking.bookings SET note = %L WHERE user_id = %L', 'hacked', ua),
    format('UPDATE booking.bookings SET period = %L, blocked = %L WHERE user_id = %L',
           '[2030-01-01 10:00+00,2030-01-01 11:00+00)', '[2030-01-01 10:00+00,2030-01-01 11:00+00)', ua),
    format($q$INSERT INTO booking.user_busy (user_id, booking_id, resource_id, period, status)
              VALUES (%L, gen_random_uuid(), gen_random_uuid(), tstzrange(now(), now() + interval '1 hour'), 'confirmed')$q$, ua),
    format('UPDATE booking.user_busy SET status = %L WHERE user_id = %L', 'cancelled', ua),
    format('DELETE FROM booking.user_busy WHERE user_id = %L', ua),
    format('SELECT count(*) FROM booking.user_busy WHERE user_id = %L', ua),
    format('DELETE FROM booking.bookings WHERE user_id = %L', ua),
    format($q$INSERT INTO booking.booking_events (resource_id, booking_id, action, actor_id, new_period)
              SELECT resource_id, id, 'cancelled', %L, period FROM booking.bookings LIMIT 1$q$, ua)
  ] LOOP
    BEGIN
      EXECUTE stmt;
      RAISE EXCEPTION 'CHECK FAILED: not refused: %', stmt;
    EXCEPTION WHEN insufficient_privilege THEN
      refused := refused + 1;
    END;
  END LOOP;
  RAISE NOTICE 'ok   as authenticated, % direct writes (and a read of user_busy) on bookings/user_busy/history refused with 42501', refused;
END $$;
COMMIT;

\echo '== 11. staff (owner of R4) and approval'
BEGIN;
SELECT set_config('role', 'authenticated', true) \gset cfg_
SET LOCAL "request.jwt.claims" = :'ca';
SET LOCAL "request.jwt.claim.sub" = :'ua';
SET LOCAL "request.jwt.claim.role" = 'authenticated';
SELECT outcome AS o16, id AS p1, status AS s16 FROM booking.create_booking(:'r4', :'d'::timestamptz + interval '6 hours', :'d'::timestamptz + interval '7 hours') \gset
COMMIT;
BEGIN;
SELECT set_config('role', 'authenticated', true) \gset cfg_
SET LOCAL "request.jwt.claims" = :'cs';
SET LOCAL "request.jwt.claim.sub" = :'us';
SET LOCAL "request.jwt.claim.role" = 'authenticated';
SELECT count(*) AS s_sees FROM booking.bookings WHERE resource_id = :'r4' \gset
SELECT count(*) AS s_sees_other FROM booking.bookings WHERE resource_id <> :'r4' \gset
SELECT count(*) AS s_sees_hist FROM booking.booking_events WHERE booking_id = :'p1' \gset
COMMIT;
BEGIN;
SELECT set_config('role', 'authenticated', true) \gset cfg_
SET LOCAL "request.jwt.claims" = :'cs';
SET LOCAL "request.jwt.claim.sub" = :'us';
SET LOCAL "request.jwt.claim.role" = 'authenticated';
SELECT outcome AS o17, status AS s17 FROM booking.decide_booking(:'p1', true) \gset
COMMIT;
SELECT citus_check.ok(:'o16' = 'created' AND :'s16' = 'pending', 'A books R4 (approval): pending');
SELECT citus_check.ok(:s_sees = 1 AND :s_sees_other = 0 AND :s_sees_hist = 1,
                  'S, owner of R4, sees that booking and its history and nothing else (policy function per row)');
SELECT citus_check.ok(:'o17' = 'updated' AND :'s17' = 'confirmed'
                  AND (SELECT status FROM booking.user_busy WHERE user_id = :'ua' AND booking_id = :'p1') = 'confirmed',
                  'S approves (located by a lookup over every shard): confirmed, user_busy follows');

\echo '== 12. series'
BEGIN;
SELECT set_config('role', 'authenticated', true) \gset cfg_
SET LOCAL "request.jwt.claims" = :'cc';
SET LOCAL "request.jwt.claim.sub" = :'uc';
SET LOCAL "request.jwt.claim.role" = 'authenticated';
SELECT count(*) FILTER (WHERE outcome = 'created') AS o18, max(series_id::text) AS sid
  FROM booking.create_series(:'r2', :'d'::timestamptz + interval '5 hours', :'d'::timestamptz + interval '6 hours',
                             'DAILY', 1, NULL, 3, NULL, 'FREQ=DAILY;COUNT=3') \gset
SELECT count(*) FILTER (WHERE outcome = 'slot_taken') AS o18b, count(*) AS o18n
  FROM booking.create_series(:'r2', :'d'::timestamptz + interval '4 hours', :'d'::timestamptz + interval '6 hours',
                             'DAILY', 1, NULL, 2, NULL, 'FREQ=DAILY;COUNT=2') \gset
COMMIT;
SELECT citus_check.ok(:o18 = 3 AND (SELECT count(*) FROM booking.user_busy WHERE user_id = :'uc' AND status = 'confirmed'
                                AND booking_id IN (SELECT id FROM booking.bookings WHERE resource_id = :'r2' AND series_id = :'sid')) = 3,
                  'C creates a daily series of 3 on R2: 3 created, 3 user_busy rows');
SELECT citus_check.ok(:o18b = 0 AND :o18n = 2, 'an overlapping series by C is refused as a whole (' || :o18n || ' refusals, user_overlap first)');
BEGIN;
SELECT set_config('role', 'authenticated', true) \gset cfg_
SET LOCAL "request.jwt.claims" = :'cc';
SET LOCAL "request.jwt.claim.sub" = :'uc';
SET LOCAL "request.jwt.claim.role" = 'authenticated';
SELECT booking.cancel_series(:'sid', NULL) AS o19 \gset
COMMIT;
SELECT citus_check.ok(:o19 = 3 AND (SELECT count(*) FROM booking.user_busy WHERE user_id = :'uc' AND status = 'cancelled') = 3,
                  'C cancels the series: 3, and their user_busy rows are cancelled');

\echo '== 13. closures, the sweeper (service role)'
BEGIN;
SELECT set_config('role', 'authenticated', true) \gset cfg_
SET LOCAL "request.jwt.claims" = :'cb';
SET LOCAL "request.jwt.claim.sub" = :'ub';
SET LOCAL "request.jwt.claim.role" = 'authenticated';
SELECT outcome AS o20, id AS h5 FROM booking.create_hold(:'r2', :'d'::timestamptz + interval '20 hours', :'d'::timestamptz + interval '21 hours', 30) \gset
COMMIT;
UPDATE booking.settings SET clock_offset = interval '10 minutes';
BEGIN;
SELECT set_config('role', 'service_role', true) \gset cfg_
SET LOCAL "request.jwt.claims" = :'csvc';
SET LOCAL "request.jwt.claim.role" = 'service_role';
SELECT count(*) FILTER (WHERE outcome = 'conflict') AS o21 FROM booking.add_closure(:'r1', :'d'::timestamptz + interval '17 hours', :'d'::timestamptz + interval '18 hours', 'repairs', false) \gset
SELECT count(*) FILTER (WHERE outcome = 'created') AS o22, max(id::text) AS cl FROM booking.add_closure(:'r1', :'d'::timestamptz + interval '17 hours', :'d'::timestamptz + interval '18 hours', 'repairs', true) \gset
SELECT booking.remove_closure(:'r1', :'cl') AS o23 \gset
SELECT booking.expire_due(100) AS o24 \gset
COMMIT;
SELECT citus_check.ok(:'o20' = 'created', 'B holds R2 20:00 for 30 s');
SELECT citus_check.ok(:o21 = 1 AND :o22 = 1, 'add_closure on R1 17:00: one conflict (B''s booking), then created with cancel');
SELECT citus_check.ok((SELECT count(*) FROM booking.user_busy WHERE user_id = :'ub' AND status = 'cancelled'
                    AND booking_id IN (SELECT id FROM booking.bookings WHERE resource_id = :'r1' AND status = 'cancelled')) = 1,
                  'the cancelled booking''s user_busy row is cancelled');
SELECT citus_check.ok(:'o23' = 't', 'remove_closure: true');
SELECT citus_check.ok(:o24 >= 1 AND (SELECT status FROM booking.user_busy WHERE booking_id = :'h5') = 'expired'
                  AND (SELECT status FROM booking.bookings WHERE resource_id = :'r2' AND id = :'h5') = 'expired',
                  'expire_due retires ' || :o24 || ' row(s), the user_busy row follows');

\echo '== 14. webhooks: the outbox trigger on the worker, the lease claim'
INSERT INTO booking.webhook_endpoints (url, secret) VALUES ('http://127.0.0.1:9/hook', 'whsec_' || repeat('A', 43) || '=');
UPDATE booking.resources SET reminders_minutes = '{60}' WHERE id = :'r5';
BEGIN;
SELECT set_config('role', 'authenticated', true) \gset cfg_
SET LOCAL "request.jwt.claims" = :'cb';
SET LOCAL "request.jwt.claim.sub" = :'ub';
SET LOCAL "request.jwt.claim.role" = 'authenticated';
SELECT outcome AS o25, id AS b5 FROM booking.create_booking(:'r5', :'d'::timestamptz + interval '8 hours', :'d'::timestamptz + interval '9 hours') \gset
COMMIT;
SELECT citus_check.ok(:'o25' = 'created' AND (SELECT count(*) FROM booking.webhook_messages WHERE resource_id = :'r5' AND subject_id = :'b5') = 2
                  AND (SELECT data ->> 'user_id' FROM booking.webhook_messages WHERE resource_id = :'r5' AND subject_id = :'b5' AND event = 'booking.created') = :'ub',
                  'a booking writes booking.created and its reminder into the co-located outbox shard');
BEGIN;
SELECT set_config('role', 'service_role', true) \gset cfg_
SET LOCAL "request.jwt.claims" = :'csvc';
SET LOCAL "request.jwt.claim.role" = 'service_role';
SELECT count(*) AS claim1, array_agg(id) AS ids, array_agg(lease) AS leases FROM booking.webhook_claim(10, 60) \gset
SELECT count(*) AS claim2 FROM booking.webhook_claim(10, 60) \gset
COMMIT;
BEGIN;
SELECT set_config('role', 'service_role', true) \gset cfg_
SET LOCAL "request.jwt.claims" = :'csvc';
SET LOCAL "request.jwt.claim.role" = 'service_role';
SELECT booking.webhook_settle_batch(:'ids'::uuid[], :'leases'::uuid[], array_fill('delivered'::text, ARRAY[:claim1]),
                                    array_fill(200, ARRAY[:claim1]), array_fill(NULL::text, ARRAY[:claim1]),
                                    array_fill(5, ARRAY[:claim1]), array_fill(NULL::float8, ARRAY[:claim1]), 5) \gset settle_
SELECT pending AS bl_pending FROM booking.webhook_backlog() \gset
COMMIT;
SELECT citus_check.ok(:claim1 >= 1 AND :claim2 = 0, 'webhook_claim leases ' || :claim1 || ' due message(s); a second claim gets none (lease held)');
SELECT citus_check.ok((SELECT count(*) FROM booking.webhook_messages WHERE id = ANY (:'ids'::uuid[]) AND state = 'delivered') = :claim1
                  AND (SELECT count(*) FROM booking.webhook_attempts WHERE message_id = ANY (:'ids'::uuid[])) = :claim1,
                  'settled: delivered, one attempt each (with its resource)');
SELECT citus_check.ok(:bl_pending >= 1, 'webhook_backlog: ' || :bl_pending || ' pending (the reminder, due later)');

\echo '== 15. the rows written before 0100 (tests/citus/before.sql)'
BEGIN;
SELECT set_config('role', 'authenticated', true) \gset cfg_
SET LOCAL "request.jwt.claims" = '{"sub": "00000000-0000-4000-8000-0000000000a0", "role": "authenticated"}';
SET LOCAL "request.jwt.claim.sub" = '00000000-0000-4000-8000-0000000000a0';
SET LOCAL "request.jwt.claim.role" = 'authenticated';
SELECT count(*) AS p_sees FROM booking.bookings \gset
SELECT count(*) AS p_hist FROM booking.booking_events \gset
COMMIT;
SELECT citus_check.ok(:p_sees = 3 AND :p_hist >= 4, 'the pre-0100 user sees its 3 rows and their history (' || :p_hist || ' events)');

\echo '== 16. a user first seen in a token is provisioned; me, display name'
SELECT gen_random_uuid() AS un \gset
SELECT json_build_object('sub', :'un', 'role', 'authenticated', 'phone', '14155550999', 'iss', 'elsewhere')::text AS cn \gset
BEGIN;
SELECT set_config('role', 'authenticated', true) \gset cfg_
SET LOCAL "request.jwt.claims" = :'cn';
SET LOCAL "request.jwt.claim.sub" = :'un';
SET LOCAL "request.jwt.claim.role" = 'authenticated';
SELECT outcome AS o26 FROM booking.create_booking(:'r3', :'d'::timestamptz + interval '6 hours', :'d'::timestamptz + interval '7 hours') \gset
SELECT booking.set_display_name('New Person') ->> 'display_name' AS o27 \gset
COMMIT;
SELECT citus_check.ok(:'o26' = 'created' AND :'o27' = 'New Person'
                  AND (SELECT phone || ' ' || issuer FROM booking.users WHERE id = :'un') = '+14155550999 elsewhere',
                  'a new user books: provisioned into the users reference table (phone, issuer), renamed by set_display_name');

\echo '== 17. the cap counts the caller''s live user_busy rows'
UPDATE booking.settings SET max_active_bookings = 2;
BEGIN;
SELECT set_config('role', 'authenticated', true) \gset cfg_
SET LOCAL "request.jwt.claims" = :'cn';
SET LOCAL "request.jwt.claim.sub" = :'un';
SET LOCAL "request.jwt.claim.role" = 'authenticated';
SELECT outcome AS o28 FROM booking.create_booking(:'r1', :'d'::timestamptz + interval '4 hours', :'d'::timestamptz + interval '5 hours') \gset
SELECT outcome AS o29, field AS f29 FROM booking.create_hold(:'r2', :'d'::timestamptz + interval '2 hours', :'d'::timestamptz + interval '3 hours') \gset
COMMIT;
UPDATE booking.settings SET max_active_bookings = 100;
SELECT citus_check.ok(:'o28' = 'created' AND :'o29' = 'invalid' AND :'f29' = 'active_bookings',
                  'with a cap of 2: the second booking is created, a third row (a hold) is refused on active_bookings');

\echo '== 18. staff cancel, idempotency records, calendar feed'
BEGIN;
SELECT set_config('role', 'authenticated', true) \gset cfg_
SET LOCAL "request.jwt.claims" = :'cs';
SET LOCAL "request.jwt.claim.sub" = :'us';
SET LOCAL "request.jwt.claim.role" = 'authenticated';
SELECT outcome AS o30, status AS s30 FROM booking.cancel_booking(:'p1') \gset
COMMIT;
SELECT citus_check.ok(:'o30' = 'updated' AND :'s30' = 'cancelled'
                  AND (SELECT status FROM booking.user_busy WHERE user_id = :'ua' AND booking_id = :'p1') = 'cancelled',
                  'S (staff) cancels A''s R4 booking: updated, user_busy cancelled');
BEGIN;
SELECT set_config('role', 'authenticated', true) \gset cfg_
SET LOCAL "request.jwt.claims" = :'ca';
SET LOCAL "request.jwt.claim.sub" = :'ua';
SET LOCAL "request.jwt.claim.role" = 'authenticated';
SELECT count(*) AS idem_before FROM booking.idempotency_keys WHERE user_id = :'ua' AND key = 'k1' \gset
SELECT outcome AS o31, id AS b6 FROM booking.create_booking(:'r3', :'d'::timestamptz + interval '8 hours', :'d'::timestamptz + interval '9 hours') \gset
SELECT booking.remember_response('k1', 'fp', 201, '{"id":"x"}', '{"content-type":"application/json"}') \gset rr_
SELECT booking.create_calendar_feed(NULL, sha256('feed-a')) AS o32 \gset
COMMIT;
BEGIN;
SELECT set_config('role', 'authenticated', true) \gset cfg_
SET LOCAL "request.jwt.claims" = :'ca';
SET LOCAL "request.jwt.claim.sub" = :'ua';
SET LOCAL "request.jwt.claim.role" = 'authenticated';
SELECT count(*) AS idem_a FROM booking.idempotency_keys WHERE key = 'k1' \gset
COMMIT;
BEGIN;
SELECT set_config('role', 'authenticated', true) \gset cfg_
SET LOCAL "request.jwt.claims" = :'cb';
SET LOCAL "request.jwt.claim.sub" = :'ub';
SET LOCAL "request.jwt.claim.role" = 'authenticated';
SELECT count(*) AS idem_b FROM booking.idempotency_keys \gset
COMMIT;
BEGIN;
SELECT set_config('role', 'anon', true) \gset cfg_
SELECT count(*) AS feed_n, count(*) FILTER (WHERE id = :'b6') AS feed_b6 FROM booking.calendar_feed(sha256('feed-a')) \gset
COMMIT;
SELECT citus_check.ok(:'o31' = 'created' AND :idem_before = 0 AND :idem_a = 1 AND :idem_b = 0,
                  'remember_response writes A''s key in the same transaction as the booking; A reads it, B reads none');
SELECT citus_check.ok(:'o32' = 't' AND :feed_b6 = 1, 'A''s calendar feed (read as anon, over every shard) lists ' || :feed_n || ' bookings, the new one included');

\echo '== 19. the other service functions answer'
BEGIN;
SELECT set_config('role', 'service_role', true) \gset cfg_
SET LOCAL "request.jwt.claims" = :'csvc';
SET LOCAL "request.jwt.claim.role" = 'service_role';
SELECT booking.seats_in_use_beyond(:'r1', 1) AS siu \gset
SELECT booking.webhook_resend((SELECT id FROM booking.webhook_endpoints LIMIT 1), (:'ids'::uuid[])[1]) AS resent \gset
SELECT booking.webhook_prune(100) AS pruned \gset
SELECT count(*) AS reclaim FROM booking.webhook_claim(10, 60) \gset
COMMIT;
SELECT citus_check.ok(:'siu' = 'f' AND :'resent' = 't' AND :pruned >= 0 AND :reclaim >= 1
                  AND (SELECT lease IS NOT NULL AND state = 'pending' FROM booking.webhook_messages WHERE id = (:'ids'::uuid[])[1]),
                  'seats_in_use_beyond; webhook_resend (the delivered message is pending again and claimed again, with ' || :reclaim || ' due ones); webhook_prune');
BEGIN;
SELECT set_config('role', 'authenticated', true) \gset cfg_
SET LOCAL "request.jwt.claims" = :'ca';
SET LOCAL "request.jwt.claim.sub" = :'ua';
SET LOCAL "request.jwt.claim.role" = 'authenticated';
SELECT outcome AS o33 FROM booking.reschedule_booking(:'b6', :'d'::timestamptz + interval '8 hours', :'d'::timestamptz + interval '9 hours', true, 'note only') \gset
SELECT outcome AS o34 FROM booking.reschedule_booking(:'b6', :'d'::timestamptz + interval '8 hours', :'d'::timestamptz + interval '9 hours', false, NULL, 1) \gset
SELECT outcome AS o35, status AS s35 FROM booking.release_hold(:'h4') \gset
COMMIT;
SELECT citus_check.ok(:'o33' = 'updated' AND :'o34' = 'precondition_failed' AND :'o35' = 'unchanged' AND :'s35' = 'expired',
                  'note-only reschedule: updated; stale version: precondition_failed; release of an expired hold: unchanged');
