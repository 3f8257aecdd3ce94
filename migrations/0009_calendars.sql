-- 0009_calendars: secret calendar feed URLs (RFC 5545), for a user's own
-- bookings and, for a resource's owner, every booking on it. A feed URL is
-- its own credential (calendar apps cannot send an Authorization header), so
-- only a hash of its token is stored, a feed can be revoked (or replaced by
-- asking for a new URL), and reading one needs the token itself.

CREATE TABLE booking.calendar_feeds (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  token_hash  bytea NOT NULL CONSTRAINT calendar_feeds_token_hash_key UNIQUE
    CONSTRAINT calendar_feeds_token_hash_length CHECK (octet_length(token_hash) = 32),
  user_id     uuid NOT NULL REFERENCES booking.users (id),
  -- NULL: the user's own bookings; set: every booking on this resource
  resource_id uuid REFERENCES booking.resources (id),
  created_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
-- one feed per user, and one per (owner, resource)
CREATE UNIQUE INDEX calendar_feeds_one_per_user ON booking.calendar_feeds (user_id) WHERE resource_id IS NULL;
CREATE UNIQUE INDEX calendar_feeds_one_per_resource ON booking.calendar_feeds (user_id, resource_id)
  WHERE resource_id IS NOT NULL;

ALTER TABLE booking.calendar_feeds ENABLE ROW LEVEL SECURITY;
ALTER TABLE booking.calendar_feeds FORCE ROW LEVEL SECURITY;
REVOKE ALL ON booking.calendar_feeds FROM PUBLIC, anon, authenticated, service_role;
CREATE POLICY calendar_feeds_definer ON booking.calendar_feeds FOR ALL TO CURRENT_USER USING (true) WITH CHECK (true);

-- A new feed for the caller (p_resource NULL) or for a resource the caller
-- owns, replacing the one before (its URL stops working). False when the
-- caller may not have it.
CREATE FUNCTION booking.create_calendar_feed(p_resource uuid, p_token_hash bytea)
  RETURNS boolean
  LANGUAGE plpgsql SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
  AS $$
DECLARE
  uid uuid := auth.uid();
BEGIN
  IF uid IS NULL OR booking.caller_is_service() THEN
    RETURN false;
  END IF;
  IF p_resource IS NOT NULL AND NOT EXISTS (
       SELECT 1 FROM booking.resources WHERE id = p_resource AND owner_id = uid) THEN
    RETURN false;
  END IF;
  PERFORM booking.ensure_user(uid);
  DELETE FROM booking.calendar_feeds WHERE user_id = uid AND resource_id IS NOT DISTINCT FROM p_resource;
  INSERT INTO booking.calendar_feeds (token_hash, user_id, resource_id) VALUES (p_token_hash, uid, p_resource);
  RETURN true;
END
$$;

-- Revoke the caller's feed (or their feed of a resource). False when none.
CREATE FUNCTION booking.revoke_calendar_feed(p_resource uuid)
  RETURNS boolean
  LANGUAGE plpgsql SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
  AS $$
DECLARE
  uid uuid := auth.uid();
BEGIN
  DELETE FROM booking.calendar_feeds WHERE uid IS NOT NULL AND user_id = uid
     AND resource_id IS NOT DISTINCT FROM p_resource;
  RETURN FOUND;
END
$$;

-- What a feed shows, found by the hash of its token: the user's bookings (or,
-- for a resource feed whose owner still owns the resource, every booking on
-- it) from 30 days ago on, holds excluded, at most 2000. No rows: no such
-- feed. Callable by anyone: knowing the token is the credential.
CREATE FUNCTION booking.calendar_feed(p_token_hash bytea)
  RETURNS TABLE (id uuid, resource_name text, starts_at timestamptz, ends_at timestamptz, status text,
                 version int, updated_at timestamptz, created_at timestamptz)
  LANGUAGE plpgsql STABLE SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
  AS $$
#variable_conflict use_column
DECLARE
  f booking.calendar_feeds;
  since timestamptz := booking.clock() - interval '30 days';
BEGIN
  SELECT * INTO f FROM booking.calendar_feeds WHERE token_hash = p_token_hash;
  IF NOT FOUND THEN
    RETURN;
  END IF;
  RETURN QUERY
  SELECT b.id, r.name, lower(b.period), upper(b.period), b.status, b.version, b.updated_at, b.created_at
    FROM booking.bookings b JOIN booking.resources r ON r.id = b.resource_id
   WHERE NOT b.is_hold AND upper(b.period) > since
     AND CASE WHEN f.resource_id IS NULL THEN b.user_id = f.user_id
              ELSE b.resource_id = f.resource_id AND r.owner_id = f.user_id END
   ORDER BY lower(b.period), b.id
   LIMIT 2000;
END
$$;

-- Whether a feed exists for this hash (so an empty calendar is told apart
-- from a revoked URL).
CREATE FUNCTION booking.calendar_feed_exists(p_token_hash bytea)
  RETURNS boolean
  LANGUAGE sql STABLE SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
  AS $$ SELECT EXISTS (SELECT 1 FROM booking.calendar_feeds WHERE token_hash = p_token_hash) $$;

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
