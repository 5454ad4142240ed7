//! TLS to the TC (feature `tls`): rustls with the ring provider, trusting the CA certificates
//! given (not the system's), optionally presenting a client certificate for a TC that requires
//! one (mutual TLS).

use std::path::Path;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::error::{ConfigError, Error};

/// How to connect to the TC over TLS. The server name checked against the TC's certificate is
/// the host of the TC address unless [`TlsOptions::server_name`] overrides it.
#[derive(Debug, Clone)]
pub struct TlsOptions {
    roots: Arc<RootCertStore>,
    config: Arc<rustls::ClientConfig>,
    server_name: Option<String>,
}

fn config_error(what: &str, error: impl std::fmt::Display) -> Error {
    Error::Config(ConfigError::Tls {
        what: what.to_owned(),
        reason: error.to_string(),
    })
}

/// rustls' ring provider (no C toolchain step); deprecated in rustls 0.23.48 only for lacking
/// post-quantum key exchange.
#[allow(deprecated)]
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn builder(
    roots: &Arc<RootCertStore>,
) -> Result<rustls::ConfigBuilder<rustls::ClientConfig, rustls::client::WantsClientCert>, Error> {
    Ok(rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| config_error("protocol versions", e))?
        .with_root_certificates(roots.clone()))
}

impl TlsOptions {
    /// Trusts the CA certificate(s) in `ca_pem` (PEM) for the TC's certificate.
    pub fn new(ca_pem: &[u8]) -> Result<TlsOptions, Error> {
        let mut roots = RootCertStore::empty();
        let mut found = false;
        for cert in CertificateDer::pem_slice_iter(ca_pem) {
            let cert = cert.map_err(|e| config_error("CA certificate", e))?;
            roots
                .add(cert)
                .map_err(|e| config_error("CA certificate", e))?;
            found = true;
        }
        if !found {
            return Err(config_error("CA certificate", "none in the PEM"));
        }
        let roots = Arc::new(roots);
        let config = Arc::new(builder(&roots)?.with_no_client_auth());
        Ok(TlsOptions {
            roots,
            config,
            server_name: None,
        })
    }

    /// [`TlsOptions::new`] from a CA file and, for mutual TLS, a client certificate chain and
    /// key file (PEM).
    pub fn from_files(
        ca: impl AsRef<Path>,
        identity: Option<(&Path, &Path)>,
    ) -> Result<TlsOptions, Error> {
        let read = |path: &Path| {
            std::fs::read(path).map_err(|e| config_error(&path.display().to_string(), e))
        };
        let options = TlsOptions::new(&read(ca.as_ref())?)?;
        match identity {
            Some((cert, key)) => options.client_identity(&read(cert)?, &read(key)?),
            None => Ok(options),
        }
    }

    /// Presents this certificate chain (leaf first) and private key, both PEM, to the TC.
    pub fn client_identity(mut self, cert_pem: &[u8], key_pem: &[u8]) -> Result<TlsOptions, Error> {
        let chain = CertificateDer::pem_slice_iter(cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| config_error("client certificate", e))?;
        if chain.is_empty() {
            return Err(config_error("client certificate", "none in the PEM"));
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem)
            .map_err(|e| config_error("client private key", e))?;
        let config = builder(&self.roots)?
            .with_client_auth_cert(chain, key)
            .map_err(|e| config_error("client certificate and key", e))?;
        self.config = Arc::new(config);
        Ok(self)
    }

    /// The name the TC's certificate must carry, when it is not the host of the TC address.
    pub fn server_name(mut self, name: impl Into<String>) -> TlsOptions {
        self.server_name = Some(name.into());
        self
    }

    /// A ready rustls configuration, for settings this type does not cover.
    pub fn from_rustls(config: Arc<rustls::ClientConfig>) -> TlsOptions {
        TlsOptions {
            roots: Arc::new(RootCertStore::empty()),
            config,
            server_name: None,
        }
    }

    /// Runs the TLS handshake on a connected socket to `host`.
    pub(crate) async fn connect(
        &self,
        host: &str,
        stream: TcpStream,
    ) -> Result<TlsStream<TcpStream>, String> {
        let name = self.server_name.as_deref().unwrap_or(host);
        let server_name = ServerName::try_from(name.to_owned())
            .map_err(|_| format!("{name:?} is not a valid TLS server name"))?;
        TlsConnector::from(self.config.clone())
            .connect(server_name, stream)
            .await
            .map_err(|error| format!("TLS handshake failed: {error}"))
    }
}
