//! hyper's own refusals as JSON. A request whose head hyper's HTTP/1 parser refuses (a header
//! block over its read buffer, too many headers, a raw non-ASCII byte in the path, a malformed
//! header) never reaches axum: hyper answers it itself, `400`/`414`/`431` with an **empty
//! body**, and closes the connection. hyper has no hook for that answer, so the REST
//! listener's connections are wrapped ([`JsonParseErrors`]): when the server writes a
//! response head that is exactly such an answer (status 400, 414 or 431, `content-length: 0`,
//! no `content-type`, no body — the application never answers an error without a JSON body),
//! the wrapper writes the same status with a JSON body saying what is wrong instead, in the
//! shape of the path's protocol (v2 `{"error"}` under `/v2`, Seldon's wrapper status
//! elsewhere). What is wrong is found by parsing the refused head again with `httparse` (the
//! parser hyper uses), from the bytes read since the last response (at most 16 KiB kept).
//!
//! Cost on the normal path: a copy of at most 16 KiB of each request's first bytes, and a
//! prefix check of each response head.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use axum::serve::Listener;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::api_error::{BAD_DATA, TOO_LARGE};

/// hyper's limits (hyper 1.x `proto::h1`): the read buffer a request head must fit in, the
/// number of headers, the URI length.
pub const HYPER_MAX_HEAD_BYTES: usize = 8192 + 4096 * 100;
pub const HYPER_MAX_HEADERS: usize = 100;
pub const HYPER_MAX_URI_BYTES: usize = u16::MAX as usize - 1;

/// Bytes of a request's start kept to explain a refusal.
const KEEP: usize = 16 * 1024;

/// A listener whose connections answer hyper's parse refusals with JSON.
#[derive(Debug)]
pub struct JsonParseErrors<L>(pub L);

impl<L> Listener for JsonParseErrors<L>
where
    L: Listener,
{
    type Io = JsonErrorsIo<L::Io>;
    type Addr = L::Addr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (io, addr) = self.0.accept().await;
        (JsonErrorsIo::new(io), addr)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

/// One connection: reads pass through (the start of each request is kept), writes pass
/// through except hyper's empty error answers, which are replaced.
#[derive(Debug)]
pub struct JsonErrorsIo<T> {
    inner: T,
    /// The bytes read since the last response was written (at most [`KEEP`]).
    request_start: Vec<u8>,
    /// A response written since the last read: the next read starts a new request.
    wrote: bool,
    /// A replacement being written, and what to report to hyper once it is.
    pending: Option<Replacement>,
}

#[derive(Debug)]
struct Replacement {
    bytes: Vec<u8>,
    written: usize,
    report: usize,
}

impl<T> JsonErrorsIo<T> {
    pub fn new(inner: T) -> Self {
        JsonErrorsIo {
            inner,
            request_start: Vec::new(),
            wrote: false,
            pending: None,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for JsonErrorsIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        let new = &buf.filled()[before..];
        if !new.is_empty() {
            if this.wrote {
                this.request_start.clear();
                this.wrote = false;
            }
            let room = KEEP.saturating_sub(this.request_start.len());
            this.request_start
                .extend_from_slice(&new[..new.len().min(room)]);
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> JsonErrorsIo<T> {
    /// Writes what is left of the replacement; Ready(n) reports hyper's own length.
    fn drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        while let Some(r) = &mut self.pending {
            if r.written == r.bytes.len() {
                let report = r.report;
                self.pending = None;
                return Poll::Ready(Ok(report));
            }
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &r.bytes[r.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            r.written += n;
        }
        Poll::Ready(Ok(0))
    }

    /// Whether `head` is hyper's empty error answer; if so, its replacement is pending.
    fn intercept(&mut self, head: &[u8]) -> bool {
        if self.pending.is_some() {
            return true;
        }
        self.wrote = true;
        match json_answer(head, &self.request_start) {
            Some(bytes) => {
                self.pending = Some(Replacement {
                    bytes,
                    written: 0,
                    report: head.len(),
                });
                true
            }
            None => false,
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for JsonErrorsIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.intercept(buf) {
            return this.drain(cx);
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        // hyper's error answer is a head alone: one non-empty slice
        let mut parts = bufs.iter().filter(|b| !b.is_empty());
        if let (Some(only), None) = (parts.next(), parts.next())
            && this.intercept(only)
        {
            return this.drain(cx);
        }
        this.wrote = true;
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.drain(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.drain(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

/// If `head` is hyper's answer to a refused request (see the module), the same answer with a
/// JSON body explaining the refusal of `request` (the bytes the client sent).
pub fn json_answer(head: &[u8], request: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(head).ok()?;
    let rest = text.strip_prefix("HTTP/1.1 ")?;
    // exactly one head, nothing after it
    let end = text.find("\r\n\r\n")?;
    if end + 4 != text.len() {
        return None;
    }
    let status: u16 = rest.get(..3)?.parse().ok()?;
    if !matches!(status, 400 | 414 | 431) {
        return None;
    }
    let mut lines = text[..end].split("\r\n");
    let status_line = lines.next()?;
    let headers: Vec<&str> = lines.collect();
    let named = |h: &str, n: &str| {
        h.split_once(':')
            .is_some_and(|(k, _)| k.trim().eq_ignore_ascii_case(n))
    };
    let empty = headers.iter().any(|h| {
        named(h, "content-length") && h.split_once(':').is_some_and(|(_, v)| v.trim() == "0")
    });
    if !empty || headers.iter().any(|h| named(h, "content-type")) {
        return None;
    }
    let info = explain(status, request);
    let reason = if status == 400 { BAD_DATA } else { TOO_LARGE };
    let body = if request_path(request).is_some_and(|p| p == b"/v2" || p.starts_with(b"/v2/")) {
        serde_json::json!({ "error": info })
    } else {
        serde_json::json!({"status": {"status": 1, "info": info, "code": -1, "reason": reason}})
    }
    .to_string();
    let mut out = format!("{status_line}\r\n");
    for h in headers
        .iter()
        .filter(|h| !named(h, "content-length") && !named(h, "connection"))
    {
        out.push_str(h);
        out.push_str("\r\n");
    }
    out.push_str(&format!(
        "content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    ));
    Some(out.into_bytes())
}

/// The path of a request line (bytes: it may be what hyper refused).
fn request_path(request: &[u8]) -> Option<&[u8]> {
    let line = request.split(|b| *b == b'\n').next()?;
    let mut parts = line.split(|b| *b == b' ');
    parts.next()?;
    parts.next()
}

/// What is wrong with the request hyper refused with `status`.
fn explain(status: u16, request: &[u8]) -> String {
    match status {
        431 => format!(
            "the request's headers are too large: this server reads at most {HYPER_MAX_HEADERS} \
             headers in a head of at most {HYPER_MAX_HEAD_BYTES} bytes"
        ),
        414 => format!("the request's path is longer than {HYPER_MAX_URI_BYTES} bytes"),
        _ => {
            let mut headers = [httparse::EMPTY_HEADER; HYPER_MAX_HEADERS];
            let what = match httparse::Request::new(&mut headers).parse(request) {
                Err(httparse::Error::Token) => {
                    "an invalid token in the request line (the method, or a path byte that is \
                     not printable ASCII: percent-encode it)"
                        .to_string()
                }
                Err(httparse::Error::Version) => "an invalid HTTP version".to_string(),
                Err(httparse::Error::HeaderName) => "an invalid header name".to_string(),
                Err(httparse::Error::HeaderValue) => {
                    "an invalid header value (a control character)".to_string()
                }
                Err(httparse::Error::NewLine) => "an invalid line ending".to_string(),
                Err(e) => e.to_string(),
                // httparse reads it (or it was cut at 16 KiB): hyper's own rules refused it
                Ok(_) => "a content-length or transfer-encoding header that is invalid or \
                          conflicting, or a path that is not UTF-8"
                    .to_string(),
            };
            format!("the request is not valid HTTP/1.1: {what}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY_431: &[u8] =
        b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: x\r\n\r\n";

    fn body(answer: &[u8]) -> serde_json::Value {
        let text = std::str::from_utf8(answer).unwrap();
        serde_json::from_str(text.split_once("\r\n\r\n").unwrap().1).unwrap()
    }

    #[test]
    fn an_empty_431_becomes_json_with_the_limits() {
        let out = json_answer(EMPTY_431, b"POST /predict HTTP/1.1\r\nx: y").unwrap();
        let text = String::from_utf8_lossy(&out);
        assert!(
            text.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
            "{text}"
        );
        assert!(
            text.contains("content-type: application/json\r\n"),
            "{text}"
        );
        assert!(
            text.contains("connection: close\r\n") && text.contains("date: x\r\n"),
            "{text}"
        );
        let v = body(&out);
        assert_eq!(v["status"]["reason"], TOO_LARGE);
        assert!(
            v["status"]["info"]
                .as_str()
                .unwrap()
                .contains("417792 bytes"),
            "{v}"
        );
    }

    #[test]
    fn a_400_names_the_broken_part_in_the_paths_protocol() {
        let head = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n";
        let info = |v: &serde_json::Value| v["status"]["info"].as_str().unwrap().to_string();
        let v = body(&json_answer(head, b"POST /pr\xe9dict HTTP/1.1\r\n\r\n").unwrap());
        assert_eq!(v["status"]["reason"], BAD_DATA);
        assert!(
            info(&v).contains("a path byte that is not printable ASCII"),
            "{v}"
        );
        let v = body(&json_answer(head, b"POST /predict HTTP/1.1\r\nx: a\x01\r\n\r\n").unwrap());
        assert!(info(&v).contains("an invalid header value"), "{v}");
        let v = body(
            &json_answer(head, b"POST /predict HTTP/1.1\r\ncontent-length: x\r\n\r\n").unwrap(),
        );
        assert!(
            info(&v).contains("content-length or transfer-encoding"),
            "{v}"
        );
        // v2 paths get v2's shape, even when the path is not UTF-8
        let v2 = |request: &[u8]| body(&json_answer(head, request).unwrap())["error"].clone();
        let e = v2(b"POST /v2/models/m/infer HTTP/1.1\r\nbad header\r\n\r\n");
        assert!(e.as_str().unwrap().contains("header name"), "{e}");
        let e = v2(b"POST /v2/models/\xe9/infer HTTP/1.1\r\n\r\n");
        assert!(e.as_str().unwrap().contains("not printable ASCII"), "{e}");
    }

    #[test]
    fn the_applications_answers_pass_untouched() {
        // a JSON error, a 200, an empty 200, an error with a body after the head
        for head in [
            &b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 0\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 2\r\n\r\n{}",
            b"HTTP/1.1 413 Payload Too Large\r\ncontent-length: 0\r\n\r\n",
            b"not http",
        ] {
            assert_eq!(json_answer(head, b"GET / HTTP/1.1\r\n\r\n"), None, "{}", String::from_utf8_lossy(head));
        }
    }
}
