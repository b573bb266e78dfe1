//! Locating the binaries under test. The first call in a test process runs
//! `cargo build` for them (a no-op when they are fresh), so `cargo test`
//! alone always tests the current code.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// The directory holding the workspace's binaries for the profile this test
/// binary was built with (`target/debug` or `target/release`).
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary knows its own path");
    let mut dir = exe.parent().expect("the test binary lives in a directory").to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir
}

fn build_once() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        if std::env::var_os("KASSA_TEST_SKIP_BUILD").is_some() {
            return;
        }
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut command = Command::new(cargo);
        command.args(["build", "--quiet", "--workspace", "--bins"]).current_dir(env!("CARGO_MANIFEST_DIR"));
        if profile_dir().ends_with("release") {
            command.arg("--release");
        }
        let status = command.status().expect("cargo can be run to build the binaries under test");
        assert!(status.success(), "building kassa-api and kassa-worker failed");
    });
}

/// The path of a workspace binary (`kassa-api`, `kassa-worker`), built if needed.
pub fn binary(name: &str) -> PathBuf {
    build_once();
    let path = profile_dir().join(name);
    assert!(path.exists(), "{} was not built", path.display());
    path
}
