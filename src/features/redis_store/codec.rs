//! How a record and an entity are stored as Redis strings (the formats in
//! [`super`]'s doc): encode and parse. Bytes in, values out; nothing here knows a
//! key or a connection.
//!
//! A record: 8-byte little-endian doubles — the counter clock, the counters,
//! the gauge clock, the gauges — with NaN for a clock never set. An entity: its
//! version (one such double), then its JSON.

use crate::features::FeatureError;
use crate::features::aggregates::{
    AggregateKind, AggregateRecord, MAX_COUNTER_FIELDS, WINDOW_COUNT,
};
use crate::features::entities::{Entity, EntityWrite};

/// Writes a record as [`parse_record`] reads it, replacing what `out` held.
pub(super) fn encode_record(kind: AggregateKind, record: &AggregateRecord, out: &mut Vec<u8>) {
    let counters = kind.counters().len() * WINDOW_COUNT;
    let clock = |at: Option<f64>| at.unwrap_or(f64::NAN).to_le_bytes();
    out.clear();
    out.extend_from_slice(&clock(record.counters_at));
    for value in &record.counters[..counters] {
        out.extend_from_slice(&value.to_le_bytes());
    }
    out.extend_from_slice(&clock(record.gauges_at));
    for value in &record.gauges[..kind.gauges().len()] {
        out.extend_from_slice(&value.to_le_bytes());
    }
}

/// Reads a stored record: little-endian doubles in
/// [`field_names`](crate::features::aggregates::field_names) order, NaN for a
/// clock that was never set. Any other length than the kind's is corrupt.
pub(super) fn parse_record(
    kind: AggregateKind,
    bytes: &[u8],
) -> Result<AggregateRecord, FeatureError> {
    let counters = kind.counters().len() * WINDOW_COUNT;
    let gauges = kind.gauges().len();
    if bytes.len() != 8 * (2 + counters + gauges) || counters > MAX_COUNTER_FIELDS {
        return Err(FeatureError::corrupt(format!(
            "record of kind {} has {} bytes",
            kind.name(),
            bytes.len()
        )));
    }
    let number = |i: usize| {
        let mut raw = [0u8; 8];
        raw.copy_from_slice(&bytes[8 * i..8 * i + 8]);
        f64::from_le_bytes(raw)
    };
    let clock = |i: usize| Some(number(i)).filter(|x| !x.is_nan());
    let mut record = AggregateRecord {
        counters_at: clock(0),
        gauges_at: clock(1 + counters),
        ..AggregateRecord::default()
    };
    for i in 0..counters {
        record.counters[i] = number(1 + i);
    }
    for g in 0..gauges {
        record.gauges[g] = number(2 + counters + g);
    }
    Ok(record)
}

/// Writes an entity as [`entity_version`] and [`parse_entity`] read it, with
/// `stages` as the mask of its leg's stages counted, replacing what `out`
/// held.
pub(super) fn encode_entity(
    write: &EntityWrite,
    stages: u8,
    out: &mut Vec<u8>,
) -> Result<(), FeatureError> {
    out.clear();
    out.extend_from_slice(&write.version.to_le_bytes());
    out.extend_from_slice(&f64::from(stages).to_le_bytes());
    serde_json::to_writer(&mut *out, &write.entity)
        .map_err(|e| FeatureError::corrupt_with(e.to_string(), e))
}

/// The version of a stored entity, or `None` if it is too short to hold one.
pub(super) fn entity_version(bytes: &[u8]) -> Option<f64> {
    let raw: [u8; 8] = bytes.get(..8)?.try_into().ok()?;
    Some(f64::from_le_bytes(raw))
}

/// Reads a stored entity: its version and the mask of its leg's stages
/// counted (8 bytes each, skipped), then its JSON; `None` for a mask alone (a
/// leg's stages counted while its state was not at hand). A value written
/// before the mask existed has its JSON right after the version.
pub(super) fn parse_entity(bytes: &[u8]) -> Result<Option<Entity>, FeatureError> {
    let json = match bytes.get(8) {
        Some(b'{') => &bytes[8..],
        Some(_) if bytes.len() >= 16 => &bytes[16..],
        _ => {
            return Err(FeatureError::corrupt(format!(
                "stored entity of {} bytes",
                bytes.len()
            )));
        }
    };
    if json.is_empty() {
        return Ok(None);
    }
    serde_json::from_slice(json)
        .map(Some)
        .map_err(|e| FeatureError::corrupt_with(format!("stored entity: {e}"), e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Shipment, ShipmentStatus, Timestamp};
    use crate::features::aggregates::field_names;
    use crate::features::entities::entity_write;
    use crate::features::redis_store::every_kind;

    /// A record of `kind` whose every field holds a distinct value.
    fn filled(kind: AggregateKind) -> AggregateRecord {
        let mut record = AggregateRecord {
            counters_at: Some(1_773_000_000.25),
            gauges_at: Some(1_773_000_600.5),
            ..AggregateRecord::default()
        };
        for i in 0..kind.counters().len() * WINDOW_COUNT {
            record.counters[i] = 0.5 + i as f64;
        }
        for g in 0..kind.gauges().len() {
            record.gauges[g] = -3.0 - g as f64;
        }
        record
    }

    #[test]
    fn every_kind_round_trips_in_its_field_order() {
        let mut bytes = vec![0xAA; 3]; // encoding replaces what was there
        for kind in every_kind() {
            let record = filled(kind);
            encode_record(kind, &record, &mut bytes);
            assert_eq!(bytes.len(), 8 * field_names(kind).len(), "{kind:?}");
            assert_eq!(parse_record(kind, &bytes).unwrap(), record, "{kind:?}");
            // Field order: the counter clock first, the gauge clock after the
            // counters.
            let counters = kind.counters().len() * WINDOW_COUNT;
            assert_eq!(bytes[..8], 1_773_000_000.25f64.to_le_bytes());
            assert_eq!(
                bytes[8 * (1 + counters)..8 * (2 + counters)],
                1_773_000_600.5f64.to_le_bytes()
            );
        }
    }

    #[test]
    fn clocks_never_set_are_nan_and_read_back_unset() {
        for kind in every_kind() {
            let record = AggregateRecord::default();
            let mut bytes = Vec::new();
            encode_record(kind, &record, &mut bytes);
            let counters = kind.counters().len() * WINDOW_COUNT;
            assert!(f64::from_le_bytes(bytes[..8].try_into().unwrap()).is_nan());
            let gauge_clock = &bytes[8 * (1 + counters)..8 * (2 + counters)];
            assert!(f64::from_le_bytes(gauge_clock.try_into().unwrap()).is_nan());
            let parsed = parse_record(kind, &bytes).unwrap();
            assert_eq!(parsed.counters_at, None);
            assert_eq!(parsed.gauges_at, None);
            assert_eq!(parsed, record);
        }
    }

    #[test]
    fn a_record_of_another_length_is_corrupt() {
        for kind in every_kind() {
            let mut bytes = Vec::new();
            encode_record(kind, &filled(kind), &mut bytes);
            for wrong in [
                &bytes[..bytes.len() - 8],
                &bytes[..bytes.len() - 1],
                &[][..],
            ] {
                let error = parse_record(kind, wrong).unwrap_err();
                assert!(
                    matches!(error, FeatureError::Corrupt { .. }),
                    "{kind:?}: {error}"
                );
                assert!(
                    error.to_string().contains(kind.name()),
                    "names the kind: {error}"
                );
            }
            let longer = [&bytes[..], &[0u8; 8][..]].concat();
            assert!(matches!(
                parse_record(kind, &longer),
                Err(FeatureError::Corrupt { .. })
            ));
        }
        // A record read as a kind of another size is refused.
        let mut site = Vec::new();
        encode_record(AggregateKind::Site, &filled(AggregateKind::Site), &mut site);
        assert!(parse_record(AggregateKind::Inventory, &site).is_err());
    }

    fn shipment_write() -> EntityWrite {
        let departure = Timestamp(1_773_000_000_000);
        entity_write(&Entity::Shipment(Shipment {
            tracking: Default::default(),
            shipment_id: "S-1".into(),
            carrier: "XPO".into(),
            origin: "ATL".into(),
            destination: "JFK".into(),
            scheduled_departure: departure,
            scheduled_arrival: departure.plus_minutes(600.0),
            actual_departure: Some(departure),
            actual_arrival: None,
            status: ShipmentStatus::InTransit,
        }))
    }

    #[test]
    fn an_entity_is_its_version_its_stages_then_its_json() {
        let write = shipment_write();
        let mut bytes = vec![1, 2, 3];
        encode_entity(&write, 0, &mut bytes).unwrap();
        assert_eq!(bytes[..8], write.version.to_le_bytes());
        assert_eq!(bytes[8..16], 0.0f64.to_le_bytes(), "no stage counted yet");
        let json: serde_json::Value = serde_json::from_slice(&bytes[16..]).unwrap();
        assert_eq!(json["kind"], "shipment", "{json}");
        assert_eq!(entity_version(&bytes), Some(write.version));
        assert_eq!(parse_entity(&bytes).unwrap(), Some(write.entity.clone()));
        // As the script stores it once stages were counted.
        bytes[8..16].copy_from_slice(&5.0f64.to_le_bytes());
        assert_eq!(parse_entity(&bytes).unwrap(), Some(write.entity.clone()));
        // A mask alone is no entity; a value from before masks still is one.
        assert_eq!(parse_entity(&bytes[..16]).unwrap(), None);
        let old: Vec<u8> = bytes[..8].iter().chain(&bytes[16..]).copied().collect();
        assert_eq!(parse_entity(&old).unwrap(), Some(write.entity));
    }

    #[test]
    fn garbage_is_not_an_entity() {
        let mut bytes = Vec::new();
        encode_entity(&shipment_write(), 0, &mut bytes).unwrap();
        assert_eq!(entity_version(&bytes[..7]), None, "too short for a version");
        let truncated = parse_entity(&bytes[..bytes.len() - 1]).unwrap_err();
        assert!(
            matches!(
                &truncated,
                FeatureError::Corrupt {
                    source: Some(_),
                    ..
                }
            ),
            "{truncated:?}"
        );
        assert!(
            truncated.to_string().contains("stored entity"),
            "{truncated}"
        );
        for garbage in [&b"1234567not json"[..], &b"12345678"[..], &b"short"[..]] {
            assert!(
                matches!(parse_entity(garbage), Err(FeatureError::Corrupt { .. })),
                "{garbage:?}"
            );
        }
        let mut unknown_kind = 7.0f64.to_le_bytes().to_vec();
        unknown_kind.extend_from_slice(br#"{"kind":"parcel"}"#);
        assert!(parse_entity(&unknown_kind).is_err());
    }
}
