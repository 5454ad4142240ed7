//! Client authentication (`[auth]`, off by default): registrations must carry a valid Seata
//! `V4` signature (ferrata-proto's `auth` module) made with the secret key of an access key
//! configured for the registering application.
//!
//! * A TM registration is accepted only when its extraData is signed: a known access key that
//!   belongs to its applicationId, `authVersion=V4`, a timestamp within the window of the
//!   server's clock, a matching digest (compared in constant time), and a digest not seen
//!   before within the window (a captured registration cannot be replayed).
//! * An RM registration is checked the same way when it carries a `digest` (the Rust SDK signs
//!   its RMs). Java and Go RMs cannot sign (their RegisterRM has empty extraData), so an unsigned
//!   RM is accepted only while a signed TM connection of the same applicationId is live from the
//!   same IP address — the same process or host, which has proved it holds the secret.
//! * Once a connection is accepted for an application, its later registrations for that
//!   application (RMs announcing more resources) are accepted without a new signature.
//! * A refused registration leaves the connection unregistered: its transaction requests close
//!   it, as on any unregistered connection.
//!
//! Refusals are logged with their reason (never with a secret) and answered `identified=false`.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferrata_proto::auth::{
    AUTH_VERSION_V4, FALLBACK_IP, KEY_ACCESS_KEY, KEY_AUTH_VERSION, KEY_DIGEST, KEY_IP,
    KEY_TIMESTAMP, digest_source, extra_value, verify_v4,
};
use serde::{Deserialize, Serialize};

/// Default tolerance between a client's timestamp and the server's clock: 5 minutes.
pub const DEFAULT_TIMESTAMP_WINDOW: Duration = Duration::from_secs(300);

/// At most this many recent digests are remembered against replays (oldest forgotten first).
const REPLAY_CAPACITY: usize = 100_000;

/// One access key: the application it belongs to and its secret.
#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AccessKey {
    pub application_id: String,
    pub access_key: String,
    /// Never written out (`--print-config` shows `<redacted>`).
    #[serde(serialize_with = "redacted")]
    pub secret_key: String,
}

fn redacted<S: serde::Serializer>(_: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str("<redacted>")
}

impl std::fmt::Debug for AccessKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessKey")
            .field("application_id", &self.application_id)
            .field("access_key", &self.access_key)
            .field("secret_key", &"<redacted>")
            .finish()
    }
}

/// The `[auth]` table of the configuration file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    pub enabled: bool,
    /// Largest accepted difference between a registration's timestamp and now.
    #[serde(with = "humantime_serde")]
    pub timestamp_window: Duration,
    /// Several keys may belong to one application (key rotation).
    pub keys: Vec<AccessKey>,
}

impl Default for AuthConfig {
    fn default() -> AuthConfig {
        AuthConfig {
            enabled: false,
            timestamp_window: DEFAULT_TIMESTAMP_WINDOW,
            keys: Vec::new(),
        }
    }
}

impl AuthConfig {
    /// Rejects configurations that cannot work: auth on without keys, empty fields, an access
    /// key listed twice, a zero window.
    pub fn validate(&self) -> anyhow::Result<()> {
        if !self.enabled {
            return Ok(());
        }
        anyhow::ensure!(
            !self.keys.is_empty(),
            "[auth] is enabled but has no [[auth.keys]]: every client would be refused"
        );
        anyhow::ensure!(
            !self.timestamp_window.is_zero(),
            "[auth] timestamp_window must be more than 0s"
        );
        let mut seen = std::collections::HashSet::new();
        for key in &self.keys {
            anyhow::ensure!(
                !key.application_id.is_empty()
                    && !key.access_key.is_empty()
                    && !key.secret_key.is_empty(),
                "[[auth.keys]] entries need a non-empty application_id, access_key and secret_key \
                 (access key {:?})",
                key.access_key
            );
            anyhow::ensure!(
                key.access_key != "null",
                "access key \"null\" is what Java clients send when none is configured"
            );
            anyhow::ensure!(
                seen.insert(key.access_key.as_str()),
                "access key {:?} is listed twice in [[auth.keys]]",
                key.access_key
            );
        }
        Ok(())
    }
}

/// Which registration is being checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Tm,
    Rm,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Tm => "TM",
            Role::Rm => "RM",
        })
    }
}

/// A registration as the checker sees it.
#[derive(Debug, Clone, Copy)]
pub struct Registration<'a> {
    pub role: Role,
    pub application_id: &'a str,
    pub group: &'a str,
    pub extra_data: &'a str,
    pub peer: IpAddr,
}

/// Why a registration was accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Authentication is off.
    Open,
    /// A valid signature made with this access key.
    Signed { access_key: String },
    /// An unsigned RM, while a signed TM of its application is live from its IP.
    ByLiveTm,
    /// The connection was already accepted for this application.
    SameConnection,
}

/// Why a registration was refused; the text is logged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(
        "the registration is not signed (no access key): configure the client's access key and secret key"
    )]
    Unsigned,
    #[error("the digest is unsigned (access key {access_key:?} but no secret key on the client)")]
    NoSecret { access_key: String },
    #[error("unknown access key {0:?}")]
    UnknownAccessKey(String),
    #[error("access key {access_key:?} belongs to application {expected:?}, not {got:?}")]
    WrongApplication {
        access_key: String,
        expected: String,
        got: String,
    },
    #[error("unsupported authVersion {0:?}: only V4 is known (clients before 1.5.0 cannot sign)")]
    AuthVersion(String),
    #[error("timestamp {0:?} is not a number of milliseconds")]
    BadTimestamp(String),
    #[error(
        "timestamp is {skew_ms} ms away from the server's clock (window {window_ms} ms): check the clocks"
    )]
    OutOfWindow { skew_ms: i64, window_ms: u64 },
    #[error("wrong signature for access key {access_key:?} (wrong secret key?)")]
    BadSignature { access_key: String },
    #[error("this signed registration was already used (replay)")]
    Replayed,
    #[error(
        "unsigned RM registration and no signed TM of application {application_id:?} is connected from {peer}: start the TM first (the RM retries)"
    )]
    UnsignedRm {
        application_id: String,
        peer: IpAddr,
    },
}

/// Per-connection authentication state, kept in the connection's session.
#[derive(Debug, Default)]
pub struct ConnAuth {
    application_id: Option<String>,
    /// Held while this connection is a signed TM; lets same-host RMs in.
    _live_tm: Option<LiveTm>,
}

/// Counts one live signed TM connection of (application, IP); uncounts it when dropped.
#[derive(Debug)]
struct LiveTm {
    live: Arc<Mutex<HashMap<(String, IpAddr), usize>>>,
    key: (String, IpAddr),
}

impl Drop for LiveTm {
    fn drop(&mut self) {
        let mut live = lock(&self.live);
        if let Some(count) = live.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                live.remove(&self.key);
            }
        }
    }
}

/// Digests accepted within the window, so that none is accepted twice.
#[derive(Debug, Default)]
struct ReplayGuard {
    seen: HashMap<String, i64>,
    order: VecDeque<(i64, String)>,
}

impl ReplayGuard {
    /// False when `digest` was accepted before and has not expired; else remembers it until
    /// `expires_ms`.
    fn first_use(&mut self, digest: &str, now_ms: i64, expires_ms: i64) -> bool {
        while let Some((expiry, _)) = self.order.front() {
            if *expiry > now_ms && self.order.len() < REPLAY_CAPACITY {
                break;
            }
            if let Some((expiry, old)) = self.order.pop_front()
                && self.seen.get(&old) == Some(&expiry)
            {
                self.seen.remove(&old);
            }
        }
        if self.seen.contains_key(digest) {
            return false;
        }
        self.seen.insert(digest.to_owned(), expires_ms);
        self.order.push_back((expires_ms, digest.to_owned()));
        true
    }
}

/// Checks registrations against the configured keys; shared by all connections.
#[derive(Debug)]
pub struct Authenticator {
    enabled: bool,
    window_ms: u64,
    keys: HashMap<String, AccessKey>,
    replay: Mutex<ReplayGuard>,
    live_tms: Arc<Mutex<HashMap<(String, IpAddr), usize>>>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Authenticator {
    pub fn new(config: &AuthConfig) -> Authenticator {
        Authenticator {
            enabled: config.enabled,
            window_ms: u64::try_from(config.timestamp_window.as_millis()).unwrap_or(u64::MAX),
            keys: config
                .keys
                .iter()
                .map(|k| (k.access_key.clone(), k.clone()))
                .collect(),
            replay: Mutex::new(ReplayGuard::default()),
            live_tms: Arc::default(),
        }
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Decides on a registration at `now_ms` (epoch ms), updating the connection's state.
    pub fn check(
        &self,
        conn: &mut ConnAuth,
        reg: &Registration<'_>,
        now_ms: i64,
    ) -> Result<Admission, Refusal> {
        if !self.enabled {
            return Ok(Admission::Open);
        }
        if conn.application_id.as_deref() == Some(reg.application_id) {
            return Ok(Admission::SameConnection);
        }
        let signed = extra_value(reg.extra_data, KEY_DIGEST).is_some();
        if reg.role == Role::Rm && !signed {
            let key = (reg.application_id.to_owned(), reg.peer);
            if lock(&self.live_tms).get(&key).is_some_and(|n| *n > 0) {
                conn.application_id = Some(reg.application_id.to_owned());
                return Ok(Admission::ByLiveTm);
            }
            return Err(Refusal::UnsignedRm {
                application_id: reg.application_id.to_owned(),
                peer: reg.peer,
            });
        }
        let access_key = self.verify(reg, now_ms)?;
        conn.application_id = Some(reg.application_id.to_owned());
        if reg.role == Role::Tm {
            let key = (reg.application_id.to_owned(), reg.peer);
            *lock(&self.live_tms).entry(key.clone()).or_insert(0) += 1;
            conn._live_tm = Some(LiveTm {
                live: self.live_tms.clone(),
                key,
            });
        }
        Ok(Admission::Signed { access_key })
    }

    /// Verifies the signature of a registration; returns its access key.
    fn verify(&self, reg: &Registration<'_>, now_ms: i64) -> Result<String, Refusal> {
        let extra = reg.extra_data;
        let access_key = match extra_value(extra, KEY_ACCESS_KEY) {
            None | Some("") | Some("null") => return Err(Refusal::Unsigned),
            Some(ak) => ak,
        };
        let digest = extra_value(extra, KEY_DIGEST).unwrap_or("");
        let timestamp = extra_value(extra, KEY_TIMESTAMP).unwrap_or("");
        let ip = extra_value(extra, KEY_IP)
            .filter(|ip| !ip.is_empty())
            .unwrap_or(FALLBACK_IP);
        let source = digest_source(reg.group, ip, timestamp);
        if digest == source {
            return Err(Refusal::NoSecret {
                access_key: access_key.to_owned(),
            });
        }
        let key = self
            .keys
            .get(access_key)
            .ok_or_else(|| Refusal::UnknownAccessKey(access_key.to_owned()))?;
        if key.application_id != reg.application_id {
            return Err(Refusal::WrongApplication {
                access_key: access_key.to_owned(),
                expected: key.application_id.clone(),
                got: reg.application_id.to_owned(),
            });
        }
        match extra_value(extra, KEY_AUTH_VERSION) {
            Some(AUTH_VERSION_V4) => {}
            other => return Err(Refusal::AuthVersion(other.unwrap_or("").to_owned())),
        }
        let stamp: i64 = timestamp
            .parse()
            .map_err(|_| Refusal::BadTimestamp(timestamp.to_owned()))?;
        let skew_ms = stamp.saturating_sub(now_ms);
        if skew_ms.unsigned_abs() > self.window_ms {
            return Err(Refusal::OutOfWindow {
                skew_ms,
                window_ms: self.window_ms,
            });
        }
        if !verify_v4(&key.secret_key, &source, digest) {
            return Err(Refusal::BadSignature {
                access_key: access_key.to_owned(),
            });
        }
        // Remember the digest for as long as its timestamp stays inside the window.
        let expires = stamp.saturating_add(i64::try_from(self.window_ms).unwrap_or(i64::MAX));
        if !lock(&self.replay).first_use(digest, now_ms, expires) {
            return Err(Refusal::Replayed);
        }
        Ok(access_key.to_owned())
    }

    /// [`Authenticator::check`] at the current time, logging a refusal; `Err` carries the
    /// reason a v2 client is told (never a secret).
    #[allow(clippy::too_many_arguments)]
    pub fn admit(
        &self,
        conn: &mut ConnAuth,
        peer: SocketAddr,
        role: Role,
        application_id: &str,
        group: &str,
        extra_data: &str,
    ) -> Result<(), String> {
        let reg = Registration {
            role,
            application_id,
            group,
            extra_data,
            peer: peer.ip(),
        };
        match self.check(conn, &reg, now_ms()) {
            Ok(Admission::Open | Admission::SameConnection) => Ok(()),
            Ok(admission) => {
                tracing::debug!(%peer, %role, application_id, ?admission, "registration authenticated");
                Ok(())
            }
            Err(reason) => {
                tracing::warn!(%peer, %role, application_id, group, %reason, "refusing registration: authentication failed");
                Err(format!("authentication failed: {reason}"))
            }
        }
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Logs a warning when a listener that other hosts can reach accepts unauthenticated clients.
pub fn warn_if_open(config: &AuthConfig, listener: &str, bound: SocketAddr) {
    if !config.enabled && !bound.ip().is_loopback() {
        tracing::warn!(
            %bound,
            listener,
            "client authentication is off and the server is reachable from other hosts: any client can \
             begin, commit and roll back transactions; enable [auth] (see docs/operations.md)"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrata_proto::auth::signed_extra_data;

    const NOW: i64 = 1_718_000_000_000;
    const APP: &str = "orders";
    const GROUP: &str = "default_tx_group";

    fn config() -> AuthConfig {
        AuthConfig {
            enabled: true,
            timestamp_window: Duration::from_secs(60),
            keys: vec![
                AccessKey {
                    application_id: APP.into(),
                    access_key: "AK1".into(),
                    secret_key: "SK1".into(),
                },
                AccessKey {
                    application_id: APP.into(),
                    access_key: "AK2".into(),
                    secret_key: "SK2".into(),
                },
                AccessKey {
                    application_id: "stock".into(),
                    access_key: "AK3".into(),
                    secret_key: "SK3".into(),
                },
            ],
        }
    }

    fn peer() -> IpAddr {
        IpAddr::from([10, 0, 0, 5])
    }

    fn reg(role: Role, extra_data: &str) -> Registration<'_> {
        Registration {
            role,
            application_id: APP,
            group: GROUP,
            extra_data,
            peer: peer(),
        }
    }

    fn signed(ak: &str, sk: &str, ts: i64) -> String {
        signed_extra_data(ak, sk, GROUP, "192.168.0.9", ts).expect("signable")
    }

    fn tm(auth: &Authenticator, extra: &str, now: i64) -> Result<Admission, Refusal> {
        auth.check(&mut ConnAuth::default(), &reg(Role::Tm, extra), now)
    }

    /// The extraData a Java 2.6.0 TM sends (layout of `TmNettyRemotingClient.getExtraData`
    /// followed by `RegisterTMRequest`'s vgroup and ip), with a digest the real
    /// `RamSignAdapter` computed for `default_tx_group,127.0.0.1,1700000000000` under "SK".
    #[test]
    fn accepts_a_java_signed_registration() {
        let auth = Authenticator::new(&AuthConfig {
            timestamp_window: Duration::from_secs(300),
            keys: vec![AccessKey {
                application_id: APP.into(),
                access_key: "AK".into(),
                secret_key: "SK".into(),
            }],
            ..config()
        });
        let java = "ak=AK\ndigest=dlK8HmKjyMMXZDlZLv7E0GgXYPGL4up4pJ5VIJjHvME=\ntimestamp=1700000000000\n\
                    authVersion=V4\nvgroup=default_tx_group\nip=127.0.0.1\n";
        assert_eq!(
            tm(&auth, java, 1_700_000_100_000),
            Ok(Admission::Signed {
                access_key: "AK".into()
            })
        );
    }

    #[test]
    fn accepts_any_key_of_the_application() {
        let auth = Authenticator::new(&config());
        for (ak, sk) in [("AK1", "SK1"), ("AK2", "SK2")] {
            assert_eq!(
                tm(&auth, &signed(ak, sk, NOW), NOW),
                Ok(Admission::Signed {
                    access_key: ak.into()
                })
            );
        }
    }

    #[test]
    fn refuses_unsigned_and_wrongly_signed_registrations() {
        let auth = Authenticator::new(&config());
        // Go and pre-1.5 Java: nothing; Java without keys: ak=null and the bare digest source.
        assert_eq!(tm(&auth, "", NOW), Err(Refusal::Unsigned));
        let java_no_keys = format!(
            "ak=null\ndigest={GROUP},192.168.0.9,{NOW}\ntimestamp={NOW}\nauthVersion=V4\nvgroup={GROUP}\nip=192.168.0.9\n"
        );
        assert_eq!(tm(&auth, &java_no_keys, NOW), Err(Refusal::Unsigned));
        let no_secret = java_no_keys.replace("ak=null", "ak=AK1");
        assert_eq!(
            tm(&auth, &no_secret, NOW),
            Err(Refusal::NoSecret {
                access_key: "AK1".into()
            })
        );
        assert_eq!(
            tm(&auth, &signed("AK1", "wrong", NOW), NOW),
            Err(Refusal::BadSignature {
                access_key: "AK1".into()
            })
        );
        // Another application's key, even correctly signed.
        assert_eq!(
            tm(&auth, &signed("AK3", "SK3", NOW), NOW),
            Err(Refusal::WrongApplication {
                access_key: "AK3".into(),
                expected: "stock".into(),
                got: APP.into()
            })
        );
        assert_eq!(
            tm(&auth, &signed("AK9", "SK1", NOW), NOW),
            Err(Refusal::UnknownAccessKey("AK9".into()))
        );
        let v3 = signed("AK1", "SK1", NOW).replace("authVersion=V4", "authVersion=V3");
        assert_eq!(tm(&auth, &v3, NOW), Err(Refusal::AuthVersion("V3".into())));
    }

    #[test]
    fn the_signature_covers_group_ip_and_timestamp() {
        let auth = Authenticator::new(&config());
        let good = signed("AK1", "SK1", NOW);
        let other_ip = good.replace("ip=192.168.0.9", "ip=192.168.0.10");
        let other_ts = good.replace(
            &format!("timestamp={NOW}"),
            &format!("timestamp={}", NOW + 1),
        );
        for tampered in [other_ip, other_ts] {
            assert!(matches!(
                tm(&auth, &tampered, NOW),
                Err(Refusal::BadSignature { .. })
            ));
        }
        let other_group = Registration {
            group: "other_group",
            ..reg(Role::Tm, &good)
        };
        assert!(matches!(
            auth.check(&mut ConnAuth::default(), &other_group, NOW),
            Err(Refusal::BadSignature { .. })
        ));
    }

    #[test]
    fn timestamps_must_be_inside_the_window() {
        let auth = Authenticator::new(&config());
        assert!(tm(&auth, &signed("AK1", "SK1", NOW - 60_000), NOW).is_ok());
        assert!(tm(&auth, &signed("AK1", "SK1", NOW + 60_000), NOW).is_ok());
        assert_eq!(
            tm(&auth, &signed("AK1", "SK1", NOW - 60_001), NOW),
            Err(Refusal::OutOfWindow {
                skew_ms: -60_001,
                window_ms: 60_000
            })
        );
        assert_eq!(
            tm(&auth, &signed("AK1", "SK1", NOW + 60_001), NOW),
            Err(Refusal::OutOfWindow {
                skew_ms: 60_001,
                window_ms: 60_000
            })
        );
        let garbage = signed("AK1", "SK1", NOW).replace(&NOW.to_string(), "soon");
        assert_eq!(
            tm(&auth, &garbage, NOW),
            Err(Refusal::BadTimestamp("soon".into()))
        );
    }

    #[test]
    fn a_signed_registration_cannot_be_replayed() {
        let auth = Authenticator::new(&config());
        let extra = signed("AK1", "SK1", NOW);
        assert!(tm(&auth, &extra, NOW).is_ok());
        assert_eq!(tm(&auth, &extra, NOW + 1_000), Err(Refusal::Replayed));
        // Once out of the window the timestamp check refuses it instead.
        assert!(matches!(
            tm(&auth, &extra, NOW + 60_001),
            Err(Refusal::OutOfWindow { .. })
        ));
        // A fresh signature (new timestamp) is fine.
        assert!(tm(&auth, &signed("AK1", "SK1", NOW + 1), NOW + 1_000).is_ok());
    }

    #[test]
    fn unsigned_rms_need_a_live_signed_tm_of_their_application_on_their_host() {
        let auth = Authenticator::new(&config());
        let mut rm = ConnAuth::default();
        assert!(matches!(
            auth.check(&mut rm, &reg(Role::Rm, ""), NOW),
            Err(Refusal::UnsignedRm { .. })
        ));
        let mut tm_conn = ConnAuth::default();
        let extra = signed("AK1", "SK1", NOW);
        assert!(
            auth.check(&mut tm_conn, &reg(Role::Tm, &extra), NOW)
                .is_ok()
        );
        // Another host, or another application, is still refused.
        let elsewhere = Registration {
            peer: IpAddr::from([10, 0, 0, 6]),
            ..reg(Role::Rm, "")
        };
        assert!(
            auth.check(&mut ConnAuth::default(), &elsewhere, NOW)
                .is_err()
        );
        let other_app = Registration {
            application_id: "stock",
            ..reg(Role::Rm, "")
        };
        assert!(
            auth.check(&mut ConnAuth::default(), &other_app, NOW)
                .is_err()
        );
        assert_eq!(
            auth.check(&mut rm, &reg(Role::Rm, ""), NOW),
            Ok(Admission::ByLiveTm)
        );
        // The RM's connection stays accepted for more resources after the TM leaves ...
        drop(tm_conn);
        assert_eq!(
            auth.check(&mut rm, &reg(Role::Rm, ""), NOW),
            Ok(Admission::SameConnection)
        );
        // ... but new unsigned RMs are refused again.
        assert!(matches!(
            auth.check(&mut ConnAuth::default(), &reg(Role::Rm, ""), NOW),
            Err(Refusal::UnsignedRm { .. })
        ));
    }

    #[test]
    fn signed_rms_are_verified_like_tms() {
        let auth = Authenticator::new(&config());
        let good = signed("AK2", "SK2", NOW);
        assert_eq!(
            auth.check(&mut ConnAuth::default(), &reg(Role::Rm, &good), NOW),
            Ok(Admission::Signed {
                access_key: "AK2".into()
            })
        );
        let bad = signed("AK2", "SK1", NOW);
        assert!(matches!(
            auth.check(&mut ConnAuth::default(), &reg(Role::Rm, &bad), NOW),
            Err(Refusal::BadSignature { .. })
        ));
    }

    #[test]
    fn off_accepts_everything() {
        let auth = Authenticator::new(&AuthConfig::default());
        assert!(!auth.enabled());
        assert_eq!(tm(&auth, "", NOW), Ok(Admission::Open));
    }

    #[test]
    fn refusals_and_debug_output_never_show_secrets() {
        let config = config();
        assert!(!format!("{config:?}").contains("SK1"));
        let auth = Authenticator::new(&config);
        assert!(!format!("{auth:?}").contains("SK1"));
        let refusal = tm(&auth, &signed("AK1", "SK2", NOW), NOW).expect_err("wrong secret");
        assert!(!refusal.to_string().contains("SK"), "{refusal}");
    }

    #[test]
    fn replay_memory_is_bounded() {
        let mut guard = ReplayGuard::default();
        for i in 0..REPLAY_CAPACITY + 10 {
            assert!(guard.first_use(&i.to_string(), NOW, NOW + 1_000));
        }
        assert!(guard.seen.len() <= REPLAY_CAPACITY + 1);
        // Expired entries go first.
        assert!(guard.first_use("late", NOW + 2_000, NOW + 3_000));
        assert_eq!(guard.seen.len(), 1);
    }

    #[test]
    fn validation_catches_unusable_configurations() {
        assert!(AuthConfig::default().validate().is_ok());
        assert!(config().validate().is_ok());
        let empty = AuthConfig {
            keys: Vec::new(),
            ..config()
        };
        assert!(empty.validate().is_err());
        let mut twice = config();
        twice.keys[1].access_key = "AK1".into();
        assert!(twice.validate().is_err());
        let mut blank = config();
        blank.keys[0].secret_key.clear();
        assert!(blank.validate().is_err());
    }
}
