//! Who is using the UI: a session cookie (HttpOnly, SameSite=Strict) made at
//! login from a username and password (argon2), and the CSRF token every form
//! carries. The UI obeys the same roles as the API.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use slipway_secrets::{Role, TokenHash};
use slipway_store::Session;

use crate::AppState;

pub const COOKIE: &str = "slipway_session";
/// How long a session lasts without logging in again.
pub const LIFETIME_MS: i64 = 12 * 3600 * 1000;

/// The signed-in user of a UI request; anyone else is sent to the login page.
#[derive(Debug, Clone)]
pub struct Viewer(pub Session);

impl FromRequestParts<AppState> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Viewer, Response> {
        let to_login = || {
            let next = parts.uri.path_and_query().map_or("/ui", |p| p.as_str());
            Redirect::to(&format!("/ui/login?next={}", encode(next))).into_response()
        };
        let Some(cookie) = cookie(&parts.headers, COOKIE) else {
            return Err(to_login());
        };
        match state
            .engine
            .store
            .session(TokenHash::of(&cookie).as_str())
            .await
        {
            Ok(Some(session)) => Ok(Viewer(session)),
            Ok(None) => Err(to_login()),
            Err(e) => Err((StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response()),
        }
    }
}

impl Viewer {
    pub fn role(&self) -> Role {
        Role::parse(&self.0.user.role).unwrap_or(Role::Viewer)
    }

    pub fn may(&self, role: Role) -> bool {
        self.role().allows(role)
    }

    /// A form's CSRF token must be the session's.
    pub fn check_csrf(&self, sent: &str) -> Result<(), Response> {
        if !sent.is_empty() && sent == self.0.csrf {
            Ok(())
        } else {
            Err((
                StatusCode::FORBIDDEN,
                "the form's CSRF token does not match your session: reload the page and try again",
            )
                .into_response())
        }
    }

    /// The user as a decision point sees them.
    pub fn approver(&self) -> slipway_deploy::Approver {
        let u = &self.0.user;
        slipway_deploy::Approver {
            name: u.name.clone(),
            role: u.role.clone(),
            email: u.email.clone(),
            groups: u.groups.clone(),
            person: true,
        }
    }
}

pub fn hash_password(password: &str) -> Result<String, String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| format!("no randomness for a salt: {e}"))?;
    let salt = SaltString::encode_b64(&bytes).map_err(|e| format!("cannot make a salt: {e}"))?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("cannot hash the password: {e}"))
}

/// A hash no password matches, for checking unknown names at the same cost.
pub fn dummy_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| hash_password("no user has this password").unwrap_or_default())
}

pub fn password_matches(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// `Set-Cookie` for a new session (or, with an empty value, one that ends
/// it). `Secure` when the browser reached us over TLS, so the cookie never
/// travels over a plain-HTTP hop afterwards.
pub fn set_cookie(
    value: &str,
    max_age_secs: i64,
    tls: crate::forwarded::OverTls,
) -> (header::HeaderName, String) {
    let secure = if tls.0 { "; Secure" } else { "" };
    (
        header::SET_COOKIE,
        format!(
            "{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}{secure}"
        ),
    )
}

/// Whether a form post comes from another site (login CSRF: a page
/// elsewhere logging the browser into the attacker's account). Browsers say
/// where a request comes from in `Sec-Fetch-Site`, older ones in `Origin`;
/// clients that send neither (curl, scripts) are not browsers being tricked.
pub fn is_cross_site(headers: &axum::http::HeaderMap) -> bool {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = text("sec-fetch-site") {
        return !matches!(site, "same-origin" | "none");
    }
    match (text("origin"), text("host")) {
        (None, _) => false,
        (Some(origin), Some(host)) => {
            origin.split_once("://").map(|(_, authority)| authority) != Some(host)
        }
        (Some(_), None) => true,
    }
}

pub fn cookie(headers: &axum::http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// Percent-encodes a path for a query parameter.
pub fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
