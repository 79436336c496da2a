//! Child processes that must not outlive this one (PostgreSQL servers,
//! PgBouncer), and the temporary directories they run in.
//!
//! However the process ends, nothing it started keeps running:
//! - on a normal exit (tests finished, example returned) an `atexit` hook
//!   stops every running child, waits for it, and removes every directory;
//! - if the process is killed, the kernel sends each child SIGKILL
//!   (`PR_SET_PDEATHSIG`). That signal fires when the *thread* that spawned
//!   the child ends, so all children are spawned by one thread that never does;
//! - directories of earlier processes that were killed are removed when the
//!   next one creates its first directory.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::fs::chown;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Mutex, MutexGuard, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

/// How long a child gets to exit after its stop signal before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Directories are `<temp>/pebble-testkit-<pid>-<n>`: the pid tells which
/// ones a killed process left behind, and lets `.ci/run` and the tests find
/// a process's children by their command line.
pub(crate) const DIR_PREFIX: &str = "pebble-testkit-";

/// Children running now, by spawn order, with the signal that stops them at exit.
static RUNNING: Mutex<BTreeMap<u64, (Child, libc::c_int)>> = Mutex::new(BTreeMap::new());
/// Directories to delete at exit.
static DIRECTORIES: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// The OS user children run as: PostgreSQL and PgBouncer both refuse to run as root.
#[derive(Clone, Copy)]
pub(crate) struct RunAs {
    uid: u32,
    gid: u32,
}

impl RunAs {
    /// Hands `path` to this user (the server reads its key file as itself).
    pub(crate) fn own(&self, path: &Path) -> io::Result<()> {
        chown(path, Some(self.uid), Some(self.gid))
    }
}

/// `None` when not root (children run as us); the `postgres` user when root.
pub(crate) fn run_as() -> Result<Option<RunAs>, String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    let name = c"postgres";
    // SAFETY: `name` is a valid C string; the returned record is read at once,
    // before any other getpw* call on this thread could overwrite it.
    let entry = unsafe { libc::getpwnam(name.as_ptr()) };
    if entry.is_null() {
        return Err(
            "running as root, and PostgreSQL and PgBouncer refuse to run as root, but there is \
             no `postgres` OS user to run them as (installing the postgresql package creates one)"
                .into(),
        );
    }
    // SAFETY: checked non-null above.
    let (uid, gid) = unsafe { ((*entry).pw_uid, (*entry).pw_gid) };
    Ok(Some(RunAs { uid, gid }))
}

/// A directory of this process under the temp dir, owned by the children's
/// user; removed when dropped, or at exit.
pub(crate) struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub(crate) fn create(run_as: Option<RunAs>) -> io::Result<TempDir> {
        remove_stale_dirs();
        register_exit_hook();
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("{DIR_PREFIX}{}-{id}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path)?;
        lock(&DIRECTORIES).push(path.clone());
        let dir = TempDir { path };
        if let Some(user) = run_as {
            chown(&dir.path, Some(user.uid), Some(user.gid))?;
        }
        Ok(dir)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// A command for `program`, run as `run_as`, in this directory.
    pub(crate) fn command(&self, program: &Path, run_as: Option<RunAs>) -> Command {
        let mut command = Command::new(program);
        if let Some(user) = run_as {
            command.uid(user.uid).gid(user.gid);
        }
        command.stdin(Stdio::null()).current_dir(&self.path);
        command
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
        lock(&DIRECTORIES).retain(|d| d != &self.path);
    }
}

/// A running child that must not outlive this process. Dropping it stops it
/// with its `at_exit` signal and waits for it.
pub(crate) struct Guarded {
    id: u64,
    at_exit: libc::c_int,
}

impl Guarded {
    /// Spawns `command` so that the kernel kills it if this process dies, and
    /// so that the exit hook sends it `at_exit` (and waits) if it is still
    /// running when this process exits.
    pub(crate) fn spawn(mut command: Command, at_exit: libc::c_int) -> io::Result<Guarded> {
        register_exit_hook();
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
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        // Registered under the lock the exit hook takes, so a child spawned
        // while the process exits is either stopped by the hook or never started.
        let mut running = lock(&RUNNING);
        let child = spawn_from_spawner_thread(command)?;
        running.insert(id, (child, at_exit));
        Ok(Guarded { id, at_exit })
    }

    /// The exit status, once the child has exited by itself.
    pub(crate) fn exited(&self) -> Option<ExitStatus> {
        lock(&RUNNING)
            .get_mut(&self.id)
            .and_then(|(child, _)| child.try_wait().ok().flatten())
    }

    /// Sends `signal` and waits for the child to exit (killing it if it will not).
    pub(crate) fn stop(&self, signal: libc::c_int) {
        let removed = lock(&RUNNING).remove(&self.id);
        if let Some((mut child, _)) = removed {
            signal_child(&child, signal);
            wait_or_kill(&mut child, Instant::now() + STOP_TIMEOUT);
        }
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        self.stop(self.at_exit);
    }
}

type SpawnRequest = (Command, mpsc::Sender<io::Result<Child>>);

/// Spawns `command` from the process's spawner thread, which lives (parked
/// between requests) as long as the process, so `PR_SET_PDEATHSIG` only fires
/// when the process dies.
fn spawn_from_spawner_thread(command: Command) -> io::Result<Child> {
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
    let gone = || io::Error::other("the pebble-testkit spawner thread is gone");
    let (reply, response) = mpsc::channel();
    lock(spawner).send((command, reply)).map_err(|_| gone())?;
    response.recv().map_err(|_| gone())?
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

fn register_exit_hook() {
    extern "C" fn on_exit() {
        let children = std::mem::take(&mut *lock(&RUNNING));
        // Newest first, so a PgBouncer goes before the server behind it; all
        // are signalled before any is waited for, so they stop in parallel.
        let mut children: Vec<_> = children.into_values().rev().collect();
        for (child, signal) in &children {
            signal_child(child, *signal);
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        for (child, _) in &mut children {
            wait_or_kill(child, deadline);
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

fn signal_child(child: &Child, signal: libc::c_int) {
    if let Ok(pid) = i32::try_from(child.id()) {
        // SAFETY: signalling our own child, which has not been reaped yet.
        unsafe {
            libc::kill(pid, signal);
        }
    }
}

fn wait_or_kill(child: &mut Child, deadline: Instant) {
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

/// Removes directories left by processes that no longer exist (killed
/// before their exit hook could run).
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

pub(crate) fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

/// The last lines of a log, for error messages.
pub(crate) fn tail(log: &Path) -> String {
    let text = fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}
