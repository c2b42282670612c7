//! Unit tests of password hashing and tokens.

use argon2::password_hash::{PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use super::*;

#[tokio::test]
async fn passwords_verify_only_themselves() {
    let h = hash_password("correct horse").await.unwrap();
    assert!(h.starts_with("$argon2id$"));
    assert!(verify_password("correct horse", &h).await.unwrap());
    assert!(!verify_password("wrong horse", &h).await.unwrap());
    assert!(
        !verify_password("correct horse", "not a hash")
            .await
            .unwrap()
    );
    assert!(!verify_password("x", decoy_hash()).await.unwrap());
}

/// Hashing in reused memory gives standard PHC strings: the argon2 crate's own verifier
/// accepts ours, ours accepts its (so databases written before keep working), and a
/// block left dirty by one hash does not change the next.
#[tokio::test]
async fn reused_memory_hashes_are_standard() {
    use argon2::password_hash::{PasswordHasher, PasswordVerifier};
    let ours = hash_password("first password").await.unwrap();
    let _ = hash_password("something else entirely").await.unwrap();
    let again = hash_password("first password").await.unwrap();
    for h in [&ours, &again] {
        let parsed = PasswordHash::new(h).unwrap();
        assert!(
            Argon2::default()
                .verify_password(b"first password", &parsed)
                .is_ok()
        );
    }
    let salt = SaltString::encode_b64(b"sixteen bytes!!!").unwrap();
    let theirs = Argon2::default()
        .hash_password(b"their password", &salt)
        .unwrap()
        .to_string();
    assert!(verify_password("their password", &theirs).await.unwrap());
    assert!(!verify_password("their passwore", &theirs).await.unwrap());
    // Other parameters (a cheaper hash from some other tool) verify too.
    let cheap = Argon2::new(
        Algorithm::Argon2id,
        Version::V0x13,
        Params::new(1024, 1, 1, None).unwrap(),
    )
    .hash_password(b"cheap", &salt)
    .unwrap()
    .to_string();
    assert!(verify_password("cheap", &cheap).await.unwrap());
    assert!(!verify_password("cheaq", &cheap).await.unwrap());
}

#[test]
fn tokens_are_random_and_hashed() {
    let (a, ha) = new_token().unwrap();
    let (b, _) = new_token().unwrap();
    assert_eq!(a.len(), 64);
    assert_ne!(a, b);
    assert_eq!(hash_token(&a), ha);
}
