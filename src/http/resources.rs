//! `/v1/resources` (read, availability) and `/v1/admin/resources` (write).

use axum::extract::State;
use axum::http::StatusCode;
use chrono::Duration;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::extract::{Admin, Caller, Json, PathId, Query};
use super::AppState;
use crate::db::resources::{self, Resource, ResourceFields, Slot};
use crate::domain::time_range::parse_instant;
use crate::domain::OpeningHours;
use crate::domain::{ResourceId, UserId};
use crate::error::{ApiError, ApiResult, FieldError};

/// Body of `POST /v1/admin/resources` (and, every field optional, of PATCH).
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResourceInput {
    pub name: Option<String>,
    /// IANA time zone, e.g. `Europe/Berlin`.
    pub timezone: Option<String>,
    pub capacity: Option<i32>,
    pub slot_minutes: Option<i32>,
    pub min_duration_minutes: Option<i32>,
    pub max_duration_minutes: Option<i32>,
    pub buffer_minutes: Option<i32>,
    pub min_notice_minutes: Option<i32>,
    pub max_advance_days: Option<i32>,
    #[schema(value_type = Option<OpeningHoursDoc>)]
    pub opening_hours: Option<Value>,
    pub owner_id: Option<Uuid>,
    pub active: Option<bool>,
    /// Minutes before start for `booking.reminder` webhooks: at most 5, each 1-43200.
    pub reminders_minutes: Option<Vec<i32>>,
    /// Bookings start `pending` until approved (default false).
    pub requires_approval: Option<bool>,
    /// Minutes a pending booking waits for a decision before it expires (1-43200, default 1440).
    pub approval_timeout_minutes: Option<i32>,
    /// `{"YYYY-MM-DD": [["HH:MM","HH:MM"], …]}`: that local date's opening hours instead of the weekday's (`[]`: closed).
    #[schema(value_type = Option<std::collections::BTreeMap<String, Vec<Interval>>>)]
    pub date_overrides: Option<Value>,
}

/// `["HH:MM","HH:MM"]`: opens, closes (local time; `24:00` = midnight after).
#[derive(utoipa::ToSchema)]
#[schema(as = Interval, value_type = Vec<String>, example = json!(["09:00", "17:00"]))]
pub struct Interval(#[allow(dead_code)] [String; 2]);

/// Weekly opening hours: each day a list of intervals; a day left out is closed.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct OpeningHoursDoc {
    mon: Option<Vec<Interval>>,
    tue: Option<Vec<Interval>>,
    wed: Option<Vec<Interval>>,
    thu: Option<Vec<Interval>>,
    fri: Option<Vec<Interval>>,
    sat: Option<Vec<Interval>>,
    sun: Option<Vec<Interval>>,
}

/// Body of `POST /v1/admin/resources` (as documented: `name` and `timezone`
/// required, every other field as in [`ResourceInput`], defaulted).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct NewResource {
    name: String,
    /// IANA time zone, e.g. `Europe/Berlin`.
    timezone: String,
    #[schema(minimum = 1, maximum = 1000, default = 1)]
    capacity: Option<i32>,
    /// 1-1440, a divisor of 1440.
    #[schema(minimum = 1, maximum = 1440, default = 15)]
    slot_minutes: Option<i32>,
    #[schema(minimum = 1, maximum = 525600)]
    min_duration_minutes: Option<i32>,
    #[schema(minimum = 1, maximum = 525600, default = 1440)]
    max_duration_minutes: Option<i32>,
    #[schema(minimum = 0, maximum = 1440, default = 0)]
    buffer_minutes: Option<i32>,
    #[schema(minimum = 0, maximum = 525600, default = 0)]
    min_notice_minutes: Option<i32>,
    #[schema(minimum = 1, maximum = 3650, default = 365)]
    max_advance_days: Option<i32>,
    opening_hours: Option<OpeningHoursDoc>,
    owner_id: Option<Uuid>,
    #[schema(default = true)]
    active: Option<bool>,
    reminders_minutes: Option<Vec<i32>>,
    #[schema(default = false)]
    requires_approval: Option<bool>,
    #[schema(minimum = 1, maximum = 43200, default = 1440)]
    approval_timeout_minutes: Option<i32>,
    date_overrides: Option<std::collections::BTreeMap<String, Vec<Interval>>>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ResourceList {
    pub items: Vec<Resource>,
}

fn int_in(errors: &mut Vec<FieldError>, field: &str, v: i32, min: i32, max: i32) {
    if v < min || v > max {
        errors.push(FieldError::new(
            field,
            format!("must be between {min} and {max}"),
        ));
    }
}

/// Check every field; collect all errors.
async fn validate(conn: &mut sqlx::PgConnection, i: &ResourceInput) -> ApiResult<ResourceFields> {
    let mut errors = Vec::new();
    let name = i.name.clone().unwrap_or_default().trim().to_string();
    if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        errors.push(FieldError::new(
            "name",
            "required: 1 to 200 printable characters",
        ));
    }
    let timezone = i.timezone.clone().unwrap_or_default();
    if timezone.is_empty()
        || timezone.len() > 64
        || !resources::timezone_known(conn, &timezone).await?
    {
        errors.push(FieldError::new(
            "timezone",
            "required: an IANA time zone name such as Europe/Berlin",
        ));
    }
    let capacity = i.capacity.unwrap_or(1);
    int_in(&mut errors, "capacity", capacity, 1, 1000);
    let slot = i.slot_minutes.unwrap_or(15);
    if !(1..=1440).contains(&slot) || 1440 % slot != 0 {
        errors.push(FieldError::new(
            "slot_minutes",
            "must be between 1 and 1440 and divide 1440",
        ));
    }
    let min_d = i.min_duration_minutes.unwrap_or(slot);
    int_in(&mut errors, "min_duration_minutes", min_d, 1, 525_600);
    let max_d = i.max_duration_minutes.unwrap_or(1440.max(min_d));
    int_in(&mut errors, "max_duration_minutes", max_d, 1, 525_600);
    if max_d < min_d {
        errors.push(FieldError::new(
            "max_duration_minutes",
            "must not be less than min_duration_minutes",
        ));
    }
    let buffer = i.buffer_minutes.unwrap_or(0);
    int_in(&mut errors, "buffer_minutes", buffer, 0, 1440);
    let notice = i.min_notice_minutes.unwrap_or(0);
    int_in(&mut errors, "min_notice_minutes", notice, 0, 525_600);
    let advance = i.max_advance_days.unwrap_or(365);
    int_in(&mut errors, "max_advance_days", advance, 1, 3650);
    let opening_hours = match &i.opening_hours {
        None | Some(Value::Null) => None,
        Some(v) => match OpeningHours::parse(v) {
            Ok(h) => Some(h.into_value()),
            Err(m) => {
                errors.push(FieldError::new("opening_hours", m));
                None
            }
        },
    };
    let mut reminders_minutes = i.reminders_minutes.clone().unwrap_or_default();
    reminders_minutes.sort_unstable_by(|a, b| b.cmp(a));
    reminders_minutes.dedup();
    if reminders_minutes.len() > 5 || reminders_minutes.iter().any(|m| !(1..=43_200).contains(m)) {
        errors.push(FieldError::new(
            "reminders_minutes",
            "at most 5 values, each from 1 to 43200 (30 days)",
        ));
    }
    let approval_timeout_minutes = i.approval_timeout_minutes.unwrap_or(1440);
    int_in(
        &mut errors,
        "approval_timeout_minutes",
        approval_timeout_minutes,
        1,
        43_200,
    );
    let date_overrides = match &i.date_overrides {
        None | Some(Value::Null) => None,
        Some(v) => match crate::domain::hours::parse_date_overrides(v) {
            Ok(d) => Some(d),
            Err(m) => {
                errors.push(FieldError::new("date_overrides", m));
                None
            }
        },
    };
    if let Some(owner) = i.owner_id {
        if !resources::user_exists(conn, UserId(owner)).await? {
            errors.push(FieldError::new("owner_id", "no such user"));
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    Ok(ResourceFields {
        name,
        timezone,
        capacity,
        slot_minutes: slot,
        min_duration_minutes: min_d,
        max_duration_minutes: max_d,
        buffer_minutes: buffer,
        min_notice_minutes: notice,
        max_advance_days: advance,
        opening_hours,
        owner_id: i.owner_id,
        active: i.active.unwrap_or(true),
        reminders_minutes,
        requires_approval: i.requires_approval.unwrap_or(false),
        approval_timeout_minutes,
        date_overrides,
    })
}

/// Active resources.
#[utoipa::path(get, path = "/v1/resources", tag = "resources",
    responses((status = 200, body = ResourceList), (status = 401, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn list(
    State(st): State<AppState>,
    Caller(who): Caller,
) -> ApiResult<axum::Json<ResourceList>> {
    let mut tx = st.db.begin(&who).await?;
    let items = resources::list_active(tx.conn()).await?;
    tx.commit().await?;
    Ok(axum::Json(ResourceList { items }))
}

/// One resource.
#[utoipa::path(get, path = "/v1/resources/{id}", tag = "resources", params(("id" = Uuid, Path)),
    responses((status = 200, body = Resource), (status = 400, body = crate::error::Problem),
        (status = 401, body = crate::error::Problem), (status = 404, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn get(
    State(st): State<AppState>,
    Caller(who): Caller,
    PathId(id): PathId,
) -> ApiResult<axum::Json<Resource>> {
    let mut tx = st.db.begin(&who).await?;
    let r = resources::get(tx.conn(), ResourceId(id))
        .await?
        .ok_or(ApiError::NotFound)?;
    tx.commit().await?;
    Ok(axum::Json(r))
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// The most grid starts one availability answer may examine: a 31-day month
/// on a 15-minute grid is 2976. Bounds the cost of one call (each start is
/// checked against the resource's rules) and the size of the answer.
pub const MAX_SLOT_STARTS: i64 = 3000;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AvailabilityQuery {
    /// Start of the range (RFC 3339).
    #[param(value_type = String, format = DateTime)]
    pub from: Option<String>,
    /// End of the range (RFC 3339), at most 31 days after `from`, and at most
    /// 3000 starts of the resource's slot grid (else 422).
    #[param(value_type = String, format = DateTime)]
    pub to: Option<String>,
    /// Length of the wanted booking; default the resource's minimum.
    #[param(value_type = Option<i32>, minimum = 1, maximum = 525600)]
    pub duration_minutes: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Availability {
    pub resource_id: Uuid,
    pub timezone: String,
    pub slots: Vec<Slot>,
}

/// Free slots: every start on the resource's grid in [from, to) where a
/// booking of that duration would be accepted now. Never reveals who booked.
#[utoipa::path(get, path = "/v1/resources/{id}/availability", tag = "resources",
    params(("id" = Uuid, Path), AvailabilityQuery),
    responses((status = 200, body = Availability), (status = 400, body = crate::error::Problem),
        (status = 401, body = crate::error::Problem), (status = 404, body = crate::error::Problem),
        (status = 422, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn availability(
    State(st): State<AppState>,
    Caller(who): Caller,
    PathId(id): PathId,
    Query(q): Query<AvailabilityQuery>,
) -> ApiResult<axum::Json<Availability>> {
    let mut errors = Vec::new();
    let from = match q.from.as_deref() {
        Some(v) => parse_instant(v)
            .map_err(|m| errors.push(FieldError::new("from", m)))
            .ok(),
        None => {
            errors.push(FieldError::new("from", "required"));
            None
        }
    };
    let to = match q.to.as_deref() {
        Some(v) => parse_instant(v)
            .map_err(|m| errors.push(FieldError::new("to", m)))
            .ok(),
        None => {
            errors.push(FieldError::new("to", "required"));
            None
        }
    };
    let duration = match q.duration_minutes.as_deref() {
        None => None,
        Some(v) => match v.parse::<i32>() {
            Ok(n) if (1..=525_600).contains(&n) => Some(n),
            _ => {
                errors.push(FieldError::new(
                    "duration_minutes",
                    "must be a whole number of minutes from 1 to 525600",
                ));
                None
            }
        },
    };
    if let (Some(f), Some(t)) = (from, to) {
        if t <= f {
            errors.push(FieldError::new("to", "must be after from"));
        } else if t - f > Duration::days(31) {
            errors.push(FieldError::new("to", "the range may span at most 31 days"));
        }
    }
    let (Some(from), Some(to)) = (from, to) else {
        return Err(ApiError::Validation(errors));
    };
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let mut tx = st.db.begin(&who).await?;
    let r = resources::get(tx.conn(), ResourceId(id))
        .await?
        .filter(|r| r.active)
        .ok_or(ApiError::NotFound)?;
    let minutes = duration.unwrap_or(r.min_duration_minutes);
    // candidates step by gcd(slot, 15) minutes in UTC (see booking.availability)
    let step = gcd(i64::from(r.slot_minutes.max(1)), 15);
    let step_secs = 60 * step;
    let starts = ((to - from).num_seconds() + step_secs - 1) / step_secs;
    if starts > MAX_SLOT_STARTS {
        return Err(ApiError::validation(
            "to",
            format!(
                "at most {MAX_SLOT_STARTS} candidate starts per request ({starts} for this resource's {}-minute grid); narrow the range",
                r.slot_minutes
            ),
        ));
    }
    let slots = resources::availability(tx.conn(), ResourceId(id), from, to, minutes).await?;
    tx.commit().await?;
    Ok(axum::Json(Availability {
        resource_id: r.id,
        timezone: r.timezone,
        slots,
    }))
}

/// Create a resource (service role).
#[utoipa::path(post, path = "/v1/admin/resources", tag = "admin", request_body = NewResource,
    responses((status = 201, body = Resource), (status = 400, body = crate::error::Problem),
        (status = 401, body = crate::error::Problem), (status = 403, body = crate::error::Problem),
        (status = 413, body = crate::error::Problem), (status = 422, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn create(
    State(st): State<AppState>,
    Admin(who): Admin,
    Json(body): Json<ResourceInput>,
) -> ApiResult<(StatusCode, axum::Json<Resource>)> {
    let mut tx = st.db.begin(&who).await?;
    let fields = validate(tx.conn(), &body).await?;
    let r = resources::insert(tx.conn(), &fields).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, axum::Json(r)))
}

/// Change a resource (service role): only the fields sent change; `null`
/// clears `opening_hours` or `owner_id`. Lowering capacity below what is
/// booked is refused with 409.
#[utoipa::path(patch, path = "/v1/admin/resources/{id}", tag = "admin", request_body = ResourceInput,
    params(("id" = Uuid, Path)),
    responses((status = 200, body = Resource), (status = 400, body = crate::error::Problem),
        (status = 401, body = crate::error::Problem), (status = 403, body = crate::error::Problem),
        (status = 404, body = crate::error::Problem), (status = 409, body = crate::error::Problem),
        (status = 413, body = crate::error::Problem), (status = 422, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn update(
    State(st): State<AppState>,
    Admin(who): Admin,
    PathId(id): PathId,
    Json(patch): Json<serde_json::Map<String, Value>>,
) -> ApiResult<axum::Json<Resource>> {
    let mut tx = st.db.begin(&who).await?;
    let current = resources::get_for_update(tx.conn(), ResourceId(id))
        .await?
        .ok_or(ApiError::NotFound)?;
    let mut merged = match serde_json::to_value(&current).map_err(anyhow::Error::from)? {
        Value::Object(m) => m,
        _ => {
            return Err(ApiError::Internal(anyhow::anyhow!(
                "resource is not an object"
            )))
        }
    };
    for key in ["id", "created_at", "updated_at"] {
        if patch.contains_key(key) {
            return Err(ApiError::BadRequest(format!("`{key}` cannot be changed")));
        }
        merged.remove(key);
    }
    for (k, v) in patch {
        if !merged.contains_key(&k) {
            return Err(ApiError::BadRequest(format!("unknown field `{k}`")));
        }
        merged.insert(k, v);
    }
    let input: ResourceInput = serde_json::from_value(Value::Object(merged)).map_err(|e| {
        let text = e.to_string();
        ApiError::validation(text.split('`').nth(1).unwrap_or("body"), text.clone())
    })?;
    let fields = validate(tx.conn(), &input).await?;
    if fields.capacity < current.capacity
        && resources::seats_in_use_beyond(tx.conn(), ResourceId(id), fields.capacity).await?
    {
        return Err(ApiError::Conflict(format!(
            "capacity cannot be lowered to {}: bookings that have not ended hold more seats than that",
            fields.capacity
        )));
    }
    let r = resources::update(tx.conn(), ResourceId(id), &fields).await?;
    tx.commit().await?;
    Ok(axum::Json(r))
}
