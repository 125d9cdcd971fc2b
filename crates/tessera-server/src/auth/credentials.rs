//! Reading the presented key out of the `Authorization` header.

use base64::Engine as _;

/// How the key was sent, for the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Bearer,
    Basic,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Bearer => "bearer",
            Scheme::Basic => "basic",
        }
    }
}

/// What the header held. `Malformed` covers unknown schemes and undecodable Basic values.
#[derive(Debug, PartialEq, Eq)]
pub enum Presented {
    Missing,
    Malformed,
    Key { scheme: Scheme, key: String },
}

/// `Bearer KEY`, or `Basic base64(KEY:)`: Cursor's convention puts the key in the user name and
/// leaves the password empty. Scheme names are case-insensitive (RFC 9110).
pub fn read_authorization(header: Option<&[u8]>) -> Presented {
    let Some(raw) = header else { return Presented::Missing };
    let Ok(text) = std::str::from_utf8(raw) else { return Presented::Malformed };
    let Some((scheme, value)) = text.trim().split_once(' ') else { return Presented::Malformed };
    let value = value.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return Presented::Key { scheme: Scheme::Bearer, key: value.to_owned() };
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(value) else {
            return Presented::Malformed;
        };
        let Ok(decoded) = String::from_utf8(decoded) else { return Presented::Malformed };
        return match decoded.split_once(':') {
            Some((user, "")) => Presented::Key { scheme: Scheme::Basic, key: user.to_owned() },
            _ => Presented::Malformed,
        };
    }
    Presented::Malformed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user_pass: &str) -> String {
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(user_pass))
    }

    #[test]
    fn reads_both_schemes() {
        assert_eq!(
            read_authorization(Some(b"Bearer tessera_u_abc")),
            Presented::Key { scheme: Scheme::Bearer, key: "tessera_u_abc".into() }
        );
        assert_eq!(
            read_authorization(Some(b"bearer   tessera_u_abc ")),
            Presented::Key { scheme: Scheme::Bearer, key: "tessera_u_abc".into() }
        );
        assert_eq!(
            read_authorization(Some(basic("tessera_u_abc:").as_bytes())),
            Presented::Key { scheme: Scheme::Basic, key: "tessera_u_abc".into() }
        );
    }

    #[test]
    fn rejects_the_rest() {
        assert_eq!(read_authorization(None), Presented::Missing);
        assert_eq!(read_authorization(Some(b"tessera_u_abc")), Presented::Malformed);
        assert_eq!(read_authorization(Some(b"Token abc")), Presented::Malformed);
        assert_eq!(read_authorization(Some(b"Basic !!!")), Presented::Malformed);
        assert_eq!(read_authorization(Some(basic("key:password").as_bytes())), Presented::Malformed);
        assert_eq!(read_authorization(Some(basic("no-colon").as_bytes())), Presented::Malformed);
    }
}
