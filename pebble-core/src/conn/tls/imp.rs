//! The rustls connector (feature `tls`), on the `ring` provider.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect};

use super::{ClientCert, Roots, SslMode};
use crate::error::{Error, Result};

/// Makes a TLS connector per host, from one rustls configuration.
#[derive(Clone)]
pub(crate) struct MakeTls {
    config: Arc<ClientConfig>,
    /// `verify-full` needs the host to be a name or address to check the
    /// certificate against; the other modes send it only as SNI.
    check_name: bool,
}

impl std::fmt::Debug for MakeTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MakeTls")
            .field("check_name", &self.check_name)
            .finish_non_exhaustive()
    }
}

impl MakeTls {
    pub(super) fn new(
        mode: SslMode,
        roots: &[Roots],
        client: Option<&ClientCert>,
    ) -> Result<MakeTls> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Config(format!("TLS: {e}")))?;
        // libpq: with a CA file, `require` checks the chain like `verify-ca`.
        let mode = match mode {
            SslMode::Require if !roots.is_empty() => SslMode::VerifyCa,
            other => other,
        };
        let verified = match mode {
            SslMode::VerifyFull | SslMode::VerifyCa => {
                let store = Arc::new(root_store(roots)?);
                let webpki = WebPkiServerVerifier::builder_with_provider(store, provider)
                    .build()
                    .map_err(|e| Error::TlsRoots {
                        origin: describe(roots),
                        reason: e.to_string(),
                    })?;
                if mode == SslMode::VerifyFull {
                    builder.with_webpki_verifier(webpki)
                } else {
                    builder
                        .dangerous()
                        .with_custom_certificate_verifier(Arc::new(AnyName(webpki)))
                }
            }
            _ => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(Unverified(provider))),
        };
        let config = match client {
            None => verified.with_no_client_auth(),
            Some(client) => {
                let (chain, key) = client_cert(client)?;
                verified
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| Error::TlsClientCert {
                        origin: client.cert().origin("certificate"),
                        reason: e.to_string(),
                    })?
            }
        };
        Ok(MakeTls {
            config: Arc::new(config),
            check_name: mode == SslMode::VerifyFull,
        })
    }

    /// The connector for one host (its name checked and sent as SNI).
    pub(crate) fn for_host(&self, host: &str) -> Result<RustlsConnect> {
        let name = match ServerName::try_from(host.to_owned()) {
            Ok(name) => name,
            Err(_) if !self.check_name => {
                // Nothing to check it against: no SNI either.
                ServerName::IpAddress(std::net::Ipv4Addr::UNSPECIFIED.into())
            }
            Err(_) => {
                return Err(Error::Config(format!(
                    "sslmode=verify-full needs a host name or IP address to check the server's \
                     certificate against, not {host:?}"
                )))
            }
        };
        Ok(RustlsConnect {
            config: Arc::clone(&self.config),
            name,
        })
    }
}

fn describe(roots: &[Roots]) -> String {
    if roots.is_empty() {
        return "the default roots (~/.postgresql/root.crt, else the system's)".into();
    }
    roots
        .iter()
        .map(|r| match r {
            Roots::Pem(_) => "PEM given in TlsOptions".to_owned(),
            Roots::File(path) => path.display().to_string(),
            Roots::System => "the system's trust store".to_owned(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The trusted CAs: those given, else `~/.postgresql/root.crt` if it
/// exists (libpq's default), else the system's.
fn root_store(roots: &[Roots]) -> Result<RootCertStore> {
    let default_file = std::env::var_os("HOME")
        .map(|home| std::path::Path::new(&home).join(".postgresql/root.crt"))
        .filter(|path| path.is_file());
    let defaults = match default_file {
        Some(path) => vec![Roots::File(path)],
        None => vec![Roots::System],
    };
    let roots = if roots.is_empty() { &defaults } else { roots };
    let mut store = RootCertStore::empty();
    for source in roots {
        let failed = |reason: String| Error::TlsRoots {
            origin: describe(std::slice::from_ref(source)),
            reason,
        };
        let certs: Vec<CertificateDer<'static>> = match source {
            Roots::Pem(pem) => pem_certs(pem).map_err(failed)?,
            Roots::File(path) => {
                let pem = std::fs::read(path).map_err(|e| failed(e.to_string()))?;
                pem_certs(&pem).map_err(failed)?
            }
            Roots::System => {
                let loaded = rustls_native_certs::load_native_certs();
                if loaded.certs.is_empty() {
                    let why = loaded
                        .errors
                        .first()
                        .map_or_else(|| "no certificate found".to_owned(), |e| e.to_string());
                    return Err(failed(why));
                }
                loaded.certs
            }
        };
        let (_added, _ignored) = store.add_parsable_certificates(certs);
    }
    if store.is_empty() {
        return Err(Error::TlsRoots {
            origin: describe(roots),
            reason: "no usable CA certificate".into(),
        });
    }
    Ok(store)
}

/// The client's certificate chain and private key.
fn client_cert(
    client: &ClientCert,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    let failed = |origin: String| move |reason: String| Error::TlsClientCert { origin, reason };
    let cert_origin = client.cert().origin("certificate");
    let key_origin = client.key().origin("key");
    let cert = client
        .cert()
        .read()
        .map_err(|e| failed(cert_origin.clone())(e.to_string()))?;
    let chain = pem_certs(&cert).map_err(failed(cert_origin))?;
    let key = client
        .key()
        .read()
        .map_err(|e| failed(key_origin.clone())(e.to_string()))?;
    let key = PrivateKeyDer::from_pem_slice(&key)
        .map_err(|e| failed(key_origin)(format!("no usable private key: {e}")))?;
    Ok((chain, key))
}

fn pem_certs(pem: &[u8]) -> std::result::Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| format!("invalid PEM: {e}"))?;
    if certs.is_empty() {
        return Err("no BEGIN CERTIFICATE block".into());
    }
    Ok(certs)
}

/// `verify-ca`: the chain must lead to a trusted CA; the name is not checked.
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        // webpki checks the chain before the name: a name error means the
        // chain is trusted.
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// `prefer` and `require` without a CA: encrypted, the certificate not
/// checked (libpq's meaning). The handshake's signatures still are, so the
/// session key belongs to whoever holds the certificate's key.
#[derive(Debug)]
struct Unverified(Arc<CryptoProvider>);

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
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
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
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

impl<S> MakeTlsConnect<S> for MakeTls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = TlsStream<S>;
    type TlsConnect = RustlsConnect;
    type Error = Error;

    fn make_tls_connect(&mut self, domain: &str) -> Result<RustlsConnect> {
        self.for_host(domain)
    }
}

/// The TLS handshake with one host.
pub(crate) struct RustlsConnect {
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
}

type Handshake<S> = Pin<Box<dyn Future<Output = io::Result<TlsStream<S>>> + Send>>;

impl<S> TlsConnect<S> for RustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = TlsStream<S>;
    type Error = io::Error;
    type Future = Handshake<S>;

    fn connect(self, stream: S) -> Handshake<S> {
        let connector = tokio_rustls::TlsConnector::from(self.config);
        Box::pin(async move {
            let stream = connector.connect(self.name, stream).await?;
            Ok(TlsStream(Box::new(stream)))
        })
    }
}

/// An encrypted connection.
pub(crate) struct TlsStream<S>(Box<tokio_rustls::client::TlsStream<S>>);

impl<S: AsyncRead + AsyncWrite + Unpin> tokio_postgres::tls::TlsStream for TlsStream<S> {
    /// `tls-server-end-point` (RFC 5929): the server certificate's hash,
    /// with the hash of its signature algorithm (SHA-256 for MD5 and
    /// SHA-1), so that SCRAM-SHA-256-PLUS ties the password login to this
    /// TLS session. A certificate whose algorithm defines none (Ed25519,
    /// RSA-PSS) gets no binding: plain SCRAM, and `channel_binding=require`
    /// refuses.
    fn channel_binding(&self) -> ChannelBinding {
        let (_, session) = self.0.get_ref();
        let Some(cert) = session.peer_certificates().and_then(|chain| chain.first()) else {
            return ChannelBinding::none();
        };
        match end_point_hash(cert.as_ref()) {
            Some(algorithm) => ChannelBinding::tls_server_end_point(
                ring::digest::digest(algorithm, cert).as_ref().to_vec(),
            ),
            None => ChannelBinding::none(),
        }
    }
}

/// The hash `tls-server-end-point` uses for a certificate (DER): the one
/// of its signature algorithm, SHA-256 in place of MD5 and SHA-1.
fn end_point_hash(cert: &[u8]) -> Option<&'static ring::digest::Algorithm> {
    // Certificate ::= SEQUENCE { tbsCertificate SEQUENCE, signatureAlgorithm
    // SEQUENCE { algorithm OID, .. }, signatureValue BIT STRING }
    let (certificate, _) = der(cert, 0x30)?;
    let (_, rest) = der(certificate, 0x30)?;
    let (algorithm, _) = der(rest, 0x30)?;
    let (oid, _) = der(algorithm, 0x06)?;
    const RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01]; // 1.2.840.113549.1.1
    const ECDSA: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03]; // 1.2.840.10045.4.3
    let sha256 = &ring::digest::SHA256;
    let sha384 = &ring::digest::SHA384;
    let sha512 = &ring::digest::SHA512;
    match oid {
        [rsa @ .., last] if rsa == RSA => match last {
            4 | 5 | 11 => Some(sha256), // md5, sha1, sha256 WithRSAEncryption
            12 => Some(sha384),
            13 => Some(sha512),
            _ => None, // RSA-PSS (10) names its hash in parameters
        },
        [ecdsa @ .., last] if ecdsa == ECDSA => match last {
            2 => Some(sha256),
            3 => Some(sha384),
            4 => Some(sha512),
            _ => None,
        },
        [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x01] => Some(sha256), // ecdsa-with-SHA1
        _ => None,
    }
}

/// The contents of the DER element of type `tag` at the start of `input`,
/// and what follows it.
fn der(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&first, rest) = input.split_first()?;
    if first != tag {
        return None;
    }
    let (&len, rest) = rest.split_first()?;
    let (len, rest) = if len < 0x80 {
        (usize::from(len), rest)
    } else {
        let bytes = usize::from(len & 0x7f);
        if bytes == 0 || bytes > 4 || rest.len() < bytes {
            return None;
        }
        let (len_bytes, rest) = rest.split_at(bytes);
        let len = len_bytes
            .iter()
            .fold(0_usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, rest)
    };
    (rest.len() >= len).then(|| rest.split_at(len))
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for TlsStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.get_mut().0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for TlsStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.get_mut().0).poll_shutdown(cx)
    }
}
