//! Certificates for TLS test servers, generated in memory with rcgen: a
//! certificate authority and a server certificate it signed.

use std::net::IpAddr;

use crate::Error;

/// A throwaway certificate authority and a server certificate signed by it,
/// as PEM text. Give [`TlsCertificates::ca_pem`] to the client that should
/// trust the server; another `generate()`'s CA is one it must not trust.
///
/// ```
/// let certs = pebble_testkit::TlsCertificates::generate(&["localhost", "127.0.0.1"])?;
/// assert!(certs.ca_pem().starts_with("-----BEGIN CERTIFICATE-----"));
/// # Ok::<(), pebble_testkit::Error>(())
/// ```
#[derive(Clone)]
pub struct TlsCertificates {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
    client_cert_pem: String,
    client_key_pem: String,
}

impl TlsCertificates {
    /// A new CA, a server certificate for `names` (DNS names or IP
    /// addresses, as subject alternative names) and a client certificate
    /// for user `postgres`, both signed by the CA.
    pub fn generate(names: &[&str]) -> Result<TlsCertificates, Error> {
        let failed = |e: rcgen::Error| Error::Start(format!("cannot generate certificates: {e}"));
        let ca_key = rcgen::KeyPair::generate().map_err(failed)?;
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(failed)?;
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, unique_name());
        ca.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let ca = ca.self_signed(&ca_key).map_err(failed)?;

        let key = rcgen::KeyPair::generate().map_err(failed)?;
        let mut server = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(failed)?;
        server.subject_alt_names = names
            .iter()
            .map(|name| match name.parse::<IpAddr>() {
                Ok(ip) => Ok(rcgen::SanType::IpAddress(ip)),
                Err(_) => Ok(rcgen::SanType::DnsName((*name).try_into()?)),
            })
            .collect::<Result<_, rcgen::Error>>()
            .map_err(failed)?;
        server.distinguished_name.push(
            rcgen::DnType::CommonName,
            names.first().copied().unwrap_or("server"),
        );
        server.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let cert = server.signed_by(&key, &ca, &ca_key).map_err(failed)?;

        let client_key = rcgen::KeyPair::generate().map_err(failed)?;
        let mut client = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(failed)?;
        // PostgreSQL's `cert` login maps the common name to the user.
        client
            .distinguished_name
            .push(rcgen::DnType::CommonName, "postgres");
        client.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let client_cert = client
            .signed_by(&client_key, &ca, &ca_key)
            .map_err(failed)?;
        Ok(TlsCertificates {
            ca_pem: ca.pem(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            client_cert_pem: client_cert.pem(),
            client_key_pem: client_key.serialize_pem(),
        })
    }

    /// The CA certificate (PEM): what a client trusts.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The server certificate (PEM).
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The server's private key (PEM).
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// A client certificate for user `postgres`, signed by the CA (PEM).
    pub fn client_cert_pem(&self) -> &str {
        &self.client_cert_pem
    }

    /// The client certificate's private key (PEM).
    pub fn client_key_pem(&self) -> &str {
        &self.client_key_pem
    }
}

/// A CA name of its own: a client looks for a certificate's issuer by
/// name, and two test CAs with one name would make a wrong CA look like a
/// forged signature rather than an unknown issuer.
fn unique_name() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("pebble-testkit CA {}-{n}", std::process::id())
}

impl std::fmt::Debug for TlsCertificates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsCertificates").finish_non_exhaustive()
    }
}
