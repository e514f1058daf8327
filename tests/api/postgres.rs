//! A throwaway PostgreSQL cluster per test: `initdb` and `pg_ctl` in a temporary folder,
//! reached over a Unix socket there, stopped and removed when the test ends, pass or fail.
//!
//! Where PostgreSQL is not installed the tests that need it skip, saying so once on the
//! terminal; with `ALTAIR_TEST_POSTGRES=required` (as `.ci/run` sets) they fail instead.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Once;
use std::sync::atomic::{AtomicU32, Ordering};

/// A running cluster with a database `altair` owned by the user `altair`.
pub struct Postgres {
    dir: PathBuf,
    bin: PathBuf,
    /// As root, the cluster runs as the `postgres` user (initdb refuses root).
    as_postgres: bool,
}

/// The folder of `initdb` and `pg_ctl`: Debian's newest, else whatever PATH has.
fn binaries() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let e = e.ok()?;
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    let found = Command::new("sh")
        .args(["-c", "command -v initdb"])
        .output()
        .ok()?;
    let path = String::from_utf8(found.stdout).ok()?;
    Path::new(path.trim()).parent().map(Path::to_owned)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

impl Postgres {
    /// Starts a cluster, or returns None (and says why, once) if PostgreSQL is not
    /// installed and the tests may skip.
    pub fn start() -> Option<Postgres> {
        let Some(bin) = binaries() else {
            static SAID: Once = Once::new();
            let why = "no initdb found: apt-get install postgresql";
            crate::helpers::skip_unless_required(
                "ALTAIR_TEST_POSTGRES",
                "the PostgreSQL tests",
                why,
                &SAID,
            );
            return None;
        };
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "altair-pg-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("data")).unwrap();
        let as_postgres = is_root();
        if as_postgres {
            let owned = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir)
                .status()
                .unwrap();
            assert!(owned.success());
        }
        let cluster = Postgres {
            dir,
            bin,
            as_postgres,
        };
        cluster.run(
            "initdb",
            &[
                "--no-sync",
                "--auth=trust",
                "--username=altair",
                "--encoding=UTF8",
                "-D",
            ],
            true,
        );
        cluster.start_server();
        cluster.run(
            "createdb",
            &["-h", &cluster.socket_dir(), "-U", "altair", "altair"],
            false,
        );
        Some(cluster)
    }

    /// Makes `dir` the database server's own (a tablespace's folder must be).
    pub fn give_to_server(&self, dir: &Path) {
        if self.as_postgres {
            let owned = Command::new("chown")
                .arg("postgres:postgres")
                .arg(dir)
                .status()
                .unwrap();
            assert!(owned.success());
        }
    }

    fn socket_dir(&self) -> String {
        self.dir.display().to_string()
    }

    /// Runs a PostgreSQL program (as `postgres` when root), with the data folder last if
    /// `with_data`; panics with its output if it fails.
    fn run(&self, program: &str, args: &[&str], with_data: bool) {
        let mut command = self.command(program);
        command.args(args);
        if with_data {
            command.arg(self.dir.join("data"));
        }
        let output = command
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("{program}: {e}"));
        assert!(
            output.status.success(),
            "{program} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// A PostgreSQL program, run as `postgres` when the tests run as root.
    fn command(&self, program: &str) -> Command {
        let binary = self.bin.join(program);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(binary);
            c
        } else {
            Command::new(binary)
        }
    }

    /// Starts the server (again, after [`Postgres::stop`]).
    pub fn start_server(&self) {
        let options = format!(
            "-k {} -c listen_addresses='' -c fsync=off -c max_connections=200",
            self.socket_dir()
        );
        let log = self.dir.join("server.log").display().to_string();
        self.run(
            "pg_ctl",
            &["-w", "-l", &log, "-o", &options, "start", "-D"],
            true,
        );
    }

    /// Stops the server now (connections are cut, as in a crash of the database host).
    pub fn stop(&self) {
        self.run("pg_ctl", &["-w", "-m", "immediate", "stop", "-D"], true);
    }

    /// The connection string the server takes (`--database-url`).
    pub fn url(&self) -> String {
        format!("host={} user=altair dbname=altair", self.socket_dir())
    }

    /// A client connection for the test's own queries.
    pub async fn client(&self) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(&self.url(), tokio_postgres::NoTls)
            .await
            .expect("the test connects to PostgreSQL");
        tokio::spawn(connection);
        client
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        let _ = self
            .command("pg_ctl")
            .args(["-m", "immediate", "stop", "-D"])
            .arg(&data)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
