//! Random secrets for sessions, CSRF and API tokens, and the digest that is stored instead of
//! them.

use sha2::{Digest, Sha256};

use crate::error::ApiError;

/// 32 bytes from the operating system's generator, hex-encoded: unguessable, so a session or
/// token needs no signing key (nothing to hard-code or leak).
pub fn random_secret() -> Result<String, ApiError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| ApiError::internal(format_args!("no randomness: {e}")))?;
    Ok(crate::store::hex(&bytes))
}

/// What the database keeps of a secret.
pub fn digest(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// Compares two secrets in time independent of where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (digest(a), digest(b));
    a.iter().zip(&b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_differ_and_compare() -> Result<(), ApiError> {
        let (a, b) = (random_secret()?, random_secret()?);
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        assert!(same_secret(&a, &a.clone()));
        assert!(!same_secret(&a, &b));
        Ok(())
    }
}
