//! Reading objects from multi-document YAML files (standalone mode, tests).
//!
//! Each document is dispatched on `apiVersion` and `kind`, then read into its
//! typed struct, so a mistake is reported at its line and column. Kinds Ferry
//! does not read (Deployments, ServiceAccounts, ...) are listed in
//! [`Loaded::ignored`] instead of failing the file; old `v1alpha*` Gateway API
//! shapes fail with a message naming the current version.

use std::fmt;
use std::sync::Arc;

use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::{Kind, Object};

/// What a YAML file held.
#[derive(Clone, Debug, Default)]
pub struct Loaded {
    /// Objects Ferry reads, in file order.
    pub objects: Vec<Object>,
    /// Documents of other kinds, skipped.
    pub ignored: Vec<Ignored>,
}

/// A document that was skipped because Ferry does not read its kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ignored {
    /// Where the document starts.
    pub at: SourceLocation,
    /// Its `apiVersion`.
    pub api_version: String,
    /// Its `kind`.
    pub kind: String,
    /// Its `metadata.name`, if any.
    pub name: Option<String>,
}

/// A place in a source file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceLocation {
    /// The file name (or another name of the source).
    pub source: Arc<str>,
    /// 1-based line.
    pub line: u64,
    /// 1-based column, when known.
    pub column: Option<u64>,
}

/// Errors of [`load_yaml`]. Each carries where it happened
/// ([`LoadError::location`]).
#[derive(Clone, Debug, thiserror::Error)]
pub enum LoadError {
    /// The text is not valid YAML.
    #[error("{at}: failed to parse YAML: {message}")]
    Syntax {
        /// Where.
        at: SourceLocation,
        /// What the parser said.
        message: String,
    },
    /// A document lacks `apiVersion` or `kind`.
    #[error("{at}: failed to read document: it has no apiVersion and kind")]
    MissingTypeMeta {
        /// Where the document starts.
        at: SourceLocation,
    },
    /// A document of a known kind does not have the expected shape.
    #[error("{at}: failed to read {kind} {name}: {message}")]
    Invalid {
        /// Where.
        at: SourceLocation,
        /// The object's kind.
        kind: Kind,
        /// The object's name, or `(unnamed)`.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// A Gateway API kind in a version Ferry does not read.
    #[error(
        "{at}: failed to read {kind} {name}: apiVersion {api_version} is not supported; \
         use {current}{hint}"
    )]
    UnsupportedVersion {
        /// Where the document starts.
        at: SourceLocation,
        /// The kind.
        kind: Kind,
        /// The object's name, or `(unnamed)`.
        name: String,
        /// The version the document has.
        api_version: String,
        /// The version to use.
        current: &'static str,
        /// What changed in the shape, when it did.
        hint: &'static str,
    },
}

#[derive(Deserialize)]
struct Header {
    #[serde(rename = "apiVersion")]
    api_version: Option<String>,
    kind: Option<String>,
    metadata: Option<HeaderMeta>,
}

#[derive(Deserialize)]
struct ListDoc {
    items: Option<Vec<serde_json::Value>>,
}

#[derive(Deserialize)]
struct HeaderMeta {
    name: Option<String>,
}

/// A document's text and the line it starts on in the file.
struct Document<'a> {
    text: &'a str,
    first_line: u64,
}

/// Non-routing kinds that are common in manifests next to routes; they are
/// ignored like any unknown kind, this list only documents the intent.
const KNOWN_IGNORED: &[&str] = &[
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "Pod",
    "ServiceAccount",
    "Endpoints",
    "CustomResourceDefinition",
];

/// Reads every document of a multi-document YAML text.
///
/// `source` names the text in errors (usually the file path). Returns the
/// objects of kinds Ferry reads and the documents it skipped; fails on the
/// first document that is not valid YAML, lacks `apiVersion`/`kind`, has an
/// unsupported Gateway API version, or does not fit its kind's schema.
pub fn load_yaml(text: &str, source: &str) -> Result<Loaded, LoadError> {
    let mut loaded = Loaded::default();
    let source: Arc<str> = Arc::from(source);
    for doc in split_documents(text) {
        if doc.text.lines().all(|l| {
            let l = l.trim();
            l.is_empty() || l.starts_with('#') || l == "..."
        }) {
            continue;
        }
        let content = doc.text.lines().position(|l| {
            let l = l.trim();
            !l.is_empty() && !l.starts_with('#')
        });
        let start = SourceLocation {
            source: source.clone(),
            line: doc.first_line + content.unwrap_or(0) as u64,
            column: None,
        };
        let header: Option<Header> =
            serde_saphyr::from_str(doc.text).map_err(|error| LoadError::Syntax {
                at: locate(&error, &source, doc.first_line),
                message: plain(&error),
            })?;
        let Some(header) = header else {
            return Err(LoadError::MissingTypeMeta { at: start });
        };
        if header.kind.as_deref() == Some("List") && header.api_version.as_deref() == Some("v1") {
            // `kubectl get ... -o yaml` output: read each item.
            let list: ListDoc =
                serde_saphyr::from_str(doc.text).map_err(|error| LoadError::Syntax {
                    at: locate(&error, &source, doc.first_line),
                    message: plain(&error),
                })?;
            for (index, item) in list.items.into_iter().flatten().enumerate() {
                let header: Header =
                    serde_json::from_value(item.clone()).map_err(|e| LoadError::Syntax {
                        at: start.clone(),
                        message: format!("items[{index}]: {e}"),
                    })?;
                load_one(&mut loaded, start.clone(), header, |kind| {
                    read_value(kind, item)
                        .map_err(|e| (start.clone(), format!("items[{index}]: {e}")))
                })?;
            }
            continue;
        }
        load_one(&mut loaded, start, header, |kind| {
            read_typed(kind, doc.text)
                .map_err(|error| (locate(&error, &source, doc.first_line), plain(&error)))
        })?;
    }
    Ok(loaded)
}

/// Dispatches one object on its `apiVersion` and `kind`: reads it with
/// `read`, or records it as ignored.
fn load_one(
    loaded: &mut Loaded,
    start: SourceLocation,
    header: Header,
    read: impl FnOnce(Kind) -> Result<Object, (SourceLocation, String)>,
) -> Result<(), LoadError> {
    let Header {
        api_version: Some(api_version),
        kind: Some(kind),
        metadata,
    } = header
    else {
        return Err(LoadError::MissingTypeMeta { at: start });
    };
    let name = metadata.and_then(|m| m.name);
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", &api_version));
    let Some(known) = Kind::from_group_kind(group, &kind) else {
        loaded.ignored.push(Ignored {
            at: start,
            api_version,
            kind,
            name,
        });
        return Ok(());
    };
    let display_name = name.unwrap_or_else(|| "(unnamed)".to_string());
    if let Err((current, hint)) = check_version(known, version) {
        return Err(LoadError::UnsupportedVersion {
            at: start,
            kind: known,
            name: display_name,
            api_version,
            current,
            hint,
        });
    }
    let object = read(known).map_err(|(at, message)| LoadError::Invalid {
        at,
        kind: known,
        name: display_name,
        message,
    })?;
    loaded.objects.push(object);
    Ok(())
}

fn read_typed(kind: Kind, text: &str) -> Result<Object, serde_saphyr::Error> {
    fn read<T: DeserializeOwned>(text: &str) -> Result<T, serde_saphyr::Error> {
        serde_saphyr::from_str(text)
    }
    Ok(match kind {
        Kind::GatewayClass => Object::GatewayClass(read(text)?),
        Kind::Gateway => Object::Gateway(read(text)?),
        Kind::HttpRoute => Object::HttpRoute(read(text)?),
        Kind::GrpcRoute => Object::GrpcRoute(read(text)?),
        Kind::ReferenceGrant => Object::ReferenceGrant(read(text)?),
        Kind::Service => Object::Service(read(text)?),
        Kind::EndpointSlice => Object::EndpointSlice(read(text)?),
        Kind::Secret => Object::Secret(read(text)?),
        Kind::Namespace => Object::Namespace(read(text)?),
        Kind::ConfigMap => Object::ConfigMap(read(text)?),
    })
}

fn read_value(kind: Kind, value: serde_json::Value) -> Result<Object, serde_json::Error> {
    use serde_json::from_value as read;
    Ok(match kind {
        Kind::GatewayClass => Object::GatewayClass(read(value)?),
        Kind::Gateway => Object::Gateway(read(value)?),
        Kind::HttpRoute => Object::HttpRoute(read(value)?),
        Kind::GrpcRoute => Object::GrpcRoute(read(value)?),
        Kind::ReferenceGrant => Object::ReferenceGrant(read(value)?),
        Kind::Service => Object::Service(read(value)?),
        Kind::EndpointSlice => Object::EndpointSlice(read(value)?),
        Kind::Secret => Object::Secret(read(value)?),
        Kind::Namespace => Object::Namespace(read(value)?),
        Kind::ConfigMap => Object::ConfigMap(read(value)?),
    })
}

/// Accepts the versions whose shape the typed structs read; explains the
/// others.
fn check_version(kind: Kind, version: &str) -> Result<(), (&'static str, &'static str)> {
    match kind {
        Kind::Service | Kind::Secret | Kind::Namespace | Kind::ConfigMap | Kind::EndpointSlice => {
            let current = if kind == Kind::EndpointSlice {
                "discovery.k8s.io/v1"
            } else {
                "v1"
            };
            if version == "v1" {
                Ok(())
            } else {
                Err((current, ""))
            }
        }
        // v1beta1 has the same shape as v1 and is still served.
        _ if version == "v1" || version == "v1beta1" => Ok(()),
        _ => {
            let hint = match kind {
                Kind::HttpRoute => {
                    " (v1alpha1 routes changed: `spec.gateways` became `parentRefs`, \
                     `forwardTo` became `backendRefs`, `serviceName` became `name`)"
                }
                Kind::Gateway => {
                    " (v1alpha1 listeners changed: `routes` became `allowedRoutes`, \
                     `tls.certificateRef` became `tls.certificateRefs`)"
                }
                Kind::GatewayClass => " (v1alpha1 `controller` became `controllerName`)",
                _ => "",
            };
            Err(("gateway.networking.k8s.io/v1", hint))
        }
    }
}

/// Splits a YAML stream at `---` lines, keeping each document's first line.
fn split_documents(text: &str) -> Vec<Document<'_>> {
    let mut docs = Vec::new();
    let mut start = 0;
    let mut first_line = 1;
    let mut offset = 0;
    for (index, line) in text.split_inclusive('\n').enumerate() {
        let bare = line.trim_end_matches(['\n', '\r']);
        let is_separator =
            bare.starts_with("---") && bare[3..].chars().next().is_none_or(char::is_whitespace);
        if is_separator {
            docs.push(Document {
                text: &text[start..offset],
                first_line,
            });
            // Content after `--- ` on the same line belongs to the next
            // document; keep its line numbers by starting there.
            start = offset + 3;
            first_line = index as u64 + 1;
        }
        offset += line.len();
    }
    docs.push(Document {
        text: &text[start..],
        first_line,
    });
    docs
}

fn locate(error: &serde_saphyr::Error, source: &Arc<str>, first_line: u64) -> SourceLocation {
    let location = error.without_snippet().location();
    SourceLocation {
        source: source.clone(),
        line: location.map_or(first_line, |l| l.line().max(1) + first_line - 1),
        column: location.map(|l| l.column()).filter(|c| *c > 0),
    }
}

/// The parser's message without its snippet or its own (document-relative)
/// location, which [`locate`] replaces with the file's.
fn plain(error: &serde_saphyr::Error) -> String {
    let text = error.without_snippet().to_string();
    match text.rfind(" at line ") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

// === impl LoadError ===

impl LoadError {
    /// Where the error is.
    pub fn location(&self) -> &SourceLocation {
        match self {
            Self::Syntax { at, .. }
            | Self::MissingTypeMeta { at }
            | Self::Invalid { at, .. }
            | Self::UnsupportedVersion { at, .. } => at,
        }
    }
}

// === impl SourceLocation ===

impl fmt::Display for SourceLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.source, self.line)?;
        if let Some(column) = self.column {
            write!(f, ":{column}")?;
        }
        Ok(())
    }
}

// === impl Ignored ===

impl fmt::Display for Ignored {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ignored {} {}", self.at, self.api_version, self.kind)?;
        if let Some(name) = &self.name {
            write!(f, " {name}")?;
        }
        let why = if KNOWN_IGNORED.contains(&self.kind.as_str()) {
            "Ferry does not route with this kind"
        } else if self.api_version.starts_with("gateway.networking.k8s.io/") {
            "Ferry does not serve this Gateway API kind yet"
        } else {
            "Ferry does not know this kind"
        };
        write!(f, " ({why})")
    }
}
