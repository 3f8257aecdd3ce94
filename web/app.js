// booking: the web page. One ES module, no build step, no dependencies.
//
// Where the tokens live, and why.
// - The access token (a short-lived JWT) is kept in a module variable only:
//   never in storage, a cookie, the URL or the DOM. It dies with the tab.
// - The refresh token is kept in localStorage ("booking.refresh") so that a
//   reload, or a new tab, stays signed in. No browser storage is safe from a
//   script running on this origin; only an HttpOnly cookie would be, and the
//   API takes the refresh token in a JSON body. So the defence is that no
//   foreign script runs here: the server's CSP (script-src 'self', no inline
//   script, connect-src 'self'), no third-party code, the DOM built with
//   textContent only (never innerHTML), no token ever in a URL.
// - localStorage rather than sessionStorage: sessionStorage is copied when a
//   tab is duplicated, leaving two tabs with the same rotating token; the one
//   that uses it later than BOOKING_REFRESH_REUSE_SECONDS after the other
//   revokes the whole session (reuse detection). One shared slot, refreshes
//   serialised across tabs with the Web Locks API, means every tab uses the
//   newest token, and signing out in one tab signs out all (storage event).
//   The price: the session survives closing the browser, until the refresh
//   token expires or the user signs out, which revokes it on the server.
// - Refresh tokens rotate, so a stolen one is good for one use and its reuse
//   after the grace period revokes the session.

const RT_KEY = 'booking.refresh';
// Booking goes hold -> confirm (contract, second wave). While a server has no
// holds yet, POST /v1/holds is a missing route and book() posts the booking
// directly. Once every server has holds: set this to false.
const HOLD_FALLBACK = false;
const VIEWER_TZ = Intl.DateTimeFormat().resolvedOptions().timeZone;
const DAY = 86400000;

const $ = (id) => document.getElementById(id);
let access = null;        // the access token: memory only
let accessUntil = 0;      // ms epoch, when to stop trusting it
let refreshTimer = 0;
let refreshing = null;    // one refresh at a time in this tab
let me = null;            // the signed-in user
let phoneSent = '';
const resources = new Map();
const S = {               // what the Book view shows
  resource: null, duration: 0, week: null, day: '', slots: new Map(), seq: 0,
  moving: null,           // the booking being rescheduled
};
const T = { resource: null, mode: 'week', start: null, seq: 0 }; // the Staff view
let mineCursor = null;

// ---- DOM helpers: every text goes in through textContent/append(string)
function el(tag, attrs, ...kids) {
  const n = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k === 'class') n.className = v;
    else if (k.startsWith('on')) n.addEventListener(k.slice(2), v);
    else n.setAttribute(k, v === true ? '' : v);
  }
  for (const c of kids.flat()) if (c != null && c !== false) n.append(c);
  return n;
}
const show = (n, on = true) => { n.hidden = !on; };
function say(msg) { $('status').textContent = ''; $('status').textContent = msg; }
function alarm(msg) { $('alert').textContent = msg || ''; if (msg) say(''); }

// ---- time zones
const fmts = new Map();
function fmt(tz, o, loc) {
  const k = (loc || '') + tz + JSON.stringify(o);
  let f = fmts.get(k);
  if (!f) fmts.set(k, (f = new Intl.DateTimeFormat(loc, { timeZone: tz, ...o })));
  return f;
}
const pad = (n) => String(n).padStart(2, '0');
function partsIn(t, tz) {
  const o = {};
  const f = fmt(tz, { hourCycle: 'h23', year: 'numeric', month: 'numeric', day: 'numeric', hour: 'numeric', minute: 'numeric', weekday: 'short' }, 'en-US');
  for (const p of f.formatToParts(t)) o[p.type] = p.value;
  return { y: +o.year, m: +o.month, d: +o.day, h: +o.hour % 24, mi: +o.minute,
    wd: ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'].indexOf(o.weekday) };
}
const dateKey = (p) => `${p.y}-${pad(p.m)}-${pad(p.d)}`;
const keyIn = (t, tz) => dateKey(partsIn(t, tz));
function addDays(p, n) {
  const t = new Date(Date.UTC(p.y, p.m - 1, p.d + n));
  return { y: t.getUTCFullYear(), m: t.getUTCMonth() + 1, d: t.getUTCDate() };
}
// The instant of local midnight of date p in zone tz.
function midnight(p, tz) {
  const want = Date.UTC(p.y, p.m - 1, p.d);
  let t = want;
  for (let i = 0; i < 3; i++) {
    const q = partsIn(t, tz);
    const diff = Date.UTC(q.y, q.m - 1, q.d, q.h, q.mi) - want;
    if (!diff) break;
    t -= diff;
  }
  return t;
}
function today(tz) { return partsIn(Date.now(), tz); }
// a calendar date's weekday does not depend on the zone
const mondayOf = (p) => addDays(p, -((new Date(Date.UTC(p.y, p.m - 1, p.d)).getUTCDay() + 6) % 7));
const iso = (t) => new Date(t).toISOString();
const hm = (t, tz) => fmt(tz, { hour: '2-digit', minute: '2-digit' }).format(t);
const span = (a, b, tz) => fmt(tz, { weekday: 'short', day: 'numeric', month: 'short', hour: '2-digit', minute: '2-digit' })
  .formatRange(new Date(a), new Date(b));
const tzOf = (rid) => resources.get(rid)?.timezone || VIEWER_TZ;
function whenNodes(b, tz) {
  const out = [el('span', { class: 'when' }, span(b.start, b.end, tz), ' ', el('span', { class: 'tz' }, tz))];
  if (tz !== VIEWER_TZ) out.push(el('span', { class: 'alt' }, 'Your time: ', span(b.start, b.end, VIEWER_TZ)));
  return out;
}
function minutes(n) {
  const h = Math.floor(n / 60), m = n % 60;
  return [h && `${h} h`, m && `${m} min`].filter(Boolean).join(' ');
}

// ---- the API
class ApiError extends Error {
  constructor(status, problem, retryAfter) {
    super(problem?.detail || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;            // the problem+json body, when it was one
    this.code = problem?.code || (status ? `http_${status}` : 'network');
    this.retryAfter = retryAfter;
  }
}

async function api(method, path, { body, headers = {}, auth = true, again = true, tries = 0 } = {}) {
  const h = { accept: 'application/json', ...headers };
  if (body !== undefined) h['content-type'] = 'application/json';
  if (auth) {
    const t = await accessToken();
    if (!t) throw new ApiError(401, { code: 'unauthorized' });
    h.authorization = `Bearer ${t}`;
  }
  let res;
  try {
    res = await fetch(path, { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'omit', cache: 'no-store', redirect: 'error' });
  } catch {
    throw new ApiError(0, null);
  }
  if (res.status === 401 && auth && again) {
    access = null;
    if (await refresh()) return api(method, path, { body, headers, auth, again: false, tries });
  }
  // a GET changes nothing: on "busy, retry in a second" just do that, twice at most
  const wait = Number(res.headers.get('retry-after'));
  if ((res.status === 429 || res.status === 503) && method === 'GET' && tries < 2 && wait >= 0 && wait <= 5) {
    await new Promise((ok) => setTimeout(ok, wait * 1000 + 100 + Math.random() * 400));
    return api(method, path, { body, headers, auth, again, tries: tries + 1 });
  }
  const type = res.headers.get('content-type') || '';
  const data = res.status === 204 || !type.includes('json') ? null : await res.json().catch(() => null);
  if (!res.ok) throw new ApiError(res.status, data, res.headers.get('retry-after'));
  return { data, etag: res.headers.get('etag') };
}
const idem = () => ({ 'idempotency-key': crypto.randomUUID() });
// A route this server does not have yet (holds, approval, calendar feeds):
// the router's fallback 404, or 405 for a path that exists with other methods.
const missingRoute = (e) => e.status === 405 || (e.status === 404 && (!e.problem || e.problem.code === 'not_found'));

// ---- the session
async function accessToken() {
  if (access && Date.now() < accessUntil) return access;
  return (await refresh()) ? access : null;
}

function setSession(t) {
  access = t.access_token;
  const life = Math.max(10, Number(t.expires_in) || 60) * 1000;
  accessUntil = Date.now() + life - Math.min(30000, life / 10);
  localStorage.setItem(RT_KEY, t.refresh_token);
  if (t.user) me = t.user;
  clearTimeout(refreshTimer);
  // refresh shortly before the access token expires (also done lazily on use)
  refreshTimer = setTimeout(refresh, Math.max(5000, life - Math.min(60000, life / 5)));
}

function refresh() {
  refreshing ??= (async () => {
    const run = async () => {
      const rt = localStorage.getItem(RT_KEY);
      if (!rt) return false;
      let res;
      try {
        res = await fetch('/v1/auth/refresh', { method: 'POST', credentials: 'omit', cache: 'no-store',
          headers: { 'content-type': 'application/json', accept: 'application/json' },
          body: JSON.stringify({ refresh_token: rt }) });
      } catch {
        return false;
      }
      if (res.ok) { setSession(await res.json()); return true; }
      if (res.status === 401 || res.status === 400 || res.status === 422) {
        // revoked, expired or reused: this session is over
        if (localStorage.getItem(RT_KEY) === rt) localStorage.removeItem(RT_KEY);
        endSession('Your session has ended. Please sign in again.');
      }
      return false; // 429/503: keep the token, a later call tries again
    };
    // serialise with other tabs: each reads the newest token under the lock
    return navigator.locks ? navigator.locks.request(RT_KEY, run) : run();
  })().finally(() => { refreshing = null; });
  return refreshing;
}

function endSession(msg) {
  const was = !!me;
  access = null; accessUntil = 0; me = null;
  clearTimeout(refreshTimer);
  localStorage.removeItem(RT_KEY);
  if ($('dlg').open) $('dlg').close();
  showSignIn();
  if (was && msg) alarm(msg);
}

async function signOut() {
  try { await api('POST', '/v1/auth/logout', { again: false }); } catch { /* signed out locally anyway */ }
  endSession();
  say('You are signed out.');
}

// ---- errors in plain words
const STATUS = { pending: 'Awaiting approval', confirmed: 'Confirmed', cancelled: 'Cancelled', rejected: 'Declined', expired: 'Expired (not approved in time)' };
function explain(e) {
  const wait = e.retryAfter ? ` Please wait ${e.retryAfter} seconds and try again.` : ' Please try again in a moment.';
  switch (e.code) {
    case 'slot_taken': return 'Sorry, that time was just taken by someone else. The free times have been refreshed.';
    case 'user_overlap': return 'You already have a booking at that time.';
    case 'hold_expired': return 'We held that time for you, but the hold ran out. Please pick the time again.';
    case 'precondition_failed': return 'This booking was changed elsewhere, so we reloaded it. Please check it and try again.';
    case 'not_allowed': return 'That can no longer be done: the booking’s status has changed. We reloaded it.';
    case 'rate_limited': return `Too many requests.${wait}`;
    case 'unavailable': return `The service is busy.${wait}`;
    case 'validation_failed': {
      const list = (e.problem?.errors || []).map((x) => `${x.field.replaceAll('_', ' ')}: ${x.message}`);
      return list.length ? `Please check: ${list.join('; ')}.` : 'Some of what was sent is not valid.';
    }
    case 'not_found': return 'That is no longer there. It may have been removed.';
    case 'forbidden': return 'You are not allowed to do that.';
    case 'unauthorized': return 'Your session has ended. Please sign in again.';
    case 'idempotency_in_progress': return 'Your earlier request is still being processed. Please wait a moment.';
    case 'payload_too_large': return 'That is too long.';
    case 'closure_conflicts': return 'That time is closed.';
    case 'network': return 'Cannot reach the server. Check your connection and try again.';
    default: return `Something went wrong${e.problem?.request_id ? ` (reference ${e.problem.request_id})` : ''}.${e.status >= 500 ? wait : ''}`;
  }
}
function report(e, where) {
  if (!(e instanceof ApiError)) { console.warn(e); e = new ApiError(-1, null); }
  if (e.status === 401 && !access) return endSession(explain(e));
  (where || $('alert')).textContent = explain(e);
  if (!where) say('');
}

// ---- a modal dialog; resolves when it closes
// Failures that mean "what you saw is stale" close it and go to onFail, which
// reloads the page behind and says why; other failures are shown inside it.
const STALE = ['slot_taken', 'hold_expired', 'not_found', 'not_allowed', 'precondition_failed'];
function dialog(title, nodes, okLabel, action, { danger, cancelLabel = 'Back', safeFocus, onFail } = {}) {
  const d = $('dlg');
  const back = document.activeElement;
  const err = el('p', { class: 'alert', role: 'alert' });
  const ok = okLabel && el('button', { type: 'submit', class: danger ? 'danger' : 'primary' }, okLabel);
  const no = el('button', { type: 'button', autofocus: safeFocus || !okLabel, onclick: () => d.close() }, okLabel ? cancelLabel : 'Close');
  const form = el('form', { novalidate: true, onsubmit: async (ev) => {
    ev.preventDefault();
    if (!ok || ok.disabled) return;
    ok.disabled = true; err.textContent = '';
    try {
      await action();
      d.close();
    } catch (e) {
      if (onFail && e instanceof ApiError && STALE.includes(e.code)) { d.close(); onFail(e); } else report(e, err);
    } finally { ok.disabled = false; }
  } }, el('h2', { id: 'dlg-h' }, title), nodes, err, el('div', { class: 'actions' }, ok, no));
  d.replaceChildren(form);
  return new Promise((resolve) => {
    d.addEventListener('close', () => {
      const at = document.activeElement;
      if (back?.isConnected && (!at || at === document.body || d.contains(at))) back.focus();
      resolve();
    }, { once: true });
    d.showModal();
  });
}
// keep focus somewhere sensible when the focused element was re-rendered away
function refocus(n) { const a = document.activeElement; if (!a || a === document.body) n.focus(); }

// ---- sign-in
function showSignIn() {
  for (const id of ['book', 'mine', 'staff', 'nav', 'who', 'loading']) show($(id), false);
  show($('signin'));
  show($('otp-form')); show($('verify-form'), false);
  $('code').value = '';
}

async function sendCode(ev) {
  ev.preventDefault();
  const phone = $('phone').value.trim();
  if (!phone) return alarm('Please enter your mobile phone number.');
  const btn = ev.submitter; if (btn) btn.disabled = true;
  try {
    const { data } = await api('POST', '/v1/auth/otp', { body: { phone }, auth: false });
    phoneSent = phone;
    alarm('');
    $('code-hint').textContent = `We sent a code to ${phone}. It works for ${minutes(Math.round((data?.expires_in || 300) / 60))}.`;
    show($('otp-form'), false); show($('verify-form'));
    $('code').focus();
  } catch (e) {
    if (e.code === 'validation_failed') alarm('That does not look like a phone number. Include the country code, for example +44.');
    else if (e.code === 'rate_limited') alarm(`A code was sent a moment ago. You can ask for another in ${e.retryAfter || 60} seconds.`);
    else report(e);
  } finally { if (btn) btn.disabled = false; }
}

async function verify(ev) {
  ev.preventDefault();
  const code = $('code').value.trim();
  if (!code) return alarm('Please enter the code from the text message.');
  const btn = ev.submitter; if (btn) btn.disabled = true;
  try {
    const { data } = await api('POST', '/v1/auth/verify', { body: { phone: phoneSent, code }, auth: false });
    setSession(data);
    alarm('');
    await enter(true);
    say('You are signed in.');
  } catch (e) {
    if (e.status === 401) alarm('That code is wrong or has expired. Check it, or ask for a new one.');
    else report(e);
  } finally { if (btn) btn.disabled = false; }
}

// ---- after sign-in
async function enter(focus) {
  show($('signin'), false); show($('loading'));
  try {
    const [{ data: u }, { data: list }] = await Promise.all([api('GET', '/v1/me'), api('GET', '/v1/resources')]);
    me = u;
    resources.clear();
    for (const r of list.items) resources.set(r.id, r);
  } catch (e) {
    show($('loading'), false);
    if (me) report(e);
    return;
  }
  show($('loading'), false);
  $('who-name').textContent = me.display_name || me.phone || 'Signed in';
  show($('who')); show($('nav'));
  const mine = [...resources.values()].filter((r) => r.owner_id === me.id);
  show($('nav-staff'), mine.length > 0);
  fillSelect($('resource'), [...resources.values()]);
  fillSelect($('staff-resource'), mine);
  show($('no-resources'), resources.size === 0);
  show($('book-fields'), resources.size > 0);
  S.resource = null; T.resource = null;
  route(focus);
}

function fillSelect(sel, list) {
  const keep = sel.value;
  sel.replaceChildren(...list.map((r) => el('option', { value: r.id }, r.name)));
  if (list.some((r) => r.id === keep)) sel.value = keep;
}

// ---- views (the URL hash names the view; it never carries a token)
const VIEWS = ['book', 'mine', 'staff'];
let keepMessages = false; // a view change the code made keeps what it just said
function go(hash) { keepMessages = true; location.hash = hash; }
function route(focus) {
  if (!me) return;
  let v = location.hash.slice(1);
  if (!VIEWS.includes(v) || (v === 'staff' && $('nav-staff').hidden)) v = 'book';
  for (const id of VIEWS) show($(id), id === v);
  for (const a of $('nav').querySelectorAll('a')) {
    if (a.getAttribute('href') === `#${v}`) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  if (v === 'book') openBook();
  if (v === 'mine') loadMine();
  if (v === 'staff') openStaff();
  if (focus) $(`${v}-h`).focus();
}

// ---- Book: a week of availability in the resource's zone
function openBook() {
  if (!resources.size) return;
  const id = S.moving?.resource_id || $('resource').value;
  if (S.resource?.id !== id || !S.week) pickResource(id);
  loadSlots();
}

function pickResource(id, keepDuration) {
  const r = resources.get(id);
  if (!r) return;
  S.resource = r;
  $('resource').value = id;
  const opts = [];
  const step = r.slot_minutes, nice = [15, 20, 30, 45, 60, 90, 120, 180, 240, 480, 720, 1440];
  for (let d = Math.ceil(r.min_duration_minutes / step) * step; d <= r.max_duration_minutes && opts.length < 12; d += step) {
    if (d === r.min_duration_minutes || nice.includes(d) || d === keepDuration) opts.push(d);
  }
  if (!opts.length) opts.push(r.min_duration_minutes);
  $('duration').replaceChildren(...opts.map((d) => el('option', { value: d }, minutes(d))));
  S.duration = opts.includes(keepDuration) ? keepDuration : opts[0];
  $('duration').value = S.duration;
  S.week = mondayOf(today(r.timezone));
  S.day = '';
}

async function loadSlots() {
  const r = S.resource, tz = r.timezone, seq = ++S.seq;
  const start = midnight(S.week, tz), end = midnight(addDays(S.week, 7), tz);
  const last = midnight(addDays(S.week, 6), tz) + DAY / 2;
  $('week-h').textContent = fmt(tz, { day: 'numeric', month: 'short', year: 'numeric' }).formatRange(new Date(start + DAY / 2), new Date(last));
  $('tz-note').textContent = `Times are in ${tz}, where ${r.name} is.` +
    (tz === VIEWER_TZ ? '' : ` Your own time (${VIEWER_TZ}) is shown beside each one.`);
  const prev = $('prev-week'), had = document.activeElement === prev;
  prev.disabled = start <= Date.now(); // no booking in the past
  if (had && prev.disabled) $('week-h').focus();
  // at most 3000 grid starts per answer: split the week when the grid is fine
  const perCall = Math.max(1, Math.min(7, Math.floor((3000 * r.slot_minutes) / 1440)));
  $('slots').setAttribute('aria-busy', 'true');
  const got = [];
  try {
    for (let i = 0; i < 7 && seq === S.seq; i += perCall) {
      const q = new URLSearchParams({ from: iso(midnight(addDays(S.week, i), tz)),
        to: iso(midnight(addDays(S.week, Math.min(7, i + perCall)), tz)), duration_minutes: String(S.duration) });
      got.push(await availability(`/v1/resources/${r.id}/availability?${q}`, seq));
    }
  } catch (e) {
    if (seq === S.seq) report(e);
    return;
  } finally { if (seq === S.seq) $('slots').removeAttribute('aria-busy'); }
  if (seq !== S.seq) return; // a newer week or resource was asked for meanwhile
  S.slots = new Map();
  for (let i = 0; i < 7; i++) S.slots.set(dateKey(addDays(S.week, i)), []);
  for (const { data } of got) for (const s of data.slots) S.slots.get(keyIn(Date.parse(s.start), tz))?.push(s);
  if (!S.slots.has(S.day)) S.day = [...S.slots.keys()].find((k) => S.slots.get(k).length) || dateKey(S.week);
  renderDays();
}

// The server answers one availability question per user at a time (429
// otherwise): ask one after another, and skip what a newer view superseded.
let availQueue = Promise.resolve();
function availability(path, seq) {
  const run = availQueue.then(() => (seq === S.seq ? api('GET', path) : { data: { slots: [] } }));
  availQueue = run.catch(() => {});
  return run;
}

function renderDays() {
  const tz = S.resource.timezone;
  const btns = [];
  for (const [k, list] of S.slots) {
    const [y, m, d] = k.split('-').map(Number);
    const noon = midnight({ y, m, d }, tz) + DAY / 2;
    btns.push(el('button', { type: 'button', class: 'day', 'aria-pressed': String(k === S.day),
      onclick: () => { S.day = k; renderDays(); } },
    el('span', { class: 'wd' }, fmt(tz, { weekday: 'short' }).format(noon)),
    el('span', { class: 'dn' }, fmt(tz, { day: 'numeric' }).format(noon)),
    el('span', { class: 'n' }, list.length ? `${list.length}` : '–',
      el('span', { class: 'sr-only' }, list.length === 1 ? ' free time' : ' free times'))));
  }
  $('days').replaceChildren(...btns);
  const [y, m, d] = S.day.split('-').map(Number);
  $('day-h').textContent = fmt(tz, { weekday: 'long', day: 'numeric', month: 'long' }).format(midnight({ y, m, d }, tz) + DAY / 2);
  const list = S.slots.get(S.day) || [];
  const alt = tz !== VIEWER_TZ;
  $('slots').replaceChildren(...list.map((s) => {
    const t = Date.parse(s.start);
    const other = alt && keyIn(t, VIEWER_TZ) !== S.day
      ? fmt(VIEWER_TZ, { weekday: 'short', hour: '2-digit', minute: '2-digit' }).format(t) : hm(t, VIEWER_TZ);
    return el('li', null, el('button', { type: 'button', class: 'slot', onclick: () => choose(s) },
      el('span', null, hm(t, tz)),
      alt && el('span', { class: 'alt' }, el('span', { class: 'sr-only' }, ', your time '), other),
      s.remaining > 1 && el('span', { class: 'alt' }, `${s.remaining} left`)));
  }));
  show($('no-slots'), list.length === 0);
}

function choose(slot) {
  const r = S.resource;
  const what = [el('p', null, el('strong', null, r.name)), el('p', null, ...whenNodes(slot, r.timezone))];
  if (S.moving) {
    const b = S.moving;
    return dialog('Move your booking here?', [...what, el('p', { class: 'hint' }, 'It is now ', span(b.start, b.end, r.timezone), '.')],
      'Move booking', async () => {
        const { data } = await api('PATCH', `/v1/bookings/${b.id}`, { body: { start: slot.start, end: slot.end }, headers: { 'if-match': `"${b.version}"`, ...idem() } });
        stopMoving();
        say(`Moved to ${span(data.start, data.end, r.timezone)}.`);
        go('#mine');
      }, { onFail: lost });
  }
  const note = el('input', { id: 'note', maxlength: '500', autocomplete: 'off' });
  return dialog('Book this time?', [...what, el('label', { for: 'note' }, 'Note (optional)'), note], 'Book', async () => {
    const b = await book(r, slot, note.value.trim());
    say(`Booked: ${r.name}, ${span(b.start, b.end, r.timezone)}${b.status === 'pending' ? '. It awaits approval' : ''}.`);
    alarm('');
    loadSlots().then(() => refocus($('day-h')));
  }, { onFail: lost });
}

// The one place that creates a booking: hold, then confirm; or, on a server
// without holds yet (HOLD_FALLBACK), a direct POST /v1/bookings.
async function book(r, slot, note) {
  const when = { resource_id: r.id, start: slot.start, end: slot.end };
  let hold;
  try {
    hold = (await api('POST', '/v1/holds', { body: when, headers: idem() })).data;
  } catch (e) {
    if (!(HOLD_FALLBACK && missingRoute(e))) throw e;
    return (await api('POST', '/v1/bookings', { body: note ? { ...when, note } : when, headers: idem() })).data;
  }
  try {
    return (await api('POST', `/v1/holds/${hold.id}/confirm`, { body: note ? { note } : {}, headers: idem() })).data;
  } catch (e) {
    if (e.code !== 'hold_expired') api('DELETE', `/v1/holds/${hold.id}`).catch(() => {});
    throw e;
  }
}

// A lost race or a stale copy: say so and show the truth again.
function lost(e) {
  alarm(explain(e));
  if (e.code === 'precondition_failed' && S.moving) {
    api('GET', `/v1/bookings/${S.moving.id}`).then(({ data }) => {
      if (data.status === 'confirmed' || data.status === 'pending') startMoving(data); else stopMoving();
      loadSlots();
    }, report);
  }
  if (location.hash === '#mine') loadMine(); else if (location.hash === '#staff') loadStaff(); else loadSlots();
  (location.hash === '#staff' ? $('staff-range') : location.hash === '#mine' ? $('mine-h') : $('week-h')).focus();
}

function startMoving(b) {
  S.moving = b;
  const tz = tzOf(b.resource_id);
  $('moving-text').textContent = `Moving your booking of ${span(b.start, b.end, tz)}. Pick a new time.`;
  show($('moving'));
  $('resource').disabled = true;
  pickResource(b.resource_id, Math.round((Date.parse(b.end) - Date.parse(b.start)) / 60000));
  const p = partsIn(Date.parse(b.start), tz);
  const wk = mondayOf(p, tz);
  if (midnight(wk, tz) > Date.now() - 7 * DAY) { S.week = wk; S.day = dateKey(p); }
}
function stopMoving() {
  S.moving = null;
  show($('moving'), false);
  $('resource').disabled = false;
}

// ---- My bookings
async function loadMine(more) {
  const q = new URLSearchParams({ from: iso(Date.now() - DAY), limit: '50' });
  if (more && mineCursor) q.set('cursor', mineCursor);
  let data;
  try { ({ data } = await api('GET', `/v1/bookings?${q}`)); } catch (e) { return report(e); }
  mineCursor = data.next_cursor;
  // owners also see others' bookings on their resources: those are for Staff
  const items = data.items.filter((b) => b.user_id === me.id).map(mineItem);
  if (more) $('mine-list').append(...items); else $('mine-list').replaceChildren(...items);
  show($('mine-empty'), !$('mine-list').children.length);
  show($('mine-more'), !!mineCursor);
}

function mineItem(b) {
  const tz = tzOf(b.resource_id), live = b.status === 'confirmed' || b.status === 'pending';
  const name = resources.get(b.resource_id)?.name || 'Booking';
  return el('li', { class: `card ${b.status}` },
    el('h2', null, name),
    el('p', null, ...whenNodes(b, tz)),
    el('p', { class: `tag ${b.status}` }, STATUS[b.status] || b.status),
    b.note && el('p', { class: 'note' }, b.note),
    el('div', { class: 'actions' },
      live && Date.parse(b.start) > Date.now() && resources.has(b.resource_id) && el('button', { type: 'button',
        onclick: () => { startMoving(b); go('#book'); } },
      'Reschedule', el('span', { class: 'sr-only' }, ` ${name}, ${span(b.start, b.end, tz)}`)),
      live && el('button', { type: 'button', class: 'danger', onclick: () => cancel(b, tz, loadMine) },
        'Cancel', el('span', { class: 'sr-only' }, ` ${name}, ${span(b.start, b.end, tz)}`)),
      el('button', { type: 'button', onclick: () => showHistory(b, tz) },
        'History', el('span', { class: 'sr-only' }, ` of ${name}, ${span(b.start, b.end, tz)}`))));
}

function cancel(b, tz, reload) {
  return dialog('Cancel this booking?', [el('p', null, el('strong', null, resources.get(b.resource_id)?.name || '')), el('p', null, ...whenNodes(b, tz))],
    'Cancel booking', async () => {
      await api('DELETE', `/v1/bookings/${b.id}`, { headers: { 'if-match': `"${b.version}"` } });
      say('The booking is cancelled.');
      alarm('');
      reload();
    }, { danger: true, cancelLabel: 'Keep booking', safeFocus: true, onFail: lost });
}

async function showHistory(b, tz) {
  let data;
  try { ({ data } = await api('GET', `/v1/bookings/${b.id}/history`)); } catch (e) { return report(e); }
  const who = (id) => (id == null ? 'automatically' : id === me.id ? 'by you' : id === b.user_id ? 'by the customer' : 'by staff');
  const rows = data.items.map((h) => el('li', null,
    el('strong', null, `${h.action[0].toUpperCase()}${h.action.slice(1)}`), ` ${who(h.actor_id)}, `,
    fmt(VIEWER_TZ, { dateStyle: 'medium', timeStyle: 'short' }).format(Date.parse(h.at)),
    el('br'), el('span', { class: 'muted' }, span(h.start, h.end, tz))));
  return dialog('History', [el('ol', { class: 'history' }, rows)]);
}

async function calendarLink() {
  try {
    const { data } = await api('POST', '/v1/me/calendar-feed');
    const box = el('input', { id: 'feed-url', readonly: true, value: data.url });
    $('feed').replaceChildren(el('label', { for: 'feed-url' }, 'Calendar link'), box,
      el('button', { type: 'button', onclick: () => navigator.clipboard?.writeText(data.url).then(() => say('Link copied.'), () => box.select()) }, 'Copy link'),
      el('button', { type: 'button', class: 'danger', onclick: async () => {
        try { await api('DELETE', '/v1/me/calendar-feed'); } catch (e) { return report(e); }
        $('feed').replaceChildren($('feed-get') || el('button', { type: 'button', id: 'feed-get', onclick: calendarLink }, 'Get calendar link'));
        say('The calendar link no longer works.');
      } }, 'Turn link off'));
    box.focus(); box.select();
  } catch (e) {
    if (missingRoute(e)) alarm('Calendar links are not available on this server yet.'); else report(e);
  }
}

// ---- Staff: bookings on the resources this user owns
function openStaff() {
  const id = $('staff-resource').value;
  if (!T.resource || T.resource.id !== id) {
    T.resource = resources.get(id);
    T.start = T.mode === 'week' ? mondayOf(today(T.resource.timezone)) : today(T.resource.timezone);
  }
  loadStaff();
}

async function loadStaff() {
  const r = T.resource, tz = r.timezone, seq = ++T.seq;
  const n = T.mode === 'week' ? 7 : 1;
  const from = midnight(T.start, tz), to = midnight(addDays(T.start, n), tz);
  const f = fmt(tz, { weekday: n === 1 ? 'long' : undefined, day: 'numeric', month: 'short', year: 'numeric' });
  $('staff-range').textContent = n === 1 ? f.format(from + DAY / 2) : f.formatRange(new Date(from + DAY / 2), new Date(to - DAY / 2));
  $('staff-tz').textContent = `Times are in ${tz}.`;
  const items = [];
  let cursor = null;
  try {
    do {
      const q = new URLSearchParams({ resource_id: r.id, from: iso(from), to: iso(to), limit: '100' });
      if (cursor) q.set('cursor', cursor);
      const { data } = await api('GET', `/v1/bookings?${q}`);
      items.push(...data.items);
      cursor = data.next_cursor;
    } while (cursor && items.length < 2000);
  } catch (e) { return report(e); }
  if (seq !== T.seq) return;
  const days = [];
  for (let i = 0; i < n; i++) {
    const p = addDays(T.start, i), k = dateKey(p);
    const list = items.filter((b) => keyIn(Date.parse(b.start), tz) === k);
    days.push(el('section', { class: 'sday' },
      el('h3', null, fmt(tz, { weekday: 'long', day: 'numeric', month: 'long' }).format(midnight(p, tz) + DAY / 2)),
      list.length ? el('ul', { class: 'cards' }, list.map((b) => staffItem(b, tz))) : el('p', { class: 'muted' }, 'No bookings.')));
  }
  $('staff-days').replaceChildren(...days);
}

function staffItem(b, tz) {
  const live = b.status === 'confirmed' || b.status === 'pending';
  const label = `${hm(Date.parse(b.start), tz)}–${hm(Date.parse(b.end), tz)}`;
  const decide = (verb, done) => async () => {
    try {
      await api('POST', `/v1/bookings/${b.id}/${verb}`, { headers: idem() });
      say(`${label}: ${done}.`);
    } catch (e) {
      // the booking is on screen, so a plain 404 means the route is missing
      if (missingRoute(e)) alarm('Approval is not available on this server yet.'); else report(e);
    }
    loadStaff();
  };
  return el('li', { class: `card ${b.status}` },
    el('p', null, el('strong', null, label), ' ', el('span', { class: `tag ${b.status}` }, STATUS[b.status] || b.status)),
    el('p', { class: 'muted' }, b.user_id === me.id ? 'You' : `Customer ${b.user_id.slice(0, 8)}`),
    b.note && el('p', { class: 'note' }, b.note),
    el('div', { class: 'actions' },
      b.status === 'pending' && el('button', { type: 'button', class: 'primary', onclick: decide('approve', 'approved') },
        'Approve', el('span', { class: 'sr-only' }, ` ${label}`)),
      b.status === 'pending' && el('button', { type: 'button', onclick: decide('reject', 'declined') },
        'Decline', el('span', { class: 'sr-only' }, ` ${label}`)),
      live && el('button', { type: 'button', class: 'danger', onclick: () => cancel(b, tz, loadStaff) },
        'Cancel', el('span', { class: 'sr-only' }, ` ${label}`)),
      el('button', { type: 'button', onclick: () => showHistory(b, tz) }, 'History', el('span', { class: 'sr-only' }, ` of ${label}`))));
}

// ---- wiring
function wire() {
  $('otp-form').addEventListener('submit', sendCode);
  $('verify-form').addEventListener('submit', verify);
  $('otp-back').addEventListener('click', () => { show($('verify-form'), false); show($('otp-form')); $('phone').focus(); });
  $('signout').addEventListener('click', signOut);
  $('resource').addEventListener('change', () => { pickResource($('resource').value); loadSlots(); });
  $('duration').addEventListener('change', () => { S.duration = Number($('duration').value); loadSlots(); });
  $('prev-week').addEventListener('click', () => { S.week = addDays(S.week, -7); S.day = ''; loadSlots(); });
  $('next-week').addEventListener('click', () => { S.week = addDays(S.week, 7); S.day = ''; loadSlots(); });
  $('moving-stop').addEventListener('click', () => { stopMoving(); say('Not moving the booking.'); });
  $('mine-more').addEventListener('click', () => loadMine(true));
  $('feed-get').addEventListener('click', calendarLink);
  $('staff-resource').addEventListener('change', openStaff);
  for (const r of document.querySelectorAll('input[name="staff-mode"]')) {
    r.addEventListener('change', () => {
      T.mode = r.value;
      const tz = T.resource.timezone;
      T.start = T.mode === 'week' ? mondayOf(T.start) : (dateKey(mondayOf(today(tz))) === dateKey(T.start) ? today(tz) : T.start);
      loadStaff();
    });
  }
  $('staff-prev').addEventListener('click', () => { T.start = addDays(T.start, T.mode === 'week' ? -7 : -1); loadStaff(); });
  $('staff-next').addEventListener('click', () => { T.start = addDays(T.start, T.mode === 'week' ? 7 : 1); loadStaff(); });
  addEventListener('hashchange', () => {
    if (!keepMessages) { alarm(''); say(''); }
    keepMessages = false;
    route(true);
  });
  // signed out (or in) in another tab
  addEventListener('storage', (e) => {
    if (e.key !== RT_KEY && e.key !== null) return;
    if (!e.newValue && me) endSession('You signed out in another tab.');
    if (e.newValue && !me) refresh().then((ok) => ok && enter());
  });
  $('prev-week').setAttribute('aria-controls', 'days slots');
  $('next-week').setAttribute('aria-controls', 'days slots');
}

async function start() {
  wire();
  if (localStorage.getItem(RT_KEY) && (await refresh())) return enter();
  show($('loading'), false);
  if (localStorage.getItem(RT_KEY)) alarm('Cannot reach the server to restore your session. Reload the page to try again.');
  showSignIn();
}
start();
