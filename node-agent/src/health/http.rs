//! Just enough HTTP/1.1 for a management API: one request per connection,
//! `Content-Length` bodies only, hard limits on size and time.
//!
//! `httparse` does the header parsing; this module owns the limits, because
//! a board with 1 GiB of RAM must not be talked into buffering a gigabyte by
//! a client. It does no I/O: the server's event loop feeds it the bytes
//! each connection has, and owns the one deadline per request, so a client
//! that sends one byte a minute costs a few bytes and no thread.

use std::io;
use std::time::Duration;

/// Most headers a request may carry.
const MAX_HEADERS: usize = 32;

/// Limits applied to every request.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest request head (request line and headers).
    pub max_head: usize,
    /// Largest body.
    pub max_body: usize,
    /// Time a whole request (head and body) may take to arrive.
    pub deadline: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_head: 16 * 1024, max_body: 256 * 1024, deadline: Duration::from_secs(10) }
    }
}

#[derive(Debug)]
pub struct Request {
    pub method: String,
    /// Path without the query string.
    pub path: String,
    pub query: Option<String>,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    /// First header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Why a request could not be read. Each maps to the status the client gets,
/// except `Closed`, where nobody is left to answer.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("the client closed the connection")]
    Closed,
    #[error("the request did not arrive within {0:?}")]
    Timeout(Duration),
    #[error("the request head is larger than {0} bytes")]
    HeadTooLarge(usize),
    #[error("the body is larger than the limit of {0} bytes")]
    BodyTooLarge(usize),
    #[error("a body needs a Content-Length header")]
    LengthRequired,
    #[error("Transfer-Encoding is not supported; send a Content-Length")]
    TransferEncoding,
    #[error("malformed request: {0}")]
    Malformed(String),
    #[error("reading the request: {0}")]
    Io(#[from] io::Error),
}

impl ReadError {
    /// Status code for the answer, `None` when the connection is gone.
    pub fn status(&self) -> Option<u16> {
        match self {
            ReadError::Closed | ReadError::Io(_) => None,
            ReadError::Timeout(_) => Some(408),
            ReadError::HeadTooLarge(_) => Some(431),
            ReadError::BodyTooLarge(_) => Some(413),
            ReadError::LengthRequired => Some(411),
            ReadError::TransferEncoding => Some(501),
            ReadError::Malformed(_) => Some(400),
        }
    }
}

/// Reads one request from bytes as they arrive, without doing I/O itself:
/// the server's event loop feeds it whatever a socket had, and the fuzz
/// target feeds it arbitrary chunks. It holds at most `max_head` bytes
/// before the head is complete and `max_body` after, so a client cannot
/// make it buffer more.
#[derive(Debug)]
pub struct RequestReader {
    limits: Limits,
    buf: Vec<u8>,
    /// Once the head is parsed: the request, the head's length in `buf`
    /// and the body's announced length.
    head: Option<(Request, usize, usize)>,
    /// `Expect: 100-continue` was answered.
    continued: bool,
}

/// What one `feed` achieved.
#[derive(Debug)]
pub enum Progress {
    /// Feed more bytes.
    NeedMore,
    /// The head asks for `100 Continue` before the body: send
    /// [`CONTINUE`], then feed more bytes.
    SendContinue,
    /// The whole request is here.
    Done(Request),
}

/// The interim answer to `Expect: 100-continue`.
pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

impl RequestReader {
    pub fn new(limits: Limits) -> Self {
        RequestReader { limits, buf: Vec::new(), head: None, continued: false }
    }

    /// How many more bytes this request may still take; reading more than
    /// this from the socket would buffer someone else's bytes (or an attack).
    pub fn wants(&self) -> usize {
        match &self.head {
            None => self.limits.max_head.saturating_sub(self.buf.len()).max(1),
            Some((_, head_len, length)) => (head_len + length).saturating_sub(self.buf.len()),
        }
    }

    /// Bytes held now.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Take the next bytes from the client (at most [`wants`](Self::wants);
    /// more is refused as a malformed request).
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Progress, ReadError> {
        if bytes.len() > self.wants() {
            return Err(ReadError::Malformed("more bytes than the request announced".into()));
        }
        self.buf.extend_from_slice(bytes);
        if self.head.is_none() {
            match parse_head(&self.buf)? {
                Some((request, head_len)) => {
                    let length = body_length(&request, &self.limits)?;
                    self.head = Some((request, head_len, length));
                }
                None if self.buf.len() >= self.limits.max_head => {
                    return Err(ReadError::HeadTooLarge(self.limits.max_head));
                }
                None => return Ok(Progress::NeedMore),
            }
        }
        let Some((request, head_len, length)) = &self.head else {
            return Ok(Progress::NeedMore);
        };
        let (head_len, length) = (*head_len, *length);
        let wants_continue =
            request.header("expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue"));
        if self.buf.len() >= head_len + length
            && let Some((mut request, ..)) = self.head.take()
        {
            let mut body = std::mem::take(&mut self.buf).split_off(head_len);
            // Bytes after the announced body (a pipelined request) are not ours.
            body.truncate(length);
            request.body = body;
            return Ok(Progress::Done(request));
        }
        if wants_continue && !self.continued {
            self.continued = true;
            return Ok(Progress::SendContinue);
        }
        Ok(Progress::NeedMore)
    }

    /// The client closed its side before the request was complete.
    pub fn closed(&self) -> ReadError {
        match &self.head {
            None if self.buf.is_empty() => ReadError::Closed,
            None => ReadError::Malformed("connection closed in the middle of the head".into()),
            Some((_, head_len, length)) => ReadError::Malformed(format!(
                "body ended after {} of {length} bytes",
                self.buf.len() - head_len
            )),
        }
    }
}

/// Parse the head once it is complete; `None` while more bytes are needed.
fn parse_head(buf: &[u8]) -> Result<Option<(Request, usize)>, ReadError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    let head_len = match parsed.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(ReadError::Malformed(e.to_string())),
    };
    let target = parsed.path.unwrap_or("/");
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), Some(q.to_string())),
        None => (target.to_string(), None),
    };
    let mut out = Vec::with_capacity(parsed.headers.len());
    for h in parsed.headers.iter() {
        let value = std::str::from_utf8(h.value)
            .map_err(|_| ReadError::Malformed(format!("header {} is not valid UTF-8", h.name)))?;
        out.push((h.name.to_string(), value.trim().to_string()));
    }
    let request = Request {
        method: parsed.method.unwrap_or("").to_string(),
        path,
        query,
        headers: out,
        body: Vec::new(),
    };
    Ok(Some((request, head_len)))
}

fn body_length(request: &Request, limits: &Limits) -> Result<usize, ReadError> {
    if request.header("transfer-encoding").is_some() {
        return Err(ReadError::TransferEncoding);
    }
    let Some(value) = request.header("content-length") else {
        return if matches!(request.method.as_str(), "PUT" | "POST") {
            Err(ReadError::LengthRequired)
        } else {
            Ok(0)
        };
    };
    let length: usize = value
        .parse()
        .map_err(|_| ReadError::Malformed(format!("Content-Length {value:?} is not a number")))?;
    if length > limits.max_body {
        return Err(ReadError::BodyTooLarge(limits.max_body));
    }
    Ok(length)
}

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

pub const JSON: &str = "application/json";
pub const TEXT: &str = "text/plain; charset=utf-8";
/// Prometheus text exposition format 0.0.4.
pub const PROMETHEUS: &str = "text/plain; version=0.0.4; charset=utf-8";

impl Response {
    pub fn new(status: u16, content_type: &'static str, body: impl Into<Vec<u8>>) -> Self {
        Response { status, content_type, headers: Vec::new(), body: body.into() }
    }

    /// A JSON body; serialisation of our own types does not fail, but if it
    /// did the client gets a 500 rather than a panic.
    pub fn json<T: serde::Serialize>(status: u16, value: &T) -> Self {
        match serde_json::to_vec_pretty(value) {
            Ok(mut body) => {
                body.push(b'\n');
                Response::new(status, JSON, body)
            }
            Err(e) => Response::error(500, &format!("cannot serialise the answer: {e}")),
        }
    }

    /// `{"error": message}` with the given status.
    pub fn error(status: u16, message: &str) -> Self {
        let body = serde_json::json!({ "status": status, "error": message });
        let mut bytes = body.to_string().into_bytes();
        bytes.push(b'\n');
        Response::new(status, JSON, bytes)
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// The whole answer on the wire; it asks the client to close the
    /// connection (one request per connection).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut head = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\nCache-Control: no-store\r\n",
            self.status,
            reason(self.status),
            self.content_type,
            self.body.len()
        );
        for (name, value) in &self.headers {
            head.push_str(name);
            head.push_str(": ");
            head.push_str(value);
            head.push_str("\r\n");
        }
        head.push_str("\r\n");
        let mut out = head.into_bytes();
        out.extend_from_slice(&self.body);
        out
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}
