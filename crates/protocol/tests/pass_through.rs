//! Proves the byte-level operations leave every byte they do not have to touch identical,
//! over all canonical payloads.

mod common;

use std::collections::BTreeMap;

use common::read;
use seldon_protocol::{aggregate_request, inject_routing, v2_chain};
use serde_json::value::RawValue;

const V1_MESSAGES: &[&str] = &[
    "v1/ndarray.json",
    "v1/ndarray_strings.json",
    "v1/tensor.json",
    "v1/tftensor.json",
    "v1/tftensor_int.json",
    "v1/strdata.json",
    "v1/bindata.json",
    "v1/jsondata.json",
    "v1/status_failure.json",
];

fn members(body: &[u8]) -> Vec<(String, String)> {
    let map: Vec<(String, Box<RawValue>)> =
        serde_json::from_slice::<BTreeMap<String, Box<RawValue>>>(body)
            .unwrap()
            .into_iter()
            .collect();
    map.into_iter()
        .map(|(k, v)| (k, v.get().to_owned()))
        .collect()
}

/// The byte range of `original` that differs from `changed` (after common prefix/suffix).
fn changed_region(original: &[u8], changed: &[u8]) -> std::ops::Range<usize> {
    let prefix = original
        .iter()
        .zip(changed)
        .take_while(|(a, b)| a == b)
        .count();
    let max_suffix = original.len().min(changed.len()) - prefix;
    let suffix = original
        .iter()
        .rev()
        .zip(changed.iter().rev())
        .take(max_suffix)
        .take_while(|(a, b)| a == b)
        .count();
    prefix..original.len() - suffix
}

#[test]
fn inject_routing_touches_only_meta_routing() {
    let routing: BTreeMap<String, i32> =
        [("router".to_owned(), 0), ("new-node".to_owned(), -2)].into();
    for file in V1_MESSAGES {
        let original = read(file);
        let out = inject_routing(&original, &routing).unwrap();

        // Every top-level member other than meta is byte-identical.
        let before = members(&original);
        let after = members(&out);
        let strip = |m: &[(String, String)]| {
            m.iter()
                .filter(|(k, _)| k != "meta")
                .cloned()
                .collect::<Vec<_>>()
        };
        assert_eq!(strip(&before), strip(&after), "{file}");

        // Inside meta, every member other than routing is byte-identical.
        let meta_after = &after.iter().find(|(k, _)| k == "meta").unwrap().1;
        let meta_members_after = members(meta_after.as_bytes());
        if let Some((_, meta_before)) = before.iter().find(|(k, _)| k == "meta") {
            let strip = |m: Vec<(String, String)>| {
                m.into_iter()
                    .filter(|(k, _)| k != "routing")
                    .collect::<Vec<_>>()
            };
            assert_eq!(
                strip(members(meta_before.as_bytes())),
                strip(meta_members_after.clone()),
                "{file}"
            );
            // The edit is one contiguous region inside the original meta object.
            let meta_start = original
                .windows(meta_before.len())
                .position(|w| w == meta_before.as_bytes())
                .unwrap();
            let region = changed_region(&original, &out);
            assert!(
                region.start >= meta_start && region.end <= meta_start + meta_before.len(),
                "{file}: edit {region:?} outside meta {meta_start}+{}",
                meta_before.len()
            );
        } else {
            // Pure insertion before the closing brace: original bytes all kept, in order.
            let region = changed_region(&original, &out);
            assert!(region.is_empty(), "{file}: removed {region:?}");
        }

        // And the routing is the merge.
        let routing_after: BTreeMap<String, i32> = serde_json::from_str(
            &meta_members_after
                .iter()
                .find(|(k, _)| k == "routing")
                .unwrap()
                .1,
        )
        .unwrap();
        assert_eq!(routing_after["router"], 0, "{file}");
        assert_eq!(routing_after["new-node"], -2, "{file}");
        if *file == "v1/ndarray.json" {
            assert_eq!(routing_after["ab-test"], -1, "existing entries kept");
        }
    }
}

#[test]
fn aggregate_keeps_every_child_output_verbatim() {
    let bodies: Vec<Vec<u8>> = V1_MESSAGES.iter().map(|f| read(f)).collect();
    let parts: Vec<&[u8]> = bodies.iter().map(Vec::as_slice).collect();
    let out = aggregate_request(&parts).unwrap();
    let items: Vec<&RawValue> = serde_json::from_slice(&out).unwrap();
    assert_eq!(items.len(), bodies.len());
    for (item, body) in items.iter().zip(&bodies) {
        // RawValue trims surrounding whitespace; the value bytes are the original ones.
        assert_eq!(item.get().as_bytes(), body.trim_ascii());
    }
    // Non-SeldonMessage JSON (a child returning v2 or arbitrary JSON) passes too.
    let v2 = read("v2/response_mixed.json");
    let out = aggregate_request(&[&v2, b"42"]).unwrap();
    assert!(out.windows(v2.len()).any(|w| w == v2.as_slice()));
}

#[test]
fn v2_chain_keeps_tensor_values_verbatim() {
    for file in ["v2/response_fp32.json", "v2/response_mixed.json"] {
        let response = read(file);
        let request = v2_chain(&response).unwrap();
        let out: Vec<BTreeMap<String, Box<RawValue>>> = {
            let top: BTreeMap<String, Box<RawValue>> = serde_json::from_slice(&request).unwrap();
            serde_json::from_str(top["inputs"].get()).unwrap()
        };
        let orig: Vec<BTreeMap<String, Box<RawValue>>> = {
            let top: BTreeMap<String, Box<RawValue>> = serde_json::from_slice(&response).unwrap();
            serde_json::from_str(top["outputs"].get()).unwrap()
        };
        assert_eq!(out.len(), orig.len());
        for (o, i) in orig.iter().zip(&out) {
            for key in ["name", "shape", "datatype", "data", "parameters"] {
                assert_eq!(
                    o.get(key).map(|v| v.get()),
                    i.get(key).map(|v| v.get()),
                    "{file} {key}"
                );
            }
        }
        // The chained request is a valid request carrying the same tensors.
        let typed_out = seldon_protocol::v2::InferenceResponse::from_slice(&response).unwrap();
        let typed_in = seldon_protocol::v2::InferenceRequest::from_slice(&request).unwrap();
        assert_eq!(typed_in.inputs, typed_out.outputs, "{file}");
        assert_eq!(typed_in.id, typed_out.id, "{file}");
        assert_eq!(typed_in.parameters, typed_out.parameters, "{file}");
    }
}
