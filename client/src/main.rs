//! `altair-client`: configuration, logging and signals; the taps live in the library.

use std::process::ExitCode;

use altair_client::bench::Scenario;
use altair_client::config::Args;
use clap::Parser;
use tokio_util::sync::CancellationToken;

/// Plays one beer tap (or many) against an Altair server: posts a pour every interval,
/// never losing one, and logs what the live feed says.
#[derive(Debug, Parser)]
#[command(name = "altair-client", version, about)]
struct Cli {
    #[command(flatten)]
    args: Args,
    #[command(subcommand)]
    command: Option<Command>,
}

/// Other things the client does than playing taps.
#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Load-test a server (prints a summary, then one JSON line).
    #[command(subcommand)]
    Bench(Scenario),
}

fn main() -> ExitCode {
    let Cli { args, command } = Cli::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    // Checked before anything touches the network.
    let settings = match args.settings() {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("altair-client: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("altair-client: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(Command::Bench(scenario)) = &command {
        let ok = runtime.block_on(altair_client::bench::run(&settings, scenario));
        return if ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }
    runtime.block_on(async {
        let stop = CancellationToken::new();
        tokio::spawn(stop_on_signal(stop.clone()));
        match altair_client::run(settings, stop).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(_) => ExitCode::FAILURE,
        }
    })
}

/// Cancels `stop` on SIGINT or SIGTERM: the send in flight finishes, the outbox stays.
async fn stop_on_signal(stop: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => tokio::select! {
            _ = term.recv() => log::info!("SIGTERM: finishing the send in flight"),
            _ = tokio::signal::ctrl_c() => log::info!("SIGINT: finishing the send in flight"),
        },
        Err(e) => {
            log::warn!("cannot listen for SIGTERM ({e}); Ctrl-C still stops the client");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
    stop.cancel();
}
