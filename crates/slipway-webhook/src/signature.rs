//! The HMAC-SHA256 of the raw body under the webhook secret, compared in constant time.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::headers::{Headers, signature_header};
use crate::{Provider, WebhookError};

/// Check the provider's signature header against `body` under `secret`.
///
/// Looks at nothing but the headers and the raw bytes: the body is not parsed yet.
pub(crate) fn verify(
    headers: &Headers,
    provider: Provider,
    body: &[u8],
    secret: &[u8],
) -> Result<(), WebhookError> {
    let header = signature_header(provider);
    let value = headers
        .first(header.names)
        .ok_or(WebhookError::MissingSignature)?;
    let digest =
        strip_prefix_ignore_case(value, header.prefix).ok_or(WebhookError::BadSignature)?;
    let expected = hex::decode(digest).map_err(|_| WebhookError::BadSignature)?;
    if secret.is_empty() {
        // Anyone can compute an HMAC under the empty key.
        return Err(WebhookError::BadSignature);
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| WebhookError::BadSignature)?;
    mac.update(body);
    mac.verify_slice(&expected)
        .map_err(|_| WebhookError::BadSignature)
}

fn strip_prefix_ignore_case<'v>(value: &'v str, prefix: &str) -> Option<&'v str> {
    let head = value.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &value[prefix.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_is_matched_in_any_case() {
        assert_eq!(strip_prefix_ignore_case("SHA256=ab", "sha256="), Some("ab"));
        assert_eq!(strip_prefix_ignore_case("sha1=ab", "sha256="), None);
        assert_eq!(strip_prefix_ignore_case("ab", ""), Some("ab"));
        assert_eq!(strip_prefix_ignore_case("é", "sha256="), None);
    }
}
