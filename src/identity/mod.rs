//! Identity: who is calling. Bearer JWTs shaped like Supabase Auth's, verified
//! with HS256 only; the verified claims travel into PostgreSQL unchanged as
//! `request.jwt.claims`, where RLS reads them through `auth.uid()`.

pub mod jwt;
pub mod otp;
pub mod sessions;

use serde_json::Value;
use uuid::Uuid;

/// The database role a request runs as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A signed-in user: RLS applies.
    Authenticated,
    /// Administration: bypasses RLS by design.
    Service,
}

/// A verified caller.
#[derive(Debug, Clone)]
pub struct Identity {
    pub user_id: Uuid,
    pub role: Role,
    pub session_id: Option<Uuid>,
    /// The token's claims, verbatim (they become `request.jwt.claims`).
    pub claims: Value,
}

impl Identity {
    pub fn db_role(&self) -> &'static str {
        match self.role {
            Role::Authenticated => "authenticated",
            Role::Service => "service_role",
        }
    }
    pub fn claims_json(&self) -> String {
        self.claims.to_string()
    }
    pub fn is_service(&self) -> bool {
        self.role == Role::Service
    }
    /// The service role acting with no particular user (internal work such as
    /// creating users during sign-in).
    pub fn service() -> Identity {
        Identity {
            user_id: Uuid::nil(),
            role: Role::Service,
            session_id: None,
            claims: serde_json::json!({"role": "service_role", "sub": Uuid::nil()}),
        }
    }
}
