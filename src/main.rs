//! `altair-server`: configuration, logging, signals; everything else lives in the library.

use std::process::ExitCode;

use std::sync::Arc;

use altair::auth::{Auth, Role};
use altair::config::{Command, TokenCommand};
use altair::server::Ended;
use altair::{Config, Server};
use clap::Parser;

fn main() -> ExitCode {
    let config = Config::parse();
    if let Some(command) = &config.command {
        return run_command(command, &config);
    }
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            log::error!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let server = match Server::bind(config).await {
            Ok(server) => server,
            Err(e) => {
                log::error!("{e}");
                return ExitCode::FAILURE;
            }
        };
        tokio::spawn(reload_tokens_on_sighup(server.auth()));
        match server.run(termination()).await {
            Ended::Asked => ExitCode::SUCCESS,
            Ended::StoreBroken => ExitCode::FAILURE,
        }
    })
}

/// The subcommands that do something other than serve.
fn run_command(command: &Command, config: &Config) -> ExitCode {
    match command {
        Command::Healthcheck { timeout } => healthcheck(config, *timeout),
        Command::Export {
            output,
            include_secrets,
        } => export(config, output.as_deref(), *include_secrets),
        Command::Import { input } => import(config, input.as_deref()),
        Command::Migrate => migrate(config),
        Command::Token(TokenCommand::New {
            role,
            tap_id,
            venue,
            name,
        }) => {
            let role = match (role.as_str(), tap_id) {
                ("tap", Some(tap)) => Role::Tap(*tap),
                ("reader", None) => Role::Reader,
                ("admin", None) => Role::Admin,
                ("tap", None) => {
                    eprintln!("altair-server: a tap token needs --tap-id");
                    return ExitCode::from(2);
                }
                (role, _) => {
                    eprintln!(
                        "altair-server: --tap-id is for tap tokens only; a {role} token is not tied to a tap"
                    );
                    return ExitCode::from(2);
                }
            };
            let name = name.clone().unwrap_or_else(|| {
                let role = match role {
                    Role::Tap(tap) => format!("tap-{tap}"),
                    Role::Reader => "reader".into(),
                    Role::Admin => "admin".into(),
                };
                match venue {
                    Some(venue) => format!("{venue}-{role}"),
                    None => role,
                }
            });
            match altair::auth::new_token(role, venue.as_deref(), &name) {
                Ok((token, entry)) => {
                    println!("token (give it to the client; it is not stored anywhere):");
                    println!("{token}");
                    println!();
                    println!(
                        "add to the tokens file, then send the server SIGHUP (an open server, started without --tokens: restart it with --tokens FILE):"
                    );
                    print!("{entry}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("altair-server: no randomness for a token: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// `altair-server migrate`: the schema brought up to date, said in one line.
/// The glass catalogue the server would use.
fn catalogue(config: &Config) -> Result<altair::glass::Catalogue, ExitCode> {
    match &config.glasses {
        Some(path) => altair::glass::Catalogue::load(path).map_err(|e| {
            eprintln!("altair-server: {e}");
            ExitCode::from(2)
        }),
        None => Ok(altair::glass::Catalogue::default()),
    }
}

/// The database named for export or import, if one is; a runtime to reach it with.
fn database(
    config: &Config,
) -> Result<Option<(altair::store::PgSettings, tokio::runtime::Runtime)>, ExitCode> {
    let settings = match altair::store::database_settings(config) {
        Ok(Some(settings)) => settings,
        Ok(None) => return Ok(None),
        Err(e) => {
            eprintln!("altair-server: {e}");
            return Err(ExitCode::from(2));
        }
    };
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => Ok(Some((settings, runtime))),
        Err(e) => {
            eprintln!("altair-server: cannot start the async runtime: {e}");
            Err(ExitCode::FAILURE)
        }
    }
}

/// The store a command reads or writes, for its last line.
fn store_named(database: bool, dir: &std::path::Path) -> String {
    match database {
        true => "the database".to_owned(),
        false => format!("the journal in {}", dir.display()),
    }
}

/// `altair-server export`: a stopped journal's or a database's whole log, to standard output or a file
/// (written beside it and renamed when complete, so a file there is always whole).
fn export(config: &Config, output: Option<&std::path::Path>, include_secrets: bool) -> ExitCode {
    use std::io::Write;
    let database = match database(config) {
        Ok(database) => database,
        Err(code) => return code,
    };
    let catalogue = match catalogue(config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let dir = config.data_dir();
    let venue: Arc<str> = config.default_venue.as_str().into();
    let ttl = config.idempotency_ttl;
    let what = store_named(database.is_some(), &dir);
    let export = |out: Box<dyn Write>| match &database {
        Some((settings, runtime)) => runtime
            .block_on(altair::store::postgres::portable::export(
                settings,
                ttl,
                "postgres",
                include_secrets,
                out,
            ))
            .map_err(|e| e.to_string()),
        None => altair::store::journal::portable::export(
            &dir,
            &catalogue,
            &venue,
            ttl,
            include_secrets,
            out,
        )
        .map_err(|e| e.to_string()),
    };
    let written = match output {
        Some(path) => {
            let partial = path.with_extension("partial");
            let result = std::fs::File::create(&partial)
                .map_err(|e| format!("cannot create {}: {e}", partial.display()))
                .and_then(|file| export(Box::new(std::io::BufWriter::with_capacity(1 << 20, file))))
                .and_then(|trailer| {
                    std::fs::File::open(&partial)
                        .and_then(|f| f.sync_all())
                        .and_then(|()| std::fs::rename(&partial, path))
                        .map(|()| trailer)
                        .map_err(|e| format!("cannot write {}: {e}", path.display()))
                });
            if result.is_err() {
                let _ = std::fs::remove_file(&partial);
            }
            result
        }
        None => export(Box::new(std::io::BufWriter::with_capacity(
            1 << 20,
            std::io::stdout().lock(),
        ))),
    };
    match written {
        Ok(trailer) => {
            let _ = std::io::stdout().flush();
            eprintln!(
                "altair-server: exported {what}: {}; sha256 {}",
                counted(&trailer.counts),
                trailer.sha256
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("altair-server: export: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `1,000 pours, 10 deletions, 3 keg operations, 5 other`, in the order a reader cares for.
fn counted(counts: &altair::store::portable::Counts) -> String {
    let named = [
        ("pour", "pours"),
        ("delete", "deletions"),
        ("keg", "keg operations"),
    ];
    let mut said: Vec<String> = named
        .iter()
        .filter_map(|(kind, words)| {
            counts
                .get(*kind)
                .map(|n| format!("{} {words}", altair::human::count(*n)))
        })
        .collect();
    let other: u64 = counts
        .iter()
        .filter(|(k, _)| !named.iter().any(|(kind, _)| kind == k))
        .map(|(_, n)| n)
        .sum();
    if other > 0 {
        said.push(format!(
            "{} records a compacted journal kept",
            altair::human::count(other)
        ));
    }
    if said.is_empty() {
        return "no records".into();
    }
    said.join(", ")
}

/// `altair-server import`: an export into an empty journal or database, with progress on standard
/// error: a bar on a terminal, a line every 10 s otherwise.
fn import(config: &Config, input: Option<&std::path::Path>) -> ExitCode {
    use std::io::IsTerminal;
    let database = match database(config) {
        Ok(database) => database,
        Err(code) => return code,
    };
    let catalogue = match catalogue(config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let reader: Box<dyn std::io::BufRead> = match input {
        Some(path) => match std::fs::File::open(path) {
            Ok(file) => Box::new(std::io::BufReader::with_capacity(1 << 20, file)),
            Err(e) => {
                eprintln!("altair-server: cannot read {}: {e}", path.display());
                return ExitCode::from(2);
            }
        },
        None => Box::new(std::io::BufReader::with_capacity(
            1 << 20,
            std::io::stdin().lock(),
        )),
    };
    let dir = config.data_dir();
    let venue: Arc<str> = config.default_venue.as_str().into();
    let started = std::time::Instant::now();
    let mut progress = Progress::new(std::io::stderr().is_terminal());
    let what = store_named(database.is_some(), &dir);
    let show = |done, total| progress.show(done, total, started.elapsed());
    let imported = match &database {
        Some((settings, runtime)) => runtime
            .block_on(altair::store::postgres::portable::import(
                settings, reader, show,
            ))
            .map(|(_, trailer)| trailer),
        None => altair::store::journal::portable::import(&dir, &catalogue, &venue, reader, show)
            .map(|imported| imported.trailer),
    };
    progress.done();
    match imported {
        Ok(trailer) => {
            let records: u64 = trailer.counts.values().sum();
            let seconds = started.elapsed().as_secs_f64();
            eprintln!(
                "altair-server: imported into {what}: {} in {seconds:.1} s ({} records/s); sha256 {} checked",
                counted(&trailer.counts),
                altair::human::count((records as f64 / seconds.max(1e-9)) as u64),
                trailer.sha256
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("altair-server: import refused, nothing kept: {e}");
            ExitCode::FAILURE
        }
    }
}

/// An import's progress on standard error.
struct Progress {
    terminal: bool,
    shown: std::time::Duration,
    drawn: bool,
}

impl Progress {
    fn new(terminal: bool) -> Progress {
        Progress {
            terminal,
            shown: std::time::Duration::ZERO,
            drawn: false,
        }
    }

    fn show(&mut self, done: u64, total: u64, elapsed: std::time::Duration) {
        let every = if self.terminal {
            std::time::Duration::from_millis(200)
        } else {
            std::time::Duration::from_secs(10)
        };
        if elapsed < self.shown + every {
            return;
        }
        self.shown = elapsed;
        let rate = done as f64 / elapsed.as_secs_f64().max(1e-9);
        let left = total.saturating_sub(done) as f64 / rate.max(1.0);
        let fraction = if total == 0 {
            1.0
        } else {
            (done as f64 / total as f64).min(1.0)
        };
        let counts = format!(
            "{} of {} records, {} records/s, about {left:.0} s left",
            altair::human::count(done),
            altair::human::count(total),
            altair::human::count(rate as u64)
        );
        if self.terminal {
            let filled = (fraction * 30.0) as usize;
            eprint!(
                "\r[{}{}] {:>3.0}% {counts}\x1b[K",
                "#".repeat(filled),
                ".".repeat(30 - filled),
                fraction * 100.0
            );
            self.drawn = true;
        } else {
            eprintln!("altair-server: import: {:.0}%, {counts}", fraction * 100.0);
        }
    }

    fn done(&mut self) {
        if self.drawn {
            eprintln!();
        }
    }
}

fn migrate(config: &Config) -> ExitCode {
    let settings = match altair::store::database_settings(config) {
        Ok(Some(settings)) => settings,
        Ok(None) => {
            eprintln!("altair-server: migrate needs --database-url (or DATABASE_URL)");
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("altair-server: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("altair-server: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(altair::store::postgres::migrate_only(&settings)) {
        Ok((place, applied)) if applied.is_empty() => {
            println!(
                "{place}: the schema is up to date (v{})",
                altair::store::postgres::schema_version()
            );
            ExitCode::SUCCESS
        }
        Ok((place, applied)) => {
            let versions: Vec<String> = applied.iter().map(|v| format!("v{v}")).collect();
            println!("{place}: applied {}", versions.join(", "));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("altair-server: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `GET /health` on the address the server would listen on, with nothing but std: the
/// runtime image has no curl.
fn healthcheck(config: &Config, timeout: std::time::Duration) -> ExitCode {
    use std::io::{Read, Write};
    let mut addr = config.listen_addr();
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let answer = (|| -> std::io::Result<String> {
        let mut stream = std::net::TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        write!(
            stream,
            "GET /health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )?;
        let mut text = String::new();
        stream.take(64 * 1024).read_to_string(&mut text)?;
        Ok(text)
    })();
    match answer {
        Ok(text) if text.starts_with("HTTP/1.1 200") => ExitCode::SUCCESS,
        Ok(text) => {
            eprintln!("unhealthy: {}", text.lines().next().unwrap_or("no answer"));
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("unhealthy: {addr}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Re-reads the tokens file on every SIGHUP; a broken file keeps the tokens in force.
async fn reload_tokens_on_sighup(auth: Arc<Auth>) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangups = match signal(SignalKind::hangup()) {
        Ok(hangups) => hangups,
        Err(e) => {
            log::warn!("cannot listen for SIGHUP ({e}); tokens reload only on restart");
            return;
        }
    };
    while hangups.recv().await.is_some() {
        if auth.is_open() {
            log::warn!("SIGHUP: no tokens file to reload (the server is open)");
            continue;
        }
        match auth.reload() {
            Ok(n) => log::info!("SIGHUP: tokens file reloaded, {n} tokens in force"),
            Err(e) => log::error!(
                "SIGHUP: {e}; keeping the {} tokens in force",
                auth.token_count()
            ),
        }
    }
}

/// Completes on SIGINT or SIGTERM.
async fn termination() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(term) => term,
        Err(e) => {
            log::error!("cannot listen for SIGTERM ({e}); only Ctrl-C will stop the server");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => log::info!("SIGTERM received"),
        _ = tokio::signal::ctrl_c() => log::info!("SIGINT received"),
    }
}
