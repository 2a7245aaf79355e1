//! A throwaway MariaDB server for the test process (Debian's
//! `mariadb-server`: MariaDB 10.11), the way [`pg`](crate::pg) starts
//! PostgreSQL.
//!
//! Set `TASKTRAIL_TEST_MYSQL_URL` (`mysql://root@127.0.0.1:3306/mysql`) to
//! use a running MySQL or MariaDB server instead: each test gets a fresh
//! database in it. Otherwise the harness finds `mariadbd` (installing
//! `mariadb-server` with apt-get when it runs as root and it is missing),
//! runs `mariadb-install-db` in a temporary directory owned by the `mysql`
//! user, and starts a server on a free loopback port; root connects over
//! TCP without a password. A watchdog shell stops the server and removes
//! its directory when the test process exits.

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
        "MariaDB",
        "TASKTRAIL_TEST_MYSQL_URL",
        Instance::launch,
        Instance::admin_url,
    )
}

/// A fresh database on the server; returns its URL.
pub async fn fresh_database() -> String {
    create_database(&server().admin_url).await
}

/// The parts of a `mysql://user[:password]@host[:port]/db` URL the client
/// needs.
struct Target {
    user: String,
    password: Option<String>,
    host: String,
    port: u16,
    base: String,
}

fn parse(url: &str) -> Target {
    let rest = url
        .strip_prefix("mysql://")
        .or_else(|| url.strip_prefix("mariadb://"))
        .unwrap_or_else(|| panic!("not a mysql:// URL: {url}"));
    let (authority, _db) = rest.split_once('/').unwrap_or((rest, ""));
    let (credentials, address) = authority.rsplit_once('@').unwrap_or(("root", authority));
    let (user, password) = match credentials.split_once(':') {
        Some((user, password)) => (user.to_owned(), Some(password.to_owned())),
        None => (credentials.to_owned(), None),
    };
    let (host, port) = match address.rsplit_once(':') {
        Some((host, port)) => (host.to_owned(), port.parse().expect("a port number")),
        None => (address.to_owned(), 3306),
    };
    let base = url.rsplit_once('/').map_or(url, |(b, _)| b).to_owned();
    Target {
        user,
        password,
        host,
        port,
        base,
    }
}

/// A fresh database on the server at `admin_url`; returns its URL.
///
/// Through the `mariadb` client (no database driver here: a crate testing a
/// narrow set of tasktrail's features keeps it).
pub async fn create_database(admin_url: &str) -> String {
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    let target = parse(admin_url);
    client(
        &target,
        &format!("CREATE DATABASE {name} CHARACTER SET utf8mb4"),
    )
    .unwrap_or_else(|why| panic!("create a test database: {why}"));
    format!("{}/{name}", target.base)
}

/// Runs `sql` with the `mariadb` command-line client.
fn client(target: &Target, sql: &str) -> Result<(), String> {
    let mut cmd = Command::new(find_bin("mariadb").unwrap_or_else(|| PathBuf::from("mariadb")));
    cmd.args([
        "--protocol=TCP",
        "-h",
        &target.host,
        "-P",
        &target.port.to_string(),
    ])
    .args(["-u", &target.user, "-e", sql]);
    if let Some(password) = &target.password {
        cmd.env("MYSQL_PWD", password);
    }
    let out = cmd.output().map_err(|e| format!("run mariadb: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// A MariaDB program from Debian's packages.
fn find_bin(name: &str) -> Option<PathBuf> {
    ["/usr/sbin", "/usr/bin"]
        .iter()
        .map(|dir| Path::new(dir).join(name))
        .find(|path| path.exists())
}

/// One MariaDB server in a temporary directory, stopped and removed by a
/// watchdog when the test process exits. [`Instance::stop`] and
/// [`Instance::start`] simulate an outage.
pub struct Instance {
    mariadbd: PathBuf,
    dir: PathBuf,
    port: u16,
    /// The system user the server runs as (`mysql` when we are root).
    user: String,
}

impl Instance {
    /// mariadb-install-db + start on a free port.
    pub fn launch() -> Result<Instance, String> {
        let mariadbd = match find_bin("mariadbd") {
            Some(bin) => bin,
            None => {
                crate::sys::apt_install(
                    &["mariadb-server"],
                    "Debian's `mariadb-server` package or set TASKTRAIL_TEST_MYSQL_URL",
                )?;
                find_bin("mariadbd").ok_or("mariadb-server installed but mariadbd not found")?
            }
        };
        let install_db = find_bin("mariadb-install-db").ok_or("mariadb-install-db not found")?;
        let root = crate::sys::is_root();
        let dir = crate::sys::server_dir("tasktrail-mariadb-", root.then_some("mysql:mysql"))?;
        let user = if root {
            "mysql".to_owned()
        } else {
            std::env::var("USER").unwrap_or_else(|_| "nobody".into())
        };
        let instance = Instance {
            mariadbd,
            dir,
            port: crate::sys::free_port()?,
            user,
        };
        let log =
            std::fs::File::create(instance.dir.join("install.log")).map_err(|e| e.to_string())?;
        let status = Command::new(install_db)
            .arg("--no-defaults")
            .arg(format!("--user={}", instance.user))
            .arg(format!("--datadir={}", instance.data().display()))
            .args(["--auth-root-authentication-method=normal", "--skip-test-db"])
            // Passed on to the bootstrapping mariadbd: its temporary tables
            // in this server's own directory, not the shared /tmp (a CI run
            // failed on "Error on delete of '/tmp/#sql-temptable-…'").
            .arg(format!("--tmpdir={}", instance.dir.display()))
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .status()
            .map_err(|e| e.to_string())?;
        if !status.success() {
            let log = std::fs::read_to_string(instance.dir.join("install.log")).unwrap_or_default();
            return Err(format!("mariadb-install-db failed ({status}): {log}"));
        }
        // The server lives as long as this process: the watchdog stops it
        // and removes its directory once /proc/<pid> is gone.
        let cleanup = format!(
            "pid=$(cat {dir}/mariadbd.pid 2>/dev/null); \
             [ -n \"$pid\" ] && kill -9 $pid 2>/dev/null; sleep 0.5; rm -rf {dir}",
            dir = instance.dir.display(),
        );
        let mut shell = Command::new("sh");
        shell.arg("-c");
        crate::sys::spawn_watchdog(&cleanup, shell)?;
        instance.start()?;
        Ok(instance)
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// `mysql://root@127.0.0.1:<port>/mysql`.
    pub fn admin_url(&self) -> String {
        format!("mysql://root@127.0.0.1:{}/mysql", self.port)
    }

    /// Starts the server and waits until it accepts connections.
    pub fn start(&self) -> Result<(), String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("server.log"))
            .map_err(|e| e.to_string())?;
        Command::new(&self.mariadbd)
            .arg("--no-defaults")
            .arg(format!("--user={}", self.user))
            .arg(format!("--datadir={}", self.data().display()))
            .arg(format!("--port={}", self.port))
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--socket={}/mariadbd.sock", self.dir.display()))
            .arg(format!("--pid-file={}/mariadbd.pid", self.dir.display()))
            .arg(format!("--tmpdir={}", self.dir.display()))
            // A test server: durability off, room for every test's pools.
            .args([
                "--innodb-flush-log-at-trx-commit=0",
                "--innodb-doublewrite=0",
                "--skip-log-bin",
                "--max-connections=1000",
                "--character-set-server=utf8mb4",
                "--collation-server=utf8mb4_unicode_ci",
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("start mariadbd: {e}"))?;
        self.wait(true)
    }

    /// Stops the server (open connections are cut) and waits until it is
    /// gone.
    pub fn stop(&self) -> Result<(), String> {
        let target = parse(&self.admin_url());
        client(&target, "SHUTDOWN")?;
        self.wait(false)
    }

    /// Waits until the server accepts connections (`up`) or refuses them.
    fn wait(&self, up: bool) -> Result<(), String> {
        let target = parse(&self.admin_url());
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if client(&target, "SELECT 1").is_ok() == up {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
        Err(format!(
            "the server did not {} within 60 s: {log}",
            if up { "accept connections" } else { "stop" }
        ))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn urls() {
        let t = super::parse("mysql://root@127.0.0.1:3307/mysql");
        assert_eq!(
            (t.user.as_str(), t.password, t.host.as_str(), t.port),
            ("root", None, "127.0.0.1", 3307)
        );
        assert_eq!(t.base, "mysql://root@127.0.0.1:3307");
        let t = super::parse("mysql://app:secret@db/app");
        assert_eq!(
            (
                t.user.as_str(),
                t.password.as_deref(),
                t.host.as_str(),
                t.port
            ),
            ("app", Some("secret"), "db", 3306)
        );
    }

    #[tokio::test]
    async fn a_fresh_database_on_a_server_of_our_own() {
        let url = super::fresh_database().await;
        assert!(url.starts_with("mysql://root@127.0.0.1:"), "{url}");
        let name = url.rsplit('/').next().unwrap();
        super::client(
            &super::parse(&url),
            &format!("USE {name}; CREATE TABLE t (id INT)"),
        )
        .unwrap();
    }
}
