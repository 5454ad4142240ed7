//! Who may use the admin API: the operators of `[[admin.tokens]]`, each known by the SHA-256
//! of a secret token (no default token, nothing kept in clear). Without any, reads are open to
//! whoever reaches the listener (loopback by default) and every action is refused.

use sha2::{Digest, Sha256};

use crate::config::{AdminToken, ConfigError};

/// The shortest token `ferrata-server hash-token` accepts: guessing must be hopeless.
pub const MIN_TOKEN_CHARS: usize = 24;

/// The configured operators.
#[derive(Debug, Clone, Default)]
pub struct Operators {
    tokens: Vec<(String, [u8; 32])>,
}

/// The SHA-256 of `token`, in lower-case hex (what `[[admin.tokens]] sha256` holds).
pub fn hash_token(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

fn parse_hex(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut digest = [0u8; 32];
    for (index, byte) in digest.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(index * 2..index * 2 + 2)?, 16).ok()?;
    }
    Some(digest)
}

impl Operators {
    pub fn new(tokens: &[AdminToken]) -> Result<Operators, ConfigError> {
        let mut operators = Operators::default();
        for token in tokens {
            let name = token.name.trim();
            if name.is_empty() || operators.tokens.iter().any(|(n, _)| n == name) {
                return Err(ConfigError::Invalid {
                    key: "admin.tokens",
                    message: format!(
                        "every token needs a name of its own (got {:?}): it is who the audit log says acted",
                        token.name
                    ),
                });
            }
            let digest = parse_hex(&token.sha256).ok_or_else(|| ConfigError::Invalid {
                key: "admin.tokens",
                message: format!(
                    "the sha256 of {name} is not 64 hex digits: make it with `ferrata-server \
                     hash-token` (the token itself never goes into the configuration)"
                ),
            })?;
            operators.tokens.push((name.to_owned(), digest));
        }
        Ok(operators)
    }

    /// No token configured: reads only.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// The operator whose token `bearer` is, if any. Every configured digest is compared, each
    /// in full, so the time taken says nothing about which one (nearly) matched.
    pub fn identify(&self, bearer: &str) -> Option<&str> {
        let presented = Sha256::digest(bearer.as_bytes());
        let mut found = None;
        for (name, digest) in &self.tokens {
            let difference = digest
                .iter()
                .zip(presented.iter())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b));
            if difference == 0 {
                found = Some(name.as_str());
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_known_by_its_hash_only() {
        let secret = "correct horse battery staple";
        let operators = Operators::new(&[AdminToken {
            name: "alice".into(),
            sha256: hash_token(secret),
        }])
        .expect("valid");
        assert_eq!(operators.identify(secret), Some("alice"));
        assert_eq!(operators.identify("correct horse battery stapl"), None);
        assert_eq!(operators.identify(""), None);
    }

    #[test]
    fn malformed_or_unnamed_tokens_are_refused() {
        let bad_hash = AdminToken {
            name: "bob".into(),
            sha256: "abc".into(),
        };
        assert!(Operators::new(&[bad_hash]).is_err());
        let unnamed = AdminToken {
            name: " ".into(),
            sha256: hash_token("x"),
        };
        assert!(Operators::new(&[unnamed]).is_err());
    }
}
