//! Where in a request the tenant is named.

use std::fmt;
use std::sync::Arc;

use axum::http::header::{HeaderName, HOST};
use axum::http::request::Parts;

use crate::TenantRejection;

type ResolveFn = dyn Fn(&Parts) -> Result<String, TenantRejection> + Send + Sync;

/// Finds the tenant id (as text) in a request. The
/// [`TenantLayer`](crate::TenantLayer) then parses it into the key type
/// and, when configured, checks it exists.
///
/// ```
/// use axum::http::HeaderName;
/// use pebble_axum::{Resolver, TenantRejection};
///
/// let by_header = Resolver::header(HeaderName::from_static("x-tenant-id")); // = Resolver::default()
/// let by_host = Resolver::subdomain("example.com");   // acme.example.com -> "acme"
/// let by_path = Resolver::path_segment(1);            // /orgs/acme/projects -> "acme"
/// // A claim an authentication layer verified and put in the extensions:
/// #[derive(Clone)]
/// struct Claims { org: String }
/// let by_claim = Resolver::from_fn(|parts| {
///     parts
///         .extensions
///         .get::<Claims>()
///         .map(|claims| claims.org.clone())
///         .ok_or_else(|| TenantRejection::unauthorized("a verified token is required"))
/// });
/// ```
#[derive(Clone)]
pub struct Resolver {
    kind: Kind,
}

#[derive(Clone)]
enum Kind {
    Header(HeaderName),
    Subdomain(String),
    PathSegment(usize),
    Custom(Arc<ResolveFn>),
}

impl Resolver {
    /// The value of header `name`. Missing: 400; not visible ASCII, or the
    /// header repeated: 400.
    pub fn header(name: HeaderName) -> Resolver {
        Resolver {
            kind: Kind::Header(name),
        }
    }

    /// The first label of the host name under `base_domain`: with base
    /// `example.com`, `acme.example.com` (any port) names `acme`. The host
    /// is read from `Host` (HTTP/1.1) or the request URI (HTTP/2). A host
    /// that is not one label under the base (`example.com` itself,
    /// `a.b.example.com`, another domain) is a missing tenant: 400.
    pub fn subdomain(base_domain: impl Into<String>) -> Resolver {
        let base = base_domain.into().trim_matches('.').to_ascii_lowercase();
        Resolver {
            kind: Kind::Subdomain(base),
        }
    }

    /// The path segment at `index` (0-based, empty segments skipped), so
    /// index 1 of `/orgs/acme/projects` is `acme`. Missing: 400. The text is
    /// taken as it is in the URI, not percent-decoded, so an encoded id
    /// fails to parse (400) rather than naming a tenant in two spellings.
    pub fn path_segment(index: usize) -> Resolver {
        Resolver {
            kind: Kind::PathSegment(index),
        }
    }

    /// Your own rule over the request's head, such as a claim of a token a
    /// previous layer verified. Return the id's text, or the rejection to
    /// answer with (typically [`TenantRejection::unauthorized`]).
    pub fn from_fn<F>(resolve: F) -> Resolver
    where
        F: Fn(&Parts) -> Result<String, TenantRejection> + Send + Sync + 'static,
    {
        Resolver {
            kind: Kind::Custom(Arc::new(resolve)),
        }
    }

    /// The tenant id's text, or why there is none.
    pub fn resolve(&self, parts: &Parts) -> Result<String, TenantRejection> {
        match &self.kind {
            Kind::Header(name) => {
                let mut values = parts.headers.get_all(name).iter();
                let value = values.next().ok_or_else(|| {
                    TenantRejection::missing(format!("the {name} header is required"))
                })?;
                // Two values (a client's and a proxy's, say) name no one tenant.
                if values.next().is_some() {
                    return Err(TenantRejection::malformed(format!(
                        "the {name} header appears more than once"
                    )));
                }
                let text = value.to_str().map_err(|_| {
                    TenantRejection::malformed(format!("the {name} header is not visible ASCII"))
                })?;
                Ok(text.trim().to_owned())
            }
            Kind::Subdomain(base) => {
                let host = parts
                    .headers
                    .get(HOST)
                    .and_then(|h| h.to_str().ok())
                    .or_else(|| parts.uri.host())
                    .ok_or_else(|| TenantRejection::missing("the request has no host name"))?;
                subdomain_of(host, base).ok_or_else(|| {
                    TenantRejection::missing(format!(
                        "the host name must be <tenant>.{base}, not {host:?}"
                    ))
                })
            }
            Kind::PathSegment(index) => parts
                .uri
                .path()
                .split('/')
                .filter(|s| !s.is_empty())
                .nth(*index)
                .map(str::to_owned)
                .ok_or_else(|| {
                    TenantRejection::missing(format!(
                        "the path has no tenant segment (segment {index})"
                    ))
                }),
            Kind::Custom(resolve) => resolve(parts),
        }
    }
}

/// `acme` from `acme.example.com:8080` with base `example.com`.
fn subdomain_of(host: &str, base: &str) -> Option<String> {
    // Host names are case-insensitive; one tenant must have one spelling.
    let host = host.to_ascii_lowercase();
    let host = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host.as_str(),
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    let label = host.strip_suffix(base)?.strip_suffix('.')?;
    (!label.is_empty() && !label.contains('.')).then(|| label.to_owned())
}

impl Default for Resolver {
    /// The `X-Tenant-Id` header.
    fn default() -> Resolver {
        Resolver::header(HeaderName::from_static("x-tenant-id"))
    }
}

impl fmt::Debug for Resolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Header(name) => f.debug_tuple("Header").field(name).finish(),
            Kind::Subdomain(base) => f.debug_tuple("Subdomain").field(base).finish(),
            Kind::PathSegment(i) => f.debug_tuple("PathSegment").field(i).finish(),
            Kind::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request;

    fn parts(uri: &str, headers: &[(&str, &str)]) -> Parts {
        let mut request = Request::builder().uri(uri);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request
            .body(())
            .expect("a valid test request")
            .into_parts()
            .0
    }

    #[test]
    fn header() {
        let r = Resolver::default();
        assert_eq!(
            r.resolve(&parts("/", &[("X-Tenant-Id", " 7 ")])),
            Ok("7".into())
        );
        assert_eq!(
            r.resolve(&parts("/", &[])).map_err(|e| e.code()),
            Err("tenant_missing")
        );
    }

    #[test]
    fn subdomain() {
        let r = Resolver::subdomain("Example.com");
        let host = |h: &str| r.resolve(&parts("/", &[("host", h)])).ok();
        assert_eq!(host("acme.example.com"), Some("acme".into()));
        assert_eq!(host("ACME.example.com:8080"), Some("acme".into()));
        assert_eq!(host("acme.example.com."), Some("acme".into()));
        assert_eq!(host("example.com"), None);
        assert_eq!(host("a.b.example.com"), None);
        assert_eq!(host("acme.badexample.com"), None);
        assert_eq!(host("acmeexample.com"), None);
        assert_eq!(
            r.resolve(&parts("http://beta.example.com/x", &[])).ok(),
            Some("beta".into())
        );
    }

    #[test]
    fn path_segment() {
        let r = Resolver::path_segment(1);
        assert_eq!(
            r.resolve(&parts("/orgs/acme/projects", &[])),
            Ok("acme".into())
        );
        assert_eq!(r.resolve(&parts("//orgs//acme", &[])), Ok("acme".into()));
        assert!(r.resolve(&parts("/orgs", &[])).is_err());
    }
}
