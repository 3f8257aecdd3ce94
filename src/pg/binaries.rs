//! Finding the PostgreSQL server binaries: `PG_BIN`, then `pg_config --bindir`,
//! then the newest `/usr/lib/postgresql/*/bin` (Debian/Ubuntu), then `PATH`.

use std::path::{Path, PathBuf};

fn has_server(dir: &Path) -> bool {
    dir.join("postgres").is_file() && dir.join("initdb").is_file()
}

pub fn find_bin_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("PG_BIN") {
        let dir = PathBuf::from(dir);
        if has_server(&dir) {
            return Ok(dir);
        }
        anyhow::bail!("PG_BIN={} holds no `postgres` and `initdb`", dir.display());
    }
    if let Ok(out) = std::process::Command::new("pg_config")
        .arg("--bindir")
        .output()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if out.status.success() && has_server(&dir) {
            return Ok(dir);
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v: u32 = e
                .file_name()
                .to_string_lossy()
                .split('.')
                .next()?
                .parse()
                .ok()?;
            let bin = e.path().join("bin");
            has_server(&bin).then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, dir)) = versions.pop() {
        return Ok(dir);
    }
    for dir in std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()) {
        if has_server(&dir) {
            return Ok(dir);
        }
    }
    anyhow::bail!(
        "no PostgreSQL server binaries found (looked at PG_BIN, pg_config --bindir, /usr/lib/postgresql/*/bin, PATH): \
         install them (e.g. `apt-get install postgresql`) or set DATABASE_URL to an existing PostgreSQL >= 14"
    )
}
