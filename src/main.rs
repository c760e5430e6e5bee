//! The `tasksentry` binary: parses the command line, resolves the configuration and runs the
//! chosen subcommand. Exit codes are documented in [`tasksentry::exit`].

use std::process::ExitCode;

use clap::Parser;
use tasksentry::cli::{Cli, Command, ProfileCommand, RulesCommand};
use tasksentry::commands::{self, RuleSelection};
use tasksentry::config::{Config, LogFormat, RuleMatchingMode};
use tasksentry::exit;
use tasksentry::guard::supervise::{self, Handoff, SupervisorSettings, WorkerContext};

fn main() -> ExitCode {
    // The supervisor's fresh image (see `Handoff`): straight to supervising.
    if let Some(handoff) = Handoff::from_env() {
        init_logging(&handoff.log_level, handoff.log_format);
        return match supervise::run(handoff.settings()) {
            Ok(code) => ExitCode::from(code),
            Err(error) => {
                eprintln!("tasksentry: {error}");
                ExitCode::from(exit::FAILURE)
            }
        };
    }
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Version => {
            let (major, minor, patch) = tasksentry::rules::ENGINE_VERSION;
            println!(
                "tasksentry {} (Falco rule engine compatibility {major}.{minor}.{patch})",
                env!("CARGO_PKG_VERSION")
            );
            Ok(exit::OK)
        }
        Command::Run(args) => {
            let config = match Config::resolve(args) {
                Ok(config) => config,
                Err(error) => {
                    eprintln!("tasksentry: {error}");
                    return ExitCode::from(exit::CONFIG);
                }
            };
            init_logging(&config.log_level, config.log_format);
            if config.supervise && !WorkerContext::is_worker() {
                // This process becomes the supervisor (a fresh image of itself, holding only
                // what supervising needs); the monitor runs as its child.
                let handoff = Handoff {
                    max_restarts: config.max_restarts,
                    log_level: config.log_level.clone(),
                    log_format: config.log_format,
                };
                let error = handoff.exec();
                tracing::warn!(%error, "Cannot re-execute as the supervisor; supervising from this process.");
                let settings = SupervisorSettings::from_current_process(config.max_restarts);
                supervise::run(settings).map_err(anyhow::Error::from)
            } else {
                tasksentry::topology::run(config)
            }
        }
        Command::Fields(args) => commands::fields(args.json),
        Command::Lint(args) => {
            init_logging("warn", LogFormat::Text);
            commands::lint(&args)
        }
        Command::Secrets(args) => {
            init_logging("warn", LogFormat::Text);
            commands::secrets(&args)
        }
        Command::Sbom(args) => {
            init_logging("warn", LogFormat::Text);
            commands::sbom(&args)
        }
        Command::Profile(command) => {
            init_logging("warn", LogFormat::Text);
            match command {
                ProfileCommand::Build {
                    inputs,
                    out,
                    min_tasks,
                } => commands::profile_build(&inputs, &out, min_tasks),
                ProfileCommand::Diff { old, new } => commands::profile_diff(&old, &new),
            }
        }
        Command::Rules(command) => {
            init_logging("warn", LogFormat::Text);
            match command {
                RulesCommand::Validate {
                    files,
                    strict,
                    no_default_rules,
                } => commands::rules_validate(&RuleSelection {
                    files,
                    no_default_rules,
                    strict,
                    rule_matching: RuleMatchingMode::First,
                }),
                RulesCommand::List {
                    files,
                    no_default_rules,
                } => commands::rules_list(&RuleSelection {
                    files,
                    no_default_rules,
                    strict: false,
                    rule_matching: RuleMatchingMode::First,
                }),
                RulesCommand::Test {
                    events,
                    files,
                    no_default_rules,
                    rule_matching,
                    hostname,
                } => commands::rules_test(
                    &RuleSelection {
                        files,
                        no_default_rules,
                        strict: false,
                        rule_matching,
                    },
                    &events,
                    &hostname.unwrap_or_else(commands::default_hostname),
                ),
            }
        }
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            eprintln!("tasksentry: {error:#}");
            ExitCode::from(error_exit_code(&error))
        }
    }
}

/// Rules or configuration that cannot be used at start are `EX_CONFIG`; anything else is a
/// runtime failure.
fn error_exit_code(error: &anyhow::Error) -> u8 {
    if error.chain().any(|cause| {
        cause.is::<tasksentry::topology::StartupError>()
            || cause.is::<tasksentry::rule_files::RuleFileError>()
    }) {
        exit::CONFIG
    } else {
        exit::FAILURE
    }
}

fn init_logging(level: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Colour codes only on a terminal: in ECS stderr goes to awslogs, where they are noise.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}
