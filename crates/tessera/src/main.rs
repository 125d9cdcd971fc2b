//! The `tessera` binary: parses the command line and hands off to the command. `anyhow` is used
//! here, at the edge; the libraries below return typed errors.

mod cli;
mod client;
mod commands;
mod exit;
mod operator;
mod output;
mod settings;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command, TeamsCommand, UsersCommand};
use crate::output::Output;
use crate::settings::FileSettings;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let out = Output { json: cli.json };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli, out)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            if out.json {
                let body = serde_json::json!({ "error": { "message": format!("{err:#}"), "exitCode": exit::exit_code(&err) } });
                eprintln!("{body}");
            } else {
                eprintln!("error: {err:#}");
            }
            ExitCode::from(exit::exit_code(&err))
        }
    }
}

async fn run(cli: Cli, out: Output) -> anyhow::Result<()> {
    let file = FileSettings::load(cli.config.as_deref())?;
    match &cli.command {
        Command::Serve(args) => operator::serve(args, &file).await,
        Command::Worker(args) => operator::worker(args, &file).await,
        Command::Init(args) => operator::init(args, &file, &out).await,
        Command::Users(UsersCommand::Add(args)) => operator::users_add(args, &file, &out).await,
        Command::Teams(TeamsCommand::SetPlan(args)) => operator::set_plan(args, &file, &out).await,
        Command::ServiceAccounts(command) => commands::service_accounts(command, &file, &out).await,
        Command::Whoami(args) => commands::whoami(args, &file, &out).await,
        Command::Audit(command) => commands::audit(command, &file, &out).await,
        Command::Integrations(command) => commands::integrations(command, &file, &out).await,
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        super::cli::Cli::command().debug_assert();
    }

    #[test]
    fn debug_output_never_shows_the_api_key() {
        use clap::Parser;
        let key = format!("tessera_sa_{}", "Q".repeat(49));
        let cli = super::cli::Cli::parse_from(["tessera", "whoami", "--api-key", key.as_str()]);
        let printed = format!("{cli:?}");
        assert!(!printed.contains(&key), "{printed}");
        assert!(printed.contains("REDACTED"));
    }
}
