//! Refresh tokens: opaque, 256 random bits from the OS CSPRNG, base64url.
//! Not JWTs, so they can never pass as access tokens; stored only as their
//! SHA-256 (high-entropy secrets need no key or slow hash), rotated on every
//! use, and a reused one revokes its whole session (see `db::auth`).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::rngs::OsRng;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Random bytes in a refresh token.
pub const TOKEN_BYTES: usize = 32;
/// Anything longer than this is not one of ours (43 characters are).
pub const MAX_TOKEN_LEN: usize = 128;

pub fn new_refresh_token() -> String {
    let mut b = [0u8; TOKEN_BYTES];
    OsRng.fill_bytes(&mut b);
    URL_SAFE_NO_PAD.encode(b)
}

/// The token that replaces `token` when it is used: HMAC-SHA256 under the
/// server key, so it is as unguessable as a random one to anyone without that
/// key, yet the server can name it again. That is what makes the reuse
/// interval possible while only hashes are stored: a double-submitted token
/// (a mobile app retrying on a flaky network) gets the successor its first
/// use created, instead of a 401 and a revoked session.
pub fn successor(key: &[u8], token: &str) -> anyhow::Result<String> {
    use hmac::{Hmac, Mac};
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
        .map_err(|e| anyhow::anyhow!("refresh key rejected: {e}"))?;
    mac.update(b"booking.refresh.successor\0");
    mac.update(token.as_bytes());
    Ok(URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
}

pub fn hash_refresh_token(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_hash_to_32_bytes() {
        let a = new_refresh_token();
        let b = new_refresh_token();
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert_eq!(hash_refresh_token(&a).len(), 32);
        assert_ne!(hash_refresh_token(&a), hash_refresh_token(&b));
    }
}
