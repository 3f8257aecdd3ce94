-- 0003_rls: Row Level Security is the authority on who sees and changes what.
-- Every request runs as role `authenticated` (or `service_role` for
-- administration) with its JWT claims set locally in its transaction; the
-- policies below are all that stands between one user and another's rows, so
-- a bug in a handler cannot leak or touch another user's booking.
-- FORCE: even the table owner is subject to the policies (superusers and
-- BYPASSRLS roles are not, which is why the server never serves through one).
-- Policies call (select auth.uid()) so it is evaluated once per statement, not
-- once per row; the columns they filter on are indexed (see 0001).

ALTER TABLE booking.users ENABLE ROW LEVEL SECURITY;
ALTER TABLE booking.users FORCE ROW LEVEL SECURITY;
ALTER TABLE booking.resources ENABLE ROW LEVEL SECURITY;
ALTER TABLE booking.resources FORCE ROW LEVEL SECURITY;
ALTER TABLE booking.bookings ENABLE ROW LEVEL SECURITY;
ALTER TABLE booking.bookings FORCE ROW LEVEL SECURITY;
ALTER TABLE booking.booking_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE booking.booking_events FORCE ROW LEVEL SECURITY;

REVOKE ALL ON ALL TABLES IN SCHEMA booking FROM PUBLIC, anon, authenticated;

-- users: a user sees and renames only themself. Users are created by the
-- sign-in flow and admin routes, which run as service_role.
GRANT SELECT ON booking.users TO authenticated;
GRANT UPDATE (display_name, updated_at) ON booking.users TO authenticated;
CREATE POLICY users_select_self ON booking.users FOR SELECT TO authenticated
  USING (id = (SELECT auth.uid()));
CREATE POLICY users_update_self ON booking.users FOR UPDATE TO authenticated
  USING (id = (SELECT auth.uid())) WITH CHECK (id = (SELECT auth.uid()));

-- resources: everyone signed in sees the active ones; staff also see their own
-- inactive ones. Only service_role writes.
GRANT SELECT ON booking.resources TO authenticated;
CREATE POLICY resources_select ON booking.resources FOR SELECT TO authenticated
  USING (active OR owner_id = (SELECT auth.uid()));

-- bookings: a customer sees, creates and changes only their own; staff (the
-- resource's owner_id) see every booking on their resources and may cancel
-- them, but WITH CHECK only lets a staff update through when it cancels, and
-- the bookings_before_write trigger forbids moving a booking while cancelling.
-- Nobody deletes: cancelling keeps the history.
GRANT SELECT, INSERT, UPDATE ON booking.bookings TO authenticated;
CREATE POLICY bookings_select_own ON booking.bookings FOR SELECT TO authenticated
  USING (user_id = (SELECT auth.uid()));
CREATE POLICY bookings_select_staff ON booking.bookings FOR SELECT TO authenticated
  USING (resource_id IN (SELECT r.id FROM booking.resources r WHERE r.owner_id = (SELECT auth.uid())));
CREATE POLICY bookings_insert_own ON booking.bookings FOR INSERT TO authenticated
  WITH CHECK (user_id = (SELECT auth.uid()));
CREATE POLICY bookings_update_own ON booking.bookings FOR UPDATE TO authenticated
  USING (user_id = (SELECT auth.uid()))
  WITH CHECK (user_id = (SELECT auth.uid()));
CREATE POLICY bookings_cancel_staff ON booking.bookings FOR UPDATE TO authenticated
  USING (resource_id IN (SELECT r.id FROM booking.resources r WHERE r.owner_id = (SELECT auth.uid())))
  WITH CHECK (status = 'cancelled'
              AND resource_id IN (SELECT r.id FROM booking.resources r WHERE r.owner_id = (SELECT auth.uid())));

-- booking_events: visible exactly when the booking is (the subquery is itself
-- filtered by the bookings policies); written only by the bookings_after_write
-- trigger, which runs as the caller and records the caller as actor.
-- Append-only: no UPDATE or DELETE grant exists for any request role.
GRANT SELECT, INSERT ON booking.booking_events TO authenticated;
CREATE POLICY events_select ON booking.booking_events FOR SELECT TO authenticated
  USING (booking_id IN (SELECT b.id FROM booking.bookings b));
CREATE POLICY events_insert ON booking.booking_events FOR INSERT TO authenticated
  WITH CHECK (actor_id = (SELECT auth.uid()));

-- The migration owner reads bookings and resources for the SECURITY DEFINER
-- availability function (on a plain cluster the owner is a superuser and
-- bypasses RLS anyway; on Supabase `postgres` may not).
CREATE POLICY bookings_definer_read ON booking.bookings FOR SELECT TO CURRENT_USER USING (true);
CREATE POLICY resources_definer_read ON booking.resources FOR SELECT TO CURRENT_USER USING (true);

-- service_role administers everything (it has BYPASSRLS, like Supabase's).
GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA booking TO service_role;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA booking TO authenticated, service_role;
