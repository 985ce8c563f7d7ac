//! `crd_parse`: SeldonDeployment from random YAML/JSON (`seldon_crd::parse_yaml`, then
//! `validate` and `apply_defaults`, as the CLI and the webhook run them).

use seldon_crd::{SeldonDeployment, apply_defaults, parse_yaml, validate};

pub fn crd_parse(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(docs) = parse_yaml(&text) else {
        return;
    };
    for doc in docs {
        let _ = validate(&doc.sdep);
        let mut defaulted = doc.sdep.clone();
        apply_defaults(&mut defaulted);
        let _ = validate(&defaulted);

        // What we parsed survives both forms it travels in: JSON (the API server, the
        // operator: serde_json both ways) and YAML (what `seldon-mesh` and users write, read
        // back by parse_yaml with no unknown field). JSON text is not read back as YAML: a raw
        // U+0085 in a JSON string is a line break to YAML 1.1 (found by make fuzz).
        let json = serde_json::to_string(&doc.sdep)
            .unwrap_or_else(|e| panic!("a parsed SeldonDeployment does not serialize: {e}"));
        let back: SeldonDeployment = serde_json::from_str(&json)
            .unwrap_or_else(|e| panic!("its own JSON does not parse ({e}): {json}"));
        assert_eq!(back, doc.sdep, "JSON round trip changed it: {json}");
        let yaml = serde_yaml::to_string(&doc.sdep)
            .unwrap_or_else(|e| panic!("a parsed SeldonDeployment does not serialize: {e}"));
        let back = parse_yaml(&yaml)
            .unwrap_or_else(|e| panic!("its own YAML does not parse ({e}): {yaml}"));
        assert_eq!(back.len(), 1, "one resource became {}", back.len());
        assert!(
            back[0].unknown_fields.is_empty(),
            "its own YAML has unknown fields {:?}: {yaml}",
            back[0].unknown_fields
        );
        assert_eq!(back[0].sdep, doc.sdep, "YAML round trip changed it: {yaml}");
    }
}
