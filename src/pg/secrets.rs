//! Secrets generated on first use of a data dir and kept in it (mode 0600):
//! the cluster's passwords and the JWT secret, so that `booking token` and
//! `booking serve` started with the same data dir agree.

use anyhow::Context;
use rand::distributions::Alphanumeric;
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

#[derive(Clone, Serialize, Deserialize)]
pub struct Secrets {
    pub admin_password: String,
    pub login_password: String,
    pub jwt_secret: String,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secrets(..)")
    }
}

fn random(n: usize) -> String {
    rand::rngs::OsRng
        .sample_iter(&Alphanumeric)
        .take(n)
        .map(char::from)
        .collect()
}

impl Secrets {
    pub fn load_or_create(data_dir: &Path) -> anyhow::Result<Secrets> {
        let path = data_dir.join("secrets.json");
        if path.exists() {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            return serde_json::from_str(&text)
                .with_context(|| format!("{} is damaged", path.display()));
        }
        let s = Secrets {
            admin_password: random(32),
            login_password: random(32),
            jwt_secret: random(64),
        };
        let tmp = data_dir.join("secrets.json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(&s)?)?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
        std::fs::rename(&tmp, &path)?;
        Ok(s)
    }
}
