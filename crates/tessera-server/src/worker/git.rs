//! The git steps of a run, through the `git` command with a scrubbed environment.

use std::path::Path;

use tokio::process::Command;

use crate::worker::BackendError;

/// Runs `git args…` in `dir`, with no inherited environment but `PATH`, no prompts and no
/// system or global configuration. With `credentials`, git reads passwords and tokens for
/// remote URLs from that file (git's credential-store format: one
/// `https://user:token@host` line per host), so clone URLs never carry secrets.
pub async fn git(dir: &Path, credentials: Option<&Path>, args: &[&str]) -> Result<String, BackendError> {
    let mut command = Command::new("git");
    if let Some(file) = credentials {
        command.arg("-c").arg(format!("credential.helper=store --file={}", file.display()));
    }
    command.args(args).current_dir(dir).env_clear().kill_on_drop(true);
    if let Ok(path) = std::env::var("PATH") {
        command.env("PATH", path);
    }
    command
        .env("HOME", dir)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("LANG", "C");
    let output = command.output().await.map_err(|e| BackendError::Failed(format!("cannot run git: {e}")))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(BackendError::Failed(format!(
            "git {} failed: {}",
            args.first().unwrap_or(&""),
            stderr.trim()
        )));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}
