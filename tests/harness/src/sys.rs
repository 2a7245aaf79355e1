//! What every throwaway server (and the browser) needs from the machine:
//! whether we are root, a free loopback port, and Debian packages installed
//! with apt-get when they are missing.

use std::net::{Ipv4Addr, TcpListener};
use std::process::{Command, Stdio};

/// Whether this process runs as root.
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A loopback port nobody listens on (right now).
pub fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|e| e.to_string())?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| e.to_string())
}

/// Installs Debian `packages` with apt-get (`update`, then `install`);
/// refuses unless we are root, naming `what` to install by hand.
pub fn apt_install(packages: &[&str], what: &str) -> Result<(), String> {
    if !is_root() {
        return Err(format!(
            "{} {} missing and this process is not root: install {what}",
            packages.join(", "),
            if packages.len() == 1 { "is" } else { "are" },
        ));
    }
    let apt = |args: &[&str]| {
        let output = Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("apt-get: {e}"))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!(
                "apt-get {} failed ({}): {}",
                args.join(" "),
                output.status,
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    };
    apt(&["update", "-qq"])?;
    let mut install = vec!["install", "-y", "-qq"];
    install.extend_from_slice(packages);
    apt(&install)
}

/// A temporary directory for a server's files, kept when this process
/// ends (its watchdog removes it), and owned by `owner` (`user:group`)
/// when given.
pub fn server_dir(prefix: &str, owner: Option<&str>) -> Result<std::path::PathBuf, String> {
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .map_err(|e| e.to_string())?
        .keep();
    if let Some(owner) = owner {
        let status = Command::new("chown")
            .args(["-R", owner])
            .arg(&dir)
            .status()
            .map_err(|e| e.to_string())?;
        if !status.success() {
            return Err(format!("chown {}: {status}", dir.display()));
        }
    }
    Ok(dir)
}

/// Starts a shell that waits for this process to end and then runs
/// `cleanup` (stops a server, removes its directory): a server started for
/// the tests lives exactly as long as they do.
pub fn spawn_watchdog(cleanup: &str, mut shell: Command) -> Result<(), String> {
    let script = format!(
        "while [ -d /proc/{parent} ]; do sleep 0.5; done; {cleanup}",
        parent = std::process::id()
    );
    shell
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(|_| ())
        .map_err(|e| format!("start the watchdog: {e}"))
}

/// The process's server of one kind: a running one named by `env_url`, or
/// an instance of our own.
pub struct Server<I> {
    /// The URL to connect to as an administrator.
    pub admin_url: String,
    /// The instance started for these tests (`None`: the server `env_url`
    /// named).
    pub instance: Option<I>,
}

/// The server in `cell`, started on first use: the one the environment
/// variable `env_url` names, else one `launch` starts (its admin URL from
/// `admin_url`). Panics, naming `what`, when it cannot start.
pub fn server<I>(
    cell: &'static std::sync::OnceLock<Result<Server<I>, String>>,
    what: &str,
    env_url: &str,
    launch: fn() -> Result<I, String>,
    admin_url: fn(&I) -> String,
) -> &'static Server<I>
where
    I: Send + Sync,
{
    let started = cell.get_or_init(|| {
        if let Ok(url) = std::env::var(env_url) {
            return Ok(Server {
                admin_url: url,
                instance: None,
            });
        }
        let instance = launch()?;
        Ok(Server {
            admin_url: admin_url(&instance),
            instance: Some(instance),
        })
    });
    match started {
        Ok(server) => server,
        Err(why) => panic!("could not start the test {what}: {why}"),
    }
}
