//! Throwaway PostgreSQL clusters: `initdb` into a temp dir, `postgres` on a
//! free loopback port, stopped and deleted when the process exits.
//!
//! A server must not outlive the process, however it ends:
//! - on a normal exit (tests finished, example returned) an `atexit` hook
//!   shuts every running server down, waits for it, and removes its directory;
//! - if the process is killed, the kernel sends each server SIGKILL
//!   (`PR_SET_PDEATHSIG`). That signal fires when the *thread* that spawned
//!   the server ends, so all servers are spawned by one thread that never does;
//! - directories of earlier processes that were killed are removed on the
//!   next start.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io;
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::fs::chown;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Mutex, MutexGuard, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use crate::binaries::Binaries;
use crate::Error;

const DIR_PREFIX: &str = "pebble-testkit-";
const READY_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Servers running now, by cluster id, for the exit hook.
static RUNNING: Mutex<Option<HashMap<u64, Child>>> = Mutex::new(None);
/// Cluster directories to delete at exit.
static DIRECTORIES: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// A cluster on disk, and its server when started.
pub(crate) struct Cluster {
    id: u64,
    binaries: Binaries,
    run_as: Option<RunAs>,
    dir: PathBuf,
    port: u16,
}

/// The OS user the server runs as: PostgreSQL refuses to run as root.
#[derive(Clone, Copy)]
struct RunAs {
    uid: u32,
    gid: u32,
}

impl Cluster {
    /// Creates a cluster (`initdb`) and starts its server.
    pub(crate) fn start() -> Result<Cluster, Error> {
        let binaries = Binaries::find()?;
        let run_as = run_as()?;
        remove_stale_dirs();
        register_exit_hook();

        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("{DIR_PREFIX}{}-{id}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir)?;
        lock(&DIRECTORIES).push(dir.clone());
        if let Some(user) = run_as {
            chown(&dir, Some(user.uid), Some(user.gid))?;
        }
        let mut cluster = Cluster {
            id,
            binaries,
            run_as,
            dir,
            port: 0,
        };
        cluster.init()?;
        // A free port can be taken between our probe and the server's bind; try again then.
        let mut attempt = 0;
        loop {
            cluster.port = free_port()?;
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
        if let Some(mut child) = lock_running().as_mut().and_then(|r| r.remove(&self.id)) {
            shut_down(&mut child, libc::SIGINT);
        }
    }

    /// Starts the stopped server again, on the same port and data.
    pub(crate) fn restart(&self) -> Result<(), Error> {
        self.stop();
        self.launch()
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn command(&self, program: &Path) -> Command {
        let mut command = Command::new(program);
        if let Some(user) = self.run_as {
            command.uid(user.uid).gid(user.gid);
        }
        command.stdin(Stdio::null()).current_dir(&self.dir);
        command
    }

    fn init(&self) -> Result<(), Error> {
        let log = self.dir.join("initdb.log");
        let out = File::create(&log)?;
        let status = self
            .command(&self.binaries.initdb)
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

    fn launch(&self) -> Result<(), Error> {
        let log = self.dir.join("server.log");
        let out = File::create(&log)?;
        let mut command = self.command(&self.binaries.postgres);
        command
            .arg("-D")
            .arg(self.data())
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-k")
            .arg(&self.dir)
            .args(["-c", "listen_addresses=127.0.0.1"])
            // Throwaway data: durability buys nothing and costs seconds.
            .args(["-c", "fsync=off", "-c", "synchronous_commit=off"])
            .args(["-c", "full_page_writes=off"])
            // Database-per-tenant tests open many pools at once.
            .args(["-c", "max_connections=400"])
            .stdout(out.try_clone()?)
            .stderr(out);
        // SAFETY: the closure runs between fork and exec, after the uid/gid
        // change (which would clear the setting); it only calls the
        // async-signal-safe prctl and getppid.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(io::Error::last_os_error());
                }
                // If the spawning thread is already gone, do not run orphaned.
                if libc::getppid() == 1 {
                    return Err(io::Error::other("parent exited"));
                }
                Ok(())
            });
        }
        let child = spawn(command)?;
        lock_running()
            .get_or_insert_with(HashMap::new)
            .insert(self.id, child);
        self.wait_ready(&log).inspect_err(|_| self.stop())
    }

    fn wait_ready(&self, log: &Path) -> Result<(), Error> {
        let pid_file = self.data().join("postmaster.pid");
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            // Line 8 of postmaster.pid is the server status; "ready" once it accepts connections.
            if let Ok(text) = fs::read_to_string(&pid_file) {
                if text.lines().nth(7).map(str::trim) == Some("ready") {
                    return Ok(());
                }
            }
            let exited = lock_running()
                .as_mut()
                .and_then(|r| r.get_mut(&self.id))
                .and_then(|child| child.try_wait().ok().flatten());
            if let Some(status) = exited {
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
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
        let _ = fs::remove_dir_all(&self.dir);
        lock(&DIRECTORIES).retain(|d| d != &self.dir);
    }
}

type SpawnRequest = (Command, mpsc::Sender<io::Result<Child>>);

/// Spawns `command` from the process's spawner thread, which lives (parked
/// between requests) as long as the process, so `PR_SET_PDEATHSIG` only fires
/// when the process dies.
fn spawn(command: Command) -> Result<Child, Error> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (sender, requests) = mpsc::channel::<SpawnRequest>();
        let started = thread::Builder::new()
            .name("pebble-testkit-spawner".into())
            .spawn(move || {
                for (mut command, reply) in requests {
                    let _ = reply.send(command.spawn());
                }
                // Every sender is gone only when the process is exiting.
                loop {
                    thread::park();
                }
            });
        if let Err(e) = started {
            eprintln!("pebble-testkit: cannot start the spawner thread: {e}");
        }
        Mutex::new(sender)
    });
    let (reply, response) = mpsc::channel();
    lock(spawner)
        .send((command, reply))
        .map_err(|_| Error::Start("the server spawner thread is gone".into()))?;
    let child = response
        .recv()
        .map_err(|_| Error::Start("the server spawner thread is gone".into()))??;
    Ok(child)
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

fn lock_running() -> MutexGuard<'static, Option<HashMap<u64, Child>>> {
    lock(&RUNNING)
}

fn run_as() -> Result<Option<RunAs>, Error> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    let name = c"postgres";
    // SAFETY: `name` is a valid C string; the returned record is read at once,
    // before any other getpw* call on this thread could overwrite it.
    let entry = unsafe { libc::getpwnam(name.as_ptr()) };
    if entry.is_null() {
        return Err(Error::Start(
            "running as root, and PostgreSQL refuses to run as root, but there is no `postgres` \
             OS user to run it as (installing the postgresql package creates one)"
                .into(),
        ));
    }
    // SAFETY: checked non-null above.
    let (uid, gid) = unsafe { ((*entry).pw_uid, (*entry).pw_gid) };
    Ok(Some(RunAs { uid, gid }))
}

fn register_exit_hook() {
    extern "C" fn on_exit() {
        let children = lock_running().take().unwrap_or_default();
        for (_, mut child) in children {
            // Immediate: no checkpoint, the data is thrown away.
            shut_down(&mut child, libc::SIGQUIT);
        }
        for dir in lock(&DIRECTORIES).drain(..) {
            let _ = fs::remove_dir_all(dir);
        }
    }
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: registering a plain `extern "C" fn` with no captured state.
        unsafe {
            libc::atexit(on_exit);
        }
    });
}

/// Signals the server (SIGINT: fast shutdown; SIGQUIT: immediate), then
/// waits for it to exit, killing it if it will not.
fn shut_down(child: &mut Child, signal: libc::c_int) {
    if let Ok(pid) = i32::try_from(child.id()) {
        // SAFETY: signalling our own child, which has not been reaped yet.
        unsafe {
            libc::kill(pid, signal);
        }
    }
    let deadline = Instant::now() + STOP_TIMEOUT;
    loop {
        match child.try_wait() {
            Ok(Some(_)) | Err(_) => return,
            Ok(None) if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return;
            }
            Ok(None) => thread::sleep(Duration::from_millis(10)),
        }
    }
}

/// Removes cluster directories left by processes that no longer exist
/// (killed before their exit hook could run).
fn remove_stale_dirs() {
    let Ok(entries) = fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(DIR_PREFIX))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<i32>().ok())
        else {
            continue;
        };
        // SAFETY: signal 0 only checks whether the process exists.
        let gone = unsafe { libc::kill(pid, 0) } != 0
            && io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
        if gone {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

fn tail(log: &Path) -> String {
    let text = fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}
