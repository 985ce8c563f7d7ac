//! Propagation: W3C `traceparent` and B3 in, child headers out, the sampling decision.

use std::collections::BTreeMap;

use seldon_trace::context::{B3Context, PROPAGATION_HEADERS};
use seldon_trace::{
    B3Format, B3Style, ContextError, Incoming, Parent, TraceContext, child_headers,
    continue_or_start, extract, hex, parse_b3_multi, parse_b3_single, parse_traceparent,
};

const TID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const SID: &str = "00f067aa0ba902b7";

fn tid() -> [u8; 16] {
    u128::from_str_radix(TID, 16).unwrap().to_be_bytes()
}
fn sid() -> [u8; 8] {
    u64::from_str_radix(SID, 16).unwrap().to_be_bytes()
}

#[test]
fn traceparent_version_00() {
    let ctx = parse_traceparent(&format!("00-{TID}-{SID}-01")).unwrap();
    assert_eq!(
        ctx,
        TraceContext {
            trace_id: tid(),
            span_id: sid(),
            sampled: true,
            tracestate: None
        }
    );
    assert!(
        !parse_traceparent(&format!("00-{TID}-{SID}-00"))
            .unwrap()
            .sampled
    );
    // other flag bits are ignored; bit 0 decides
    assert!(
        parse_traceparent(&format!("00-{TID}-{SID}-03"))
            .unwrap()
            .sampled
    );
    assert!(
        !parse_traceparent(&format!("00-{TID}-{SID}-02"))
            .unwrap()
            .sampled
    );
    // surrounding whitespace is tolerated
    assert!(parse_traceparent(&format!(" 00-{TID}-{SID}-01 ")).is_ok());
    assert_eq!(ctx.traceparent(), format!("00-{TID}-{SID}-01"));
}

#[test]
fn traceparent_refusals() {
    let zero_t = "0".repeat(32);
    let zero_s = "0".repeat(16);
    let cases: Vec<(String, ContextError)> = vec![
        (
            format!("00-{zero_t}-{SID}-01"),
            ContextError::ZeroId("trace id"),
        ),
        (
            format!("00-{TID}-{zero_s}-01"),
            ContextError::ZeroId("parent id"),
        ),
        (
            format!("00-{}-{SID}-01", TID.to_uppercase()),
            ContextError::Hex {
                field: "trace id",
                digits: 32,
            },
        ),
        (
            format!("00-{}g-{SID}-01", &TID[..31]),
            ContextError::Hex {
                field: "trace id",
                digits: 32,
            },
        ),
        (
            format!("00-{TID}-{}x-01", &SID[..15]),
            ContextError::Hex {
                field: "parent id",
                digits: 16,
            },
        ),
        (
            format!("00-{TID}-{SID}-0z"),
            ContextError::Hex {
                field: "trace flags",
                digits: 2,
            },
        ),
        (
            format!("00-{TID}-{SID}-1"),
            ContextError::TraceparentLength(54),
        ),
        (
            format!("00-{TID}-{SID}-01-extra"),
            ContextError::TraceparentLength(61),
        ),
        (format!("ff-{TID}-{SID}-01"), ContextError::VersionFf),
        (format!("00_{TID}-{SID}-01"), ContextError::TraceparentShape),
        (
            format!("01-{TID}-{SID}-01x"),
            ContextError::TraceparentShape,
        ),
        (
            format!("zz-{TID}-{SID}-01"),
            ContextError::Hex {
                field: "traceparent version",
                digits: 2,
            },
        ),
        (String::new(), ContextError::TraceparentLength(0)),
    ];
    for (value, expected) in cases {
        assert_eq!(parse_traceparent(&value), Err(expected.clone()), "{value}");
        assert!(!expected.to_string().is_empty());
    }
}

#[test]
fn traceparent_higher_versions_are_read_forward_compatibly() {
    let ctx = parse_traceparent(&format!("01-{TID}-{SID}-01")).unwrap();
    assert_eq!(
        (ctx.trace_id, ctx.span_id, ctx.sampled),
        (tid(), sid(), true)
    );
    let ctx = parse_traceparent(&format!("cc-{TID}-{SID}-00-what-the-future-holds")).unwrap();
    assert_eq!((ctx.trace_id, ctx.sampled), (tid(), false));
}

#[test]
fn b3_single_header() {
    let c = parse_b3_single(&format!("{TID}-{SID}-1-0000000000000001")).unwrap();
    assert_eq!(
        c,
        B3Context {
            parent: Some(Parent {
                trace_id: tid(),
                span_id: sid()
            }),
            sampled: Some(true),
            debug: false,
            trace_id_64: false,
        }
    );
    let c = parse_b3_single(&format!("a3ce929d0e0e4736-{SID}")).unwrap();
    let mut expected = [0u8; 16];
    expected[8..].copy_from_slice(&tid()[8..]);
    assert_eq!(c.parent.unwrap().trace_id, expected);
    assert!(c.trace_id_64);
    assert_eq!(c.sampled, None, "no sampling state: the receiver decides");
    let c = parse_b3_single(&format!("{TID}-{SID}-d")).unwrap();
    assert_eq!((c.sampled, c.debug), (Some(true), true));
    // upper case is accepted from B3 senders
    assert!(parse_b3_single(&format!("{}-{SID}-0", TID.to_uppercase())).is_ok());
    // sampling state only
    for (v, sampled, debug) in [("0", false, false), ("1", true, false), ("d", true, true)] {
        let c = parse_b3_single(v).unwrap();
        assert_eq!((c.parent, c.sampled, c.debug), (None, Some(sampled), debug));
    }
}

#[test]
fn b3_single_refusals() {
    let cases = vec![
        ("x".to_string(), ContextError::B3Sampled("x".into())),
        (
            format!("{TID}-{SID}-2"),
            ContextError::B3Sampled("2".into()),
        ),
        (
            format!("{}-{SID}-1", &TID[..20]),
            ContextError::B3TraceIdLength(20),
        ),
        (
            format!("{}-{SID}-1", "0".repeat(32)),
            ContextError::ZeroId("b3 trace id"),
        ),
        (
            format!("{TID}-{}-1", "0".repeat(16)),
            ContextError::ZeroId("b3 span id"),
        ),
        (
            format!("{TID}-123-1"),
            ContextError::Hex {
                field: "b3 span id",
                digits: 16,
            },
        ),
        (
            format!("{TID}-{SID}-1-nothex0000000000"),
            ContextError::Hex {
                field: "b3 parent span id",
                digits: 16,
            },
        ),
        (format!("{TID}-{SID}-1-{SID}-5"), ContextError::B3Shape),
    ];
    for (value, expected) in cases {
        assert_eq!(parse_b3_single(&value), Err(expected), "{value}");
    }
}

#[test]
fn b3_multi_headers() {
    let c = parse_b3_multi(Some(TID), Some(SID), Some("1"), None).unwrap();
    assert_eq!(
        c.parent,
        Some(Parent {
            trace_id: tid(),
            span_id: sid()
        })
    );
    assert_eq!(c.sampled, Some(true));
    let c = parse_b3_multi(Some(TID), Some(SID), Some("false"), None).unwrap();
    assert_eq!(c.sampled, Some(false));
    let c = parse_b3_multi(Some(TID), Some(SID), Some("0"), Some("1")).unwrap();
    assert_eq!((c.sampled, c.debug), (Some(true), true), "debug wins");
    let c = parse_b3_multi(Some(&TID[16..]), Some(SID), None, None).unwrap();
    assert!(c.trace_id_64);
    assert_eq!(c.sampled, None);
    let c = parse_b3_multi(None, None, Some("0"), None).unwrap();
    assert_eq!((c.parent, c.sampled), (None, Some(false)));

    assert_eq!(
        parse_b3_multi(Some(TID), None, Some("1"), None),
        Err(ContextError::Missing("x-b3-spanid"))
    );
    assert_eq!(
        parse_b3_multi(None, Some(SID), None, None),
        Err(ContextError::Missing("x-b3-traceid"))
    );
    assert_eq!(
        parse_b3_multi(None, None, None, None),
        Err(ContextError::Missing("x-b3-traceid"))
    );
    assert_eq!(
        parse_b3_multi(Some(TID), Some(SID), Some("yes"), None),
        Err(ContextError::B3Sampled("yes".into()))
    );
}

fn headers(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn extract_from(h: &BTreeMap<String, String>) -> Incoming {
    extract(|name| h.get(name).map(String::as_str))
}

#[test]
fn w3c_wins_over_b3_but_b3_style_is_kept() {
    let other_tid = "11111111111111111111111111111111";
    let h = headers(&[
        ("traceparent", &format!("00-{TID}-{SID}-00")),
        ("tracestate", "vendor=x"),
        ("b3", &format!("{other_tid}-{SID}-1")),
    ]);
    let inc = extract_from(&h);
    assert_eq!(inc.parent.unwrap().trace_id, tid());
    assert_eq!(inc.sampled, Some(false));
    assert_eq!(inc.tracestate.as_deref(), Some("vendor=x"));
    assert_eq!(inc.b3.unwrap().format, B3Format::Single);
}

#[test]
fn invalid_traceparent_falls_back_to_b3_and_drops_tracestate() {
    let h = headers(&[
        ("traceparent", "00-garbage"),
        ("tracestate", "vendor=x"),
        ("x-b3-traceid", TID),
        ("x-b3-spanid", SID),
        ("x-b3-sampled", "1"),
    ]);
    let inc = extract_from(&h);
    assert_eq!(
        inc,
        Incoming {
            parent: Some(Parent {
                trace_id: tid(),
                span_id: sid()
            }),
            sampled: Some(true),
            tracestate: None,
            b3: Some(B3Style {
                format: B3Format::Multi,
                trace_id_64: false,
                debug: false
            }),
        }
    );
}

#[test]
fn nothing_valid_is_no_context() {
    assert_eq!(extract_from(&headers(&[])), Incoming::default());
    let h = headers(&[("traceparent", "bad"), ("b3", "bad"), ("tracestate", "a=b")]);
    assert_eq!(extract_from(&h), Incoming::default());
}

fn counter() -> impl FnMut() -> u128 {
    let mut n = 0u128;
    move || {
        n += 1;
        n << 64 | n
    }
}

#[test]
fn continue_follows_the_callers_flag() {
    let inc = Incoming {
        parent: Some(Parent {
            trace_id: tid(),
            span_id: sid(),
        }),
        sampled: Some(true),
        tracestate: Some("a=b".into()),
        b3: None,
    };
    let s = continue_or_start(&inc, 0.0, &mut counter());
    assert_eq!(s.context.trace_id, tid());
    assert_eq!(s.parent_span_id, Some(sid()));
    assert_ne!(s.context.span_id, sid());
    assert!(
        s.context.sampled,
        "sampled by the caller, whatever the ratio"
    );
    assert_eq!(s.context.tracestate.as_deref(), Some("a=b"));
    let inc = Incoming {
        sampled: Some(false),
        ..inc
    };
    assert!(!continue_or_start(&inc, 1.0, &mut counter()).context.sampled);
}

#[test]
fn start_decides_by_ratio() {
    let s = continue_or_start(&Incoming::default(), 1.0, &mut counter());
    assert_eq!(s.context.trace_id, (1u128 << 64 | 1).to_be_bytes());
    assert_eq!(s.context.span_id, 2u64.to_be_bytes());
    assert_eq!(s.parent_span_id, None);
    assert!(s.context.sampled);
    assert!(
        !continue_or_start(&Incoming::default(), 0.0, &mut counter())
            .context
            .sampled
    );
    // ids from B3 without a sampling state: the ratio decides
    let inc = Incoming {
        parent: Some(Parent {
            trace_id: tid(),
            span_id: sid(),
        }),
        sampled: None,
        tracestate: None,
        b3: None,
    };
    assert!(!continue_or_start(&inc, 0.0, &mut counter()).context.sampled);
    assert!(continue_or_start(&inc, 1.0, &mut counter()).context.sampled);
}

fn child(sampled: bool, trace_id: [u8; 16]) -> TraceContext {
    TraceContext {
        trace_id,
        span_id: [0xcd; 8],
        sampled,
        tracestate: None,
    }
}

#[test]
fn child_headers_w3c_only() {
    let mut c = child(true, tid());
    c.tracestate = Some("a=b".into());
    let h = child_headers(&c, Some(sid()), None);
    assert_eq!(
        h,
        vec![
            (
                "traceparent".to_string(),
                format!("00-{TID}-cdcdcdcdcdcdcdcd-01")
            ),
            ("tracestate".to_string(), "a=b".to_string()),
        ]
    );
    let h = child_headers(&child(false, tid()), None, None);
    assert_eq!(h[0].1, format!("00-{TID}-cdcdcdcdcdcdcdcd-00"));
    for (k, _) in &h {
        assert!(PROPAGATION_HEADERS.contains(&k.as_str()));
    }
}

#[test]
fn child_headers_b3_in_the_callers_format() {
    let single = B3Style {
        format: B3Format::Single,
        trace_id_64: false,
        debug: false,
    };
    let h = child_headers(&child(true, tid()), Some(sid()), Some(&single));
    assert_eq!(
        h[1],
        ("b3".into(), format!("{TID}-cdcdcdcdcdcdcdcd-1-{SID}"))
    );
    let h = child_headers(&child(false, tid()), None, Some(&single));
    assert_eq!(h[1], ("b3".into(), format!("{TID}-cdcdcdcdcdcdcdcd-0")));
    let debug = B3Style {
        debug: true,
        ..single
    };
    let h = child_headers(&child(true, tid()), None, Some(&debug));
    assert_eq!(h[1].1, format!("{TID}-cdcdcdcdcdcdcdcd-d"));

    // 64-bit ids stay 64-bit
    let mut short = [0u8; 16];
    short[8..].copy_from_slice(&tid()[8..]);
    let multi64 = B3Style {
        format: B3Format::Multi,
        trace_id_64: true,
        debug: false,
    };
    let h = child_headers(&child(false, short), Some(sid()), Some(&multi64));
    let got: BTreeMap<String, String> = h.into_iter().collect();
    assert_eq!(got["x-b3-traceid"], &TID[16..]);
    assert_eq!(got["x-b3-spanid"], "cdcdcdcdcdcdcdcd");
    assert_eq!(got["x-b3-parentspanid"], SID);
    assert_eq!(got["x-b3-sampled"], "0");
    assert_eq!(
        got["traceparent"],
        format!("00-{}{}-cdcdcdcdcdcdcdcd-00", "0".repeat(16), &TID[16..])
    );
    let debug_multi = B3Style {
        debug: true,
        trace_id_64: false,
        ..multi64
    };
    let got: BTreeMap<String, String> =
        child_headers(&child(true, tid()), None, Some(&debug_multi))
            .into_iter()
            .collect();
    assert_eq!(got["x-b3-flags"], "1");
    assert!(!got.contains_key("x-b3-sampled"));
    assert!(!got.contains_key("x-b3-parentspanid"));
    assert_eq!(got["x-b3-traceid"], hex(&tid()));
}
