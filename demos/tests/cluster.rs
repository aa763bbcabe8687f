//! The cluster form of every demo is complete: each backendRef of each
//! route names a Service that the rendering defines with a selector, and
//! each such Service has a Deployment whose pods it selects, with as many
//! replicas as the standalone form has endpoints.

use std::collections::BTreeMap;

use ferry_demo::Demo;
use serde_json::Value;

#[test]
fn every_demo_renders_workloads_for_every_backend() {
    let root = Demo::root();
    let names = Demo::list(&root).unwrap();
    assert!(names.len() >= 4, "demos: {names:?}");
    for name in names {
        let demo = Demo::load(&root, &name).unwrap();
        let text = ferry_demo::cluster::render(&demo, "ferry/echo:test").unwrap();
        let docs: Vec<Value> = serde_saphyr::from_multiple(&text).unwrap();
        let key = |d: &Value| {
            format!(
                "{}/{}",
                d["metadata"]["namespace"].as_str().unwrap_or("default"),
                d["metadata"]["name"].as_str().unwrap()
            )
        };
        let services: BTreeMap<String, &Value> = docs
            .iter()
            .filter(|d| d["kind"] == "Service")
            .map(|d| (key(d), d))
            .collect();
        let deployments: BTreeMap<String, &Value> = docs
            .iter()
            .filter(|d| d["kind"] == "Deployment")
            .map(|d| (key(d), d))
            .collect();
        for route in docs.iter().filter(|d| d["kind"] == "HTTPRoute") {
            let ns = route["metadata"]["namespace"].as_str().unwrap();
            for rule in route["spec"]["rules"].as_array().unwrap() {
                for backend in rule["backendRefs"].as_array().into_iter().flatten() {
                    let svc = format!("{ns}/{}", backend["name"].as_str().unwrap());
                    let service = services
                        .get(&svc)
                        .unwrap_or_else(|| panic!("{name}: no Service {svc}"));
                    let selector = &service["spec"]["selector"];
                    let deployment = deployments
                        .get(&svc)
                        .unwrap_or_else(|| panic!("{name}: no Deployment {svc}"));
                    assert_eq!(
                        &deployment["spec"]["template"]["metadata"]["labels"],
                        selector
                    );
                    assert!(deployment["spec"]["replicas"].as_u64().unwrap() >= 1);
                }
            }
        }
    }
}
