#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `Credpool::shutdown` loses no rotation: an exchange in flight when shutdown starts is
//! finished and committed before the pools stop, and nothing new is sent afterwards.

mod support;

use std::time::Duration;

use credpool::StatusKind;
use credpool::admin::{Refresh, Snapshot};
use credpool::{Credpool, RecoveryConfig};
use credpool_test_support::{TokenFault, eventually};
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exchange_in_flight_at_shutdown_is_committed() {
    let world = World::start(StoreKind::Sled, RecoveryConfig::default()).await;
    world.add_grant("grant").await;
    world.fake.expire_access_tokens();
    // The provider rotates at once but answers slowly: shutdown starts in between.
    world
        .fake
        .push_fault(TokenFault::Slow(Duration::from_millis(400)));
    let client = world.client.clone();
    let worker = tokio::spawn(async move {
        let lease = client.acquire(&xai()).await.unwrap();
        let body = br#"{"code":"unauthenticated:bad-credentials","error":"bad credentials"}"#;
        let failure = credpool::RequestFailure::answer(403, Vec::new(), body.to_vec());
        client.report_failure(lease, failure).await
    });
    let fake = &world.fake;
    assert!(
        eventually(|| fake.token_requests() == 1, Duration::from_secs(5)).await,
        "the refresh reached the provider"
    );
    let providers = world.providers.clone();
    let (fake, dir) = world.shutdown().await;
    // The worker was answered (with the new token, or `Stopped` if the pool stopped first).
    let _ = worker.await.unwrap();
    assert_eq!(
        fake.token_requests(),
        1,
        "nothing sent after shutdown began"
    );

    // The rotated pair was committed: a new tree on the same store holds generation 2, and
    // its refresh token is the live one (a refresh now is not a replay).
    let dir = dir.expect("a sled store");
    let pool = Credpool::builder()
        .data_dir(dir.path())
        .providers(providers)
        .allow_insecure_loopback(true)
        .start()
        .await
        .unwrap();
    let stored = pool.store().load_provider(&xai()).unwrap();
    assert_eq!(stored.entries[0].generation.0, 2, "the rotation was stored");
    let view = pool
        .admin()
        .run(&xai(), Refresh(credpool::Target("grant".to_owned())))
        .await
        .unwrap();
    let admin = pool.admin();
    assert!(
        credpool_test_support::eventually_async(
            || {
                let admin = admin.clone();
                async move {
                    let snapshot = admin.run(&xai(), Snapshot).await.unwrap();
                    snapshot.entries[0].generation.0 > 2
                        || snapshot.entries[0].status == StatusKind::Dead
                }
            },
            Duration::from_secs(10)
        )
        .await,
        "{view:?}"
    );
    let snapshot = pool.admin().run(&xai(), Snapshot).await.unwrap();
    assert_eq!(
        snapshot.entries[0].status,
        StatusKind::Ok,
        "{:?}",
        snapshot.entries[0]
    );
    assert_eq!(fake.reuse_detections(), 0, "no refresh token was replayed");
    pool.shutdown().await.unwrap();
}
