//! Whether an account still accepts a token: the account exists, is not
//! disabled, the token's generation is current and the token was not
//! revoked one by one (logout). The account's role is read here too, so a
//! demoted admin loses admin on their next request, whatever the token says.
//!
//! Account states are cached per process for at most [`CACHE_TTL`]; a
//! change made through this process (logout, an admin's change) forgets
//! the cached state at once, and other processes see it within the TTL.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kassa_common::db::Db;
use kassa_common::domain::account::Role;
use kassa_common::store::users::{self, AccountState};

use super::tokens::VerifiedToken;
use crate::error::ApiError;

/// The longest a cached account state is trusted.
pub const CACHE_TTL: Duration = Duration::from_secs(2);
/// Cached accounts kept before the cache is emptied (bounds its memory).
const CACHE_CAPACITY: usize = 100_000;

#[derive(Clone)]
struct Cached {
    state: Option<AccountState>,
    fetched: Instant,
}

/// The per-process cache of account states.
#[derive(Clone, Default)]
pub struct Sessions {
    cache: Arc<Mutex<HashMap<i64, Cached>>>,
}

impl Sessions {
    /// The role `token` acts with, or 401 if its account no longer accepts it.
    pub async fn check(&self, db: &Db, token: &VerifiedToken) -> Result<Role, ApiError> {
        let state = match self.cached(token.user_id) {
            Some(state) => state,
            None => {
                let mut conn = db.pool().acquire().await?;
                let state = users::account_state(&mut conn, token.user_id).await?;
                self.remember(token.user_id, state.clone());
                state
            }
        };
        let Some(state) = state else {
            return Err(ApiError::Unauthorized("the account no longer exists"));
        };
        if state.disabled {
            return Err(ApiError::Unauthorized("the account is disabled"));
        }
        let revoked = token.generation < state.token_generation
            || token.token_id.as_ref().is_some_and(|id| state.revoked_tokens.contains(id));
        if revoked {
            return Err(ApiError::Unauthorized("the bearer token was revoked"));
        }
        Ok(state.role)
    }

    /// Forgets an account's cached state after changing it.
    pub fn forget(&self, user_id: i64) {
        self.cache.lock().unwrap_or_else(|e| e.into_inner()).remove(&user_id);
    }

    fn cached(&self, user_id: i64) -> Option<Option<AccountState>> {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.get(&user_id).filter(|entry| entry.fetched.elapsed() < CACHE_TTL).map(|entry| entry.state.clone())
    }

    fn remember(&self, user_id: i64, state: Option<AccountState>) {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= CACHE_CAPACITY {
            cache.clear();
        }
        cache.insert(user_id, Cached { state, fetched: Instant::now() });
    }
}
