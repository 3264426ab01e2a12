//! What holds for every forge: the secret, the header names, the error messages.

use slipway_webhook::{Provider, WebhookError, verify_and_parse};

use crate::common::{SECRET, deliver, hmac_hex, pair, replace_first};

const GITHUB_PUSH: &[u8] = include_bytes!("../fixtures/github/push.json");
const CLOUD_PUSH: &[u8] = include_bytes!("../fixtures/bitbucket_cloud/push.json");

fn github(signature: &str) -> Vec<(String, String)> {
    vec![
        pair("X-GitHub-Event", "push"),
        pair("X-Hub-Signature-256", &format!("sha256={signature}")),
    ]
}

fn payload_error(message: &str) -> Result<slipway_webhook::Delivery, WebhookError> {
    Err(WebhookError::Payload(message.to_owned()))
}

#[test]
fn an_empty_secret_never_verifies() {
    let signature = hmac_hex(b"", GITHUB_PUSH);
    let headers = [
        ("X-GitHub-Event", "push"),
        ("X-Hub-Signature-256", &*format!("sha256={signature}")),
    ];
    let result = verify_and_parse(&headers, GITHUB_PUSH, b"");
    assert_eq!(result, Err(WebhookError::BadSignature));
}

/// HTTP/2 and most servers hand header names over in lowercase.
#[test]
fn header_names_are_matched_in_any_case() {
    let signature = format!("sha256={}", hmac_hex(SECRET, GITHUB_PUSH));
    let headers = [
        ("x-github-event", "push"),
        ("x-hub-signature-256", signature.as_str()),
        ("X-GITHUB-DELIVERY", "abc"),
    ];
    let delivery = verify_and_parse(&headers, GITHUB_PUSH, SECRET).expect("a valid delivery");
    assert_eq!(delivery.provider, Provider::GitHub);
    assert_eq!(delivery.id.as_deref(), Some("abc"));
}

#[test]
fn uppercase_hex_signatures_verify() {
    let signature = hmac_hex(SECRET, GITHUB_PUSH).to_uppercase();
    assert!(deliver(&github(&signature), GITHUB_PUSH).is_ok());
}

#[test]
fn an_unknown_forge_is_refused() {
    let headers = [
        pair("X-Gitlab-Event", "Push Hook"),
        pair("X-Gitlab-Token", "t"),
    ];
    assert_eq!(
        deliver(&headers, GITHUB_PUSH),
        Err(WebhookError::UnknownProvider)
    );
}

#[test]
fn signatures_that_are_not_hex_sha256_are_bad() {
    for signature in ["zz", "", "abcd"] {
        let headers = github(signature);
        assert_eq!(
            deliver(&headers, GITHUB_PUSH),
            Err(WebhookError::BadSignature),
            "{signature:?}"
        );
    }
    let sha1 = [
        pair("X-Event-Key", "repo:push"),
        pair(
            "X-Hub-Signature",
            &format!("sha1={}", hmac_hex(SECRET, CLOUD_PUSH)),
        ),
    ];
    assert_eq!(deliver(&sha1, CLOUD_PUSH), Err(WebhookError::BadSignature));
}

/// A body that is not even JSON is refused for its signature, not its content.
#[test]
fn the_signature_is_checked_before_the_body_is_read() {
    let body = b"{ not json";
    let headers = github(&hmac_hex(b"another secret", body));
    assert_eq!(deliver(&headers, body), Err(WebhookError::BadSignature));
    let headers = github(&hmac_hex(SECRET, body));
    assert!(matches!(
        deliver(&headers, body),
        Err(WebhookError::Payload(_))
    ));
}

#[test]
fn payload_errors_say_which_field() {
    let body = replace_first(CLOUD_PUSH, "\"hash\"", "\"hush\"");
    let headers = [
        pair("X-Event-Key", "repo:push"),
        pair(
            "X-Hub-Signature",
            &format!("sha256={}", hmac_hex(SECRET, &body)),
        ),
    ];
    assert_eq!(
        deliver(&headers, &body),
        payload_error("push.changes[0].new.target.hash is missing")
    );
}

#[test]
fn commits_must_be_forty_hex_characters() {
    let body = replace_first(
        GITHUB_PUSH,
        "90120d05b9d0de250d0f57f0",
        "90120d05b9d0de250d0f57fg",
    );
    let headers = github(&hmac_hex(SECRET, &body));
    assert_eq!(
        deliver(&headers, &body),
        payload_error("after is not a 40-character hex commit id")
    );
}

#[test]
fn branch_names_git_would_refuse_are_refused() {
    let body = replace_first(GITHUB_PUSH, "refs/heads/main", "refs/heads/--upload-pack=x");
    let headers = github(&hmac_hex(SECRET, &body));
    assert_eq!(
        deliver(&headers, &body),
        payload_error("ref is not a valid branch name: \"--upload-pack=x\"")
    );
}

#[test]
fn form_encoded_bodies_are_explained() {
    let body = b"payload=%7B%7D";
    let mut headers = github(&hmac_hex(SECRET, body));
    headers.push(pair("Content-Type", "application/x-www-form-urlencoded"));
    let Err(WebhookError::Payload(message)) = deliver(&headers, body) else {
        panic!("a form-encoded body must be refused");
    };
    assert!(message.contains("application/json"), "{message}");
}
