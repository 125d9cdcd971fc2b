//! Cloud agents and their runs: ids, statuses, prompts and branch names.
//!
//! An agent is a durable workspace on one repository; each prompt (the first, and every
//! follow-up) is a run. Runs wait in a queue until a worker claims them.

use std::fmt;

use crate::ids::InvalidId;

fn parse_uuid_id(raw: &str, prefix: &'static str, kind: &'static str) -> Result<String, InvalidId> {
    let rest = raw.strip_prefix(prefix).ok_or(InvalidId { kind })?;
    let uuid = uuid::Uuid::try_parse(rest).map_err(|_| InvalidId { kind })?;
    Ok(format!("{prefix}{}", uuid.hyphenated()))
}

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            pub fn generate() -> $name {
                $name(format!("{}{}", $prefix, uuid::Uuid::now_v7().hyphenated()))
            }

            pub fn parse(raw: &str) -> Result<$name, InvalidId> {
                parse_uuid_id(raw, $prefix, $kind).map($name)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = InvalidId;
            fn from_str(raw: &str) -> Result<$name, InvalidId> {
                $name::parse(raw)
            }
        }
    };
}

uuid_id!(
    /// An agent, `bc-<uuid>` as in Cursor's API.
    AgentId, "bc-", "agent"
);
uuid_id!(
    /// One run of an agent, `run-<uuid>`.
    RunId, "run-", "run"
);

/// Where a run is in its life. `Finished`, `Error`, `Cancelled` and `Expired` are terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RunStatus {
    /// Queued; no worker has started it.
    Creating,
    Running,
    Finished,
    Error,
    Cancelled,
    Expired,
}

impl RunStatus {
    pub const ALL: [RunStatus; 6] = [
        RunStatus::Creating,
        RunStatus::Running,
        RunStatus::Finished,
        RunStatus::Error,
        RunStatus::Cancelled,
        RunStatus::Expired,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            RunStatus::Creating => "CREATING",
            RunStatus::Running => "RUNNING",
            RunStatus::Finished => "FINISHED",
            RunStatus::Error => "ERROR",
            RunStatus::Cancelled => "CANCELLED",
            RunStatus::Expired => "EXPIRED",
        }
    }

    pub const fn is_terminal(self) -> bool {
        matches!(self, RunStatus::Finished | RunStatus::Error | RunStatus::Cancelled | RunStatus::Expired)
    }

    /// The v0 agent status: v0 has no `CANCELLED`, so a stopped run reads `STOPPED`, the value
    /// Cursor's clients handle.
    pub const fn as_v0_str(self) -> &'static str {
        match self {
            RunStatus::Cancelled => "STOPPED",
            other => other.as_str(),
        }
    }
}

impl std::str::FromStr for RunStatus {
    type Err = crate::team::UnknownVariant;
    fn from_str(raw: &str) -> Result<RunStatus, Self::Err> {
        RunStatus::ALL.into_iter().find(|s| s.as_str() == raw).ok_or_else(|| crate::team::UnknownVariant {
            kind: "run status",
            value: raw.to_owned(),
            expected: "CREATING, RUNNING, FINISHED, ERROR, CANCELLED, EXPIRED",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidAgentInput {
    #[error("prompt.text must not be empty")]
    EmptyPrompt,
    #[error("prompt.text must be at most {0} characters")]
    PromptTooLong(usize),
    #[error("{0:?} is not a valid branch name")]
    BadBranchName(String),
}

/// The instruction for one run.
#[derive(Clone, PartialEq, Eq)]
pub struct Prompt(String);

impl Prompt {
    pub const MAX_CHARS: usize = 100_000;

    pub fn parse(raw: &str) -> Result<Prompt, InvalidAgentInput> {
        if raw.trim().is_empty() {
            return Err(InvalidAgentInput::EmptyPrompt);
        }
        if raw.chars().count() > Prompt::MAX_CHARS {
            return Err(InvalidAgentInput::PromptTooLong(Prompt::MAX_CHARS));
        }
        Ok(Prompt(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A short title for the agent: the first non-empty line, cut to 60 characters.
    pub fn title(&self) -> String {
        let line = self.0.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("Agent");
        let mut title: String = line.chars().take(60).collect();
        if line.chars().count() > 60 {
            title.push('…');
        }
        title
    }
}

impl fmt::Debug for Prompt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Prompt({} chars)", self.0.chars().count())
    }
}

/// A git branch name the agent may create: a conservative subset of `git check-ref-format`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct BranchName(String);

impl BranchName {
    pub fn parse(raw: &str) -> Result<BranchName, InvalidAgentInput> {
        let bad = || InvalidAgentInput::BadBranchName(raw.to_owned());
        let ok_chars =
            raw.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'_' | b'.'));
        if raw.is_empty()
            || raw.len() > 200
            || !ok_chars
            || raw.starts_with(['-', '/', '.'])
            || raw.ends_with(['/', '.'])
            || raw.ends_with(".lock")
            || raw.contains("..")
            || raw.contains("//")
            || raw.contains("/.")
        {
            return Err(bad());
        }
        Ok(BranchName(raw.to_owned()))
    }

    /// `tessera/<slug>-<short id>` for an agent that was not given a branch.
    pub fn generated(prompt: &Prompt, agent: &AgentId) -> BranchName {
        let slug: String = prompt
            .title()
            .to_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect::<String>()
            .split('-')
            .filter(|part| !part.is_empty())
            .take(6)
            .collect::<Vec<_>>()
            .join("-");
        let slug = if slug.is_empty() { "agent".to_owned() } else { slug };
        let short: String =
            agent.as_str().trim_start_matches("bc-").chars().rev().take(8).collect::<String>();
        let short: String = short.chars().rev().collect();
        BranchName(format!("tessera/{slug}-{short}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_reject_other_shapes() {
        let agent = AgentId::generate();
        assert!(agent.as_str().starts_with("bc-"));
        assert_eq!(AgentId::parse(agent.as_str()), Ok(agent.clone()));
        assert_eq!(
            AgentId::parse("bc-00000000-0000-0000-0000-000000000001").map(|a| a.0),
            Ok("bc-00000000-0000-0000-0000-000000000001".into())
        );
        for raw in ["", "bc-", "bc_abc123", "run-00000000-0000-0000-0000-000000000001", "bc-xyz"] {
            assert!(AgentId::parse(raw).is_err(), "{raw:?}");
        }
        assert!(RunId::parse(RunId::generate().as_str()).is_ok());
    }

    #[test]
    fn statuses() {
        for status in RunStatus::ALL {
            assert_eq!(status.as_str().parse(), Ok(status));
        }
        assert!(RunStatus::Expired.is_terminal() && !RunStatus::Running.is_terminal());
        assert_eq!(RunStatus::Cancelled.as_v0_str(), "STOPPED");
    }

    #[test]
    fn prompts_and_branches() {
        assert!(Prompt::parse("  \n ").is_err());
        let prompt = Prompt::parse("\n Add a README with setup steps!\nmore").expect("valid");
        assert_eq!(prompt.title(), "Add a README with setup steps!");
        let agent = AgentId::parse("bc-00000000-0000-0000-0000-0000deadbeef").expect("valid");
        assert_eq!(
            BranchName::generated(&prompt, &agent).as_str(),
            "tessera/add-a-readme-with-setup-steps-deadbeef"
        );
        assert!(BranchName::parse("feature/x-1").is_ok());
        for bad in ["", "-x", "a..b", "a b", "x.lock", "a/", "a//b", "refs/../x", "a~1", "x/.hidden"] {
            assert!(BranchName::parse(bad).is_err(), "{bad:?}");
        }
    }
}
