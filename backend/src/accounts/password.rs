//! Password hashing with argon2id (OWASP's first choice), always on a blocking thread: one hash
//! takes tens of milliseconds of CPU by design and must not stall the async executor.

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

use crate::error::ApiError;

/// The PHC string (`$argon2id$v=19$m=…`) of `password` with a fresh random salt.
pub async fn hash(password: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(password.as_bytes())
            .map(|hash| hash.to_string())
            .map_err(|e| ApiError::internal(format_args!("cannot hash a password: {e}")))
    })
    .await
    .map_err(ApiError::internal)?
}

/// Whether `password` matches a stored PHC string. A stored string that does not parse counts
/// as no match (and is logged), never as a server error the caller could probe.
pub async fn verify(password: String, stored: String) -> Result<bool, ApiError> {
    tokio::task::spawn_blocking(
        move || match Argon2::default().verify_password(password.as_bytes(), stored.as_str()) {
            Ok(()) => true,
            Err(argon2::password_hash::Error::PasswordInvalid) => false,
            Err(error) => {
                tracing::error!(%error, "a stored password hash does not verify");
                false
            }
        },
    )
    .await
    .map_err(ApiError::internal)
}

/// A hash to verify against when the username is unknown, so a wrong username takes as long as
/// a wrong password and logins do not reveal which accounts exist.
pub async fn decoy() -> Result<String, ApiError> {
    static DECOY: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    DECOY
        .get_or_try_init(|| hash("not anybody's password".to_owned()))
        .await
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn verifies_only_the_same_password() -> Result<(), ApiError> {
        let stored = hash("correct horse".into()).await?;
        assert!(stored.starts_with("$argon2id$"), "{stored}");
        assert!(verify("correct horse".into(), stored.clone()).await?);
        assert!(!verify("correct hors".into(), stored.clone()).await?);
        // Salted: the same password hashes differently each time.
        assert_ne!(stored, hash("correct horse".into()).await?);
        assert!(!verify("x".into(), "not a hash".into()).await?);
        Ok(())
    }
}
