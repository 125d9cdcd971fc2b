//! Repository integrations: which repositories a team, or one user, has authorized.
//!
//! An integration has a scope (team-level, managed by admins; or personal, managed by its
//! user), a provider (`git` today: repositories reached by URL; GitHub App installations fit the
//! same shape later) and a list of repositories. Each repository has a `url`, its identity (what
//! API clients send as `source.repository` and what the API shows), and may have a `cloneUrl`
//! where workers fetch and push, which defaults to `url`.
//!
//! Service accounts may only use team-level integrations; a user may use the team's and their
//! own personal ones.

use std::fmt;
use std::str::FromStr;

use crate::team::UnknownVariant;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IntegrationScope {
    Team,
    Personal,
}

impl IntegrationScope {
    pub const fn as_str(self) -> &'static str {
        match self {
            IntegrationScope::Team => "team",
            IntegrationScope::Personal => "personal",
        }
    }
}

impl FromStr for IntegrationScope {
    type Err = UnknownVariant;
    fn from_str(raw: &str) -> Result<IntegrationScope, UnknownVariant> {
        match raw {
            "team" => Ok(IntegrationScope::Team),
            "personal" => Ok(IntegrationScope::Personal),
            _ => Err(UnknownVariant { kind: "scope", value: raw.to_owned(), expected: "team, personal" }),
        }
    }
}

/// How the repositories of an integration are reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    /// Plain git: a local path or a git URL, with credentials configured on the workers.
    Git,
}

impl Provider {
    pub const fn as_str(self) -> &'static str {
        match self {
            Provider::Git => "git",
        }
    }
}

impl FromStr for Provider {
    type Err = UnknownVariant;
    fn from_str(raw: &str) -> Result<Provider, UnknownVariant> {
        match raw {
            "git" => Ok(Provider::Git),
            _ => Err(UnknownVariant { kind: "provider", value: raw.to_owned(), expected: "git" }),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidRepositoryUrl {
    #[error("{field} {value:?} is not a URL with a scheme of https, http, ssh, git or file")]
    NotAUrl { field: &'static str, value: String },
    #[error("{field} must not carry a password or token; configure credentials on the workers")]
    HasCredentials { field: &'static str },
    #[error("{field} must be at most 2048 characters")]
    TooLong { field: &'static str },
    #[error("{field} must name a repository path, like https://host/owner/name")]
    NoPath { field: &'static str },
}

const SCHEMES: [&str; 5] = ["https", "http", "ssh", "git", "file"];

/// Checks the shared rules of repository and clone URLs; returns (scheme, host, path).
fn split_url<'a>(
    raw: &'a str,
    field: &'static str,
) -> Result<(&'a str, &'a str, &'a str), InvalidRepositoryUrl> {
    if raw.len() > 2048 {
        return Err(InvalidRepositoryUrl::TooLong { field });
    }
    let not_a_url = || InvalidRepositoryUrl::NotAUrl { field, value: raw.to_owned() };
    if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(not_a_url());
    }
    let (scheme, rest) = raw.split_once("://").ok_or_else(not_a_url)?;
    if !SCHEMES.iter().any(|known| scheme.eq_ignore_ascii_case(known)) {
        return Err(not_a_url());
    }
    let (authority, path) = match rest.find('/') {
        Some(idx) => rest.split_at(idx),
        None => (rest, ""),
    };
    if let Some((userinfo, _)) = authority.rsplit_once('@')
        && userinfo.contains(':')
    {
        return Err(InvalidRepositoryUrl::HasCredentials { field });
    }
    if path.trim_matches('/').is_empty() {
        return Err(InvalidRepositoryUrl::NoPath { field });
    }
    if !scheme.eq_ignore_ascii_case("file") && authority.is_empty() {
        return Err(not_a_url());
    }
    Ok((scheme, authority, path))
}

/// A repository's identity. Normalized so that `https://GitHub.com/acme/widgets.git/` and
/// `https://github.com/acme/widgets` are the same repository: lowercase scheme and host, no
/// trailing `/` or `.git`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepositoryUrl(String);

impl RepositoryUrl {
    pub fn parse(raw: &str) -> Result<RepositoryUrl, InvalidRepositoryUrl> {
        let (scheme, authority, path) = split_url(raw.trim(), "url")?;
        let path = path.trim_end_matches('/');
        let path = path.strip_suffix(".git").unwrap_or(path);
        Ok(RepositoryUrl(format!(
            "{}://{}{}",
            scheme.to_ascii_lowercase(),
            authority.to_ascii_lowercase(),
            path
        )))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `(owner, name)`: the last two path segments (`acme`, `widgets`); for a one-segment path
    /// the owner is empty.
    pub fn owner_and_name(&self) -> (&str, &str) {
        let path =
            self.0.split_once("://").map_or("", |(_, rest)| rest.split_once('/').map_or("", |(_, p)| p));
        let mut segments = path.rsplit('/').filter(|s| !s.is_empty());
        let name = segments.next().unwrap_or("");
        let owner = segments.next().unwrap_or("");
        (owner, name)
    }
}

impl fmt::Display for RepositoryUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RepositoryUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// Where a worker fetches and pushes. Kept as given (a path's case matters on disk).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CloneUrl(String);

impl CloneUrl {
    pub fn parse(raw: &str) -> Result<CloneUrl, InvalidRepositoryUrl> {
        split_url(raw.trim(), "cloneUrl")?;
        Ok(CloneUrl(raw.trim().to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for CloneUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_urls_are_normalized() {
        for raw in [
            "https://github.com/acme/widgets",
            "https://GitHub.com/acme/widgets.git",
            "https://github.com/acme/widgets/",
            "  HTTPS://github.com/acme/widgets.git/ ",
        ] {
            assert_eq!(
                RepositoryUrl::parse(raw).map(|u| u.0),
                Ok("https://github.com/acme/widgets".into()),
                "{raw}"
            );
        }
        let url = RepositoryUrl::parse("https://git.acme.test/platform/tools/widgets").expect("valid");
        assert_eq!(url.owner_and_name(), ("tools", "widgets"));
        let local = RepositoryUrl::parse("file:///srv/git/widgets.git").expect("valid");
        assert_eq!(local.as_str(), "file:///srv/git/widgets");
    }

    #[test]
    fn rejects_non_urls_and_credentials() {
        for raw in [
            "",
            "acme/widgets",
            "ftp://host/x",
            "https://github.com",
            "https://github.com/",
            "https://a b/c",
            "https:///x",
        ] {
            assert!(RepositoryUrl::parse(raw).is_err(), "{raw:?}");
        }
        assert_eq!(
            RepositoryUrl::parse("https://user:ghp_secret@github.com/acme/widgets"),
            Err(InvalidRepositoryUrl::HasCredentials { field: "url" })
        );
        assert!(CloneUrl::parse("ssh://git@git.acme.test/widgets.git").is_ok(), "a user name alone is fine");
        assert!(CloneUrl::parse("https://x:token@host/repo").is_err());
        assert!(CloneUrl::parse(&format!("https://host/{}", "a".repeat(2048))).is_err());
    }

    #[test]
    fn scopes_and_providers_parse() {
        assert_eq!("team".parse(), Ok(IntegrationScope::Team));
        assert_eq!("personal".parse(), Ok(IntegrationScope::Personal));
        assert!("org".parse::<IntegrationScope>().is_err());
        assert_eq!("git".parse(), Ok(Provider::Git));
        assert!("gitlab".parse::<Provider>().is_err());
    }
}
