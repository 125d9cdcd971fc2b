//! The `command` backend: any agent CLI, run in the work directory with a scrubbed
//! environment. Configured per model, e.g. in the TOML settings file:
//!
//! ```toml
//! [[agent_backends]]
//! model = "cursor-agent"
//! command = ["agent", "-p", "--force", "--output-format", "stream-json", "{prompt}"]
//! format = "stream-json"
//! pass_env = ["CURSOR_API_KEY"]
//! ```
//!
//! `{prompt}` in an argument is replaced by the prompt; without it, the prompt goes to stdin.
//! `stream-json` output (Cursor's and Claude Code's NDJSON) becomes assistant messages, tool
//! calls and token usage; `text` output becomes one assistant message. The child sees only
//! `PATH`, `HOME` (the work directory), `LANG` and the variables named in `pass_env`.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

use crate::worker::{BackendError, BackendOutput, RunControl};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum OutputFormat {
    #[default]
    StreamJson,
    Text,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandBackend {
    /// The model id clients select (`model` in the API).
    pub model: String,
    /// Program and arguments.
    pub command: Vec<String>,
    #[serde(default)]
    pub format: OutputFormat,
    /// Environment variables passed through from the worker's environment.
    #[serde(default)]
    pub pass_env: Vec<String>,
}

pub async fn run(
    backend: &CommandBackend,
    prompt: &str,
    workdir: &Path,
    control: &RunControl,
) -> Result<BackendOutput, BackendError> {
    let Some((program, args)) = backend.command.split_first() else {
        return Err(BackendError::Failed(format!("model {:?} has an empty command", backend.model)));
    };
    let prompt_in_args = args.iter().any(|a| a.contains("{prompt}"));
    let mut command = Command::new(program);
    command
        .args(args.iter().map(|a| a.replace("{prompt}", prompt)))
        .current_dir(workdir)
        .env_clear()
        .env("HOME", workdir)
        .env("LANG", "C.UTF-8")
        .stdin(if prompt_in_args { Stdio::null() } else { Stdio::piped() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for name in std::iter::once("PATH").chain(backend.pass_env.iter().map(String::as_str)) {
        if let Ok(value) = std::env::var(name) {
            command.env(name, value);
        }
    }
    let mut child =
        command.spawn().map_err(|e| BackendError::Failed(format!("cannot start {program}: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        // An agent that exits without reading its input is judged by its exit status, not here.
        match stdin.write_all(prompt.as_bytes()).await {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => {}
            Err(err) => {
                return Err(BackendError::Failed(format!("cannot send the prompt to {program}: {err}")));
            }
        }
        drop(stdin);
    }
    let stdout = child.stdout.take().ok_or_else(|| BackendError::Failed("no stdout".into()))?;
    let mut stderr = child.stderr.take().ok_or_else(|| BackendError::Failed("no stderr".into()))?;
    let stderr_task = tokio::spawn(async move {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text).await;
        text
    });
    let mut lines = BufReader::new(stdout).lines();
    let mut output = BackendOutput::default();
    let mut plain = String::new();
    let mut reported_error = None;
    loop {
        if let Err(stop) = control.check() {
            let _ = child.kill().await;
            return Err(stop);
        }
        match tokio::time::timeout(Duration::from_millis(100), lines.next_line()).await {
            Err(_) => continue,
            Ok(Ok(Some(line))) => match backend.format {
                OutputFormat::Text => {
                    plain.push_str(&line);
                    plain.push('\n');
                }
                OutputFormat::StreamJson => {
                    if let Ok(event) = serde_json::from_str::<Value>(&line) {
                        reported_error = reported_error.or(handle_event(&event, &mut output, control).await);
                    }
                }
            },
            Ok(Ok(None)) | Ok(Err(_)) => break,
        }
    }
    let status = loop {
        if let Err(stop) = control.check() {
            let _ = child.kill().await;
            return Err(stop);
        }
        match tokio::time::timeout(Duration::from_millis(100), child.wait()).await {
            Err(_) => continue,
            Ok(status) => break status.map_err(|e| BackendError::Failed(e.to_string()))?,
        }
    };
    let stderr_text = stderr_task.await.unwrap_or_default();
    if !status.success() {
        let tail: String = stderr_text
            .lines()
            .rev()
            .take(5)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n");
        return Err(BackendError::Failed(format!("{program} exited with {status}: {}", tail.trim())));
    }
    if let Some(message) = reported_error {
        return Err(BackendError::Failed(message));
    }
    if backend.format == OutputFormat::Text {
        let text = plain.trim();
        if !text.is_empty() {
            control.assistant(text).await;
            output.last_message = Some(text.to_owned());
        }
        output.input_tokens = prompt.chars().count() as i64;
    }
    Ok(output)
}

/// Records one stream-json event; returns an error message if the agent reported failure.
async fn handle_event(event: &Value, output: &mut BackendOutput, control: &RunControl) -> Option<String> {
    match event["type"].as_str() {
        Some("assistant") => {
            let partial_flush = event.get("timestamp_ms").is_some() && event.get("model_call_id").is_some();
            for part in event["message"]["content"].as_array().into_iter().flatten() {
                match part["type"].as_str() {
                    Some("text") if !partial_flush => {
                        if let Some(text) = part["text"].as_str().filter(|t| !t.trim().is_empty()) {
                            control.assistant(text).await;
                            output.last_message = Some(text.to_owned());
                        }
                    }
                    Some("tool_use") => {
                        let name = part["name"].as_str().unwrap_or("tool");
                        control.tool_call(name, part["input"].clone()).await;
                    }
                    _ => {}
                }
            }
            add_usage(&event["message"]["usage"], output);
            None
        }
        Some("tool_call") if event["subtype"] == "completed" => {
            let call = &event["tool_call"];
            let (name, args) = match call.as_object().and_then(|o| o.iter().next()) {
                Some((kind, body)) if kind != "function" => {
                    (kind.trim_end_matches("ToolCall").to_owned(), body["args"].clone())
                }
                _ => (
                    call["function"]["name"].as_str().unwrap_or("tool").to_owned(),
                    call["function"]["arguments"].clone(),
                ),
            };
            control.tool_call(&name, args).await;
            None
        }
        Some("result") => {
            if let Some(text) = event["result"].as_str().filter(|t| !t.trim().is_empty()) {
                output.last_message = Some(text.to_owned());
            }
            add_usage(&event["usage"], output);
            if event["is_error"] == true {
                return Some(event["result"].as_str().unwrap_or("the agent reported an error").to_owned());
            }
            None
        }
        _ => None,
    }
}

fn add_usage(usage: &Value, output: &mut BackendOutput) {
    let field =
        |camel: &str, snake: &str| usage[camel].as_i64().or_else(|| usage[snake].as_i64()).unwrap_or(0);
    output.input_tokens += field("inputTokens", "input_tokens");
    output.output_tokens += field("outputTokens", "output_tokens");
}
