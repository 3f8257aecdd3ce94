-- 0100_citus: the single-node schema (0001-0009 and later) turned into its distributed form on a
-- Citus coordinator (docs/citus.md §3, §4 steps 1-10). Only for BOOKING_DISTRIBUTED=citus; the
-- single-node migrations stay the default and are never edited.
--
-- Run by a superuser of the coordinator, in ONE transaction (psql -1, or the migrate runner's
-- transaction), after the single-node migrations:
--   psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -1 -f migrations/citus/0100_citus.sql
-- It refuses to run twice (booking.citus_schema records it) and refuses a schema it does not know
-- (an unknown trigger on bookings, an unknown foreign key left after step 4).
--
-- What changes, in short:
--   * bookings, booking_events, series, closures, webhook_messages, webhook_attempts: distributed by
--     resource_id, one co-location group (primary keys (resource_id, id));
--   * user_busy (new) and idempotency_keys: distributed by user_id, a second group; user_busy holds
--     one row per booking (its user, period, status, expiry) and carries the per-user no-overlap
--     EXCLUDE that cannot live on bookings any more; every write function writes both rows in the
--     same (two-phase when on two workers) transaction;
--   * users, resources, settings, webhook_endpoints, calendar_feeds: reference tables;
--   * server_keys, otp_*, rate_limits, auth_sessions, refresh_tokens, schema_migrations: stay on
--     the coordinator (auth_sessions/refresh_tokens become citus local tables through their key to
--     users);
--   * policies without subqueries; write functions that only issue router statements (plus a
--     multi-shard lookup by id for staff and the service role), turn every refusal into their usual
--     outcome and re-raise any other constraint error with the single-node constraint name (a
--     worker's error reaches the coordinator without it);
--   * request roles LOGIN with generated passwords known to the coordinator (pg_dist_authinfo), and
--     citus.propagate_set_commands = 'local' for the database: the server sets the claims with
--     separate SET LOCAL statements so that they reach the workers.

-- ===================================================================================== step 0
SET LOCAL citus.enable_unsafe_triggers = on;
SET LOCAL citus.multi_shard_modify_mode = 'sequential';
SET LOCAL search_path = pg_catalog, pg_temp;

DO $$
DECLARE
  v int;
BEGIN
  IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
    RAISE EXCEPTION '0100_citus: run me as a superuser of the coordinator';
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN
    RAISE EXCEPTION '0100_citus: the citus extension is not installed in database %', current_database();
  END IF;
  IF NOT citus_is_coordinator() THEN
    RAISE EXCEPTION '0100_citus: this node is not the Citus coordinator';
  END IF;
  IF (SELECT count(*) FROM citus_get_active_worker_nodes()) < 1 THEN
    RAISE EXCEPTION '0100_citus: no active worker node';
  END IF;
  IF EXISTS (SELECT 1 FROM run_command_on_all_nodes('SHOW max_prepared_transactions') r
              WHERE NOT r.success OR r.result::int = 0) THEN
    RAISE EXCEPTION '0100_citus: every node needs max_prepared_transactions > 0 (two-phase commit)';
  END IF;
  IF to_regclass('booking.citus_schema') IS NOT NULL THEN
    RAISE EXCEPTION '0100_citus: already applied (booking.citus_schema exists)';
  END IF;
  SELECT count(*) INTO v FROM booking.schema_migrations WHERE version BETWEEN 1 AND 9;
  IF v <> 9 THEN
    RAISE EXCEPTION '0100_citus: the single-node migrations 0001-0009 must be applied first (found % of 9)', v;
  END IF;
  RAISE NOTICE '0100_citus: single-node schema at version %', (SELECT max(version) FROM booking.schema_migrations);
END
$$;

-- 0010 (if applied): its per-user counter is written by the bookings trigger into a table of
-- another co-location group (impossible from a shard) and recounted by a trigger on settings (a
-- reference table: it would run on every placement); its delete guards on users and resources
-- query bookings from triggers on reference tables. Here the cap counts user_busy (below) and the
-- foreign keys come back (step 7), so they go. Absent objects are skipped.
DROP TRIGGER IF EXISTS settings_clock_recount ON booking.settings;
DROP FUNCTION IF EXISTS booking.recount_active();
DROP TABLE IF EXISTS booking.active_counts;
DROP FUNCTION IF EXISTS booking.active_exact(uuid, timestamptz);
DROP TRIGGER IF EXISTS users_referenced ON booking.users;
DROP TRIGGER IF EXISTS resources_referenced ON booking.resources;
DROP FUNCTION IF EXISTS booking.referenced_by_bookings();
-- 0010's one-statement create sets the claims with set_config, which does not reach the workers:
-- the serving logins lose it and fall back to a transaction (where the server uses SET LOCAL)
DO $$
DECLARE
  login text;
BEGIN
  FOR login IN SELECT rolname FROM pg_roles WHERE rolname IN ('booking_authenticator', 'authenticator') LOOP
    EXECUTE format('REVOKE EXECUTE ON FUNCTION booking.create_booking(uuid, timestamptz, timestamptz, text) FROM %I', login);
  END LOOP;
END
$$;

-- the triggers whose worker-side behaviour this script knows; another migration's trigger on a
-- table about to be distributed or replicated (that writes another co-location group from a
-- shard, say) must be reviewed first
DO $$
DECLARE
  unknown text;
BEGIN
  SELECT string_agg(tgrelid::regclass || '.' || tgname, ', ') INTO unknown
    FROM pg_trigger
   WHERE NOT tgisinternal
     AND tgrelid IN ('booking.bookings'::regclass, 'booking.booking_events'::regclass, 'booking.users'::regclass,
                     'booking.resources'::regclass, 'booking.settings'::regclass, 'booking.series'::regclass,
                     'booking.closures'::regclass, 'booking.webhook_endpoints'::regclass,
                     'booking.webhook_messages'::regclass, 'booking.webhook_attempts'::regclass,
                     'booking.calendar_feeds'::regclass, 'booking.idempotency_keys'::regclass)
     AND (tgrelid::regclass::text, tgname::text) NOT IN (
           ('booking.bookings', 'bookings_before_write'), ('booking.bookings', 'bookings_after_write'),
           ('booking.bookings', 'bookings_outbox'), ('booking.bookings', 'bookings_never_deleted'),
           ('booking.bookings', 'bookings_never_truncated'), ('booking.users', 'users_never_truncated'),
           ('booking.resources', 'resources_never_truncated'),
           ('booking.booking_events', 'booking_events_append_only'),
           ('booking.booking_events', 'booking_events_no_truncate'));
  IF unknown IS NOT NULL THEN
    RAISE EXCEPTION '0100_citus: triggers this script does not know: %', unknown;
  END IF;
END
$$;

-- the rows each table held before (step 10 truncates the local copies of those that had some)
CREATE TEMP TABLE citus_had_rows (tbl regclass PRIMARY KEY, n bigint) ON COMMIT DROP;
INSERT INTO citus_had_rows
SELECT t::regclass, 0 FROM unnest(ARRAY['booking.users', 'booking.resources', 'booking.settings',
  'booking.webhook_endpoints', 'booking.calendar_feeds', 'booking.series', 'booking.bookings',
  'booking.booking_events', 'booking.closures', 'booking.webhook_messages', 'booking.webhook_attempts',
  'booking.idempotency_keys']) t;
DO $$
DECLARE
  t regclass;
  cnt bigint;
BEGIN
  FOR t IN SELECT tbl FROM citus_had_rows LOOP
    EXECUTE format('SELECT count(*) FROM ONLY %s', t) INTO cnt;
    UPDATE citus_had_rows SET n = cnt WHERE tbl = t;
  END LOOP;
END
$$;

-- ===================================================================================== step 1
-- Policies without subqueries (Citus refuses them on distributed and reference tables).
-- auth.uid() is evaluated per row now instead of once per statement.

-- Does the caller own this resource (staff)? Reads a reference table from inside a shard query.
CREATE FUNCTION booking.owns_resource(p_resource uuid) RETURNS boolean
  LANGUAGE plpgsql STABLE SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
  SET citus.allow_nested_distributed_execution = on
  AS $$
BEGIN
  RETURN EXISTS (SELECT 1 FROM booking.resources r WHERE r.id = p_resource AND r.owner_id = auth.uid());
END
$$;

-- May the caller see this booking (and so its history)? Its own, or a non-hold on a resource it
-- owns: the bookings policies, decided here because the policy of booking_events cannot hold a
-- subquery. The booking's shard is co-located with the history's, so this is a local read.
CREATE FUNCTION booking.can_see_booking(p_resource uuid, p_booking uuid) RETURNS boolean
  LANGUAGE plpgsql STABLE SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
  SET citus.allow_nested_distributed_execution = on
  AS $$
DECLARE
  uid uuid := auth.uid();
BEGIN
  IF uid IS NULL THEN
    RETURN false;
  END IF;
  RETURN EXISTS (SELECT 1 FROM booking.bookings b
                  WHERE b.resource_id = p_resource AND b.id = p_booking
                    AND (b.user_id = uid OR (NOT b.is_hold AND EXISTS (
                          SELECT 1 FROM booking.resources r WHERE r.id = b.resource_id AND r.owner_id = uid))));
END
$$;

DROP POLICY users_select_self ON booking.users;
DROP POLICY users_update_self ON booking.users;
CREATE POLICY users_select_self ON booking.users FOR SELECT TO authenticated USING (id = auth.uid());
CREATE POLICY users_update_self ON booking.users FOR UPDATE TO authenticated
  USING (id = auth.uid()) WITH CHECK (id = auth.uid());

DROP POLICY resources_select ON booking.resources;
CREATE POLICY resources_select ON booking.resources FOR SELECT TO authenticated
  USING (active OR owner_id = auth.uid());

DROP POLICY bookings_select_own ON booking.bookings;
DROP POLICY bookings_select_staff ON booking.bookings;
DROP POLICY bookings_insert_own ON booking.bookings;
DROP POLICY bookings_update_own ON booking.bookings;
DROP POLICY bookings_cancel_staff ON booking.bookings;
CREATE POLICY bookings_select_own ON booking.bookings FOR SELECT TO authenticated
  USING (user_id = auth.uid());
CREATE POLICY bookings_select_staff ON booking.bookings FOR SELECT TO authenticated
  USING (NOT is_hold AND booking.owns_resource(resource_id));
CREATE POLICY bookings_insert_own ON booking.bookings FOR INSERT TO authenticated
  WITH CHECK (user_id = auth.uid());
CREATE POLICY bookings_update_own ON booking.bookings FOR UPDATE TO authenticated
  USING (user_id = auth.uid()) WITH CHECK (user_id = auth.uid());
CREATE POLICY bookings_cancel_staff ON booking.bookings FOR UPDATE TO authenticated
  USING (booking.owns_resource(resource_id))
  WITH CHECK (status = 'cancelled' AND booking.owns_resource(resource_id));

DROP POLICY idempotency_select_own ON booking.idempotency_keys;
DROP POLICY idempotency_insert_own ON booking.idempotency_keys;
CREATE POLICY idempotency_select_own ON booking.idempotency_keys FOR SELECT TO authenticated
  USING (user_id = auth.uid());
CREATE POLICY idempotency_insert_own ON booking.idempotency_keys FOR INSERT TO authenticated
  WITH CHECK (user_id = auth.uid());

DROP POLICY series_select_own ON booking.series;
DROP POLICY series_select_staff ON booking.series;
CREATE POLICY series_select_own ON booking.series FOR SELECT TO authenticated
  USING (user_id = auth.uid());
CREATE POLICY series_select_staff ON booking.series FOR SELECT TO authenticated
  USING (booking.owns_resource(resource_id));

-- ===================================================================================== step 4
-- Every foreign key that touches a table about to become reference or distributed goes first (a
-- local table tied to a reference table would be turned into a citus local table, renamed, and
-- the functions typed by its rows would point to the renamed relation); they come back in step 7.
ALTER TABLE booking.resources DROP CONSTRAINT resources_owner_id_fkey;
ALTER TABLE booking.bookings DROP CONSTRAINT IF EXISTS bookings_resource_id_fkey;  -- (0010 drops it)
ALTER TABLE booking.bookings DROP CONSTRAINT IF EXISTS bookings_user_id_fkey;  -- (0010 drops it)
ALTER TABLE booking.bookings DROP CONSTRAINT bookings_series_id_fkey;
ALTER TABLE booking.booking_events DROP CONSTRAINT IF EXISTS booking_events_booking_id_fkey;  -- (0010 drops it)
ALTER TABLE booking.auth_sessions DROP CONSTRAINT auth_sessions_user_id_fkey;
ALTER TABLE booking.webhook_endpoints DROP CONSTRAINT webhook_endpoints_resource_id_fkey;
ALTER TABLE booking.webhook_attempts DROP CONSTRAINT webhook_attempts_endpoint_id_fkey;
ALTER TABLE booking.webhook_attempts DROP CONSTRAINT webhook_attempts_message_id_fkey;
ALTER TABLE booking.series DROP CONSTRAINT series_resource_id_fkey;
ALTER TABLE booking.series DROP CONSTRAINT series_user_id_fkey;
ALTER TABLE booking.closures DROP CONSTRAINT closures_resource_id_fkey;
ALTER TABLE booking.calendar_feeds DROP CONSTRAINT calendar_feeds_resource_id_fkey;
ALTER TABLE booking.calendar_feeds DROP CONSTRAINT calendar_feeds_user_id_fkey;
DO $$
BEGIN
  -- only refresh_tokens -> auth_sessions (both stay on the coordinator) may remain
  IF EXISTS (SELECT 1 FROM pg_constraint WHERE contype = 'f' AND connamespace = 'booking'::regnamespace
                AND conname <> 'refresh_tokens_session_id_fkey') THEN
    RAISE EXCEPTION '0100_citus: foreign keys this script does not know: %',
      (SELECT string_agg(conrelid::regclass || '.' || conname, ', ') FROM pg_constraint
        WHERE contype = 'f' AND connamespace = 'booking'::regnamespace AND conname <> 'refresh_tokens_session_id_fkey');
  END IF;
END
$$;

-- ===================================================================================== step 2
-- The distribution column in every key; history and the outbox carry their booking's resource.
ALTER TABLE booking.booking_events ADD COLUMN resource_id uuid;
ALTER TABLE booking.booking_events DISABLE TRIGGER booking_events_append_only;
UPDATE booking.booking_events e SET resource_id = b.resource_id FROM booking.bookings b WHERE b.id = e.booking_id;
ALTER TABLE booking.booking_events ENABLE TRIGGER booking_events_append_only;
ALTER TABLE booking.booking_events ALTER COLUMN resource_id SET NOT NULL;
-- (step 1 for the history: its policy needs the new column)
DROP POLICY events_select ON booking.booking_events;
CREATE POLICY events_select ON booking.booking_events FOR SELECT TO authenticated
  USING (booking.can_see_booking(resource_id, booking_id));

ALTER TABLE booking.webhook_messages ADD COLUMN resource_id uuid;
UPDATE booking.webhook_messages SET resource_id = (data ->> 'resource_id')::uuid;
ALTER TABLE booking.webhook_messages ALTER COLUMN resource_id SET NOT NULL;
ALTER TABLE booking.webhook_attempts ADD COLUMN resource_id uuid;
UPDATE booking.webhook_attempts a SET resource_id = m.resource_id FROM booking.webhook_messages m WHERE m.id = a.message_id;
-- attempts whose message was deleted meanwhile (none: the key cascades) would have no resource
DELETE FROM booking.webhook_attempts WHERE resource_id IS NULL;
ALTER TABLE booking.webhook_attempts ALTER COLUMN resource_id SET NOT NULL;

ALTER TABLE booking.bookings DROP CONSTRAINT bookings_pkey;
ALTER TABLE booking.bookings ADD CONSTRAINT bookings_pkey PRIMARY KEY (resource_id, id);
CREATE INDEX bookings_id_idx ON booking.bookings (id);
ALTER TABLE booking.booking_events DROP CONSTRAINT booking_events_pkey;
ALTER TABLE booking.booking_events ADD CONSTRAINT booking_events_pkey PRIMARY KEY (resource_id, id);
ALTER TABLE booking.series DROP CONSTRAINT series_pkey;
ALTER TABLE booking.series ADD CONSTRAINT series_pkey PRIMARY KEY (resource_id, id);
CREATE INDEX series_id_idx ON booking.series (id);
ALTER TABLE booking.closures DROP CONSTRAINT closures_pkey;
ALTER TABLE booking.closures ADD CONSTRAINT closures_pkey PRIMARY KEY (resource_id, id);
CREATE INDEX closures_id_idx ON booking.closures (id);
ALTER TABLE booking.webhook_messages DROP CONSTRAINT webhook_messages_pkey;
ALTER TABLE booking.webhook_messages ADD CONSTRAINT webhook_messages_pkey PRIMARY KEY (resource_id, id);
CREATE INDEX webhook_messages_id_idx ON booking.webhook_messages (id);
ALTER TABLE booking.webhook_attempts DROP CONSTRAINT webhook_attempts_pkey;
ALTER TABLE booking.webhook_attempts ADD CONSTRAINT webhook_attempts_pkey PRIMARY KEY (resource_id, id);

-- ===================================================================================== step 3
-- The per-user rule moves to user_busy: one row per booking, whatever its status, so that it is
-- also the per-user index of bookings (id -> resource), and a booking and its row can be compared
-- one to one. Written only by the SECURITY DEFINER functions; no request role reads it.
ALTER TABLE booking.bookings DROP CONSTRAINT bookings_user_no_overlap;
DROP INDEX IF EXISTS booking.bookings_user_live_end_idx;  -- the cap counts user_busy now (0010 dropped it)

CREATE TABLE booking.user_busy (
  user_id     uuid NOT NULL,
  booking_id  uuid NOT NULL,
  resource_id uuid NOT NULL,
  period      tstzrange NOT NULL,
  status      text NOT NULL
    CONSTRAINT user_busy_status CHECK (status IN ('held', 'pending', 'confirmed', 'cancelled', 'rejected', 'expired')),
  expires_at  timestamptz,
  CONSTRAINT user_busy_pkey PRIMARY KEY (user_id, booking_id),
  -- bookings_user_no_overlap of the single-node schema: no user holds two overlapping live rows
  CONSTRAINT user_busy_no_overlap EXCLUDE USING gist (user_id WITH =, period WITH &&)
    WHERE (status IN ('held', 'pending', 'confirmed'))
);
-- the cap: a user's live rows that have not ended
CREATE INDEX user_busy_live_end_idx ON booking.user_busy (user_id, upper(period))
  WHERE status IN ('held', 'pending', 'confirmed');
ALTER TABLE booking.user_busy ENABLE ROW LEVEL SECURITY;
ALTER TABLE booking.user_busy FORCE ROW LEVEL SECURITY;
REVOKE ALL ON booking.user_busy FROM PUBLIC, anon, authenticated, service_role;
CREATE POLICY user_busy_definer ON booking.user_busy FOR ALL TO CURRENT_USER USING (true) WITH CHECK (true);
INSERT INTO booking.user_busy (user_id, booking_id, resource_id, period, status, expires_at)
SELECT user_id, id, resource_id, period, status, expires_at FROM booking.bookings;

-- Gates: one row per resource (with the resource's bookings) and per user (with the user's
-- user_busy rows), created on first use, locked instead of the resources and users rows. Under
-- Citus a row lock on a reference table is a lock on its whole shard (on one worker), and so is the
-- check of a distributed table's foreign key to one: writers locking resource rows FOR KEY SHARE
-- and inserting bookings deadlocked on the resources shard (seen here with 8 concurrent creates).
-- A gate row lock is an ordinary row lock on the worker that holds that resource's (user's) shard.
CREATE TABLE booking.resource_gate (resource_id uuid PRIMARY KEY);
CREATE TABLE booking.user_gate (user_id uuid PRIMARY KEY);
ALTER TABLE booking.resource_gate ENABLE ROW LEVEL SECURITY;
ALTER TABLE booking.resource_gate FORCE ROW LEVEL SECURITY;
ALTER TABLE booking.user_gate ENABLE ROW LEVEL SECURITY;
ALTER TABLE booking.user_gate FORCE ROW LEVEL SECURITY;
REVOKE ALL ON booking.resource_gate, booking.user_gate FROM PUBLIC, anon, authenticated, service_role;
CREATE POLICY resource_gate_definer ON booking.resource_gate FOR ALL TO CURRENT_USER USING (true) WITH CHECK (true);
CREATE POLICY user_gate_definer ON booking.user_gate FOR ALL TO CURRENT_USER USING (true) WITH CHECK (true);
INSERT INTO citus_had_rows SELECT 'booking.user_busy'::regclass, count(*) FROM booking.user_busy;

-- ===================================================================================== step 5, 6
-- Distributing copies the rows into the shards, and the shards' triggers would fire on that copy
-- (new versions and timestamps, a second history row each, outbox messages): off meanwhile.
ALTER TABLE booking.bookings DISABLE TRIGGER USER;
SELECT create_reference_table('booking.users');
SELECT create_reference_table('booking.resources');
SELECT create_reference_table('booking.settings');
SELECT create_reference_table('booking.webhook_endpoints');
SELECT create_reference_table('booking.calendar_feeds');

SELECT create_distributed_table('booking.series', 'resource_id', colocate_with => 'none');
SELECT create_distributed_table('booking.bookings', 'resource_id', colocate_with => 'booking.series');
SELECT create_distributed_table('booking.booking_events', 'resource_id', colocate_with => 'booking.series');
SELECT create_distributed_table('booking.closures', 'resource_id', colocate_with => 'booking.series');
SELECT create_distributed_table('booking.webhook_messages', 'resource_id', colocate_with => 'booking.series');
SELECT create_distributed_table('booking.webhook_attempts', 'resource_id', colocate_with => 'booking.series');
SELECT create_distributed_table('booking.resource_gate', 'resource_id', colocate_with => 'booking.series');
SELECT create_distributed_table('booking.user_busy', 'user_id', colocate_with => 'none');
SELECT create_distributed_table('booking.idempotency_keys', 'user_id', colocate_with => 'booking.user_busy');
SELECT create_distributed_table('booking.user_gate', 'user_id', colocate_with => 'booking.user_busy');

-- ===================================================================================== step 10
-- (before the keys come back: a table referenced by a local table cannot be truncated)
-- The copies the coordinator kept of tables that held rows. Tables that refuse TRUNCATE by
-- trigger (history; from 0010 on bookings, users, resources) have their triggers off for this one
-- statement, which only drops the coordinator's stale copy (bookings' are off already).
DO $$
DECLARE
  t regclass;
BEGIN
  FOR t IN SELECT tbl FROM citus_had_rows WHERE n > 0 LOOP
    IF t <> 'booking.bookings'::regclass THEN
      EXECUTE format('ALTER TABLE %s DISABLE TRIGGER USER', t);
    END IF;
    PERFORM truncate_local_data_after_distributing_table(t);
    IF t <> 'booking.bookings'::regclass THEN
      EXECUTE format('ALTER TABLE %s ENABLE TRIGGER USER', t);
    END IF;
  END LOOP;
END
$$;

-- ===================================================================================== step 7
-- The keys back, one ADD CONSTRAINT per statement; composite where both sides are distributed.
-- Keys from a distributed table to a reference table (bookings, series, closures -> resources,
-- users) are NOT restored: Citus checks them under a lock on the referenced table's whole shard,
-- which serialises (and, with row locks, deadlocked) every booking write. In their place: the
-- bookings trigger checks the resource (and, from 0010 on, the user) on every insert, series and
-- closures are written only by the functions, which check the resource first; the application
-- never deletes users or resources (0010's delete guards, triggers on users/resources, cannot run
-- on a reference table's placements and are dropped above). Deleting one by hand is unguarded.
ALTER TABLE booking.resources ADD CONSTRAINT resources_owner_id_fkey FOREIGN KEY (owner_id) REFERENCES booking.users (id);
ALTER TABLE booking.webhook_endpoints ADD CONSTRAINT webhook_endpoints_resource_id_fkey
  FOREIGN KEY (resource_id) REFERENCES booking.resources (id) ON DELETE CASCADE;
ALTER TABLE booking.calendar_feeds ADD CONSTRAINT calendar_feeds_user_id_fkey FOREIGN KEY (user_id) REFERENCES booking.users (id);
ALTER TABLE booking.calendar_feeds ADD CONSTRAINT calendar_feeds_resource_id_fkey FOREIGN KEY (resource_id) REFERENCES booking.resources (id);
ALTER TABLE booking.bookings ADD CONSTRAINT bookings_series_id_fkey
  FOREIGN KEY (resource_id, series_id) REFERENCES booking.series (resource_id, id);
ALTER TABLE booking.booking_events ADD CONSTRAINT booking_events_booking_id_fkey
  FOREIGN KEY (resource_id, booking_id) REFERENCES booking.bookings (resource_id, id);
-- webhook_attempts -> webhook_endpoints is NOT restored: with a distributed table's key to it,
-- Citus refuses to modify webhook_endpoints in a transaction that has read a distributed table in
-- parallel, and webhook_settle must find a message by id over every shard before it updates its
-- endpoint. An endpoint's attempts go with its messages (attempts -> messages cascades; an
-- endpoint is deleted after its messages are purged), as 0007 already does for messages.
ALTER TABLE booking.webhook_attempts ADD CONSTRAINT webhook_attempts_message_id_fkey
  FOREIGN KEY (resource_id, message_id) REFERENCES booking.webhook_messages (resource_id, id) ON DELETE CASCADE;
-- last: auth_sessions (and refresh_tokens with it) become citus local tables
ALTER TABLE booking.auth_sessions ADD CONSTRAINT auth_sessions_user_id_fkey
  FOREIGN KEY (user_id) REFERENCES booking.users (id) ON DELETE CASCADE;

-- the bookings triggers back on, on every shard
ALTER TABLE booking.bookings ENABLE TRIGGER USER;

-- ===================================================================================== step 8
-- Functions. Every write function is SECURITY DEFINER on the coordinator and issues router
-- statements (WHERE resource_id = … on bookings, WHERE user_id = … on user_busy), and keeps its
-- signature and result.

-- A constraint error relayed from a worker has no constraint name (SQLSTATE, message, detail and
-- hint survive); the server maps errors by name. Raise it again on the coordinator with the
-- single-node name: taken from the error when it has one, else from the messages our own triggers
-- raise, else from the relayed message ('… constraint "<name>_<shard id>"').
CREATE FUNCTION booking.citus_reraise(p_state text, p_message text, p_detail text, p_hint text, p_constraint text)
  RETURNS void
  LANGUAGE plpgsql
  SET search_path = pg_catalog, pg_temp
  AS $$
DECLARE
  c text := nullif(p_constraint, '');
BEGIN
  IF c IS NULL THEN
    c := CASE
      WHEN p_message = 'no such active resource' THEN 'bookings_resource_id_fkey'
      WHEN p_message = 'no such user' THEN 'bookings_user_id_fkey'
      WHEN p_message = 'bookings are never deleted; cancel them' THEN 'booking_events_booking_id_fkey'
      WHEN p_message ~ '^seat [0-9]+ exceeds the resource''s capacity' THEN 'bookings_seat_within_capacity'
      WHEN p_message ~ '^a booking''s id, user, resource' THEN 'bookings_immutable'
      WHEN p_message ~ '^a [a-z]+ booking cannot change$' THEN 'bookings_cancelled_final'
      WHEN p_message = 'a booking never becomes a hold' THEN 'bookings_hold_status'
      WHEN p_message = 'a change of status cannot move the booking' THEN 'bookings_cancel_keeps_period'
      WHEN p_message = 'start is in the past' THEN 'bookings_start_not_past'
      ELSE regexp_replace(substring(p_message FROM 'constraint "([^"]+)"'), '_[0-9]+$', '')
    END;
  END IF;
  IF c = 'user_busy_no_overlap' THEN
    c := 'bookings_user_no_overlap';
  END IF;
  RAISE EXCEPTION USING ERRCODE = p_state, MESSAGE = p_message, DETAIL = coalesce(p_detail, ''),
    HINT = coalesce(p_hint, ''), CONSTRAINT = coalesce(c, '');
END
$$;

-- Copy a booking's period, status and expiry to its user_busy row (after every change of the
-- booking, in the same transaction). An overlap refusal here is the user's (bookings_user_no_overlap).
CREATE FUNCTION booking.mirror_busy(p_user uuid, p_id uuid, p_period tstzrange, p_status text, p_expires timestamptz)
  RETURNS void
  LANGUAGE plpgsql
  SET search_path = pg_catalog, pg_temp
  AS $$
BEGIN
  UPDATE booking.user_busy SET period = p_period, status = p_status, expires_at = p_expires
   WHERE user_id = p_user AND booking_id = p_id
     AND (period, status, expires_at) IS DISTINCT FROM (p_period, p_status, p_expires);
  IF NOT FOUND AND NOT EXISTS (SELECT 1 FROM booking.user_busy WHERE user_id = p_user AND booking_id = p_id) THEN
    RAISE EXCEPTION 'booking % has no user_busy row', p_id USING ERRCODE = 'internal_error';
  END IF;
END
$$;

-- Change one booking's status (router), only from one of p_from, optionally only when it has not
-- expired at p_live_at or only when it has expired at p_expired_at; its user_busy row follows.
-- True when it changed.
CREATE FUNCTION booking.set_status(p_resource uuid, p_id uuid, p_status text, p_from text[],
                                   p_live_at timestamptz DEFAULT NULL, p_expired_at timestamptz DEFAULT NULL)
  RETURNS boolean
  LANGUAGE plpgsql
  SET search_path = pg_catalog, pg_temp
  AS $$
DECLARE
  x record;
BEGIN
  UPDATE booking.bookings SET status = p_status
   WHERE resource_id = p_resource AND id = p_id AND status = ANY (p_from)
     AND (p_live_at IS NULL OR expires_at IS NULL OR expires_at > p_live_at)
     AND (p_expired_at IS NULL OR expires_at <= p_expired_at)
  RETURNING user_id, period, status, expires_at INTO x;
  IF NOT FOUND THEN
    RETURN false;
  END IF;
  PERFORM booking.mirror_busy(x.user_id, p_id, x.period, x.status, x.expires_at);
  RETURN true;
END
$$;

-- Which resource a booking is on (its shard), or NULL: the caller's own bookings through
-- user_busy (a router query on the caller's shard); for the service role and for staff (who own
-- a resource) a lookup by id over every shard, without a lock. Who may act is decided by the
-- caller, as before.
CREATE FUNCTION booking.locate_booking(p_id uuid, p_uid uuid, p_service boolean) RETURNS uuid
  LANGUAGE plpgsql STABLE
  SET search_path = pg_catalog, pg_temp
  AS $$
DECLARE
  rid uuid;
BEGIN
  IF p_id IS NULL THEN
    RETURN NULL;
  END IF;
  IF p_uid IS NOT NULL THEN
    SELECT resource_id INTO rid FROM booking.user_busy WHERE user_id = p_uid AND booking_id = p_id;
    IF FOUND THEN
      RETURN rid;
    END IF;
  END IF;
  IF p_service OR (p_uid IS NOT NULL AND EXISTS (SELECT 1 FROM booking.resources WHERE owner_id = p_uid)) THEN
    SELECT resource_id INTO rid FROM booking.bookings WHERE id = p_id;
    RETURN rid;
  END IF;
  RETURN NULL;
END
$$;

-- Retire the expired holds and pending bookings in the way: on the resource (with buffers) when
-- p_resource is given, the user's own when p_user is given. Each row and its user_busy row change
-- together (router statements). Returns how many.
CREATE OR REPLACE FUNCTION booking.retire_expired(p_resource uuid, p_blocked tstzrange, p_user uuid,
                                                  p_period tstzrange, p_at timestamptz)
  RETURNS int
  LANGUAGE plpgsql
  SET search_path = pg_catalog, pg_temp
  AS $$
DECLARE
  n int := 0;
  x record;
BEGIN
  IF p_resource IS NOT NULL AND p_blocked IS NOT NULL THEN
    FOR x IN SELECT b.id FROM booking.bookings b
              WHERE b.resource_id = p_resource AND b.blocked && p_blocked
                AND b.status IN ('held', 'pending') AND b.expires_at <= p_at LOOP
      IF booking.set_status(p_resource, x.id, 'expired', ARRAY['held', 'pending'], NULL, p_at) THEN
        n := n + 1;
      END IF;
    END LOOP;
  END IF;
  IF p_user IS NOT NULL AND p_period IS NOT NULL THEN
    FOR x IN SELECT u.booking_id, u.resource_id FROM booking.user_busy u
              WHERE u.user_id = p_user AND u.period && p_period
                AND u.status IN ('held', 'pending') AND u.expires_at <= p_at LOOP
      IF booking.set_status(x.resource_id, x.booking_id, 'expired', ARRAY['held', 'pending'], NULL, p_at) THEN
        n := n + 1;
      END IF;
    END LOOP;
  END IF;
  RETURN n;
END
$$;

-- Whether the user holds a live row overlapping p (PL/pgSQL: a SQL function with parameters
-- cannot be planned over a distributed table). Router on the user's shard.
CREATE OR REPLACE FUNCTION booking.user_busy(p_user uuid, p tstzrange, p_at timestamptz, p_except uuid DEFAULT NULL)
  RETURNS boolean
  LANGUAGE plpgsql STABLE
  SET search_path = pg_catalog, pg_temp
  AS $$
BEGIN
  IF p_user IS NULL THEN
    RETURN false;
  END IF;
  RETURN EXISTS (SELECT 1 FROM booking.user_busy u
                  WHERE u.user_id = p_user AND u.status IN ('held', 'pending', 'confirmed')
                    AND (u.expires_at IS NULL OR u.expires_at > p_at) AND u.period && p
                    AND u.booking_id IS DISTINCT FROM p_except);
END
$$;

-- Lock a resource's gate (writers FOR KEY SHARE, closures and capacity changes FOR UPDATE) or a
-- user's (FOR UPDATE, the cap); the row is created on first use. Router queries.
CREATE FUNCTION booking.gate_resource(p_resource uuid, p_exclusive boolean) RETURNS void
  LANGUAGE plpgsql
  SET search_path = pg_catalog, pg_temp
  AS $$
BEGIN
  FOR i IN 1 .. 2 LOOP
    IF p_exclusive THEN
      PERFORM 1 FROM booking.resource_gate WHERE resource_id = p_resource FOR UPDATE;
    ELSE
      PERFORM 1 FROM booking.resource_gate WHERE resource_id = p_resource FOR KEY SHARE;
    END IF;
    EXIT WHEN FOUND;
    INSERT INTO booking.resource_gate (resource_id) VALUES (p_resource) ON CONFLICT DO NOTHING;
  END LOOP;
END
$$;

CREATE FUNCTION booking.gate_user(p_user uuid) RETURNS void
  LANGUAGE plpgsql
  SET search_path = pg_catalog, pg_temp
  AS $$
BEGIN
  FOR i IN 1 .. 2 LOOP
    PERFORM 1 FROM booking.user_gate WHERE user_id = p_user FOR UPDATE;
    EXIT WHEN FOUND;
    INSERT INTO booking.user_gate (user_id) VALUES (p_user) ON CONFLICT DO NOTHING;
  END LOOP;
END
$$;

-- The cap, counted under the lock on the caller's gate (user_gate), over the caller's live rows
-- in user_busy: router queries on the caller's shard.
CREATE OR REPLACE FUNCTION booking.cap_problem(uid uuid, p_adding int)
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
  PERFORM booking.gate_user(uid);
  at := booking.clock();  -- after the lock, which may have been waited for
  SELECT max_active_bookings INTO cap FROM booking.settings;
  cap := coalesce(cap, 100);
  SELECT count(*) INTO n_active FROM booking.user_busy
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

-- Place a row: first the user's busy period on the user's shard (refused: the caller holds an
-- overlapping live row — their expired ones in the way are retired once and it is tried again),
-- then a seat on the resource's shard, seat by seat with ON CONFLICT DO NOTHING as before
-- (refused on every seat: the expired rows in the way are retired once and the seats tried again;
-- still refused: the user_busy row goes and the answer is slot_taken). The booking and its
-- user_busy row commit together. "Start is in the past" is judged here, after the row is in
-- place (after any wait), as the single-node trigger did.
CREATE OR REPLACE FUNCTION booking.place(r booking.resources, uid uuid, p tstzrange, p_note text, p_status text,
                                         p_expires timestamptz, p_series uuid, at timestamptz)
  RETURNS booking.write_result
  LANGUAGE plpgsql
  SET search_path = pg_catalog, pg_temp
  AS $$
DECLARE
  b booking.bookings;
  bid uuid := gen_random_uuid();
  seat_no int := 1;
  retired boolean := false;
BEGIN
  LOOP
    INSERT INTO booking.user_busy (user_id, booking_id, resource_id, period, status, expires_at)
    VALUES (uid, bid, r.id, p, p_status, p_expires)
    ON CONFLICT DO NOTHING;
    EXIT WHEN FOUND;
    IF retired OR booking.retire_expired(NULL, NULL, uid, p, at) = 0 THEN
      RETURN booking.refused('user_overlap');
    END IF;
    retired := true;
  END LOOP;
  retired := false;
  WHILE seat_no <= r.capacity LOOP
    INSERT INTO booking.bookings (id, resource_id, user_id, period, blocked, seat, note, status, expires_at, series_id)
    VALUES (bid, r.id, uid, p, p, seat_no, p_note, p_status, p_expires, p_series)
    ON CONFLICT DO NOTHING
    RETURNING * INTO b;
    IF FOUND THEN
      IF b.status IN ('held', 'pending', 'confirmed') AND lower(b.period) < booking.clock() THEN
        RAISE EXCEPTION 'start is in the past'
          USING ERRCODE = 'check_violation', CONSTRAINT = 'bookings_start_not_past';
      END IF;
      PERFORM booking.mirror_busy(uid, bid, b.period, b.status, b.expires_at);
      RETURN booking.written('created', b);
    END IF;
    IF seat_no = 1 AND NOT retired THEN
      retired := true;
      IF booking.retire_expired(r.id, tstzrange(lower(p), upper(p) + make_interval(mins => r.buffer_minutes), '[)'),
                                NULL, NULL, at) > 0 THEN
        CONTINUE;
      END IF;
    END IF;
    seat_no := seat_no + 1;
  END LOOP;
  DELETE FROM booking.user_busy WHERE user_id = uid AND booking_id = bid;
  RETURN booking.refused('slot_taken');
END
$$;

-- Create (0008's, with the re-raise).
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
  e_state text; e_msg text; e_detail text; e_hint text; e_cname text;
BEGIN
  -- the authenticated role only (the newest 0010's rule: not the owner, not the service role)
  IF uid IS NULL OR coalesce(current_setting('role', true), 'none') <> 'authenticated' THEN
    RETURN booking.refused('unauthenticated');
  END IF;
  IF p_resource IS NULL OR p_start IS NULL OR p_end IS NULL THEN
    RETURN booking.refused('invalid', '{"field": "start", "message": "resource_id, start and end are required"}');
  END IF;
  BEGIN
    PERFORM booking.require_fresh_snapshots();
    IF NOT EXISTS (SELECT 1 FROM booking.resources WHERE id = p_resource AND active) THEN
      RETURN booking.refused('not_found');
    END IF;
    PERFORM booking.gate_resource(p_resource, false);
    SELECT * INTO r FROM booking.resources WHERE id = p_resource AND active;
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
  EXCEPTION WHEN integrity_constraint_violation THEN
    GET STACKED DIAGNOSTICS e_state = RETURNED_SQLSTATE, e_msg = MESSAGE_TEXT, e_detail = PG_EXCEPTION_DETAIL,
                            e_hint = PG_EXCEPTION_HINT, e_cname = CONSTRAINT_NAME;
    PERFORM booking.citus_reraise(e_state, e_msg, e_detail, e_hint, e_cname);
  END;
END
$$;

CREATE OR REPLACE FUNCTION booking.create_hold(p_resource uuid, p_start timestamptz, p_end timestamptz,
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
  e_state text; e_msg text; e_detail text; e_hint text; e_cname text;
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
  BEGIN
    PERFORM booking.require_fresh_snapshots();
    IF NOT EXISTS (SELECT 1 FROM booking.resources WHERE id = p_resource AND active) THEN
      RETURN booking.refused('not_found');
    END IF;
    PERFORM booking.gate_resource(p_resource, false);
    SELECT * INTO r FROM booking.resources WHERE id = p_resource AND active;
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
  EXCEPTION WHEN integrity_constraint_violation THEN
    GET STACKED DIAGNOSTICS e_state = RETURNED_SQLSTATE, e_msg = MESSAGE_TEXT, e_detail = PG_EXCEPTION_DETAIL,
                            e_hint = PG_EXCEPTION_HINT, e_cname = CONSTRAINT_NAME;
    PERFORM booking.citus_reraise(e_state, e_msg, e_detail, e_hint, e_cname);
  END;
END
$$;

CREATE OR REPLACE FUNCTION booking.confirm_hold(p_id uuid, p_note text DEFAULT NULL)
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
  rid uuid;
  new_status text;
  new_expires timestamptz;
  e_state text; e_msg text; e_detail text; e_hint text; e_cname text;
BEGIN
  BEGIN
    PERFORM booking.require_fresh_snapshots();
    rid := booking.locate_booking(p_id, uid, service);
    IF rid IS NULL THEN
      RETURN booking.refused('not_found');
    END IF;
    SELECT * INTO b FROM booking.bookings WHERE resource_id = rid AND id = p_id AND is_hold;
    IF NOT FOUND OR NOT (service OR (uid IS NOT NULL AND b.user_id = uid)) THEN
      RETURN booking.refused('not_found');
    END IF;
    problem := booking.note_problem(p_note);
    IF problem IS NOT NULL THEN
      RETURN booking.refused('invalid', problem);
    END IF;
    SELECT * INTO b FROM booking.bookings WHERE resource_id = rid AND id = p_id FOR UPDATE;
    at := booking.clock();  -- after the lock, which may have been waited for
    IF NOT b.is_hold OR b.status = 'cancelled' THEN
      RETURN booking.refused('not_found');
    END IF;
    IF b.status = 'expired' THEN
      RETURN booking.refused('hold_expired');
    END IF;
    IF b.expires_at <= at THEN
      PERFORM booking.set_status(rid, p_id, 'expired', ARRAY['held']);
      RETURN booking.refused('hold_expired');
    END IF;
    SELECT * INTO r FROM booking.resources WHERE id = b.resource_id;
    -- (computed here: Citus refuses non-immutable expressions inside CASE in a distributed UPDATE)
    new_status := CASE WHEN r.requires_approval THEN 'pending' ELSE 'confirmed' END;
    new_expires := CASE WHEN r.requires_approval THEN at + make_interval(mins => r.approval_timeout_minutes) END;
    UPDATE booking.bookings
       SET status = new_status, expires_at = new_expires, is_hold = false, note = p_note
     WHERE resource_id = rid AND id = p_id
    RETURNING * INTO b;
    PERFORM booking.mirror_busy(b.user_id, b.id, b.period, b.status, b.expires_at);
    RETURN booking.written('created', b);
  EXCEPTION WHEN integrity_constraint_violation THEN
    GET STACKED DIAGNOSTICS e_state = RETURNED_SQLSTATE, e_msg = MESSAGE_TEXT, e_detail = PG_EXCEPTION_DETAIL,
                            e_hint = PG_EXCEPTION_HINT, e_cname = CONSTRAINT_NAME;
    PERFORM booking.citus_reraise(e_state, e_msg, e_detail, e_hint, e_cname);
  END;
END
$$;

CREATE OR REPLACE FUNCTION booking.release_hold(p_id uuid)
  RETURNS booking.write_result
  LANGUAGE plpgsql SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
  AS $$
DECLARE
  b booking.bookings;
  uid uuid := auth.uid();
  service boolean := booking.caller_is_service();
  rid uuid;
  e_state text; e_msg text; e_detail text; e_hint text; e_cname text;
BEGIN
  BEGIN
    rid := booking.locate_booking(p_id, uid, service);
    IF rid IS NULL THEN
      RETURN booking.refused('not_found');
    END IF;
    SELECT * INTO b FROM booking.bookings WHERE resource_id = rid AND id = p_id AND is_hold;
    IF NOT FOUND OR NOT (service OR (uid IS NOT NULL AND b.user_id = uid)) THEN
      RETURN booking.refused('not_found');
    END IF;
    SELECT * INTO b FROM booking.bookings WHERE resource_id = rid AND id = p_id FOR UPDATE;
    IF b.status <> 'held' OR NOT b.is_hold THEN
      RETURN booking.written('unchanged', b);
    END IF;
    UPDATE booking.bookings SET status = 'cancelled' WHERE resource_id = rid AND id = p_id RETURNING * INTO b;
    PERFORM booking.mirror_busy(b.user_id, b.id, b.period, b.status, b.expires_at);
    RETURN booking.written('updated', b);
  EXCEPTION WHEN integrity_constraint_violation THEN
    GET STACKED DIAGNOSTICS e_state = RETURNED_SQLSTATE, e_msg = MESSAGE_TEXT, e_detail = PG_EXCEPTION_DETAIL,
                            e_hint = PG_EXCEPTION_HINT, e_cname = CONSTRAINT_NAME;
    PERFORM booking.citus_reraise(e_state, e_msg, e_detail, e_hint, e_cname);
  END;
END
$$;

CREATE OR REPLACE FUNCTION booking.decide_booking(p_id uuid, p_approve boolean)
  RETURNS booking.write_result
  LANGUAGE plpgsql SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
  AS $$
DECLARE
  b booking.bookings;
  uid uuid := auth.uid();
  service boolean := booking.caller_is_service();
  at timestamptz := booking.clock();
  rid uuid;
  e_state text; e_msg text; e_detail text; e_hint text; e_cname text;
BEGIN
  BEGIN
    PERFORM booking.require_fresh_snapshots();
    rid := booking.locate_booking(p_id, uid, service);
    IF rid IS NULL THEN
      RETURN booking.refused('not_found');
    END IF;
    SELECT * INTO b FROM booking.bookings WHERE resource_id = rid AND id = p_id AND NOT is_hold;
    IF NOT FOUND THEN
      RETURN booking.refused('not_found');
    END IF;
    IF NOT (service OR (uid IS NOT NULL AND EXISTS (
              SELECT 1 FROM booking.resources WHERE id = b.resource_id AND owner_id = uid))) THEN
      IF uid IS NOT NULL AND b.user_id = uid THEN
        RETURN booking.refused('forbidden');
      END IF;
      RETURN booking.refused('not_found');
    END IF;
    SELECT * INTO b FROM booking.bookings WHERE resource_id = rid AND id = p_id FOR UPDATE;
    at := booking.clock();
    IF b.status <> 'pending' THEN
      RETURN booking.refused('not_allowed');
    END IF;
    IF b.expires_at <= at THEN
      PERFORM booking.set_status(rid, p_id, 'expired', ARRAY['pending']);
      RETURN booking.refused('not_allowed');
    END IF;
    UPDATE booking.bookings SET status = CASE WHEN p_approve THEN 'confirmed' ELSE 'rejected' END
     WHERE resource_id = rid AND id = p_id RETURNING * INTO b;
    PERFORM booking.mirror_busy(b.user_id, b.id, b.period, b.status, b.expires_at);
    RETURN booking.written('updated', b);
  EXCEPTION WHEN integrity_constraint_violation THEN
    GET STACKED DIAGNOSTICS e_state = RETURNED_SQLSTATE, e_msg = MESSAGE_TEXT, e_detail = PG_EXCEPTION_DETAIL,
                            e_hint = PG_EXCEPTION_HINT, e_cname = CONSTRAINT_NAME;
    PERFORM booking.citus_reraise(e_state, e_msg, e_detail, e_hint, e_cname);
  END;
END
$$;

-- Reschedule: the user's period first (user_busy, refused: user_overlap), then the seats on the
-- resource (bookings, refused on every seat: slot_taken); one attempt is one subtransaction, so a
-- refused attempt leaves both rows exactly as they were. Expired rows in the way are retired once
-- and the move tried again.
CREATE OR REPLACE FUNCTION booking.reschedule_booking(p_id uuid, p_start timestamptz, p_end timestamptz,
                                                      p_set_note boolean DEFAULT false, p_note text DEFAULT NULL,
                                                      p_version int DEFAULT NULL)
  RETURNS booking.write_result
  LANGUAGE plpgsql SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
  AS $$
DECLARE
  b booking.bookings;
  nb booking.bookings;
  r booking.resources;
  uid uuid := auth.uid();
  service boolean := booking.caller_is_service();
  at timestamptz := booking.clock();
  problem jsonb;
  seat_no int;
  round int;
  p tstzrange;
  rid uuid;
  outcome text;
  e_state text; e_msg text; e_detail text; e_hint text; e_cname text;
BEGIN
  IF uid IS NULL AND NOT service THEN
    RETURN booking.refused('not_found');
  END IF;
  IF p_start IS NULL OR p_end IS NULL THEN
    RETURN booking.refused('invalid', '{"field": "start", "message": "start and end are required"}');
  END IF;
  BEGIN
    PERFORM booking.require_fresh_snapshots();
    rid := booking.locate_booking(p_id, uid, service);
    IF rid IS NULL THEN
      RETURN booking.refused('not_found');
    END IF;
    SELECT * INTO b FROM booking.bookings WHERE resource_id = rid AND id = p_id AND NOT is_hold;
    IF NOT FOUND THEN
      RETURN booking.refused('not_found');
    END IF;
    IF NOT service AND b.user_id IS DISTINCT FROM uid THEN
      IF EXISTS (SELECT 1 FROM booking.resources WHERE id = b.resource_id AND owner_id = uid) THEN
        RETURN booking.refused('forbidden');
      END IF;
      RETURN booking.refused('not_found');
    END IF;
    PERFORM booking.gate_resource(rid, false);
    SELECT * INTO r FROM booking.resources WHERE id = b.resource_id AND active;
    IF NOT FOUND THEN
      RETURN booking.refused('not_found');
    END IF;
    SELECT * INTO b FROM booking.bookings WHERE resource_id = rid AND id = p_id FOR UPDATE;
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
      IF r.requires_approval AND b.status = 'confirmed' AND NOT service THEN
        RETURN booking.refused('not_allowed');
      END IF;
      problem := booking.slot_problem(r, p_start, p_end, at);
      IF problem IS NOT NULL THEN
        RETURN booking.refused('invalid', problem);
      END IF;
    END IF;
    FOR round IN 1 .. 2 LOOP
      outcome := NULL;
      BEGIN
        IF b.period <> p THEN
          BEGIN
            UPDATE booking.user_busy SET period = p WHERE user_id = b.user_id AND booking_id = p_id;
          EXCEPTION WHEN exclusion_violation THEN
            outcome := 'user_overlap';
          END;
        END IF;
        IF outcome IS NULL THEN
          FOR seat_no IN SELECT s FROM generate_series(1, r.capacity) s ORDER BY s <> b.seat, s LOOP
            BEGIN
              UPDATE booking.bookings
                 SET period = p, seat = seat_no,
                     note = CASE WHEN p_set_note THEN p_note ELSE note END
               WHERE resource_id = rid AND id = p_id
              RETURNING * INTO nb;
              outcome := 'updated';
              EXIT;
            EXCEPTION WHEN exclusion_violation THEN
              NULL;  -- bookings_no_overlap: the next seat
            END;
          END LOOP;
          IF outcome IS NULL THEN
            outcome := 'slot_taken';
            RAISE EXCEPTION 'undo the user_busy move' USING ERRCODE = 'BKR01';
          END IF;
        END IF;
      EXCEPTION WHEN SQLSTATE 'BKR01' THEN
        NULL;
      END;
      EXIT WHEN outcome = 'updated';
      EXIT WHEN round = 2 OR booking.retire_expired(
        r.id, tstzrange(p_start, p_end + make_interval(mins => r.buffer_minutes), '[)'), b.user_id, p, at) = 0;
    END LOOP;
    IF outcome <> 'updated' THEN
      RETURN booking.refused(outcome);
    END IF;
    IF nb.period <> b.period AND lower(nb.period) < booking.clock() THEN
      RAISE EXCEPTION 'start is in the past'
        USING ERRCODE = 'check_violation', CONSTRAINT = 'bookings_start_not_past';
    END IF;
    PERFORM booking.mirror_busy(nb.user_id, nb.id, nb.period, nb.status, nb.expires_at);
    RETURN booking.written('updated', nb);
  EXCEPTION WHEN integrity_constraint_violation THEN
    GET STACKED DIAGNOSTICS e_state = RETURNED_SQLSTATE, e_msg = MESSAGE_TEXT, e_detail = PG_EXCEPTION_DETAIL,
                            e_hint = PG_EXCEPTION_HINT, e_cname = CONSTRAINT_NAME;
    PERFORM booking.citus_reraise(e_state, e_msg, e_detail, e_hint, e_cname);
  END;
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
  service boolean := booking.caller_is_service();
  rid uuid;
  e_state text; e_msg text; e_detail text; e_hint text; e_cname text;
BEGIN
  BEGIN
    rid := booking.locate_booking(p_id, uid, service);
    IF rid IS NULL THEN
      RETURN booking.refused('not_found');
    END IF;
    SELECT * INTO b FROM booking.bookings WHERE resource_id = rid AND id = p_id AND NOT is_hold;
    IF NOT FOUND OR NOT (service
                         OR (uid IS NOT NULL AND (b.user_id = uid OR EXISTS (
                               SELECT 1 FROM booking.resources WHERE id = b.resource_id AND owner_id = uid)))) THEN
      RETURN booking.refused('not_found');
    END IF;
    SELECT * INTO b FROM booking.bookings WHERE resource_id = rid AND id = p_id FOR UPDATE;
    IF b.status = 'cancelled' THEN
      RETURN booking.written('unchanged', b);
    END IF;
    IF p_version IS NOT NULL AND b.version <> p_version THEN
      RETURN booking.refused('precondition_failed');
    END IF;
    IF b.status NOT IN ('confirmed', 'pending') THEN
      RETURN booking.refused('not_allowed');
    END IF;
    UPDATE booking.bookings SET status = 'cancelled' WHERE resource_id = rid AND id = p_id RETURNING * INTO b;
    PERFORM booking.mirror_busy(b.user_id, b.id, b.period, b.status, b.expires_at);
    RETURN booking.written('updated', b);
  EXCEPTION WHEN integrity_constraint_violation THEN
    GET STACKED DIAGNOSTICS e_state = RETURNED_SQLSTATE, e_msg = MESSAGE_TEXT, e_detail = PG_EXCEPTION_DETAIL,
                            e_hint = PG_EXCEPTION_HINT, e_cname = CONSTRAINT_NAME;
    PERFORM booking.citus_reraise(e_state, e_msg, e_detail, e_hint, e_cname);
  END;
END
$$;

-- Webhook data (0008's booking_data/hold_data take a bookings row, which a query rewritten to a
-- shard cannot pass): the same objects from the columns.
CREATE FUNCTION booking.booking_data_of(p_id uuid, p_resource uuid, p_user uuid, p_period tstzrange, p_status text,
                                        p_note text, p_version int, p_created timestamptz, p_updated timestamptz,
                                        p_cancelled timestamptz, p_series uuid)
  RETURNS jsonb
  LANGUAGE sql IMMUTABLE
  SET search_path = pg_catalog, pg_temp
  AS $$
    SELECT jsonb_build_object('id', p_id, 'resource_id', p_resource, 'user_id', p_user,
      'start', lower(p_period), 'end', upper(p_period), 'status', p_status, 'note', p_note,
      'version', p_version, 'created_at', p_created, 'updated_at', p_updated,
      'cancelled_at', p_cancelled, 'series_id', p_series)
  $$;

-- One message per subscribed active endpoint (PL/pgSQL, one single-row INSERT each: called from
-- the bookings trigger on a worker, where only a write to the co-located shard is allowed).
CREATE OR REPLACE FUNCTION booking.enqueue_message(p_event text, p_resource uuid, p_subject uuid, p_data jsonb,
                                                   p_due timestamptz DEFAULT NULL)
  RETURNS void
  LANGUAGE plpgsql
  SET search_path = pg_catalog, pg_temp
  AS $$
DECLARE
  e uuid;
  at timestamptz;
BEGIN
  FOR e IN SELECT we.id FROM booking.webhook_endpoints we
            WHERE we.active AND (we.events IS NULL OR p_event = ANY (we.events))
              AND (we.resource_id IS NULL OR we.resource_id = p_resource) LOOP
    at := coalesce(at, booking.clock());
    INSERT INTO booking.webhook_messages (resource_id, endpoint_id, event, subject_id, data, created_at, due_at)
    VALUES (p_resource, e, p_event, p_subject, p_data, at, coalesce(p_due, at));
  END LOOP;
END
$$;

-- History (0008's): with the booking's resource, written on the booking's worker into the
-- co-located shard; the actor from the propagated claims. The "start is in the past" check moved
-- into the write functions (the request role is not visible on a worker).
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
      ELSE NEW.status
    END;
  ELSIF NEW.period <> OLD.period THEN
    act := 'rescheduled';
  ELSE
    act := 'updated';
  END IF;
  INSERT INTO booking.booking_events (resource_id, booking_id, action, actor_id, old_period, new_period)
  VALUES (NEW.resource_id, NEW.id, act, CASE WHEN act = 'expired' THEN NULL ELSE auth.uid() END,
          CASE WHEN TG_OP = 'UPDATE' THEN OLD.period END, NEW.period);
  RETURN NULL;
END
$$;

-- The outbox trigger (0008's), on the worker: JSON from the columns, messages to the co-located
-- shard one row at a time, reminders found by (resource, subject).
CREATE OR REPLACE FUNCTION booking.bookings_outbox() RETURNS trigger
  LANGUAGE plpgsql
  SET search_path = pg_catalog, pg_temp
  AS $$
DECLARE
  ev text;
  d jsonb;
  dd jsonb;
  hd jsonb;
  at timestamptz;
  e record;
  m int;
  rem int[];
BEGIN
  IF NOT EXISTS (SELECT 1 FROM booking.webhook_endpoints) THEN
    RETURN NULL;  -- nobody listens: the common case costs one probe
  END IF;
  at := booking.clock();
  d := booking.booking_data_of(NEW.id, NEW.resource_id, NEW.user_id, NEW.period, NEW.status, NEW.note, NEW.version,
                               NEW.created_at, NEW.updated_at, NEW.cancelled_at, NEW.series_id);
  IF TG_OP = 'INSERT' THEN
    IF NEW.status = 'held' THEN
      ev := 'hold.created';
      dd := jsonb_build_object('id', NEW.id, 'resource_id', NEW.resource_id, 'user_id', NEW.user_id,
              'start', lower(NEW.period), 'end', upper(NEW.period), 'expires_at', NEW.expires_at);
    ELSE
      ev := CASE WHEN NEW.status = 'pending' THEN 'booking.pending' ELSE 'booking.created' END;
      dd := d;
    END IF;
  ELSIF OLD.status = 'held' THEN
    hd := jsonb_build_object('id', OLD.id, 'resource_id', OLD.resource_id, 'user_id', OLD.user_id,
            'start', lower(OLD.period), 'end', upper(OLD.period), 'expires_at', OLD.expires_at);
    IF NEW.status IN ('confirmed', 'pending') THEN
      PERFORM booking.enqueue_message('hold.confirmed', NEW.resource_id, NEW.id,
        hd || jsonb_build_object('booking_id', NEW.id));
      ev := CASE WHEN NEW.status = 'pending' THEN 'booking.pending' ELSE 'booking.created' END;
      dd := d;
    ELSIF NEW.status = 'expired' THEN
      ev := 'hold.expired';
      dd := hd;
    END IF;
  ELSE
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
    DELETE FROM booking.webhook_messages
     WHERE resource_id = NEW.resource_id AND subject_id = NEW.id AND state = 'pending'
       AND event = 'booking.reminder' AND (leased_until IS NULL OR leased_until < at);
  END IF;
  IF ev IS NOT NULL THEN
    FOR e IN SELECT we.id FROM booking.webhook_endpoints we
              WHERE we.active AND (we.events IS NULL OR ev = ANY (we.events))
                AND (we.resource_id IS NULL OR we.resource_id = NEW.resource_id) LOOP
      INSERT INTO booking.webhook_messages (resource_id, endpoint_id, event, subject_id, data, created_at, due_at)
      VALUES (NEW.resource_id, e.id, ev, NEW.id, dd, at, at);
    END LOOP;
  END IF;
  IF NEW.status = 'confirmed' THEN
    SELECT reminders_minutes INTO rem FROM booking.resources WHERE id = NEW.resource_id;
    IF cardinality(rem) > 0 THEN
      FOR e IN SELECT we.id FROM booking.webhook_endpoints we
                WHERE we.active AND (we.events IS NULL OR 'booking.reminder' = ANY (we.events))
                  AND (we.resource_id IS NULL OR we.resource_id = NEW.resource_id) LOOP
        FOREACH m IN ARRAY rem LOOP
          IF lower(NEW.period) - make_interval(mins => m) > at THEN
            INSERT INTO booking.webhook_messages (resource_id, endpoint_id, event, subject_id, data, created_at, due_at)
            VALUES (NEW.resource_id, e.id, 'booking.reminder', NEW.id, d, at, lower(NEW.period) - make_interval(mins => m));
          END IF;
        END LOOP;
      END LOOP;
    END IF;
  END IF;
  RETURN NULL;
END
$$;

-- Series (0008's): the series row and every occurrence on the resource's shards, each occurrence
-- with its user_busy row; all or nothing.
CREATE OR REPLACE FUNCTION booking.create_series(p_resource uuid, p_start timestamptz, p_end timestamptz,
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
  e_state text; e_msg text; e_detail text; e_hint text; e_cname text;
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
  BEGIN
    PERFORM booking.require_fresh_snapshots();
    IF NOT EXISTS (SELECT 1 FROM booking.resources WHERE id = p_resource AND active) THEN
      RETURN NEXT booking.refused('not_found');
      RETURN;
    END IF;
    PERFORM booking.gate_resource(p_resource, false);
    SELECT * INTO r FROM booking.resources WHERE id = p_resource AND active;
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
      IF EXISTS (SELECT 1 FROM booking.webhook_endpoints) THEN
        PERFORM booking.enqueue_message('series.created', r.id, sid, jsonb_build_object(
          'id', sid, 'resource_id', r.id, 'user_id', uid, 'rrule', p_rrule,
          'bookings', (SELECT jsonb_agg(booking.booking_data_of(b.id, b.resource_id, b.user_id, b.period, b.status,
                                          b.note, b.version, b.created_at, b.updated_at, b.cancelled_at, b.series_id)
                                        ORDER BY lower(b.period))
                         FROM booking.bookings b WHERE b.resource_id = r.id AND b.series_id = sid)));
      END IF;
    EXCEPTION WHEN SQLSTATE 'BKS01' THEN
      RETURN QUERY SELECT * FROM unnest(refusals);
      RETURN;
    END;
    RETURN QUERY SELECT * FROM unnest(created);
  EXCEPTION WHEN integrity_constraint_violation THEN
    GET STACKED DIAGNOSTICS e_state = RETURNED_SQLSTATE, e_msg = MESSAGE_TEXT, e_detail = PG_EXCEPTION_DETAIL,
                            e_hint = PG_EXCEPTION_HINT, e_cname = CONSTRAINT_NAME;
    PERFORM booking.citus_reraise(e_state, e_msg, e_detail, e_hint, e_cname);
  END;
END
$$;

CREATE OR REPLACE FUNCTION booking.cancel_series(p_id uuid, p_from timestamptz)
  RETURNS int
  LANGUAGE plpgsql SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
  AS $$
DECLARE
  s booking.series;
  uid uuid := auth.uid();
  n int := 0;
  x record;
  y record;
  since timestamptz;
  e_state text; e_msg text; e_detail text; e_hint text; e_cname text;
BEGIN
  BEGIN
    SELECT * INTO s FROM booking.series WHERE id = p_id;  -- every shard, by the id index
    IF NOT FOUND OR NOT (booking.caller_is_service()
                         OR (uid IS NOT NULL AND (s.user_id = uid OR EXISTS (
                               SELECT 1 FROM booking.resources WHERE id = s.resource_id AND owner_id = uid)))) THEN
      RETURN NULL;
    END IF;
    since := coalesce(p_from, booking.clock());
    FOR x IN SELECT b.id FROM booking.bookings b
              WHERE b.resource_id = s.resource_id AND b.series_id = p_id
                AND b.status IN ('confirmed', 'pending') AND lower(b.period) >= since
              ORDER BY lower(b.period) LOOP
      -- re-checked under the row lock the UPDATE takes
      UPDATE booking.bookings SET status = 'cancelled'
       WHERE resource_id = s.resource_id AND id = x.id AND series_id = p_id
         AND status IN ('confirmed', 'pending') AND lower(period) >= since
      RETURNING period, status, expires_at INTO y;
      IF FOUND THEN
        PERFORM booking.mirror_busy(s.user_id, x.id, y.period, y.status, y.expires_at);
        n := n + 1;
      END IF;
    END LOOP;
    IF n > 0 AND EXISTS (SELECT 1 FROM booking.webhook_endpoints) THEN
      PERFORM booking.enqueue_message('series.cancelled', s.resource_id, s.id, jsonb_build_object(
        'id', s.id, 'resource_id', s.resource_id, 'user_id', s.user_id, 'rrule', s.rrule,
        'bookings', (SELECT jsonb_agg(booking.booking_data_of(b.id, b.resource_id, b.user_id, b.period, b.status,
                                        b.note, b.version, b.created_at, b.updated_at, b.cancelled_at, b.series_id)
                                      ORDER BY lower(b.period))
                       FROM booking.bookings b WHERE b.resource_id = s.resource_id AND b.series_id = s.id)));
    END IF;
    RETURN n;
  EXCEPTION WHEN integrity_constraint_violation THEN
    GET STACKED DIAGNOSTICS e_state = RETURNED_SQLSTATE, e_msg = MESSAGE_TEXT, e_detail = PG_EXCEPTION_DETAIL,
                            e_hint = PG_EXCEPTION_HINT, e_cname = CONSTRAINT_NAME;
    PERFORM booking.citus_reraise(e_state, e_msg, e_detail, e_hint, e_cname);
  END;
END
$$;

CREATE OR REPLACE FUNCTION booking.add_closure(p_resource uuid, p_start timestamptz, p_end timestamptz,
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
  x record;
  e_state text; e_msg text; e_detail text; e_hint text; e_cname text;
BEGIN
  IF NOT booking.caller_is_service() THEN
    RAISE EXCEPTION 'service role only' USING ERRCODE = 'insufficient_privilege';
  END IF;
  IF p_start IS NULL OR p_end IS NULL OR p_end <= p_start THEN
    RAISE EXCEPTION 'a closure needs start < end' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  p := tstzrange(p_start, p_end, '[)');
  BEGIN
    -- the resource's gate: every writer of this resource takes it FOR KEY SHARE first
    IF NOT EXISTS (SELECT 1 FROM booking.resources WHERE resources.id = p_resource) THEN
      RAISE EXCEPTION 'no such resource' USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'closures_resource_id_fkey';
    END IF;
    PERFORM booking.gate_resource(p_resource, true);
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
      FOR x IN SELECT b.id FROM booking.bookings b
                WHERE b.resource_id = p_resource AND b.status IN ('held', 'pending', 'confirmed')
                  AND (b.expires_at IS NULL OR b.expires_at > at) AND b.period && p LOOP
        PERFORM booking.set_status(p_resource, x.id, 'cancelled', ARRAY['held', 'pending', 'confirmed'], at);
      END LOOP;
    END IF;
    INSERT INTO booking.closures (resource_id, period, reason) VALUES (p_resource, p, p_reason)
    RETURNING closures.id INTO cid;
    RETURN QUERY SELECT 'created'::text, cid;
  EXCEPTION WHEN integrity_constraint_violation THEN
    GET STACKED DIAGNOSTICS e_state = RETURNED_SQLSTATE, e_msg = MESSAGE_TEXT, e_detail = PG_EXCEPTION_DETAIL,
                            e_hint = PG_EXCEPTION_HINT, e_cname = CONSTRAINT_NAME;
    PERFORM booking.citus_reraise(e_state, e_msg, e_detail, e_hint, e_cname);
  END;
END
$$;

-- remove_closure (0008's) is a router DELETE already (id and resource); restated for the record.
CREATE OR REPLACE FUNCTION booking.remove_closure(p_resource uuid, p_id uuid)
  RETURNS boolean
  LANGUAGE plpgsql SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
  AS $$
BEGIN
  IF NOT booking.caller_is_service() THEN
    RAISE EXCEPTION 'service role only' USING ERRCODE = 'insufficient_privilege';
  END IF;
  IF p_resource IS NULL THEN
    RETURN false;
  END IF;
  DELETE FROM booking.closures WHERE resource_id = p_resource AND id = p_id;
  RETURN FOUND;
END
$$;

-- The sweeper: candidates over every shard (no lock: FOR UPDATE must be a router query), then each
-- row retired by a router UPDATE that re-checks it, skipping a row another transaction holds.
CREATE OR REPLACE FUNCTION booking.expire_due(p_limit int)
  RETURNS int
  LANGUAGE plpgsql SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
  AS $$
DECLARE
  n int := 0;
  at timestamptz := booking.clock();
  x record;
  e_state text; e_msg text; e_detail text; e_hint text; e_cname text;
BEGIN
  IF NOT booking.caller_is_service() THEN
    RAISE EXCEPTION 'service role only' USING ERRCODE = 'insufficient_privilege';
  END IF;
  BEGIN
    FOR x IN SELECT b.resource_id, b.id FROM booking.bookings b
              WHERE b.status IN ('held', 'pending') AND b.expires_at <= at
              ORDER BY b.expires_at
              LIMIT least(greatest(p_limit, 1), 1000) LOOP
      PERFORM 1 FROM booking.bookings b WHERE b.resource_id = x.resource_id AND b.id = x.id FOR UPDATE SKIP LOCKED;
      CONTINUE WHEN NOT FOUND;
      IF booking.set_status(x.resource_id, x.id, 'expired', ARRAY['held', 'pending'], NULL, booking.clock()) THEN
        n := n + 1;
      END IF;
    END LOOP;
    RETURN n;
  EXCEPTION WHEN integrity_constraint_violation THEN
    GET STACKED DIAGNOSTICS e_state = RETURNED_SQLSTATE, e_msg = MESSAGE_TEXT, e_detail = PG_EXCEPTION_DETAIL,
                            e_hint = PG_EXCEPTION_HINT, e_cname = CONSTRAINT_NAME;
    PERFORM booking.citus_reraise(e_state, e_msg, e_detail, e_hint, e_cname);
  END;
END
$$;

-- Availability (0008's, whatever a later single-node migration made of it): the resource's busy
-- seats and closures by router queries on its shard, the caller's own live periods from user_busy
-- (a router query on the caller's shard) instead of a scan of every bookings shard, read once.
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
  mine_a tstzrange[];
  mine tstzmultirange := '{}';
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
  IF uid IS NOT NULL THEN
    SELECT array_agg(u.period) INTO mine_a FROM booking.user_busy u
     WHERE u.user_id = uid AND u.status IN ('held', 'pending', 'confirmed')
       AND (u.expires_at IS NULL OR u.expires_at > p_at)
       AND u.period && tstzrange(p_from, p_to + dur, '[)');
    IF mine_a IS NOT NULL THEN
      SELECT range_agg(x) INTO mine FROM unnest(mine_a) x;
    END IF;
  END IF;
  FOR c IN
    WITH cand AS (
      SELECT t AS s, t + dur AS e
        FROM generate_series(to_timestamp(ceil(extract(epoch FROM p_from) / (step * 60)) * step * 60),
                             p_to - interval '1 microsecond', make_interval(mins => step)) t
       WHERE t >= p_at + make_interval(mins => r.min_notice_minutes)
         AND t <= p_at + make_interval(days => r.max_advance_days)
    )
    SELECT cd.s, cd.e FROM cand cd
     WHERE booking.slot_problem(r, cd.s, cd.e, p_at, closed) IS NULL
       AND NOT (mine && tstzrange(cd.s, cd.e, '[)'))
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

-- The delivery claim: FOR UPDATE SKIP LOCKED over every shard is refused, so candidates are read
-- without a lock (brought to the coordinator, at most 8 per endpoint), then each is leased by a
-- compare-and-set router UPDATE (… WHERE resource_id = … AND id = … AND still pending AND not
-- leased): under READ COMMITTED a claimer that waited for another's row lock re-checks the row
-- and skips it when the other leased it. Result as 0007's.
CREATE OR REPLACE FUNCTION booking.webhook_claim(p_limit int, p_lease_seconds int, p_skip uuid[] DEFAULT '{}')
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
  lim int := least(greatest(p_limit, 1), 100);
  until timestamptz := at + make_interval(secs => least(greatest(p_lease_seconds, 15), 600));
  eps uuid[];
  c record;
  m record;
  e booking.webhook_endpoints;
BEGIN
  IF NOT booking.caller_is_service() THEN
    RAISE EXCEPTION 'service role only' USING ERRCODE = 'insufficient_privilege';
  END IF;
  SELECT array_agg(we.id) INTO eps FROM booking.webhook_endpoints we
   WHERE we.active AND NOT (we.id = ANY (coalesce(p_skip, '{}')));
  IF eps IS NULL THEN
    RETURN;
  END IF;
  FOR c IN
    WITH due AS MATERIALIZED (
      SELECT m.resource_id, m.id, m.endpoint_id, m.due_at, m.seq FROM booking.webhook_messages m
       WHERE m.endpoint_id = ANY (eps) AND m.state = 'pending' AND m.due_at <= at
         AND (m.leased_until IS NULL OR m.leased_until < at)
         AND (m.event = 'booking.reminder' OR NOT EXISTS (
               SELECT 1 FROM booking.webhook_messages p
                WHERE p.resource_id = m.resource_id AND p.subject_id = m.subject_id
                  AND p.endpoint_id = m.endpoint_id AND p.state = 'pending' AND p.seq < m.seq
                  AND p.event <> 'booking.reminder'))
       ORDER BY m.due_at, m.seq
       LIMIT 8 * 100
    ), ranked AS (
      SELECT d.*, row_number() OVER (PARTITION BY d.endpoint_id ORDER BY d.due_at, d.seq) AS rn FROM due d
    )
    SELECT x.resource_id, x.id FROM ranked x WHERE x.rn <= 8 ORDER BY x.due_at, x.seq LIMIT lim
  LOOP
    UPDATE booking.webhook_messages wm
       SET lease = l,
           leased_until = until,
           attempts = wm.attempts + 1,
           round_attempts = wm.round_attempts + 1
     WHERE wm.resource_id = c.resource_id AND wm.id = c.id AND wm.state = 'pending'
       AND (wm.leased_until IS NULL OR wm.leased_until < at)
    RETURNING wm.id, wm.endpoint_id, wm.event, wm.data, wm.created_at, wm.due_at, wm.attempts, wm.round_attempts
      INTO m;
    CONTINUE WHEN NOT FOUND;
    SELECT * INTO e FROM booking.webhook_endpoints we WHERE we.id = m.endpoint_id;
    id := m.id;
    lease := l;
    endpoint_id := m.endpoint_id;
    event := m.event;
    data := m.data;
    created_at := m.created_at;
    due_at := m.due_at;
    attempt := m.attempts;
    round_attempt := m.round_attempts;
    url := e.url;
    secret := e.secret;
    previous_secret := CASE WHEN e.previous_secret_until > at THEN e.previous_secret END;
    RETURN NEXT;
  END LOOP;
END
$$;

-- Settle (0007's): the attempt carries the message's resource; the message is found by id over
-- every shard (by its id index), then changed by a router UPDATE.
CREATE OR REPLACE FUNCTION booking.webhook_settle(p_id uuid, p_lease uuid, p_outcome text, p_status int, p_error text,
                                                  p_duration_ms int, p_retry_seconds double precision,
                                                  p_disable_after_days int)
  RETURNS void
  LANGUAGE plpgsql SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
  AS $$
DECLARE
  at timestamptz := booking.clock();
  next_due timestamptz;
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
    RETURN;
  END IF;
  INSERT INTO booking.webhook_attempts (resource_id, endpoint_id, message_id, event, attempt, status_code, error, duration_ms, at)
  VALUES (m.resource_id, m.endpoint_id, m.id, m.event, m.attempts, p_status, left(p_error, 500), greatest(p_duration_ms, 0), at);
  IF m.lease IS DISTINCT FROM p_lease OR m.state <> 'pending' THEN
    RETURN;
  END IF;
  IF p_outcome = 'delivered' THEN
    UPDATE booking.webhook_messages
       SET state = 'delivered', lease = NULL, leased_until = NULL, last_status = p_status,
           last_error = NULL, finished_at = at
     WHERE resource_id = m.resource_id AND id = p_id;
    UPDATE booking.webhook_endpoints SET failing_since = NULL
     WHERE id = m.endpoint_id AND failing_since IS NOT NULL;
  ELSIF p_outcome = 'gone' THEN
    UPDATE booking.webhook_messages
       SET state = 'failed', lease = NULL, leased_until = NULL, last_status = p_status,
           last_error = left(p_error, 500), finished_at = at
     WHERE resource_id = m.resource_id AND id = p_id;
    UPDATE booking.webhook_endpoints
       SET active = false, disabled_reason = 'the receiver answered 410 Gone', updated_at = at
     WHERE id = m.endpoint_id;
  ELSE
    -- (computed here: Citus refuses non-immutable expressions inside CASE in a distributed UPDATE)
    next_due := at + make_interval(secs => p_retry_seconds);
    UPDATE booking.webhook_messages
       SET state = CASE WHEN p_retry_seconds IS NULL THEN 'failed' ELSE 'pending' END,
           due_at = CASE WHEN next_due IS NULL THEN due_at ELSE next_due END,
           lease = NULL, leased_until = NULL, last_status = p_status, last_error = left(p_error, 500),
           finished_at = CASE WHEN p_retry_seconds IS NULL THEN at END
     WHERE resource_id = m.resource_id AND id = p_id;
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

-- Provision the caller (0006's): the values first (Citus refuses a non-immutable expression
-- inside COALESCE in a distributed write; users is a reference table).
CREATE OR REPLACE FUNCTION booking.ensure_user(uid uuid) RETURNS void
  LANGUAGE plpgsql
  SET search_path = pg_catalog, pg_temp
  AS $$
DECLARE
  ph text;
  iss text;
BEGIN
  IF uid IS NULL OR EXISTS (SELECT 1 FROM booking.users WHERE id = uid) THEN
    RETURN;
  END IF;
  ph := booking.claim_phone();
  iss := coalesce(auth.jwt() ->> 'iss', 'unknown');
  INSERT INTO booking.users (id, phone, issuer) VALUES (uid, ph, iss)
  ON CONFLICT DO NOTHING;
  IF NOT FOUND THEN
    INSERT INTO booking.users (id, phone, issuer) VALUES (uid, NULL, iss)
    ON CONFLICT (id) DO NOTHING;
  END IF;
END
$$;

-- Lowering capacity (0008's): the clock read once (a router query on the resource's shard).
CREATE OR REPLACE FUNCTION booking.seats_in_use_beyond(p_resource uuid, p_capacity int) RETURNS boolean
  LANGUAGE plpgsql SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
  AS $$
DECLARE
  at timestamptz;
BEGIN
  IF NOT booking.caller_is_service() THEN
    RAISE EXCEPTION 'only the service role changes resources' USING ERRCODE = 'insufficient_privilege';
  END IF;
  -- the resource's gate, as a closure does (the caller's own FOR UPDATE of the resources row
  -- locks that reference table's shard; writers take no lock there, so they finish first)
  PERFORM booking.gate_resource(p_resource, true);
  at := booking.clock();
  RETURN EXISTS (SELECT 1 FROM booking.bookings
                  WHERE resource_id = p_resource AND status IN ('held', 'pending', 'confirmed')
                    AND (expires_at IS NULL OR expires_at > at)
                    AND seat > p_capacity AND upper(period) > at);
END
$$;

-- Resend (0007's): the clock read once (a multi-shard UPDATE may not call a volatile function).
CREATE OR REPLACE FUNCTION booking.webhook_resend(p_endpoint uuid, p_id uuid)
  RETURNS boolean
  LANGUAGE plpgsql SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
  AS $$
DECLARE
  at timestamptz := booking.clock();
BEGIN
  IF NOT booking.caller_is_service() THEN
    RAISE EXCEPTION 'service role only' USING ERRCODE = 'insufficient_privilege';
  END IF;
  UPDATE booking.webhook_messages
     SET state = 'pending', due_at = at, round_attempts = 0, lease = NULL,
         leased_until = NULL, finished_at = NULL
   WHERE id = p_id AND endpoint_id = p_endpoint;
  RETURN FOUND;
END
$$;

-- Housekeeping (0007's): the cut-off computed once; the orphans (messages of a deleted endpoint)
-- found against the endpoints' ids (a reference table) read first.
CREATE OR REPLACE FUNCTION booking.webhook_prune(p_limit int)
  RETURNS int
  LANGUAGE plpgsql SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
  AS $$
DECLARE
  n int;
  m int;
  lim int := least(greatest(p_limit, 1), 10000);
  cutoff timestamptz := booking.clock() - interval '30 days';
  eps uuid[];
BEGIN
  IF NOT booking.caller_is_service() THEN
    RAISE EXCEPTION 'service role only' USING ERRCODE = 'insufficient_privilege';
  END IF;
  DELETE FROM booking.webhook_messages WHERE id IN (
    SELECT wm.id FROM booking.webhook_messages wm
     WHERE wm.state <> 'pending' AND wm.finished_at < cutoff LIMIT lim);
  GET DIAGNOSTICS n = ROW_COUNT;
  SELECT coalesce(array_agg(e.id), '{}') INTO eps FROM booking.webhook_endpoints e;
  DELETE FROM booking.webhook_messages WHERE id IN (
    SELECT wm.id FROM booking.webhook_messages wm WHERE NOT (wm.endpoint_id = ANY (eps)) LIMIT lim);
  GET DIAGNOSTICS m = ROW_COUNT;
  RETURN n + m;
END
$$;

-- ===================================================================================== grants
-- Every function of the schema: nobody by default, then what each request role needs (0009's
-- list, unchanged); the policy functions are called by the querying role.
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
GRANT EXECUTE ON FUNCTION booking.owns_resource(uuid) TO authenticated;
GRANT EXECUTE ON FUNCTION booking.can_see_booking(uuid, uuid) TO authenticated;

-- ===================================================================================== step 9
-- Claims reach the workers only as SET LOCAL statements, and only with this setting. The request
-- roles log in to the workers (Citus connects as the current user) with generated passwords the
-- coordinator keeps in pg_dist_authinfo (superuser-only; not copied to the workers). Operators
-- still add `reject` lines for them to the coordinator's pg_hba.conf and let them reach the
-- workers only from the coordinator's addresses: that cannot be done from SQL.
DO $$
DECLARE
  r text;
  pw text;
BEGIN
  EXECUTE format('ALTER DATABASE %I SET citus.propagate_set_commands = %L', current_database(), 'local');
  FOREACH r IN ARRAY ARRAY['anon', 'authenticated', 'service_role'] LOOP
    pw := replace(gen_random_uuid()::text, '-', '') || replace(gen_random_uuid()::text, '-', '');
    EXECUTE format('ALTER ROLE %I LOGIN PASSWORD %L', r, pw);
    DELETE FROM pg_dist_authinfo WHERE nodeid = 0 AND rolename = r;
    INSERT INTO pg_dist_authinfo (nodeid, rolename, authinfo) VALUES (0, r, 'password=' || pw);
  END LOOP;
END
$$;

-- ids never change (0010's guard without its query, safe on a reference table): a renamed user or
-- resource would leave its bookings and history behind and start empty
CREATE FUNCTION booking.ids_never_change() RETURNS trigger
  LANGUAGE plpgsql
  SET search_path = pg_catalog, pg_temp
  AS $$
BEGIN
  IF NEW.id IS DISTINCT FROM OLD.id THEN
    RAISE EXCEPTION 'an id never changes'
      USING ERRCODE = 'foreign_key_violation',
            CONSTRAINT = CASE WHEN TG_TABLE_NAME = 'users' THEN 'bookings_user_id_fkey' ELSE 'bookings_resource_id_fkey' END;
  END IF;
  RETURN NEW;
END
$$;
REVOKE EXECUTE ON FUNCTION booking.ids_never_change() FROM PUBLIC, anon, authenticated, service_role;
CREATE TRIGGER users_ids_never_change BEFORE UPDATE OF id ON booking.users
  FOR EACH ROW EXECUTE FUNCTION booking.ids_never_change();
CREATE TRIGGER resources_ids_never_change BEFORE UPDATE OF id ON booking.resources
  FOR EACH ROW EXECUTE FUNCTION booking.ids_never_change();

-- A write to a reference table locks its one shard on every node until commit, so a session that
-- writes one (a display name, a first sign-in) and then idles in its transaction would hold up
-- every other writer of it: such sessions are cut after 15 s, whichever door they came through
-- (the server's own connections already had this setting). The request roles log in only on the
-- workers (Citus connects as them): their statements there end after 5 s, as the server's do.
DO $$
BEGIN
  EXECUTE format('ALTER DATABASE %I SET idle_in_transaction_session_timeout = %L', current_database(), '15s');
  ALTER ROLE anon SET statement_timeout = '5s';
  ALTER ROLE authenticated SET statement_timeout = '5s';
  ALTER ROLE service_role SET statement_timeout = '5s';
END
$$;

-- ===================================================================================== record
CREATE TABLE booking.citus_schema (
  version    int PRIMARY KEY,
  applied_at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE booking.citus_schema ENABLE ROW LEVEL SECURITY;
ALTER TABLE booking.citus_schema FORCE ROW LEVEL SECURITY;
REVOKE ALL ON booking.citus_schema FROM PUBLIC, anon, authenticated, service_role;
INSERT INTO booking.citus_schema (version) VALUES (100);
