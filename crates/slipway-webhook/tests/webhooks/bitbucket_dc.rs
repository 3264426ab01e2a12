//! Bitbucket Data Center: `X-Event-Key: repo:refs_changed`,
//! `X-Hub-Signature: sha256=<hex>`, `X-Request-Id`.

use slipway_webhook::{NO_COMMIT, Provider};

use crate::common::{Forge, moved, push, replace_first};

const DC: Forge = Forge {
    event_header: "X-Event-Key",
    signature_header: "X-Hub-Signature",
    prefix: "sha256=",
    id_header: "X-Request-Id",
    id: "d1e4b7a0-3c2f-4e58-9b61-0a7f8e2d5c34",
};

const PUSH: &[u8] = include_bytes!("../fixtures/bitbucket_dc/refs_changed.json");
const DELETE: &[u8] = include_bytes!("../fixtures/bitbucket_dc/delete_branch.json");
const TAG: &[u8] = include_bytes!("../fixtures/bitbucket_dc/tag.json");
const PING: &[u8] = include_bytes!("../fixtures/bitbucket_dc/ping.json");

#[test]
fn push_is_verified_and_read() {
    let delivery = DC
        .deliver("repo:refs_changed", PUSH)
        .expect("a valid delivery");
    assert_eq!(delivery.provider, Provider::BitbucketDataCenter);
    assert_eq!(delivery.id.as_deref(), Some(DC.id));
    let main = moved(
        "main",
        "29a2bf6e7602b5605fb2f277f17d821ff57c9b02",
        "517481248c5067c2b98d19690b5658d0cb8ab378",
    );
    assert_eq!(delivery.pushes, [main]);
}

#[test]
fn wrong_secret_is_refused() {
    DC.refuses_wrong_secret("repo:refs_changed", PUSH);
}

#[test]
fn missing_signature_is_refused() {
    DC.refuses_missing_signature("repo:refs_changed", PUSH);
}

#[test]
fn tampered_body_is_refused() {
    let (from, to) = ("refs/heads/main", "refs/heads/prod");
    DC.refuses_tampered_body("repo:refs_changed", PUSH, from, to);
}

/// "Test connection" sends `diagnostics:ping` with `{"test": true}`.
#[test]
fn diagnostics_ping_verifies_and_carries_no_push() {
    let delivery = DC.deliver("diagnostics:ping", PING).expect("a valid ping");
    assert_eq!(delivery.provider, Provider::BitbucketDataCenter);
    assert_eq!(delivery.event, "diagnostics:ping");
    assert!(delivery.pushes.is_empty());
    DC.refuses_wrong_secret("diagnostics:ping", PING);
}

#[test]
fn deleted_branch_has_type_delete() {
    let delivery = DC
        .deliver("repo:refs_changed", DELETE)
        .expect("a valid delivery");
    assert_eq!(delivery.pushes, [push("bugfix/SLIP-12", NO_COMMIT, true)]);
}

#[test]
fn tag_push_is_not_a_branch_push() {
    let delivery = DC
        .deliver("repo:refs_changed", TAG)
        .expect("a valid delivery");
    assert!(delivery.pushes.is_empty());
}

#[test]
fn new_branch_is_an_add() {
    let body = replace_first(PUSH, "\"UPDATE\"", "\"ADD\"");
    let body = replace_first(&body, "29a2bf6e7602b5605fb2f277f17d821ff57c9b02", NO_COMMIT);
    let delivery = DC
        .deliver("repo:refs_changed", &body)
        .expect("a valid delivery");
    let main = push("main", "517481248c5067c2b98d19690b5658d0cb8ab378", false);
    assert_eq!(delivery.pushes, [main]);
}

#[test]
fn the_pusher_is_read_as_reported() {
    let delivery = DC
        .deliver("repo:refs_changed", PUSH)
        .expect("a valid delivery");
    let pusher = delivery.pusher.expect("a pusher");
    assert_eq!(pusher.login.as_deref(), Some("alan"));
    assert_eq!(pusher.name.as_deref(), Some("Alan Turing"));
    assert_eq!(pusher.email.as_deref(), Some("alan@example.com"));
}
