//! Client version strings as Seata parses them (spec §11.3), used to gate enum tables and
//! batching formats per connection.

use crate::enums::ExceptionCodeGeneration;

/// A parsed `major.minor.patch[.extra]` version, ordered numerically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClientVersion(u64);

/// A version string Seata itself would reject.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    #[error("empty version string")]
    Empty,
    #[error("version {0:?} has more than four dot-separated parts")]
    TooManyParts(String),
}

impl std::fmt::Display for ClientVersion {
    /// `major.minor.patch`, with a fourth part only when the version had one.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (major, minor, patch, extra) = (
            self.0 / 1_000_000,
            self.0 / 10_000 % 100,
            self.0 / 100 % 100,
            self.0 % 100,
        );
        write!(f, "{major}.{minor}.{patch}")?;
        if extra != 0 {
            write!(f, ".{extra}")?;
        }
        Ok(())
    }
}

impl ClientVersion {
    pub const V0_7_1: ClientVersion = ClientVersion::new(0, 7, 1);
    pub const V1_5_0: ClientVersion = ClientVersion::new(1, 5, 0);
    pub const V1_7_0: ClientVersion = ClientVersion::new(1, 7, 0);
    pub const V2_0_0: ClientVersion = ClientVersion::new(2, 0, 0);
    pub const V2_3_0: ClientVersion = ClientVersion::new(2, 3, 0);
    pub const V2_4_0: ClientVersion = ClientVersion::new(2, 4, 0);
    /// seata-all 2.6.0 compresses LZ4 bodies in the LZ4 frame format.
    pub const V2_6_0: ClientVersion = ClientVersion::new(2, 6, 0);
    /// What a connection that has not registered yet is treated as: the newest layout.
    pub const NEWEST: ClientVersion = ClientVersion::new(99, 0, 0);

    pub const fn new(major: u64, minor: u64, patch: u64) -> ClientVersion {
        ClientVersion(major * 1_000_000 + minor * 10_000 + patch * 100)
    }

    /// Parses as Java's `Version.convertVersion` does: each part is its number, or the number
    /// before the first `-`, or 0 when not numeric.
    pub fn parse(text: &str) -> Result<ClientVersion, VersionError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(VersionError::Empty);
        }
        let parts: Vec<&str> = text.split('.').collect();
        if parts.len() > 4 {
            return Err(VersionError::TooManyParts(text.to_owned()));
        }
        let weights = [1_000_000u64, 10_000, 100, 1];
        let mut value = 0u64;
        for (part, weight) in parts.iter().zip(weights) {
            let numeric = part.split('-').next().unwrap_or("");
            let number: u64 = numeric.parse().unwrap_or(0);
            value = value.saturating_add(number.min(99).saturating_mul(weight));
        }
        Ok(ClientVersion(value))
    }

    /// Which TransactionExceptionCode ordinal table this client decodes with.
    pub fn exception_code_generation(self) -> ExceptionCodeGeneration {
        if self >= Self::V2_0_0 {
            ExceptionCodeGeneration::V2
        } else if self >= Self::V1_7_0 {
            ExceptionCodeGeneration::V1_7
        } else if self >= Self::V1_5_0 {
            ExceptionCodeGeneration::V1_5
        } else {
            ExceptionCodeGeneration::V1_4
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_as_parsed() {
        for text in ["2.6.0", "1.8.1", "0.7.1", "1.5.2.3"] {
            assert_eq!(ClientVersion::parse(text).unwrap().to_string(), text);
        }
        assert_eq!(
            ClientVersion::parse("2.0.0-SNAPSHOT").unwrap().to_string(),
            "2.0.0"
        );
    }

    #[test]
    fn parses_like_java() {
        assert_eq!(
            ClientVersion::parse("2.7.0-SNAPSHOT"),
            Ok(ClientVersion::new(2, 7, 0))
        );
        assert_eq!(
            ClientVersion::parse("1.5.2"),
            Ok(ClientVersion::new(1, 5, 2))
        );
        assert!(
            ClientVersion::parse("1.5.2").expect("valid")
                > ClientVersion::parse("1.5").expect("valid")
        );
        assert_eq!(ClientVersion::parse(""), Err(VersionError::Empty));
        assert!(matches!(
            ClientVersion::parse("1.2.3.4.5"),
            Err(VersionError::TooManyParts(_))
        ));
        assert_eq!(ClientVersion::parse("x.y"), Ok(ClientVersion::new(0, 0, 0)));
    }
}
