//! `tessera-scripted`: a deterministic built-in model for tests and demos.
//!
//! It reads the prompt line by line:
//! - `@write PATH` … `@end` replaces a file's content; `@append PATH` … `@end` adds to it;
//! - `@delete PATH` removes a file;
//! - `@sleep SECONDS` waits (so stop, cancel and timeouts can be exercised);
//! - `@fail MESSAGE` ends the run in `ERROR` with that message;
//! - every other non-blank line becomes an assistant message.
//!
//! Usage: one input token per prompt character, one output token per character written.
//! Paths must stay inside the work directory; anything else ends the run in `ERROR`.

use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use crate::worker::{BackendError, BackendOutput, RunControl};

pub const MODEL: &str = "tessera-scripted";

/// Resolves `raw` under `root`, refusing absolute paths, `..` and the `.git` directory.
fn contained(root: &Path, raw: &str) -> Result<PathBuf, BackendError> {
    let relative = Path::new(raw.trim());
    let escapes = raw.trim().is_empty()
        || relative.is_absolute()
        || relative.components().any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
        || relative.components().next().is_some_and(|c| c.as_os_str() == ".git");
    if escapes {
        return Err(BackendError::Failed(format!("path {raw:?} is outside the work directory")));
    }
    Ok(root.join(relative))
}

pub async fn run(prompt: &str, workdir: &Path, control: &RunControl) -> Result<BackendOutput, BackendError> {
    let mut output =
        BackendOutput { input_tokens: prompt.chars().count() as i64, ..BackendOutput::default() };
    let mut lines = prompt.lines();
    while let Some(line) = lines.next() {
        control.check()?;
        let trimmed = line.trim();
        let (command, argument) = trimmed.split_once(' ').unwrap_or((trimmed, ""));
        match command {
            "@write" | "@append" => {
                let path = contained(workdir, argument)?;
                let mut content = String::new();
                let mut closed = false;
                for body_line in lines.by_ref() {
                    if body_line.trim() == "@end" {
                        closed = true;
                        break;
                    }
                    content.push_str(body_line);
                    content.push('\n');
                }
                if !closed {
                    return Err(BackendError::Failed(format!("{command} {argument}: missing @end")));
                }
                if let Some(parent) = path.parent() {
                    tokio::fs::create_dir_all(parent)
                        .await
                        .map_err(|e| BackendError::Failed(e.to_string()))?;
                }
                let written = if command == "@write" {
                    tokio::fs::write(&path, &content).await
                } else {
                    use tokio::io::AsyncWriteExt;
                    match tokio::fs::OpenOptions::new().create(true).append(true).open(&path).await {
                        Ok(mut file) => file.write_all(content.as_bytes()).await,
                        Err(err) => Err(err),
                    }
                };
                written.map_err(|e| BackendError::Failed(format!("{command} {argument}: {e}")))?;
                output.output_tokens += content.chars().count() as i64;
                control
                    .tool_call(
                        command.trim_start_matches('@'),
                        serde_json::json!({ "path": argument.trim() }),
                    )
                    .await;
            }
            "@delete" => {
                let path = contained(workdir, argument)?;
                tokio::fs::remove_file(&path)
                    .await
                    .map_err(|e| BackendError::Failed(format!("@delete {argument}: {e}")))?;
                control.tool_call("delete", serde_json::json!({ "path": argument.trim() })).await;
            }
            "@sleep" => {
                let seconds: f64 = argument.trim().parse().map_err(|_| {
                    BackendError::Failed(format!("@sleep {argument}: not a number of seconds"))
                })?;
                control.sleep(Duration::from_secs_f64(seconds.clamp(0.0, 86_400.0))).await?;
            }
            "@fail" => return Err(BackendError::Failed(argument.trim().to_owned())),
            _ if trimmed.is_empty() => {}
            _ => {
                output.last_message = Some(line.to_owned());
                control.assistant(line).await;
            }
        }
    }
    Ok(output)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside() {
        let root = Path::new("/srv/run");
        assert_eq!(contained(root, "src/lib.rs").ok(), Some(root.join("src/lib.rs")));
        for bad in ["/etc/passwd", "../x", "a/../../x", ".git/config", ""] {
            assert!(contained(root, bad).is_err(), "{bad:?}");
        }
    }
}
