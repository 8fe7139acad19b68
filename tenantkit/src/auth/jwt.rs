//! JWT bearer tokens: claims, keys, issuing and verifying.

use std::fmt;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::{Error, Result, Role, TenantId, UserId, store::UserRef};

/// What a tenantkit token claims.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The subject: a user id, or a name for a platform admin or a service.
    pub sub: String,
    /// The tenant the token is for; absent only on platform-admin tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<TenantId>,
    /// What the bearer may do.
    pub role: TokenRole,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
    /// Issue time, seconds since the Unix epoch.
    #[serde(default)]
    pub iat: u64,
    /// Not before, seconds since the Unix epoch; checked with the same
    /// leeway as `exp` when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// The user's e-mail, for tokens of an external identity provider
    /// mapped with [`UserClaim::Email`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

/// Which claim of a tenant token names the user it acts for. The user must
/// exist in the token's tenant; the effective role is the lesser of the
/// token's role and the user's current role.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum UserClaim {
    /// `sub` is the tenantkit user id (tokens tenantkit issues).
    #[default]
    Sub,
    /// The `email` claim names the user (tokens of an external identity
    /// provider whose `sub` is its own identifier).
    Email,
}

impl UserClaim {
    /// The user `claims` name, or why they name none.
    pub fn user_of(self, claims: &Claims) -> Result<UserRef, &'static str> {
        self.user_named(&claims.sub, claims.email.as_deref())
    }

    /// The user a token with subject `sub` and claim `email` names.
    pub(super) fn user_named(
        self,
        sub: &str,
        email: Option<&str>,
    ) -> Result<UserRef, &'static str> {
        match self {
            UserClaim::Sub => sub
                .parse::<UserId>()
                .map(UserRef::Id)
                .map_err(|_| "the token's subject is not a user of this tenant"),
            UserClaim::Email => email
                .filter(|e| !e.is_empty())
                .map(|e| UserRef::Email(e.to_ascii_lowercase()))
                .ok_or("the token has no `email` claim naming a user"),
        }
    }
}

impl std::str::FromStr for UserClaim {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "sub" => Ok(UserClaim::Sub),
            "email" => Ok(UserClaim::Email),
            other => Err(Error::Misconfigured(format!(
                "unknown user claim `{other}`: use `sub` or `email`"
            ))),
        }
    }
}

/// The role a token carries: a tenant role, or platform administration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenRole {
    /// A tenant member.
    Member,
    /// A tenant admin.
    Admin,
    /// A tenant owner.
    Owner,
    /// Manages tenants; belongs to no tenant.
    PlatformAdmin,
}

impl TokenRole {
    /// The tenant role, or `None` for a platform admin.
    pub fn tenant_role(self) -> Option<Role> {
        match self {
            TokenRole::Member => Some(Role::Member),
            TokenRole::Admin => Some(Role::Admin),
            TokenRole::Owner => Some(Role::Owner),
            TokenRole::PlatformAdmin => None,
        }
    }
}

impl From<Role> for TokenRole {
    fn from(role: Role) -> Self {
        match role {
            Role::Member => TokenRole::Member,
            Role::Admin => TokenRole::Admin,
            Role::Owner => TokenRole::Owner,
        }
    }
}

/// Why a token was refused. Shown to clients only as "invalid token".
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenError {
    /// The token's `exp` has passed.
    #[error("token expired")]
    Expired,
    /// The token's `nbf` has not come yet.
    #[error("token not yet valid")]
    NotYetValid,
    /// Malformed, wrongly signed, wrong algorithm or missing claims.
    #[error("invalid token: {0}")]
    Invalid(String),
}

/// The keys tokens are verified (and optionally issued) with.
///
/// ```
/// use tenantkit::auth::{Claims, JwtKeys, TokenRole};
///
/// let keys = JwtKeys::hs256(b"a secret of at least thirty-two bytes!!").unwrap();
/// let token = keys.issue("user-1", None, TokenRole::PlatformAdmin, 3600).unwrap();
/// let claims: Claims = keys.verify(&token).unwrap();
/// assert_eq!(claims.sub, "user-1");
///
/// let other = JwtKeys::hs256(b"another secret of thirty-two bytes!!!").unwrap();
/// assert!(other.verify(&token).is_err());
/// ```
#[derive(Clone)]
pub struct JwtKeys {
    algorithm: Algorithm,
    decoding: DecodingKey,
    encoding: Option<EncodingKey>,
    validation: Validation,
}

impl fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtKeys")
            .field("algorithm", &self.algorithm)
            .field("can_issue", &self.encoding.is_some())
            .finish_non_exhaustive()
    }
}

/// The shortest HS256 secret accepted (RFC 7518 §3.2: at least the hash size).
pub const MIN_SECRET_LEN: usize = 32;

impl JwtKeys {
    /// HS256 with a shared secret of at least [`MIN_SECRET_LEN`] bytes; can issue and verify.
    pub fn hs256(secret: &[u8]) -> Result<Self> {
        if secret.len() < MIN_SECRET_LEN {
            return Err(Error::Misconfigured(format!(
                "the JWT secret must be at least {MIN_SECRET_LEN} bytes, got {}",
                secret.len()
            )));
        }
        Ok(Self::with(
            Algorithm::HS256,
            DecodingKey::from_secret(secret),
            Some(EncodingKey::from_secret(secret)),
        ))
    }

    /// RS256 or EdDSA verification from a PEM public key; add
    /// [`JwtKeys::with_private_pem`] to issue as well.
    pub fn public_pem(algorithm: Algorithm, public_pem: &[u8]) -> Result<Self> {
        let decoding = match algorithm {
            Algorithm::RS256 => DecodingKey::from_rsa_pem(public_pem),
            Algorithm::EdDSA => DecodingKey::from_ed_pem(public_pem),
            other => {
                return Err(Error::Misconfigured(format!(
                    "unsupported JWT algorithm {other:?}: use HS256, RS256 or EdDSA"
                )));
            }
        }
        .map_err(|e| Error::Misconfigured(format!("invalid {algorithm:?} public key: {e}")))?;
        Ok(Self::with(algorithm, decoding, None))
    }

    /// Adds the private key that issues tokens (RS256 or EdDSA).
    pub fn with_private_pem(mut self, private_pem: &[u8]) -> Result<Self> {
        let encoding = match self.algorithm {
            Algorithm::RS256 => EncodingKey::from_rsa_pem(private_pem),
            _ => EncodingKey::from_ed_pem(private_pem),
        }
        .map_err(|e| {
            Error::Misconfigured(format!("invalid {:?} private key: {e}", self.algorithm))
        })?;
        self.encoding = Some(encoding);
        Ok(self)
    }

    fn with(algorithm: Algorithm, decoding: DecodingKey, encoding: Option<EncodingKey>) -> Self {
        let mut validation = Validation::new(algorithm);
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.leeway = 30;
        validation.validate_nbf = true;
        Self {
            algorithm,
            decoding,
            encoding,
            validation,
        }
    }

    /// Verifies signature, algorithm and expiry, and returns the claims.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        use jsonwebtoken::errors::ErrorKind;
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                ErrorKind::ImmatureSignature => TokenError::NotYetValid,
                _ => TokenError::Invalid(e.to_string()),
            })
    }

    /// Issues a token valid for `ttl_secs`. A tenant role needs a `tenant`;
    /// a platform-admin token must not have one.
    pub fn issue(
        &self,
        sub: &str,
        tenant: Option<TenantId>,
        role: TokenRole,
        ttl_secs: u64,
    ) -> Result<String> {
        match (role, tenant) {
            (TokenRole::PlatformAdmin, Some(_)) => {
                return Err(Error::invalid(
                    "a platform-admin token belongs to no tenant",
                ));
            }
            (TokenRole::Member | TokenRole::Admin | TokenRole::Owner, None) => {
                return Err(Error::invalid("a tenant role needs a tenant"));
            }
            _ => {}
        }
        let now = jsonwebtoken::get_current_timestamp();
        let claims = Claims {
            sub: sub.to_owned(),
            tenant,
            role,
            exp: now + ttl_secs,
            iat: now,
            nbf: None,
            email: None,
        };
        self.sign(&claims)
    }

    /// Signs arbitrary claims (tests use it to mint expired or odd tokens).
    pub fn sign(&self, claims: &Claims) -> Result<String> {
        let key = self.encoding.as_ref().ok_or_else(|| {
            Error::Misconfigured(
                "no private key configured: these JWT keys can verify but not issue".into(),
            )
        })?;
        jsonwebtoken::encode(&Header::new(self.algorithm), claims, key)
            .map_err(|e| Error::Internal(format!("signing a token failed: {e}")))
    }
}

/// Parses `HS256`, `RS256` or `EdDSA`.
pub fn parse_algorithm(name: &str) -> Result<Algorithm> {
    match name {
        "HS256" => Ok(Algorithm::HS256),
        "RS256" => Ok(Algorithm::RS256),
        "EdDSA" => Ok(Algorithm::EdDSA),
        other => Err(Error::Misconfigured(format!(
            "unsupported JWT algorithm `{other}`: use HS256, RS256 or EdDSA"
        ))),
    }
}
