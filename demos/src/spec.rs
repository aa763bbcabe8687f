//! What a demo folder holds: `demo.yaml` (title, certificate to make, curl
//! lines), `manifests/` (the Gateway API objects, the same on a cluster and
//! standalone) and `standalone/` (Services and EndpointSlices whose
//! endpoints are echo servers on loopback). `demos/gatewayclass.yaml` is
//! shared by every demo; on a cluster the Helm chart installs it.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::Deserialize;

/// A demo folder, loaded.
#[derive(Debug)]
pub struct Demo {
    /// Folder name, e.g. `traefik-whoami`.
    pub name: String,
    /// Path of the folder.
    pub dir: PathBuf,
    /// Its `demo.yaml`.
    pub spec: DemoSpec,
}

/// The contents of `demo.yaml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DemoSpec {
    /// One line saying what the demo shows.
    pub title: String,
    /// A certificate to generate for an HTTPS listener.
    #[serde(default)]
    pub tls: Option<TlsSpec>,
    /// Commands to try. `{ca}` becomes the demo CA's path, `{config}` the
    /// gateway's config directory and `{demo}` the demo folder.
    #[serde(rename = "try")]
    pub try_lines: Vec<String>,
}

/// The Secret a Gateway's `certificateRefs` name, generated at start.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSpec {
    /// Secret name.
    pub secret: String,
    /// Secret namespace.
    pub namespace: String,
    /// DNS names of the certificate.
    pub dns_names: Vec<String>,
}

// === impl Demo ===

impl Demo {
    /// The folder that holds every demo: `demos/` of this repository.
    pub fn root() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
    }

    /// Loads `root/name/demo.yaml`.
    pub fn load(root: &Path, name: &str) -> anyhow::Result<Self> {
        let dir = root.join(name);
        let path = dir.join("demo.yaml");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("failed to read {}", path.display()))?;
        let spec = serde_saphyr::from_str(&text)
            .with_context(|| format!("failed to parse {}", path.display()))?;
        Ok(Self {
            name: name.to_string(),
            dir,
            spec,
        })
    }

    /// Names of every folder under `root` that has a `demo.yaml`, sorted.
    pub fn list(root: &Path) -> anyhow::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(root)? {
            let entry = entry?;
            if entry.path().join("demo.yaml").is_file() {
                names.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        names.sort();
        Ok(names)
    }

    /// The YAML files the gateway reads: the shared GatewayClass, then
    /// `manifests/` and `standalone/`, each sorted. Each comes with the name
    /// it gets in the gateway's config directory.
    pub fn config_files(&self) -> anyhow::Result<Vec<(String, PathBuf)>> {
        let root = self.dir.parent().context("a demo folder has a parent")?;
        let mut files = vec![(
            "gatewayclass.yaml".to_string(),
            root.join("gatewayclass.yaml"),
        )];
        for folder in ["manifests", "standalone"] {
            files.extend(
                yaml_files(&self.dir.join(folder))?
                    .into_iter()
                    .map(|path| (config_name(folder, &path), path)),
            );
        }
        Ok(files)
    }
}

/// `manifests/route.yaml` is `manifests-route.yaml` in the config directory.
fn config_name(folder: &str, path: &Path) -> String {
    let file = path.file_name().unwrap_or_default().to_string_lossy();
    format!("{folder}-{file}")
}

fn yaml_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in
        std::fs::read_dir(dir).with_context(|| format!("failed to list {}", dir.display()))?
    {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}
