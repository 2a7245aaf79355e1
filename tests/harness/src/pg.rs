//! A throwaway PostgreSQL server for the test process.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A running server: its admin URL.
pub type Server = crate::sys::Server<Instance>;

static SERVER: OnceLock<Result<Server, String>> = OnceLock::new();

/// The process's server, started on first use.
pub fn server() -> &'static Server {
    crate::sys::server(
        &SERVER,
        "PostgreSQL",
        "TASKTRAIL_TEST_PG_URL",
        Instance::launch,
        Instance::admin_url,
    )
}

/// A fresh database on the server; returns its URL.
pub async fn fresh_database() -> String {
    create_database(&server().admin_url).await
}

/// A fresh database on the server at `admin_url`; returns its URL.
///
/// Through `psql` (no database driver here: a crate testing a narrow set of
/// tasktrail's features keeps it; see the crate docs).
pub async fn create_database(admin_url: &str) -> String {
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    let psql = find_bin_dir().map_or_else(|| PathBuf::from("psql"), |bin| bin.join("psql"));
    let out = Command::new(&psql)
        .args([admin_url, "-v", "ON_ERROR_STOP=1", "-qc"])
        .arg(format!("CREATE DATABASE {name}"))
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", psql.display()));
    assert!(
        out.status.success(),
        "create a test database: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let base = admin_url.rsplit_once('/').map_or(admin_url, |(b, _)| b);
    format!("{base}/{name}")
}

/// The newest `/usr/lib/postgresql/<version>/bin` holding `initdb`.
fn find_bin_dir() -> Option<PathBuf> {
    let mut dirs: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let version = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    dirs.sort();
    dirs.pop().map(|(_, bin)| bin)
}

/// Runs `script` with `sh -c`, as the `postgres` user when we are root.
fn sh(script: &str, as_postgres: bool) -> Command {
    let mut cmd = shell(as_postgres);
    cmd.arg(script);
    cmd
}

/// `sh -c`, as the `postgres` user when we are root; the script follows.
fn shell(as_postgres: bool) -> Command {
    let mut cmd = if as_postgres {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--", "sh"]);
        cmd
    } else {
        Command::new("sh")
    };
    cmd.arg("-c");
    cmd
}

/// One PostgreSQL cluster in a temporary directory, stopped and removed by a
/// watchdog when the test process exits. [`Instance::stop`] and
/// [`Instance::start`] simulate an outage.
pub struct Instance {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    as_postgres: bool,
}

impl Instance {
    /// initdb + start on a free port.
    pub fn launch() -> Result<Instance, String> {
        let bin = match find_bin_dir() {
            Some(bin) => bin,
            None => {
                crate::sys::apt_install(
                    &["postgresql"],
                    "Debian's `postgresql` package or set TASKTRAIL_TEST_PG_URL",
                )?;
                find_bin_dir().ok_or("postgresql installed but initdb not found")?
            }
        };
        let as_postgres = crate::sys::is_root();
        let dir =
            crate::sys::server_dir("tasktrail-pg-", as_postgres.then_some("postgres:postgres"))?;
        let instance = Instance {
            bin,
            dir,
            port: crate::sys::free_port()?,
            as_postgres,
        };
        let initdb = format!(
            "{} -D {} -A trust -U postgres -E UTF8 --no-sync >{}/initdb.log 2>&1",
            instance.bin.join("initdb").display(),
            instance.data().display(),
            instance.dir.display()
        );
        let status = sh(&initdb, as_postgres)
            .status()
            .map_err(|e| e.to_string())?;
        if !status.success() {
            let log = std::fs::read_to_string(instance.dir.join("initdb.log")).unwrap_or_default();
            return Err(format!("initdb failed ({status}): {log}"));
        }
        // The cluster lives as long as this process: the watchdog stops it
        // and removes its directory once /proc/<pid> is gone.
        let cleanup = format!(
            "{pg_ctl} -D {data} -m immediate stop >/dev/null 2>&1; rm -rf {dir}",
            pg_ctl = instance.bin.join("pg_ctl").display(),
            data = instance.data().display(),
            dir = instance.dir.display(),
        );
        crate::sys::spawn_watchdog(&cleanup, shell(as_postgres))?;
        instance.start()?;
        Ok(instance)
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// `postgres://postgres@127.0.0.1:<port>/postgres`.
    pub fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts the server and waits until it accepts connections.
    pub fn start(&self) -> Result<(), String> {
        let cmd = format!(
            "{pg_ctl} -D {data} -l {dir}/server.log -w -t 60 -o \"-p {port} -k {dir} \
             -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off \
             -c full_page_writes=off -c max_connections=300\" start >/dev/null 2>&1",
            pg_ctl = self.bin.join("pg_ctl").display(),
            data = self.data().display(),
            dir = self.dir.display(),
            port = self.port,
        );
        let status = sh(&cmd, self.as_postgres)
            .status()
            .map_err(|e| e.to_string())?;
        if !status.success() {
            let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
            return Err(format!("pg_ctl start failed ({status}): {log}"));
        }
        wait_ready(&self.bin, self.port, &self.dir)
    }

    /// Stops the server (fast shutdown: open connections are cut).
    pub fn stop(&self) -> Result<(), String> {
        let cmd = format!(
            "{} -D {} -m fast -w stop >/dev/null 2>&1",
            self.bin.join("pg_ctl").display(),
            self.data().display()
        );
        let status = sh(&cmd, self.as_postgres)
            .status()
            .map_err(|e| e.to_string())?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("pg_ctl stop: {status}"))
        }
    }
}

fn wait_ready(bin: &Path, port: u16, dir: &Path) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let ready = Command::new(bin.join("pg_isready"))
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if ready {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
    Err(format!(
        "the server did not accept connections within 60 s: {log}"
    ))
}
