//! The real node of `tests/node/`: pods run and get addresses, a Service
//! answers another pod by its DNS name, an init container with `NET_ADMIN`
//! changes its pod's iptables, and afterwards nothing is left on the machine.
//! Each step fails the test when it does not work.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use ferry_harness::node::{Node, TOOLBOX_IMAGE};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::LogParams;

const TIMEOUT: Duration = Duration::from_secs(120);

#[tokio::test]
async fn pods_run_and_reach_a_service_by_name() -> Result<()> {
    let node = Node::start().await?;
    if let Err(err) = scenario(&node).await {
        let logs = node.logs();
        drop(node); // takes the node down
        return Err(err.context(logs));
    }
    // down.sh, then verify-clean.sh: fails if anything is left.
    node.stop().await
}

async fn scenario(node: &Node) -> Result<()> {
    let ns = node.namespace();
    node.wait_node_ready(Duration::from_secs(10)).await?;

    // Two httpd replicas, each answering with its pod's name.
    let started = Instant::now();
    node.apply(ns, &web_deployment()).await?;
    node.wait_rollout(ns, "web", TIMEOUT).await?;
    let pods = node.wait_pods_ready(ns, "app=web", 2, TIMEOUT).await?;
    eprintln!("web: 2 replicas ready in {:?}", started.elapsed());
    let names: BTreeSet<String> = pods
        .iter()
        .filter_map(|p| p.metadata.name.clone())
        .collect();
    let ips: BTreeSet<String> = pods
        .iter()
        .filter_map(|p| p.status.as_ref()?.pod_ip.clone())
        .collect();
    ensure!(ips.len() == 2, "the web pods have addresses {ips:?}");

    // The Service only now: the client, started right after, finds it by
    // name through the cluster DNS and reaches both backends.
    node.apply(ns, WEB_SERVICE).await?;
    node.apply(ns, &client_pod(ns)).await?;
    let client = node.wait_pod_finished(ns, "client", TIMEOUT).await?;
    let out = logs(node, ns, "client", "client").await?;
    eprintln!("client:\n{out}");
    ensure!(
        phase(&client) == "Succeeded",
        "client pod {}",
        phase(&client)
    );
    ensure!(
        out.contains(&format!(
            "search {ns}.svc.cluster.local svc.cluster.local cluster.local"
        )),
        "no cluster search path in the pod's resolv.conf"
    );
    let answers: Vec<&str> = out
        .lines()
        .filter_map(|l| l.strip_prefix("web: "))
        .collect();
    ensure!(answers.len() == 10, "expected 10 answers from web");
    let answered: BTreeSet<String> = answers.iter().map(|a| (*a).to_owned()).collect();
    ensure!(
        answered == names,
        "answers came from {answered:?}, pods are {names:?}"
    );
    ensure!(
        out.lines()
            .any(|l| l.strip_prefix("fqdn: ").is_some_and(|a| names.contains(a))),
        "web.{ns}.svc.cluster.local did not answer"
    );
    ensure!(
        out.contains("outside: not resolved"),
        "a name outside the cluster resolved"
    );

    // An init container with NET_ADMIN redirects :9999 to :8080 in its pod.
    node.apply(ns, &net_admin_pod()).await?;
    let pod = node.wait_pod_finished(ns, "netadmin", TIMEOUT).await?;
    let rules = logs(node, ns, "netadmin", "iptables").await?;
    let app = logs(node, ns, "netadmin", "app").await?;
    eprintln!("netadmin: init: {rules}app: {app}");
    ensure!(phase(&pod) == "Succeeded", "netadmin pod {}", phase(&pod));
    ensure!(
        rules.contains("--to-ports 8080"),
        "the init container's rule is not listed"
    );
    ensure!(
        app.contains("redirected-ok"),
        "the redirect did not reach the app"
    );
    Ok(())
}

fn web_deployment() -> String {
    format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: httpd
        image: {TOOLBOX_IMAGE}
        imagePullPolicy: Never
        command: ["/bin/sh", "-c", "mkdir -p /tmp/www && hostname > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www"]
        ports: [{{containerPort: 8080}}]
        readinessProbe: {{tcpSocket: {{port: 8080}}, periodSeconds: 1}}
"#
    )
}

const WEB_SERVICE: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
"#;

/// Ten requests to `web` by its short name, one by its full name, and a
/// lookup that must not leave the cluster. (busybox `wget` crashes: `nc`.)
fn client_pod(ns: &str) -> String {
    let get = r"printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 3";
    let script = format!(
        "cat /etc/resolv.conf; \
         for i in 1 2 3 4 5 6 7 8 9 10; do echo \"web: $({get} web 80 | tail -n 1)\"; done; \
         echo \"fqdn: $({get} web.{ns}.svc.cluster.local 80 | tail -n 1)\"; \
         nslookup example.com >/dev/null 2>&1 && echo 'outside: resolved' || echo 'outside: not resolved'"
    );
    format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: client}}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  containers:
  - name: client
    image: {TOOLBOX_IMAGE}
    imagePullPolicy: Never
    command: ["/bin/sh", "-c", {script:?}]
"#
    )
}

fn net_admin_pod() -> String {
    format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: netadmin}}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  initContainers:
  - name: iptables
    image: {TOOLBOX_IMAGE}
    imagePullPolicy: Never
    securityContext: {{capabilities: {{add: [NET_ADMIN, NET_RAW]}}}}
    command: ["/bin/sh", "-c", "iptables -t nat -A OUTPUT -p tcp -d 127.0.0.1 --dport 9999 -j REDIRECT --to-ports 8080 && iptables -t nat -S OUTPUT"]
  containers:
  - name: app
    image: {TOOLBOX_IMAGE}
    imagePullPolicy: Never
    command: ["/bin/sh", "-c", "mkdir -p /tmp/w && echo redirected-ok > /tmp/w/index.html && (httpd -f -p 8080 -h /tmp/w &) && sleep 1 && printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 127.0.0.1 9999"]
"#
    )
}

async fn logs(node: &Node, ns: &str, pod: &str, container: &str) -> Result<String> {
    let pods: Api<Pod> = Api::namespaced(node.client(), ns);
    let params = LogParams {
        container: Some(container.to_owned()),
        ..LogParams::default()
    };
    pods.logs(pod, &params)
        .await
        .with_context(|| format!("failed to read the logs of {ns}/{pod} {container}"))
}

fn phase(pod: &Pod) -> String {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_default()
}
