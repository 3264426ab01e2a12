//! Bitbucket Cloud: `X-Event-Key: repo:push`, `X-Hub-Signature: sha256=<hex>`,
//! `X-Request-UUID`.

use slipway_webhook::{NO_COMMIT, Provider};

use crate::common::{Forge, SECRET, deliver, moved, pair, push};

const CLOUD: Forge = Forge {
    event_header: "X-Event-Key",
    signature_header: "X-Hub-Signature",
    prefix: "sha256=",
    id_header: "X-Request-UUID",
    id: "9a7c3e2b-1f04-4d6a-b8e5-7c2d1a0f9e83",
};

const PUSH: &[u8] = include_bytes!("../fixtures/bitbucket_cloud/push.json");
const DELETE: &[u8] = include_bytes!("../fixtures/bitbucket_cloud/delete_branch.json");
const TAG: &[u8] = include_bytes!("../fixtures/bitbucket_cloud/tag.json");
const REPO_UPDATED: &[u8] = include_bytes!("../fixtures/bitbucket_cloud/repo_updated.json");

#[test]
fn push_of_two_branches_gives_two_pushes() {
    let delivery = CLOUD.deliver("repo:push", PUSH).expect("a valid delivery");
    assert_eq!(delivery.provider, Provider::BitbucketCloud);
    assert_eq!(delivery.id.as_deref(), Some(CLOUD.id));
    assert_eq!(
        delivery.pushes,
        [
            moved(
                "main",
                "1c3eb7c5f3c931050b42cb6200283ed61862de12",
                "aba3758e15765702bd619821670e7952f79c428e",
            ),
            push(
                "release/1.2",
                "d8d385be74ca5f694770ca7256f2f35e2c749596",
                false
            ),
        ]
    );
}

#[test]
fn wrong_secret_is_refused() {
    CLOUD.refuses_wrong_secret("repo:push", PUSH);
}

#[test]
fn missing_signature_is_refused() {
    CLOUD.refuses_missing_signature("repo:push", PUSH);
}

#[test]
fn tampered_body_is_refused() {
    let (from, to) = ("aba3758e15765702", "aba3758e15765703");
    CLOUD.refuses_tampered_body("repo:push", PUSH, from, to);
}

/// Bitbucket Cloud sends no ping: other events verify and carry no push.
#[test]
fn other_events_verify_and_carry_no_push() {
    let delivery = CLOUD
        .deliver("repo:updated", REPO_UPDATED)
        .expect("a valid delivery");
    assert_eq!(delivery.provider, Provider::BitbucketCloud);
    assert!(delivery.pushes.is_empty());
    CLOUD.refuses_wrong_secret("repo:updated", REPO_UPDATED);
}

#[test]
fn deleted_branch_has_a_null_new() {
    let delivery = CLOUD
        .deliver("repo:push", DELETE)
        .expect("a valid delivery");
    assert_eq!(delivery.pushes, [push("feature/old-nav", NO_COMMIT, true)]);
}

#[test]
fn tag_push_is_not_a_branch_push() {
    let delivery = CLOUD.deliver("repo:push", TAG).expect("a valid delivery");
    assert!(delivery.pushes.is_empty());
}

/// `X-Hook-UUID` names the webhook, not the delivery: it is no delivery id.
#[test]
fn hook_uuid_is_not_taken_for_a_delivery_id() {
    let mut headers = CLOUD.signed("repo:push", PUSH, SECRET);
    headers.retain(|(name, _)| name != "X-Request-UUID");
    headers.push(pair(
        "X-Hook-UUID",
        "{cc8f2d1e-61b0-4bb4-9a3c-12f0e5d7a9b4}",
    ));
    let delivery = deliver(&headers, PUSH).expect("a valid delivery");
    assert_eq!(delivery.provider, Provider::BitbucketCloud);
    assert_eq!(delivery.id, None);
}

#[test]
fn the_pusher_is_read_as_reported() {
    let delivery = CLOUD.deliver("repo:push", PUSH).expect("a valid delivery");
    let pusher = delivery.pusher.expect("a pusher");
    assert_eq!(pusher.login.as_deref(), Some("ada"));
    assert_eq!(pusher.name.as_deref(), Some("Ada Lovelace"));
    assert_eq!(pusher.email.as_deref(), None);
}
