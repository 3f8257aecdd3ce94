//! Parse, don't validate: types whose values are valid by construction.

pub mod hours;
pub mod ids;
pub mod phone;
pub mod rrule;
pub mod time_range;

pub use hours::OpeningHours;
pub use ids::{BookingId, ResourceId, UserId};
pub use phone::Phone;
pub use time_range::TimeRange;
