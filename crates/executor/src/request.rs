//! `RequestExecutor`: the state machine for one request through the graph.
//!
//! Each graph node being evaluated is a `Task` in an arena. A task walks Seldon's stages
//! (input → route → children → combine → output); a stage that needs a node call dispatches it
//! and parks the task until `on_call_response` brings the answer back by token. Children run in
//! parallel: the parent waits until its last child finishes. The first failure answers the
//! request; later answers are ignored.

use std::collections::BTreeMap;
use std::rc::Rc;

use seldon_graph::{InputStep, LoggerMode, NodeId, Plan, PlanNode, Protocol, RouteStep, Transport};

use crate::endpoint::{Endpoint, classify};
use crate::failure::Failure;
use crate::grpc_node;
use crate::host::{Call, CallDone, CallResponse, Header, Host, Response, find_header};
use crate::names;
use crate::payload_log::{LogKind, PayloadLog, cloudevent};
use crate::service::Service;
use crate::trace::{NodeSpan, RequestTrace, attr};

/// What the host should do after an event.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Keep buffering the request body, then call `on_body`.
    WaitBody,
    /// Calls are in flight; wait for `on_call_response`.
    Wait,
    /// Answer the client with this and stop.
    Respond(Response),
    /// The tail call: hand this call to Envoy's router instead of a callout (the host rewrites
    /// the request's `:path`, `:authority`, headers and body and sets
    /// [`names::UPSTREAM_HEADER`] to `call.cluster`). Its answer is the request's answer once
    /// checked: the host passes it to [`RequestExecutor::on_tail_response`], which returns the
    /// `Step::Respond` to rewrite the node's answer into. Only offered when the host said it
    /// can ([`RequestExecutor::with_tail_calls`]).
    Tail(Call),
}

/// Runs one request.
#[derive(Debug)]
pub struct RequestExecutor {
    plan: Rc<Plan>,
    endpoint: Option<Endpoint>,
    /// Request headers forwarded to every node call.
    forwarded: Vec<Header>,
    content_type: Option<String>,
    puid: String,
    /// The feedback body, sent unchanged to every `/send-feedback`.
    feedback: Vec<u8>,
    /// Route taken (or to follow, for feedback) per routing node.
    routing: BTreeMap<String, i32>,
    tasks: Vec<Task>,
    /// The one map of calls in flight, by the host's token.
    pending: BTreeMap<u32, Pending>,
    /// Parallel GET probes (readiness, metadata, status): node → answer.
    probes: BTreeMap<NodeId, Msg>,
    /// `Seldon-Skip-Logging` was set.
    skip_logging: bool,
    done: bool,
    /// The request span, when tracing is on and the endpoint is traced (`trace.rs`).
    trace: Option<RequestTrace>,
    /// The host can hand the last node call to Envoy's router (`Step::Tail`).
    tail_calls: bool,
    /// The tail call, once handed over: what it is for, as `pending` holds callouts.
    tail: Option<Pending>,
    /// The tail call to hand over at the end of this event.
    tail_out: Option<Call>,
    /// The node whose probe (readiness, or metadata for `ModelMetadata`) is made last, as the
    /// tail call carrying a gRPC answer (`GrpcV2Server*`, `GrpcV2Model*`).
    tail_probe: Option<(NodeId, Service)>,
    /// gRPC `ModelMetadata`: the model asked about, and its node (`None`: the whole graph).
    grpc_model: Option<(String, Option<NodeId>)>,
    /// A tail call was made: the answer will come from the router (gRPC needs it).
    tailed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Predict,
    Feedback,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Input,
    Route,
    Children,
    Combine,
    Output,
    Done,
}

/// A message between nodes.
#[derive(Debug, Clone)]
struct Msg {
    body: Vec<u8>,
    content_type: Option<String>,
    /// True once a node produced it (v2 responses must be chained into requests).
    from_node: bool,
    /// The node that produced it, blamed when the next step cannot use it.
    producer: Option<NodeId>,
    /// The protocol its payload speaks (the entry's, else its producer's).
    protocol: Protocol,
    /// The payload as it was before the last change of protocol (a v1 message converted for a
    /// v2 node, or the reverse), so the way back can restore its form and `meta`
    /// (`seldon_protocol::bridge`).
    context: Option<Rc<(Protocol, Vec<u8>)>>,
}

#[derive(Debug)]
struct Task {
    node: NodeId,
    /// (parent task, slot in the parent's outputs)
    parent: Option<(usize, usize)>,
    mode: Mode,
    stage: Stage,
    msg: Msg,
    selected: Vec<NodeId>,
    outputs: Vec<Option<Msg>>,
    waiting: usize,
    /// The `context` the node's answer carries (set when its call was sent).
    sent_context: Option<Rc<(Protocol, Vec<u8>)>>,
}

/// A call in flight: to which node, what for, since when, and for which task (`None`: a probe).
#[derive(Debug, Clone)]
struct Pending {
    node: NodeId,
    service: Service,
    started_ns: u64,
    task: Option<usize>,
    /// The call's span while it is in flight (tracing on).
    span: Option<NodeSpan>,
}

enum Progress {
    Waiting,
    Spawned(Vec<usize>),
    Finished(Msg),
}

impl RequestExecutor {
    pub fn new(plan: Rc<Plan>) -> Self {
        Self {
            plan,
            endpoint: None,
            forwarded: Vec::new(),
            content_type: None,
            puid: String::new(),
            feedback: Vec::new(),
            routing: BTreeMap::new(),
            tasks: Vec::new(),
            pending: BTreeMap::new(),
            probes: BTreeMap::new(),
            skip_logging: false,
            done: false,
            trace: None,
            tail_calls: false,
            tail: None,
            tail_out: None,
            tail_probe: None,
            grpc_model: None,
            tailed: false,
        }
    }

    /// Lets the executor answer with `Step::Tail` for the graph's last node call: the host can
    /// still rewrite the request when the body has arrived (Envoy's
    /// `allow_on_headers_stop_iteration`, request headers held) and routes it by
    /// [`names::UPSTREAM_HEADER`].
    pub fn with_tail_calls(mut self, on: bool) -> Self {
        self.tail_calls = on;
        self
    }

    /// The tail call's answer (`Step::Tail`), as Envoy's router delivered it: checked like any
    /// node answer, then the request's answer (or the failure naming the node).
    pub fn on_tail_response(&mut self, host: &mut dyn Host, response: CallResponse) -> Step {
        let step = match self.tail.take() {
            Some(pending) => self.answered(host, pending, response),
            None => self.fail(Failure::DispatchFailed {
                node: String::new(),
                service: Service::Predict,
                detail: "an answer came from the router but no tail call was made".into(),
            }),
        };
        self.end_spans(host);
        step
    }

    /// The host could not hand the tail call over (`Step::Tail`): the request fails, naming
    /// the node.
    pub fn on_tail_failed(&mut self, host: &mut dyn Host, detail: String) -> Step {
        let step = match self.tail.take() {
            Some(pending) => {
                let plan = Rc::clone(&self.plan);
                let node = &plan.nodes[pending.node];
                let failure = Failure::DispatchFailed {
                    node: node.name.clone(),
                    service: pending.service,
                    detail,
                };
                if let (Some(trace), Some(span)) = (&self.trace, &pending.span) {
                    let now = host.now_ns();
                    let error = Some(failure.to_string());
                    if let Some(s) =
                        trace.node_span(span, node, pending.service, None, None, now, error)
                    {
                        host.span_done(s);
                    }
                }
                self.fail(failure)
            }
            None => self.fail(Failure::DispatchFailed {
                node: String::new(),
                service: Service::Predict,
                detail,
            }),
        };
        self.end_spans(host);
        step
    }

    /// True while a tail call is with the router.
    pub fn tail_pending(&self) -> bool {
        self.tail.is_some()
    }

    /// The endpoint this request was classified as, once headers arrived.
    pub fn endpoint(&self) -> Option<&Endpoint> {
        self.endpoint.as_ref()
    }

    /// The request id echoed as `Seldon-Puid`.
    pub fn puid(&self) -> &str {
        &self.puid
    }

    /// Request headers arrived. `headers` include pseudo-headers; `end_of_stream` means no body.
    pub fn on_headers(
        &mut self,
        host: &mut dyn Host,
        headers: Vec<Header>,
        end_of_stream: bool,
    ) -> Step {
        let step = self.headers_arrived(host, headers, end_of_stream);
        self.end_spans(host);
        step
    }

    /// The body buffered so far has `size` bytes; answers 413 when over the limit.
    pub fn on_body_size(&mut self, host: &mut dyn Host, size: usize) -> Option<Step> {
        let step = self.check_body_size(size);
        self.end_spans(host);
        step
    }

    /// The whole request body arrived.
    pub fn on_body(&mut self, host: &mut dyn Host, body: Vec<u8>) -> Step {
        let step = self.body_arrived(host, body);
        self.end_spans(host);
        step
    }

    /// A node call answered (or failed: `status: None`).
    pub fn on_call_response(
        &mut self,
        host: &mut dyn Host,
        token: u32,
        response: CallResponse,
    ) -> Step {
        let step = self.call_answered(host, token, response);
        self.end_spans(host);
        step
    }

    /// Once the request is answered: ends the request span and the spans of calls still in
    /// flight (Envoy cancels those when the request ends), and hands them to the host.
    fn end_spans(&mut self, host: &mut dyn Host) {
        let Some(trace) = &mut self.trace else { return };
        if !self.done {
            return;
        }
        let open: Vec<u32> = self
            .pending
            .iter()
            .filter(|(_, p)| p.span.is_some())
            .map(|(&token, _)| token)
            .collect();
        if open.is_empty() && !trace.open() {
            return;
        }
        let now = host.now_ns();
        for token in open {
            let Some(p) = self.pending.get_mut(&token) else {
                continue;
            };
            let Some(span) = p.span.take() else { continue };
            let text = "not awaited: the request was answered before this call returned";
            let node = &self.plan.nodes[p.node];
            if let Some(s) =
                trace.node_span(&span, node, p.service, None, None, now, Some(text.into()))
            {
                host.span_done(s);
            }
        }
        if let Some(s) = trace.end(now) {
            host.span_done(s);
        }
    }

    fn headers_arrived(
        &mut self,
        host: &mut dyn Host,
        headers: Vec<Header>,
        end_of_stream: bool,
    ) -> Step {
        let method = find_header(&headers, ":method")
            .unwrap_or("GET")
            .to_string();

        let path = find_header(&headers, ":path").unwrap_or("/").to_string();
        self.puid = match find_header(&headers, names::PUID_HEADER) {
            Some(p) if !p.is_empty() => p.to_string(),
            _ => uuid_v4(host.random_u128()),
        };
        self.content_type = find_header(&headers, "content-type").map(str::to_string);
        self.skip_logging = find_header(&headers, names::SKIP_LOGGING_HEADER)
            .is_some_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "true" | "on" | "1"));
        self.forwarded = headers
            .into_iter()
            .filter(|(k, _)| {
                let k = k.to_ascii_lowercase();
                !k.starts_with(':')
                    && !k.starts_with("x-envoy-")
                    && k != names::PUID_HEADER
                    // only the filter names a tail call's cluster
                    && k != names::UPSTREAM_HEADER
                    && !names::NOT_FORWARDED.contains(&k.as_str())
            })
            .collect();
        let endpoint = match classify(&self.plan, &method, &path) {
            Ok(e) => e,
            Err(no) => return self.fail(Failure::from(no)),
        };
        self.endpoint = Some(endpoint.clone());
        if endpoint.is_grpc() && !self.tail_calls {
            return self.fail(Failure::GrpcNeedsTail(
                "this listener does not hold request headers (allow_on_headers_stop_iteration), so the filter keeps to callouts".into(),
            ));
        }
        if end_of_stream {
            // No body to rewrite: Envoy gives a filter no way to add one to the request.
            self.tail_calls = false;
        }
        let traced = matches!(
            endpoint,
            Endpoint::Predictions
                | Endpoint::Feedback
                | Endpoint::V2Infer
                | Endpoint::GrpcPredict
                | Endpoint::GrpcFeedback
                | Endpoint::GrpcV2Infer
        );
        if traced && let Some(tracing) = &self.plan.tracing {
            let plan = Rc::clone(&self.plan);
            let ratio = tracing.sample_ratio;
            let mut trace =
                RequestTrace::start(host, &plan, ratio, &method, &path, &self.forwarded);
            trace.set(attr::ENDPOINT, endpoint.metric_service().into());
            trace.set(attr::PUID, self.puid.as_str().into());
            self.trace = Some(trace);
        }
        match endpoint {
            Endpoint::Predictions
            | Endpoint::Feedback
            | Endpoint::V2Infer
            | Endpoint::GrpcPredict
            | Endpoint::GrpcFeedback
            | Endpoint::GrpcV2Infer
            | Endpoint::GrpcV2ServerLive
            | Endpoint::GrpcV2ServerReady
            | Endpoint::GrpcV2ModelReady
            | Endpoint::GrpcV2ModelMetadata
            | Endpoint::GrpcV2ServerMetadata
                if end_of_stream =>
            {
                self.body_arrived(host, Vec::new())
            }
            Endpoint::Predictions
            | Endpoint::Feedback
            | Endpoint::V2Infer
            | Endpoint::GrpcPredict
            | Endpoint::GrpcFeedback
            | Endpoint::GrpcV2Infer
            | Endpoint::GrpcV2ServerLive
            | Endpoint::GrpcV2ServerReady
            | Endpoint::GrpcV2ModelReady
            | Endpoint::GrpcV2ModelMetadata
            | Endpoint::GrpcV2ServerMetadata => Step::WaitBody,
            Endpoint::Live => self.respond(Response::json(200, br#"{"live":true}"#.to_vec())),
            Endpoint::Ping => self.respond(Response::with_type(
                200,
                "text/plain; charset=utf-8",
                b"pong".to_vec(),
            )),
            Endpoint::Ready | Endpoint::V2ModelReady(_) => {
                let all = self.remote_nodes();
                self.start_probes(host, Service::Ready, all)
            }
            Endpoint::GraphMetadata => {
                let all = self.remote_nodes();
                self.start_probes(host, Service::Metadata, all)
            }
            Endpoint::V2ModelMetadata(_) => {
                let (reader, writer) = crate::metadata::edges(&self.plan);
                let mut ends = vec![reader, writer];
                ends.dedup();
                ends.retain(|&id| self.plan.nodes[id].is_remote());
                self.start_probes(host, Service::Metadata, ends)
            }
            Endpoint::NodeMetadata(id) => self.start_probes(host, Service::Metadata, vec![id]),
            Endpoint::NodeStatus(id) => self.start_probes(host, Service::Status, vec![id]),
        }
    }

    fn check_body_size(&mut self, size: usize) -> Option<Step> {
        if size > self.plan.body_limit_bytes && !self.done {
            return Some(self.fail(Failure::BodyTooLarge {
                limit: self.plan.body_limit_bytes,
            }));
        }
        None
    }

    fn body_arrived(&mut self, host: &mut dyn Host, body: Vec<u8>) -> Step {
        if let Some(trace) = &mut self.trace {
            let n = i64::try_from(body.len()).unwrap_or(i64::MAX);
            trace.set(attr::REQUEST_BYTES, n.into());
        }
        if let Some(step) = self.check_body_size(body.len()) {
            return step;
        }
        if matches!(
            self.endpoint,
            Some(
                Endpoint::GrpcV2ServerLive
                    | Endpoint::GrpcV2ServerReady
                    | Endpoint::GrpcV2ModelReady
                    | Endpoint::GrpcV2ModelMetadata
                    | Endpoint::GrpcV2ServerMetadata
            )
        ) {
            return self.grpc_v2_health(host, &body);
        }
        let body = match self.endpoint {
            Some(Endpoint::GrpcPredict) => {
                match seldon_protocol::grpc::unframe(&body)
                    .and_then(seldon_protocol::grpc::seldon_message_to_json)
                {
                    Ok(json) => json,
                    Err(e) => return self.fail(Failure::BadRequest(format!("gRPC Predict: {e}"))),
                }
            }
            Some(Endpoint::GrpcFeedback) => {
                match seldon_protocol::grpc::unframe(&body)
                    .and_then(seldon_protocol::grpc::feedback_to_json)
                {
                    Ok(json) => json,
                    Err(e) => {
                        return self.fail(Failure::BadFeedback(format!("gRPC SendFeedback: {e}")));
                    }
                }
            }
            Some(Endpoint::GrpcV2Infer) => {
                match seldon_protocol::grpc::unframe(&body)
                    .and_then(seldon_protocol::grpc_v2::infer_request_to_json)
                {
                    Ok(request) => request.json,
                    Err(e) => {
                        return self.fail(Failure::BadRequest(format!("gRPC ModelInfer: {e}")));
                    }
                }
            }
            _ => body,
        };
        if self.endpoint.as_ref().is_some_and(Endpoint::is_grpc) {
            // Nodes get the message's REST JSON.
            self.content_type = Some("application/json".into());
        }
        let msg = Msg {
            body,
            content_type: self.content_type.clone(),
            from_node: false,
            producer: None,
            protocol: self.plan.protocol,
            context: None,
        };
        match self.endpoint {
            Some(
                Endpoint::Predictions
                | Endpoint::V2Infer
                | Endpoint::GrpcPredict
                | Endpoint::GrpcV2Infer,
            ) => {
                if let Err(f) = self.check_request(&msg.body) {
                    return self.fail(f);
                }
                let root = self.new_task(0, None, Mode::Predict, msg);
                self.run(host, root)
            }
            Some(Endpoint::Feedback | Endpoint::GrpcFeedback) => {
                if let Err(f) = check_feedback(&msg.body) {
                    return self.fail(f);
                }
                match seldon_protocol::feedback_routing(&msg.body) {
                    Ok(routing) => self.routing = routing,
                    Err(e) => return self.fail(Failure::BadFeedback(e.to_string())),
                }
                self.feedback = msg.body.clone();
                let root = self.new_task(0, None, Mode::Feedback, msg);
                self.run(host, root)
            }
            _ => Step::Wait,
        }
    }

    fn call_answered(&mut self, host: &mut dyn Host, token: u32, response: CallResponse) -> Step {
        let Some(pending) = self.pending.remove(&token) else {
            return Step::Wait;
        };
        self.answered(host, pending, response)
    }

    /// A call (callout or tail call) answered: metrics, the hop's check, its span, then the
    /// graph goes on.
    fn answered(&mut self, host: &mut dyn Host, pending: Pending, response: CallResponse) -> Step {
        let plan = Rc::clone(&self.plan);
        let node = &plan.nodes[pending.node];
        let now = host.now_ns();
        let elapsed_ns = now.saturating_sub(pending.started_ns);
        host.call_done(&CallDone {
            node: &node.name,
            service: pending.service,
            status: response.status,
            elapsed_ns,
        });
        if self.done {
            return Step::Wait;
        }
        let (status, bytes_in) = (response.status, response.body.len());
        // A gRPC node's answer becomes the REST answer it stands for (or its failure).
        let response = if node.transport == Transport::Grpc {
            grpc_node::answer(node, pending.service, response)
        } else {
            Ok(response)
        };
        let response = match (response, pending.task) {
            (Ok(r), _) => r,
            // Only carries the answer (see `on_probe`).
            (Err(_), None)
                if matches!(
                    self.endpoint,
                    Some(Endpoint::GrpcV2ServerLive | Endpoint::GrpcV2ServerMetadata)
                ) =>
            {
                return self.probes_settled(host);
            }
            (Err(f), None) => return self.fail(f),
            (Err(f), Some(_)) => {
                if let (Some(trace), Some(span)) = (&self.trace, &pending.span) {
                    let error = Some(f.to_string());
                    let bytes_in = status.map(|_| bytes_in);
                    if let Some(s) =
                        trace.node_span(span, node, pending.service, status, bytes_in, now, error)
                    {
                        host.span_done(s);
                    }
                }
                return self.fail(f);
            }
        };
        let Some(task) = pending.task else {
            return self.on_probe(host, pending.node, node, pending.service, response);
        };
        let limit = plan.body_limit_bytes;
        let outcome = match check(pending.node, node, limit, pending.service, response) {
            Ok(msg) if pending.service == Service::Route => {
                self.apply_route(task, &msg.body).map(|()| None)
            }
            Ok(msg) => Ok(Some(msg)),
            Err(f) => Err(f),
        };
        if let (Some(trace), Some(span)) = (&self.trace, &pending.span) {
            let error = outcome.as_ref().err().map(ToString::to_string);
            let bytes_in = status.map(|_| bytes_in);
            if let Some(s) =
                trace.node_span(span, node, pending.service, status, bytes_in, now, error)
            {
                host.span_done(s);
            }
        }
        match outcome {
            Err(f) => return self.fail(f),
            Ok(Some(mut msg)) => {
                msg.context = self.tasks[task].sent_context.take();
                self.tasks[task].msg = msg;
            }
            Ok(None) => {}
        }
        self.run(host, task)
    }

    fn new_task(
        &mut self,
        node: NodeId,
        parent: Option<(usize, usize)>,
        mode: Mode,
        msg: Msg,
    ) -> usize {
        self.tasks.push(Task {
            node,
            parent,
            mode,
            stage: Stage::Input,
            msg,
            selected: Vec::new(),
            outputs: Vec::new(),
            waiting: 0,
            sent_context: None,
        });
        self.tasks.len() - 1
    }

    /// Advances `first` and everything its progress unblocks.
    fn run(&mut self, host: &mut dyn Host, first: usize) -> Step {
        let mut queue = vec![first];
        while let Some(t) = queue.pop() {
            match self.step(host, t) {
                Err(f) => return self.fail(f),
                Ok(Progress::Waiting) => {}
                Ok(Progress::Spawned(children)) => queue.extend(children.into_iter().rev()),
                Ok(Progress::Finished(msg)) => match self.tasks[t].parent {
                    None => return self.finish(msg),
                    Some((p, slot)) => {
                        let parent = &mut self.tasks[p];
                        if let Some(out) = parent.outputs.get_mut(slot) {
                            *out = Some(msg);
                        }
                        parent.waiting = parent.waiting.saturating_sub(1);
                        if parent.waiting == 0 {
                            queue.push(p);
                        }
                    }
                },
            }
        }
        match self.tail_out.take() {
            Some(call) => Step::Tail(call),
            None => Step::Wait,
        }
    }

    /// Whether the call for `service` on task `t` is the graph's last: its answer, unchanged
    /// by any further node call, becomes the request's answer (`finish` may still add the
    /// routing). So: a prediction (or feedback's last `/send-feedback`); after this call the task has no children to run and no
    /// `/transform-output` left; every ancestor waits on this one child only and makes no call
    /// after it (no `/aggregate`, no `/transform-output`). Feedback, routers' `/route` and
    /// probes stay callouts.
    fn is_tail(&self, t: usize, service: Service) -> bool {
        if !self.tail_calls || !self.pending.is_empty() || self.tail.is_some() {
            return false;
        }
        let task = &self.tasks[t];
        let node = &self.plan.nodes[task.node];
        let last_of_task = match (task.mode, service) {
            (Mode::Predict, Service::Predict | Service::TransformInput) => {
                node.children.is_empty() && !node.transform_output
            }
            (Mode::Predict, Service::Aggregate) => !node.transform_output,
            (Mode::Predict, Service::TransformOutput) | (Mode::Feedback, Service::SendFeedback) => {
                true
            }
            _ => false,
        };
        if !last_of_task {
            return false;
        }
        let mut up = task.parent;
        while let Some((p, _)) = up {
            let parent = &self.tasks[p];
            let pnode = &self.plan.nodes[parent.node];
            let calls_after = match parent.mode {
                Mode::Predict => pnode.aggregate || pnode.transform_output,
                Mode::Feedback => pnode.send_feedback,
            };
            if parent.selected.len() != 1 || calls_after {
                return false;
            }
            up = parent.parent;
        }
        true
    }

    /// Moves task `t` through its stages until it must wait or is done.
    fn step(&mut self, host: &mut dyn Host, t: usize) -> Result<Progress, Failure> {
        let plan = Rc::clone(&self.plan);
        let node = &plan.nodes[self.tasks[t].node];
        let mode = self.tasks[t].mode;
        loop {
            match self.tasks[t].stage {
                Stage::Input => {
                    self.tasks[t].stage = Stage::Route;
                    match mode {
                        Mode::Predict => {
                            self.log(host, node, LogKind::Request, t, |m| m.logs_request())
                        }
                        Mode::Feedback => {
                            self.log(host, node, LogKind::Feedback, t, |m| m.logs_response())
                        }
                    }
                    if mode == Mode::Predict
                        && let Some(input) = node.input
                    {
                        let service = match input {
                            InputStep::Predict => Service::Predict,
                            InputStep::TransformInput => Service::TransformInput,
                        };
                        self.dispatch_step(host, t, service)?;
                        return Ok(Progress::Waiting);
                    }
                }
                Stage::Route => {
                    if node.children.is_empty() {
                        self.tasks[t].stage = Stage::Output;
                        continue;
                    }
                    let route = match (mode, node.route) {
                        (Mode::Feedback, _) => self.routing.get(&node.name).copied().unwrap_or(-1),
                        (Mode::Predict, RouteStep::AllChildren) => -1,
                        (Mode::Predict, RouteStep::Remote) => {
                            self.dispatch_step(host, t, Service::Route)?;
                            return Ok(Progress::Waiting);
                        }
                        (Mode::Predict, RouteStep::RandomAbTest { ratio_a }) => {
                            let choice = if host.random_f64() < ratio_a { 0 } else { 1 };
                            self.routing.insert(node.name.clone(), choice);
                            choice
                        }
                    };
                    self.tasks[t].selected =
                        select(node, route).map_err(|(route, children)| match mode {
                            Mode::Feedback => Failure::BadFeedbackRoute {
                                node: node.name.clone(),
                                route,
                                children,
                            },
                            Mode::Predict => route_out_of_range(node, route, children),
                        })?;
                    self.tasks[t].stage = Stage::Children;
                }
                Stage::Children => {
                    let selected = self.tasks[t].selected.clone();
                    if selected.is_empty() {
                        // Seldon's -2: skip the children and return the message unchanged.
                        self.tasks[t].stage = Stage::Output;
                        continue;
                    }
                    self.tasks[t].stage = Stage::Combine;
                    self.tasks[t].waiting = selected.len();
                    self.tasks[t].outputs = vec![None; selected.len()];
                    let msg = self.tasks[t].msg.clone();
                    let children = selected
                        .iter()
                        .enumerate()
                        .map(|(slot, &child)| {
                            self.new_task(child, Some((t, slot)), mode, msg.clone())
                        })
                        .collect();
                    return Ok(Progress::Spawned(children));
                }
                Stage::Combine => {
                    self.tasks[t].stage = Stage::Output;
                    let outputs: Vec<Msg> =
                        self.tasks[t].outputs.iter().flatten().cloned().collect();
                    if mode == Mode::Predict && node.aggregate {
                        // A combiner is a Seldon node: v2 answers of its children are
                        // converted to SeldonMessages first.
                        let mut v1_parts = Vec::with_capacity(outputs.len());
                        for out in &outputs {
                            let part = bridge(out, node.protocol).map_err(|e| {
                                bad_input(&self.plan, Some(out), node, Service::Aggregate, &e)
                            })?;
                            v1_parts.push(part);
                        }
                        let parts: Vec<&[u8]> = v1_parts.iter().map(Vec::as_slice).collect();
                        let body = seldon_protocol::aggregate_request(&parts).map_err(|e| {
                            // Only an answer not declared JSON gets here: JSON ones are checked
                            // at their hop. The child that produced it is to blame.
                            let part = match &e {
                                seldon_protocol::ProtocolError::AggregatePart { index, .. } => {
                                    outputs.get(*index)
                                }
                                _ => None,
                            };
                            bad_input(&self.plan, part, node, Service::Aggregate, &e)
                        })?;
                        self.tasks[t].msg = Msg {
                            body,
                            content_type: Some("application/json".into()),
                            from_node: true,
                            producer: None,
                            protocol: node.protocol,
                            context: None,
                        };
                        self.dispatch_step(host, t, Service::Aggregate)?;
                        return Ok(Progress::Waiting);
                    }
                    if let Some(first) = outputs.into_iter().next() {
                        self.tasks[t].msg = first;
                    }
                }
                Stage::Output => {
                    self.tasks[t].stage = Stage::Done;
                    let service = match mode {
                        Mode::Predict if node.transform_output => Some(Service::TransformOutput),
                        Mode::Feedback if node.send_feedback => Some(Service::SendFeedback),
                        _ => None,
                    };
                    if let Some(service) = service {
                        self.dispatch_step(host, t, service)?;
                        return Ok(Progress::Waiting);
                    }
                }
                Stage::Done => {
                    if mode == Mode::Predict {
                        self.log(host, node, LogKind::Response, t, |m| m.logs_response());
                    }
                    return Ok(Progress::Finished(self.tasks[t].msg.clone()));
                }
            }
        }
    }

    /// Sends task `t`'s current message to the payload logger (as a CloudEvent, after the
    /// request) if the node's mode asks for it.
    fn log(
        &self,
        host: &mut dyn Host,
        node: &PlanNode,
        kind: LogKind,
        t: usize,
        wanted: fn(LoggerMode) -> bool,
    ) {
        let Some(logger) = &node.logger else { return };
        if self.skip_logging || !wanted(logger.mode) {
            return;
        }
        let msg = &self.tasks[t].msg;
        let log = PayloadLog {
            node: node.name.clone(),
            kind,
            body: msg.body.clone(),
            content_type: msg.content_type.clone(),
            puid: self.puid.clone(),
        };
        if let Some(call) = cloudevent(&self.plan, &log, uuid_v4(host.random_u128())) {
            host.send_later(call);
        }
    }

    /// A router answered: record and apply its choice.
    fn apply_route(&mut self, t: usize, reply: &[u8]) -> Result<(), Failure> {
        let node = &self.plan.nodes[self.tasks[t].node];
        let route = seldon_protocol::route_from_reply(reply).map_err(|e| Failure::BadRoute {
            node: node.name.clone(),
            detail: e.to_string(),
        })?;
        let selected = select(node, route)
            .map_err(|(route, children)| route_out_of_range(node, route, children))?;
        self.routing.insert(node.name.clone(), route);
        let task = &mut self.tasks[t];
        task.selected = selected;
        task.stage = Stage::Children;
        Ok(())
    }

    /// Sends the call for `service` on task `t`'s node, with the task's message as body.
    fn dispatch_step(
        &mut self,
        host: &mut dyn Host,
        t: usize,
        service: Service,
    ) -> Result<(), Failure> {
        let id = self.tasks[t].node;
        let node = &self.plan.nodes[id];
        let msg = &self.tasks[t].msg;
        let (body, content_type, context) = if service == Service::SendFeedback {
            (self.feedback.clone(), self.content_type.clone(), None)
        } else if msg.protocol == node.protocol {
            let body = if node.protocol == Protocol::V2 && msg.from_node {
                seldon_protocol::v2_chain(&msg.body)
                    .map_err(|e| bad_input(&self.plan, Some(msg), node, service, &e))?
            } else {
                msg.body.clone()
            };
            (body, msg.content_type.clone(), msg.context.clone())
        } else {
            // The node speaks another protocol than the message: converted (bridge.rs), and
            // the message before it kept for the way back.
            let body = bridge(msg, node.protocol)
                .map_err(|e| bad_input(&self.plan, Some(msg), node, service, &e))?;
            let context = Some(Rc::new((msg.protocol, msg.body.clone())));
            (body, Some("application/json".to_string()), context)
        };
        self.tasks[t].sent_context = context;
        let msg = &self.tasks[t].msg;
        let body = if node.transport == Transport::Grpc {
            grpc_node::request(node, service, &body)
                .map_err(|e| bad_input(&self.plan, Some(msg), node, service, &e))?
        } else {
            body
        };
        let call = self.call(node, service, Some(body), content_type)?;
        if self.is_tail(t, service) {
            self.hand_over(host, call, id, service, Some(t));
            return Ok(());
        }
        self.dispatch(host, call, id, service, Some(t))
    }

    /// Keeps the tail call to return as `Step::Tail` (with its span, as `dispatch` does).
    fn hand_over(
        &mut self,
        host: &mut dyn Host,
        mut call: Call,
        node: NodeId,
        service: Service,
        task: Option<usize>,
    ) {
        let started_ns = host.now_ns();
        let span = self.trace.as_ref().map(|trace| {
            let bytes_out = call.body.as_ref().map_or(0, Vec::len);
            trace.child(host, &mut call.headers, bytes_out, started_ns)
        });
        self.tail = Some(Pending {
            node,
            service,
            started_ns,
            task,
            span,
        });
        self.tailed = true;
        self.tail_out = Some(call);
    }

    /// Dispatches `call` and remembers what it is for under the host's token. With tracing
    /// on, the call gets its own span id and carries it as its trace context.
    fn dispatch(
        &mut self,
        host: &mut dyn Host,
        mut call: Call,
        node: NodeId,
        service: Service,
        task: Option<usize>,
    ) -> Result<(), Failure> {
        let started_ns = host.now_ns();
        let span = self.trace.as_ref().map(|trace| {
            let bytes_out = call.body.as_ref().map_or(0, Vec::len);
            trace.child(host, &mut call.headers, bytes_out, started_ns)
        });
        let token = match host.dispatch(&call) {
            Ok(token) => token,
            Err(detail) => {
                let failure = Failure::DispatchFailed {
                    node: call.node.clone(),
                    service,
                    detail,
                };
                if let (Some(trace), Some(span)) = (&self.trace, &span) {
                    let node = &self.plan.nodes[node];
                    let error = Some(failure.to_string());
                    if let Some(s) =
                        trace.node_span(span, node, service, None, None, started_ns, error)
                    {
                        host.span_done(s);
                    }
                }
                return Err(failure);
            }
        };
        self.pending.insert(
            token,
            Pending {
                node,
                service,
                started_ns,
                task,
                span,
            },
        );
        Ok(())
    }

    /// The call for `service` on `node`, with the forwarded headers and the puid.
    fn call(
        &self,
        node: &PlanNode,
        service: Service,
        body: Option<Vec<u8>>,
        content_type: Option<String>,
    ) -> Result<Call, Failure> {
        let Some(upstream) = &node.upstream else {
            return Err(Failure::DispatchFailed {
                node: node.name.clone(),
                service,
                detail: "node has no upstream".into(),
            });
        };
        let mut headers = self.forwarded.clone();
        headers.retain(|(k, _)| !k.eq_ignore_ascii_case("content-type"));
        let grpc = node.transport == Transport::Grpc;
        let (method, path, body) = if grpc {
            let Some(path) = grpc_node::method_of(node, service) else {
                return Err(Failure::DispatchFailed {
                    node: node.name.clone(),
                    service,
                    detail: format!(
                        "the node is called over gRPC, and a {} node has no gRPC call for {service}; give it a REST endpoint to ask it",
                        node.protocol
                    ),
                });
            };
            let body = match body {
                Some(b) => b,
                None => {
                    grpc_node::request(node, service, b"").map_err(|e| Failure::DispatchFailed {
                        node: node.name.clone(),
                        service,
                        detail: e.to_string(),
                    })?
                }
            };
            // The client's gRPC headers (a gRPC entry's) are not the node call's: no
            // compression is offered, so the answer's frame is readable.
            headers.retain(|(k, _)| !k.to_ascii_lowercase().starts_with("grpc-"));
            headers.push(("content-type".into(), "application/grpc".into()));
            headers.push(("te".into(), "trailers".into()));
            ("POST", path.to_string(), Some(body))
        } else {
            if body.is_some() {
                headers.push((
                    "content-type".into(),
                    content_type.unwrap_or_else(|| "application/json".into()),
                ));
            }
            (
                service.method(),
                service.path(&node.name, node.protocol),
                body,
            )
        };
        headers.push((names::PUID_HEADER.into(), self.puid.clone()));
        Ok(Call {
            node: node.name.clone(),
            cluster: upstream.cluster.clone(),
            method,
            path,
            authority: upstream.authority.clone(),
            headers,
            body,
            timeout_ms: upstream.timeout_ms,
        })
    }

    /// Every node the filter calls.
    fn remote_nodes(&self) -> Vec<NodeId> {
        (0..self.plan.nodes.len())
            .filter(|&id| self.plan.nodes[id].is_remote())
            .collect()
    }

    /// Sends one GET for `service` to each of `nodes`; answers when all have replied.
    fn start_probes(&mut self, host: &mut dyn Host, service: Service, nodes: Vec<NodeId>) -> Step {
        let plan = Rc::clone(&self.plan);
        for id in nodes {
            let sent = self
                .call(&plan.nodes[id], service, None, None)
                .and_then(|call| self.dispatch(host, call, id, service, None));
            if let Err(f) = sent {
                return self.fail(f);
            }
        }
        if self.pending.is_empty() {
            self.probes_settled(host)
        } else {
            Step::Wait
        }
    }

    /// gRPC `ServerLive`, `ServerReady`, `ModelReady` on a v2 graph: the same probes as the
    /// REST paths, except that the last node's is the tail call, so the answer (a framed
    /// message) can come through the router — a gRPC local reply carries no body.
    fn grpc_v2_health(&mut self, host: &mut dyn Host, body: &[u8]) -> Step {
        let mut service = Service::Ready;
        let nodes = match self.endpoint {
            Some(Endpoint::GrpcV2ModelMetadata) => {
                let model = match seldon_protocol::grpc::unframe(body)
                    .and_then(seldon_protocol::grpc_v2::model_ref)
                {
                    Ok(m) => m.name,
                    Err(e) => {
                        return self.fail(Failure::BadRequest(format!("gRPC ModelMetadata: {e}")));
                    }
                };
                service = Service::Metadata;
                match crate::endpoint::v2_target(&self.plan, &model) {
                    Ok(Some(id)) => {
                        self.grpc_model = Some((model, Some(id)));
                        vec![id]
                    }
                    Ok(None) => {
                        // The graph as one model: the reader's inputs, the writer's outputs.
                        let (reader, writer) = crate::metadata::edges(&self.plan);
                        let mut ends = vec![reader, writer];
                        ends.dedup();
                        ends.retain(|&id| self.plan.nodes[id].is_remote());
                        self.grpc_model = Some((model, None));
                        ends
                    }
                    Err(no) => return self.fail(Failure::from(no)),
                }
            }
            Some(Endpoint::GrpcV2ModelReady) => {
                let model = match seldon_protocol::grpc::unframe(body)
                    .and_then(seldon_protocol::grpc_v2::model_ref)
                {
                    Ok(m) => m.name,
                    Err(e) => {
                        return self.fail(Failure::BadRequest(format!("gRPC ModelReady: {e}")));
                    }
                };
                match crate::endpoint::v2_target(&self.plan, &model) {
                    Ok(Some(id)) => vec![id],
                    Ok(None) => self.remote_nodes(),
                    Err(no) => return self.fail(Failure::from(no)),
                }
            }
            // Liveness and server metadata are the filter's own; one node's probe only carries
            // the answer.
            Some(Endpoint::GrpcV2ServerLive | Endpoint::GrpcV2ServerMetadata) => {
                self.remote_nodes().into_iter().take(1).collect()
            }
            _ => self.remote_nodes(),
        };
        let Some((&last, rest)) = nodes.split_last() else {
            return self.fail(Failure::GrpcNeedsTail(
                "the graph has no node whose call could carry the answer".into(),
            ));
        };
        if !self.tail_calls {
            return self.fail(Failure::GrpcNeedsTail(
                "the request has no body to rewrite into the node call that carries the answer"
                    .into(),
            ));
        }
        self.tail_probe = Some((last, service));
        self.start_probes(host, service, rest.to_vec())
    }

    /// Every callout probe answered: the gRPC health calls' tail probe goes out now, else the
    /// answer.
    fn probes_settled(&mut self, host: &mut dyn Host) -> Step {
        let Some((id, service)) = self.tail_probe.take() else {
            return self.probes_done();
        };
        let plan = Rc::clone(&self.plan);
        match self.call(&plan.nodes[id], service, None, None) {
            Ok(call) => {
                self.hand_over(host, call, id, service, None);
                match self.tail_out.take() {
                    Some(call) => Step::Tail(call),
                    None => Step::Wait,
                }
            }
            Err(f) => self.fail(f),
        }
    }

    fn on_probe(
        &mut self,
        host: &mut dyn Host,
        id: NodeId,
        node: &PlanNode,
        service: Service,
        response: CallResponse,
    ) -> Step {
        if matches!(
            self.endpoint,
            Some(Endpoint::GrpcV2ServerLive | Endpoint::GrpcV2ServerMetadata)
        ) {
            // Only carries the answer: the filter itself is live whatever the node says.
            return self.probes_settled(host);
        }
        if service == Service::Ready && !response.status.is_some_and(|s| (200..300).contains(&s)) {
            let status = response
                .status
                .map_or_else(|| "no response".to_string(), |s| s.to_string());
            return self.fail(Failure::NotReady {
                node: node.name.clone(),
                status,
            });
        }
        match check(id, node, self.plan.body_limit_bytes, service, response) {
            Ok(msg) => {
                self.probes.insert(id, msg);
            }
            Err(f) => return self.fail(f),
        }
        if self.pending.is_empty() {
            self.probes_settled(host)
        } else {
            Step::Wait
        }
    }

    fn probes_done(&mut self) -> Step {
        let answers: BTreeMap<String, Vec<u8>> = self
            .probes
            .iter()
            .map(|(&id, msg)| (self.plan.nodes[id].name.clone(), msg.body.clone()))
            .collect();
        match self.endpoint.clone() {
            Some(Endpoint::GraphMetadata) => {
                let body = crate::metadata::graph_metadata(&self.plan, &answers);
                self.respond(Response::json(200, body))
            }
            Some(Endpoint::V2ModelMetadata(model)) => {
                let body = crate::metadata::v2_graph_metadata(&self.plan, &model, &answers);
                self.respond(Response::json(200, body))
            }
            Some(Endpoint::NodeMetadata(id)) | Some(Endpoint::NodeStatus(id)) => {
                // The node's own answer, passed through as Seldon's executor does.
                let msg = self.probes.remove(&id).unwrap_or(Msg {
                    body: Vec::new(),
                    content_type: None,
                    from_node: true,
                    producer: Some(id),
                    protocol: self.plan.nodes[id].protocol,
                    context: None,
                });
                let content_type = msg.content_type.as_deref().unwrap_or("application/json");
                self.respond(Response::with_type(200, content_type, msg.body))
            }
            Some(Endpoint::GrpcV2ServerLive) => {
                self.grpc_answer(seldon_protocol::grpc_v2::server_live_response(true))
            }
            Some(Endpoint::GrpcV2ServerReady) => {
                self.grpc_answer(seldon_protocol::grpc_v2::server_ready_response(true))
            }
            Some(Endpoint::GrpcV2ModelReady) => {
                self.grpc_answer(seldon_protocol::grpc_v2::model_ready_response(true))
            }
            Some(Endpoint::GrpcV2ServerMetadata) => {
                let json = serde_json::json!({
                    "name": "seldon-mesh",
                    "version": env!("CARGO_PKG_VERSION"),
                    "extensions": [],
                });
                match seldon_protocol::grpc_v2::server_metadata_response_from_json(
                    json.to_string().as_bytes(),
                ) {
                    Ok(pb) => self.grpc_answer(pb),
                    Err(e) => self.fail(Failure::BadRequest(e.to_string())),
                }
            }
            Some(Endpoint::GrpcV2ModelMetadata) => self.grpc_model_metadata(answers),
            Some(Endpoint::V2ModelReady(model)) => {
                let body = serde_json::json!({"name": model, "ready": true})
                    .to_string()
                    .into_bytes();
                self.respond(Response::json(200, body))
            }
            _ => self.respond(Response::json(200, br#"{"ready":true}"#.to_vec())),
        }
    }

    /// gRPC `ModelMetadata`: the node's own metadata JSON, or the graph's, as a
    /// `ModelMetadataResponse`; JSON that is no v2 metadata is INTERNAL naming the node.
    fn grpc_model_metadata(&mut self, answers: BTreeMap<String, Vec<u8>>) -> Step {
        let (model, target) = self.grpc_model.take().unwrap_or_default();
        let (json, blamed) = match target {
            Some(id) => {
                let name = self.plan.nodes[id].name.clone();
                (answers.get(&name).cloned().unwrap_or_default(), name)
            }
            None => (
                crate::metadata::v2_graph_metadata(&self.plan, &model, &answers),
                self.plan.root().name.clone(),
            ),
        };
        match seldon_protocol::grpc_v2::model_metadata_response_from_json(&json) {
            Ok(pb) => self.grpc_answer(pb),
            Err(e) => self.fail(Failure::BadOutput {
                node: blamed,
                service: Service::Metadata,
                detail: format!("its answer is not v2 model metadata for the gRPC client: {e}"),
            }),
        }
    }

    /// The root finished: answer with its message.
    fn finish(&mut self, mut msg: Msg) -> Step {
        let producer = msg.producer;
        if msg.from_node && msg.protocol != self.plan.protocol {
            // The answering node speaks another protocol than the graph: the client gets the
            // graph's (bridge.rs).
            let plan = Rc::clone(&self.plan);
            let name = producer.map_or("", |id| plan.nodes[id].name.as_str());
            let converted = match (msg.protocol, plan.protocol) {
                (Protocol::Seldon, Protocol::V2) => {
                    let request = msg
                        .context
                        .as_deref()
                        .filter(|(p, _)| *p == Protocol::V2)
                        .map(|(_, b)| b.as_slice());
                    seldon_protocol::bridge::v1_to_v2_response(&msg.body, name, request)
                }
                _ => bridge(&msg, plan.protocol),
            };
            match converted {
                Ok(body) => {
                    msg.body = body;
                    msg.content_type = Some("application/json".into());
                }
                Err(e) => {
                    return self.fail(Failure::BadOutput {
                        node: name.to_string(),
                        service: Service::Predict,
                        detail: format!(
                            "its {} answer cannot be converted to the graph's {} protocol for the client: {e}",
                            msg.protocol, plan.protocol
                        ),
                    });
                }
            }
        }
        let body = match self.endpoint {
            Some(Endpoint::Feedback | Endpoint::GrpcFeedback) if !msg.from_node => b"{}".to_vec(),
            Some(Endpoint::Predictions | Endpoint::GrpcPredict) if self.plan.routes => {
                match seldon_protocol::inject_routing(&msg.body, &self.routing) {
                    Ok(b) => b,
                    // A non-JSON answer still reaches the client; it just carries no routing.
                    Err(_) => msg.body,
                }
            }
            _ => msg.body,
        };
        if self.endpoint.as_ref().is_some_and(Endpoint::is_grpc) {
            return self.finish_grpc(producer, body);
        }
        let content_type = msg.content_type.as_deref().unwrap_or("application/json");
        self.respond(Response::with_type(200, content_type, body))
    }

    /// A gRPC call's answer: the REST JSON turned into a framed SeldonMessage, `grpc-status`
    /// 0. Only an answer that comes through the router can carry it (`Failure::GrpcNeedsTail`).
    fn finish_grpc(&mut self, producer: Option<NodeId>, json: Vec<u8>) -> Step {
        if !self.tailed {
            return self.fail(Failure::GrpcNeedsTail(
                "this graph's answer is not one node's (parallel children without a combiner, or a router skipping its children)".into(),
            ));
        }
        let (encoded, expected) = match self.endpoint {
            Some(Endpoint::GrpcV2Infer) => (
                seldon_protocol::grpc_v2::infer_response_from_json(&json),
                "a v2 inference response",
            ),
            _ => (
                seldon_protocol::grpc::seldon_message_from_json(&json),
                "a SeldonMessage",
            ),
        };
        match encoded {
            Ok(pb) => self.grpc_answer(pb),
            Err(e) => {
                let (node, service) = match producer {
                    Some(id) => (self.plan.nodes[id].name.clone(), Service::Predict),
                    None => (String::new(), Service::Predict),
                };
                let service = match self.endpoint {
                    Some(Endpoint::GrpcFeedback) => Service::SendFeedback,
                    _ => service,
                };
                self.fail(Failure::BadOutput {
                    node,
                    service,
                    detail: format!("its answer is not {expected} for the gRPC client: {e}"),
                })
            }
        }
    }

    /// A gRPC call's answer `pb`, framed, `grpc-status` 0 (after a tail call only).
    fn grpc_answer(&mut self, pb: Vec<u8>) -> Step {
        if !self.tailed {
            return self.fail(Failure::GrpcNeedsTail(
                "no node call went through the router to carry the answer".into(),
            ));
        }
        let mut response =
            Response::with_type(200, "application/grpc", seldon_protocol::grpc::frame(&pb));
        response.grpc = Some(crate::host::GrpcStatus {
            code: 0,
            message: String::new(),
        });
        self.respond(response)
    }

    /// The one way out: every answer, success or failure, ends the request here and carries
    /// `Seldon-Puid`.
    fn respond(&mut self, mut response: Response) -> Step {
        self.done = true;
        if let Some(trace) = &mut self.trace {
            trace.respond(response.status, response.body.len());
        }
        response
            .headers
            .push((names::PUID_HEADER.into(), self.puid.clone()));
        Step::Respond(response)
    }

    /// The entry's check of a client's payload, when it is declared JSON (or undeclared):
    /// a JSON object for `seldon` and `tensorflow` graphs, a valid v2 inference request (every
    /// tensor's name, shape, datatype and data) for `v2` graphs. Other content types (form
    /// posts, the v2 binary tensor extension) pass through unchecked.
    fn check_request(&self, body: &[u8]) -> Result<(), Failure> {
        if !json_declared(self.content_type.as_deref()) {
            return Ok(());
        }
        if let Some(length) = find_header(&self.forwarded, BINARY_HEADER) {
            // The binary tensor extension: only its framing is checked here (the JSON part's
            // length); the tensors are the model's to decode.
            return seldon_protocol::v2::binary::parse_header_length(length.as_bytes())
                .and_then(|n| seldon_protocol::v2::binary::split(body, n).map(|_| ()))
                .map_err(|e| Failure::BadRequest(e.to_string()));
        }
        // Every value decoded as a node would (a `RawValue` skips some: `entry_check`).
        let kind = crate::entry_check::json_kind(body)
            .map_err(|e| Failure::BadRequest(format!("request body is not valid JSON: {e}")))?;
        if kind != crate::entry_check::Kind::Object {
            return Err(Failure::BadRequest(format!(
                "request body must be a JSON object, found {}",
                kind.described()
            )));
        }
        match self.plan.protocol {
            Protocol::V2 => seldon_protocol::check_v2_request(body)
                .map_err(|e| Failure::BadRequest(e.to_string())),
            _ => Ok(()),
        }
    }

    fn fail(&mut self, failure: Failure) -> Step {
        if let Some(trace) = &mut self.trace {
            trace.failed(failure.to_string());
        }
        let mut response = failure.to_response();
        if self.endpoint.as_ref().is_some_and(Endpoint::is_grpc) {
            // gRPC errors: status and message (naming the node) in trailers, no body.
            response.grpc = Some(failure.to_grpc());
            response.body.clear();
            response.headers.retain(|(k, _)| k != "content-type");
            response
                .headers
                .push(("content-type".into(), "application/grpc".into()));
        }
        self.respond(response)
    }
}

/// The entry's check of a feedback body: strict JSON (`entry_check`), an object, and a
/// numeric `reward`. Its routing is checked where it is read.
fn check_feedback(body: &[u8]) -> Result<(), Failure> {
    use crate::entry_check::{Kind, feedback_reward, json_kind};
    match json_kind(body) {
        Err(e) => Err(format!("feedback is not valid JSON: {e}")),
        Ok(Kind::Object) => {
            feedback_reward(body).map_err(|e| format!("feedback `reward` must be a number: {e}"))
        }
        Ok(kind) => Err(format!(
            "feedback must be a JSON object, found {}",
            kind.described()
        )),
    }
    .map_err(Failure::BadFeedback)
}

/// Children picked by `route`: -1 all, -2 none, N the Nth. Err((route, child count)).
fn select(node: &PlanNode, route: i32) -> Result<Vec<NodeId>, (i32, usize)> {
    match route {
        -1 => Ok(node.children.clone()),
        -2 => Ok(Vec::new()),
        n => usize::try_from(n)
            .ok()
            .and_then(|i| node.children.get(i))
            .map(|&c| vec![c])
            .ok_or((n, node.children.len())),
    }
}

/// A router (or RANDOM_ABTEST) chose a child the node does not have.
fn route_out_of_range(node: &PlanNode, route: i32, children: usize) -> Failure {
    Failure::BadRoute {
        node: node.name.clone(),
        detail: format!("route {route} but the node has {children} children"),
    }
}

/// Turns a call's outcome into the next message or the failure it is.
///
/// Envoy answers for an upstream it could not use with a local reply (503 "upstream connect
/// error…", 504 "upstream request timeout"); those carry no `x-envoy-upstream-service-time`,
/// which Envoy adds to every answer that came from the upstream.
///
/// A 2xx answer to a graph step is then checked before anything uses it: no larger than the
/// body limit, and, when declared JSON (or undeclared), JSON of the node protocol's shape — a
/// JSON object (SeldonMessage, TensorFlow answer, feedback reply), or for v2 nodes an
/// InferenceResponse whose `outputs` can feed the next node. Router replies are checked when
/// read (`apply_route`); probe answers are passed on or shown as they are.
fn check(
    id: NodeId,
    plan_node: &PlanNode,
    limit: usize,
    service: Service,
    response: CallResponse,
) -> Result<Msg, Failure> {
    let timeout_ms = plan_node.upstream.as_ref().map_or(0, |u| u.timeout_ms);
    let node = plan_node.name.clone();
    let Some(status) = response.status else {
        return Err(Failure::Unreachable {
            node,
            service,
            detail: "connection failed or was reset".into(),
        });
    };
    let from_upstream = response.header("x-envoy-upstream-service-time").is_some();
    if !from_upstream && status == 504 {
        return Err(Failure::Timeout {
            node,
            service,
            timeout_ms,
        });
    }
    if !from_upstream && status == 503 {
        let detail = String::from_utf8_lossy(&response.body).into_owned();
        return Err(Failure::Unreachable {
            node,
            service,
            detail,
        });
    }
    let content_type = response.header("content-type").map(str::to_string);
    if !(200..300).contains(&status) {
        return Err(node_error(node, status, content_type, response.body, limit));
    }
    let size = response.body.len();
    if size > limit {
        return Err(Failure::OutputTooLarge {
            node,
            service,
            size,
            limit,
        });
    }
    let step = !matches!(
        service,
        Service::Route | Service::Ready | Service::Metadata | Service::Status
    );
    if step && json_declared(content_type.as_deref()) && response.header(BINARY_HEADER).is_none() {
        let checked = match (plan_node.protocol, service) {
            (Protocol::V2, Service::SendFeedback)
            | (Protocol::Seldon | Protocol::Tensorflow, _) => {
                seldon_protocol::check_json_object(&response.body, "the answer")
            }
            (Protocol::V2, _) => seldon_protocol::check_v2_response(&response.body),
        };
        checked.map_err(|e| Failure::BadOutput {
            node: node.clone(),
            service,
            detail: e.to_string(),
        })?;
    }
    Ok(Msg {
        body: response.body,
        content_type,
        from_node: true,
        producer: Some(id),
        protocol: plan_node.protocol,
        context: None,
    })
}

/// Header of the v2 binary tensor extension: the body is a JSON header plus raw tensor bytes.
const BINARY_HEADER: &str = "inference-header-content-length";

/// How much of a node's non-JSON error body is quoted to the client.
const QUOTED_ERROR_BYTES: usize = 512;

/// True when `content_type` says JSON (`application/json`, `…+json`) or says nothing: Seldon
/// and v2 payloads are JSON unless declared otherwise.
fn json_declared(content_type: Option<&str>) -> bool {
    content_type.is_none_or(|ct| ct.to_ascii_lowercase().contains("json"))
}

/// A node's non-2xx answer as the client will see it: with the node's status always; its body
/// as is when it is JSON within the body limit, else a Seldon status JSON quoting the first
/// `QUOTED_ERROR_BYTES` of it.
fn node_error(
    node: String,
    status: u16,
    content_type: Option<String>,
    body: Vec<u8>,
    limit: usize,
) -> Failure {
    if body.len() <= limit && serde_json::from_slice::<serde_json::Value>(&body).is_ok() {
        let content_type = content_type
            .filter(|ct| json_declared(Some(ct)))
            .or_else(|| Some("application/json".into()));
        return Failure::NodeStatus {
            node,
            status,
            content_type,
            body,
        };
    }
    let quoted = if body.is_empty() {
        "an empty body".to_string()
    } else {
        let end = body.len().min(QUOTED_ERROR_BYTES);
        let text = String::from_utf8_lossy(&body[..end]);
        let more = if body.len() > end {
            format!("… ({} bytes in all)", body.len())
        } else {
            String::new()
        };
        format!("a body that is not JSON: {text}{more}")
    };
    let info = format!("node `{node}` answered {status} with {quoted}");
    Failure::NodeStatus {
        status,
        content_type: Some("application/json".into()),
        body: seldon_protocol::status_body(status, &info, "NODE_ERROR"),
        node,
    }
}

/// `msg`'s payload in protocol `to` (`seldon_protocol::bridge`): a v1 message (request or
/// answer) becomes a v2 request; a v2 answer a SeldonMessage in the form and with the `meta`
/// of the v1 message it came from (`msg.context`), a v2 request a SeldonMessage.
fn bridge(msg: &Msg, to: Protocol) -> Result<Vec<u8>, seldon_protocol::ProtocolError> {
    use seldon_protocol::bridge as b;
    let context = |p: Protocol| {
        msg.context
            .as_deref()
            .filter(|(cp, _)| *cp == p)
            .map(|(_, body)| body.as_slice())
    };
    match (msg.protocol, to) {
        (Protocol::Seldon, Protocol::V2) => b::v1_to_v2_request(&msg.body),
        (Protocol::V2, Protocol::Seldon) if msg.from_node => {
            b::v2_response_to_v1(&msg.body, context(Protocol::Seldon))
        }
        (Protocol::V2, Protocol::Seldon) => b::v2_request_to_v1(&msg.body),
        // Same protocol, or tensorflow (refused by `compile`): as it is.
        _ => Ok(msg.body.clone()),
    }
}

/// `msg` (produced by the node it names, else by the client) cannot be used as the input of
/// `service` on `next`: the producer is to blame (502); the client when it produced it (400).
fn bad_input(
    plan: &Plan,
    msg: Option<&Msg>,
    next: &PlanNode,
    service: Service,
    error: &seldon_protocol::ProtocolError,
) -> Failure {
    match msg.and_then(|m| m.producer) {
        Some(id) => {
            let producer = &plan.nodes[id];
            Failure::BadOutput {
                node: producer.name.clone(),
                service,
                detail: format!(
                    "its answer cannot be the input of {service} on `{}`: {error}",
                    next.name
                ),
            }
        }
        None => Failure::BadRequest(format!(
            "the request cannot be the input of {service} on `{}`: {error}",
            next.name
        )),
    }
}

/// Formats 128 random bits as a version-4 UUID.
pub fn uuid_v4(bits: u128) -> String {
    let b = (bits & !(0xF000u128 << 64) | (0x4000u128 << 64)) & !(0xC000u128 << 48)
        | (0x8000u128 << 48);
    let h = format!("{b:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_has_version_and_variant() {
        let u = uuid_v4(u128::MAX);
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert!(matches!(&u[19..20], "8" | "9" | "a" | "b"), "{u}");
        assert_ne!(uuid_v4(1), uuid_v4(2));
    }
}
