//! Test support for everything in Ferry that talks to Kubernetes.
//!
//! `ferry-harness` owns the test clusters: for each test it starts a real
//! etcd and a real kube-apiserver 1.20 (and, on request, the
//! kube-controller-manager) on free loopback ports with throwaway
//! certificates, installs the Gateway API CRDs (standard channel, from
//! `charts/ferry/files/gateway-api/standard/`), and hands the test a
//! [`kube::Client`], a kubeconfig file and a fresh namespace. Everything is
//! torn down when the [`Cluster`] is dropped, also while a test panics.
//!
//! The binaries come from `tests/cluster/kube.sh`, which builds them once
//! and caches them under `~/.cache/ferry/` (see `tests/README.md`).
//!
//! With `FERRY_TEST_KUBECONFIG` set, [`Cluster::start`] connects to that
//! cluster instead (kind, a cloud cluster): it installs missing Gateway API
//! CRDs, creates a fresh namespace and deletes only that namespace at the end.
//!
//! Processes: the servers of one cluster share a process group led by a tiny
//! `sh` watchdog that blocks reading a pipe whose only writer is the test
//! process. Dropping the [`Cluster`] closes the pipe; so does the kernel when
//! the test process dies in any way (even `SIGKILL`). On end of file the
//! watchdog kills its whole group, so no etcd or apiserver outlives its test.
//!
//! ```no_run
//! # async fn example() -> anyhow::Result<()> {
//! use k8s_openapi::api::core::v1::ConfigMap;
//! use kube::Api;
//!
//! let cluster = ferry_harness::Cluster::start().await?;
//! let maps: Api<ConfigMap> = Api::namespaced(cluster.client(), cluster.namespace());
//! assert!(maps.list(&Default::default()).await?.items.is_empty());
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

mod binaries;
mod cluster;
mod crds;
mod local;
mod namespace;
pub mod node;
mod pki;
mod supervisor;

pub use binaries::KUBE_VERSION;
pub use cluster::{Cluster, ClusterBuilder};
pub use crds::GATEWAY_API_STANDARD;
pub use pki::{IssuedCert, TestCa};

/// Environment variable naming the kubeconfig of a real cluster to run the
/// cluster tests against instead of a local apiserver.
pub const TEST_KUBECONFIG_ENV: &str = "FERRY_TEST_KUBECONFIG";

/// The prefix of every local cluster's data directory; the directory name
/// continues with the owning test process id and a random suffix, so
/// `ferry-harness-<pid>-…` identifies which process a server belongs to.
pub const DATA_DIR_PREFIX: &str = "ferry-harness-";

/// A binary of another crate of the workspace (`ferry-proxy`, …), built
/// beside the running test binary (`target/<profile>/`). Cargo only hands
/// a test the binaries of its own package; `tests/run.sh` builds them all
/// first.
pub fn workspace_binary(name: &str) -> anyhow::Result<std::path::PathBuf> {
    let exe = std::env::current_exe()?;
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(std::path::Path::parent)
        .ok_or_else(|| anyhow::anyhow!("no target directory above {}", exe.display()))?;
    let binary = dir.join(name);
    anyhow::ensure!(
        binary.is_file(),
        "{} is missing: build the workspace first (`cargo build --workspace`; tests/run.sh does)",
        binary.display()
    );
    Ok(binary)
}
