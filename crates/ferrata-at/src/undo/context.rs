//! The `undo_log.context` column: `k=v` pairs joined by `&`, read with the semantics of
//! Java's `CollectionUtils.decodeMap` (malformed pairs ignored, the last duplicate wins).

use std::fmt;

use super::compress::CompressorType;
use super::error::UndoError;

pub const SERIALIZER_KEY: &str = "serializer";
pub const COMPRESSOR_TYPE_KEY: &str = "compressorType";
/// MySQL's `max_allowed_packet`, recorded by the writer.
pub const MAX_ALLOWED_PACKET_KEY: &str = "map";
/// Chunk row ids on a MySQL main row, each followed by `,`.
pub const SUB_ID_KEY: &str = "subId";
/// The real branch id, on MySQL chunk rows.
pub const BRANCH_ID_KEY: &str = "branchId";

/// A parsed context, in insertion order (Java's is a HashMap: readers must not care).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UndoContext {
    entries: Vec<(String, String)>,
}

impl UndoContext {
    /// Parses a context string. Like Java, a pair counts only if splitting it at `=` leaves
    /// exactly two parts once trailing empty parts are dropped (`a=` and `a=b=c` are ignored,
    /// `a=b=` is `a` → `b`).
    pub fn parse(text: &str) -> UndoContext {
        let mut ctx = UndoContext::default();
        for pair in text.split('&') {
            let mut parts: Vec<&str> = pair.split('=').collect();
            while parts.last() == Some(&"") {
                parts.pop();
            }
            if let [key, value] = parts.as_slice() {
                ctx.set(key, value);
            }
        }
        ctx
    }

    /// The context Java's `buildContext` writes: serializer, compressor type, and `map` when
    /// the writer knows `max_allowed_packet` (Java writes `map=` on other databases).
    pub fn for_log(
        serializer: &str,
        compressor: CompressorType,
        max_allowed_packet: Option<&str>,
    ) -> UndoContext {
        let mut ctx = UndoContext::default();
        ctx.set(SERIALIZER_KEY, serializer);
        ctx.set(COMPRESSOR_TYPE_KEY, compressor.name());
        if let Some(map) = max_allowed_packet {
            ctx.set(MAX_ALLOWED_PACKET_KEY, map);
        }
        ctx
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Sets `key`, replacing an earlier value in place.
    pub fn set(&mut self, key: &str, value: &str) {
        match self.entries.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = value.to_string(),
            None => self.entries.push((key.to_string(), value.to_string())),
        }
    }

    pub fn remove(&mut self, key: &str) -> Option<String> {
        let i = self.entries.iter().position(|(k, _)| k == key)?;
        Some(self.entries.remove(i).1)
    }

    pub fn entries(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The serializer name; Java falls back to its configured default (`jackson`).
    pub fn serializer(&self) -> &str {
        self.get(SERIALIZER_KEY)
            .unwrap_or(super::jackson::SERIALIZER_NAME)
    }

    /// The compressor; absent means NONE (as Java's `getOrDefault`).
    pub fn compressor(&self) -> Result<CompressorType, UndoError> {
        match self.get(COMPRESSOR_TYPE_KEY) {
            None => Ok(CompressorType::None),
            Some(name) => CompressorType::from_name(name)
                .ok_or_else(|| UndoError::UnsupportedCompressor(name.to_string())),
        }
    }

    /// MySQL chunk row ids named by `subId`, in order (empty when the log is in one row).
    pub fn sub_ids(&self) -> Result<Vec<i64>, UndoError> {
        let Some(list) = self.get(SUB_ID_KEY) else {
            return Ok(Vec::new());
        };
        list.split(',')
            .filter(|s| !s.trim().is_empty())
            .map(|s| {
                s.trim()
                    .parse()
                    .map_err(|_| UndoError::InvalidSubIds(list.chars().take(64).collect()))
            })
            .collect()
    }
}

/// `k=v` pairs joined by `&`, as Java's `CollectionUtils.encodeMap`.
impl fmt::Display for UndoContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (k, v)) in self.entries.iter().enumerate() {
            if i > 0 {
                f.write_str("&")?;
            }
            write!(f, "{k}={v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_pairs_are_ignored_like_java() {
        let ctx = UndoContext::parse(
            "serializer=jackson&&map=&x&a=b=c&c=d=&=e&compressorType=zip&serializer=kryo",
        );
        assert_eq!(ctx.get("serializer"), Some("kryo"));
        assert_eq!(ctx.get("map"), None);
        assert_eq!(ctx.get("x"), None);
        assert_eq!(ctx.get("a"), None);
        assert_eq!(ctx.get("c"), Some("d"));
        assert_eq!(ctx.get(""), Some("e"));
        assert_eq!(ctx.compressor().expect("zip"), CompressorType::Zip);
        assert!(UndoContext::parse("").entries().next().is_none());
    }

    #[test]
    fn defaults_and_errors() {
        let ctx = UndoContext::parse("map=1");
        assert_eq!(ctx.serializer(), "jackson");
        assert_eq!(ctx.compressor().expect("none"), CompressorType::None);
        assert!(
            UndoContext::parse("compressorType=SNAPPY")
                .compressor()
                .is_err()
        );
        assert_eq!(
            UndoContext::parse("subId=3,1,2,").sub_ids().expect("ids"),
            [3, 1, 2]
        );
        assert!(UndoContext::parse("subId=3,x,").sub_ids().is_err());
    }

    #[test]
    fn formats_in_insertion_order() {
        let ctx = UndoContext::for_log("jackson", CompressorType::Zip, Some("4194304"));
        assert_eq!(
            ctx.to_string(),
            "serializer=jackson&compressorType=ZIP&map=4194304"
        );
        assert_eq!(UndoContext::parse(&ctx.to_string()), ctx);
    }
}
