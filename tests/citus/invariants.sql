-- tests/citus/invariants.sql: what must hold whatever ran before (check.sql, the race in
-- tests/citus/run): every booking has exactly one user_busy row with the same user, resource,
-- period, status and expiry, and the reverse; no two live rows overlap for one user (across
-- shards) or on one seat of one resource. Both tables are brought to the coordinator (they are in
-- different co-location groups) and compared there.
\set ON_ERROR_STOP 1
\pset footer off
\pset tuples_only on
\echo '== the end: every booking has exactly one user_busy row, and the reverse'
WITH b AS MATERIALIZED (SELECT id, user_id, resource_id, period, status, expires_at FROM booking.bookings),
     u AS MATERIALIZED (SELECT booking_id, user_id, resource_id, period, status, expires_at FROM booking.user_busy)
SELECT citus_check.ok(count(*) FILTER (WHERE b.id IS NULL OR u.booking_id IS NULL
                                      OR (b.user_id, b.resource_id, b.period, b.status, b.expires_at)
                                         IS DISTINCT FROM (u.user_id, u.resource_id, u.period, u.status, u.expires_at)) = 0,
                  format('%s bookings, %s user_busy rows, one to one with equal user, resource, period, status, expiry',
                         count(b.id), count(u.booking_id)))
  FROM b FULL JOIN u ON u.booking_id = b.id;
WITH b AS MATERIALIZED (SELECT id, user_id, resource_id, seat, period, blocked FROM booking.bookings
                         WHERE status IN ('held', 'pending', 'confirmed'))
SELECT citus_check.ok(count(*) FILTER (WHERE x.user_id = y.user_id AND x.period && y.period) = 0
                  AND count(*) FILTER (WHERE x.resource_id = y.resource_id AND x.seat = y.seat AND x.blocked && y.blocked) = 0,
                  'no two live rows overlap for one user (across shards) or on one seat')
  FROM b x JOIN b y ON x.id < y.id;
