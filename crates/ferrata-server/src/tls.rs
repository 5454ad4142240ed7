//! The optional TLS listener (`[tls]`): its own address next to the plain `server.listen`,
//! a PEM certificate chain and key, and optionally a CA whose client certificates are then
//! required (mutual TLS). rustls with the ring provider; TLS 1.2 and 1.3.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};
use tokio_rustls::TlsAcceptor;

/// The `[tls]` table of the configuration file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Address of the TLS listener (the plain listener keeps `server.listen`).
    pub listen: SocketAddr,
    /// PEM certificate chain of the server, leaf first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// PEM CA certificate(s): when set, clients must present a certificate signed by one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ca: Option<PathBuf>,
}

/// Builds the acceptor, reading every file now so that mistakes stop the server at start.
pub fn acceptor(config: &TlsConfig) -> anyhow::Result<TlsAcceptor> {
    let provider = Arc::new(provider());
    let certs = read_certs(&config.cert)?;
    let key = PrivateKeyDer::from_pem_file(&config.key)
        .with_context(|| format!("cannot read a private key from {}", config.key.display()))?;
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?;
    let builder = match &config.client_ca {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for cert in read_certs(ca)? {
                roots
                    .add(cert)
                    .with_context(|| format!("invalid CA certificate in {}", ca.display()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .context("client certificate verifier")?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let server = builder.with_single_cert(certs, key).with_context(|| {
        format!(
            "certificate {} does not match key {}",
            config.cert.display(),
            config.key.display()
        )
    })?;
    Ok(TlsAcceptor::from(Arc::new(server)))
}

/// rustls' ring provider: no C toolchain step (aws-lc-rs needs cmake), TLS 1.2/1.3 with
/// X25519 and the NIST curves. rustls 0.23.48 deprecates it only for lacking post-quantum key
/// exchange.
#[allow(deprecated)]
fn provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

fn read_certs(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("invalid PEM in {}", path.display()))?;
    anyhow::ensure!(
        !certs.is_empty(),
        "no certificate found in {}",
        path.display()
    );
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_pem_files_and_reports_bad_ones() {
        let dir = tempfile::tempdir().expect("temp dir");
        let issued =
            rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("certificate");
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        std::fs::write(&cert, issued.cert.pem()).expect("write");
        std::fs::write(&key, issued.signing_key.serialize_pem()).expect("write");
        let mut config = TlsConfig {
            listen: "127.0.0.1:0".parse().expect("addr"),
            cert: cert.clone(),
            key: key.clone(),
            client_ca: Some(cert.clone()),
        };
        acceptor(&config).expect("mutual TLS acceptor");
        config.client_ca = None;
        acceptor(&config).expect("TLS acceptor");
        config.key = cert.clone();
        let error = acceptor(&config).err().expect("a certificate is no key");
        assert!(format!("{error:#}").contains("private key"), "{error:#}");
        config.key = key;
        config.cert = dir.path().join("missing.pem");
        let error = acceptor(&config).err().expect("missing file");
        assert!(format!("{error:#}").contains("missing.pem"), "{error:#}");
    }
}
