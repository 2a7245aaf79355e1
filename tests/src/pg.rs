//! A throwaway PostgreSQL server for the test process.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, Database};

/// A running server: its admin URL.
pub struct Server {
    pub admin_url: String,
    pub data_dir: Option<PathBuf>,
}

static SERVER: OnceLock<Result<Server, String>> = OnceLock::new();

/// The process's server, started on first use.
pub fn server() -> &'static Server {
    match SERVER.get_or_init(start) {
        Ok(server) => server,
        Err(why) => panic!("could not start the test PostgreSQL: {why}"),
    }
}

/// A fresh database on the server; returns its URL.
pub async fn fresh_database() -> String {
    let server = server();
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    let admin = Database::connect(server.admin_url.clone())
        .await
        .expect("connect as admin");
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create a test database");
    admin.close().await.ok();
    let base = server
        .admin_url
        .rsplit_once('/')
        .map(|(b, _)| b)
        .unwrap_or(&server.admin_url);
    format!("{base}/{name}")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
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

fn install_postgres() -> Result<(), String> {
    if !is_root() {
        return Err("PostgreSQL is not installed and this process is not root: \
                    install Debian's `postgresql` package or set TASKTRAIL_TEST_PG_URL"
            .into());
    }
    let apt = |args: &[&str]| {
        Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(Stdio::null())
            .status()
            .map_err(|e| format!("apt-get: {e}"))
    };
    apt(&["update", "-qq"])?;
    let status = apt(&["install", "-y", "-qq", "postgresql"])?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("apt-get install postgresql: {status}"))
    }
}

fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| e.to_string())
}

/// Runs `script` with `sh -c`, as the `postgres` user when we are root.
fn sh(script: &str, as_postgres: bool) -> Command {
    if as_postgres {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--", "sh", "-c", script]);
        cmd
    } else {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", script]);
        cmd
    }
}

fn start() -> Result<Server, String> {
    if let Ok(url) = std::env::var("TASKTRAIL_TEST_PG_URL") {
        return Ok(Server {
            admin_url: url,
            data_dir: None,
        });
    }
    let bin = match find_bin_dir() {
        Some(bin) => bin,
        None => {
            install_postgres()?;
            find_bin_dir().ok_or("postgresql installed but initdb not found")?
        }
    };
    let root = is_root();
    let dir = tempfile::Builder::new()
        .prefix("tasktrail-pg-")
        .tempdir()
        .map_err(|e| e.to_string())?
        .keep();
    if root {
        let status = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(&dir)
            .status()
            .map_err(|e| e.to_string())?;
        if !status.success() {
            return Err(format!("chown {}: {status}", dir.display()));
        }
    }
    let data = dir.join("data");
    let initdb = format!(
        "{} -D {} -A trust -U postgres -E UTF8 --no-sync >{}/initdb.log 2>&1",
        bin.join("initdb").display(),
        data.display(),
        dir.display()
    );
    let status = sh(&initdb, root).status().map_err(|e| e.to_string())?;
    if !status.success() {
        let log = std::fs::read_to_string(dir.join("initdb.log")).unwrap_or_default();
        return Err(format!("initdb failed ({status}): {log}"));
    }

    let port = free_port()?;
    let parent = std::process::id();
    // The server lives as long as this process: the watchdog stops it and
    // removes its directory once /proc/<pid> is gone.
    let script = format!(
        "{postgres} -D {data} -p {port} -k {dir} -c listen_addresses=127.0.0.1 \
         -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
         -c max_connections=300 >{dir}/server.log 2>&1 & pg=$!; \
         while [ -d /proc/{parent} ] && kill -0 $pg 2>/dev/null; do sleep 0.5; done; \
         kill -INT $pg 2>/dev/null; wait $pg; rm -rf {dir}",
        postgres = bin.join("postgres").display(),
        data = data.display(),
        dir = dir.display(),
    );
    sh(&script, root)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("start postgres: {e}"))?;

    let admin_url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    wait_ready(&bin, port, &dir)?;
    Ok(Server {
        admin_url,
        data_dir: Some(dir),
    })
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
