//! Bearer tokens: HS256 JWTs carrying the user id and role, with every
//! registered claim set and checked, and the algorithm pinned.

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode, get_current_timestamp};
use kassa_common::domain::account::Role;
use serde::{Deserialize, Serialize};

/// The `iss` claim of every token Kassa issues.
pub const ISSUER: &str = "kassa";
/// The `aud` claim of every token Kassa issues.
pub const AUDIENCE: &str = "kassa-api";
/// Longer tokens are refused before any parsing.
pub const MAX_TOKEN_BYTES: usize = 4096;
/// Clock skew tolerated on `exp` and `nbf`, in seconds.
const LEEWAY_SECS: u64 = 5;

/// The claims inside a Kassa token.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    /// The user id, as a string (RFC 7519).
    pub sub: String,
    /// The user's role when the token was issued.
    pub role: Role,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    /// Issue time.
    pub iat: u64,
    /// Not valid before.
    pub nbf: u64,
    /// Issuer.
    pub iss: String,
    /// Audience.
    pub aud: String,
    /// The token's own id, so one token can be revoked (logout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// The account's token generation at issue: raising it revokes every
    /// older token at once (an admin disabling the account).
    #[serde(default, rename = "gen")]
    pub generation: i64,
}

/// A freshly issued token.
#[derive(Clone, Debug)]
pub struct IssuedToken {
    /// The compact JWT.
    pub access_token: String,
    /// Seconds until it expires.
    pub expires_in: u64,
}

/// Why a token was refused.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Longer than [`MAX_TOKEN_BYTES`].
    #[error("token too long")]
    TooLong,
    /// Bad signature, algorithm, claims or timing.
    #[error("invalid token: {0}")]
    Invalid(#[from] jsonwebtoken::errors::Error),
    /// The subject is not a user id.
    #[error("invalid subject")]
    BadSubject,
}

/// Signing and verification keys with the validation rules.
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
    audience: &'static str,
}

impl TokenKeys {
    /// Keys from a shared secret; tokens live for `ttl`.
    pub fn new(secret: &[u8], ttl: Duration) -> Self {
        Self::for_audience(secret, ttl, AUDIENCE, LEEWAY_SECS)
    }

    /// Keys for tokens meant for `audience` only (a token for one audience
    /// is refused by keys for another), tolerating `leeway_secs` of skew.
    pub fn for_audience(secret: &[u8], ttl: Duration, audience: &'static str, leeway_secs: u64) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&[audience]);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "nbf", "iat", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.validate_exp = true;
        validation.leeway = leeway_secs;
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            ttl,
            audience,
        }
    }

    /// Issues a token for a user, with a fresh token id and the account's
    /// current token generation.
    pub fn issue(&self, user_id: i64, role: Role, generation: i64) -> Result<IssuedToken, jsonwebtoken::errors::Error> {
        let now = get_current_timestamp();
        let claims = Claims {
            sub: user_id.to_string(),
            role,
            exp: now + self.ttl.as_secs(),
            iat: now,
            nbf: now,
            iss: ISSUER.into(),
            aud: self.audience.into(),
            jti: Some(uuid::Uuid::new_v4().simple().to_string()),
            generation,
        };
        let access_token = encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)?;
        Ok(IssuedToken { access_token, expires_in: self.ttl.as_secs() })
    }

    /// Verifies a token's signature and claims. Whether its account still
    /// accepts it (not disabled, not revoked) is the sessions' call.
    pub fn verify(&self, token: &str) -> Result<VerifiedToken, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::TooLong);
        }
        let data = decode::<Claims>(token, &self.decoding, &self.validation)?;
        let user_id = data.claims.sub.parse::<i64>().map_err(|_| TokenError::BadSubject)?;
        Ok(VerifiedToken {
            user_id,
            role: data.claims.role,
            token_id: data.claims.jti,
            generation: data.claims.generation,
            expires_at_ms: i64::try_from(data.claims.exp).unwrap_or(i64::MAX / 1000).saturating_mul(1000),
        })
    }
}

/// A token whose signature and claims are valid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedToken {
    /// The account.
    pub user_id: i64,
    /// The role when it was issued (the account's current role wins).
    pub role: Role,
    /// Its id (`jti`); absent in tokens issued before logout existed.
    pub token_id: Option<String>,
    /// The account's token generation when it was issued.
    pub generation: i64,
    /// When it expires (Unix ms).
    pub expires_at_ms: i64,
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use super::*;

    fn keys() -> TokenKeys {
        TokenKeys::new(b"0123456789abcdef0123456789abcdef", Duration::from_secs(60))
    }

    fn forge(claims: &serde_json::Value, secret: &[u8]) -> String {
        encode(&Header::new(Algorithm::HS256), claims, &EncodingKey::from_secret(secret)).expect("encode")
    }

    fn claims(overrides: serde_json::Value) -> serde_json::Value {
        let now = get_current_timestamp();
        let mut claims = serde_json::json!({
            "sub": "7", "role": "customer", "exp": now + 60, "iat": now, "nbf": now,
            "iss": ISSUER, "aud": AUDIENCE,
        });
        if let (Some(base), Some(extra)) = (claims.as_object_mut(), overrides.as_object()) {
            for (k, v) in extra {
                base.insert(k.clone(), v.clone());
            }
        }
        claims
    }

    #[test]
    fn issued_tokens_verify() {
        let keys = keys();
        let token = keys.issue(42, Role::Admin, 3).expect("issue");
        let verified = keys.verify(&token.access_token).expect("verify");
        assert_eq!((verified.user_id, verified.role, verified.generation), (42, Role::Admin, 3));
        let other = keys.verify(&keys.issue(42, Role::Admin, 3).expect("issue").access_token).expect("verify");
        assert!(verified.token_id.is_some() && verified.token_id != other.token_id, "every token has its own id");
        assert_eq!(token.expires_in, 60);
    }

    #[test]
    fn wrong_key_expired_early_and_foreign_tokens_are_refused() {
        let keys = keys();
        let secret = b"0123456789abcdef0123456789abcdef";
        let now = get_current_timestamp();
        assert!(keys.verify(&forge(&claims(serde_json::json!({})), b"another key another key another!!")).is_err());
        assert!(keys.verify(&forge(&claims(serde_json::json!({"exp": now - 60})), secret)).is_err());
        assert!(keys.verify(&forge(&claims(serde_json::json!({"nbf": now + 600})), secret)).is_err());
        assert!(keys.verify(&forge(&claims(serde_json::json!({"aud": "someone-else"})), secret)).is_err());
        assert!(keys.verify(&forge(&claims(serde_json::json!({"iss": "evil"})), secret)).is_err());
        assert!(keys.verify(&forge(&claims(serde_json::json!({"sub": "root"})), secret)).is_err());
        assert!(keys.verify(&forge(&claims(serde_json::json!({})), secret)).is_ok());
    }

    #[test]
    fn alg_none_and_tampered_payloads_are_refused() {
        let keys = keys();
        let good = keys.issue(7, Role::Customer, 0).expect("issue").access_token;
        let parts: Vec<&str> = good.split('.').collect();
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        assert!(keys.verify(&format!("{header}.{}.", parts[1])).is_err());
        let admin = URL_SAFE_NO_PAD.encode(claims(serde_json::json!({"role": "admin"})).to_string());
        assert!(keys.verify(&format!("{}.{admin}.{}", parts[0], parts[2])).is_err());
        assert!(matches!(keys.verify(&"a".repeat(16 * 1024)), Err(TokenError::TooLong)));
    }
}
