//! `bridge`: every row of the v1 ⇄ v2 table in the README, the refusals included.

use seldon_protocol::bridge::{
    v1_to_v2_request, v1_to_v2_response, v2_request_to_v1, v2_response_to_v1,
};
use serde_json::{Value, json};

fn j(bytes: Result<Vec<u8>, seldon_protocol::ProtocolError>) -> Value {
    serde_json::from_slice(&bytes.unwrap()).unwrap()
}

fn to_v2(v1: Value) -> Value {
    j(v1_to_v2_request(v1.to_string().as_bytes()))
}

fn refusal(r: Result<Vec<u8>, seldon_protocol::ProtocolError>) -> String {
    r.unwrap_err().to_string()
}

#[test]
fn ndarray_becomes_one_input_typed_by_its_leaves() {
    assert_eq!(
        to_v2(
            json!({"data": {"names": ["a", "b"], "ndarray": [[1, 2], [3, 4]]}, "meta": {"puid": "p-1", "tags": {"t": 1}}})
        ),
        json!({"id": "p-1", "inputs": [{"name": "input-0", "shape": [2, 2], "datatype": "INT64", "data": [1, 2, 3, 4]}]})
    );
    let input = |v1: Value| to_v2(v1)["inputs"][0].clone();
    let one = input(json!({"data": {"ndarray": [[1, 2.5]]}}));
    assert_eq!(
        (one["datatype"].clone(), one["data"].clone()),
        (json!("FP64"), json!([1.0, 2.5]))
    );
    let one = input(json!({"data": {"ndarray": ["a", "é"]}}));
    assert_eq!(
        (one["datatype"].clone(), one["shape"].clone()),
        (json!("BYTES"), json!([2]))
    );
    let one = input(json!({"data": {"ndarray": [[true], [false]]}}));
    assert_eq!(
        (one["datatype"].clone(), one["shape"].clone()),
        (json!("BOOL"), json!([2, 1]))
    );
    let one = input(json!({"data": {"ndarray": [1, 18446744073709551615u64]}}));
    assert_eq!(one["datatype"], "UINT64");
    let one = input(json!({"data": {"ndarray": [-1, 18446744073709551615u64]}}));
    assert_eq!(one["datatype"], "FP64");
    let one = input(json!({"data": {"ndarray": []}}));
    assert_eq!(
        one,
        json!({"name": "input-0", "shape": [0], "datatype": "FP64", "data": []})
    );
}

#[test]
fn tensor_is_fp64_with_its_shape() {
    assert_eq!(
        to_v2(json!({"data": {"tensor": {"shape": [1, 3], "values": [0.5, 1, -2]}}}))["inputs"][0],
        json!({"name": "input-0", "shape": [1, 3], "datatype": "FP64", "data": [0.5, 1.0, -2.0]})
    );
    assert_eq!(
        to_v2(json!({"data": {"tensor": {"values": [1, 2]}}}))["inputs"][0]["shape"],
        json!([2])
    );
}

#[test]
fn str_data_is_a_marked_bytes_element_both_ways() {
    let v2 = to_v2(json!({"strData": "hello"}));
    assert_eq!(
        v2["inputs"][0],
        json!({"name": "input-0", "shape": [1], "datatype": "BYTES", "parameters": {"content_type": "str"}, "data": ["hello"]})
    );
    assert_eq!(
        j(v2_request_to_v1(v2.to_string().as_bytes())),
        json!({"strData": "hello"})
    );
    // Unmarked BYTES stay an ndarray of strings.
    let v2 = json!({"inputs": [{"name": "t", "shape": [1], "datatype": "BYTES", "data": ["x"]}]});
    assert_eq!(
        j(v2_request_to_v1(v2.to_string().as_bytes())),
        json!({"data": {"names": ["t"], "ndarray": ["x"]}})
    );
}

#[test]
fn v2_answer_takes_the_form_and_meta_of_the_v1_request() {
    let answer = json!({"model_name": "iris", "id": "p-9", "outputs": [
        {"name": "proba", "shape": [2, 3], "datatype": "FP32", "data": [0.1, 0.2, 0.7, 1, 0, 0]}]});
    // No v1 request known: ndarray nested by shape, names from the outputs, id as puid.
    assert_eq!(
        j(v2_response_to_v1(answer.to_string().as_bytes(), None)),
        json!({"meta": {"puid": "p-9"}, "data": {"names": ["proba"], "ndarray": [[0.1, 0.2, 0.7], [1.0, 0.0, 0.0]]}})
    );
    // The request used data.tensor and carried meta: the answer keeps both.
    let request = json!({"meta": {"puid": "p-1", "tags": {"a": 1}}, "data": {"tensor": {"shape": [1, 4], "values": [1, 2, 3, 4]}}});
    assert_eq!(
        j(v2_response_to_v1(
            answer.to_string().as_bytes(),
            Some(request.to_string().as_bytes())
        )),
        json!({"meta": {"puid": "p-1", "tags": {"a": 1}}, "data": {"names": ["proba"], "tensor": {"shape": [2, 3], "values": [0.1, 0.2, 0.7, 1.0, 0.0, 0.0]}}})
    );
}

#[test]
fn several_column_outputs_become_one_array() {
    let answer = json!({"model_name": "m", "outputs": [
        {"name": "label", "shape": [2], "datatype": "BYTES", "data": ["setosa", "virginica"]},
        {"name": "score", "shape": [2, 1], "datatype": "FP64", "data": [0.9, 0.8]}]});
    assert_eq!(
        j(v2_response_to_v1(answer.to_string().as_bytes(), None)),
        json!({"data": {"names": ["label", "score"], "ndarray": [["setosa", 0.9], ["virginica", 0.8]]}})
    );
}

#[test]
fn scalars_and_booleans_stay_ndarrays() {
    let answer = json!({"model_name": "m", "outputs": [{"name": "ok", "shape": [], "datatype": "BOOL", "data": [true]}]});
    let tensor_request = json!({"data": {"tensor": {"values": [1]}}});
    assert_eq!(
        j(v2_response_to_v1(
            answer.to_string().as_bytes(),
            Some(tensor_request.to_string().as_bytes())
        )),
        json!({"data": {"names": ["ok"], "ndarray": [true]}})
    );
}

#[test]
fn v1_answer_becomes_a_v2_response_named_by_the_request() {
    let answer =
        json!({"data": {"names": ["p"], "ndarray": [[0.25, 0.75]]}, "meta": {"puid": "p-2"}});
    assert_eq!(
        j(v1_to_v2_response(
            answer.to_string().as_bytes(),
            "classifier",
            None
        )),
        json!({"model_name": "classifier", "id": "p-2", "outputs": [{"name": "output-0", "shape": [1, 2], "datatype": "FP64", "data": [0.25, 0.75]}]})
    );
    let request = json!({"id": "req-7", "inputs": [], "outputs": [{"name": "proba"}]});
    let v2 = j(v1_to_v2_response(
        answer.to_string().as_bytes(),
        "classifier",
        Some(request.to_string().as_bytes()),
    ));
    assert_eq!(
        (v2["id"].clone(), v2["outputs"][0]["name"].clone()),
        (json!("req-7"), json!("proba"))
    );
}

#[test]
fn v2_request_becomes_a_v1_ndarray() {
    let v2 = json!({"id": "r-1", "parameters": {"x": 1}, "inputs": [{"name": "input-0", "shape": [1, 2], "datatype": "INT32", "data": [[5, 6]]}]});
    assert_eq!(
        j(v2_request_to_v1(v2.to_string().as_bytes())),
        json!({"meta": {"puid": "r-1"}, "data": {"names": ["input-0"], "ndarray": [[5, 6]]}})
    );
}

#[test]
fn an_echoing_v2_model_gives_the_v1_data_back() {
    for v1 in [
        json!({"data": {"ndarray": [[1, 2], [3, 4]]}}),
        json!({"data": {"ndarray": [["a"], ["b"]]}}),
        json!({"data": {"tensor": {"shape": [2, 1], "values": [0.5, 1.5]}}}),
        json!({"strData": "text"}),
    ] {
        let request = to_v2(v1.clone());
        // The model answers its input as its output.
        let answer = json!({"model_name": "echo", "outputs": request["inputs"]});
        let back = j(v2_response_to_v1(
            answer.to_string().as_bytes(),
            Some(v1.to_string().as_bytes()),
        ));
        let mut expected = v1.clone();
        if let Some(data) = expected.get_mut("data") {
            data["names"] = json!(["input-0"]);
        }
        assert_eq!(back, expected);
    }
}

#[test]
fn what_cannot_convert_is_refused_by_name() {
    let cases = [
        (json!({"binData": "AAE="}), "binData has no v2 JSON form"),
        (json!({"jsonData": {"a": 1}}), "jsonData has no tensor form"),
        (
            json!({"customData": {"@type": "x"}}),
            "customData has no tensor form",
        ),
        (
            json!({"data": {"tftensor": {"dtype": "DT_FLOAT"}}}),
            "data.tftensor is not converted",
        ),
        (json!({"meta": {"puid": "p"}}), "the message has no payload"),
        (
            json!({"status": {"code": 500, "info": "boom", "status": "FAILURE"}}),
            "FAILURE status (500: boom)",
        ),
        (
            json!({"data": {"ndarray": [[1, 2], [3]]}}),
            "data.ndarray is ragged: element 1 has shape [1], element 0 has [2]",
        ),
        (
            json!({"data": {"ndarray": [1, "a"]}}),
            "data.ndarray mixes types: element 0 is a number, element 1 a string",
        ),
        (
            json!({"data": {"ndarray": [null]}}),
            "data.ndarray holds a null",
        ),
        (
            json!({"data": {"ndarray": [{"a": 1}]}}),
            "data.ndarray holds a object",
        ),
        (
            json!({"data": {"tensor": {"shape": [3], "values": [1, 2]}}}),
            "data.tensor: tensor `input-0`: shape [3] needs 3 elements, data has 2",
        ),
        (
            json!({"data": {"tensor": {"shape": [-1], "values": [1]}}}),
            "negative dimension",
        ),
    ];
    for (v1, needle) in cases {
        let err = refusal(v1_to_v2_request(v1.to_string().as_bytes()));
        assert!(
            err.starts_with("cannot convert Seldon v1 request → v2: "),
            "{err}"
        );
        assert!(err.contains(needle), "{v1}: {err}");
        let err = refusal(v1_to_v2_response(v1.to_string().as_bytes(), "m", None));
        assert!(
            err.starts_with("cannot convert Seldon v1 answer → v2: "),
            "{err}"
        );
    }
    assert!(refusal(v1_to_v2_request(b"{")).contains("not valid JSON"));
    assert!(
        refusal(v1_to_v2_response(br#"{"strData":"a"}"#, "m", Some(b"[]")))
            .contains("v2 inference request")
    );
}

#[test]
fn v2_tensors_that_cannot_form_one_v1_array_are_refused() {
    let answer = json!({"model_name": "m", "outputs": [
        {"name": "a", "shape": [2, 3], "datatype": "FP64", "data": [1, 2, 3, 4, 5, 6]},
        {"name": "b", "shape": [2], "datatype": "FP64", "data": [1, 2]}]});
    let err = refusal(v2_response_to_v1(answer.to_string().as_bytes(), None));
    assert_eq!(
        err,
        "cannot convert v2 answer → Seldon v1: 2 tensors (`a` [2, 3], `b` [2]) cannot form one v1 array: only [n] or [n, 1] tensors with the same n become its columns; ask for one output (request `outputs`)"
    );
    let rows_differ = json!({"inputs": [
        {"name": "a", "shape": [2], "datatype": "INT64", "data": [1, 2]},
        {"name": "b", "shape": [3], "datatype": "INT64", "data": [1, 2, 3]}]});
    assert!(
        refusal(v2_request_to_v1(rows_differ.to_string().as_bytes()))
            .starts_with("cannot convert v2 request → Seldon v1: 2 tensors")
    );
    let empty = json!({"model_name": "m", "outputs": []});
    assert_eq!(
        refusal(v2_response_to_v1(empty.to_string().as_bytes(), None)),
        "cannot convert v2 answer → Seldon v1: there is no tensor to convert"
    );
    let binary = json!({"model_name": "m", "outputs": [{"name": "o", "shape": [1], "datatype": "FP32", "parameters": {"binary_data_size": 4}}]});
    assert!(
        refusal(v2_response_to_v1(binary.to_string().as_bytes(), None))
            .contains("tensor `o` has no data")
    );
    // Integers beyond 2^53 do not fit data.tensor's doubles.
    let big = json!({"model_name": "m", "outputs": [{"name": "o", "shape": [1], "datatype": "INT64", "data": [9007199254740993i64]}]});
    let tensor_request = json!({"data": {"tensor": {"values": [1]}}});
    assert!(
        refusal(v2_response_to_v1(
            big.to_string().as_bytes(),
            Some(tensor_request.to_string().as_bytes())
        ))
        .contains("9007199254740993 does not fit data.tensor's doubles")
    );
    // ... but an ndarray carries them exactly.
    assert_eq!(
        j(v2_response_to_v1(big.to_string().as_bytes(), None))["data"]["ndarray"],
        json!([9007199254740993i64])
    );
    assert!(refusal(v2_request_to_v1(b"{}")).contains("v2 inference request"));
    assert!(
        refusal(v2_response_to_v1(
            br#"{"model_name":"m","outputs":[]}"#,
            Some(b"{")
        ))
        .contains("SeldonMessage is not valid JSON")
    );
}
