//! The caller's trace context from request headers, and the headers of a child call.
//!
//! - W3C Trace Context (`traceparent`, `tracestate`): version `00` exactly as specified;
//!   a higher version is read by the spec's forward-compatibility rule (its first four fields,
//!   then nothing or `-…`); `ff`, bad hex, wrong lengths and all-zero ids are refused.
//! - B3: the single header (`b3: traceid-spanid[-sampled[-parentspanid]]`, or only the
//!   sampling state `0`/`1`/`d`) and the multi-header form (`x-b3-traceid`, `x-b3-spanid`,
//!   `x-b3-sampled`, `x-b3-flags`); 64- or 128-bit trace ids; debug (`d`, `x-b3-flags: 1`) is
//!   sampled.
//!
//! A valid `traceparent` wins over B3. An invalid header is ignored (the filter starts a new
//! trace), as the W3C spec asks. Children always get `traceparent`; they also get B3, in the
//! caller's format, when the caller sent B3, so a B3-only backend keeps its trace.

use thiserror::Error;

use crate::hex;
use crate::sampler::sample_by_ratio;
use crate::span::{span_id_from, trace_id_from};

pub const TRACEPARENT: &str = "traceparent";
pub const TRACESTATE: &str = "tracestate";
pub const B3: &str = "b3";
pub const X_B3_TRACEID: &str = "x-b3-traceid";
pub const X_B3_SPANID: &str = "x-b3-spanid";
pub const X_B3_PARENTSPANID: &str = "x-b3-parentspanid";
pub const X_B3_SAMPLED: &str = "x-b3-sampled";
pub const X_B3_FLAGS: &str = "x-b3-flags";

/// Every propagation header: removed from what a child call forwards, then set again by
/// `child_headers`.
pub const PROPAGATION_HEADERS: &[&str] = &[
    TRACEPARENT,
    TRACESTATE,
    B3,
    X_B3_TRACEID,
    X_B3_SPANID,
    X_B3_PARENTSPANID,
    X_B3_SAMPLED,
    X_B3_FLAGS,
];

/// A span's identity as it travels between services.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub sampled: bool,
    /// The caller's W3C `tracestate`, passed on unchanged.
    pub tracestate: Option<String>,
}

impl TraceContext {
    /// The `traceparent` of this span (version 00; flags carry only `sampled`).
    pub fn traceparent(&self) -> String {
        format!(
            "00-{}-{}-0{}",
            hex(&self.trace_id),
            hex(&self.span_id),
            if self.sampled { '1' } else { '0' }
        )
    }
}

/// Which B3 form the caller used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum B3Format {
    /// `b3: …`
    Single,
    /// `x-b3-*`
    Multi,
}

/// How the caller spoke B3, so children hear it the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct B3Style {
    pub format: B3Format,
    /// The caller's trace id had 16 hex digits (64 bits): children get 16 too.
    pub trace_id_64: bool,
    /// The caller asked for debug (`d` / `x-b3-flags: 1`): passed on.
    pub debug: bool,
}

/// The caller's span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parent {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
}

/// What the caller sent.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Incoming {
    /// The caller's span: from a valid `traceparent`, else from B3.
    pub parent: Option<Parent>,
    /// The caller's sampling decision; `None` leaves it to the filter (B3 without a sampling
    /// state, or no context at all).
    pub sampled: Option<bool>,
    /// The caller's `tracestate` (only with a valid `traceparent`).
    pub tracestate: Option<String>,
    /// The caller sent B3 (valid): children get B3 too, in this style.
    pub b3: Option<B3Style>,
}

/// Why a propagation header was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ContextError {
    #[error("traceparent has {0} characters; version 00 has exactly 55")]
    TraceparentLength(usize),
    #[error("traceparent version ff is invalid")]
    VersionFf,
    #[error("traceparent must be version-traceid-parentid-flags separated by '-'")]
    TraceparentShape,
    #[error("{field} must be {digits} lower-case hex digits")]
    Hex { field: &'static str, digits: usize },
    #[error("{0} must not be all zeros")]
    ZeroId(&'static str),
    #[error("B3 trace id must have 16 or 32 hex digits, got {0}")]
    B3TraceIdLength(usize),
    #[error("B3 sampling state must be 0, 1 or d (x-b3-sampled: 0, 1, true or false), got {0:?}")]
    B3Sampled(String),
    #[error("b3 header must be traceid-spanid[-sampled[-parentspanid]] or a sampling state")]
    B3Shape,
    #[error("{0} is missing")]
    Missing(&'static str),
}

/// Parses a `traceparent` value.
pub fn parse_traceparent(value: &str) -> Result<TraceContext, ContextError> {
    let v = value.trim().as_bytes();
    if v.len() < 55 {
        return Err(ContextError::TraceparentLength(v.len()));
    }
    let version = lower_hex::<1>(&v[0..2], "traceparent version")?[0];
    if version == 0xff {
        return Err(ContextError::VersionFf);
    }
    if version == 0 && v.len() != 55 {
        return Err(ContextError::TraceparentLength(v.len()));
    }
    // Forward compatibility: a later version may append fields after another '-'.
    if v[2] != b'-' || v[35] != b'-' || v[52] != b'-' || (v.len() > 55 && v[55] != b'-') {
        return Err(ContextError::TraceparentShape);
    }
    let trace_id = lower_hex::<16>(&v[3..35], "trace id")?;
    let span_id = lower_hex::<8>(&v[36..52], "parent id")?;
    let flags = lower_hex::<1>(&v[53..55], "trace flags")?[0];
    nonzero(&trace_id, "trace id")?;
    nonzero(&span_id, "parent id")?;
    Ok(TraceContext {
        trace_id,
        span_id,
        sampled: flags & 1 == 1,
        tracestate: None,
    })
}

/// A B3 header set read from the request: ids (absent for a sampling-only `b3`), sampling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct B3Context {
    pub parent: Option<Parent>,
    pub sampled: Option<bool>,
    pub debug: bool,
    pub trace_id_64: bool,
}

/// Parses the single `b3` header.
pub fn parse_b3_single(value: &str) -> Result<B3Context, ContextError> {
    let parts: Vec<&str> = value.trim().split('-').collect();
    if let [state] = parts.as_slice() {
        let (sampled, debug) = b3_sampling(state)?;
        return Ok(B3Context {
            parent: None,
            sampled: Some(sampled),
            debug,
            trace_id_64: false,
        });
    }
    let (trace, span, state, parent_span) = match parts.as_slice() {
        [t, s] => (*t, *s, None, None),
        [t, s, st] => (*t, *s, Some(*st), None),
        [t, s, st, p] => (*t, *s, Some(*st), Some(*p)),
        _ => return Err(ContextError::B3Shape),
    };
    let (trace_id, trace_id_64) = b3_trace_id(trace)?;
    let span_id = b3_span_id(span, "b3 span id")?;
    if let Some(p) = parent_span {
        b3_span_id(p, "b3 parent span id")?;
    }
    let (sampled, debug) = match state {
        Some(st) => {
            let (s, d) = b3_sampling(st)?;
            (Some(s), d)
        }
        None => (None, false),
    };
    Ok(B3Context {
        parent: Some(Parent { trace_id, span_id }),
        sampled,
        debug,
        trace_id_64,
    })
}

/// Parses the multi-header B3 form; each argument is that header's value if present.
/// `x-b3-sampled` (or `x-b3-flags: 1`) alone is a sampling decision without ids.
pub fn parse_b3_multi(
    trace_id: Option<&str>,
    span_id: Option<&str>,
    sampled: Option<&str>,
    flags: Option<&str>,
) -> Result<B3Context, ContextError> {
    let debug = flags.is_some_and(|f| f.trim() == "1");
    let sampled = match sampled.map(str::trim) {
        _ if debug => Some(true),
        None => None,
        Some("1") | Some("true") => Some(true),
        Some("0") | Some("false") => Some(false),
        Some(other) => return Err(ContextError::B3Sampled(other.to_string())),
    };
    let parent = match (trace_id, span_id) {
        (None, None) => None,
        (Some(_), None) => return Err(ContextError::Missing(X_B3_SPANID)),
        (None, Some(_)) => return Err(ContextError::Missing(X_B3_TRACEID)),
        (Some(t), Some(s)) => {
            let (trace_id, trace_id_64) = b3_trace_id(t.trim())?;
            let span_id = b3_span_id(s.trim(), X_B3_SPANID)?;
            return Ok(B3Context {
                parent: Some(Parent { trace_id, span_id }),
                sampled,
                debug,
                trace_id_64,
            });
        }
    };
    if sampled.is_none() {
        return Err(ContextError::Missing(X_B3_TRACEID));
    }
    Ok(B3Context {
        parent,
        sampled,
        debug,
        trace_id_64: false,
    })
}

/// Reads the caller's context from request headers (`header(name)` with a lower-case name).
/// Invalid headers are ignored; a valid `traceparent` wins over B3.
pub fn extract<'a>(header: impl Fn(&str) -> Option<&'a str>) -> Incoming {
    let b3 = match header(B3) {
        Some(v) => parse_b3_single(v).ok().map(|c| (c, B3Format::Single)),
        None => {
            let (t, s) = (header(X_B3_TRACEID), header(X_B3_SPANID));
            let (sampled, flags) = (header(X_B3_SAMPLED), header(X_B3_FLAGS));
            if t.is_none() && s.is_none() && sampled.is_none() && flags.is_none() {
                None
            } else {
                parse_b3_multi(t, s, sampled, flags)
                    .ok()
                    .map(|c| (c, B3Format::Multi))
            }
        }
    };
    let b3_style = b3.as_ref().map(|(c, format)| B3Style {
        format: *format,
        trace_id_64: c.trace_id_64,
        debug: c.debug,
    });
    if let Some(ctx) = header(TRACEPARENT).and_then(|v| parse_traceparent(v).ok()) {
        return Incoming {
            parent: Some(Parent {
                trace_id: ctx.trace_id,
                span_id: ctx.span_id,
            }),
            sampled: Some(ctx.sampled),
            tracestate: header(TRACESTATE)
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string),
            b3: b3_style,
        };
    }
    match b3 {
        Some((c, _)) => Incoming {
            parent: c.parent,
            sampled: c.sampled,
            tracestate: None,
            b3: b3_style,
        },
        None => Incoming::default(),
    }
}

/// The request span: the caller's trace continued, or a new one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    /// The request span's own ids, the sampling decision and the caller's `tracestate`.
    pub context: TraceContext,
    /// The caller's span id (the request span's parent), if it sent one.
    pub parent_span_id: Option<[u8; 8]>,
}

/// Continues `incoming`'s trace or starts one, with a new span id for the request span.
/// Sampling follows the caller's flag; without one, `sample_by_ratio(trace id, ratio)`.
pub fn continue_or_start(
    incoming: &Incoming,
    ratio: f64,
    random: &mut dyn FnMut() -> u128,
) -> Started {
    let trace_id = match &incoming.parent {
        Some(p) => p.trace_id,
        None => trace_id_from(random()),
    };
    let sampled = incoming
        .sampled
        .unwrap_or_else(|| sample_by_ratio(&trace_id, ratio));
    Started {
        context: TraceContext {
            trace_id,
            span_id: span_id_from(random()),
            sampled,
            tracestate: incoming.tracestate.clone(),
        },
        parent_span_id: incoming.parent.map(|p| p.span_id),
    }
}

/// The propagation headers of a child call whose span is `child` (its parent being
/// `parent_span_id`): `traceparent` (and the caller's `tracestate`), plus B3 in the caller's
/// format when it used B3. Callers remove `PROPAGATION_HEADERS` from the forwarded set first.
pub fn child_headers(
    child: &TraceContext,
    parent_span_id: Option<[u8; 8]>,
    b3: Option<&B3Style>,
) -> Vec<(String, String)> {
    let mut out = vec![(TRACEPARENT.to_string(), child.traceparent())];
    if let Some(state) = &child.tracestate {
        out.push((TRACESTATE.to_string(), state.clone()));
    }
    let Some(style) = b3 else { return out };
    let trace = if style.trace_id_64 && child.trace_id[..8] == [0; 8] {
        hex(&child.trace_id[8..])
    } else {
        hex(&child.trace_id)
    };
    let span = hex(&child.span_id);
    match style.format {
        B3Format::Single => {
            let state = match (style.debug, child.sampled) {
                (true, _) => "d",
                (false, true) => "1",
                (false, false) => "0",
            };
            let mut v = format!("{trace}-{span}-{state}");
            if let Some(p) = parent_span_id {
                v.push('-');
                v.push_str(&hex(&p));
            }
            out.push((B3.to_string(), v));
        }
        B3Format::Multi => {
            out.push((X_B3_TRACEID.to_string(), trace));
            out.push((X_B3_SPANID.to_string(), span));
            if let Some(p) = parent_span_id {
                out.push((X_B3_PARENTSPANID.to_string(), hex(&p)));
            }
            if style.debug {
                out.push((X_B3_FLAGS.to_string(), "1".to_string()));
            } else {
                let s = if child.sampled { "1" } else { "0" };
                out.push((X_B3_SAMPLED.to_string(), s.to_string()));
            }
        }
    }
    out
}

fn b3_sampling(state: &str) -> Result<(bool, bool), ContextError> {
    match state {
        "1" => Ok((true, false)),
        "0" => Ok((false, false)),
        "d" => Ok((true, true)),
        other => Err(ContextError::B3Sampled(other.to_string())),
    }
}

fn b3_trace_id(s: &str) -> Result<([u8; 16], bool), ContextError> {
    let id = match s.len() {
        32 => any_hex::<16>(s.as_bytes(), "b3 trace id")?,
        16 => {
            let low = any_hex::<8>(s.as_bytes(), "b3 trace id")?;
            let mut id = [0u8; 16];
            id[8..].copy_from_slice(&low);
            id
        }
        n => return Err(ContextError::B3TraceIdLength(n)),
    };
    nonzero(&id, "b3 trace id")?;
    Ok((id, s.len() == 16))
}

fn b3_span_id(s: &str, field: &'static str) -> Result<[u8; 8], ContextError> {
    if s.len() != 16 {
        return Err(ContextError::Hex { field, digits: 16 });
    }
    let id = any_hex::<8>(s.as_bytes(), field)?;
    nonzero(&id, field)?;
    Ok(id)
}

fn nonzero(id: &[u8], field: &'static str) -> Result<(), ContextError> {
    if id.iter().all(|&b| b == 0) {
        Err(ContextError::ZeroId(field))
    } else {
        Ok(())
    }
}

/// `N` bytes from `2N` lower-case hex digits (W3C refuses upper case).
fn lower_hex<const N: usize>(s: &[u8], field: &'static str) -> Result<[u8; N], ContextError> {
    if s.iter().any(u8::is_ascii_uppercase) {
        return Err(ContextError::Hex {
            field,
            digits: 2 * N,
        });
    }
    any_hex(s, field)
}

/// `N` bytes from `2N` hex digits of either case (B3 senders vary).
fn any_hex<const N: usize>(s: &[u8], field: &'static str) -> Result<[u8; N], ContextError> {
    let err = ContextError::Hex {
        field,
        digits: 2 * N,
    };
    if s.len() != 2 * N {
        return Err(err);
    }
    let mut out = [0u8; N];
    for (i, pair) in s.chunks_exact(2).enumerate() {
        let hi = nibble(pair[0]).ok_or_else(|| err.clone())?;
        let lo = nibble(pair[1]).ok_or_else(|| err.clone())?;
        out[i] = hi << 4 | lo;
    }
    Ok(out)
}

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}
