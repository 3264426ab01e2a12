//! Signing deliveries as the forges do, and the checks every forge must pass.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use slipway_webhook::{Delivery, Push, WebhookError, verify_and_parse};

/// The project's webhook secret in these tests.
pub const SECRET: &[u8] = b"correct horse battery staple";

/// Where a forge puts the event, the signature and the delivery id.
#[derive(Debug)]
pub struct Forge {
    pub event_header: &'static str,
    pub signature_header: &'static str,
    /// What the forge writes before the hex digest.
    pub prefix: &'static str,
    pub id_header: &'static str,
    pub id: &'static str,
}

impl Forge {
    /// The headers of a delivery of `event`, with `signature` if given.
    pub fn headers(&self, event: &str, signature: Option<&str>) -> Vec<(String, String)> {
        let mut headers = vec![
            pair("Content-Type", "application/json"),
            pair(self.event_header, event),
            pair(self.id_header, self.id),
        ];
        if let Some(signature) = signature {
            let value = format!("{}{signature}", self.prefix);
            headers.push(pair(self.signature_header, &value));
        }
        headers
    }

    /// The headers of a delivery of `event` signed over `body` with `secret`.
    pub fn signed(&self, event: &str, body: &[u8], secret: &[u8]) -> Vec<(String, String)> {
        self.headers(event, Some(&hmac_hex(secret, body)))
    }

    /// Deliver `body` as `event`, signed with the project's secret.
    pub fn deliver(&self, event: &str, body: &[u8]) -> Result<Delivery, WebhookError> {
        deliver(&self.signed(event, body, SECRET), body)
    }

    /// A delivery signed with another secret is refused.
    pub fn refuses_wrong_secret(&self, event: &str, body: &[u8]) {
        let headers = self.signed(event, body, b"not the project's secret");
        assert_eq!(deliver(&headers, body), Err(WebhookError::BadSignature));
    }

    /// A delivery without a signature is refused as unsigned.
    pub fn refuses_missing_signature(&self, event: &str, body: &[u8]) {
        let headers = self.headers(event, None);
        assert_eq!(deliver(&headers, body), Err(WebhookError::MissingSignature));
    }

    /// A body changed after signing is refused, even though it is still valid JSON.
    pub fn refuses_tampered_body(&self, event: &str, body: &[u8], from: &str, to: &str) {
        let headers = self.signed(event, body, SECRET);
        let tampered = replace_first(body, from, to);
        let resigned = self.deliver(event, &tampered);
        assert!(
            resigned.is_ok_and(|d| !d.pushes.is_empty()),
            "the tampered body must itself be a valid push"
        );
        assert_eq!(
            deliver(&headers, &tampered),
            Err(WebhookError::BadSignature)
        );
    }
}

/// The hex HMAC-SHA256 of `body` under `secret`.
pub fn hmac_hex(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// Hand a delivery to the crate with the project's secret.
pub fn deliver(headers: &[(String, String)], body: &[u8]) -> Result<Delivery, WebhookError> {
    let pairs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    verify_and_parse(&pairs, body, SECRET)
}

pub fn pair(name: &str, value: &str) -> (String, String) {
    (name.to_owned(), value.to_owned())
}

/// The push the tests expect (one that says nothing of where the branch was).
pub fn push(branch: &str, commit: &str, deleted: bool) -> Push {
    Push {
        branch: branch.to_owned(),
        commit: commit.to_owned(),
        deleted,
        before: None,
    }
}

/// A push that moved `branch` from `before` to `commit`.
pub fn moved(branch: &str, before: &str, commit: &str) -> Push {
    Push {
        before: Some(before.to_owned()),
        ..push(branch, commit, false)
    }
}

/// `body` with its first `from` replaced by `to`.
pub fn replace_first(body: &[u8], from: &str, to: &str) -> Vec<u8> {
    let text = std::str::from_utf8(body).expect("fixtures are UTF-8");
    assert!(text.contains(from), "{from:?} is not in the body");
    text.replacen(from, to, 1).into_bytes()
}
