//! Who may do what: bearer tokens with roles, read from a tokens file that holds only their
//! SHA-256 hashes.
//!
//! ```toml
//! [[token]]
//! name = "tap-3"        # for logs and rate limits
//! role = "tap"          # tap | reader | admin
//! tap_id = 3            # taps only: the one tap it may pour for
//! venue = "dock-street" # optional: the one venue it sees and acts in (a tap's: the
//!                       # default venue if none; a reader's or admin's: every venue)
//! sha256 = "9f86d0..."  # hex SHA-256 of the token
//! ```
//!
//! A presented token is hashed and compared with every entry in constant time, so the
//! time taken says nothing about which hash bytes matched. The file is re-read on SIGHUP.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use crate::config::Config;

/// What a credential may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Pour for this tap only, read the glass list, subscribe.
    Tap(u32),
    /// Read everything and subscribe.
    Reader,
    /// Everything, deletions included.
    Admin,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Role::Tap(tap) => write!(f, "tap {tap}"),
            Role::Reader => f.write_str("reader"),
            Role::Admin => f.write_str("admin"),
        }
    }
}

/// An entry of the tokens file.
#[derive(Debug, Clone)]
pub struct Credential {
    pub name: String,
    pub role: Role,
    /// The venue it is confined to (none: a tap token's is the default venue; a reader
    /// or admin sees the chain).
    pub venue: Option<Arc<str>>,
    hash: [u8; 32],
}

/// What a request wants to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Read pours, the report.
    Read,
    /// Read the glass list (taps need it to know what they pour).
    Glasses,
    /// Open a WebSocket subscription.
    Subscribe,
    /// Post a pour for this tap.
    Pour(u32),
    /// Delete a pour.
    Delete,
    /// Tap, correct and finish kegs.
    Manage,
    /// Read what is the whole chain's (the metrics): not for a token confined to a venue.
    ChainRead,
    /// Change what is the whole chain's (venues, webhooks): a chain-wide admin only.
    ChainManage,
}

/// Who is asking.
#[derive(Debug, Clone)]
pub enum Identity {
    /// No tokens file: the server is open, as the prototype was.
    Open,
    /// No token, on a public path: reads only.
    Anonymous,
    /// A known token.
    Token(Arc<Credential>),
}

impl Identity {
    /// Whether this identity may do `need`.
    pub fn allows(&self, need: Need) -> bool {
        match self {
            Identity::Open => true,
            Identity::Anonymous => matches!(
                need,
                Need::Read | Need::Glasses | Need::Subscribe | Need::ChainRead
            ),
            Identity::Token(credential) => {
                let chain = credential.venue.is_none();
                match credential.role {
                    Role::Admin => chain || !matches!(need, Need::ChainRead | Need::ChainManage),
                    Role::Reader => match need {
                        Need::Read | Need::Glasses | Need::Subscribe => true,
                        Need::ChainRead => chain,
                        _ => false,
                    },
                    Role::Tap(tap) => match need {
                        Need::Pour(other) => other == tap,
                        Need::Glasses | Need::Subscribe => true,
                        Need::Read
                        | Need::Delete
                        | Need::Manage
                        | Need::ChainRead
                        | Need::ChainManage => false,
                    },
                }
            }
        }
    }

    /// For messages: `token "tap-3" (tap 3)`.
    pub fn describe(&self) -> String {
        match self {
            Identity::Open => "anyone".into(),
            Identity::Anonymous => "a request without a token".into(),
            Identity::Token(c) => match &c.venue {
                Some(venue) => format!("token {:?} ({} of venue {venue})", c.name, c.role),
                None => format!("token {:?} ({})", c.name, c.role),
            },
        }
    }

    /// The venue it sees and acts in, if it is confined to one: a scoped token's, or a
    /// tap token's (`default`: the venue of a tap token that names none).
    pub fn venue<'a>(&'a self, default: &'a Arc<str>) -> Option<&'a Arc<str>> {
        match self {
            Identity::Token(c) => match (&c.venue, c.role) {
                (Some(venue), _) => Some(venue),
                (None, Role::Tap(_)) => Some(default),
                (None, Role::Reader | Role::Admin) => None,
            },
            Identity::Open | Identity::Anonymous => None,
        }
    }

    /// The key requests are rate-limited under, if any (the peer address is limited apart).
    pub fn limit_key(&self) -> Option<String> {
        match self {
            Identity::Token(c) => Some(format!("token:{}", c.name)),
            Identity::Open | Identity::Anonymous => None,
        }
    }
}

/// Why a tokens file was refused.
#[derive(Debug, thiserror::Error)]
pub enum TokensError {
    #[error("cannot read tokens file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("tokens file {path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("--require-auth is set but no tokens file is given (--tokens or ALTAIR_TOKENS_FILE)")]
    Required,
    #[error(
        "tokens file {path} has no tokens: it would lock everyone out (add one with `altair-server token new`)"
    )]
    Empty { path: PathBuf },
    #[error("tokens file {path} has no admin token left: no one could manage the server")]
    NoAdmin { path: PathBuf },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileEntry {
    name: String,
    role: String,
    tap_id: Option<u32>,
    venue: Option<String>,
    sha256: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokensFile {
    #[serde(default)]
    token: Vec<FileEntry>,
}

/// The credentials of one reading of the tokens file.
#[derive(Debug, Default)]
pub struct TokenSet {
    credentials: Vec<Arc<Credential>>,
}

impl TokenSet {
    /// Reads and checks a tokens file.
    pub fn load(path: &Path) -> Result<TokenSet, TokensError> {
        let text = std::fs::read_to_string(path).map_err(|source| TokensError::Read {
            path: path.to_owned(),
            source,
        })?;
        TokenSet::parse(&text).map_err(|message| TokensError::Invalid {
            path: path.to_owned(),
            message,
        })
    }

    fn parse(text: &str) -> Result<TokenSet, String> {
        let file: TokensFile = toml::from_str(text).map_err(|e| e.to_string().trim().to_owned())?;
        let mut credentials: Vec<Arc<Credential>> = Vec::new();
        for entry in file.token {
            let name = entry.name;
            let role = match (entry.role.as_str(), entry.tap_id) {
                ("tap", Some(tap)) if tap >= 1 => Role::Tap(tap),
                ("tap", _) => return Err(format!("token {name:?}: a tap token needs tap_id >= 1")),
                ("reader", None) => Role::Reader,
                ("admin", None) => Role::Admin,
                ("reader" | "admin", Some(_)) => {
                    return Err(format!("token {name:?}: only tap tokens have a tap_id"));
                }
                (other, _) => {
                    return Err(format!(
                        "token {name:?}: unknown role {other:?} (tap, reader or admin)"
                    ));
                }
            };
            let hash = parse_hex(&entry.sha256).ok_or_else(|| {
                format!("token {name:?}: sha256 must be 64 hex digits (the token's SHA-256)")
            })?;
            if credentials.iter().any(|c| c.name == name) {
                return Err(format!("token name {name:?} is used twice"));
            }
            let venue = match entry.venue {
                Some(venue) => Some(
                    crate::config::venue_id(&venue)
                        .map_err(|e| format!("token {name:?}: {e}"))?
                        .into(),
                ),
                None => None,
            };
            credentials.push(Arc::new(Credential {
                name,
                role,
                venue,
                hash,
            }));
        }
        Ok(TokenSet { credentials })
    }

    /// The credential of `token`, comparing its hash with every entry in constant time.
    pub fn find(&self, token: &str) -> Option<Arc<Credential>> {
        let hash = sha256(token.as_bytes());
        let mut found = None;
        for credential in &self.credentials {
            if constant_time_eq(&credential.hash, &hash) {
                found = Some(credential.clone());
            }
        }
        found
    }

    /// Whether `credential`'s token is still here, with the same role and venue.
    pub fn holds(&self, credential: &Credential) -> bool {
        self.credentials.iter().any(|c| {
            constant_time_eq(&c.hash, &credential.hash)
                && c.role == credential.role
                && c.venue == credential.venue
        })
    }

    pub fn len(&self) -> usize {
        self.credentials.len()
    }

    /// Every venue a token names, once each.
    pub fn venues(&self) -> Vec<Arc<str>> {
        let mut venues: Vec<Arc<str>> = self
            .credentials
            .iter()
            .filter_map(|c| c.venue.clone())
            .collect();
        venues.sort_unstable();
        venues.dedup();
        venues
    }

    pub fn is_empty(&self) -> bool {
        self.credentials.is_empty()
    }
}

/// The server's authentication state.
#[derive(Debug)]
pub struct Auth {
    /// None: open mode.
    file: Option<PathBuf>,
    /// The tokens in force; holders of a receiver (open WebSockets) hear of every reload.
    tokens: watch::Sender<Arc<TokenSet>>,
    public: Vec<String>,
}

/// Why a request was not authenticated (answered 401).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthFailure {
    Missing,
    Malformed,
    Unknown,
}

impl fmt::Display for AuthFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AuthFailure::Missing => "a bearer token is required (Authorization: Bearer <token>)",
            AuthFailure::Malformed => "malformed Authorization header; use: Bearer <token>",
            AuthFailure::Unknown => "unknown or revoked token",
        })
    }
}

impl Auth {
    /// Tokens from the tokens file, or an open server (loudly) when there is none.
    pub fn from_config(config: &Config) -> Result<Auth, TokensError> {
        match &config.tokens {
            Some(file) => {
                let auth = Auth::from_file(file, config.public.clone())?;
                log::info!(
                    "auth: {} tokens from {}; public without a token: {}",
                    auth.token_count(),
                    file.display(),
                    config.public.join(", ")
                );
                Ok(auth)
            }
            None if config.require_auth => Err(TokensError::Required),
            None => {
                log::warn!(
                    "NO TOKENS FILE: the server is open; anyone who can reach it may post pours as any tap and delete history (set --tokens, or --require-auth to forbid this)"
                );
                Ok(Auth::open())
            }
        }
    }

    /// No tokens: everyone may do everything.
    pub fn open() -> Auth {
        Auth {
            file: None,
            tokens: watch::Sender::new(Arc::default()),
            public: Vec::new(),
        }
    }

    /// Tokens from `file`; requests to `public` paths may read without one.
    pub fn from_file(file: &Path, public: Vec<String>) -> Result<Auth, TokensError> {
        let tokens = TokenSet::load(file)?;
        if tokens.is_empty() {
            return Err(TokensError::Empty {
                path: file.to_owned(),
            });
        }
        Ok(Auth {
            file: Some(file.to_owned()),
            tokens: watch::Sender::new(Arc::new(tokens)),
            public,
        })
    }

    /// Whether requests need tokens.
    pub fn is_open(&self) -> bool {
        self.file.is_none()
    }

    /// Paths readable without a token (when there are tokens).
    pub fn public(&self) -> &[String] {
        &self.public
    }

    /// How many tokens are loaded.
    pub fn token_count(&self) -> usize {
        self.tokens().len()
    }

    /// Re-reads the tokens file; on error the tokens in force stay. Returns the count. A
    /// file that would lock everyone out (no tokens) or leave no admin where there was one
    /// is refused: a half-saved edit must not take the server from its operators.
    pub fn reload(&self) -> Result<usize, TokensError> {
        let Some(file) = &self.file else {
            return Ok(0);
        };
        let tokens = TokenSet::load(file)?;
        if tokens.is_empty() {
            return Err(TokensError::Empty {
                path: file.to_owned(),
            });
        }
        let admin = |set: &TokenSet| set.credentials.iter().any(|c| c.role == Role::Admin);
        if admin(&self.tokens()) && !admin(&tokens) {
            return Err(TokensError::NoAdmin {
                path: file.to_owned(),
            });
        }
        let count = tokens.len();
        self.tokens.send_replace(Arc::new(tokens));
        Ok(count)
    }

    fn tokens(&self) -> Arc<TokenSet> {
        self.tokens.borrow().clone()
    }

    /// The tokens in force, changing with every reload.
    pub fn watch(&self) -> watch::Receiver<Arc<TokenSet>> {
        self.tokens.subscribe()
    }

    /// Who sent a request: from its `Authorization` header, else (WebSockets only) a
    /// `token` query parameter.
    pub fn identify(
        &self,
        path: &str,
        authorization: Option<&[u8]>,
        query_token: Option<&str>,
    ) -> Result<Identity, AuthFailure> {
        if self.is_open() {
            return Ok(Identity::Open);
        }
        let token = match authorization {
            Some(value) => Some(bearer(value).ok_or(AuthFailure::Malformed)?),
            None => query_token,
        };
        match token {
            Some(token) => self
                .tokens()
                .find(token)
                .map(Identity::Token)
                .ok_or(AuthFailure::Unknown),
            None if self.public.iter().any(|p| p == path) => Ok(Identity::Anonymous),
            None => Err(AuthFailure::Missing),
        }
    }
}

/// The token of `Bearer <token>` (scheme case-insensitive), if the header is that.
fn bearer(value: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(value).ok()?.trim();
    let (scheme, token) = text.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() && !token.contains(' '))
        .then_some(token)
}

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

fn parse_hex(text: &str) -> Option<[u8; 32]> {
    let text = text.trim();
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Hex digits of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A new random token (256 bits) and the tokens-file entry for it, confined to `venue` if
/// one is named.
pub fn new_token(
    role: Role,
    venue: Option<&str>,
    name: &str,
) -> Result<(String, String), getrandom::Error> {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret)?;
    let token = format!("altair_{}", hex(&secret));
    let tap_line = match role {
        Role::Tap(tap) => format!("tap_id = {tap}\n"),
        Role::Reader | Role::Admin => String::new(),
    };
    let role_name = match role {
        Role::Tap(_) => "tap",
        Role::Reader => "reader",
        Role::Admin => "admin",
    };
    let venue_line = venue.map_or(String::new(), |v| format!("venue = {v:?}\n"));
    let entry = format!(
        "[[token]]\nname = {name:?}\nrole = \"{role_name}\"\n{tap_line}{venue_line}sha256 = \"{}\"\n",
        hex(&sha256(token.as_bytes()))
    );
    Ok((token, entry))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth_with(entries: &[(Role, &str)]) -> (Auth, Vec<String>) {
        let mut text = String::new();
        let mut tokens = Vec::new();
        for (role, name) in entries {
            let (token, entry) = new_token(*role, None, name).unwrap();
            text.push_str(&entry);
            tokens.push(token);
        }
        let set = TokenSet::parse(&text).unwrap();
        let auth = Auth {
            file: Some("tokens.toml".into()),
            tokens: watch::Sender::new(Arc::new(set)),
            public: vec!["/health".into()],
        };
        (auth, tokens)
    }

    #[test]
    fn new_tokens_are_long_random_and_round_trip_through_the_file() {
        let (a, _) = new_token(Role::Admin, None, "ops").unwrap();
        let (b, _) = new_token(Role::Admin, None, "ops").unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), "altair_".len() + 64, "256 bits");
        let (auth, tokens) = auth_with(&[(Role::Tap(3), "tap-3"), (Role::Reader, "dash")]);
        let bearer = format!("Bearer {}", tokens[0]);
        match auth
            .identify("/api/beers", Some(bearer.as_bytes()), None)
            .unwrap()
        {
            Identity::Token(c) => assert_eq!((c.name.as_str(), c.role), ("tap-3", Role::Tap(3))),
            other => panic!("{other:?}"),
        }
        let lower = format!("bearer {}", tokens[1]);
        assert!(auth.identify("/x", Some(lower.as_bytes()), None).is_ok());
    }

    #[test]
    fn missing_malformed_and_unknown_tokens_fail() {
        let (auth, tokens) = auth_with(&[(Role::Admin, "ops")]);
        assert_eq!(
            auth.identify("/api/beers", None, None).unwrap_err(),
            AuthFailure::Missing
        );
        for bad in ["Bearer", "Bearer ", "Basic abc", "Token x", "Bearer a b"] {
            assert_eq!(
                auth.identify("/api/beers", Some(bad.as_bytes()), None)
                    .unwrap_err(),
                AuthFailure::Malformed,
                "{bad}"
            );
        }
        assert_eq!(
            auth.identify("/api/beers", Some(b"Bearer altair_nope"), None)
                .unwrap_err(),
            AuthFailure::Unknown
        );
        assert!(matches!(
            auth.identify("/health", None, None),
            Ok(Identity::Anonymous)
        ));
        assert!(matches!(
            auth.identify("/sockets/beers", None, Some(&tokens[0])),
            Ok(Identity::Token(_))
        ));
    }

    #[test]
    fn roles_allow_what_the_readme_says() {
        let cred = |role| {
            Identity::Token(Arc::new(Credential {
                venue: None,
                name: "x".into(),
                role,
                hash: [0; 32],
            }))
        };
        let tap = cred(Role::Tap(3));
        assert!(tap.allows(Need::Pour(3)) && !tap.allows(Need::Pour(4)));
        assert!(tap.allows(Need::Subscribe) && tap.allows(Need::Glasses));
        assert!(!tap.allows(Need::Read) && !tap.allows(Need::Delete));
        let reader = cred(Role::Reader);
        assert!(reader.allows(Need::Read) && reader.allows(Need::Subscribe));
        assert!(!reader.allows(Need::Pour(1)) && !reader.allows(Need::Delete));
        assert!(cred(Role::Admin).allows(Need::Delete));
        assert!(Identity::Open.allows(Need::Delete));
        assert!(!Identity::Anonymous.allows(Need::Pour(1)));
    }

    #[test]
    fn bad_files_say_which_entry() {
        for (text, says) in [
            ("[[token]]\nname='a'\nrole='tap'\nsha256='00'\n", "tap_id"),
            (
                "[[token]]\nname='a'\nrole='root'\nsha256='00'\n",
                "unknown role",
            ),
            (
                "[[token]]\nname='a'\nrole='admin'\nsha256='xyz'\n",
                "64 hex",
            ),
            (
                "[[token]]\nname='a'\nrole='admin'\ntap_id=1\nsha256='00'\n",
                "only tap",
            ),
            (
                "[[token]]\nname='a'\nrole='admin'\nsecret='x'\nsha256='00'\n",
                "unknown field",
            ),
        ] {
            let error = TokenSet::parse(text).unwrap_err();
            assert!(error.contains(says), "{text}: {error}");
        }
        let twice = format!(
            "{}{}",
            new_token(Role::Admin, None, "a").unwrap().1,
            new_token(Role::Admin, None, "a").unwrap().1
        );
        assert!(TokenSet::parse(&twice).unwrap_err().contains("twice"));
        assert!(TokenSet::parse("").unwrap().is_empty());
    }
}
