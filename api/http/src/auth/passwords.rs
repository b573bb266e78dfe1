//! Argon2id password hashing with OWASP's parameters (m = 19 MiB, t = 2,
//! p = 1), run on blocking threads with a cap on concurrent hashes so a flood
//! of logins cannot exhaust memory or starve the async runtime.

use std::sync::Arc;
use std::time::Duration;

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use rand::RngCore;
use subtle::ConstantTimeEq;
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

fn owasp_params() -> Params {
    Params::new(19_456, 2, 1, None).expect("OWASP Argon2id parameters are within Argon2's bounds")
}

/// Capacity of Argon2's working memory, in 1 KiB blocks. Above glibc's
/// largest mmap threshold (32 MiB), so the 19 MiB actually used are always a
/// fresh mapping that goes back to the OS when the hash ends. Left to the
/// crate, each hash allocates exactly 19 MiB, which glibc serves from (and
/// keeps in) per-thread heaps: hundreds of MiB after a burst of logins.
const WORKING_MEMORY_CAPACITY_BLOCKS: usize = 33 * 1024;

/// Runs Argon2 with working memory that is returned to the OS afterwards.
fn compute(argon2: &Argon2<'_>, params: &Params, password: &[u8], salt: &[u8], out: &mut [u8]) -> Result<(), String> {
    let blocks = params.block_count();
    let mut memory: Vec<Block> = Vec::with_capacity(WORKING_MEMORY_CAPACITY_BLOCKS.max(blocks));
    memory.resize(blocks, Block::default());
    argon2.hash_password_into_with_memory(password, salt, out, &mut memory).map_err(|e| e.to_string())
}

/// A PHC string (`$argon2id$v=19$m=19456,t=2,p=1$salt$hash`) for a new password.
fn hash_phc(password: &[u8]) -> Result<String, String> {
    let params = owasp_params();
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    compute(&argon2, &params, password, &salt, &mut out)?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(|e| e.to_string())?,
        salt: Some(Salt::new(&salt).map_err(|e| e.to_string())?),
        hash: Some(Output::new(&out).map_err(|e| e.to_string())?),
    };
    Ok(phc.to_string())
}

/// Whether `password` matches a stored PHC string, with the parameters the
/// string records (so hashes made with other parameters still verify).
fn verify_phc(password: &[u8], stored: &str) -> bool {
    let Ok(phc) = PasswordHash::new(stored) else { return false };
    let (Some(salt), Some(expected)) = (&phc.salt, &phc.hash) else { return false };
    let Ok(params) = Params::try_from(&phc) else { return false };
    let Ok(algorithm) = Algorithm::try_from(phc.algorithm.as_str()) else { return false };
    let version = match phc.version.map(Version::try_from) {
        Some(Ok(version)) => version,
        Some(Err(_)) => return false,
        None => Version::V0x13,
    };
    let argon2 = Argon2::new(algorithm, version, params.clone());
    let mut out = vec![0u8; expected.len()];
    compute(&argon2, &params, password, salt, &mut out).is_ok() && bool::from(out.ct_eq(expected.as_bytes()))
}

impl Passwords {
    /// A hasher running at most `max_concurrent` hashes at once.
    pub fn new(max_concurrent: usize) -> Result<Self, HashError> {
        let dummy_hash = hash_phc(uuid::Uuid::new_v4().to_string().as_bytes()).map_err(HashError::Failed)?;
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
        self.run(move || hash_phc(password.as_bytes())).await?.map_err(HashError::Failed)
    }

    /// Checks a password against a stored hash; with no hash (unknown user)
    /// it checks against a dummy so the answer takes as long and is `false`.
    pub async fn verify(&self, password: String, stored_hash: Option<String>) -> Result<bool, HashError> {
        let known = stored_hash.is_some();
        let hash = stored_hash.unwrap_or_else(|| self.dummy_hash.as_ref().clone());
        let matches = self.run(move || verify_phc(password.as_bytes(), &hash)).await?;
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

    #[test]
    fn hashes_made_by_the_argon2_crate_itself_still_verify() {
        use argon2::password_hash::PasswordHasher as _;
        let crate_hash = Argon2::new(Algorithm::Argon2id, Version::V0x13, owasp_params())
            .hash_password(b"correct horse")
            .expect("hash")
            .to_string();
        assert!(verify_phc(b"correct horse", &crate_hash));
        assert!(!verify_phc(b"wrong horse", &crate_hash));
        assert!(!verify_phc(b"correct horse", "not a phc string"));
    }

    #[tokio::test]
    async fn an_unknown_user_never_verifies() {
        let passwords = Passwords::new(1).expect("hasher");
        assert!(!passwords.verify("anything".into(), None).await.expect("verify"));
    }
}
