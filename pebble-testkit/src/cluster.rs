//! A throwaway PostgreSQL cluster: `initdb` into a temp dir, `postgres` on a
//! free loopback port, stopped and deleted when the process exits.
//!
//! The server must not outlive the process, however it ends:
//! - on a normal exit (tests finished, example returned) an `atexit` hook
//!   shuts it down, waits for it, and removes the directory;
//! - if the process is killed, the kernel sends the server SIGKILL
//!   (`PR_SET_PDEATHSIG`). That signal fires when the *thread* that spawned
//!   the server ends, so it is spawned from a keeper thread that never does;
//! - directories of earlier processes that were killed are removed on the
//!   next start.

use std::fs::{self, File};
use std::io;
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::fs::chown;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::binaries::Binaries;
use crate::Error;

const DIR_PREFIX: &str = "pebble-testkit-";
const READY_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// The running server of this process, for the exit hook.
static RUNNING: Mutex<Option<Running>> = Mutex::new(None);

struct Running {
    child: Child,
    dir: PathBuf,
}

/// The OS user the server runs as: PostgreSQL refuses to run as root.
#[derive(Clone, Copy)]
struct RunAs {
    uid: u32,
    gid: u32,
}

/// Starts the cluster; returns the loopback port it listens on.
pub(crate) fn start() -> Result<u16, Error> {
    let binaries = Binaries::find()?;
    let run_as = run_as()?;
    remove_stale_dirs();

    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let dir = std::env::temp_dir().join(format!("{DIR_PREFIX}{}-{nanos}", std::process::id()));
    fs::create_dir_all(&dir)?;
    if let Some(user) = run_as {
        chown(&dir, Some(user.uid), Some(user.gid))?;
    }
    let data = dir.join("data");
    let started = init(&binaries, &data, &dir, run_as).and_then(|()| {
        // A free port can be taken between our probe and the server's bind; try again then.
        let mut attempt = 0;
        loop {
            let port = free_port()?;
            match launch(&binaries, &data, &dir, port, run_as) {
                Ok(()) => return Ok(port),
                Err(e) if attempt >= 4 => return Err(e),
                Err(_) => attempt += 1,
            }
        }
    });
    match started {
        Ok(port) => Ok(port),
        Err(e) => {
            let _ = fs::remove_dir_all(&dir);
            Err(e)
        }
    }
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

fn as_user(command: &mut Command, run_as: Option<RunAs>) -> &mut Command {
    if let Some(user) = run_as {
        command.uid(user.uid).gid(user.gid);
    }
    command
}

fn init(binaries: &Binaries, data: &Path, dir: &Path, run_as: Option<RunAs>) -> Result<(), Error> {
    let log = dir.join("initdb.log");
    let out = File::create(&log)?;
    let status = as_user(&mut Command::new(&binaries.initdb), run_as)
        .arg("--pgdata")
        .arg(data)
        .args(["--username=postgres", "--auth=trust", "--encoding=UTF8"])
        .args(["--locale=C", "--no-sync", "--no-instructions"])
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .current_dir(dir)
        .status()?;
    if !status.success() {
        return Err(Error::Start(format!(
            "initdb failed ({status}):\n{}",
            tail(&log)
        )));
    }
    Ok(())
}

fn launch(
    binaries: &Binaries,
    data: &Path,
    dir: &Path,
    port: u16,
    run_as: Option<RunAs>,
) -> Result<(), Error> {
    let log = dir.join("server.log");
    let out = File::create(&log)?;
    let mut command = Command::new(&binaries.postgres);
    as_user(&mut command, run_as)
        .arg("-D")
        .arg(data)
        .arg("-p")
        .arg(port.to_string())
        .arg("-k")
        .arg(dir)
        .args(["-c", "listen_addresses=127.0.0.1"])
        // Throwaway data: durability buys nothing and costs seconds.
        .args(["-c", "fsync=off", "-c", "synchronous_commit=off"])
        .args(["-c", "full_page_writes=off"])
        // Database-per-tenant tests open many pools at once.
        .args(["-c", "max_connections=400"])
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .current_dir(dir);
    // SAFETY: the closure runs between fork and exec, after the uid/gid
    // change (which would clear the setting); it only calls async-signal-safe
    // functions (prctl, getppid).
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The keeper thread cannot have ended yet, but if the whole
            // process already died we must not run orphaned.
            if libc::getppid() == 1 {
                return Err(io::Error::other("parent exited"));
            }
            Ok(())
        });
    }

    let (sender, receiver) = mpsc::channel();
    thread::Builder::new()
        .name("pebble-testkit-postgres".into())
        .spawn(move || {
            let _ = sender.send(command.spawn());
            // Parked for the life of the process: the server's death signal
            // is tied to this thread.
            loop {
                thread::park();
            }
        })?;
    let child = receiver
        .recv()
        .map_err(|_| Error::Start("the server keeper thread died".into()))??;

    let mut running = RUNNING.lock().unwrap_or_else(|e| e.into_inner());
    *running = Some(Running {
        child,
        dir: dir.to_owned(),
    });
    drop(running);
    register_exit_hook();

    wait_ready(data, &log).inspect_err(|_| {
        if let Some(mut failed) = take_running() {
            shut_down(&mut failed.child);
        }
    })
}

fn wait_ready(data: &Path, log: &Path) -> Result<(), Error> {
    let pid_file = data.join("postmaster.pid");
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        // Line 8 of postmaster.pid is the server status; "ready" once it accepts connections.
        if let Ok(text) = fs::read_to_string(&pid_file) {
            if text.lines().nth(7).map(str::trim) == Some("ready") {
                return Ok(());
            }
        }
        let exited = RUNNING
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_mut()
            .and_then(|r| r.child.try_wait().ok().flatten());
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

fn register_exit_hook() {
    extern "C" fn on_exit() {
        stop();
    }
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: registering a plain `extern "C" fn` with no captured state.
        unsafe {
            libc::atexit(on_exit);
        }
    });
}

fn take_running() -> Option<Running> {
    RUNNING.lock().unwrap_or_else(|e| e.into_inner()).take()
}

/// Stops the server and removes its directory: the exit hook.
fn stop() {
    if let Some(mut running) = take_running() {
        shut_down(&mut running.child);
        let _ = fs::remove_dir_all(&running.dir);
    }
}

/// Immediate shutdown (SIGQUIT: no checkpoint, the data is thrown away),
/// then waits for the server to exit, killing it if it will not.
fn shut_down(child: &mut Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        // SAFETY: signalling our own child, which has not been reaped yet.
        unsafe {
            libc::kill(pid, libc::SIGQUIT);
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
