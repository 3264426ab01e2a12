//! The registry's stories, on SQLite and on PostgreSQL: manifests, tags,
//! promotion, collection and retention.

#[macro_use]
mod common;

use slipway_store::{
    NewManifest, NewPromotion, RepoKind, Repository, Store, StoreError, TagPolicy, now_ms,
};

stories!(
    registry_manifests_tags_and_promotion,
    registry_collection_and_retention,
);

fn repository(name: &str, policy: TagPolicy) -> Repository {
    Repository {
        name: name.into(),
        kind: RepoKind::Oci,
        policy,
        keep_tags: None,
        anonymous_pull: false,
        upstream: None,
        ttl_seconds: None,
        created_at: 0,
    }
}

fn digest(c: char) -> String {
    format!("sha256:{}", c.to_string().repeat(64))
}

/// A manifest of `ci/app` over the blobs `refs`, stored (as a blob) and pushed under `tag`.
async fn push(
    store: &Store,
    repo: &str,
    manifest: char,
    refs: &[String],
    tag: &str,
    immutable: bool,
) -> Result<(), StoreError> {
    let d = digest(manifest);
    store.blob_stored(&d, 100, Some((repo, "app"))).await?;
    store
        .put_manifest(&NewManifest {
            repo,
            image: "app",
            digest: &d,
            media_type: "application/vnd.oci.image.manifest.v1+json",
            size: 100,
            artifact_type: None,
            subject: None,
            annotations: None,
            blobs: refs,
            children: &[],
            tag: Some(tag),
            immutable_tags: immutable,
            lazy: false,
        })
        .await
}

async fn registry_manifests_tags_and_promotion(store: Store) {
    store
        .put_repository(&repository("ci", TagPolicy::Ci), false)
        .await
        .expect("ci");
    store
        .put_repository(&repository("release", TagPolicy::Release), false)
        .await
        .expect("release");
    assert!(matches!(
        store
            .put_repository(&repository("ci", TagPolicy::Ci), false)
            .await,
        Err(StoreError::Conflict(_))
    ));
    let layers = vec![digest('1'), digest('2')];
    for l in &layers {
        store
            .blob_stored(l, 10, Some(("ci", "app")))
            .await
            .expect("blob");
    }
    // A manifest over a blob the image does not hold names it.
    let err = push(&store, "ci", 'x', &[digest('9')], "bad", false)
        .await
        .expect_err("unknown blob");
    assert!(
        matches!(&err, StoreError::NotFound(m) if m.contains(&digest('9'))),
        "{err}"
    );

    for tag in ["b", "B", "a", "A"] {
        push(&store, "ci", 'a', &layers, tag, false)
            .await
            .expect("push");
    }
    let page = store.tags("ci", "app", None, 2).await.expect("tags");
    assert_eq!(
        (page.tags, page.more),
        (vec!["A".to_string(), "B".to_string()], true),
        "byte order on both backends"
    );
    let page = store.tags("ci", "app", Some("B"), 10).await.expect("tags");
    assert_eq!(
        (page.tags, page.more),
        (vec!["a".to_string(), "b".to_string()], false)
    );
    assert_eq!(
        store
            .manifest("ci", "app", "a")
            .await
            .expect("read")
            .map(|m| m.digest),
        Some(digest('a'))
    );

    // Tags move in ci, never in release.
    push(&store, "ci", 'b', &layers, "a", false)
        .await
        .expect("moves");
    assert_eq!(
        store
            .manifest("ci", "app", "a")
            .await
            .expect("read")
            .map(|m| m.digest),
        Some(digest('b'))
    );

    let promotion = |tag: &'static str, manifest: char| {
        let d = digest(manifest);
        let store = store.clone();
        async move {
            store
                .promote(&NewPromotion {
                    image: "app",
                    digest: &d,
                    from_repo: "ci",
                    to_repo: "release",
                    tag: Some(tag),
                    reason: Some("tested"),
                    by: "admin",
                    immutable_tags: true,
                })
                .await
        }
    };
    assert!(promotion("1.0", 'a').await.expect("promote"));
    assert!(!promotion("1.0", 'a').await.expect("again"), "idempotent");
    assert!(
        matches!(promotion("1.0", 'b').await, Err(StoreError::Conflict(m)) if m.contains("never move"))
    );
    assert_eq!(
        store
            .linked_blob("release", "app", &digest('2'))
            .await
            .expect("link"),
        Some(10)
    );
    let history = store.promotions("app", None).await.expect("history");
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].reason.as_deref(), Some("tested"));
    let referrers = store
        .referrers("ci", "app", &digest('a'), None)
        .await
        .expect("referrers");
    assert!(referrers.is_empty());
}

async fn registry_collection_and_retention(store: Store) {
    let mut ci = repository("ci", TagPolicy::Ci);
    ci.keep_tags = Some(1);
    store.put_repository(&ci, false).await.expect("ci");
    store
        .put_repository(&repository("release", TagPolicy::Release), false)
        .await
        .expect("release");
    for (l, _) in [('1', ()), ('2', ()), ('3', ())] {
        store
            .blob_stored(&digest(l), 10, Some(("ci", "app")))
            .await
            .expect("blob");
    }
    push(&store, "ci", 'a', &[digest('1')], "old", false)
        .await
        .expect("old");
    push(&store, "ci", 'b', &[digest('2')], "new", false)
        .await
        .expect("new");
    let live = store.live_blobs().await.expect("live");
    assert!(live.contains(&digest('1')) && live.contains(&digest('a')));
    assert!(
        !live.contains(&digest('3')),
        "an unreferenced upload is not alive"
    );

    let later = now_ms() + 60_000;
    assert!(
        !store.forget_blob(&digest('1'), later).await.expect("kept"),
        "referenced blobs stay"
    );
    assert!(
        !store
            .forget_blob(&digest('3'), now_ms() - 60_000)
            .await
            .expect("kept"),
        "touched inside the window"
    );
    assert!(store.forget_blob(&digest('3'), later).await.expect("freed"));
    assert_eq!(store.blob_size(&digest('3')).await.expect("size"), None);

    // Retention keeps the newest tag; what a release repository holds is never retired.
    let dry = store.apply_retention("ci", 1, true).await.expect("dry");
    assert_eq!(
        dry.iter().map(|r| r.tag.as_str()).collect::<Vec<_>>(),
        ["old"]
    );
    assert!(
        store
            .manifest("ci", "app", "old")
            .await
            .expect("read")
            .is_some(),
        "dry run changes nothing"
    );
    store
        .promote(&NewPromotion {
            image: "app",
            digest: &digest('a'),
            from_repo: "ci",
            to_repo: "release",
            tag: Some("1.0"),
            reason: None,
            by: "admin",
            immutable_tags: true,
        })
        .await
        .expect("promote");
    assert!(
        store
            .apply_retention("ci", 1, false)
            .await
            .expect("retention")
            .is_empty(),
        "released: kept"
    );
    store
        .delete_manifest("release", "app", &digest('a'))
        .await
        .expect("unrelease");
    let retired = store
        .apply_retention("ci", 1, false)
        .await
        .expect("retention");
    assert_eq!(retired.len(), 1);
    // Untagged now; only what is older than the cutoff goes.
    let earlier = now_ms() - 60_000;
    assert!(
        store
            .remove_untagged("ci", earlier, false)
            .await
            .expect("untagged")
            .is_empty()
    );
    let removed = store
        .remove_untagged("ci", later, false)
        .await
        .expect("untagged");
    assert_eq!(removed, [("app".to_string(), digest('a'))]);
    assert!(
        store
            .manifest("ci", "app", &digest('a'))
            .await
            .expect("read")
            .is_none()
    );
    assert!(
        !store
            .live_blobs()
            .await
            .expect("live")
            .contains(&digest('1')),
        "its layer is garbage now"
    );
}
