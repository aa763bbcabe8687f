//! The file source of standalone mode: a directory of YAML files read as a
//! whole, sent to the index as one relist per kind whenever a file changes.
//! A file that fails to load keeps the previous objects in force.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use ferry_core::objects::{Kind, load_yaml};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::index::{Change, Item, Resource};
use crate::watch::Timed;

/// Errors of one load.
#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    /// A file or the directory could not be read.
    #[error("failed to read {path}")]
    Read {
        /// The path.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// A file is not valid.
    #[error("failed to load {path}")]
    Load {
        /// The path.
        path: PathBuf,
        /// Cause.
        #[source]
        source: Box<ferry_core::objects::LoadError>,
    },
}

/// The resources the file source provides.
pub fn resources() -> Vec<Resource> {
    Kind::ALL.into_iter().map(Resource::Core).collect()
}

/// Loads every `.yaml`/`.yml` file of `dir` into one relist per kind.
pub fn load_dir(dir: &Path) -> Result<Vec<Change>, FilesError> {
    let read = |path: &Path, source| FilesError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| read(dir, e))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    paths.sort();
    let mut by_kind: BTreeMap<Kind, Vec<Item>> =
        Kind::ALL.into_iter().map(|k| (k, Vec::new())).collect();
    for path in paths {
        let text = std::fs::read_to_string(&path).map_err(|e| read(&path, e))?;
        let loaded =
            load_yaml(&text, &path.display().to_string()).map_err(|source| FilesError::Load {
                path: path.clone(),
                source: Box::new(source),
            })?;
        for object in loaded.objects {
            by_kind
                .entry(object.kind())
                .or_default()
                .push(Item::Object(object));
        }
    }
    Ok(by_kind
        .into_iter()
        .map(|(kind, items)| Change::Relist(Resource::Core(kind), items))
        .collect())
}

/// Polls `dir` every `interval` and sends its objects on each change.
pub async fn poll(dir: PathBuf, interval: Duration, tx: mpsc::Sender<Timed>) {
    let mut last: Option<Vec<(PathBuf, Option<SystemTime>, u64)>> = None;
    let mut ticks = tokio::time::interval(interval);
    loop {
        ticks.tick().await;
        let fingerprint = fingerprint(&dir);
        if last.as_ref() == Some(&fingerprint) {
            continue;
        }
        last = Some(fingerprint);
        match load_dir(&dir) {
            Ok(changes) => {
                for change in changes {
                    if tx.send((Instant::now(), change)).await.is_err() {
                        return;
                    }
                }
            }
            Err(error) => tracing::error!(%error, "Config not applied; keeping the last good one"),
        }
    }
}

fn fingerprint(dir: &Path) -> Vec<(PathBuf, Option<SystemTime>, u64)> {
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|e| {
            let meta = e.metadata().ok()?;
            Some((e.path(), meta.modified().ok(), meta.len()))
        })
        .collect();
    out.sort();
    out
}
