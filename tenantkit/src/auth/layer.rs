use std::{
    future::Future,
    sync::Arc,
    task::{Context, Poll},
};

use futures_util::future::BoxFuture;
use http::{HeaderValue, Request, Response, StatusCode, header};
use tower::{Layer, Service};

use super::{JwtKeys, Principal, TokenError, TokenRole};
use crate::{ApiKey, Db, Result, TenantContext, problem::Problem};

/// Checks API keys for [`AuthLayer`]. Implemented by [`Db`].
pub trait ApiKeyVerifier: Clone + Send + Sync + 'static {
    /// The live key of `tenant` that `presented` is, if any.
    fn verify(
        &self,
        tenant: &TenantContext,
        presented: &str,
    ) -> impl Future<Output = Result<Option<ApiKey>>> + Send;
}

impl ApiKeyVerifier for Db {
    async fn verify(&self, tenant: &TenantContext, presented: &str) -> Result<Option<ApiKey>> {
        let mut tx = self.begin(tenant).await?;
        let key = tx.verify_api_key(presented).await?;
        tx.commit().await?;
        Ok(key)
    }
}

/// Authenticates requests with `Authorization: Bearer <JWT or API key>` or
/// `X-Api-Key: <API key>`, and puts the [`Principal`] into request extensions.
///
/// Behind [`crate::resolve::TenantLayer`] the credential must belong to the
/// resolved tenant (else `403`); without a resolved tenant only a
/// platform-admin token passes (else `403`). No, malformed, expired or wrongly
/// signed credentials get `401` with `WWW-Authenticate: Bearer`.
#[derive(Clone, Debug)]
pub struct AuthLayer<V> {
    jwt: Arc<JwtKeys>,
    api_keys: V,
}

impl<V: ApiKeyVerifier> AuthLayer<V> {
    /// Verifies JWTs with `jwt` and API keys with `api_keys`.
    pub fn new(jwt: JwtKeys, api_keys: V) -> Self {
        Self {
            jwt: Arc::new(jwt),
            api_keys,
        }
    }
}

impl<S, V: Clone> Layer<S> for AuthLayer<V> {
    type Service = AuthService<S, V>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service made by [`AuthLayer`].
#[derive(Clone, Debug)]
pub struct AuthService<S, V> {
    inner: S,
    layer: AuthLayer<V>,
}

impl<S, V> AuthService<S, V> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes `self`, returning the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

enum Credential {
    Jwt(String),
    ApiKey(String),
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
        return Ok(Some(if token.starts_with("tk_") {
            Credential::ApiKey(token.to_owned())
        } else {
            Credential::Jwt(token.to_owned())
        }));
    }
    if let Some(value) = req.headers().get("x-api-key") {
        let key = value
            .to_str()
            .map_err(|_| "the X-Api-Key header is not valid text")?;
        return Ok(Some(Credential::ApiKey(key.trim().to_owned())));
    }
    Ok(None)
}

fn unauthorized(detail: &str) -> Problem {
    Problem::new(StatusCode::UNAUTHORIZED, "Unauthorized")
        .with_detail(detail)
        .with_header(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))
}

fn wrong_tenant() -> Problem {
    Problem::new(StatusCode::FORBIDDEN, "Wrong tenant")
        .with_detail("this credential does not belong to the tenant the request is for")
}

async fn authenticate<V: ApiKeyVerifier>(
    layer: &AuthLayer<V>,
    credential: Option<Credential>,
    tenant: Option<&TenantContext>,
) -> Result<Principal, Problem> {
    match credential {
        None => Err(unauthorized("authentication required")),
        Some(Credential::Jwt(token)) => {
            let claims = layer.jwt.verify(&token).map_err(|e| match e {
                TokenError::Expired => unauthorized("the token has expired"),
                TokenError::Invalid(_) => unauthorized("the token is invalid"),
            })?;
            let principal = match (claims.role.tenant_role(), claims.tenant) {
                (Some(role), Some(t)) => Principal::user(t, claims.sub, role),
                (None, None) if claims.role == TokenRole::PlatformAdmin => {
                    Principal::platform_admin(claims.sub)
                }
                _ => {
                    return Err(unauthorized(
                        "the token's role and tenant do not fit together",
                    ));
                }
            };
            match tenant {
                Some(ctx) if principal.tenant == Some(ctx.id()) => Ok(principal),
                None if principal.tenant.is_none() => Ok(principal),
                _ => Err(wrong_tenant()),
            }
        }
        Some(Credential::ApiKey(key)) => {
            // A key is looked up inside its tenant, so a key of another tenant
            // is simply not found there.
            let Some(ctx) = tenant else {
                return Err(wrong_tenant().with_detail("API keys act inside their tenant; name it"));
            };
            match layer.api_keys.verify(ctx, &key).await {
                Ok(Some(key)) => Ok(Principal::api_key(&key)),
                Ok(None) => Err(unauthorized("the API key is invalid or revoked")),
                Err(e) => Err(Problem::from(&e)),
            }
        }
    }
}

impl<S, V, ReqBody, ResBody> Service<Request<ReqBody>> for AuthService<S, V>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send,
    V: ApiKeyVerifier,
    ReqBody: Send + 'static,
    ResBody: From<String>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let layer = self.layer.clone();
        Box::pin(async move {
            let outcome = match credential(&req) {
                Ok(cred) => {
                    authenticate(&layer, cred, req.extensions().get::<TenantContext>()).await
                }
                Err(reason) => Err(unauthorized(reason)),
            };
            match outcome {
                Ok(principal) => {
                    req.extensions_mut().insert(principal.clone());
                    let mut res = inner.call(req).await?;
                    res.extensions_mut().insert(principal);
                    Ok(res)
                }
                Err(problem) => {
                    tracing::info!(status = problem.status.as_u16(), reason = ?problem.detail, "authentication refused");
                    let mut res = problem.into_response();
                    // Refusals are security events; later layers (audit) read this.
                    res.extensions_mut().insert(AuthRefused);
                    Ok(res)
                }
            }
        })
    }
}

/// Put in the extensions of a response [`AuthLayer`] refused.
#[derive(Clone, Copy, Debug)]
pub struct AuthRefused;
