//! A real OpenID provider on loopback for tests: npm's `oidc-provider`, run
//! with the machine's Node.js from the workspace's `tests/oidc` (installed
//! there with `npm ci` the first time a test needs it).
//!
//! Each test client stands for one user: the claims it is given are added to
//! the JWT access tokens it gets by the client-credentials grant.

use std::{path::PathBuf, process::Stdio, time::Duration};

use serde_json::{Value, json};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines},
    process::{Child, ChildStdin, ChildStdout, Command},
};

use crate::auth::IssuerConfig;

/// The audience the provider's tokens are for, unless a test asks for another.
pub const AUDIENCE: &str = "https://api.tenantkit.test";

/// The workspace folder holding the provider script and its `package.json`.
pub fn provider_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/oidc"))
}

/// Installs the provider's npm packages once per process, if missing.
async fn install() {
    static INSTALLED: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    INSTALLED
        .get_or_init(|| async {
            let dir = provider_dir();
            if dir.join("node_modules/oidc-provider").exists() {
                return;
            }
            let status = Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
                .current_dir(&dir)
                .status()
                .await
                .expect("npm (Node.js 20) must be installed for the OIDC tests");
            assert!(status.success(), "npm ci in {} failed", dir.display());
        })
        .await;
}

/// A test client: one user's tokens.
#[derive(Clone, Debug)]
pub struct TestClient {
    /// Its id (and `sub` of its tokens).
    pub client_id: String,
    /// The algorithm its tokens are signed with: `RS256`, `ES256` or `EdDSA`.
    pub alg: &'static str,
    /// Its tokens' lifetime, in seconds.
    pub ttl_secs: u64,
    /// Claims added to its tokens (`tenant`, `email`, …).
    pub claims: Value,
}

impl TestClient {
    /// A client whose RS256 tokens carry `claims`, valid five minutes.
    pub fn new(client_id: &str, claims: Value) -> Self {
        Self {
            client_id: client_id.into(),
            alg: "RS256",
            ttl_secs: 300,
            claims,
        }
    }

    /// The same, signing with `alg`.
    pub fn signing_with(mut self, alg: &'static str) -> Self {
        self.alg = alg;
        self
    }

    /// The same, with tokens valid `secs` seconds.
    pub fn lasting(mut self, secs: u64) -> Self {
        self.ttl_secs = secs;
        self
    }
}

/// A running provider; stopped when dropped.
pub struct TestProvider {
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
    /// Its `iss`: `http://127.0.0.1:<port>`.
    pub issuer: String,
    http: reqwest::Client,
}

const SECRET: &str = "a-test-client-secret-of-some-length";

impl TestProvider {
    /// Starts a provider publishing and signing with `keys` (`(kid, alg)`),
    /// with these clients.
    pub async fn start(keys: &[(&str, &str)], clients: &[TestClient]) -> Self {
        install().await;
        // The process's TLS crypto provider, as the reference server picks it.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let config = json!({
            "audience": AUDIENCE,
            "keys": keys_json(keys),
            "clients": clients.iter().map(|c| json!({
                "client_id": c.client_id,
                "client_secret": SECRET,
                "alg": c.alg,
                "ttl": c.ttl_secs,
                "claims": c.claims,
            })).collect::<Vec<_>>(),
        });
        let mut child = Command::new("node")
            .arg(provider_dir().join("provider.mjs"))
            .arg(config.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("node (Node.js 20) must be installed for the OIDC tests");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let mut provider = Self {
            child,
            stdin,
            stdout,
            issuer: String::new(),
            http: reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("HTTP client"),
        };
        let ready = provider.answer().await;
        provider.issuer = ready["issuer"].as_str().expect("issuer").to_owned();
        provider
    }

    async fn answer(&mut self) -> Value {
        let line = tokio::time::timeout(Duration::from_secs(30), self.stdout.next_line())
            .await
            .expect("the provider answers within 30 s")
            .expect("the provider's output")
            .expect("the provider is running");
        serde_json::from_str(&line).expect("a JSON line")
    }

    async fn command(&mut self, command: Value) -> Value {
        let line = format!("{command}\n");
        self.stdin
            .write_all(line.as_bytes())
            .await
            .expect("the provider reads commands");
        self.answer().await
    }

    /// Rotates: the provider signs with and publishes only `keys` from now.
    pub async fn publish(&mut self, keys: &[(&str, &str)]) {
        let answer = self.command(json!({ "publish": keys_json(keys) })).await;
        assert_eq!(answer["ok"], true);
    }

    /// Adds a public client `client_id` for browser sign-in (Authorization
    /// Code + PKCE) returning to `redirect_uri`, whose development login
    /// page takes any login and password: the login names the account, and
    /// its access tokens, valid `ttl_secs`, carry `accounts[login]` as claims.
    /// It gives refresh tokens too.
    pub async fn dashboard(
        &mut self,
        client_id: &str,
        redirect_uri: &str,
        ttl_secs: u64,
        accounts: Value,
    ) {
        let answer = self
            .command(json!({ "dashboard": {
                "client_id": client_id,
                "redirect_uri": redirect_uri,
                "ttl": ttl_secs,
                "accounts": accounts,
            } }))
            .await;
        assert_eq!(answer["ok"], true);
    }

    /// How many times the provider's key set has been fetched.
    pub async fn jwks_hits(&mut self) -> u64 {
        self.command(json!({ "jwks_hits": true })).await["jwks_hits"]
            .as_u64()
            .expect("a count")
    }

    /// A token of `client_id` for [`AUDIENCE`].
    pub async fn token(&self, client_id: &str) -> String {
        self.token_for(client_id, AUDIENCE).await
    }

    /// A token of `client_id` for `audience`.
    pub async fn token_for(&self, client_id: &str, audience: &str) -> String {
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            ("client_secret", SECRET),
            ("resource", audience),
            ("scope", "api"),
        ]
        .iter()
        .map(|(k, v)| format!("{k}={}", form_encode(v)))
        .collect::<Vec<_>>()
        .join("&");
        let response = self
            .http
            .post(format!("{}/token", self.issuer))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form)
            .send()
            .await
            .expect("the token endpoint answers");
        let status = response.status();
        let body: Value = response.json().await.expect("a JSON answer");
        assert!(status.is_success(), "token request refused: {body}");
        body["access_token"]
            .as_str()
            .expect("an access token")
            .to_owned()
    }

    /// Stops the provider (as an outage would).
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }

    /// An issuer configuration trusting this provider: discovery, plain
    /// http to loopback allowed, keys cached 1 to 2 s and fetched at most
    /// once a second, no clock leeway.
    pub fn issuer_config(&self, name: &str) -> IssuerConfig {
        let mut config = IssuerConfig::new(name, &self.issuer, AUDIENCE);
        config.allow_http_loopback = true;
        config.key_cache_min_secs = 1;
        config.key_cache_max_secs = 2;
        config.key_refetch_interval_secs = 1;
        config.leeway_secs = 0;
        config
    }
}

fn keys_json(keys: &[(&str, &str)]) -> Vec<Value> {
    keys.iter()
        .map(|(kid, alg)| json!({ "kid": kid, "alg": alg }))
        .collect()
}

/// `application/x-www-form-urlencoded` encoding of one value.
fn form_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
