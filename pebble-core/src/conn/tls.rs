//! TLS for every connection pebble opens: `Db` pools, the `TenantManager`'s
//! pools and maintenance connections, and tooling connections
//! ([`ConnectConfig::connect_client`], used by pebble-migrate and the CLI).
//!
//! The connection string's `sslmode` and `sslrootcert` are read here
//! (tokio-postgres itself knows only `disable`, `prefer` and `require`, and
//! refuses `sslrootcert`), then [`TlsOptions`] from [`PoolOptions::tls`](crate::PoolOptions::tls)
//! are laid over them. With the cargo feature `tls` off, a mode that needs
//! TLS is refused before anything is sent, with [`Error::TlsNotEnabled`].

use std::fmt;
use std::path::PathBuf;

use crate::error::{Error, Result};

/// How a connection uses TLS, as libpq's `sslmode` says it.
///
/// | mode | encrypted | server certificate checked |
/// |---|---|---|
/// | `disable` | never | - |
/// | `prefer` (the default) | if the server offers it | no |
/// | `require` | always | no (unless a CA is given: then as `verify-ca`, like libpq) |
/// | `verify-ca` | always | signed by a trusted CA |
/// | `verify-full` | always | signed by a trusted CA and issued for the host connected to |
///
/// Only `verify-full` stops an attacker on the network path who can
/// present a certificate of their own; `require` only stops eavesdropping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SslMode {
    /// Plain TCP.
    Disable,
    /// TLS if the server supports it, plain otherwise; no certificate check.
    Prefer,
    /// TLS or no connection; the certificate is not checked unless a CA is given.
    Require,
    /// TLS, with a certificate signed by a trusted CA (any host name).
    VerifyCa,
    /// TLS, with a certificate signed by a trusted CA for the host connected to.
    VerifyFull,
}

impl SslMode {
    /// The mode as written in a connection string (`verify-full`).
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    fn parse(value: &str) -> Result<SslMode> {
        Ok(match value {
            "disable" => SslMode::Disable,
            // libpq's `allow` tries plain first, then TLS: plain is what it gets
            // from any server that accepts plain, which `prefer` also covers.
            "allow" | "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(Error::Config(format!(
                    "invalid sslmode {other:?}: expected disable, prefer, require, verify-ca \
                     or verify-full"
                )))
            }
        })
    }

    /// Whether a connection in this mode must be encrypted.
    pub fn needs_tls(self) -> bool {
        matches!(
            self,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull
        )
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where trusted CA certificates come from.
#[derive(Clone, PartialEq, Eq)]
enum Roots {
    /// PEM text, possibly several certificates.
    Pem(Vec<u8>),
    /// A PEM file, read when the pool is built.
    File(PathBuf),
    /// The operating system's trust store (`sslrootcert=system`).
    System,
}

impl fmt::Debug for Roots {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Roots::Pem(pem) => write!(f, "Pem({} bytes)", pem.len()),
            Roots::File(path) => f.debug_tuple("File").field(path).finish(),
            Roots::System => f.write_str("System"),
        }
    }
}

/// TLS settings laid over the connection string's: a mode, and CA
/// certificates to trust.
///
/// Without a CA, `verify-ca` and `verify-full` trust `~/.postgresql/root.crt`
/// when it exists (as libpq does), else the operating system's trust store.
/// A CA given here, or as `sslrootcert=` in the connection string (a PEM
/// file, or `system`), replaces that default.
///
/// ```
/// use pebble_core::{PoolOptions, SslMode, TlsOptions};
/// let ca_pem = b"-----BEGIN CERTIFICATE-----\n...\n-----END CERTIFICATE-----\n".to_vec();
/// let options = PoolOptions::default().tls(
///     TlsOptions::new().mode(SslMode::VerifyFull).ca_pem(ca_pem),
/// );
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    mode: Option<SslMode>,
    roots: Vec<Roots>,
    client: Option<ClientCert>,
}

/// PEM text given directly or read from a file.
#[derive(Clone, PartialEq, Eq)]
enum Pem {
    Bytes(Vec<u8>),
    File(PathBuf),
}

// Read only by the rustls connector.
#[cfg_attr(not(feature = "tls"), allow(dead_code))]
impl Pem {
    fn origin(&self, what: &str) -> String {
        match self {
            Pem::Bytes(_) => format!("{what} PEM given in TlsOptions"),
            Pem::File(path) => path.display().to_string(),
        }
    }

    fn read(&self) -> std::io::Result<Vec<u8>> {
        match self {
            Pem::Bytes(bytes) => Ok(bytes.clone()),
            Pem::File(path) => std::fs::read(path),
        }
    }
}

impl fmt::Debug for Pem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // Never print key material.
            Pem::Bytes(pem) => write!(f, "Pem({} bytes)", pem.len()),
            Pem::File(path) => f.debug_tuple("File").field(path).finish(),
        }
    }
}

/// A client certificate (chain) and its private key, for servers that
/// authenticate clients by certificate (`cert` in `pg_hba.conf`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct ClientCert {
    cert: Pem,
    key: Pem,
}

impl TlsOptions {
    /// No settings: the connection string decides.
    pub fn new() -> TlsOptions {
        TlsOptions::default()
    }

    /// The mode, whatever the connection string's `sslmode` says.
    pub fn mode(mut self, mode: SslMode) -> TlsOptions {
        self.mode = Some(mode);
        self
    }

    /// Trusts the CA certificate(s) in this PEM text (one or more
    /// `BEGIN CERTIFICATE` blocks).
    pub fn ca_pem(mut self, pem: impl Into<Vec<u8>>) -> TlsOptions {
        self.roots.push(Roots::Pem(pem.into()));
        self
    }

    /// Trusts the CA certificate(s) in this PEM file, read when the pool
    /// is built (a missing or unreadable file is [`Error::TlsRoots`] then).
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> TlsOptions {
        self.roots.push(Roots::File(path.into()));
        self
    }

    /// Trusts the operating system's trust store (as `sslrootcert=system`),
    /// besides any CA given otherwise.
    pub fn system_roots(mut self) -> TlsOptions {
        self.roots.push(Roots::System);
        self
    }

    /// Presents this client certificate (PEM, the chain leaf first) and
    /// private key (PEM: PKCS#8, PKCS#1 or SEC1) when the server asks for
    /// one, as `sslcert` and `sslkey` do in a connection string.
    pub fn client_cert_pem(mut self, cert: impl Into<Vec<u8>>, key: impl Into<Vec<u8>>) -> Self {
        self.client = Some(ClientCert {
            cert: Pem::Bytes(cert.into()),
            key: Pem::Bytes(key.into()),
        });
        self
    }

    /// [`TlsOptions::client_cert_pem`] from files, read when the pool is
    /// built (a missing file is [`Error::TlsClientCert`] then).
    pub fn client_cert_files(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.client = Some(ClientCert {
            cert: Pem::File(cert.into()),
            key: Pem::File(key.into()),
        });
        self
    }

    /// `other`'s mode and client certificate if it has them, and both sets of CAs.
    fn overlay(&self, other: &TlsOptions) -> TlsOptions {
        let mut roots = self.roots.clone();
        roots.extend(other.roots.iter().cloned());
        TlsOptions {
            mode: other.mode.or(self.mode),
            roots,
            client: other.client.clone().or_else(|| self.client.clone()),
        }
    }
}

/// A parsed connection string with its TLS settings: what
/// [`IntoConfig`](crate::IntoConfig) makes of a URL such as
/// `postgres://app@db.internal/saas?sslmode=verify-full&sslrootcert=/etc/ssl/pg-ca.pem`.
///
/// tokio-postgres's [`Config`](tokio_postgres::Config) knows neither
/// `verify-ca`/`verify-full` nor `sslrootcert`; this type carries them
/// beside it, so every connection pebble opens from it (pools, the tenant
/// manager, pebble-migrate) verifies the server the same way.
///
/// ```
/// use pebble_core::{ConnectConfig, IntoConfig, SslMode};
/// let config = "postgres://app@db.internal/saas?sslmode=verify-full".into_connect()?;
/// assert_eq!(config.ssl_mode(), SslMode::VerifyFull);
/// assert_eq!(config.pg().get_dbname(), Some("saas"));
/// # Ok::<(), pebble_core::Error>(())
/// ```
#[derive(Clone)]
pub struct ConnectConfig {
    pg: tokio_postgres::Config,
    tls: TlsOptions,
}

impl ConnectConfig {
    /// The tokio-postgres settings (host, user, database...).
    pub fn pg(&self) -> &tokio_postgres::Config {
        &self.pg
    }

    /// The tokio-postgres settings, to change (another database, say).
    pub fn pg_mut(&mut self) -> &mut tokio_postgres::Config {
        &mut self.pg
    }

    /// `tls` laid over the connection string's TLS settings: its mode, if
    /// set, replaces `sslmode`; its CAs are trusted besides `sslrootcert`.
    pub fn with_tls(mut self, tls: &TlsOptions) -> ConnectConfig {
        self.tls = self.tls.overlay(tls);
        self
    }

    /// The TLS mode connections use.
    pub fn ssl_mode(&self) -> SslMode {
        self.tls.mode.unwrap_or(SslMode::Prefer)
    }

    /// Whether a plain tokio-postgres configuration says all of it: no
    /// certificate check, no CA.
    pub(crate) fn fits_pg(&self) -> bool {
        !matches!(self.ssl_mode(), SslMode::VerifyCa | SslMode::VerifyFull)
            && self.tls.roots.is_empty()
            && self.tls.client.is_none()
    }

    /// The tokio-postgres configuration to connect with, and the TLS
    /// connector to pass it; refused when the mode needs TLS and the
    /// feature is off, or a CA cannot be loaded.
    pub(crate) fn prepare(&self) -> Result<(tokio_postgres::Config, MakeTls)> {
        let mode = self.ssl_mode();
        let mut pg = self.pg.clone();
        pg.ssl_mode(match mode {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            _ => tokio_postgres::config::SslMode::Require,
        });
        Ok((
            pg,
            MakeTls::new(mode, &self.tls.roots, self.tls.client.as_ref())?,
        ))
    }

    /// A standalone connection (never pooled) for tooling such as
    /// migrations: TLS as this configuration says, its connection driven on
    /// the current tokio runtime until the client is dropped.
    ///
    /// Pooled application handles are [`Db`](crate::Db) and its kin; a
    /// client from here is unscoped, like any raw tokio-postgres client.
    pub async fn connect_client(&self) -> Result<tokio_postgres::Client> {
        let (pg, tls) = self.prepare()?;
        let (client, connection) = pg.connect(tls).await?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(target: "pebble::conn", error = %e, "connection ended");
            }
        });
        Ok(client)
    }
}

impl fmt::Debug for ConnectConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // tokio-postgres's Debug redacts the password.
        f.debug_struct("ConnectConfig")
            .field("pg", &self.pg)
            .field("tls", &self.tls)
            .finish()
    }
}

impl From<tokio_postgres::Config> for ConnectConfig {
    /// The configuration with its own `sslmode` (`disable`, `prefer` or
    /// `require`) and no CA.
    fn from(pg: tokio_postgres::Config) -> ConnectConfig {
        let mode = match pg.get_ssl_mode() {
            tokio_postgres::config::SslMode::Disable => SslMode::Disable,
            tokio_postgres::config::SslMode::Require => SslMode::Require,
            _ => SslMode::Prefer,
        };
        ConnectConfig {
            pg,
            tls: TlsOptions {
                mode: Some(mode),
                ..TlsOptions::default()
            },
        }
    }
}

impl std::str::FromStr for ConnectConfig {
    type Err = Error;

    fn from_str(s: &str) -> Result<ConnectConfig> {
        parse(s)
    }
}

/// Parses a URL or key-value connection string, taking out the TLS
/// parameters tokio-postgres does not know.
pub(crate) fn parse(s: &str) -> Result<ConnectConfig> {
    let (rest, params) = if s.starts_with("postgres://") || s.starts_with("postgresql://") {
        split_url(s)?
    } else {
        split_key_values(s)?
    };
    let mut tls = TlsOptions::default();
    let (mut cert, mut key) = (None, None);
    for (name, value) in params {
        match name.as_str() {
            "sslmode" => tls.mode = Some(SslMode::parse(&value)?),
            "sslrootcert" if value == "system" => tls.roots.push(Roots::System),
            "sslrootcert" => tls.roots.push(Roots::File(PathBuf::from(value))),
            "sslcert" => cert = Some(PathBuf::from(value)),
            "sslkey" => key = Some(PathBuf::from(value)),
            other => {
                return Err(Error::Config(format!(
                    "{other} is not supported yet (encrypted keys, revocation lists)"
                )))
            }
        }
    }
    match (cert, key) {
        (Some(cert), Some(key)) => {
            tls.client = Some(ClientCert {
                cert: Pem::File(cert),
                key: Pem::File(key),
            })
        }
        (None, None) => {}
        // libpq falls back to ~/.postgresql/postgresql.{crt,key}; a half
        // given pair is more likely a mistake than a wish for that.
        _ => {
            return Err(Error::Config(
                "sslcert and sslkey go together: give both, or neither".into(),
            ))
        }
    }
    let pg: tokio_postgres::Config = rest
        .parse()
        .map_err(|e| Error::Config(format!("cannot parse connection string: {e}")))?;
    Ok(ConnectConfig { pg, tls })
}

/// The TLS parameters pebble reads itself. `sslnegotiation` stays with
/// tokio-postgres, which knows it.
fn is_tls_param(key: &str) -> bool {
    matches!(
        key,
        "sslmode" | "sslrootcert" | "sslcert" | "sslkey" | "sslpassword" | "sslcrl" | "sslcrldir"
    )
}

type Params = Vec<(String, String)>;

/// `postgres://...?a=b&sslmode=x` without the TLS parameters, and those.
fn split_url(s: &str) -> Result<(String, Params)> {
    let Some((base, query)) = s.split_once('?') else {
        return Ok((s.to_owned(), Vec::new()));
    };
    let mut kept = Vec::new();
    let mut params = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let key = percent_decode(key)?;
        if is_tls_param(&key) {
            params.push((key, percent_decode(value)?));
        } else {
            kept.push(pair);
        }
    }
    let rest = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((rest, params))
}

fn percent_decode(s: &str) -> Result<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| {
                    Error::Config(format!("invalid percent-encoding in connection URL: {s:?}"))
                })?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out)
        .map_err(|_| Error::Config(format!("connection URL parameter is not UTF-8: {s:?}")))
}

/// `host=a sslmode=x dbname='my db'` without the TLS parameters, and those.
/// Values are read as tokio-postgres reads them: bare up to whitespace, or
/// single-quoted with `\` escapes.
fn split_key_values(s: &str) -> Result<(String, Params)> {
    let mut kept = Vec::new();
    let mut params = Vec::new();
    let mut chars = s.char_indices().peekable();
    loop {
        while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        let Some(&(start, _)) = chars.peek() else {
            break;
        };
        let mut key = String::new();
        while let Some((_, c)) = chars.next_if(|(_, c)| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        if chars.next_if(|(_, c)| *c == '=').is_none() {
            return Err(Error::Config(format!(
                "cannot parse connection string: expected `=` after {key:?}"
            )));
        }
        while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if(|(_, c)| *c == '\'').is_some() {
            loop {
                match chars.next() {
                    Some((_, '\'')) => break,
                    Some((_, '\\')) => match chars.next() {
                        Some((_, c)) => value.push(c),
                        None => break,
                    },
                    Some((_, c)) => value.push(c),
                    None => {
                        return Err(Error::Config(
                            "cannot parse connection string: unterminated quoted value".into(),
                        ))
                    }
                }
            }
        } else {
            while let Some((_, c)) = chars.next_if(|(_, c)| !c.is_whitespace()) {
                value.push(c);
            }
        }
        let end = chars.peek().map_or(s.len(), |(i, _)| *i);
        if is_tls_param(&key) {
            params.push((key, value));
        } else {
            kept.push(&s[start..end]);
        }
    }
    Ok((
        kept.iter().map(|p| p.trim()).collect::<Vec<_>>().join(" "),
        params,
    ))
}

#[cfg(not(feature = "tls"))]
mod imp {
    use super::{Roots, SslMode};
    use crate::error::{Error, Result};

    /// Without the `tls` feature: plain connections only.
    // Not `Copy`: the rustls connector that replaces it is not.
    #[derive(Clone, Debug)]
    pub(crate) struct MakeTls;

    impl MakeTls {
        pub(super) fn new(
            mode: SslMode,
            _roots: &[Roots],
            _client: Option<&super::ClientCert>,
        ) -> Result<MakeTls> {
            if mode.needs_tls() {
                return Err(Error::TlsNotEnabled {
                    mode: mode.as_str(),
                });
            }
            Ok(MakeTls)
        }

        pub(crate) fn for_host(&self, _host: &str) -> Result<tokio_postgres::NoTls> {
            Ok(tokio_postgres::NoTls)
        }
    }

    impl<S> tokio_postgres::tls::MakeTlsConnect<S> for MakeTls {
        type Stream = tokio_postgres::tls::NoTlsStream;
        type TlsConnect = tokio_postgres::NoTls;
        type Error = std::convert::Infallible;

        fn make_tls_connect(&mut self, _domain: &str) -> Result<Self::TlsConnect, Self::Error> {
            Ok(tokio_postgres::NoTls)
        }
    }
}

#[cfg(feature = "tls")]
mod imp;

pub(crate) use imp::MakeTls;

#[cfg(feature = "tls")]
impl ClientCert {
    fn cert(&self) -> &Pem {
        &self.cert
    }

    fn key(&self) -> &Pem {
        &self.key
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_tls_parameters_are_taken_out() {
        let c = parse("postgres://u@h:5433/db?application_name=x&sslmode=verify-full&sslrootcert=%2Ftmp%2Fca.pem")
            .unwrap();
        assert_eq!(c.ssl_mode(), SslMode::VerifyFull);
        assert_eq!(c.tls.roots, vec![Roots::File("/tmp/ca.pem".into())]);
        assert_eq!(c.pg.get_dbname(), Some("db"));
        assert_eq!(c.pg.get_application_name(), Some("x"));
        assert_eq!(c.pg.get_ports(), &[5433]);
    }

    #[test]
    fn key_value_tls_parameters_are_taken_out() {
        let c = parse("host=h dbname = 'my db' sslmode=verify-ca sslrootcert='/a b/ca.pem' user=u")
            .unwrap();
        assert_eq!(c.ssl_mode(), SslMode::VerifyCa);
        assert_eq!(c.tls.roots, vec![Roots::File("/a b/ca.pem".into())]);
        assert_eq!(c.pg.get_dbname(), Some("my db"));
        assert_eq!(c.pg.get_user(), Some("u"));
    }

    #[test]
    fn default_is_prefer_and_options_override() {
        let c = parse("postgres://u@h/db").unwrap();
        assert_eq!(c.ssl_mode(), SslMode::Prefer);
        let c = c.with_tls(&TlsOptions::new().mode(SslMode::Require));
        assert_eq!(c.ssl_mode(), SslMode::Require);
        let c = parse("postgres://u@h/db?sslrootcert=system").unwrap();
        assert_eq!(c.tls.roots, vec![Roots::System]);
    }

    #[test]
    fn client_certificates_come_in_pairs() {
        let c =
            parse("postgres://u@h/db?sslmode=verify-full&sslcert=/c.pem&sslkey=/k.pem").unwrap();
        assert_eq!(
            c.tls.client,
            Some(ClientCert {
                cert: Pem::File("/c.pem".into()),
                key: Pem::File("/k.pem".into()),
            })
        );
        assert!(!c.fits_pg());
    }

    #[test]
    fn bad_tls_parameters_are_config_errors() {
        for url in [
            "postgres://u@h/db?sslmode=sometimes",
            "postgres://u@h/db?sslcert=/c.pem",
            "postgres://u@h/db?sslkey=/k.pem",
            "postgres://u@h/db?sslpassword=x",
            "postgres://u@h/db?sslrootcert=%zz",
            "host=h sslmode",
        ] {
            assert!(matches!(parse(url), Err(Error::Config(_))), "{url}");
        }
    }

    #[cfg(not(feature = "tls"))]
    #[test]
    fn tls_modes_without_the_feature_say_what_to_do() {
        for mode in ["require", "verify-ca", "verify-full"] {
            let c = parse(&format!("postgres://u@h/db?sslmode={mode}")).unwrap();
            let e = c.prepare().expect_err("refused");
            assert!(matches!(e, Error::TlsNotEnabled { .. }), "{e}");
            assert!(e.to_string().contains("feature `tls`"), "{e}");
        }
        for mode in ["disable", "prefer"] {
            let c = parse(&format!("postgres://u@h/db?sslmode={mode}")).unwrap();
            assert!(c.prepare().is_ok());
        }
    }
}
