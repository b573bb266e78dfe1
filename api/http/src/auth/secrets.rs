//! The secrets the API needs, never built in: the JWT signing key (given, or
//! generated once and kept in the data directory with mode 0600 so restarts
//! keep sessions valid) and the admin bootstrap secret (given, or generated
//! for this run and logged once).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;

/// File in the data directory holding the generated JWT key.
pub const JWT_KEY_FILE: &str = "jwt-secret.key";

fn random_secret(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

/// The JWT key: `configured` when set, else the key file in `data_dir`,
/// created with a fresh random key on first start.
pub fn jwt_secret(configured: Option<&str>, data_dir: &Path) -> anyhow::Result<Vec<u8>> {
    if let Some(secret) = configured {
        if secret.len() < 32 {
            tracing::warn!("KASSA_JWT_SECRET is shorter than 32 bytes; use a long random value");
        }
        return Ok(secret.as_bytes().to_vec());
    }
    let path = data_dir.join(JWT_KEY_FILE);
    match std::fs::read_to_string(&path) {
        Ok(existing) if existing.trim().len() >= 32 => return Ok(existing.trim().as_bytes().to_vec()),
        Ok(_) => anyhow::bail!("{} is too short to be a key; delete it to generate a new one", path.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("Failed to read {}", path.display())),
    }
    let secret = random_secret(48);
    let created = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path);
    match created {
        Ok(mut file) => {
            file.write_all(secret.as_bytes())
                .and_then(|()| file.sync_all())
                .with_context(|| format!("Failed to write {}", path.display()))?;
            tracing::info!(path = %path.display(), "generated a JWT signing key (set KASSA_JWT_SECRET to use your own)");
            Ok(secret.into_bytes())
        }
        // Another process created it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => jwt_secret(None, data_dir),
        Err(e) => Err(e).with_context(|| format!("Failed to create {}", path.display())),
    }
}

/// The admin bootstrap secret: `configured` when set, else a random one
/// generated now and logged once.
pub fn admin_secret(configured: Option<&str>) -> String {
    match configured {
        Some(secret) if !secret.is_empty() => secret.to_owned(),
        _ => {
            let secret = random_secret(24);
            tracing::warn!(
                "admin bootstrap secret for this run: {secret} (use it as secret_key in POST /auth/register-admin; set KASSA_ADMIN_SECRET to choose your own)"
            );
            secret
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn a_generated_jwt_key_is_private_and_survives_restarts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = jwt_secret(None, dir.path()).expect("generate");
        let second = jwt_secret(None, dir.path()).expect("reload");
        assert_eq!(first, second);
        assert!(first.len() >= 32);
        let mode = std::fs::metadata(dir.path().join(JWT_KEY_FILE)).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_configured_key_wins_and_generated_admin_secrets_differ() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(jwt_secret(Some("given"), dir.path()).expect("given"), b"given");
        assert!(!dir.path().join(JWT_KEY_FILE).exists());
        assert_ne!(admin_secret(None), admin_secret(None));
        assert_eq!(admin_secret(Some("s3cret")), "s3cret");
    }
}
