//! Against a real kube-apiserver (ferry-harness): the fixture world plus
//! its broken objects, status written through the status subresource,
//! the real binary, golden outputs (`tests/golden/cluster/`).

#[path = "support/cluster.rs"]
mod cluster;
#[path = "support/golden.rs"]
mod golden;

use std::time::Instant;

use anyhow::Result;
use cluster::{apply, run};
use ferry_harness::Cluster;
use golden::assert_golden;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::{Value, json};

const FIXTURE: &str = include_str!("fixtures/mesh.yaml");
const EXTRA: &str = include_str!("fixtures/cluster-extra.yaml");

/// `-o json` without the fields that change from run to run.
fn stable_json(text: &str) -> Result<String> {
    fn strip(v: &mut Value) {
        match v {
            Value::Object(map) => {
                map.remove("creationTimestamp");
                map.values_mut().for_each(strip);
            }
            Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let mut value: Value = serde_json::from_str(text)?;
    strip(&mut value);
    Ok(serde_json::to_string_pretty(&value)? + "\n")
}

#[tokio::test]
async fn status_describe_tree_check_on_a_real_apiserver() -> Result<()> {
    let cluster = Cluster::start().await?;
    if !cluster.is_local() {
        eprintln!("skipped: the golden files assume fixed namespace names on a fresh apiserver");
        return Ok(());
    }
    apply(&cluster.client(), FIXTURE).await?;
    apply(&cluster.client(), EXTRA).await?;
    let kc = cluster.kubeconfig();

    let out = run(kc, &["status", "-A"])?;
    assert_eq!(out.code, 0, "{out:?}");
    assert_golden("cluster/status.txt", &out.stdout);
    let out = run(kc, &["status", "-A", "-o", "wide"])?;
    assert_golden("cluster/status-wide.txt", &out.stdout);

    // The shares are the configured weights, including 0 and a missing backend.
    let out = run(
        kc,
        &[
            "status",
            "-n",
            "shop",
            "httproute/reviews-canary",
            "-o",
            "json",
        ],
    )?;
    let list: Value = serde_json::from_str(&out.stdout)?;
    assert_eq!(list["apiVersion"], "ferry.dev/v1");
    assert_eq!(list["kind"], "StatusList");
    let backends = &list["items"][0]["backends"];
    let shares: Vec<(String, u64, f64)> = backends
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["name"].as_str().unwrap().to_owned(),
                b["weight"].as_u64().unwrap(),
                b["percent"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        shares,
        [
            ("reviews-v1".to_owned(), 0, 0.0),
            ("reviews-v2".to_owned(), 1, 50.0),
            ("reviews-v3".to_owned(), 1, 50.0),
        ]
    );
    assert_eq!(backends[2]["exists"], json!(false));
    assert_eq!(backends[2]["problem"], "BackendNotFound");
    let out = run(kc, &["status", "-A", "-o", "json"])?;
    assert_golden("cluster/status.json", &stable_json(&out.stdout)?);

    let out = run(kc, &["status", "-A", "-l", "team=foo", "--no-headers"])?;
    assert_eq!(out.stdout.lines().count(), 1, "{}", out.stdout);
    assert!(
        out.stdout.starts_with("foo         foo-route "),
        "{}",
        out.stdout
    );
    let out = run(
        kc,
        &[
            "status",
            "-A",
            "--parent",
            "gw/infra/prod-web",
            "--no-headers",
        ],
    )?;
    assert_eq!(out.stdout.lines().count(), 5, "{}", out.stdout);

    for (ns, target) in [
        ("foo", "httproute/foo-typo"),
        ("baz", "httproute/baz-route"),
        ("shop", "httproute/cross"),
        ("shop", "httproute/reviews-canary"),
        ("shop", "grpcroute/reviews-grpc"),
        ("infra", "gateway/prod-web"),
        ("shop", "service/reviews"),
    ] {
        let out = run(kc, &["describe", target, "-n", ns])?;
        assert_eq!(out.code, 0, "{out:?}");
        let file = format!("cluster/describe-{ns}-{}.txt", target.replace('/', "-"));
        // The apiserver picks ClusterIPs.
        let text: String = out
            .stdout
            .lines()
            .map(|l| match l.starts_with("ClusterIP:") {
                true => "ClusterIP:    <allocated>\n".to_owned(),
                false => format!("{l}\n"),
            })
            .collect();
        assert_golden(&file, &text);
    }
    let out = run(kc, &["describe", "httproute/nope", "-n", "shop"])?;
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("not found"), "{}", out.stderr);

    let out = run(kc, &["tree", "-A"])?;
    assert_golden("cluster/tree.txt", &out.stdout);
    let out = run(
        kc,
        &["tree", "service/reviews", "-n", "shop", "-o", "mermaid"],
    )?;
    assert_golden("cluster/tree-reviews.mmd", &out.stdout);

    let out = run(kc, &["check", "-A"])?;
    assert_eq!(out.code, 79, "{out:?}");
    assert_golden("cluster/check.txt", &out.stdout);
    for code in ["GW102", "GW104", "GW203"] {
        assert!(out.stdout.contains(code), "{code} missing:\n{}", out.stdout);
    }
    // A namespace without problems (the harness's own, empty) is clean.
    let out = run(kc, &["check", "-n", cluster.namespace()])?;
    assert_eq!(out.code, 0, "{out:?}");
    Ok(())
}

/// The seed scenarios as the demos ship them for a cluster: no controller,
/// no backend Services (so every backend is flagged), and the blog's baz
/// team refused by the listener.
#[tokio::test]
async fn seed_scenarios_from_the_demos() -> Result<()> {
    let cluster = Cluster::start().await?;
    if !cluster.is_local() {
        eprintln!("skipped: the golden files assume a fresh apiserver");
        return Ok(());
    }
    let demos = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../demos");
    let mut files = vec![demos.join("gatewayclass.yaml")];
    for entry in std::fs::read_dir(&demos)? {
        let manifests = entry?.path().join("manifests");
        if manifests.is_dir() {
            for file in std::fs::read_dir(manifests)? {
                files.push(file?.path());
            }
        }
    }
    files.sort();
    let mut docs: Vec<Value> = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file)?;
        docs.extend(
            serde_saphyr::from_multiple::<Value>(&text)?
                .into_iter()
                .filter(|d| !d.is_null()),
        );
    }
    // Namespaces first; each document as JSON, which is YAML too.
    docs.sort_by_key(|d| d["kind"] != "Namespace");
    for doc in &docs {
        apply(&cluster.client(), &serde_json::to_string(doc)?).await?;
    }
    let kc = cluster.kubeconfig();
    let out = run(kc, &["status", "-A"])?;
    assert_eq!(out.code, 0, "{out:?}");
    assert_golden("cluster/seeds-status.txt", &out.stdout);
    let out = run(kc, &["tree", "-A"])?;
    assert_golden("cluster/seeds-tree.txt", &out.stdout);
    let out = run(kc, &["check", "-A"])?;
    assert_eq!(out.code, 79, "{out:?}");
    assert_golden("cluster/seeds-check.txt", &out.stdout);
    let out = run(kc, &["describe", "httproute/baz-route", "-n", "baz"])?;
    assert!(
        out.stdout.contains("NotAllowedByListeners"),
        "{}",
        out.stdout
    );
    Ok(())
}

#[tokio::test]
async fn missing_crds_are_skipped_with_a_note() -> Result<()> {
    let cluster = Cluster::start().await?;
    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        Api::all(cluster.client());
    for name in ["grpcroutes", "tcproutes", "tlsroutes", "udproutes"] {
        crds.delete(
            &format!("{name}.gateway.networking.k8s.io"),
            &DeleteParams::default(),
        )
        .await?;
    }
    let ns = cluster.namespace();
    let yaml = format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: alone, namespace: {ns}}}\n\
         spec:\n  parentRefs: [{{group: \"\", kind: Service, name: svc, port: 80}}]\n  rules:\n    - backendRefs: [{{name: svc, port: 80}}]\n"
    );
    // CRD deletion is asynchronous: wait until discovery no longer lists them.
    for _ in 0..100 {
        let mut served = false;
        for plural in ["grpcroutes", "tcproutes", "tlsroutes", "udproutes"] {
            served |= cluster
                .serves("gateway.networking.k8s.io/v1", plural)
                .await?;
        }
        if !served {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    apply(&cluster.client(), &yaml).await?;
    let out = run(cluster.kubeconfig(), &["status", "-n", ns, "--no-headers"])?;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("alone"), "{out:?}");
    assert!(out.stdout.contains("NoStatus"), "{out:?}");
    assert!(
        out.stderr.contains("GRPCRoutes are not served"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("UDPRoutes are not served"),
        "{}",
        out.stderr
    );
    Ok(())
}

#[tokio::test]
async fn watch_prints_the_table_again_when_status_changes() -> Result<()> {
    use std::io::{BufRead as _, BufReader};
    use std::process::{Command, Stdio};

    let cluster = Cluster::start().await?;
    let ns = cluster.namespace().to_owned();
    let yaml = format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: watched, namespace: {ns}}}\n\
         spec:\n  parentRefs: [{{group: \"\", kind: Service, name: svc, port: 80}}]\n"
    );
    apply(&cluster.client(), &yaml).await?;
    let mut child = Command::new(env!("CARGO_BIN_EXE_kubectl-gateway"))
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig())
        .args(["status", "-n", &ns, "-w", "--no-headers"])
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let (lines, seen) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let wait = std::time::Duration::from_secs(30);
    let first = seen.recv_timeout(wait)?;
    assert!(
        first.contains("watched") && first.contains("NoStatus"),
        "{first}"
    );
    let routes: Api<kube::api::DynamicObject> = Api::namespaced_with(
        cluster.client(),
        &ns,
        &kube::core::ApiResource::from_gvk_with_plural(
            &kube::core::GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "HTTPRoute"),
            "httproutes",
        ),
    );
    let condition = |type_: &str| {
        json!({"type": type_, "status": "True", "reason": type_, "message": "",
               "observedGeneration": 1, "lastTransitionTime": "2026-01-01T00:00:00Z"})
    };
    let status = json!({"status": {"parents": [{
        "parentRef": {"group": "", "kind": "Service", "name": "svc", "namespace": ns, "port": 80},
        "controllerName": "ferry.dev/gateway-controller",
        "conditions": [condition("Accepted"), condition("ResolvedRefs")],
    }]}});
    routes
        .patch_status(
            "watched",
            &Default::default(),
            &kube::api::Patch::Merge(status),
        )
        .await?;
    let next = loop {
        let line = seen.recv_timeout(wait)?;
        if line.contains("watched") {
            break line;
        }
    };
    child.kill()?;
    child.wait()?;
    assert!(next.contains("True"), "{next}");
    Ok(())
}

#[tokio::test]
async fn works_without_any_gateway_api_crd() -> Result<()> {
    let cluster = Cluster::builder().without_gateway_api().start().await?;
    let out = run(cluster.kubeconfig(), &["status", "-A"])?;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stderr.contains("HTTPRoutes are not served"),
        "{}",
        out.stderr
    );
    let out = run(cluster.kubeconfig(), &["check", "-A"])?;
    assert_eq!(out.code, 0, "{out:?}");
    Ok(())
}

#[tokio::test]
async fn lists_a_thousand_routes() -> Result<()> {
    let cluster = Cluster::start().await?;
    let ns = cluster.namespace().to_owned();
    let routes: Api<kube::api::DynamicObject> = Api::namespaced_with(
        cluster.client(),
        &ns,
        &kube::core::ApiResource::from_gvk_with_plural(
            &kube::core::GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "HTTPRoute"),
            "httproutes",
        ),
    );
    let created = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for chunk in 0..20 {
        let routes = routes.clone();
        tasks.spawn(async move {
            for i in (chunk * 50)..(chunk * 50 + 50) {
                let route: kube::api::DynamicObject = serde_json::from_value(json!({
                    "apiVersion": "gateway.networking.k8s.io/v1",
                    "kind": "HTTPRoute",
                    "metadata": { "name": format!("route-{i:04}") },
                    "spec": {
                        "parentRefs": [{ "group": "", "kind": "Service", "name": format!("svc-{}", i % 10), "port": 80 }],
                        "rules": [{ "backendRefs": [
                            { "name": format!("svc-{}-v1", i % 10), "port": 80, "weight": 90 },
                            { "name": format!("svc-{}-v2", i % 10), "port": 80, "weight": 10 },
                        ]}],
                    },
                }))?;
                routes.create(&PostParams::default(), &route).await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    eprintln!("created 1000 routes in {:?}", created.elapsed());
    let mut timings = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        let out = run(cluster.kubeconfig(), &["status", "-A", "--no-headers"])?;
        timings.push(started.elapsed());
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert_eq!(out.stdout.lines().count(), 1000);
    }
    // Measured, not asserted (DESIGN.md): reported for the 2 s goal.
    eprintln!("kubectl gateway status -A over 1000 routes: {timings:?}");
    Ok(())
}
