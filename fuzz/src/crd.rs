//! `crd_parse`: SeldonDeployment from random YAML/JSON (`seldon_crd::parse_yaml`, then
//! `validate` and `apply_defaults`, as the CLI and the webhook run them).

use seldon_crd::{apply_defaults, parse_yaml, validate};

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

        // What we parsed, written as JSON (which is YAML), parses back to the same resource
        // with no unknown field: nothing is lost or invented between the two forms.
        let json = serde_json::to_string(&doc.sdep)
            .unwrap_or_else(|e| panic!("a parsed SeldonDeployment does not serialize: {e}"));
        let back = parse_yaml(&json)
            .unwrap_or_else(|e| panic!("its own JSON does not parse ({e}): {json}"));
        assert_eq!(back.len(), 1, "one resource became {}", back.len());
        assert!(
            back[0].unknown_fields.is_empty(),
            "its own JSON has unknown fields {:?}: {json}",
            back[0].unknown_fields
        );
        assert_eq!(back[0].sdep, doc.sdep, "JSON round trip changed it: {json}");
    }
}
