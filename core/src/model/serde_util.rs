//! Serializers for the `/config` JSON view of types that are not serde's.

use std::fmt::Display;
use std::time::Duration;

use http::{HeaderName, HeaderValue};
use serde::Serializer;
use serde::ser::SerializeSeq;

pub(super) fn display<T: Display, S: Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(value)
}

pub(super) fn opt_display<T: Display, S: Serializer>(
    value: &Option<T>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match value {
        Some(value) => s.collect_str(value),
        None => s.serialize_none(),
    }
}

pub(super) fn display_seq<T: Display, S: Serializer>(
    values: &[T],
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_seq(values.iter().map(ToString::to_string))
}

pub(super) fn header_pairs<S: Serializer>(
    pairs: &[(HeaderName, HeaderValue)],
    s: S,
) -> Result<S::Ok, S::Error> {
    let mut seq = s.serialize_seq(Some(pairs.len()))?;
    for (name, value) in pairs {
        let value = String::from_utf8_lossy(value.as_bytes());
        seq.serialize_element(&(name.as_str(), value))?;
    }
    seq.end()
}

/// Durations as Gateway API duration strings in milliseconds (`1500ms`).
pub(super) mod opt_duration {
    use super::*;

    pub(in super::super) fn serialize<S: Serializer>(
        value: &Option<Duration>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(d) => s.collect_str(&format_args!("{}ms", d.as_millis())),
            None => s.serialize_none(),
        }
    }
}
