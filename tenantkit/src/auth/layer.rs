use std::{future::Future, sync::Arc};

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use http::{Extensions, HeaderValue, Request, StatusCode, header};
use tower::Layer;

use super::{
    IssuerToken, Issuers, JwtKeys, Principal, Refusal, TenantIssuers, TokenError, TokenRole,
    UserClaim,
};
use crate::{
    ApiKey, Db, Result, Role, TenantContext, TenantId, TenantSso,
    audit::Actor,
    guard::{Guard, Guarded},
    problem::Problem,
    store::{SecurityEvent, UserAccess, UserRef},
};

/// What [`AuthLayer`] needs from storage: the current state of a token's
/// user, checking API keys, and recording refused requests in the tenant's
/// audit trail. Implemented by [`Db`].
pub trait AuthStore: Clone + Send + Sync + 'static {
    /// The user `user` names in `tenant` with their current role; `None` when
    /// there is no such user. Called on every JWT request: cache it ([`Db`]
    /// keeps it for the access TTL, see [`Db::with_access_ttl`]).
    fn user_access(
        &self,
        tenant: &TenantContext,
        user: &UserRef,
    ) -> impl Future<Output = Result<Option<UserAccess>>> + Send;

    /// The live key of `tenant` that `presented` is, if any.
    fn verify_api_key(
        &self,
        tenant: &TenantContext,
        presented: &str,
    ) -> impl Future<Output = Result<Option<ApiKey>>> + Send;

    /// The tenant issuer `provider` knows as `external_id` (linked with
    /// [`crate::store::Platform::link_external_id`]), if any: how a token of a
    /// trusted issuer whose tenant claim is not a tenant id names its tenant.
    fn tenant_of_external_id(
        &self,
        provider: &str,
        external_id: &str,
    ) -> impl Future<Output = Result<Option<TenantId>>> + Send;

    /// The tenant's own identity provider, if it registered one (see
    /// [`crate::SsoSettings`]). Called for every token naming an
    /// issuer the layer does not trust itself: cache it ([`Db`] keeps it
    /// with the tenant for the access TTL).
    fn tenant_sso(
        &self,
        tenant: &TenantContext,
    ) -> impl Future<Output = Result<Option<Arc<TenantSso>>>> + Send;

    /// Creates the user a token of the tenant's identity provider names on
    /// their first sign-in, with `role` (just-in-time provisioning, audited
    /// as `user.provisioned`); a user who exists by then is returned as is.
    /// [`Db`] applies no user limit; a store that knows the tenant's plan
    /// (`tenantkit_billing::Billing`) applies its limit.
    fn provision_user(
        &self,
        tenant: &TenantContext,
        email: &str,
        role: Role,
    ) -> impl Future<Output = Result<UserAccess>> + Send;

    /// Records a refused request (`auth.failed` or `auth.tenant_mismatch`).
    /// It must not wait on the tenant's writes: [`Db`] counts refusals in
    /// memory and writes them in aggregate a second later, so a flood of bad
    /// credentials cannot serialize the tenant's own writes.
    fn record_refusal(
        &self,
        tenant: &TenantContext,
        refusal: &SecurityEvent,
    ) -> impl Future<Output = Result<()>> + Send;
}

impl AuthStore for Db {
    async fn user_access(
        &self,
        tenant: &TenantContext,
        user: &UserRef,
    ) -> Result<Option<UserAccess>> {
        Db::user_access(self, tenant, user).await
    }

    async fn verify_api_key(
        &self,
        tenant: &TenantContext,
        presented: &str,
    ) -> Result<Option<ApiKey>> {
        // Not even shaped like a key: nothing to look up.
        if crate::api_key::prefix_of(presented).is_none() {
            return Ok(None);
        }
        // Read first (from the access cache when fresh): a wrong key, or a
        // flood of them, takes no write lock.
        let key = self
            .api_key_row(tenant, presented)
            .await?
            .filter(|key| crate::accounts::accepts(key, presented));
        if let Some(key) = &key
            && crate::accounts::api_key_use_is_due(key)
        {
            let mut tx = self.begin(tenant).await?;
            tx.record_api_key_use(key).await?;
            tx.commit().await?;
            // The cached row's last use is now stale: read it afresh next time.
            self.forget_api_key(tenant.id(), presented);
        }
        Ok(key)
    }

    async fn tenant_of_external_id(
        &self,
        provider: &str,
        external_id: &str,
    ) -> Result<Option<TenantId>> {
        self.external_id_owner(provider, external_id).await
    }

    async fn tenant_sso(&self, tenant: &TenantContext) -> Result<Option<Arc<TenantSso>>> {
        Db::tenant_sso(self, tenant).await
    }

    async fn provision_user(
        &self,
        tenant: &TenantContext,
        email: &str,
        role: Role,
    ) -> Result<UserAccess> {
        provision_within(self, tenant, email, role, None).await
    }

    async fn record_refusal(&self, tenant: &TenantContext, refusal: &SecurityEvent) -> Result<()> {
        self.count_refusal(tenant, refusal);
        Ok(())
    }
}

/// Provisions a user ([`crate::TenantTx::provision_user`]) within
/// `max_users`, as the system, retrying a transaction that lost a race (the
/// authentication path is outside any retry layer).
pub async fn provision_within(
    db: &Db,
    tenant: &TenantContext,
    email: &str,
    role: Role,
    max_users: Option<u64>,
) -> Result<UserAccess> {
    let ctx = tenant.clone().with_actor(Actor::System);
    let new = crate::NewUser {
        email: email.to_owned(),
        role,
    };
    let mut attempt = 0;
    loop {
        attempt += 1;
        let run = async {
            let mut tx = db.begin(&ctx).await?;
            let user = tx.provision_user(&new, max_users).await?;
            tx.commit().await?;
            Ok::<_, crate::Error>(user)
        };
        match run.await {
            Ok(user) => {
                return Ok(UserAccess {
                    id: user.id,
                    role: user.role,
                });
            }
            Err(e) if e.is_contention() && attempt < 5 => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Authenticates requests with `Authorization: Bearer <JWT or API key>` or
/// `X-Api-Key: <API key>`, and puts the [`Principal`] and an
/// [`Authenticated`] into request extensions.
///
/// A WebSocket handshake (`Upgrade: websocket`) may instead offer the
/// credential as a subprotocol, `Sec-WebSocket-Protocol: tenantkit.v1,
/// bearer.<JWT or API key>`, since browsers cannot set headers on a
/// WebSocket (see [`WEBSOCKET_PROTOCOL`]).
///
/// Behind [`crate::resolve::TenantLayer`] the credential must belong to the
/// resolved tenant (else `403`); without a resolved tenant only a
/// platform-admin token passes (else `403`). No, malformed, expired,
/// not-yet-valid or wrongly signed credentials get `401` with
/// `WWW-Authenticate: Bearer`.
///
/// A tenant token must name a user of its tenant (by [`UserClaim`]): a token
/// of a deleted user is `401`, and a demoted user acts with the lesser of the
/// token's and their current role. The user is looked up through
/// [`AuthStore::user_access`], which [`Db`] caches for a short TTL.
#[derive(Clone, Debug)]
pub struct AuthLayer<V> {
    jwt: Arc<JwtKeys>,
    issuers: Issuers,
    tenant_issuers: TenantIssuers,
    store: V,
    user_claim: UserClaim,
}

impl<V: AuthStore> AuthLayer<V> {
    /// Verifies JWTs with `jwt`; checks users and API keys and records refusals in `store`.
    pub fn new(jwt: JwtKeys, store: V) -> Self {
        Self {
            jwt: Arc::new(jwt),
            issuers: Issuers::default(),
            tenant_issuers: TenantIssuers::default(),
            store,
            user_claim: UserClaim::default(),
        }
    }

    /// Also accepts tokens of these trusted issuers (OpenID providers),
    /// verified with their published keys; see [`Issuers`]. A token whose
    /// `iss` is one of them is verified only that way.
    pub fn with_issuers(mut self, issuers: Issuers) -> Self {
        self.issuers = issuers;
        self
    }

    /// How tenants' own issuers (single sign-on) are reached: by default
    /// `https` at public addresses only; see [`TenantIssuers::new`]. A token
    /// whose `iss` is the issuer the request's tenant registered is
    /// verified with that issuer's keys and acts in that tenant only.
    pub fn with_tenant_issuers(mut self, tenant_issuers: TenantIssuers) -> Self {
        self.tenant_issuers = tenant_issuers;
        self
    }

    /// Which claim of a tenant token names its user (default [`UserClaim::Sub`]).
    pub fn with_user_claim(mut self, claim: UserClaim) -> Self {
        self.user_claim = claim;
        self
    }
}

impl<S, V: Clone> Layer<S> for AuthLayer<V> {
    type Service = AuthService<S, V>;

    fn layer(&self, inner: S) -> Self::Service {
        Guarded::new(inner, self.clone())
    }
}

/// The service made by [`AuthLayer`].
pub type AuthService<S, V> = Guarded<S, AuthLayer<V>>;

#[derive(Clone)]
enum Credential {
    Jwt(String),
    ApiKey(String),
}

impl Credential {
    fn of(token: &str) -> Self {
        if token.starts_with("tk_") {
            Credential::ApiKey(token.to_owned())
        } else {
            Credential::Jwt(token.to_owned())
        }
    }
}

/// The subprotocol a WebSocket client offers, and the server selects,
/// beside its credential (`bearer.<JWT or API key>`): the server never
/// echoes the credential back.
pub const WEBSOCKET_PROTOCOL: &str = "tenantkit.v1";

/// How a WebSocket handshake offers its credential as a subprotocol.
pub const WEBSOCKET_BEARER_PREFIX: &str = "bearer.";

/// The credential offered as `bearer.<token>` in `Sec-WebSocket-Protocol`,
/// on a WebSocket handshake only.
fn websocket_credential<B>(req: &Request<B>) -> Option<String> {
    let upgrade = req.headers().get(header::UPGRADE)?.to_str().ok()?;
    if !upgrade.eq_ignore_ascii_case("websocket") {
        return None;
    }
    req.headers()
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|p| p.trim().strip_prefix(WEBSOCKET_BEARER_PREFIX))
        .map(str::to_owned)
}

/// The request's credential; `Err` says why the headers are malformed.
fn credential<B>(req: &Request<B>) -> Result<Option<Credential>, &'static str> {
    if let Some(value) = req.headers().get(header::AUTHORIZATION) {
        let value = value
            .to_str()
            .map_err(|_| "the Authorization header is not valid text")?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .ok_or("use `Authorization: Bearer <token or API key>`")?
            .trim();
        return Ok(Some(Credential::of(token)));
    }
    if let Some(value) = req.headers().get("x-api-key") {
        let key = value
            .to_str()
            .map_err(|_| "the X-Api-Key header is not valid text")?;
        return Ok(Some(Credential::ApiKey(key.trim().to_owned())));
    }
    Ok(websocket_credential(req).map(|token| Credential::of(&token)))
}

pub(super) fn unauthorized(detail: &str) -> Problem {
    Problem::new(StatusCode::UNAUTHORIZED, "Unauthorized")
        .with_detail(detail)
        .with_header(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))
}

fn wrong_tenant() -> Problem {
    Problem::new(StatusCode::FORBIDDEN, "Wrong tenant")
        .with_detail("this credential does not belong to the tenant the request is for")
}

/// A refusal: the response, and what the audit trail records.
struct Refused {
    problem: Problem,
    event: SecurityEvent,
}

fn refuse(
    problem: Problem,
    actor: Actor,
    credential: &str,
    claimed_tenant: Option<TenantId>,
) -> Refused {
    let action = if problem.status == StatusCode::FORBIDDEN {
        "auth.tenant_mismatch"
    } else {
        "auth.failed"
    };
    let details = serde_json::json!({
        "status": problem.status.as_u16(),
        "reason": problem.detail,
        "credential": credential,
        "claimed_tenant": claimed_tenant,
    });
    Refused {
        problem,
        event: SecurityEvent {
            action,
            actor,
            details,
        },
    }
}

/// The principal, and when its credential expires (a JWT's `exp`).
type Authentication = (Principal, Option<u64>);

async fn authenticate<V: AuthStore>(
    layer: &AuthLayer<V>,
    credential: Result<Option<Credential>, &'static str>,
    tenant: Option<&TenantContext>,
) -> Result<Authentication, Refused> {
    match credential {
        Err(reason) => Err(refuse(
            unauthorized(reason),
            Actor::Anonymous,
            "malformed",
            None,
        )),
        Ok(None) => Err(refuse(
            unauthorized("authentication required"),
            Actor::Anonymous,
            "none",
            None,
        )),
        Ok(Some(Credential::Jwt(token))) => {
            let iss = Issuers::issuer_of(&token);
            if let Some(iss) = &iss
                && layer.issuers.trusts(iss)
            {
                let verified = layer
                    .issuers
                    .verify_as(iss, &token)
                    .await
                    .map_err(|refusal| refuse(refusal.problem(), Actor::Anonymous, "jwt", None))?;
                return issuer_user(layer, tenant, verified).await;
            }
            // The request's tenant's own issuer, if the token names it.
            if let (Some(iss), Some(ctx)) = (&iss, tenant) {
                let sso = layer.store.tenant_sso(ctx).await.map_err(|e| {
                    refuse(Problem::from(&e), Actor::Anonymous, "jwt", Some(ctx.id()))
                })?;
                if let Some(sso) = sso.filter(|sso| sso.settings.issuer.as_deref() == Some(iss)) {
                    let verified =
                        layer
                            .tenant_issuers
                            .verify(&sso, &token)
                            .await
                            .map_err(|refusal| {
                                refuse(refusal.problem(), Actor::Anonymous, "jwt", Some(ctx.id()))
                            })?;
                    return sso_user(layer, ctx, &sso, verified).await;
                }
            }
            let claims = layer.jwt.verify(&token).map_err(|e| {
                let detail = match e {
                    TokenError::Expired => "the token has expired",
                    TokenError::NotYetValid => "the token is not valid yet",
                    // A token naming an issuer no key of this server verifies.
                    TokenError::Invalid(_) if iss.is_some() && !layer.issuers.is_empty() => {
                        return refuse(
                            Refusal::UntrustedIssuer.problem(),
                            Actor::Anonymous,
                            "jwt",
                            None,
                        );
                    }
                    TokenError::Invalid(_) => "the token is invalid",
                };
                refuse(unauthorized(detail), Actor::Anonymous, "jwt", None)
            })?;
            let (role, claimed) = match (claims.role.tenant_role(), claims.tenant) {
                (Some(role), Some(t)) => (role, Principal::user(t, claims.sub.clone(), role)),
                (None, None) if claims.role == TokenRole::PlatformAdmin => {
                    return match tenant {
                        None => Ok((Principal::platform_admin(claims.sub), Some(claims.exp))),
                        Some(_) => {
                            let principal = Principal::platform_admin(claims.sub);
                            Err(refuse(wrong_tenant(), Actor::from(&principal), "jwt", None))
                        }
                    };
                }
                _ => {
                    let problem = unauthorized("the token's role and tenant do not fit together");
                    return Err(refuse(problem, Actor::Anonymous, "jwt", claims.tenant));
                }
            };
            let Some(ctx) = tenant.filter(|ctx| claimed.tenant == Some(ctx.id())) else {
                return Err(refuse(
                    wrong_tenant(),
                    Actor::from(&claimed),
                    "jwt",
                    claimed.tenant,
                ));
            };
            let principal = current_user(layer, ctx, &claims, role).await?;
            Ok((principal, Some(claims.exp)))
        }
        Ok(Some(Credential::ApiKey(key))) => {
            // A key is looked up inside its tenant, so a key of another tenant
            // is simply not found there.
            let Some(ctx) = tenant else {
                let problem =
                    wrong_tenant().with_detail("API keys act inside their tenant; name it");
                return Err(refuse(problem, Actor::Anonymous, "api_key", None));
            };
            match layer.store.verify_api_key(ctx, &key).await {
                Ok(Some(key)) => Ok((Principal::api_key(&key), None)),
                Ok(None) => Err(refuse(
                    unauthorized("the API key is invalid or revoked"),
                    Actor::Anonymous,
                    "api_key",
                    None,
                )),
                Err(e) => {
                    let problem = Problem::from(&e);
                    Err(refuse(problem, Actor::Anonymous, "api_key", None))
                }
            }
        }
    }
}

/// The principal of a verified token of a trusted issuer: it must name the
/// request's tenant (by id, or by an external id linked under the issuer's
/// name) and a user of it, who acts with their current role, capped by the
/// token's role claim if it has one.
async fn issuer_user<V: AuthStore>(
    layer: &AuthLayer<V>,
    tenant: Option<&TenantContext>,
    token: IssuerToken,
) -> Result<Authentication, Refused> {
    let actor = Actor::User(token.subject.clone());
    let claimed = match token.tenant.as_deref() {
        None => None,
        Some(value) => match value.parse::<TenantId>() {
            Ok(id) => Some(id),
            Err(_) => layer
                .store
                .tenant_of_external_id(&token.issuer, value)
                .await
                .map_err(|e| refuse(Problem::from(&e), actor.clone(), "jwt", None))?,
        },
    };
    let Some(ctx) = tenant.filter(|ctx| claimed == Some(ctx.id())) else {
        let problem = if token.tenant.is_none() {
            unauthorized("the token names no tenant")
        } else {
            wrong_tenant()
        };
        return Err(refuse(problem, actor, "jwt", claimed));
    };
    let refused = |problem: Problem| refuse(problem, actor.clone(), "jwt", Some(ctx.id()));
    let user = token
        .user()
        .map_err(|detail| refused(unauthorized(detail)))?;
    let access = user_or_provisioned(layer, ctx, None, &user)
        .await
        .map_err(refused)?;
    let role = token.role.map_or(access.role, |cap| cap.min(access.role));
    let principal = Principal::user(ctx.id(), access.id.to_string(), role);
    Ok((principal, Some(token.expires)))
}

/// The user `user` names in the tenant; one not yet of it is created when
/// the tenant's sign-in settings (`known`, or read only then) ask for it
/// (an e-mail address, of their domain if they name one), else refused.
async fn user_or_provisioned<V: AuthStore>(
    layer: &AuthLayer<V>,
    ctx: &TenantContext,
    known: Option<&TenantSso>,
    user: &UserRef,
) -> Result<UserAccess, Problem> {
    let failed = |e: crate::Error| Problem::from(&e);
    if let Some(access) = layer.store.user_access(ctx, user).await.map_err(failed)? {
        return Ok(access);
    }
    let read;
    let sso = match known {
        Some(sso) => Some(sso),
        None => {
            read = layer.store.tenant_sso(ctx).await.map_err(failed)?;
            read.as_deref()
        }
    };
    let missing = || unauthorized("the token's user does not exist in this tenant");
    let (Some(sso), UserRef::Email(email)) = (sso, user) else {
        return Err(missing());
    };
    let Some(role) = sso.settings.provision_role else {
        return Err(missing());
    };
    if !in_domain(sso, email) {
        return Err(unauthorized(
            "the token's e-mail address is not of the tenant's domain",
        ));
    }
    layer
        .store
        .provision_user(ctx, email, role)
        .await
        .map_err(|e| Problem::from(&e))
}

/// Whether `email` is of the domain the tenant's settings name (any, when none).
fn in_domain(sso: &TenantSso, email: &str) -> bool {
    sso.settings
        .email_domain
        .as_deref()
        .is_none_or(|domain| email.rsplit_once('@').map(|(_, d)| d) == Some(domain))
}

/// The principal of a verified token of the tenant's own issuer: its user
/// (by e-mail, of the registered domain if one is) acts with their current
/// role, capped by the token's role claim if it has one; a user not yet of
/// the tenant is provisioned when the tenant asked for it, else refused.
async fn sso_user<V: AuthStore>(
    layer: &AuthLayer<V>,
    ctx: &TenantContext,
    sso: &TenantSso,
    token: IssuerToken,
) -> Result<Authentication, Refused> {
    let actor = Actor::User(token.subject.clone());
    let refused = |problem: Problem| refuse(problem, actor.clone(), "jwt", Some(ctx.id()));
    let user = token
        .user()
        .map_err(|detail| refused(unauthorized(detail)))?;
    let UserRef::Email(email) = &user else {
        return Err(refused(unauthorized("the token names no e-mail address")));
    };
    if !in_domain(sso, email) {
        return Err(refused(unauthorized(
            "the token's e-mail address is not of the tenant's domain",
        )));
    }
    let access = user_or_provisioned(layer, ctx, Some(sso), &user)
        .await
        .map_err(refused)?;
    let role = token.role.map_or(access.role, |cap| cap.min(access.role));
    let principal = Principal::user(ctx.id(), access.id.to_string(), role);
    Ok((principal, Some(token.expires)))
}

/// The principal of a tenant token (signature and tenant checked) with
/// `token_role`: its user must still exist, and acts with at most their
/// current role.
async fn current_user<V: AuthStore>(
    layer: &AuthLayer<V>,
    ctx: &TenantContext,
    claims: &super::Claims,
    token_role: crate::Role,
) -> Result<Principal, Refused> {
    let refused = |problem: Problem| {
        refuse(
            problem,
            Actor::User(claims.sub.clone()),
            "jwt",
            Some(ctx.id()),
        )
    };
    let user = layer
        .user_claim
        .user_of(claims)
        .map_err(|detail| refused(unauthorized(detail)))?;
    match layer.store.user_access(ctx, &user).await {
        Ok(Some(access)) => Ok(Principal::user(
            ctx.id(),
            access.id.to_string(),
            token_role.min(access.role),
        )),
        Ok(None) => Err(refused(unauthorized(
            "the token's user does not exist in this tenant",
        ))),
        Err(e) => Err(refused(Problem::from(&e))),
    }
}

type Recheck =
    dyn Fn(Option<TenantContext>) -> BoxFuture<'static, Result<Principal, Problem>> + Send + Sync;

/// How a request authenticated, for a connection that outlives it (a
/// WebSocket): when its credential expires, and the same checks
/// [`AuthLayer`] made, to run again (the user still exists, the key is not
/// revoked, the signature and expiry still hold).
#[derive(Clone)]
pub struct Authenticated {
    expires: Option<u64>,
    recheck: Arc<Recheck>,
}

impl std::fmt::Debug for Authenticated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticated")
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

impl Authenticated {
    fn new<V: AuthStore>(
        layer: AuthLayer<V>,
        credential: Credential,
        expires: Option<u64>,
    ) -> Self {
        let layer = Arc::new(layer);
        let recheck = move |tenant: Option<TenantContext>| {
            let (layer, credential) = (layer.clone(), credential.clone());
            Box::pin(async move {
                authenticate(&layer, Ok(Some(credential)), tenant.as_ref())
                    .await
                    .map(|(principal, _)| principal)
                    .map_err(|refused| refused.problem)
            }) as BoxFuture<'static, _>
        };
        Self {
            expires,
            recheck: Arc::new(recheck),
        }
    }

    /// When the credential expires (a token's `exp`); `None` for an API key.
    pub fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.expires
            .and_then(|secs| DateTime::from_timestamp(i64::try_from(secs).ok()?, 0))
    }

    /// Authenticates the same credential again in `tenant`, as [`AuthLayer`]
    /// would now (not audited: the request it came with already was).
    pub async fn recheck(&self, tenant: Option<&TenantContext>) -> Result<Principal, Problem> {
        (self.recheck)(tenant.cloned()).await
    }
}

impl<V: AuthStore, B: Send + 'static> Guard<B> for AuthLayer<V> {
    async fn check(&self, mut req: Request<B>) -> Result<(Request<B>, Extensions), Problem> {
        let tenant = req.extensions().get::<TenantContext>().cloned();
        let credential = credential(&req);
        let kept = credential.clone().ok().flatten();
        match authenticate(self, credential, tenant.as_ref()).await {
            Ok((principal, expires)) => {
                if let Some(credential) = kept {
                    req.extensions_mut().insert(Authenticated::new(
                        self.clone(),
                        credential,
                        expires,
                    ));
                }
                // Everything this request changes is audited as this principal.
                if let Some(ctx) = tenant {
                    req.extensions_mut()
                        .insert(ctx.with_actor(Actor::from(&principal)));
                }
                req.extensions_mut().insert(principal);
                Ok((req, Extensions::new()))
            }
            Err(Refused { problem, event }) => {
                tracing::info!(status = problem.status.as_u16(), reason = ?problem.detail, "authentication refused");
                // A refusal inside a tenant is a security event in its trail.
                if let Some(ctx) = &tenant
                    && problem.status.is_client_error()
                    && let Err(e) = self.store.record_refusal(ctx, &event).await
                {
                    tracing::error!(error = %e, "could not audit a refused request");
                }
                Err(problem)
            }
        }
    }
}
