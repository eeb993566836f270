//! The ingest path on the embedded store: counts, dedupe, rejections.

use std::time::Duration;

use super::*;
use crate::domain::{EventPayload, InventoryPosition};
use crate::features::{AggregateKey, InMemoryFeatureStore};

fn stock(id: &str, on_hand: f64) -> Result<Event, Invalid> {
    Ok(Event {
        event_id: id.into(),
        payload: EventPayload::Inventory(InventoryPosition {
            site: "ATL".into(),
            sku: "SKU-1".into(),
            on_hand,
            at: Timestamp(1_790_000_000_000),
        }),
    })
}

fn ingestor() -> Ingestor<InMemoryFeatureStore> {
    let store = InMemoryFeatureStore::new(Duration::from_secs(3600));
    Ingestor::new(Arc::new(store), FeatureSettings::default())
}

#[tokio::test]
async fn counts_accepted_duplicate_and_rejected_and_applies_the_valid() {
    let ingestor = ingestor();
    let bad = Invalid {
        event_id: "e-bad".into(),
        field: "events[1].inventory.sku".into(),
        reason: "is required".into(),
    };
    let summary = ingestor
        .ingest(vec![stock("e1", 5.0), Err(bad.clone()), stock("e1", 9.0)])
        .await
        .unwrap();
    assert_eq!(summary.accepted, 1);
    assert_eq!(summary.duplicate, 1, "the same id twice in one call");
    assert_eq!(
        summary.rejections,
        [Rejection {
            index: 1,
            invalid: bad
        }]
    );
    let key = AggregateKey::inventory("ATL", "SKU-1");
    let record = ingestor.store().fetch(&[key]).await.unwrap()[0].expect("applied");
    let on_hand = record
        .gauge(crate::features::aggregates::ON_HAND)
        .unwrap()
        .0;
    assert_eq!(on_hand, 5.0, "the duplicate changed nothing");

    let again = ingestor.ingest(vec![stock("e1", 7.0)]).await.unwrap();
    assert_eq!((again.accepted, again.duplicate), (0, 1));
}

#[tokio::test]
async fn an_empty_or_oversized_call_is_refused_whole() {
    let ingestor = ingestor();
    assert!(matches!(
        ingestor.ingest(Vec::new()).await,
        Err(IngestError::Empty)
    ));
    let many = (0..=MAX_EVENTS)
        .map(|i| stock(&format!("e{i}"), 1.0))
        .collect();
    assert!(matches!(
        ingestor.ingest(many).await,
        Err(IngestError::TooMany(n)) if n == MAX_EVENTS + 1
    ));
}
