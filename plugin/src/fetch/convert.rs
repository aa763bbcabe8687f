//! List items into model values: ready endpoints per Service, events.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::model::Event;

/// Ready addresses per Service, from EndpointSlices v1 or from Endpoints.
pub(super) fn ready_endpoints(items: &[Value], slices: bool) -> BTreeMap<(String, String), usize> {
    let mut ready = BTreeMap::new();
    for item in items {
        let ns = str_at(item, "/metadata/namespace");
        let (service, count) = if slices {
            let service = str_at(item, "/metadata/labels/kubernetes.io~1service-name");
            let count = item["endpoints"].as_array().map_or(0, |eps| {
                eps.iter()
                    .filter(|ep| ep.pointer("/conditions/ready") != Some(&Value::Bool(false)))
                    .map(|ep| ep["addresses"].as_array().map_or(0, Vec::len))
                    .sum()
            });
            (service, count)
        } else {
            let count = item["subsets"].as_array().map_or(0, |subsets| {
                subsets
                    .iter()
                    .map(|s| s["addresses"].as_array().map_or(0, Vec::len))
                    .sum()
            });
            (str_at(item, "/metadata/name"), count)
        };
        *ready.entry((ns, service)).or_insert(0) += count;
    }
    ready
}

pub(super) fn event(item: &Value) -> Event {
    Event {
        type_: str_at(item, "/type"),
        reason: str_at(item, "/reason"),
        message: str_at(item, "/message"),
        last_seen: item
            .pointer("/lastTimestamp")
            .or_else(|| item.pointer("/eventTime"))
            .and_then(Value::as_str)
            .map(str::to_owned),
        count: item["count"]
            .as_i64()
            .and_then(|c| i32::try_from(c).ok())
            .unwrap_or(1),
        kind: str_at(item, "/involvedObject/kind"),
        namespace: str_at(item, "/involvedObject/namespace"),
        name: str_at(item, "/involvedObject/name"),
    }
}

fn str_at(value: &Value, pointer: &str) -> String {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn ready_from_endpoint_slices_and_endpoints() {
        let slices = [
            json!({"metadata": {"namespace": "ns", "labels": {"kubernetes.io/service-name": "a"}},
                   "endpoints": [{"addresses": ["10.0.0.1"], "conditions": {"ready": true}},
                                 {"addresses": ["10.0.0.2"], "conditions": {"ready": false}},
                                 {"addresses": ["10.0.0.3"]}]}),
            json!({"metadata": {"namespace": "ns", "labels": {"kubernetes.io/service-name": "a"}},
                   "endpoints": [{"addresses": ["10.0.0.4"]}]}),
        ];
        let ready = ready_endpoints(&slices, true);
        assert_eq!(ready.get(&("ns".to_owned(), "a".to_owned())), Some(&3));
        let endpoints = [json!({"metadata": {"namespace": "ns", "name": "b"},
            "subsets": [{"addresses": [{"ip": "10.0.0.1"}], "notReadyAddresses": [{"ip": "10.0.0.2"}]}]})];
        let ready = ready_endpoints(&endpoints, false);
        assert_eq!(ready.get(&("ns".to_owned(), "b".to_owned())), Some(&1));
    }
}
