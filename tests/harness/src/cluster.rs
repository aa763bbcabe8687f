//! [`Cluster`]: what a test gets, local or real.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context, Result};
use k8s_openapi::apimachinery::pkg::version::Info;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use crate::local::Local;
use crate::{crds, namespace};

/// A Kubernetes API server for one test: a local etcd + kube-apiserver, or
/// the real cluster named by `FERRY_TEST_KUBECONFIG`. Dropping it stops the
/// local servers and removes their files, or deletes the namespaces it
/// created on the real cluster.
pub struct Cluster {
    client: Client,
    kubeconfig: PathBuf,
    namespace: String,
    version: Info,
    namespaces: Mutex<Vec<String>>,
    local: Option<Local>,
}

/// Options for [`Cluster::start`].
#[derive(Debug, Clone)]
pub struct ClusterBuilder {
    controller_manager: bool,
    gateway_api: bool,
}

// === impl ClusterBuilder ===

impl ClusterBuilder {
    /// Also run kube-controller-manager (namespace deletion, garbage
    /// collection, Endpoints, ServiceAccount token Secrets, CSR signing
    /// with the cluster CA). Real clusters have one anyway.
    pub fn with_controller_manager(mut self) -> Self {
        self.controller_manager = true;
        self
    }

    /// Skip installing the Gateway API CRDs.
    pub fn without_gateway_api(mut self) -> Self {
        self.gateway_api = false;
        self
    }

    /// Starts (or connects to) the cluster, installs the Gateway API CRDs and
    /// creates a fresh namespace.
    pub async fn start(self) -> Result<Cluster> {
        let (client, kubeconfig, local) = match std::env::var_os(crate::TEST_KUBECONFIG_ENV) {
            Some(path) => {
                let path = PathBuf::from(path);
                (client_from(&path).await?, path, None)
            }
            None => {
                let (local, client) = Local::start(self.controller_manager).await?;
                (client, local.kubeconfig.clone(), Some(local))
            }
        };
        let version = client
            .apiserver_version()
            .await
            .context("failed to read the server version")?;
        let mut cluster = Cluster {
            client,
            kubeconfig,
            namespace: String::new(),
            version,
            namespaces: Mutex::new(Vec::new()),
            local,
        };
        if self.gateway_api {
            crds::install(&cluster.client)
                .await
                .map_err(|e| cluster.with_logs(e))?;
        }
        cluster.namespace = cluster.new_namespace("").await?;
        Ok(cluster)
    }
}

// === impl Cluster ===

impl Cluster {
    /// A local cluster with the Gateway API CRDs (or the real cluster of
    /// `FERRY_TEST_KUBECONFIG`), and a fresh namespace.
    pub async fn start() -> Result<Self> {
        Self::builder().start().await
    }

    /// Options: controller manager, Gateway API CRDs.
    pub fn builder() -> ClusterBuilder {
        ClusterBuilder {
            controller_manager: false,
            gateway_api: true,
        }
    }

    /// A client authenticated as a cluster admin (`system:masters`).
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// A kubeconfig file for the same admin, for tools and child processes.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The test's own namespace, named after the test, with a `default`
    /// ServiceAccount.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Creates another fresh namespace named `prefix-xxxxx` (or after the
    /// test, if `prefix` is empty); it goes away with the cluster.
    pub async fn new_namespace(&self, prefix: &str) -> Result<String> {
        let name = namespace::unique_name(prefix);
        if let Ok(mut names) = self.namespaces.lock() {
            names.push(name.clone());
        }
        namespace::create(&self.client, &name).await?;
        Ok(name)
    }

    /// The server's version (`/version`), e.g. `minor: "20"` locally.
    pub fn server_version(&self) -> &Info {
        &self.version
    }

    /// Whether the server serves `plural` in `api_version` (`"v1"`,
    /// `"discovery.k8s.io/v1"`), e.g. to pick EndpointSlice v1 or Endpoints.
    pub async fn serves(&self, api_version: &str, plural: &str) -> Result<bool> {
        let listed = if api_version.contains('/') {
            self.client.list_api_group_resources(api_version).await
        } else {
            self.client.list_core_api_resources(api_version).await
        };
        match listed {
            Ok(list) => Ok(list.resources.iter().any(|r| r.name == plural)),
            Err(kube::Error::Api(status)) if status.is_not_found() => Ok(false),
            Err(err) => Err(err).with_context(|| format!("failed to discover {api_version}")),
        }
    }

    /// Whether this is a local apiserver on loopback (which can call
    /// webhooks on `https://127.0.0.1`), not a real cluster.
    pub fn is_local(&self) -> bool {
        self.local.is_some()
    }

    /// The PEM CA that signed the local apiserver's certificate.
    pub fn ca_pem(&self) -> Option<&str> {
        self.local.as_ref().map(|l| l.ca_pem.as_str())
    }

    /// The local cluster's directory: certificates, kubeconfig, server logs.
    pub fn data_dir(&self) -> Option<&Path> {
        self.local.as_ref().map(Local::dir)
    }

    /// The last lines of the local servers' logs, for failure messages.
    pub fn logs(&self) -> String {
        self.local.as_ref().map(Local::logs).unwrap_or_default()
    }

    fn with_logs(&self, err: anyhow::Error) -> anyhow::Error {
        match &self.local {
            Some(local) => err.context(local.logs()),
            None => err,
        }
    }
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("kubeconfig", &self.kubeconfig)
            .field("namespace", &self.namespace)
            .field("version", &self.version.git_version)
            .field("local", &self.local)
            .finish_non_exhaustive()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.local.is_some() {
            return; // `Local` stops the servers; the namespaces go with etcd.
        }
        let names = self
            .namespaces
            .lock()
            .map(|n| n.clone())
            .unwrap_or_default();
        let kubeconfig = self.kubeconfig.clone();
        // Drop may run inside the test's runtime: delete from a thread that
        // has its own.
        let cleanup = std::thread::spawn(move || -> Result<()> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                namespace::delete_all(&client_from(&kubeconfig).await?, &names).await
            })
        });
        match cleanup.join() {
            Ok(Ok(())) => {}
            Ok(Err(err)) => eprintln!("ferry-harness: cleanup failed: {err:#}"),
            Err(_) => eprintln!("ferry-harness: cleanup panicked"),
        }
    }
}

/// A client for the current context of a kubeconfig file.
pub(crate) async fn client_from(path: &Path) -> Result<Client> {
    // kube's rustls client takes the process-wide provider; make it ring
    // even if another crate in the test binary enables a second provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let kubeconfig = Kubeconfig::read_from(path)
        .with_context(|| format!("failed to read kubeconfig {}", path.display()))?;
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .with_context(|| format!("invalid kubeconfig {}", path.display()))?;
    Client::try_from(config).context("failed to build a client")
}
