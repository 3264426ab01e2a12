//! Gitea and Forgejo: `X-Gitea-Event`, `X-Gitea-Signature: <hex>`, `X-Gitea-Delivery`.

use slipway_webhook::{NO_COMMIT, Provider, WebhookError};

use crate::common::{Forge, SECRET, deliver, hmac_hex, moved, pair, push};

const GITEA: Forge = Forge {
    event_header: "X-Gitea-Event",
    signature_header: "X-Gitea-Signature",
    prefix: "",
    id_header: "X-Gitea-Delivery",
    id: "f6266f16-1bf3-46a5-9ea4-602e06ead473",
};

const FORGEJO: Forge = Forge {
    event_header: "X-Forgejo-Event",
    signature_header: "X-Forgejo-Signature",
    prefix: "",
    id_header: "X-Forgejo-Delivery",
    id: "0b7e33c4-58a1-4d5e-9f60-1a2b3c4d5e6f",
};

const PUSH: &[u8] = include_bytes!("../fixtures/gitea/push.json");
const DELETE: &[u8] = include_bytes!("../fixtures/gitea/delete.json");
const TAG: &[u8] = include_bytes!("../fixtures/gitea/tag.json");
const TEST_DELIVERY: &[u8] = include_bytes!("../fixtures/gitea/test_delivery.json");

const DARK_MODE: &str = "d8a83b4418f9c5314e7b0e3ba7d24683070a5c37";

#[test]
fn push_is_verified_and_read() {
    let delivery = GITEA.deliver("push", PUSH).expect("a valid delivery");
    assert_eq!(delivery.provider, Provider::Gitea);
    assert_eq!(delivery.id.as_deref(), Some(GITEA.id));
    assert_eq!(
        delivery.pushes,
        [moved(
            "feature/dark-mode",
            "29a2bf6e7602b5605fb2f277f17d821ff57c9b02",
            DARK_MODE
        )]
    );
}

/// Gitea also sends GitHub's and Gogs' headers, and a SHA-1 `X-Hub-Signature`.
#[test]
fn every_header_gitea_sends_still_reads_as_gitea() {
    let mut headers = GITEA.signed("push", PUSH, SECRET);
    let signature = hmac_hex(SECRET, PUSH);
    headers.extend([
        pair("X-GitHub-Event", "push"),
        pair("X-GitHub-Delivery", GITEA.id),
        pair("X-Gogs-Event", "push"),
        pair("X-Gogs-Signature", &signature),
        pair(
            "X-Hub-Signature",
            "sha1=0000000000000000000000000000000000000000",
        ),
        pair("X-Hub-Signature-256", &format!("sha256={signature}")),
    ]);
    let delivery = deliver(&headers, PUSH).expect("a valid delivery");
    assert_eq!(delivery.provider, Provider::Gitea);
    assert_eq!(delivery.pushes.len(), 1);
}

#[test]
fn forgejo_headers_are_understood() {
    let delivery = FORGEJO.deliver("push", PUSH).expect("a valid delivery");
    assert_eq!(delivery.provider, Provider::Gitea);
    assert_eq!(delivery.id.as_deref(), Some(FORGEJO.id));
    assert_eq!(delivery.pushes.len(), 1);
}

#[test]
fn wrong_secret_is_refused() {
    GITEA.refuses_wrong_secret("push", PUSH);
}

#[test]
fn missing_signature_is_refused() {
    GITEA.refuses_missing_signature("push", PUSH);
}

/// A Gitea webhook without a secret sends the header with nothing in it.
#[test]
fn empty_signature_header_is_a_missing_signature() {
    let headers = GITEA.headers("push", Some(""));
    assert_eq!(deliver(&headers, PUSH), Err(WebhookError::MissingSignature));
}

#[test]
fn tampered_body_is_refused() {
    GITEA.refuses_tampered_body("push", PUSH, "feature/dark-mode", "feature/dark-moon");
}

/// "Test delivery" sends a push whose `before` and `after` are the same commit.
#[test]
fn test_delivery_verifies_and_carries_no_push() {
    let delivery = GITEA
        .deliver("push", TEST_DELIVERY)
        .expect("a valid delivery");
    assert!(delivery.pushes.is_empty());
    GITEA.refuses_wrong_secret("push", TEST_DELIVERY);
}

/// Gitea reports a deleted branch with a `delete` event, not a push.
#[test]
fn deleted_branch_comes_as_a_delete_event() {
    let delivery = GITEA.deliver("delete", DELETE).expect("a valid delivery");
    assert_eq!(
        delivery.pushes,
        [push("feature/dark-mode", NO_COMMIT, true)]
    );
}

#[test]
fn tag_push_is_not_a_branch_push() {
    let delivery = GITEA.deliver("push", TAG).expect("a valid delivery");
    assert!(delivery.pushes.is_empty());
}

#[test]
fn deleted_tag_is_not_a_branch() {
    let body = crate::common::replace_first(DELETE, "\"branch\"", "\"tag\"");
    let delivery = GITEA.deliver("delete", &body).expect("a valid delivery");
    assert!(delivery.pushes.is_empty());
}

#[test]
fn the_pusher_is_read_as_reported() {
    let delivery = GITEA.deliver("push", PUSH).expect("a valid delivery");
    let pusher = delivery.pusher.expect("a pusher");
    assert_eq!(pusher.login.as_deref(), Some("grace"));
    assert_eq!(pusher.name.as_deref(), None);
    assert_eq!(pusher.email.as_deref(), Some("grace@example.com"));
}
