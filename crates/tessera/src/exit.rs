//! Exit codes, so scripts can tell failures apart without parsing text.
//!
//! | code | meaning |
//! |------|---------|
//! | 0 | success |
//! | 1 | unexpected error |
//! | 2 | usage error (bad flags or arguments) |
//! | 3 | authentication failed (no key, or the key was refused) |
//! | 4 | permission denied (role or plan) |
//! | 5 | not found |
//! | 6 | conflict (name taken, seats full, key already rotated or revoked, archived) |
//! | 7 | invalid input rejected by the server |
//! | 8 | server unavailable or unreachable |
//! | 9 | audit chain verification found tampering |

use tessera_store::StoreError;

#[derive(Debug)]
pub enum CliError {
    NoApiKey,
    Usage(String),
    Api { status: u16, code: String, message: String },
    Unreachable(String),
    AuditChainBroken,
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CliError::NoApiKey => {
                f.write_str("no API key: set TESSERA_API_KEY (or CURSOR_API_KEY) to an API key")
            }
            CliError::Usage(message) => f.write_str(message),
            CliError::Api { status, code, message } => write!(f, "{message} ({code}, HTTP {status})"),
            CliError::Unreachable(message) => write!(f, "cannot reach Tessera: {message}"),
            CliError::AuditChainBroken => {
                f.write_str("the audit chain is broken: an event was altered or deleted")
            }
        }
    }
}

impl std::error::Error for CliError {}

pub fn exit_code(err: &anyhow::Error) -> u8 {
    if let Some(cli) = err.downcast_ref::<CliError>() {
        return match cli {
            CliError::NoApiKey => 3,
            CliError::Usage(_) => 2,
            CliError::Api { status, .. } => match status {
                401 => 3,
                403 => 4,
                404 => 5,
                409 => 6,
                400..=499 => 7,
                _ => 8,
            },
            CliError::Unreachable(_) => 8,
            CliError::AuditChainBroken => 9,
        };
    }
    if let Some(store) = err.downcast_ref::<StoreError>() {
        return match store {
            StoreError::NotFound => 5,
            StoreError::TeamNameTaken(_)
            | StoreError::EmailTaken(_)
            | StoreError::NameTaken(_)
            | StoreError::SeatLimitReached { .. } => 6,
            StoreError::PlanRequired => 4,
            StoreError::Database(_) => 8,
            _ => 1,
        };
    }
    1
}
