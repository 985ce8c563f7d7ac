//! Experiment (not shipped, not in the workspace): how can a proxy-wasm filter answer a gRPC
//! request with a body? `run.sh` builds it, runs it in a real Envoy in front of `testmodel`
//! nodes and prints what a client receives. Mode by request header `x-probe`:
//!
//! - `local`: `send_http_response(200, content-type application/grpc, <framed message>)`.
//! - `grpc-error`: `send_grpc_response(NOT_FOUND, "node `m` failed…", [seldon-node: m])`.
//! - `router`: the router calls the upstream (a REST node, path and body rewritten at header
//!   time); the filter rewrites the answer into a gRPC frame and adds `grpc-status: 0` as a
//!   trailer at end of stream.
//! - `tail`: like `router`, but the node (cluster header `x-seldon-upstream`), path and body are
//!   chosen in the *body* callback, headers held by `allow_on_headers_stop_iteration`.
//! - `tail-err`: `tail` to a node answering 500; the filter answers `send_grpc_response`
//!   from its response-headers callback.
//! - `tail-down`: `tail` to a port where nothing listens; the filter renames Envoy's own gRPC
//!   error (`grpc-message`) to name the node and adds `seldon-node`.
//! - `tail-mesh`: the same on a listener without `allow_on_headers_stop_iteration` (headers
//!   continue to the buffer filter at once: the Istio WasmPlugin case).
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, GrpcStatusCode, LogLevel, MapType};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root) });
}}

struct Root;
impl Context for Root {}
impl RootContext for Root {
    fn create_http_context(&self, _: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Probe {
            mode: String::new(),
            seen: 0,
        }))
    }
    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Probe {
    mode: String,
    seen: usize,
}
impl Context for Probe {}

fn frame(msg: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8];
    out.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    out.extend_from_slice(msg);
    out
}

impl Probe {
    fn answer(&mut self) {
        match self.mode.as_str() {
            "local" | "local-trl" => {
                let _ = hostcalls::send_http_response(
                    200,
                    vec![
                        ("content-type", "application/grpc"),
                        ("x-probe-answer", "local"),
                    ],
                    Some(&frame(b"hello from the filter")),
                );
            }
            "grpc-error" => {
                let _ = hostcalls::send_grpc_response(
                    GrpcStatusCode::NotFound,
                    Some("node `m` failed: unknown model"),
                    vec![("seldon-node", b"m".as_slice())],
                );
            }
            _ => {}
        }
    }
}

impl HttpContext for Probe {
    fn on_http_request_headers(&mut self, _: usize, end_of_stream: bool) -> Action {
        self.mode = hostcalls::get_map_value(MapType::HttpRequestHeaders, "x-probe")
            .ok()
            .flatten()
            .unwrap_or_default();
        if self.mode == "tail-mesh" {
            // The mesh case: no allow_on_headers_stop_iteration; the buffer filter holds headers.
            return Action::Continue;
        }
        if self.mode == "tail" {
            // Hold the headers (allow_on_headers_stop_iteration) until the body arrived.
            return Action::Pause;
        }
        if self.mode == "router" {
            let _ =
                hostcalls::set_map_value(MapType::HttpRequestHeaders, ":path", Some("/predict"));
            let _ = hostcalls::set_map_value(
                MapType::HttpRequestHeaders,
                "content-type",
                Some("application/json"),
            );
            let _ = hostcalls::set_map_value(MapType::HttpRequestHeaders, "content-length", None);
            let _ = hostcalls::set_map_value(MapType::HttpRequestHeaders, "te", None);
            return Action::Continue;
        }
        if end_of_stream {
            self.answer();
        }
        Action::Pause
    }

    fn on_http_request_body(&mut self, size: usize, end_of_stream: bool) -> Action {
        self.seen = size;
        if !end_of_stream {
            return Action::Pause;
        }
        if self.mode.starts_with("tail") {
            // Decided only now, in the body callback: which node answers, on which path.
            let _ =
                hostcalls::set_map_value(MapType::HttpRequestHeaders, ":path", Some("/predict"));
            let _ = hostcalls::set_map_value(
                MapType::HttpRequestHeaders,
                "content-type",
                Some("application/json"),
            );
            let _ = hostcalls::set_map_value(MapType::HttpRequestHeaders, "content-length", None);
            let _ = hostcalls::set_map_value(MapType::HttpRequestHeaders, "te", None);
            let upstream = match self.mode.as_str() {
                "tail-err" => "node3",
                "tail-down" => "node4",
                _ => "node2",
            };
            let _ = hostcalls::set_map_value(
                MapType::HttpRequestHeaders,
                "x-seldon-upstream",
                Some(upstream),
            );
            let json = br#"{"data":{"ndarray":[[3.0]]}}"#;
            let _ = hostcalls::set_buffer(BufferType::HttpRequestBody, 0, size, json);
            return Action::Continue;
        }
        if self.mode == "router" {
            let json = br#"{"data":{"ndarray":[[1.0,2.0]]}}"#;
            let _ = hostcalls::set_buffer(BufferType::HttpRequestBody, 0, size, json);
            return Action::Continue;
        }
        self.answer();
        Action::Pause
    }

    fn on_http_response_headers(&mut self, n: usize, end_of_stream: bool) -> Action {
        let headers = hostcalls::get_map(MapType::HttpResponseHeaders).unwrap_or_default();
        log::info!(
            "probe {}: response headers ({n}, eos={end_of_stream}): {headers:?}",
            self.mode
        );
        let status = headers
            .iter()
            .find(|(k, _)| k == ":status")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        if self.mode == "tail-down" && end_of_stream {
            // Envoy's own trailers-only gRPC answer for an unreachable upstream: name the node.
            let message = headers
                .iter()
                .find(|(k, _)| k == "grpc-message")
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            let named = format!("node `m4` is unreachable (/predict): {message}");
            let _ = hostcalls::set_map_value(
                MapType::HttpResponseHeaders,
                "grpc-message",
                Some(&named),
            );
            let _ =
                hostcalls::set_map_value(MapType::HttpResponseHeaders, "seldon-node", Some("m4"));
            return Action::Continue;
        }
        if self.mode == "tail-err" && status != "200" {
            // A node's error answer, turned into a gRPC error by a local reply sent while the
            // response headers are being encoded.
            let message = format!("node `m3` answered {status}");
            let _ = hostcalls::send_grpc_response(
                GrpcStatusCode::Internal,
                Some(&message),
                vec![("seldon-node", b"m3".as_slice())],
            );
            return Action::Pause;
        }
        if self.mode == "router" || self.mode.starts_with("tail") {
            let _ = hostcalls::set_map_value(
                MapType::HttpResponseHeaders,
                "content-type",
                Some("application/grpc"),
            );
            let _ = hostcalls::set_map_value(MapType::HttpResponseHeaders, "content-length", None);
        }
        Action::Continue
    }

    fn on_http_response_body(&mut self, size: usize, end_of_stream: bool) -> Action {
        log::info!(
            "probe {}: response body {size} eos={end_of_stream}",
            self.mode
        );
        if !end_of_stream {
            return Action::Pause;
        }
        if self.mode == "router" || self.mode.starts_with("tail") {
            let body = hostcalls::get_buffer(BufferType::HttpResponseBody, 0, size)
                .ok()
                .flatten()
                .unwrap_or_default();
            let _ = hostcalls::set_buffer(BufferType::HttpResponseBody, 0, size, &frame(&body));
            let r = hostcalls::add_map_value(MapType::HttpResponseTrailers, "grpc-status", "0");
            log::info!("probe {}: add trailer at end of stream: {r:?}", self.mode);
        }
        if self.mode == "local-trl" {
            let r = hostcalls::add_map_value(MapType::HttpResponseTrailers, "grpc-status", "0");
            log::info!("probe local-trl: add trailer in body callback: {r:?}");
        }
        Action::Continue
    }
}
