-- 0001_core: roles, the `booking` schema, users/resources/bookings/events,
-- the invariants that make double bookings impossible, and Row Level Security.
--
-- Written to apply to three kinds of database:
--   * the private cluster `booking` runs for itself (we are superuser there);
--   * a plain PostgreSQL >= 14 named by DATABASE_URL;
--   * a Supabase project, which already has the roles anon/authenticated/
--     service_role and an `auth` schema with auth.uid()/auth.jwt().
-- So every role, schema and auth function is created only where absent:
-- roles belong to the whole cluster and are shared by every database in it.

-- ---------------------------------------------------------------------------
-- Roles (Supabase's names and meaning). NOLOGIN: nobody connects as them; the
-- server's login role switches to one of them inside each request transaction.
-- ---------------------------------------------------------------------------
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'anon') THEN
    CREATE ROLE anon NOLOGIN NOINHERIT;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'authenticated') THEN
    CREATE ROLE authenticated NOLOGIN NOINHERIT;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'service_role') THEN
    -- Administration only (admin routes, `booking token --service`): it
    -- bypasses RLS by design, exactly like Supabase's service key.
    CREATE ROLE service_role NOLOGIN NOINHERIT BYPASSRLS;
  END IF;
END
$$;

-- btree_gist lets one GiST index combine `resource_id WITH =` and
-- `period WITH &&`. On Supabase it may already live in the `extensions` schema;
-- default operator classes are found by type, not by search_path, so either works.
CREATE EXTENSION IF NOT EXISTS btree_gist;

CREATE SCHEMA IF NOT EXISTS booking;
CREATE SCHEMA IF NOT EXISTS auth;

-- ---------------------------------------------------------------------------
-- auth.uid() / auth.jwt(): the claims of the current request, as PostgREST sets
-- them with set_config('request.jwt.claims', ..., true). On a pooled connection
-- a claim that was set locally in an earlier transaction reads back as '' (not
-- NULL) afterwards, hence nullif before the cast: a claim-less request must get
-- NULL, not an error. Created only where absent (Supabase ships its own).
-- ---------------------------------------------------------------------------
DO $$
BEGIN
  IF to_regprocedure('auth.uid()') IS NULL THEN
    CREATE FUNCTION auth.uid() RETURNS uuid
      LANGUAGE sql STABLE
      AS $f$
        SELECT coalesce(
          nullif(current_setting('request.jwt.claim.sub', true), ''),
          nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub'
        )::uuid
      $f$;
  END IF;
  IF to_regprocedure('auth.jwt()') IS NULL THEN
    CREATE FUNCTION auth.jwt() RETURNS jsonb
      LANGUAGE sql STABLE
      AS $f$
        SELECT coalesce(
          nullif(current_setting('request.jwt.claim', true), ''),
          nullif(current_setting('request.jwt.claims', true), '')
        )::jsonb
      $f$;
  END IF;
END
$$;

GRANT USAGE ON SCHEMA auth TO anon, authenticated, service_role;
GRANT USAGE ON SCHEMA booking TO anon, authenticated, service_role;

-- ---------------------------------------------------------------------------
-- Users, found by phone (E.164). The unique key makes get-or-create race-safe:
-- INSERT ... ON CONFLICT (phone) DO NOTHING, then read.
-- ---------------------------------------------------------------------------
CREATE TABLE booking.users (
  id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  phone        text NOT NULL CONSTRAINT users_phone_key UNIQUE
               CONSTRAINT users_phone_e164 CHECK (phone ~ '^\+[1-9][0-9]{1,14}$'),
  display_name text CONSTRAINT users_display_name_length CHECK (char_length(display_name) BETWEEN 1 AND 100),
  created_at   timestamptz NOT NULL DEFAULT now(),
  updated_at   timestamptz NOT NULL DEFAULT now()
);

-- ---------------------------------------------------------------------------
-- Resources: what is booked (a room, a person, a table). The rules live here
-- and are enforced by booking.slot_problem() on every create and reschedule.
-- ---------------------------------------------------------------------------
CREATE TABLE booking.resources (
  id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name                 text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
  timezone             text NOT NULL,
  capacity             int  NOT NULL DEFAULT 1 CHECK (capacity BETWEEN 1 AND 1000),
  slot_minutes         int  NOT NULL DEFAULT 15 CHECK (slot_minutes BETWEEN 1 AND 1440 AND 1440 % slot_minutes = 0),
  min_duration_minutes int  NOT NULL CHECK (min_duration_minutes >= 1),
  max_duration_minutes int  NOT NULL DEFAULT 1440 CHECK (max_duration_minutes >= min_duration_minutes),
  buffer_minutes       int  NOT NULL DEFAULT 0 CHECK (buffer_minutes BETWEEN 0 AND 1440),
  min_notice_minutes   int  NOT NULL DEFAULT 0 CHECK (min_notice_minutes >= 0),
  max_advance_days     int  NOT NULL DEFAULT 365 CHECK (max_advance_days BETWEEN 1 AND 3650),
  opening_hours        jsonb,
  owner_id             uuid REFERENCES booking.users (id),
  active               boolean NOT NULL DEFAULT true,
  created_at           timestamptz NOT NULL DEFAULT now(),
  updated_at           timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT resources_timezone_valid CHECK (now() AT TIME ZONE timezone IS NOT NULL)
);
CREATE INDEX resources_owner_idx ON booking.resources (owner_id) WHERE owner_id IS NOT NULL;

-- ---------------------------------------------------------------------------
-- Bookings. `period` is half-open [start, end): adjacent bookings never
-- conflict. `blocked` is the period widened by the resource's buffer on the
-- right ([start, end + buffer)); widening one side is enough to keep a gap of
-- `buffer` on both sides of every booking. `seat` numbers the capacity:
-- a resource with capacity N accepts N overlapping bookings, one per seat.
-- ---------------------------------------------------------------------------
CREATE TABLE booking.bookings (
  id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  resource_id  uuid NOT NULL REFERENCES booking.resources (id),
  user_id      uuid NOT NULL REFERENCES booking.users (id),
  period       tstzrange NOT NULL,
  blocked      tstzrange NOT NULL,
  seat         int  NOT NULL DEFAULT 1 CHECK (seat >= 1),
  status       text NOT NULL DEFAULT 'confirmed' CHECK (status IN ('confirmed', 'cancelled')),
  note         text CHECK (char_length(note) <= 1000),
  version      int  NOT NULL DEFAULT 1,
  created_at   timestamptz NOT NULL DEFAULT now(),
  updated_at   timestamptz NOT NULL DEFAULT now(),
  cancelled_at timestamptz,
  CONSTRAINT bookings_period_bounded CHECK (
    NOT isempty(period) AND NOT lower_inf(period) AND NOT upper_inf(period)
    AND lower_inc(period) AND NOT upper_inc(period)),
  CONSTRAINT bookings_cancelled_at CHECK ((status = 'cancelled') = (cancelled_at IS NOT NULL)),
  -- THE invariant: no two confirmed bookings on one seat of one resource
  -- overlap (buffers included), whatever the concurrency, however many server
  -- processes. A cancelled booking drops out of the constraint and frees its time.
  CONSTRAINT bookings_no_overlap
    EXCLUDE USING gist (resource_id WITH =, seat WITH =, blocked WITH &&)
    WHERE (status = 'confirmed'),
  -- The original script's unique(user, date, time), done right: no user holds
  -- two overlapping confirmed bookings, on any resources.
  CONSTRAINT bookings_user_no_overlap
    EXCLUDE USING gist (user_id WITH =, period WITH &&)
    WHERE (status = 'confirmed')
);
-- Listing one user's bookings through the GiST index touched ~3,100 pages;
-- this btree touches a few dozen. Also serves the RLS filter on user_id.
CREATE INDEX bookings_user_start_idx ON booking.bookings (user_id, lower(period), id);
-- Owners (staff) list every booking of their resources; admins list by resource.
CREATE INDEX bookings_resource_start_idx ON booking.bookings (resource_id, lower(period), id);

-- ---------------------------------------------------------------------------
-- Append-only history: who did what, when, from which period to which.
-- ---------------------------------------------------------------------------
CREATE TABLE booking.booking_events (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  booking_id  uuid NOT NULL REFERENCES booking.bookings (id),
  at          timestamptz NOT NULL DEFAULT clock_timestamp(),
  action      text NOT NULL CHECK (action IN ('created', 'rescheduled', 'updated', 'cancelled')),
  actor_id    uuid,
  old_period  tstzrange,
  new_period  tstzrange NOT NULL
);
CREATE INDEX booking_events_booking_idx ON booking.booking_events (booking_id, id);

-- ---------------------------------------------------------------------------
-- Schema version, readable by every request role (for /readyz).
-- ---------------------------------------------------------------------------
CREATE FUNCTION booking.schema_version() RETURNS int
  LANGUAGE sql STABLE SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
  AS $$ SELECT coalesce(max(version), 0) FROM booking.schema_migrations $$;
REVOKE EXECUTE ON FUNCTION booking.schema_version() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION booking.schema_version() TO anon, authenticated, service_role;
