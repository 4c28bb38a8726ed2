//! Accounts and access: users, sessions, API tokens and project roles — what `/api/login`,
//! `/api/session`, `/api/users`, `/api/tokens` and `/api/projects/{pid}/members` carry, and the
//! rules (username and password shape, what each role may do) both sides check.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Shortest password accepted, in characters (NIST SP 800-63B's minimum).
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longest password accepted, in bytes: hashing is deliberately slow, so an enormous one is refused.
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// Longest username accepted, in characters.
pub const MAX_USERNAME_CHARS: usize = 64;
/// Longest API token label accepted, in characters.
pub const MAX_TOKEN_NAME_CHARS: usize = 100;

/// A person's account as every answer shows it (never with a password hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Server-assigned id.
    pub id: i64,
    /// Unique (case-insensitively) login name.
    pub username: String,
    /// Admins manage accounts and own every project.
    pub is_admin: bool,
}

/// `GET /api/session`, and the answer to a login: who is signed in, and the token every
/// cookie-authenticated write must echo in the `x-csrf-token` header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// The signed-in person.
    pub user: User,
    /// This session's anti-forgery token.
    pub csrf_token: String,
}

/// `POST /api/login`, `POST /api/setup` and `POST /api/users`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    /// Login name.
    pub username: String,
    /// The password, in clear over the connection (hashed with argon2id before it is stored).
    pub password: String,
}

impl Credentials {
    /// Checks a new account's name and password by the rules below; the name as stored
    /// (trimmed).
    pub fn validate(&self) -> Result<String, AccountError> {
        let username = validate_username(&self.username)?;
        validate_password(&self.password)?;
        Ok(username)
    }
}

impl fmt::Debug for Credentials {
    // A password never reaches a log line through `{:?}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// `POST /api/users` (admin): a new account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewUser {
    /// Login name and first password.
    #[serde(flatten)]
    pub credentials: Credentials,
    /// Whether the account manages accounts and owns every project.
    #[serde(default)]
    pub is_admin: bool,
}

/// `GET /api/setup`: whether the studio still waits for its first admin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetupState {
    /// True while no account exists; `POST /api/setup` works only then.
    pub needed: bool,
}

/// `POST /api/me/password`: changing one's own password signs out every other session.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasswordChange {
    /// The password in use now.
    pub current: String,
    /// The new one.
    pub new: String,
}

impl fmt::Debug for PasswordChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordChange { .. }")
    }
}

/// An API token as listed (the secret itself is shown once, when created).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiToken {
    /// Server-assigned id (what revoking names).
    pub id: i64,
    /// The owner's label, e.g. "nightly export".
    pub name: String,
    /// Creation time, RFC 3339 UTC.
    pub created_at: String,
    /// Last time a request used it, RFC 3339 UTC.
    pub last_used_at: Option<String>,
}

/// `POST /api/tokens`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewToken {
    /// A label saying what the token is for.
    pub name: String,
}

/// The answer to creating a token: the secret, shown this once, and its listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedToken {
    /// Send as `Authorization: Bearer <token>`.
    pub token: String,
    /// How it is listed from now on.
    pub info: ApiToken,
}

/// A person's role in one project; each includes what the ones below it may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Sees everything in the project, changes nothing.
    Viewer,
    /// Draws and edits boxes, submits images for review.
    Annotator,
    /// Also approves and rejects submitted images.
    Reviewer,
    /// Also edits the project, its images, models and jobs, and who is a member.
    Owner,
}

impl Role {
    /// Every role, least first.
    pub const ALL: [Role; 4] = [Role::Viewer, Role::Annotator, Role::Reviewer, Role::Owner];

    /// The wire name, e.g. `annotator`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Annotator => "annotator",
            Role::Reviewer => "reviewer",
            Role::Owner => "owner",
        }
    }

    /// Parses a wire name.
    pub fn parse(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|role| role.as_str() == name)
    }

    /// Whether this role may do what `needed` may.
    pub fn allows(self, needed: Role) -> bool {
        self >= needed
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One member of a project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The member's account id.
    pub user_id: i64,
    /// Their login name.
    pub username: String,
    /// What they may do in the project.
    pub role: Role,
}

/// One person's work in a project (`GET /api/projects/{pid}/contributions`): what they
/// submitted and what became of it, and the review decisions they made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contribution {
    /// Their login name.
    pub username: String,
    /// Their role, when they are still a member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// Images whose latest submission is theirs (waiting, approved or rejected).
    pub labeled: u64,
    /// Of those, approved.
    pub approved: u64,
    /// Of those, rejected (to fix).
    pub rejected: u64,
    /// Approvals and rejections they made as a reviewer.
    pub reviewed: u64,
    /// Unlabeled images assigned to them.
    #[serde(default)]
    pub to_do: u64,
}

/// Longest an invite link may stay valid, in hours (30 days).
pub const MAX_INVITE_HOURS: u32 = 30 * 24;

/// `POST /api/projects/{pid}/invites` (owner): a link whoever opens it may join with, until it
/// expires or is revoked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewInvite {
    /// The role people joining through it get (never lowering one they already have).
    pub role: Role,
    /// How long it stays valid, 1 to [`MAX_INVITE_HOURS`].
    pub hours: u32,
}

/// An invite link as its project's owners see it (the secret is shown once, on creation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invite {
    /// Its id, for revoking it.
    pub id: i64,
    /// The role it gives.
    pub role: Role,
    /// Who made it.
    pub created_by: String,
    /// When it stops working, RFC 3339 UTC.
    pub expires_at: String,
    /// How many people joined through it.
    pub joined: u32,
}

/// The answer to [`NewInvite`]: the invite, and the secret its link carries (`/invite/<secret>`),
/// which is not stored and cannot be shown again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedInvite {
    /// The invite.
    pub invite: Invite,
    /// The link's secret.
    pub secret: String,
}

/// `GET /api/invites/{secret}` (anyone with the link): what it offers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InviteOffer {
    /// The project's name.
    pub project_name: String,
    /// The role it gives.
    pub role: Role,
    /// When it stops working, RFC 3339 UTC.
    pub expires_at: String,
}

/// `POST /api/invites/{secret}/accept`: joins as the signed-in account, or — nobody signed in —
/// creates `account` and signs it in. A body with anything else is refused, never read as "join
/// as whoever is signed in".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcceptInvite {
    /// A new account's name and password, when nobody is signed in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<Credentials>,
}

/// The answer to [`AcceptInvite`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinedProject {
    /// The project joined.
    pub project_id: i64,
    /// The role held there now.
    pub role: Role,
    /// The new account's session, when one was created (its cookie is set too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<Session>,
}

/// `POST /api/projects/{pid}/members` (owner): add someone, or change their role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewMember {
    /// The account to add.
    pub username: String,
    /// The role it gets.
    pub role: Role,
}

/// Why a username, password or token label is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountError {
    /// Empty, too long, or with characters outside letters, digits and `._-`.
    InvalidUsername,
    /// Shorter than [`MIN_PASSWORD_CHARS`].
    PasswordTooShort,
    /// Longer than [`MAX_PASSWORD_BYTES`].
    PasswordTooLong,
    /// Empty or longer than [`MAX_TOKEN_NAME_CHARS`].
    InvalidTokenName,
}

impl AccountError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            AccountError::InvalidUsername => "invalid_username",
            AccountError::PasswordTooShort => "password_too_short",
            AccountError::PasswordTooLong => "password_too_long",
            AccountError::InvalidTokenName => "invalid_token_name",
        }
    }
}

impl fmt::Display for AccountError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AccountError::InvalidUsername => write!(
                f,
                "A username is 1 to {MAX_USERNAME_CHARS} letters, digits, dots, dashes or underscores."
            ),
            AccountError::PasswordTooShort => {
                write!(f, "A password needs at least {MIN_PASSWORD_CHARS} characters.")
            }
            AccountError::PasswordTooLong => write!(f, "A password may have at most {MAX_PASSWORD_BYTES} bytes."),
            AccountError::InvalidTokenName => {
                write!(f, "Name the token in 1 to {MAX_TOKEN_NAME_CHARS} characters.")
            }
        }
    }
}

impl std::error::Error for AccountError {}

/// The username trimmed, if it is one: 1–64 ASCII letters, digits, `.`, `-` or `_` (names that
/// are safe in URLs, logs and file names, and cannot impersonate another by look-alike letters).
pub fn validate_username(name: &str) -> Result<String, AccountError> {
    let name = name.trim();
    let valid = !name.is_empty()
        && name.chars().count() <= MAX_USERNAME_CHARS
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if valid {
        Ok(name.to_owned())
    } else {
        Err(AccountError::InvalidUsername)
    }
}

/// Checks a new password's length (not trimmed: spaces are part of a passphrase).
pub fn validate_password(password: &str) -> Result<(), AccountError> {
    if password.len() > MAX_PASSWORD_BYTES {
        Err(AccountError::PasswordTooLong)
    } else if password.chars().count() < MIN_PASSWORD_CHARS {
        Err(AccountError::PasswordTooShort)
    } else {
        Ok(())
    }
}

/// The token label trimmed, if it is one.
pub fn validate_token_name(name: &str) -> Result<String, AccountError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_TOKEN_NAME_CHARS {
        Err(AccountError::InvalidTokenName)
    } else {
        Ok(name.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_include_the_ones_below() {
        assert!(Role::Owner.allows(Role::Reviewer));
        assert!(Role::Reviewer.allows(Role::Annotator));
        assert!(Role::Annotator.allows(Role::Viewer));
        assert!(!Role::Annotator.allows(Role::Reviewer));
        assert!(!Role::Viewer.allows(Role::Annotator));
        assert_eq!(Role::parse("reviewer"), Some(Role::Reviewer));
        assert_eq!(Role::parse("admin"), None);
    }

    #[test]
    fn usernames_are_plain_ascii() {
        assert_eq!(validate_username("  ana.lee_2 "), Ok("ana.lee_2".into()));
        for bad in ["", "   ", "ana lee", "<script>", "аdmin", &"x".repeat(65)] {
            assert_eq!(validate_username(bad), Err(AccountError::InvalidUsername), "{bad:?}");
        }
    }

    #[test]
    fn passwords_have_a_length_window() {
        assert_eq!(validate_password("1234567"), Err(AccountError::PasswordTooShort));
        assert_eq!(validate_password("12345678"), Ok(()));
        // Eight characters, more bytes: counted as characters.
        assert_eq!(validate_password("éééééééé"), Ok(()));
        assert_eq!(validate_password(&"x".repeat(1025)), Err(AccountError::PasswordTooLong));
    }

    #[test]
    fn credentials_never_print_the_password() {
        let credentials = Credentials {
            username: "ana".into(),
            password: "hunter2hunter2".into(),
        };
        assert!(!format!("{credentials:?}").contains("hunter2"));
    }
}
