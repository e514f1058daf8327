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
