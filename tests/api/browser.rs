//! The operations page in a real browser: `tests/browser/*.test.mjs` drive Debian's
//! Chromium with playwright-core against this build's server binary. Where Node, Chromium
//! or playwright-core is missing they skip, saying so once; with
//! `ALTAIR_TEST_BROWSER=required` (as `.ci/run` sets) they fail instead.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Longer than the tests take on a loaded machine, short of holding CI for ever.
const LIMIT: Duration = Duration::from_secs(300);

/// What is missing to run the browser tests, if anything; the pinned npm packages are
/// installed here when Node, npm and Chromium are present.
fn missing(chromium: &Path) -> Option<String> {
    if !chromium.exists() {
        return Some(format!(
            "no Chromium at {} (apt-get install chromium, or set ALTAIR_CHROMIUM)",
            chromium.display()
        ));
    }
    crate::helpers::node_packages().err()
}

/// Node and everything it started, killed as a group when the test ends, pass or fail.
struct Group(std::process::Child);

impl Drop for Group {
    fn drop(&mut self) {
        crate::helpers::kill_group(&self.0);
        let _ = self.0.wait();
    }
}

#[test]
fn the_operations_page_in_chromium() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = root.join("tests/browser");
    let chromium = std::env::var_os("ALTAIR_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    if let Some(why) = missing(&chromium) {
        static SAID: std::sync::Once = std::sync::Once::new();
        crate::helpers::skip_unless_required(
            "ALTAIR_TEST_BROWSER",
            "the browser tests",
            &why,
            &SAID,
        );
        return;
    }
    let output = std::env::temp_dir().join(format!("altair-browser-{}.log", std::process::id()));
    let log = std::fs::File::create(&output).unwrap();
    let mut node = Group(
        Command::new("node")
            .args(["--test", "--test-concurrency=1", "."])
            .current_dir(&dir)
            .env("ALTAIR_SERVER_BIN", env!("CARGO_BIN_EXE_altair-server"))
            .env("ALTAIR_CHROMIUM", &chromium)
            .env("ALTAIR_SCREENSHOTS", root.join("target/screenshots"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .unwrap(),
    );
    let started = Instant::now();
    let status = loop {
        if let Some(status) = node.0.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > LIMIT {
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let report = std::fs::read_to_string(&output).unwrap_or_default();
    let _ = std::fs::remove_file(&output);
    match status {
        Some(status) if status.success() => {}
        Some(status) => panic!("the browser tests failed ({status}):\n{report}"),
        None => panic!("the browser tests took over {LIMIT:?}:\n{report}"),
    }
}

/// On a fresh clone the test command installs the pinned packages itself: shown on a
/// copy of the package files in an empty folder.
#[test]
fn a_fresh_clone_installs_the_pinned_browser_packages_itself() {
    let npm = Command::new("npm").arg("--version").output();
    if !npm.is_ok_and(|o| o.status.success()) {
        static SAID: std::sync::Once = std::sync::Once::new();
        let what = "installing the browser packages";
        crate::helpers::skip_unless_required("ALTAIR_TEST_BROWSER", what, "no npm", &SAID);
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let fresh = crate::helpers::tempdir("fresh-browser");
    for file in ["package.json", "package-lock.json"] {
        std::fs::copy(root.join(file), fresh.join(file)).unwrap();
    }
    crate::helpers::npm_ci(&fresh).unwrap();
    for package in ["playwright-core", "axe-core", "standardwebhooks"] {
        assert!(
            fresh.join("node_modules").join(package).exists(),
            "{package} is installed"
        );
    }
    let _ = std::fs::remove_dir_all(fresh);
}

/// The group kill that ends the browser tests reaches that group and no other process.
/// (Through procps kill(1), `kill -KILL -1234` was kill(-1): as root, CI's runner died.)
#[test]
fn ending_a_process_group_spares_every_other_process() {
    use std::os::unix::process::ExitStatusExt;
    let sleep = |group: bool| {
        let mut command = Command::new("sh");
        command.args(["-c", "sleep 30 & wait"]).stdin(Stdio::null());
        if group {
            command.process_group(0);
        }
        crate::helpers::Process(command.spawn().unwrap())
    };
    let mut bystander = sleep(false);
    let mut doomed = sleep(true);
    crate::helpers::kill_group(&doomed);
    assert_eq!(doomed.wait().unwrap().signal(), Some(9));
    assert!(
        bystander.try_wait().unwrap().is_none(),
        "a bystander was killed"
    );
}
