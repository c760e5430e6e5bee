//! The `tasksentry` binary: parses the command line, resolves the configuration and runs the
//! chosen subcommand. Exit codes are documented in [`tasksentry::cli::exit`].

use std::process::ExitCode;

use clap::Parser;
use tasksentry::cli::{Cli, Command, exit};
use tasksentry::config::{Config, LogFormat};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Version => {
            println!("tasksentry {}", env!("CARGO_PKG_VERSION"));
            ExitCode::from(exit::OK)
        }
        Command::Run(args) => {
            let config = match Config::resolve(args.overrides()) {
                Ok(config) => config,
                Err(error) => {
                    eprintln!("tasksentry: {error}");
                    return ExitCode::from(exit::CONFIG);
                }
            };
            init_logging(&config);
            match tasksentry::app::run(config) {
                Ok(()) => ExitCode::from(exit::OK),
                Err(error) => {
                    tracing::error!(error = format!("{error:#}"), "The monitor failed.");
                    eprintln!("tasksentry: {error:#}");
                    ExitCode::from(exit::FAILURE)
                }
            }
        }
        Command::Fields(_) | Command::Rules(_) => {
            eprintln!("tasksentry: not available yet");
            ExitCode::from(exit::FAILURE)
        }
    }
}

fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log_level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match config.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}
