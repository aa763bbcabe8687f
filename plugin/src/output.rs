//! The versioned envelope of every machine-readable output.
//!
//! `-o json` and `-o yaml` print one object
//! `{"apiVersion": "ferry.dev/v1", "kind": KIND, ...}`; fields are only ever
//! added within a version (see the crate README for the schema).

use serde::Serialize;

/// The `apiVersion` of every output.
pub const API_VERSION: &str = "ferry.dev/v1";

/// An output document: `apiVersion`, `kind`, and the body's fields.
#[derive(Clone, Debug, Serialize)]
pub struct Envelope<T> {
    /// Always [`API_VERSION`].
    #[serde(rename = "apiVersion")]
    pub api_version: &'static str,
    /// `StatusList`, `RouteDescription`, `Tree`, `CheckReport`, ...
    pub kind: &'static str,
    /// The fields.
    #[serde(flatten)]
    pub body: T,
}

/// A list body: `items`.
#[derive(Clone, Debug, Serialize)]
pub struct Items<T> {
    /// The items.
    pub items: Vec<T>,
}

/// Errors writing machine-readable output.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// JSON serialization failed.
    #[error("failed to write JSON output")]
    Json(#[from] serde_json::Error),
    /// YAML serialization failed.
    #[error("failed to write YAML output")]
    Yaml(#[from] serde_saphyr::SerializeError),
}

/// Wraps a body in the envelope.
pub fn envelope<T: Serialize>(kind: &'static str, body: T) -> Envelope<T> {
    Envelope {
        api_version: API_VERSION,
        kind,
        body,
    }
}

/// Pretty JSON with a final newline.
pub fn json<T: Serialize>(value: &T) -> Result<String, OutputError> {
    let mut text = serde_json::to_string_pretty(value)?;
    text.push('\n');
    Ok(text)
}

/// YAML.
pub fn yaml<T: Serialize>(value: &T) -> Result<String, OutputError> {
    // Through serde_json::Value, so both formats have the same shape.
    let value = serde_json::to_value(value)?;
    Ok(serde_saphyr::to_string(&value)?)
}
