//! TLS: with the `tls` feature, against a real server started with
//! `ssl = on` and a certificate generated for the test; without it, a
//! connection string that needs TLS is refused with what to do.
//!
//! `cargo test --test tls` checks the build without TLS;
//! `cargo test --features tls --test tls` the build with it.

#[cfg(not(feature = "tls"))]
mod without_the_feature {
    use pebble::{Db, Error, IntoConfig, PoolOptions, SslMode, TenantManager, TlsOptions};

    fn url(mode: &str) -> String {
        // The server is never reached: the refusal comes first.
        format!("postgres://postgres@127.0.0.1:1/postgres?sslmode={mode}")
    }

    #[tokio::test]
    async fn tls_modes_are_refused_with_what_to_do() {
        for mode in ["require", "verify-ca", "verify-full"] {
            let e = Db::connect(url(mode)).await.expect_err("refused");
            assert!(
                matches!(&e, Error::TlsNotEnabled { mode: m } if *m == mode),
                "{e:?}"
            );
            let message = e.to_string();
            assert!(message.contains("feature `tls`"), "{message}");
            assert!(message.contains(&format!("sslmode={mode}")), "{message}");

            let e = TenantManager::builder(url(mode))
                .build()
                .expect_err("refused");
            assert!(matches!(e, Error::TlsNotEnabled { .. }), "{e:?}");
        }
        // Set in the pool options rather than the URL: the same.
        let options = PoolOptions::default().tls(TlsOptions::new().mode(SslMode::Require));
        let e = Db::connect_with(url("disable"), options)
            .await
            .expect_err("refused");
        assert!(
            matches!(e, Error::TlsNotEnabled { mode: "require" }),
            "{e:?}"
        );
        // A tokio-postgres configuration asking for TLS too.
        let config = url("require").into_connect().expect("parses");
        assert!(matches!(
            Db::connect_lazy(config, PoolOptions::default()),
            Err(Error::TlsNotEnabled { .. })
        ));
    }

    #[tokio::test]
    async fn prefer_and_disable_connect_in_plain_text() {
        let test_db = pebble_testkit::database().await.expect("test database");
        let config = test_db.config();
        let port = config.get_ports()[0];
        for mode in ["prefer", "disable"] {
            let url = format!(
                "postgres://postgres@127.0.0.1:{port}/{}?sslmode={mode}",
                test_db.name()
            );
            let db = Db::connect(&url).await.expect("plain connection");
            db.batch_execute("SELECT 1").await.expect("runs");
        }
    }
}

#[cfg(feature = "tls")]
mod with_the_feature {
    use std::sync::OnceLock;

    use pebble::{Db, Error, Model, PoolOptions, SslMode, TenantManager, TlsOptions};
    use pebble_testkit::{TempServer, TlsCertificates};
    use tokio_postgres::NoTls;

    #[derive(Model, Debug, Clone, PartialEq)]
    #[pebble(table = "notes")]
    struct Note {
        #[pebble(primary_key, default)]
        id: i64,
        #[tenant_id]
        org: i64,
        body: String,
    }

    /// One TLS server for the test binary.
    fn server() -> &'static TempServer {
        static SERVER: OnceLock<TempServer> = OnceLock::new();
        SERVER.get_or_init(|| TempServer::start_tls().expect("TLS server"))
    }

    fn ca() -> String {
        server().tls().expect("TLS").ca_pem().to_owned()
    }

    /// A fresh database on the TLS server (created over a plain connection).
    async fn database(name: &str) -> String {
        admin(&format!("CREATE DATABASE {name}")).await;
        name.to_owned()
    }

    async fn admin(sql: &str) -> Vec<tokio_postgres::SimpleQueryMessage> {
        let (client, connection) = server().config().connect(NoTls).await.expect("admin");
        let task = tokio::spawn(connection);
        let out = client.simple_query(sql).await.expect(sql);
        drop(client);
        let _ = task.await;
        out
    }

    /// Whether every backend connected to `database` is encrypted, and how many there are.
    async fn encrypted_backends(database: &str) -> (bool, i64) {
        let rows = admin(&format!(
            "SELECT coalesce(bool_and(s.ssl), false)::text, count(*)::text \
             FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.datname = '{database}'"
        ))
        .await;
        let row = rows
            .iter()
            .find_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(row) => Some(row),
                _ => None,
            })
            .expect("a row");
        (
            row.get(0) == Some("true"),
            row.get(1).and_then(|n| n.parse().ok()).unwrap_or(0),
        )
    }

    fn trusting(ca: &str) -> PoolOptions {
        PoolOptions::default().tls(TlsOptions::new().ca_pem(ca.as_bytes().to_vec()))
    }

    #[tokio::test]
    async fn require_encrypts_the_connection() {
        let name = database("tls_require").await;
        let db = Db::connect(format!("{}?sslmode=require", server().url_for(&name)))
            .await
            .expect("require connects");
        db.batch_execute("SELECT 1").await.expect("runs");
        assert_eq!(encrypted_backends(&name).await, (true, 1));
    }

    #[tokio::test]
    async fn verify_full_with_the_right_ca_connects() {
        let name = database("tls_verify_full").await;
        let url = format!("{}?sslmode=verify-full", server().url_for(&name));
        let db = Db::connect_with(&url, trusting(&ca()))
            .await
            .expect("verified");
        db.batch_execute("SELECT 1").await.expect("runs");

        // The CA as `sslrootcert=` in the URL, a PEM file.
        let dir = std::env::temp_dir().join(format!("pebble-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("ca.pem");
        std::fs::write(&file, ca()).expect("CA file");
        let url = format!("{url}&sslrootcert={}", file.display());
        let db = Db::connect(&url).await.expect("verified via sslrootcert");
        db.batch_execute("SELECT 1").await.expect("runs");
        let _ = std::fs::remove_dir_all(&dir);
        let (all, n) = encrypted_backends(&name).await;
        assert!(all && n == 2, "{all} {n}");
    }

    #[tokio::test]
    async fn verify_full_with_a_wrong_ca_is_refused() {
        let name = database("tls_wrong_ca").await;
        let other = TlsCertificates::generate(&["localhost", "127.0.0.1"]).expect("other CA");
        for mode in ["verify-full", "verify-ca", "require"] {
            // `require` with a CA checks the chain, as libpq does.
            let url = format!("{}?sslmode={mode}", server().url_for(&name));
            let e = Db::connect_with(&url, trusting(other.ca_pem()))
                .await
                .expect_err("refused");
            assert!(matches!(e, Error::Tls(_)), "{mode}: {e:?}");
            assert!(!e.is_retryable(), "{e}");
            let message = e.to_string();
            assert!(
                message.contains("invalid peer certificate: UnknownIssuer"),
                "{message}"
            );
        }
        assert_eq!(encrypted_backends(&name).await.1, 0);
    }

    #[tokio::test]
    async fn verify_full_checks_the_host_name_and_verify_ca_does_not() {
        // A certificate for another host, signed by a CA the client trusts.
        let elsewhere = TempServer::start_tls_for(&["db.example.com"]).expect("server");
        let ca = elsewhere.tls().expect("TLS").ca_pem().to_owned();
        let url = |mode: &str| format!("{}?sslmode={mode}", elsewhere.url_for("postgres"));
        let e = Db::connect_with(url("verify-full"), trusting(&ca))
            .await
            .expect_err("wrong host refused");
        assert!(matches!(e, Error::Tls(_)), "{e:?}");
        let message = e.to_string();
        assert!(message.contains("not valid for name"), "{message}");
        let db = Db::connect_with(url("verify-ca"), trusting(&ca))
            .await
            .expect("verify-ca ignores the name");
        db.batch_execute("SELECT 1").await.expect("runs");
    }

    #[tokio::test]
    async fn require_against_a_server_without_tls_is_refused() {
        let plain = pebble_testkit::database().await.expect("plain server");
        let port = plain.config().get_ports()[0];
        let url = format!(
            "postgres://postgres@127.0.0.1:{port}/{}?sslmode=require",
            plain.name()
        );
        let e = Db::connect(&url).await.expect_err("refused");
        assert!(matches!(e, Error::Tls(_)), "{e:?}");
        assert!(e.to_string().contains("does not support TLS"), "{e}");
        // `prefer` falls back to plain text.
        let url = url.replace("require", "prefer");
        Db::connect(&url).await.expect("prefer falls back");
    }

    #[tokio::test]
    async fn a_missing_ca_file_is_refused_before_connecting() {
        let url = format!(
            "{}?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
            server().url_for("postgres")
        );
        let e = Db::connect(&url).await.expect_err("refused");
        assert!(
            matches!(&e, Error::TlsRoots { origin, .. } if origin.contains("/nonexistent/ca.pem")),
            "{e:?}"
        );
        let e = Db::connect_with(
            server().url_for("postgres"),
            PoolOptions::default().tls(
                TlsOptions::new()
                    .mode(SslMode::VerifyFull)
                    .ca_pem(b"not a certificate".to_vec()),
            ),
        )
        .await
        .expect_err("refused");
        assert!(matches!(e, Error::TlsRoots { .. }), "{e:?}");
    }

    /// A server that logs clients in by certificate (`cert` in pg_hba):
    /// the client certificate from `TlsOptions` or `sslcert`/`sslkey` opens
    /// it; without one, or with one the server's CA did not sign, the
    /// server refuses the login.
    #[tokio::test]
    async fn client_certificates_log_in_where_the_server_demands_them() {
        let server = TempServer::start_tls_requiring_client_certs().expect("server");
        let certs = server.tls().expect("TLS").clone();
        let url = format!("{}?sslmode=verify-full", server.url_for("postgres"));
        let with_cert = trusting(certs.ca_pem()).tls(
            TlsOptions::new()
                .ca_pem(certs.ca_pem().as_bytes().to_vec())
                .client_cert_pem(certs.client_cert_pem(), certs.client_key_pem()),
        );
        let db = Db::connect_with(&url, with_cert).await.expect("cert login");
        db.batch_execute("SELECT 1").await.expect("runs");

        // The same as files named in the URL.
        let dir = std::env::temp_dir().join(format!("pebble-client-cert-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let write = |name: &str, pem: &str| {
            let path = dir.join(name);
            std::fs::write(&path, pem).expect("file");
            path.display().to_string()
        };
        let url_with_files = format!(
            "{url}&sslrootcert={}&sslcert={}&sslkey={}",
            write("ca.pem", certs.ca_pem()),
            write("client.pem", certs.client_cert_pem()),
            write("client.key", certs.client_key_pem()),
        );
        let db = Db::connect(&url_with_files)
            .await
            .expect("cert login from files");
        db.batch_execute("SELECT 1").await.expect("runs");

        // No certificate: the server refuses (28000, invalid authorization).
        let e = Db::connect_with(&url, trusting(certs.ca_pem()))
            .await
            .expect_err("no certificate");
        assert_eq!(
            e.code(),
            Some(&pebble::SqlState::INVALID_AUTHORIZATION_SPECIFICATION),
            "{e:?}"
        );

        // A certificate from another CA: the handshake fails.
        let other = TlsCertificates::generate(&["127.0.0.1"]).expect("other");
        let forged = trusting(certs.ca_pem()).tls(
            TlsOptions::new()
                .ca_pem(certs.ca_pem().as_bytes().to_vec())
                .client_cert_pem(other.client_cert_pem(), other.client_key_pem()),
        );
        let e = Db::connect_with(&url, forged)
            .await
            .expect_err("foreign certificate");
        assert!(matches!(e, Error::Tls(_) | Error::Connection(_)), "{e:?}");

        // A key that does not belong to the certificate, or no key at all.
        let mismatched = TlsOptions::new()
            .mode(SslMode::VerifyFull)
            .ca_pem(certs.ca_pem().as_bytes().to_vec())
            .client_cert_pem(certs.client_cert_pem(), b"no key here".to_vec());
        let e = Db::connect_with(&url, PoolOptions::default().tls(mismatched))
            .await
            .expect_err("bad key");
        assert!(matches!(e, Error::TlsClientCert { .. }), "{e:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A password login over TLS binds to the TLS session
    /// (SCRAM-SHA-256-PLUS with `tls-server-end-point`): with
    /// `channel_binding=require`, tokio-postgres refuses any login that is not.
    #[tokio::test]
    async fn password_logins_are_bound_to_the_tls_session() {
        let server = TempServer::start_tls_with_password_logins().expect("server");
        let ca = server.tls().expect("TLS").ca_pem().to_owned();
        let admin = Db::connect_with(
            format!("{}?sslmode=verify-full", server.url_for("postgres")),
            trusting(&ca),
        )
        .await
        .expect("postgres logs in");
        admin
            .batch_execute("CREATE ROLE app LOGIN PASSWORD 'app-secret'")
            .await
            .expect("role");
        let port = server.config().get_ports()[0];
        let url = |password: &str| {
            format!(
                "postgres://app:{password}@127.0.0.1:{port}/postgres?sslmode=verify-full&channel_binding=require"
            )
        };
        let app = Db::connect_with(url("app-secret"), trusting(&ca))
            .await
            .expect("bound SCRAM login");
        app.batch_execute("SELECT 1").await.expect("runs");
        let e = Db::connect_with(url("wrong"), trusting(&ca))
            .await
            .expect_err("wrong password");
        assert_eq!(e.code(), Some(&pebble::SqlState::INVALID_PASSWORD), "{e:?}");
    }

    /// Tenant-scoped statements over a verified connection: the scope holds
    /// (the second tenant sees and changes nothing of the first), and the
    /// server says every backend of the pool is encrypted.
    #[tokio::test]
    async fn tenant_queries_over_tls_stay_confined() {
        let name = database("tls_tenants").await;
        let url = format!("{}?sslmode=verify-full", server().url_for(&name));
        let db = Db::connect_with(&url, trusting(&ca()))
            .await
            .expect("verified");
        db.create_table::<Note>().await.expect("table");
        let (a, b) = (db.tenant(1_i64), db.tenant(2_i64));
        for (tenant, body) in [(&a, "a's note"), (&b, "b's note")] {
            tenant
                .insert(Note {
                    id: 0,
                    org: 0,
                    body: body.into(),
                })
                .exec()
                .await
                .expect("insert");
        }
        let seen = b.select::<Note>().all().await.expect("select");
        assert_eq!(seen.len(), 1);
        assert_eq!((seen[0].org, seen[0].body.as_str()), (2, "b's note"));
        let changed = b
            .update::<Note>()
            .set(Note::BODY, "overwritten".to_string())
            .exec()
            .await
            .expect("update");
        assert_eq!(changed, 1);
        assert_eq!(b.delete::<Note>().exec().await.expect("delete"), 1);
        let a_rows = a.select::<Note>().all().await.expect("select");
        assert_eq!(a_rows.len(), 1);
        assert_eq!((a_rows[0].org, a_rows[0].body.as_str()), (1, "a's note"));
        let (all, n) = encrypted_backends(&name).await;
        assert!(all && n >= 1, "{all} {n}");
    }

    /// The tenant manager's pools and maintenance connections (which open
    /// their own sockets) use the same TLS.
    #[tokio::test]
    async fn tenant_manager_connects_over_tls() {
        let url = format!("{}?sslmode=verify-full", server().url_for("postgres"));
        let manager = TenantManager::builder(&url)
            .pool(trusting(&ca()).max_size(2))
            .create_missing(true)
            .database_name(|id| format!("tls_tenant_{id}"))
            .build()
            .expect("manager");
        let acme = manager.db("acme").await.expect("created over TLS");
        acme.batch_execute("CREATE TABLE t (n int); INSERT INTO t VALUES (1)")
            .await
            .expect("runs");
        let (all, n) = encrypted_backends("tls_tenant_acme").await;
        assert!(all && n >= 1, "{all} {n}");

        // A wrong CA: the manager cannot even reach its maintenance database.
        let other = TlsCertificates::generate(&["127.0.0.1"]).expect("other CA");
        let refused = TenantManager::builder(&url)
            .pool(trusting(other.ca_pem()))
            .create_missing(true)
            .database_name(|id| format!("tls_refused_{id}"))
            .build()
            .expect("manager");
        let e = refused.db("globex").await.expect_err("refused");
        assert!(matches!(e, Error::Tls(_)), "{e:?}");
    }
}
