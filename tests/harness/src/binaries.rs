//! Where the server binaries are: built and cached by `tests/cluster/kube.sh`.

use std::env;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// The Kubernetes version of the local kube-apiserver and controller manager.
pub const KUBE_VERSION: &str = "1.20.2";

/// Paths of the three server binaries.
#[derive(Debug, Clone)]
pub(crate) struct Binaries {
    pub(crate) etcd: PathBuf,
    pub(crate) apiserver: PathBuf,
    pub(crate) controller_manager: PathBuf,
}

// === impl Binaries ===

impl Binaries {
    /// Finds the binaries: `FERRY_KUBE_BIN_DIR` or the cache of `kube.sh`
    /// for kube-*, `FERRY_ETCD` or `etcd` on `PATH` for etcd.
    pub(crate) fn locate() -> Result<Self> {
        let kube_dir = match env::var_os("FERRY_KUBE_BIN_DIR") {
            Some(dir) => PathBuf::from(dir),
            None => cache_dir()?.join(format!("kube-{KUBE_VERSION}/bin")),
        };
        let etcd = match env::var_os("FERRY_ETCD") {
            Some(path) => PathBuf::from(path),
            None => on_path("etcd").unwrap_or_else(|| PathBuf::from("/usr/bin/etcd")),
        };
        let found = Self {
            etcd,
            apiserver: kube_dir.join("kube-apiserver"),
            controller_manager: kube_dir.join("kube-controller-manager"),
        };
        for path in [&found.etcd, &found.apiserver, &found.controller_manager] {
            if !path.is_file() {
                bail!(
                    "{} is missing: run tests/cluster/kube.sh once (it installs etcd and \
                     builds kube-apiserver {KUBE_VERSION}; see tests/README.md), or set \
                     {} to test against a real cluster",
                    path.display(),
                    crate::TEST_KUBECONFIG_ENV,
                );
            }
        }
        Ok(found)
    }
}

/// The same directory `kube.sh` uses: `$FERRY_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/ferry`, else `~/.cache/ferry`.
/// Ferry's cache of built binaries: `FERRY_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/ferry`, else `~/.cache/ferry`.
pub(crate) fn cache_dir() -> Result<PathBuf> {
    if let Some(dir) = env::var_os("FERRY_CACHE_DIR") {
        return Ok(PathBuf::from(dir));
    }
    if let Some(dir) = env::var_os("XDG_CACHE_HOME") {
        return Ok(Path::new(&dir).join("ferry"));
    }
    let home = env::var_os("HOME").context("neither FERRY_CACHE_DIR nor HOME is set")?;
    Ok(Path::new(&home).join(".cache/ferry"))
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = env::var_os("PATH")?;
    env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}
