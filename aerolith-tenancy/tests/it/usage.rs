use std::sync::Arc;

use aerolith_tenancy::{NullSink, OperationKind, RecordingSink, TenantId, UsageEvent, UsageSink};

fn event(tenant: u64, kind: OperationKind) -> UsageEvent {
    UsageEvent {
        tenant: TenantId::new(tenant),
        kind,
        bytes_in: 10,
        bytes_out: 200,
        duration_us: 35,
        at_unix_ms: 1_700_000_000_000,
        idempotency_id: Some(7),
    }
}

#[test]
fn recording_sink_keeps_events_in_order() {
    let sink = RecordingSink::new();
    sink.record(event(1, OperationKind::Write));
    sink.record(event(2, OperationKind::Query));
    assert_eq!(
        sink.events(),
        vec![
            event(1, OperationKind::Write),
            event(2, OperationKind::Query)
        ]
    );
    assert_eq!(sink.take().len(), 2);
    assert!(sink.events().is_empty());
}

#[test]
fn sinks_can_be_shared_between_threads_as_trait_objects() {
    let recording = Arc::new(RecordingSink::new());
    let sinks: Vec<Arc<dyn UsageSink>> = vec![Arc::new(NullSink), recording.clone()];
    std::thread::scope(|scope| {
        for sink in &sinks {
            for thread in 0..4 {
                scope.spawn(move || {
                    for _ in 0..25 {
                        sink.record(event(thread, OperationKind::Read));
                    }
                });
            }
        }
    });
    assert_eq!(recording.events().len(), 100);
}

#[test]
fn usage_events_round_trip_through_json() {
    let original = UsageEvent {
        idempotency_id: Some(u128::MAX),
        ..event(4, OperationKind::Admin)
    };
    let json = serde_json::to_string(&original).expect("serializes");
    assert_eq!(
        serde_json::from_str::<UsageEvent>(&json).expect("parses"),
        original
    );
}
