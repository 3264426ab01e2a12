//! GitHub: `X-GitHub-Event`, `X-Hub-Signature-256: sha256=<hex>`, `X-GitHub-Delivery`.

use slipway_webhook::{NO_COMMIT, Provider, WebhookError};

use crate::common::{Forge, deliver, moved, pair, push, replace_first};

const GITHUB: Forge = Forge {
    event_header: "X-GitHub-Event",
    signature_header: "X-Hub-Signature-256",
    prefix: "sha256=",
    id_header: "X-GitHub-Delivery",
    id: "72d3162e-cc78-11e3-81ab-4c9367dc0958",
};

const PUSH: &[u8] = include_bytes!("../fixtures/github/push.json");
const DELETE: &[u8] = include_bytes!("../fixtures/github/delete_branch.json");
const TAG: &[u8] = include_bytes!("../fixtures/github/tag.json");
const PING: &[u8] = include_bytes!("../fixtures/github/ping.json");

#[test]
fn push_to_main_is_verified_and_read() {
    let delivery = GITHUB.deliver("push", PUSH).expect("a valid delivery");
    assert_eq!(delivery.provider, Provider::GitHub);
    assert_eq!(delivery.id.as_deref(), Some(GITHUB.id));
    assert_eq!(delivery.event, "push");
    let main = moved(
        "main",
        "517481248c5067c2b98d19690b5658d0cb8ab378",
        "90120d05b9d0de250d0f57f0bba445510b87bb11",
    );
    assert_eq!(delivery.pushes, [main]);
}

#[test]
fn wrong_secret_is_refused() {
    GITHUB.refuses_wrong_secret("push", PUSH);
}

#[test]
fn missing_signature_is_refused() {
    GITHUB.refuses_missing_signature("push", PUSH);
}

#[test]
fn tampered_body_is_refused() {
    GITHUB.refuses_tampered_body("push", PUSH, "refs/heads/main", "refs/heads/prod");
}

#[test]
fn ping_verifies_and_carries_no_push() {
    let delivery = GITHUB.deliver("ping", PING).expect("a valid ping");
    assert_eq!(delivery.event, "ping");
    assert!(delivery.pushes.is_empty());
}

#[test]
fn ping_must_be_signed_too() {
    GITHUB.refuses_missing_signature("ping", PING);
}

#[test]
fn deleted_branch_keeps_its_slashes() {
    let delivery = GITHUB.deliver("push", DELETE).expect("a valid delivery");
    assert_eq!(delivery.pushes, [push("feature/old-nav", NO_COMMIT, true)]);
}

#[test]
fn tag_push_is_not_a_branch_push() {
    let delivery = GITHUB.deliver("push", TAG).expect("a valid delivery");
    assert!(delivery.pushes.is_empty());
}

#[test]
fn legacy_sha1_signature_alone_is_not_enough() {
    let mut headers = GITHUB.headers("push", None);
    let sha1 = "sha1=7d38cdd689735b008b3c702edd92eea23791c5f6";
    headers.push(pair("X-Hub-Signature", sha1));
    assert_eq!(deliver(&headers, PUSH), Err(WebhookError::MissingSignature));
}

#[test]
fn the_pusher_is_read_as_reported() {
    let delivery = GITHUB.deliver("push", PUSH).expect("a valid delivery");
    let pusher = delivery.pusher.expect("a pusher");
    assert_eq!(pusher.login.as_deref(), Some("octocat"));
    assert_eq!(pusher.name.as_deref(), Some("octocat"));
    assert_eq!(pusher.email.as_deref(), Some("mona@example.com"));
}

/// `before` is only where the branch was (a hint for what a first run
/// measures): a malformed one is read as absent, and the push still counts.
#[test]
fn a_malformed_before_is_read_as_absent_and_the_push_still_counts() {
    let after = "90120d05b9d0de250d0f57f0bba445510b87bb11";
    for odd in ["\"not-a-commit\"", "42", "\"517481248c\""] {
        let from = "\"517481248c5067c2b98d19690b5658d0cb8ab378\"";
        let body = replace_first(PUSH, from, odd);
        let delivery = GITHUB.deliver("push", &body).expect("a valid delivery");
        assert_eq!(
            delivery.pushes,
            [push("main", after, false)],
            "before: {odd}"
        );
    }
}
