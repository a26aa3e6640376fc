//! TLS server configuration: configured PEM files, or a self-signed
//! certificate generated once into the data directory and reused.

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("cannot write the generated certificate to {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot generate a certificate: {0}")]
    Generate(String),
    #[error("the certificate and key do not make a usable TLS configuration: {0}")]
    Config(String),
}

/// A certificate chain and its private key.
pub struct CertifiedKey {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    /// Where the certificate came from (for logs).
    pub cert_path: PathBuf,
    pub generated: bool,
}

impl std::fmt::Debug for CertifiedKey {
    // Never prints the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertifiedKey")
            .field("cert_path", &self.cert_path)
            .field("certificates", &self.chain.len())
            .field("generated", &self.generated)
            .finish_non_exhaustive()
    }
}

/// Reads a PEM certificate chain and private key.
pub fn load_pem(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let read = |p: &Path| {
        std::fs::read(p).map_err(|source| TlsError::Read {
            path: p.into(),
            source,
        })
    };
    let cert_pem = read(cert)?;
    let key_pem = read(key)?;
    let chain = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Invalid {
            path: cert.into(),
            message: format!("not PEM: {e}"),
        })?;
    if chain.is_empty() {
        return Err(TlsError::Invalid {
            path: cert.into(),
            message: "no CERTIFICATE block found".into(),
        });
    }
    let key_der = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|e| TlsError::Invalid {
            path: key.into(),
            message: format!("not PEM: {e}"),
        })?
        .ok_or_else(|| TlsError::Invalid {
            path: key.into(),
            message: "no PRIVATE KEY block found".into(),
        })?;
    Ok(CertifiedKey {
        chain,
        key: key_der,
        cert_path: cert.into(),
        generated: false,
    })
}

/// Loads `dir/cert.pem` and `dir/key.pem` if they were generated for exactly
/// `names`; otherwise generates a new self-signed pair for `names` there.
/// The key file is written readable by its owner only.
pub fn load_or_generate(dir: &Path, names: &[String]) -> Result<CertifiedKey, TlsError> {
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    let names_file = dir.join("names");
    let wanted = names.join("\n");
    let have = std::fs::read_to_string(&names_file).ok();
    if have.as_deref() == Some(wanted.as_str()) && cert.exists() && key.exists() {
        let mut ck = load_pem(&cert, &key)?;
        ck.generated = true;
        return Ok(ck);
    }
    if have.is_some() {
        tracing::info!(dir = %dir.display(), "host names changed; generating a new self-signed certificate");
    }
    let generated = rcgen::generate_simple_self_signed(names.to_vec())
        .map_err(|e| TlsError::Generate(e.to_string()))?;
    let write = |p: &Path, data: &str, private: bool| -> Result<(), TlsError> {
        let err = |source| TlsError::Write {
            path: p.into(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(err)?;
        let tmp = p.with_extension("tmp");
        {
            use std::io::Write;
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create(true).truncate(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                opts.mode(if private { 0o600 } else { 0o644 });
            }
            let mut f = opts.open(&tmp).map_err(err)?;
            f.write_all(data.as_bytes()).map_err(err)?;
            f.sync_all().map_err(err)?;
        }
        std::fs::rename(&tmp, p).map_err(err)
    };
    write(&key, &generated.key_pair.serialize_pem(), true)?;
    write(&cert, &generated.cert.pem(), false)?;
    write(&names_file, &wanted, false)?;
    tracing::info!(cert = %cert.display(), names = %names.join(","), "generated a self-signed certificate");
    let mut ck = load_pem(&cert, &key)?;
    ck.generated = true;
    Ok(ck)
}

/// A rustls server configuration offering HTTP/2 and HTTP/1.1 by ALPN.
pub fn server_config(ck: CertifiedKey) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(ck.chain, ck.key)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A rustls server configuration that presents, by the client's SNI, the
/// certificate configured for that host name, and `default` otherwise
/// (or when the client sends no name).
pub fn sni_server_config(
    default: CertifiedKey,
    per_host: Vec<(Vec<String>, CertifiedKey)>,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let sign = |ck: CertifiedKey| -> Result<Arc<rustls::sign::CertifiedKey>, TlsError> {
        let key = provider
            .key_provider
            .load_private_key(ck.key)
            .map_err(|e| TlsError::Invalid {
                path: ck.cert_path.clone(),
                message: format!("unusable private key: {e}"),
            })?;
        Ok(Arc::new(rustls::sign::CertifiedKey::new(ck.chain, key)))
    };
    let mut by_name = std::collections::HashMap::new();
    for (names, ck) in per_host {
        let signed = sign(ck)?;
        for n in names {
            by_name.insert(n.to_ascii_lowercase(), signed.clone());
        }
    }
    let resolver = SniResolver {
        default: sign(default)?,
        by_name,
    };
    let mut config = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[derive(Debug)]
struct SniResolver {
    default: Arc<rustls::sign::CertifiedKey>,
    by_name: std::collections::HashMap<String, Arc<rustls::sign::CertifiedKey>>,
}

impl rustls::server::ResolvesServerCert for SniResolver {
    fn resolve(
        &self,
        hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        let chosen = hello
            .server_name()
            .and_then(|n| self.by_name.get(&n.to_ascii_lowercase()));
        Some(chosen.unwrap_or(&self.default).clone())
    }
}

/// Lowercase hex SHA-256 of the leaf certificate of `ck`: what a member
/// publishes so that peers can pin it.
pub fn cert_sha256(ck: &CertifiedKey) -> String {
    use sha2::Digest;
    ck.chain
        .first()
        .map(|c| hex::encode(sha2::Sha256::digest(c.as_ref())))
        .unwrap_or_default()
}

/// A rustls client configuration that trusts exactly one certificate, the
/// one whose SHA-256 is `sha256` (as published in authenticated gossip),
/// whatever name or authority it carries. The handshake signature is still
/// checked, so only the holder of that certificate's key gets through.
pub fn pinned_client_config(sha256: &str, alpn: &[&[u8]]) -> rustls::ClientConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(PinnedCert {
        sha256: sha256.to_ascii_lowercase(),
        algorithms: provider.signature_verification_algorithms,
    });
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config
}

#[derive(Debug)]
struct PinnedCert {
    sha256: String,
    algorithms: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl rustls::client::danger::ServerCertVerifier for PinnedCert {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        use sha2::Digest;
        let got = hex::encode(sha2::Sha256::digest(end_entity.as_ref()));
        if got == self.sha256 {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "the peer's certificate (SHA-256 {got}) is not the one it published in the cluster ({})",
                self.sha256
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The names a node's generated certificate covers: its host names plus
/// `localhost` and `127.0.0.1`, without duplicates, in a stable order.
pub fn default_names(hosts: &[&str]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for n in hosts.iter().copied().chain(["localhost", "127.0.0.1"]) {
        if !names.iter().any(|m| m.eq_ignore_ascii_case(n)) {
            names.push(n.to_string());
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_once_then_reused_until_names_change() {
        let dir = tempfile::tempdir().unwrap();
        let names = default_names(&["as.example.com", "mgt.as.example.com"]);
        assert_eq!(
            names,
            [
                "as.example.com",
                "mgt.as.example.com",
                "localhost",
                "127.0.0.1"
            ]
        );
        let first = load_or_generate(dir.path(), &names).unwrap();
        let again = load_or_generate(dir.path(), &names).unwrap();
        assert_eq!(first.chain, again.chain, "the certificate is reused");
        let other = load_or_generate(dir.path(), &default_names(&["other.example.com"])).unwrap();
        assert_ne!(first.chain, other.chain, "new names give a new certificate");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("key.pem"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        server_config(other).unwrap();
    }

    #[test]
    fn bad_pem_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("c.pem");
        std::fs::write(&cert, "not a certificate").unwrap();
        let err = load_pem(&cert, &dir.path().join("missing.pem"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing.pem"), "{err}");
        let key = dir.path().join("k.pem");
        std::fs::write(&key, "").unwrap();
        let err = load_pem(&cert, &key).unwrap_err().to_string();
        assert!(
            err.contains("c.pem") && err.contains("no CERTIFICATE"),
            "{err}"
        );
    }
}
