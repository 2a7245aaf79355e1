//! The demo's `--once` mode: two worker processes and the web process on
//! one SQLite file; a job of each kind becomes the runs it must (a success,
//! three linked attempts, a panic, a cancel and its retry through apalis).

#[test]
fn the_demo_runs_on_two_workers() {
    let dir = tempfile_dir();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_apalis-demo"))
        .arg("--once")
        .current_dir(&dir)
        .output()
        .expect("run the demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("ok: 7 runs on two workers"), "{stdout}");
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("apalis-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
