#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use credpool::admin::{Add, Snapshot};
use credpool::{Credpool, ProviderId, Secret, Timestamp, api_key_entry};

use super::*;

async fn pool_with_one_key() -> (Credpool, ProviderId) {
    let pool = Credpool::builder().in_memory().start().await.unwrap();
    let provider = ProviderId::new("openai");
    pool.admin()
        .run(
            &provider,
            Add(api_key_entry("only", Secret::new("sk-table"))),
        )
        .await
        .unwrap();
    (pool, provider)
}

async fn leases_held(pool: &Credpool, provider: &ProviderId) -> u32 {
    pool.admin().run(provider, Snapshot).await.unwrap().entries[0].leases
}

#[tokio::test]
async fn a_taken_lease_is_gone_and_an_unknown_id_is_unknown() {
    let (pool, provider) = pool_with_one_key().await;
    let table = LeaseTable::new(Duration::from_secs(60));
    let lease = pool.client().acquire(&provider).await.unwrap();
    let (id, deadline) = table.insert(
        Held {
            lease,
            provider: provider.clone(),
            model: None,
        },
        Timestamp(1_000),
    );
    assert_eq!(id.len(), 32);
    assert_eq!(deadline, Timestamp(61_000));
    assert!(matches!(table.take(&id), Taken::Live(_)));
    assert!(matches!(table.take(&id), Taken::Unknown), "taken once");
    assert!(matches!(table.take("nonesuch"), Taken::Unknown));
    assert_eq!(
        leases_held(&pool, &provider).await,
        0,
        "the taken lease was dropped"
    );
}

#[tokio::test]
async fn a_lease_past_its_deadline_goes_back_to_its_pool_and_leaves_a_tombstone() {
    let (pool, provider) = pool_with_one_key().await;
    let table = LeaseTable::new(Duration::from_secs(60));
    let lease = pool.client().acquire(&provider).await.unwrap();
    let (entry, generation) = (lease.entry_id(), lease.generation());
    let (id, _) = table.insert(
        Held {
            lease,
            provider: provider.clone(),
            model: Some("gpt-x".to_owned()),
        },
        Timestamp(0),
    );
    assert_eq!(table.reap(Timestamp(59_999)), 0);
    assert_eq!(leases_held(&pool, &provider).await, 1);
    assert_eq!(table.reap(Timestamp(60_000)), 1);
    assert_eq!(table.live(), 0);
    assert_eq!(leases_held(&pool, &provider).await, 0, "back in the pool");
    match table.take(&id) {
        Taken::Expired(tombstone) => {
            assert_eq!(tombstone.entry, entry);
            assert_eq!(tombstone.generation, generation);
            assert_eq!(tombstone.provider, provider);
            assert_eq!(tombstone.model.as_deref(), Some("gpt-x"));
        }
        other => panic!("{other:?}"),
    }
    // A tombstone answers every time (a late report, then a late release).
    assert!(matches!(table.take(&id), Taken::Expired(_)));
}
