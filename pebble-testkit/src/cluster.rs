//! Throwaway PostgreSQL clusters: `initdb` into a temp dir, `postgres` on a
//! free loopback port, stopped and deleted when the process exits (see
//! [`crate::process`] for how a server is kept from outliving the process).

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use crate::binaries::Binaries;
use crate::process::{self, lock, tail, Guarded, RunAs, TempDir};
use crate::{Error, ServerOptions};

const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// What a TLS server presents and trusts (PEM).
pub(crate) struct TlsSetup<'a> {
    pub(crate) cert_pem: &'a str,
    pub(crate) key_pem: &'a str,
    /// The CA client certificates must be signed by.
    pub(crate) ca_pem: &'a str,
    /// `pg_hba.conf` to replace initdb's (trust for everyone) with.
    pub(crate) hba: Option<&'a str>,
}

/// A cluster on disk, and its server when started.
pub(crate) struct Cluster {
    binaries: Binaries,
    run_as: Option<RunAs>,
    port: u16,
    /// `None` while stopped. Declared before `dir` so that on drop the server
    /// is stopped (immediately: the data is being thrown away) before its
    /// directory is deleted.
    server: Mutex<Option<Guarded>>,
    /// Settings passed to the server besides the defaults (`ssl=on`...).
    settings: Vec<(String, String)>,
    options: ServerOptions,
    dir: TempDir,
}

impl Cluster {
    /// Creates a cluster (`initdb`) and starts its server.
    pub(crate) fn start(options: ServerOptions) -> Result<Cluster, Error> {
        Cluster::start_with(options, None)
    }

    /// Creates a cluster and starts its server, with `ssl = on` when `tls`
    /// is given.
    pub(crate) fn start_with(
        options: ServerOptions,
        tls: Option<&TlsSetup<'_>>,
    ) -> Result<Cluster, Error> {
        let binaries = Binaries::find()?;
        let run_as = process::run_as().map_err(Error::Start)?;
        let dir = TempDir::create(run_as)?;
        let mut cluster = Cluster {
            binaries,
            run_as,
            port: 0,
            server: Mutex::new(None),
            settings: Vec::new(),
            options,
            dir,
        };
        cluster.init()?;
        if cluster.options.password_logins {
            cluster.write_hba(
                "local all all trust\n\
                 host all postgres 127.0.0.1/32 trust\n\
                 host all postgres ::1/128 trust\n\
                 host all all 127.0.0.1/32 scram-sha-256\n\
                 host all all ::1/128 scram-sha-256\n",
            )?;
        }
        if let Some(tls) = tls {
            cluster.install_tls(tls)?;
        }
        // A free port can be taken between our probe and the server's bind; try again then.
        let mut attempt = 0;
        loop {
            cluster.port = process::free_port()?;
            match cluster.launch() {
                Ok(()) => return Ok(cluster),
                Err(e) if attempt >= 4 => return Err(e),
                Err(_) => attempt += 1,
            }
        }
    }

    /// The loopback port the server listens on (the same after a restart).
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server, keeping the data for [`Cluster::restart`]: a fast
    /// shutdown, which checkpoints. (An immediate one would lose recent
    /// commits, which `synchronous_commit=off` keeps in memory for a while.)
    pub(crate) fn stop(&self) {
        let server = lock(&self.server).take();
        if let Some(server) = server {
            server.stop(libc::SIGINT);
        }
    }

    /// Starts the stopped server again, on the same port and data.
    pub(crate) fn restart(&self) -> Result<(), Error> {
        self.stop();
        self.launch()
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn init(&self) -> Result<(), Error> {
        let log = self.dir.path().join("initdb.log");
        let out = File::create(&log)?;
        let status = self
            .dir
            .command(&self.binaries.initdb, self.run_as)
            .arg("--pgdata")
            .arg(self.data())
            .args(["--username=postgres", "--auth=trust", "--encoding=UTF8"])
            .args(["--locale=C", "--no-sync", "--no-instructions"])
            .stdout(out.try_clone()?)
            .stderr(out)
            .status()?;
        if !status.success() {
            return Err(Error::Start(format!(
                "initdb failed ({status}):\n{}",
                tail(&log)
            )));
        }
        Ok(())
    }

    /// Writes the server's certificate and key (readable by the server's
    /// user only, as PostgreSQL demands of a key) and the CA client
    /// certificates are checked against, and turns TLS on, with the
    /// setup's login rules if any.
    fn install_tls(&mut self, tls: &TlsSetup<'_>) -> Result<(), Error> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let (cert_pem, key_pem) = (tls.cert_pem, tls.key_pem);
        let cert = self.dir.path().join("server.crt");
        let key = self.dir.path().join("server.key");
        let ca = self.dir.path().join("ca.crt");
        fs::write(&cert, cert_pem)?;
        fs::write(&ca, tls.ca_pem)?;
        fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&key)?
            .write_all(key_pem.as_bytes())?;
        if let Some(user) = self.run_as {
            user.own(&cert)?;
            user.own(&key)?;
            user.own(&ca)?;
        }
        if let Some(rules) = tls.hba {
            self.write_hba(rules)?;
        }
        self.settings.push(("ssl".into(), "on".into()));
        self.settings
            .push(("ssl_cert_file".into(), cert.display().to_string()));
        self.settings
            .push(("ssl_key_file".into(), key.display().to_string()));
        self.settings
            .push(("ssl_ca_file".into(), ca.display().to_string()));
        Ok(())
    }

    /// Replaces initdb's `pg_hba.conf` (trust for everyone) with `rules`.
    fn write_hba(&self, rules: &str) -> Result<(), Error> {
        let hba = self.data().join("pg_hba.conf");
        fs::write(&hba, rules)?;
        if let Some(user) = self.run_as {
            user.own(&hba)?;
        }
        Ok(())
    }

    fn launch(&self) -> Result<(), Error> {
        let log = self.dir.path().join("server.log");
        let out = File::create(&log)?;
        let mut command = self.dir.command(&self.binaries.postgres, self.run_as);
        command
            .arg("-D")
            .arg(self.data())
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-k")
            .arg(self.dir.path())
            .args(["-c", "listen_addresses=127.0.0.1"])
            // Throwaway data: durability buys nothing and costs seconds.
            .args(["-c", "fsync=off", "-c", "synchronous_commit=off"])
            .args(["-c", "full_page_writes=off"])
            // Database-per-tenant tests open many pools at once.
            .arg("-c")
            .arg(format!("max_connections={}", self.options.max_connections))
            .args(
                self.settings
                    .iter()
                    .flat_map(|(name, value)| ["-c".to_owned(), format!("{name}={value}")]),
            )
            .stdout(out.try_clone()?)
            .stderr(out);
        // At exit the data is thrown away, so an immediate shutdown (no checkpoint) will do.
        let server = Guarded::spawn(command, libc::SIGQUIT)?;
        let ready = wait_ready(&server, &self.data().join("postmaster.pid"), &log);
        if ready.is_ok() {
            *lock(&self.server) = Some(server);
        }
        ready
    }
}

fn wait_ready(server: &Guarded, pid_file: &Path, log: &Path) -> Result<(), Error> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        // Line 8 of postmaster.pid is the server status; "ready" once it accepts connections.
        if let Ok(text) = fs::read_to_string(pid_file) {
            if text.lines().nth(7).map(str::trim) == Some("ready") {
                return Ok(());
            }
        }
        if let Some(status) = server.exited() {
            return Err(Error::Start(format!(
                "postgres exited ({status}) during start-up:\n{}",
                tail(log)
            )));
        }
        if Instant::now() > deadline {
            return Err(Error::Start(format!(
                "postgres was not ready after {READY_TIMEOUT:?}:\n{}",
                tail(log)
            )));
        }
        thread::sleep(Duration::from_millis(20));
    }
}
