//! Argon2id password hashing with OWASP's parameters (m = 19 MiB, t = 2,
//! p = 1), run on blocking threads with a cap on concurrent hashes so a flood
//! of logins cannot exhaust memory or starve the async runtime.

use std::sync::Arc;
use std::time::Duration;

use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

/// How long a request waits for a hashing slot before it is told to retry.
const PERMIT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why hashing could not be done.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// Every hashing slot stayed busy for too long.
    #[error("password hashing is saturated")]
    Saturated,
    /// The hash function failed or its thread panicked.
    #[error("password hashing failed: {0}")]
    Failed(String),
}

/// Hashes and verifies passwords.
#[derive(Clone)]
pub struct Passwords {
    permits: Arc<Semaphore>,
    /// A hash of a random password, verified against when the user is
    /// unknown so that both failures take the same time.
    dummy_hash: Arc<String>,
}

fn argon2() -> Argon2<'static> {
    let params = Params::new(19_456, 2, 1, None).expect("OWASP Argon2id parameters are within Argon2's bounds");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

impl Passwords {
    /// A hasher running at most `max_concurrent` hashes at once.
    pub fn new(max_concurrent: usize) -> Result<Self, HashError> {
        let dummy_hash = argon2()
            .hash_password(uuid::Uuid::new_v4().to_string().as_bytes())
            .map_err(|e| HashError::Failed(e.to_string()))?
            .to_string();
        Ok(Self { permits: Arc::new(Semaphore::new(max_concurrent.max(1))), dummy_hash: Arc::new(dummy_hash) })
    }

    async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Result<T, HashError> {
        let _permit = tokio::time::timeout(PERMIT_TIMEOUT, self.permits.acquire())
            .await
            .map_err(|_| HashError::Saturated)?
            .map_err(|_| HashError::Saturated)?;
        tokio::task::spawn_blocking(work).await.map_err(|e| HashError::Failed(e.to_string()))
    }

    /// Hashes a new password into a PHC string with a fresh salt.
    pub async fn hash(&self, password: String) -> Result<String, HashError> {
        self.run(move || argon2().hash_password(password.as_bytes()).map(|h| h.to_string()))
            .await?
            .map_err(|e| HashError::Failed(e.to_string()))
    }

    /// Checks a password against a stored hash; with no hash (unknown user)
    /// it checks against a dummy so the answer takes as long and is `false`.
    pub async fn verify(&self, password: String, stored_hash: Option<String>) -> Result<bool, HashError> {
        let known = stored_hash.is_some();
        let hash = stored_hash.unwrap_or_else(|| self.dummy_hash.as_ref().clone());
        let matches = self.run(move || argon2().verify_password(password.as_bytes(), hash.as_str()).is_ok()).await?;
        Ok(known && matches)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_are_argon2id_with_owasp_parameters_and_verify() {
        let passwords = Passwords::new(2).expect("hasher");
        let hash = passwords.hash("correct horse".into()).await.expect("hash");
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
        assert!(passwords.verify("correct horse".into(), Some(hash.clone())).await.expect("verify"));
        assert!(!passwords.verify("wrong horse".into(), Some(hash)).await.expect("verify"));
    }

    #[tokio::test]
    async fn hashing_waits_for_a_free_slot() {
        let passwords = Passwords::new(1).expect("hasher");
        let held = passwords.permits.clone().acquire_owned().await.expect("permit");
        let blocked = tokio::time::timeout(Duration::from_millis(300), passwords.hash("correct horse".into())).await;
        assert!(blocked.is_err(), "a hash ran while every slot was taken");
        drop(held);
        passwords.hash("correct horse".into()).await.expect("hash once a slot is free");
    }

    #[tokio::test]
    async fn an_unknown_user_never_verifies() {
        let passwords = Passwords::new(1).expect("hasher");
        assert!(!passwords.verify("anything".into(), None).await.expect("verify"));
    }
}
