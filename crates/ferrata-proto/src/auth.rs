//! Registration signatures (spec §8.2): the `extraData` of RegisterTM/RegisterRM — `key=value`
//! pairs each ended by `\n` — and Seata's `V4` signature of it, as the Java client computes it
//! (`DefaultAuthSigner` + `RamSignAdapter`, identical in 1.5.0 – 2.6.0):
//!
//! * digest source: `<transactionServiceGroup>,<ip>,<timestamp ms>` (`ip` is the client's own
//!   address, `127.0.0.1` when it has none);
//! * signing key: HMAC-SHA256 chain `k1 = H("aliyun_v4" + secret, yyyyMMdd)` (the UTC date of the
//!   timestamp), `k2 = H(k1, "cn-beijing")`, `k3 = H(k2, "seata")`, `k4 = H(k3, "aliyun_v4_request")`;
//! * digest: standard Base64 (with padding) of `H(k4, digest source)`.
//!
//! The client sends `ak=`, `digest=`, `timestamp=`, `authVersion=V4`, then `vgroup=` and `ip=`.
//! Without a secret key Java sends the unsigned digest source as the digest (and `ak=null`).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// `authVersion` of the only signature scheme Java clients implement (1.5.0 and later).
pub const AUTH_VERSION_V4: &str = "V4";

/// extraData keys (Java's `RegisterTMRequest.UDATA_*`).
pub const KEY_ACCESS_KEY: &str = "ak";
pub const KEY_DIGEST: &str = "digest";
pub const KEY_TIMESTAMP: &str = "timestamp";
pub const KEY_AUTH_VERSION: &str = "authVersion";
pub const KEY_VGROUP: &str = "vgroup";
pub const KEY_IP: &str = "ip";

/// The IP the Java client signs with when it cannot find its own.
pub const FALLBACK_IP: &str = "127.0.0.1";

/// The value of the first `key=value` line of `extra_data` whose key is `key` (values may
/// contain `=`, as Base64 padding does).
pub fn extra_value<'a>(extra_data: &'a str, key: &str) -> Option<&'a str> {
    extra_data
        .split('\n')
        .filter_map(|line| line.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

/// The string the client signs: `group,ip,timestamp`.
pub fn digest_source(group: &str, ip: &str, timestamp_ms: &str) -> String {
    format!("{group},{ip},{timestamp_ms}")
}

/// The `V4` digest of `source` under `secret_key`, as Java's `RamSignAdapter.getRamSign`:
/// the date comes from the third comma-separated field of `source` (the timestamp). `None` when
/// that field is missing or not a timestamp (Java throws there), e.g. when the group contains a
/// comma.
pub fn sign_v4(secret_key: &str, source: &str) -> Option<String> {
    let mac = source_mac(secret_key, source)?;
    Some(STANDARD.encode(mac.finalize().into_bytes()))
}

/// Whether `digest` (Base64) is the `V4` digest of `source` under `secret_key`; the MAC
/// comparison is constant-time.
pub fn verify_v4(secret_key: &str, source: &str, digest: &str) -> bool {
    let Ok(claimed) = STANDARD.decode(digest) else {
        return false;
    };
    match source_mac(secret_key, source) {
        Some(mac) => mac.verify_slice(&claimed).is_ok(),
        None => false,
    }
}

/// The extraData of a signed registration, in the Java TM's order: `ak`, `digest`, `timestamp`,
/// `authVersion`, `vgroup`, `ip`. `None` as [`sign_v4`].
pub fn signed_extra_data(
    access_key: &str,
    secret_key: &str,
    group: &str,
    ip: &str,
    timestamp_ms: i64,
) -> Option<String> {
    let timestamp = timestamp_ms.to_string();
    let digest = sign_v4(secret_key, &digest_source(group, ip, &timestamp))?;
    Some(format!(
        "{KEY_ACCESS_KEY}={access_key}\n{KEY_DIGEST}={digest}\n{KEY_TIMESTAMP}={timestamp}\n\
         {KEY_AUTH_VERSION}={AUTH_VERSION_V4}\n{KEY_VGROUP}={group}\n{KEY_IP}={ip}\n"
    ))
}

/// HMAC of `source` keyed by the V4 signing key of its timestamp's date.
fn source_mac(secret_key: &str, source: &str) -> Option<HmacSha256> {
    let timestamp: i64 = source.split(',').nth(2)?.parse().ok()?;
    let date = utc_date(timestamp)?;
    let mut key = hmac(format!("aliyun_v4{secret_key}").as_bytes(), date.as_bytes());
    for part in ["cn-beijing", "seata", "aliyun_v4_request"] {
        key = hmac(&key, part.as_bytes());
    }
    let mut mac = HmacSha256::new_from_slice(&key).ok()?;
    mac.update(source.as_bytes());
    Some(mac)
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length; this cannot fail.
    let mut mac = HmacSha256::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// `yyyyMMdd` of the UTC day containing `timestamp_ms`, as Java computes it
/// (`LocalDateTime.ofEpochSecond(ts / 1000, 0, UTC)`); `None` outside years 0–9999.
pub fn utc_date(timestamp_ms: i64) -> Option<String> {
    let days = (timestamp_ms / 1000).div_euclid(86_400);
    // Days to civil date (proleptic Gregorian), after Howard Hinnant's `civil_from_days`.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (0..=9999)
        .contains(&year)
        .then(|| format!("{year:04}{month:02}{day:02}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_utc_days() {
        assert_eq!(utc_date(0).as_deref(), Some("19700101"));
        assert_eq!(utc_date(86_399_999).as_deref(), Some("19700101"));
        assert_eq!(utc_date(86_400_000).as_deref(), Some("19700102"));
        // 2024-02-29T23:59:59.999Z and the next millisecond.
        assert_eq!(utc_date(1_709_251_199_999).as_deref(), Some("20240229"));
        assert_eq!(utc_date(1_709_251_200_000).as_deref(), Some("20240301"));
        assert_eq!(utc_date(1_735_689_600_000).as_deref(), Some("20250101"));
        assert_eq!(utc_date(253_402_300_800_000), None);
    }

    #[test]
    fn extra_data_values_keep_base64_padding() {
        let extra = "ak=AK\ndigest=abc=\ntimestamp=1\nauthVersion=V4\nvgroup=g\nip=10.0.0.1\n";
        assert_eq!(extra_value(extra, "digest"), Some("abc="));
        assert_eq!(extra_value(extra, "ip"), Some("10.0.0.1"));
        assert_eq!(extra_value(extra, "missing"), None);
        assert_eq!(extra_value("", "ak"), None);
    }

    /// Digests computed by the real clients: `RamSignAdapter.getRamSign(source, secret)` of
    /// org.apache.seata:seata-all 2.6.0 and `DefaultAuthSigner.sign` of io.seata:seata-all
    /// 1.8.0 (run in jshell with each jar) give these same strings.
    #[test]
    fn known_answers_from_the_java_clients() {
        let vectors = [
            (
                "secret",
                "my_group,10.0.0.7,1718000000000",
                "AMD8tGHjBnltBQ1zgnfscMECujSfIa3Pwdg9hLW7vnQ=",
            ),
            (
                "SK",
                "default_tx_group,127.0.0.1,1700000000000",
                "dlK8HmKjyMMXZDlZLv7E0GgXYPGL4up4pJ5VIJjHvME=",
            ),
            // Non-ASCII secret (UTF-8), last millisecond of 2024-02-29 UTC ...
            (
                "s3cr3t-ключ",
                "g,192.168.1.2,1709251199999",
                "q/BFHwNrolXpXevU9mSb4yCWQYKZvGpBUa4osuC8uT8=",
            ),
            // ... and the next one: another day, so another signing key.
            (
                "s3cr3t-ключ",
                "g,192.168.1.2,1709251200000",
                "2MGog/9AuJduV9LEjJKO57kU/1a3WaNebd52KOUX6xI=",
            ),
        ];
        for (secret, source, digest) in vectors {
            assert_eq!(sign_v4(secret, source).as_deref(), Some(digest), "{source}");
            assert!(verify_v4(secret, source, digest), "{source}");
        }
    }

    #[test]
    fn signatures_verify_only_with_their_key_and_source() {
        let source = digest_source("my_group", "10.0.0.7", "1718000000000");
        let digest = sign_v4("secret", &source).expect("signable");
        assert_eq!(digest.len(), 44, "Base64 of 32 bytes, padded");
        assert!(verify_v4("secret", &source, &digest));
        assert!(!verify_v4("Secret", &source, &digest));
        let other = digest_source("my_group", "10.0.0.8", "1718000000000");
        assert!(!verify_v4("secret", &other, &digest));
        assert!(!verify_v4("secret", &source, "not base64!"));
        assert!(!verify_v4("secret", &source, ""));
        // A group with a comma moves the timestamp out of the third field: Java cannot sign it.
        assert_eq!(sign_v4("secret", "a,b,10.0.0.7,1718000000000"), None);
    }

    #[test]
    fn signed_extra_data_has_the_java_layout() {
        let extra =
            signed_extra_data("AK", "SK", "g", "10.0.0.1", 1_718_000_000_000).expect("signs");
        let keys: Vec<&str> = extra
            .lines()
            .filter_map(|l| l.split_once('=').map(|(k, _)| k))
            .collect();
        assert_eq!(
            keys,
            ["ak", "digest", "timestamp", "authVersion", "vgroup", "ip"]
        );
        assert!(extra.ends_with('\n'));
        let digest = extra_value(&extra, "digest").expect("digest");
        assert!(verify_v4("SK", "g,10.0.0.1,1718000000000", digest));
    }
}
