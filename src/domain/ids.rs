//! Ids that cannot be mixed up: a booking id where a resource id is expected
//! does not compile. They are what the database layer takes; the API's JSON
//! keeps plain UUIDs (the wire shape does not change).

use uuid::Uuid;

macro_rules! id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord,
            serde::Serialize, serde::Deserialize, sqlx::Type,
        )]
        #[serde(transparent)]
        #[sqlx(transparent)]
        pub struct $name(pub Uuid);

        impl From<Uuid> for $name {
            fn from(u: Uuid) -> Self {
                $name(u)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

id!(
    /// A user (`booking.users.id`; for users of another issuer, their `sub`).
    UserId
);
id!(
    /// A resource (`booking.resources.id`).
    ResourceId
);
id!(
    /// A booking (`booking.bookings.id`).
    BookingId
);
