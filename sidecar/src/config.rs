//! Where the proxy's config comes from. Gateway mode reads a directory of
//! YAML files, polling it for changes; each change is compiled and, when
//! every file loads, published as a new [`Snapshot`]. When a file fails,
//! its errors are reported with file and line and the last good snapshot
//! stays in force.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ferry_core::model::ProxyConfig;
use tokio::sync::watch;

pub mod discovery;
#[cfg(test)]
mod tests;

/// One applied config.
#[derive(Debug)]
pub struct Snapshot {
    /// Increases with every applied config, from 1.
    pub version: u64,
    /// What the proxy serves.
    pub config: Arc<ProxyConfig>,
    /// Computed status of the objects the config came from, for `/config`.
    pub status: serde_json::Value,
}

/// The config in force; `None` until the first one loads.
pub type ConfigRx = watch::Receiver<Option<Arc<Snapshot>>>;

/// The errors of the last load attempt; empty when it succeeded.
pub type ErrorsRx = watch::Receiver<Vec<String>>;

/// A file read from the config directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceFile {
    /// Its path.
    pub path: PathBuf,
    /// Its contents.
    pub text: String,
}

/// A successful compilation.
#[derive(Debug)]
pub struct Compiled {
    /// What to serve.
    pub config: ProxyConfig,
    /// Computed status, for `/config`.
    pub status: serde_json::Value,
}

/// Why a set of files did not produce a config.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A file could not be read.
    #[error("failed to read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A file is not valid YAML or not a valid object.
    #[error("{message}")]
    Parse {
        /// The file.
        file: String,
        /// The line, when known (1-based).
        line: Option<u64>,
        /// What is wrong, starting with `file:line`.
        message: String,
    },
}

/// Turns the directory's files into a config.
pub trait Compile: Send + 'static {
    /// Loads and compiles `files` as a whole.
    fn compile(&mut self, files: &[SourceFile]) -> Result<Compiled, Vec<LoadError>>;
}

/// Publishes snapshots and load errors.
#[derive(Debug)]
pub struct Publisher {
    snapshot: watch::Sender<Option<Arc<Snapshot>>>,
    errors: watch::Sender<Vec<String>>,
    version: u64,
}

/// Watches a directory of YAML files.
#[derive(Debug)]
pub struct FileSource<C> {
    dir: PathBuf,
    interval: Duration,
    compiler: C,
}

type Fingerprint = Vec<(PathBuf, u64, Option<SystemTime>)>;

// === impl Publisher ===

impl Publisher {
    /// A publisher and the receivers of its snapshots and errors.
    pub fn channel() -> (Self, ConfigRx, ErrorsRx) {
        let (snapshot, config_rx) = watch::channel(None);
        let (errors, errors_rx) = watch::channel(Vec::new());
        let publisher = Self {
            snapshot,
            errors,
            version: 0,
        };
        (publisher, config_rx, errors_rx)
    }

    /// Applies `compiled` as the new config.
    pub fn publish(&mut self, compiled: Compiled) {
        self.version += 1;
        let snapshot = Snapshot {
            version: self.version,
            config: Arc::new(compiled.config),
            status: compiled.status,
        };
        self.snapshot.send_replace(Some(Arc::new(snapshot)));
        self.errors.send_replace(Vec::new());
    }

    /// Reports a failed load; the last good config stays.
    pub fn fail(&mut self, errors: &[LoadError]) {
        self.errors
            .send_replace(errors.iter().map(ToString::to_string).collect());
    }
}

// === impl FileSource ===

impl<C: Compile> FileSource<C> {
    /// Watches `dir`, checking every `interval`.
    pub fn new(dir: impl Into<PathBuf>, interval: Duration, compiler: C) -> Self {
        Self {
            dir: dir.into(),
            interval,
            compiler,
        }
    }

    /// Loads the directory now and on every change, until `publisher`'s
    /// receivers are all gone.
    pub async fn run(mut self, mut publisher: Publisher) {
        let mut last: Option<Fingerprint> = None;
        let mut list_error: Option<String> = None;
        let mut interval = tokio::time::interval(self.interval);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while !publisher.snapshot.is_closed() {
            interval.tick().await;
            let fingerprint = match fingerprint(&self.dir).await {
                Ok(fingerprint) => fingerprint,
                Err(error) => {
                    // Logged once per distinct error, not on every poll.
                    let message = error.to_string();
                    if list_error.as_ref() != Some(&message) {
                        tracing::warn!(dir = %self.dir.display(), %error, "Failed to list config directory");
                        publisher.errors.send_replace(vec![format!(
                            "failed to list {}: {message}",
                            self.dir.display()
                        )]);
                        list_error = Some(message);
                    }
                    continue;
                }
            };
            if list_error.take().is_some() {
                last = None;
            }
            if last.as_ref() == Some(&fingerprint) {
                continue;
            }
            last = Some(fingerprint.clone());
            match self.load(&fingerprint).await {
                Ok(compiled) => {
                    tracing::info!(files = fingerprint.len(), "Applied config");
                    publisher.publish(compiled);
                }
                Err(errors) => {
                    for error in &errors {
                        match error {
                            LoadError::Parse {
                                file,
                                line: Some(line),
                                ..
                            } => tracing::error!(
                                %file,
                                line,
                                %error,
                                "Config not applied; keeping the last good one"
                            ),
                            _ => {
                                tracing::error!(%error, "Config not applied; keeping the last good one")
                            }
                        }
                    }
                    publisher.fail(&errors);
                }
            }
        }
    }

    async fn load(&mut self, fingerprint: &Fingerprint) -> Result<Compiled, Vec<LoadError>> {
        let mut files = Vec::with_capacity(fingerprint.len());
        let mut errors = Vec::new();
        for (path, _, _) in fingerprint {
            match tokio::fs::read_to_string(path).await {
                Ok(text) => files.push(SourceFile {
                    path: path.clone(),
                    text,
                }),
                Err(source) => errors.push(LoadError::Read {
                    path: path.clone(),
                    source,
                }),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        self.compiler.compile(&files)
    }
}

/// The YAML and JSON files of `dir` (not hidden ones) with their sizes and
/// modification times, sorted by path.
async fn fingerprint(dir: &Path) -> std::io::Result<Fingerprint> {
    let mut entries = tokio::fs::read_dir(dir).await?;
    let mut out = Vec::new();
    while let Some(entry) = entries.next_entry().await? {
        let path = entry.path();
        let config_file = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"));
        if !config_file {
            continue;
        }
        let hidden = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'));
        if hidden {
            continue;
        }
        // Follows symlinks: a mounted ConfigMap's files are links into a
        // directory that is swapped on every update.
        let Ok(meta) = tokio::fs::metadata(&path).await else {
            continue;
        };
        if meta.is_file() {
            out.push((path, meta.len(), meta.modified().ok()));
        }
    }
    out.sort();
    Ok(out)
}
