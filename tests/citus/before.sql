-- Rows written by the single-node schema before 0100_citus runs (the conversion must carry them:
-- user_busy filled from bookings, history given its resource, local copies truncated).
-- Run as the superuser on the coordinator after 0001-0009; set_config is enough here (all local).
\set ON_ERROR_STOP 1
SET client_min_messages = error;
CREATE FUNCTION pg_temp.ok(cond boolean, label text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  IF cond IS NOT TRUE THEN
    RAISE EXCEPTION 'CHECK FAILED: %', label;
  END IF;
  RETURN 'ok   ' || label;
END $$;
RESET client_min_messages;
SELECT (date_trunc('day', now()) + interval '2 days')::timestamptz AS d \gset
\set up '00000000-0000-4000-8000-0000000000a0'
\set r0 '00000000-0000-4000-8000-0000000000f0'
INSERT INTO booking.users (id, phone) VALUES (:'up', '+14155550100');
INSERT INTO booking.resources (id, name, timezone, min_duration_minutes) VALUES (:'r0', 'R0', 'UTC', 15);
BEGIN;
SELECT set_config('role', 'authenticated', true),
       set_config('request.jwt.claims', json_build_object('sub', :'up', 'role', 'authenticated')::text, true) \gset cfg_
SELECT outcome AS p1 FROM booking.create_booking(:'r0', :'d'::timestamptz + interval '9 hours', :'d'::timestamptz + interval '10 hours') \gset
SELECT outcome AS p2 FROM booking.create_hold(:'r0', :'d'::timestamptz + interval '11 hours', :'d'::timestamptz + interval '12 hours', 600) \gset
SELECT outcome AS p3, id AS p3_id FROM booking.create_booking(:'r0', :'d'::timestamptz + interval '12 hours', :'d'::timestamptz + interval '13 hours') \gset
SELECT outcome AS p4 FROM booking.cancel_booking(:'p3_id') \gset
COMMIT;
SELECT pg_temp.ok(:'p1' = 'created' AND :'p2' = 'created' AND :'p3' = 'created' AND :'p4' = 'updated',
                  'single-node rows before 0100: booking, hold, cancelled booking');
