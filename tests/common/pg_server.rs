//! A private PostgreSQL server for one test, which the test may stop and start (fault tests: the
//! database goes away under a running tocsin and comes back).
//!
//! The shared server of `pg.rs` (5432 or `scripts/postgres.sh`'s throwaway one) must never be stopped:
//! other tests use it. This one is the test's own, made the way `scripts/postgres.sh` makes its
//! throwaway server:
//!
//! - Binaries: the system's `/usr/lib/postgresql/<newest>/bin` when present, else Debian's packages
//!   unpacked into `.tools/postgresql` by `scripts/fetch-postgresql.sh` (run from here; quick when they
//!   are already there), with the `LD_LIBRARY_PATH` it prints.
//! - `initdb` into a temporary directory (trust auth, superuser `postgres`, UTF8, C locale), started
//!   with `pg_ctl` on a free port of 127.0.0.1, its unix socket in the same directory.
//! - PostgreSQL refuses to run as root: as root its programs run as `nobody` (`setpriv`), or when
//!   `nobody` cannot reach the binaries, in a user namespace where root is mapped to `nobody`
//!   (`unshare --user`).
//!
//! [`PgServer::stop`] is `pg_ctl stop -m fast` (clients get "terminating connection due to
//! administrator command", new connections are refused); [`PgServer::start`] starts it again on the
//! same port over the same data. Dropping it stops the server and deletes the directory. Readiness is
//! polled with `pg_isready` a bounded number of times.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

/// How many times `pg_isready` is asked, [`POLL`] apart, before giving up (10 s).
const READY_TRIES: u32 = 100;
const POLL: Duration = Duration::from_millis(100);

pub struct PgServer {
    /// `postgres://postgres@127.0.0.1:<port>/postgres`.
    pub url: String,
    pub port: u16,
    bin: PathBuf,
    /// For `LD_LIBRARY_PATH` (the unpacked libraries of `.tools/postgresql`), if any.
    libdir: Option<PathBuf>,
    /// The command prefix that runs PostgreSQL's programs as an unprivileged user (empty if we are not
    /// root).
    run_as: Vec<String>,
    dir: tempfile::TempDir,
    running: bool,
}

impl PgServer {
    /// A fresh cluster, started and answering on a free port.
    pub fn start_new() -> PgServer {
        let (bin, libdir) = binaries();
        let run_as = unprivileged(&bin);
        let dir = tempfile::Builder::new()
            .prefix("tocsin-pgsrv.")
            .tempdir()
            .unwrap();
        if run_as.first().is_some_and(|c| c == "setpriv") {
            // The server's user owns its directory (initdb makes data/ inside it).
            let (uid, gid) = nobody();
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).unwrap();
        }
        let mut server = PgServer {
            url: String::new(),
            port: 0,
            bin,
            libdir,
            run_as,
            dir,
            running: false,
        };
        let out = server.pg(
            "initdb",
            &[
                "-D",
                &server.data().display().to_string(),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-locale",
                "--no-sync",
            ],
        );
        assert!(out.status.success(), "initdb failed: {}", text(&out));
        // A port that was free a moment ago; if something takes it before the server binds, another.
        for attempt in 1..=5 {
            server.port = super::free_port();
            match server.try_start() {
                Ok(()) => break,
                Err(log) if attempt < 5 && log.contains("could not bind") => continue,
                Err(log) => panic!("the private PostgreSQL server did not start:\n{log}"),
            }
        }
        server.url = format!("postgres://postgres@127.0.0.1:{}/postgres", server.port);
        server.wait_ready();
        server
    }

    /// Stops the server (`pg_ctl stop -m fast`, waiting until it is gone).
    pub fn stop(&mut self) {
        let data = self.data().display().to_string();
        let out = self.pg(
            "pg_ctl",
            &["stop", "-D", &data, "-m", "fast", "-w", "-t", "30"],
        );
        assert!(out.status.success(), "pg_ctl stop failed: {}", text(&out));
        self.running = false;
    }

    /// Starts the stopped server again, on the same port over the same data, and waits until it
    /// answers.
    pub fn start(&mut self) {
        assert!(!self.running, "the server is running already");
        if let Err(log) = self.try_start() {
            panic!(
                "the private PostgreSQL server did not start again on port {}:\n{log}",
                self.port
            );
        }
        self.wait_ready();
    }

    /// Whether `pg_isready` says the server accepts connections.
    pub fn is_ready(&self) -> bool {
        let port = self.port.to_string();
        let args = [
            "-q",
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-U",
            "postgres",
            "-d",
            "postgres",
        ];
        self.pg("pg_isready", &args).status.success()
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn try_start(&mut self) -> Result<(), String> {
        let log = self.dir.path().join("server.log");
        let _ = std::fs::remove_file(&log);
        let opts = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k '{}' -c max_connections=100 \
             -c fsync=off -c full_page_writes=off -c jit=off",
            self.port,
            self.dir.path().display()
        );
        let data = self.data().display().to_string();
        let log_arg = log.display().to_string();
        let out = self.pg(
            "pg_ctl",
            &[
                "start", "-D", &data, "-l", &log_arg, "-w", "-t", "60", "-o", &opts,
            ],
        );
        if out.status.success() {
            self.running = true;
            return Ok(());
        }
        let server_log = std::fs::read_to_string(&log).unwrap_or_default();
        // Not started: make sure no half-started postmaster is left holding the data directory.
        let _ = self.pg("pg_ctl", &["stop", "-D", &data, "-m", "immediate"]);
        Err(format!("{}\n{server_log}", text(&out)))
    }

    fn wait_ready(&self) {
        for _ in 0..READY_TRIES {
            if self.is_ready() {
                return;
            }
            std::thread::sleep(POLL);
        }
        let log = std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default();
        panic!(
            "the private PostgreSQL server on port {} does not answer:\n{log}",
            self.port
        );
    }

    /// Runs one of PostgreSQL's programs (as the unprivileged user when we are root), from `/` so the
    /// unprivileged user needs no access to our working directory.
    fn pg(&self, program: &str, args: &[&str]) -> Output {
        let exe = self.bin.join(program);
        let mut cmd = match self.run_as.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(&exe);
                c
            }
            None => Command::new(&exe),
        };
        cmd.args(args).current_dir("/").env("TZ", "UTC");
        if let Some(lib) = &self.libdir {
            let mut path = lib.as_os_str().to_owned();
            if let Some(old) = std::env::var_os("LD_LIBRARY_PATH") {
                path.push(":");
                path.push(old);
            }
            cmd.env("LD_LIBRARY_PATH", path);
        }
        cmd.output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", exe.display()))
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        // No panics here (a panic while a failing test unwinds would abort and hide its message).
        // Immediate: the data is thrown away next.
        if self.running || self.data().join("postmaster.pid").exists() {
            let data = self.data().display().to_string();
            let stopped = self.pg(
                "pg_ctl",
                &["stop", "-D", &data, "-m", "immediate", "-w", "-t", "30"],
            );
            if !stopped.status.success() {
                kill_postmaster(&self.data());
            }
        }
        // The TempDir deletes the directory (we are root or its owner).
    }
}

/// Kills the postmaster named in `data/postmaster.pid` (when `pg_ctl` could not stop it).
fn kill_postmaster(data: &Path) {
    let pid = std::fs::read_to_string(data.join("postmaster.pid"))
        .ok()
        .and_then(|s| s.lines().next().map(str::to_string))
        .filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    if let Some(pid) = pid {
        let _ = Command::new("kill").args(["-KILL", &pid]).status();
    }
}

/// The directory of `initdb`, `pg_ctl`, `postgres` and `pg_isready`, and the library directory they
/// need (only for the unpacked packages).
fn binaries() -> (PathBuf, Option<PathBuf>) {
    let mut system: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let major = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            let complete = ["initdb", "pg_ctl", "postgres", "pg_isready"]
                .iter()
                .all(|p| bin.join(p).is_file());
            complete.then_some((major, bin))
        })
        .collect();
    system.sort();
    if let Some((_, bin)) = system.pop() {
        return (bin, None);
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/fetch-postgresql.sh");
    let out = Command::new(&script)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "{} failed: {}",
        script.display(),
        text(&out)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut lines = stdout.lines();
    let bin = PathBuf::from(
        lines
            .next()
            .expect("fetch-postgresql.sh printed no bin dir"),
    );
    let lib = lines.next().filter(|l| !l.is_empty()).map(PathBuf::from);
    (bin, lib)
}

/// `nobody`'s uid and gid.
fn nobody() -> (u32, u32) {
    let id = |flag: &str| -> u32 {
        let out = Command::new("id").args([flag, "nobody"]).output().unwrap();
        assert!(
            out.status.success(),
            "running as root and there is no 'nobody' user to run PostgreSQL as"
        );
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    };
    (id("-u"), id("-g"))
}

/// How to run PostgreSQL's programs: as ourselves, or as root: as `nobody` with `setpriv` when
/// `nobody` can reach the binaries, else in a user namespace mapping us to `nobody` (as
/// `scripts/postgres.sh` does).
fn unprivileged(bin: &Path) -> Vec<String> {
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !is_root {
        return Vec::new();
    }
    let (uid, gid) = nobody();
    let setpriv: Vec<String> = [
        "setpriv".to_string(),
        format!("--reuid={uid}"),
        format!("--regid={gid}"),
        "--clear-groups".to_string(),
        "--".to_string(),
    ]
    .into();
    let reaches = Command::new(&setpriv[0])
        .args(&setpriv[1..])
        .args(["test", "-x"])
        .arg(bin.join("postgres"))
        .status()
        .is_ok_and(|s| s.success());
    if reaches {
        return setpriv;
    }
    let unshare: Vec<String> = [
        "unshare".to_string(),
        "--user".to_string(),
        format!("--map-user={uid}"),
        format!("--map-group={gid}"),
        "--".to_string(),
    ]
    .into();
    let allowed = Command::new(&unshare[0])
        .args(&unshare[1..])
        .arg("true")
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        allowed,
        "running as root: PostgreSQL must run as another user, but 'nobody' cannot reach {} and \
         user namespaces (unshare --user) are not allowed here",
        bin.display()
    );
    unshare
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
