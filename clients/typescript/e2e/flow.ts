// End-to-end, against a real server and written against the contract
// (/work/shared/api-contract.md), through the typed client: signs in by phone,
// books, meets a 409, reschedules with If-Match, meets a 412, cancels and
// refreshes the session. Compiled under `tsc --strict` with no casts, no
// non-null assertions and no `any` (scripts/no-casts.mjs checks).
// Env: BOOKING_URL, BOOKING_SERVICE_TOKEN (a service-role token, used only to
// create the resource). The server runs with BOOKING_OTP_DELIVERY=echo.
import assert from "node:assert/strict";
import {
  createClient, idempotencyKey, ifMatch,
  type Booking, type BookingClient, type Slot, type TokenResponse,
} from "../src/index.js";

function env(name: string): string {
  const v = process.env[name];
  if (!v) throw new Error(`set ${name}`);
  return v;
}
const BASE = env("BOOKING_URL");
const SERVICE = env("BOOKING_SERVICE_TOKEN");
const anon = createClient({ baseUrl: BASE });
const admin = createClient({ baseUrl: BASE, token: () => SERVICE });

// What an openapi-fetch call returns, as far as failing loudly needs.
interface Answer { error?: unknown; response: Response }
function failed(what: string, r: Answer): Error {
  return new Error(`${what}: HTTP ${r.response.status} ${JSON.stringify(r.error)}`);
}
const randomPhone = (): string => `+1415555${String(Math.floor(Math.random() * 10000)).padStart(4, "0")}`;
const sameInstant = (a: string, b: string): boolean => Date.parse(a) === Date.parse(b);

interface Session { tokens: TokenResponse; client: BookingClient }

async function signIn(phone: string): Promise<Session> {
  const otp = await anon.POST("/v1/auth/otp", { body: { phone } });
  if (!otp.data) throw failed("POST /v1/auth/otp", otp);
  assert.equal(otp.response.status, 202);
  const code = otp.data.dev_code;
  if (typeof code !== "string") throw new Error("no dev_code: run the server with BOOKING_OTP_DELIVERY=echo");
  const verified = await anon.POST("/v1/auth/verify", { body: { phone, code } });
  if (!verified.data) throw failed("POST /v1/auth/verify", verified);
  assert.equal(verified.data.token_type, "bearer");
  const session: Session = {
    tokens: verified.data,
    // asks for the token at each call, so a refreshed session is used at once
    client: createClient({ baseUrl: BASE, token: () => session.tokens.access_token }),
  };
  return session;
}

let passed = 0;
async function step(name: string, body: () => Promise<void>): Promise<void> {
  const t0 = Date.now();
  await body();
  passed += 1;
  console.log(`ok ${passed} - ${name} (${Date.now() - t0} ms)`);
}

async function main(): Promise<void> {
  let roomId = "";
  let alice: Session | undefined;
  let bob: Session | undefined;
  let first: Slot | undefined;
  let second: Slot | undefined;
  let booking: Booking | undefined;

  await step("a service token creates a resource", async () => {
    const r = await admin.POST("/v1/admin/resources", {
      body: { name: `E2E room ${Math.random().toString(36).slice(2, 8)}`, timezone: "Europe/Berlin", slot_minutes: 30 },
    });
    if (!r.data) throw failed("POST /v1/admin/resources", r);
    assert.equal(r.response.status, 201);
    assert.equal(r.data.capacity, 1);
    roomId = r.data.id;
  });

  await step("two customers sign in by phone", async () => {
    alice = await signIn(randomPhone());
    bob = await signIn(randomPhone());
    const me = await alice.client.GET("/v1/me");
    if (!me.data) throw failed("GET /v1/me", me);
    assert.equal(me.data.id, alice.tokens.user.id);
  });
  if (!alice || !bob) throw new Error("no sessions");
  const a = alice;
  const b = bob;

  await step("availability lists free hours", async () => {
    const from = new Date(Date.now() + 3600_000).toISOString();
    const to = new Date(Date.now() + 3 * 86400_000).toISOString();
    const r = await a.client.GET("/v1/resources/{id}/availability", {
      params: { path: { id: roomId }, query: { from, to, duration_minutes: 60 } },
    });
    if (!r.data) throw failed("GET availability", r);
    assert.equal(r.data.timezone, "Europe/Berlin");
    first = r.data.slots[0];
    const f = first;
    if (!f) throw new Error("no free slot in the next days");
    assert.equal(Date.parse(f.end) - Date.parse(f.start), 3600_000);
    second = r.data.slots.find((s) => Date.parse(s.start) >= Date.parse(f.end) + 3600_000);
    if (!second) throw new Error("no second free slot");
  });
  if (!first || !second) throw new Error("no slots");
  const slot1 = first;
  const slot2 = second;

  await step("books a slot (201, ETag, idempotent replay)", async () => {
    const key = idempotencyKey();
    const body = { resource_id: roomId, start: slot1.start, end: slot1.end, note: "e2e" };
    const r = await a.client.POST("/v1/bookings", { body, params: { header: { "Idempotency-Key": key } } });
    if (!r.data) throw failed("POST /v1/bookings", r);
    assert.equal(r.response.status, 201);
    assert.equal(r.data.status, "confirmed");
    assert.equal(r.data.version, 1);
    assert.equal(r.data.note, "e2e");
    assert.equal(r.response.headers.get("etag"), ifMatch(r.data));
    assert.ok(r.response.headers.get("location")?.endsWith(r.data.id), "Location names the booking");
    booking = r.data;
    const again = await a.client.POST("/v1/bookings", { body, params: { header: { "Idempotency-Key": key } } });
    if (!again.data) throw failed("replayed POST /v1/bookings", again);
    assert.equal(again.data.id, r.data.id, "the same key and body replay the first answer");
  });
  if (!booking) throw new Error("no booking");
  const booked = booking;

  await step("another customer meets 409 slot_taken on the same slot", async () => {
    const r = await b.client.POST("/v1/bookings", {
      body: { resource_id: roomId, start: slot1.start, end: slot1.end },
      params: { header: { "Idempotency-Key": idempotencyKey() } },
    });
    assert.equal(r.response.status, 409);
    assert.equal(r.data, undefined);
    assert.equal(r.error?.code, "slot_taken");
    assert.equal(r.response.headers.get("content-type"), "application/problem+json");
  });

  let moved: Booking | undefined;
  await step("reschedules with If-Match", async () => {
    const r = await a.client.PATCH("/v1/bookings/{id}", {
      params: { path: { id: booked.id }, header: { "If-Match": ifMatch(booked) } },
      body: { start: slot2.start, end: slot2.end },
    });
    if (!r.data) throw failed("PATCH /v1/bookings/{id}", r);
    assert.equal(r.data.version, booked.version + 1);
    assert.ok(sameInstant(r.data.start, slot2.start));
    assert.equal(r.data.note, "e2e", "an absent note is kept");
    assert.equal(r.response.headers.get("etag"), ifMatch(r.data));
    moved = r.data;
  });
  if (!moved) throw new Error("not moved");
  const current = moved;

  await step("a stale If-Match meets 412 and changes nothing", async () => {
    const r = await a.client.PATCH("/v1/bookings/{id}", {
      params: { path: { id: booked.id }, header: { "If-Match": ifMatch(booked) } },
      body: { start: slot1.start, end: slot1.end },
    });
    assert.equal(r.response.status, 412);
    assert.equal(r.error?.code, "precondition_failed");
    const now = await a.client.GET("/v1/bookings/{id}", { params: { path: { id: booked.id } } });
    // the operation also answers text/calendar (Accept): JSON is the object
    if (!now.data || typeof now.data === "string") throw failed("GET /v1/bookings/{id}", now);
    assert.equal(now.data.version, current.version);
    assert.ok(sameInstant(now.data.start, slot2.start));
  });

  await step("cancels (and cancelling again changes nothing)", async () => {
    const r = await a.client.DELETE("/v1/bookings/{id}", {
      params: { path: { id: booked.id }, header: { "If-Match": ifMatch(current) } },
    });
    if (!r.data) throw failed("DELETE /v1/bookings/{id}", r);
    assert.equal(r.data.status, "cancelled");
    assert.ok(r.data.cancelled_at, "cancelled_at is set");
    const again = await a.client.DELETE("/v1/bookings/{id}", { params: { path: { id: booked.id } } });
    if (!again.data) throw failed("repeated DELETE", again);
    assert.equal(again.data.version, r.data.version);
    const h = await a.client.GET("/v1/bookings/{id}/history", { params: { path: { id: booked.id } } });
    if (!h.data) throw failed("GET history", h);
    assert.ok(h.data.items.length >= 3, "created, rescheduled, cancelled");
    assert.ok(h.data.items.every((e) => e.actor_id === null || e.actor_id === a.tokens.user.id));
    // the freed slot can be booked by the other customer now
    const taken = await b.client.POST("/v1/bookings", { body: { resource_id: roomId, start: slot2.start, end: slot2.end } });
    if (!taken.data) throw failed("booking the freed slot", taken);
  });

  await step("refreshes the session (the refresh token rotates)", async () => {
    const old = a.tokens.refresh_token;
    const r = await anon.POST("/v1/auth/refresh", { body: { refresh_token: old } });
    if (!r.data) throw failed("POST /v1/auth/refresh", r);
    assert.notEqual(r.data.refresh_token, old);
    assert.equal(r.data.user.id, a.tokens.user.id);
    a.tokens = r.data;
    const me = await a.client.GET("/v1/me");
    if (!me.data) throw failed("GET /v1/me with the new token", me);
    assert.equal(me.data.id, a.tokens.user.id);
    // a double submit within the reuse interval gets the current successor
    const twice = await anon.POST("/v1/auth/refresh", { body: { refresh_token: old } });
    if (!twice.data) throw failed("repeated POST /v1/auth/refresh", twice);
    assert.equal(twice.data.refresh_token, r.data.refresh_token);
  });

  await step("signs out: the refresh token no longer works", async () => {
    const out = await a.client.POST("/v1/auth/logout");
    assert.equal(out.response.status, 204);
    const r = await anon.POST("/v1/auth/refresh", { body: { refresh_token: a.tokens.refresh_token } });
    assert.equal(r.response.status, 401);
    assert.equal(r.error?.code, "unauthorized");
  });
}

main().then(
  () => console.log(`e2e: ${passed} passed, 0 failed`),
  (e: unknown) => {
    console.error(e instanceof Error ? (e.stack ?? e.message) : e);
    console.log(`e2e: ${passed} passed, 1 failed`);
    process.exitCode = 1;
  },
);
