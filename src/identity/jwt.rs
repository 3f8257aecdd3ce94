//! Minting and verifying access tokens (HS256).
//!
//! Verification is strict: only HS256 (so `alg=none` and algorithm confusion
//! fail), `exp`, `sub`, `aud`, `iss` required, `aud` must be `authenticated`,
//! `iss` one of the configured issuers, `nbf` honoured, 30 s leeway, `sub` a
//! UUID and `role` one of `authenticated`/`service_role`. Any failure is the
//! same opaque 401 to the client.

use super::{Identity, Role};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub const AUDIENCE: &str = "authenticated";
/// Tokens longer than this are refused before any parsing.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;
pub const LEEWAY_SECS: u64 = 30;

/// The claims we issue (the shape Supabase Auth issues).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub role: String,
    pub aud: String,
    pub iss: String,
    pub iat: i64,
    pub exp: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
}

/// Typed view of the claims we check (others are kept but not interpreted).
#[derive(Debug, Deserialize)]
struct Checked {
    sub: String,
    role: String,
    #[serde(default)]
    session_id: Option<String>,
}

#[derive(Clone)]
pub struct Keys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    issuer: String,
}

#[derive(Debug, thiserror::Error)]
#[error("invalid token: {0}")]
pub struct InvalidToken(pub String);

impl Keys {
    /// `issuers[0]` is the issuer of the tokens we mint.
    pub fn new(secret: &[u8], issuers: &[String]) -> Keys {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&[AUDIENCE]);
        validation.set_issuer(issuers);
        validation.set_required_spec_claims(&["exp", "sub", "aud", "iss"]);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        Keys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            issuer: issuers.first().cloned().unwrap_or_else(|| "booking".into()),
        }
    }

    pub fn mint(
        &self,
        user_id: Uuid,
        role: Role,
        phone: Option<&str>,
        session_id: Option<Uuid>,
        ttl_secs: i64,
    ) -> anyhow::Result<String> {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: user_id.to_string(),
            role: match role {
                Role::Authenticated => "authenticated",
                Role::Service => "service_role",
            }
            .into(),
            aud: AUDIENCE.into(),
            iss: self.issuer.clone(),
            iat: now,
            exp: now + ttl_secs,
            phone: phone.map(str::to_string),
            session_id: Some(session_id.unwrap_or_else(Uuid::new_v4).to_string()),
        };
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &self.encoding,
        )?)
    }

    pub fn verify(&self, token: &str) -> Result<Identity, InvalidToken> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(InvalidToken("token too long".into()));
        }
        let data =
            jsonwebtoken::decode::<serde_json::Value>(token, &self.decoding, &self.validation)
                .map_err(|e| InvalidToken(e.to_string()))?;
        let claims = data.claims;
        // `exp`/`iat`/`nbf` must be numbers: the library accepts what it can
        // read, we insist on the registered types.
        for key in ["exp", "iat", "nbf"] {
            if let Some(v) = claims.get(key) {
                if !v.is_number() {
                    return Err(InvalidToken(format!("{key} is not a number")));
                }
            }
        }
        let checked: Checked =
            serde_json::from_value(claims.clone()).map_err(|e| InvalidToken(e.to_string()))?;
        let user_id =
            Uuid::parse_str(&checked.sub).map_err(|_| InvalidToken("sub is not a UUID".into()))?;
        let role = match checked.role.as_str() {
            "authenticated" => Role::Authenticated,
            "service_role" => Role::Service,
            other => return Err(InvalidToken(format!("role {other} is not accepted"))),
        };
        let session_id = checked
            .session_id
            .as_deref()
            .and_then(|s| Uuid::parse_str(s).ok());
        Ok(Identity {
            user_id,
            role,
            session_id,
            claims,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Keys {
        Keys::new(
            b"0123456789abcdef0123456789abcdef",
            &["booking".to_string()],
        )
    }

    #[test]
    fn a_minted_token_verifies() {
        let k = keys();
        let id = Uuid::new_v4();
        let t = k
            .mint(id, Role::Authenticated, Some("+14155550123"), None, 60)
            .expect("mint");
        let who = k.verify(&t).expect("verify");
        assert_eq!(who.user_id, id);
        assert_eq!(who.role, Role::Authenticated);
        assert_eq!(who.claims["phone"], "+14155550123");
    }

    #[test]
    fn another_key_or_issuer_is_refused() {
        let t = keys()
            .mint(Uuid::new_v4(), Role::Service, None, None, 60)
            .expect("mint");
        let other = Keys::new(
            b"another-secret-another-secret-xx",
            &["booking".to_string()],
        );
        assert!(other.verify(&t).is_err());
        let other_iss = Keys::new(
            b"0123456789abcdef0123456789abcdef",
            &["supabase".to_string()],
        );
        assert!(other_iss.verify(&t).is_err());
    }
}
