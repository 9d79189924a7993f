//! `sslmode` and `sslrootcert` from a PostgreSQL URL, with libpq's meanings: `disable` (no TLS),
//! `prefer` (the default: TLS when the server offers it), `require` (TLS or nothing), both without
//! checking the certificate, as libpq does; `verify-ca` and `verify-full` check it against
//! `sslrootcert` (a PEM file) or the Web PKI roots, and `verify-full` the host name too.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

pub(super) struct Tls {
    pub mode: SslMode,
    pub connector: MakeRustlsConnect,
}

/// The URL without `sslmode` and `sslrootcert` (the driver only knows some modes), and the TLS they
/// ask for.
pub(super) fn split(url: &str) -> Result<(String, Tls), String> {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut mode = "prefer".to_string();
    let mut root: Option<String> = None;
    let mut rest = Vec::new();
    for kv in query.split('&').filter(|kv| !kv.is_empty()) {
        match kv.split_once('=') {
            Some(("sslmode", v)) => mode = v.to_string(),
            Some(("sslrootcert", v)) => root = Some(v.to_string()),
            _ => rest.push(kv),
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let (ssl, config) = match mode.as_str() {
        "disable" | "allow" | "prefer" | "require" => {
            let ssl = match mode.as_str() {
                "disable" => SslMode::Disable,
                "require" => SslMode::Require,
                _ => SslMode::Prefer,
            };
            let config = builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(Unchecked(provider)))
                .with_no_client_auth();
            (ssl, config)
        }
        "verify-ca" | "verify-full" => {
            let mut roots = rustls::RootCertStore::empty();
            match &root {
                Some(path) => {
                    for cert in CertificateDer::pem_file_iter(path)
                        .map_err(|e| format!("sslrootcert {path}: {e}"))?
                    {
                        let cert = cert.map_err(|e| format!("sslrootcert {path}: {e}"))?;
                        roots
                            .add(cert)
                            .map_err(|e| format!("sslrootcert {path}: {e}"))?;
                    }
                }
                None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
            }
            let config = builder.with_root_certificates(roots).with_no_client_auth();
            (SslMode::Require, config)
        }
        other => {
            return Err(format!(
            "sslmode={other} is not one of disable, allow, prefer, require, verify-ca, verify-full"
        ))
        }
    };
    let url = if rest.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    Ok((
        url,
        Tls {
            mode: ssl,
            connector: MakeRustlsConnect::new(config),
        },
    ))
}

/// libpq's `prefer` and `require`: encrypted, the certificate not checked (the handshake's signatures
/// still are).
#[derive(Debug)]
struct Unchecked(Arc<CryptoProvider>);

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(url: &str) -> Result<(String, SslMode), String> {
        split(url).map(|(u, t)| (u, t.mode))
    }

    #[test]
    fn sslmode_is_read_as_libpq_reads_it_and_taken_out_of_the_url() {
        let base = "postgres://u@db:5432/t";
        assert_eq!(mode(base).unwrap(), (base.to_string(), SslMode::Prefer));
        for (m, want) in [
            ("disable", SslMode::Disable),
            ("allow", SslMode::Prefer),
            ("prefer", SslMode::Prefer),
            ("require", SslMode::Require),
            ("verify-ca", SslMode::Require),
            ("verify-full", SslMode::Require),
        ] {
            let url = format!("{base}?application_name=x&sslmode={m}");
            assert_eq!(
                mode(&url).unwrap(),
                (format!("{base}?application_name=x"), want),
                "{m}"
            );
        }
        let err = mode(&format!("{base}?sslmode=sometimes")).unwrap_err();
        assert!(err.contains("sslmode=sometimes"), "{err}");
        let err = mode(&format!(
            "{base}?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem"
        ))
        .unwrap_err();
        assert!(err.contains("/nonexistent/ca.pem"), "{err}");
    }
}
