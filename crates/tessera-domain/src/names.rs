//! Names, descriptions and e-mail addresses, parsed once at the edge.

use std::fmt;

/// What is wrong with a piece of text a client sent. The message is shown to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidText {
    #[error("{field} must not be empty")]
    Empty { field: &'static str },
    #[error("{field} must be at most {max} characters")]
    TooLong { field: &'static str, max: usize },
    #[error("{field} must not contain control characters")]
    ControlCharacter { field: &'static str },
    #[error("{field} is not a valid e-mail address")]
    NotAnEmail { field: &'static str },
}

fn parse_line(raw: &str, field: &'static str, max: usize) -> Result<String, InvalidText> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(InvalidText::Empty { field });
    }
    if trimmed.chars().count() > max {
        return Err(InvalidText::TooLong { field, max });
    }
    if trimmed.chars().any(char::is_control) {
        return Err(InvalidText::ControlCharacter { field });
    }
    Ok(trimmed.to_owned())
}

macro_rules! text_type {
    ($(#[$doc:meta])* $name:ident, $field:literal, $max:expr) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash)]
        pub struct $name(String);

        impl $name {
            pub const MAX_CHARS: usize = $max;

            /// Trims surrounding whitespace, then checks length and characters.
            pub fn parse(raw: &str) -> Result<$name, InvalidText> {
                parse_line(raw, $field, $max).map($name)
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
                fmt::Debug::fmt(&self.0, f)
            }
        }
    };
}

text_type!(
    /// A service account's name, unique among the team's active accounts (case-insensitively).
    ServiceAccountName, "name", 100
);
text_type!(
    /// A team's name, unique on the server (case-insensitively).
    TeamName, "team name", 100
);
text_type!(
    /// A label for an API key, shown as `apiKeyName`.
    ApiKeyName, "key name", 100
);
text_type!(
    /// A repository integration's name.
    IntegrationName, "name", 100
);
text_type!(
    /// A human's display name.
    PersonName, "name", 200
);

/// Free text about a service account. Newlines and tabs are allowed; other control characters
/// are not.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Description(String);

impl Description {
    pub const MAX_CHARS: usize = 1000;

    /// An empty (or all-whitespace) description means "no description": `Ok(None)`.
    pub fn parse(raw: &str) -> Result<Option<Description>, InvalidText> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Ok(None);
        }
        if trimmed.chars().count() > Description::MAX_CHARS {
            return Err(InvalidText::TooLong { field: "description", max: Description::MAX_CHARS });
        }
        if trimmed.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
            return Err(InvalidText::ControlCharacter { field: "description" });
        }
        Ok(Some(Description(trimmed.to_owned())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An e-mail address, lowercased. The check is deliberately loose (one `@`, a dot in the
/// domain, no spaces): the address is an identifier here, not a mailbox we write to.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Email, InvalidText> {
        let field = "email";
        let text = parse_line(raw, field, 254)?.to_lowercase();
        let Some((local, domain)) = text.split_once('@') else {
            return Err(InvalidText::NotAnEmail { field });
        };
        let well_formed = !local.is_empty()
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains('@')
            && !text.chars().any(char::is_whitespace);
        if !well_formed {
            return Err(InvalidText::NotAnEmail { field });
        }
        Ok(Email(text))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(
            ServiceAccountName::parse("  Linear Integration ").map(|n| n.0),
            Ok("Linear Integration".to_owned())
        );
        assert_eq!(ServiceAccountName::parse("   "), Err(InvalidText::Empty { field: "name" }));
        assert!(ServiceAccountName::parse(&"x".repeat(100)).is_ok());
        assert_eq!(
            ServiceAccountName::parse(&"x".repeat(101)),
            Err(InvalidText::TooLong { field: "name", max: 100 })
        );
        // Length is counted in characters, not bytes.
        assert!(ServiceAccountName::parse(&"é".repeat(100)).is_ok());
    }

    #[test]
    fn names_reject_control_characters() {
        for raw in ["a\nb", "a\u{0}b", "a\u{7f}b", "a\u{1b}[31mb"] {
            assert_eq!(
                ServiceAccountName::parse(raw),
                Err(InvalidText::ControlCharacter { field: "name" }),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn descriptions_allow_newlines_only() {
        assert!(matches!(Description::parse("line one\nline two"), Ok(Some(_))));
        assert_eq!(Description::parse("  "), Ok(None));
        assert!(Description::parse("bell\u{7}").is_err());
    }

    #[test]
    fn emails() {
        assert_eq!(Email::parse(" Ops@Acme.Test ").map(|e| e.0), Ok("ops@acme.test".to_owned()));
        for raw in ["", "ops", "ops@", "@acme.test", "ops@acme", "o ps@acme.test", "a@b@c.test"] {
            assert!(Email::parse(raw).is_err(), "{raw:?}");
        }
    }
}
