//! pi-lab's local HTTP server, for the dashboard and the flow metrics:
//! read-only (GET and HEAD), HTTP/1.1 by hyper on a single-threaded tokio
//! runtime in a thread of its own. Idle connections cost a few KiB rather
//! than a thread; a request head larger than [`MAX_HEAD`] gets 431, one
//! that does not arrive within [`HEAD_TIMEOUT`] closes the connection; at
//! most [`MAX_CONNECTIONS`] connections are served at once.
//!
//! What is served comes from a [`Site`]: pages (bytes with a content type)
//! or a stream of server-sent events fed through a channel.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::{Bytes, Frame, Incoming, SizeHint};
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::mpsc;

/// Largest request head (request line and headers) read; more is 431.
pub const MAX_HEAD: usize = 16 * 1024;
/// A request head must arrive within this, also on a kept-alive connection.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(30);
/// Connections served at once; more are closed as they come.
pub const MAX_CONNECTIONS: usize = 4096;

/// Nothing is loaded from elsewhere, nothing is framed, nothing is posted.
const SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

/// What a server serves.
pub trait Site: Send + Sync + 'static {
    /// The answer to `GET path` (the path without the query); HEAD gets
    /// the same without the body.
    fn get(&self, path: &str) -> Reply;
}

/// An answer to a GET.
#[derive(Debug)]
pub enum Reply {
    Page {
        status: StatusCode,
        content_type: &'static str,
        body: Bytes,
    },
    /// Server-sent events: every message received is written as it comes;
    /// the stream ends when the sender is dropped.
    Events(mpsc::Receiver<Bytes>),
}

impl Reply {
    pub fn new(content_type: &'static str, body: impl Into<Bytes>) -> Reply {
        Reply::Page { status: StatusCode::OK, content_type, body: body.into() }
    }

    pub fn text(body: impl Into<Bytes>) -> Reply {
        Reply::new("text/plain; charset=utf-8", body)
    }

    pub fn json(body: impl Into<Bytes>) -> Reply {
        Reply::new("application/json", body)
    }

    /// Prometheus' text exposition format, version 0.0.4.
    pub fn metrics(body: impl Into<Bytes>) -> Reply {
        Reply::new("text/plain; version=0.0.4; charset=utf-8", body)
    }

    pub fn not_found() -> Reply {
        Reply::status(StatusCode::NOT_FOUND, "not found\n")
    }

    pub fn status(status: StatusCode, text: &'static str) -> Reply {
        Reply::Page {
            status,
            content_type: "text/plain; charset=utf-8",
            body: Bytes::from_static(text.as_bytes()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen for HTTP on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the HTTP server: {0}")]
    Start(#[source] std::io::Error),
}

/// A running server; it serves until the process ends.
#[derive(Debug)]
pub struct Running {
    addr: SocketAddr,
}

impl Running {
    /// The address it listens on (with the port the kernel chose for 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

/// Listens on `listen` now (so that a port in use is an error here) and
/// serves `site` from a thread of its own.
pub fn serve(listen: SocketAddr, site: Arc<dyn Site>) -> Result<Running, ServeError> {
    let bind = |source| ServeError::Bind { addr: listen, source };
    let listener = TcpListener::bind(listen).map_err(bind)?;
    listener.set_nonblocking(true).map_err(bind)?;
    let addr = listener.local_addr().map_err(bind)?;
    raise_file_limit();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(ServeError::Start)?;
    std::thread::Builder::new()
        .name("http".into())
        .spawn(move || runtime.block_on(accept(listener, site, addr)))
        .map_err(ServeError::Start)?;
    Ok(Running { addr })
}

/// Every connection needs a descriptor: take the hard limit, not the soft
/// 1024 a shell gives.
fn raise_file_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && soft < hard
        && let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard)
    {
        tracing::debug!("cannot raise the open file limit from {soft} to {hard}: {e}");
    }
}

async fn accept(listener: TcpListener, site: Arc<dyn Site>, addr: SocketAddr) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("HTTP server on {addr}: {e}");
            return;
        }
    };
    let live = Arc::new(AtomicUsize::new(0));
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors or memory: wait for connections to go.
                tracing::warn!("HTTP server on {addr}: accepting: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if live.load(Ordering::Relaxed) >= MAX_CONNECTIONS {
            drop(stream);
            continue;
        }
        let guard = Live::enter(&live);
        let site = site.clone();
        tokio::spawn(async move {
            let _guard = guard;
            let service = hyper::service::service_fn(move |request| {
                let answer = respond(site.as_ref(), addr, &request);
                async move { Ok::<_, Infallible>(answer) }
            });
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEAD_TIMEOUT)
                .max_buf_size(MAX_HEAD)
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = connection.await {
                tracing::debug!("HTTP connection: {e}");
            }
        });
    }
}

/// Counts a connection while it lives.
struct Live(Arc<AtomicUsize>);

impl Live {
    fn enter(live: &Arc<AtomicUsize>) -> Live {
        live.fetch_add(1, Ordering::Relaxed);
        Live(live.clone())
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

fn respond(site: &dyn Site, listen: SocketAddr, request: &Request<Incoming>) -> Response<Body> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut r =
            page(StatusCode::METHOD_NOT_ALLOWED, "text/plain", "read-only: GET only\n".into());
        r.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let host = request.headers().get(header::HOST).and_then(|h| h.to_str().ok());
    if !host_allowed(listen, host) {
        return page(StatusCode::MISDIRECTED_REQUEST, "text/plain", "unknown host\n".into());
    }
    match site.get(request.uri().path()) {
        Reply::Page { status, content_type, body } => page(status, content_type, body),
        Reply::Events(rx) => {
            let mut r = Response::new(Body::Events(rx));
            let h = r.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
    }
}

fn page(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<Body> {
    let mut r = Response::new(Body::Once(Some(body)));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(SECURITY_POLICY));
    r
}

/// A server on a loopback address answers only to loopback host names, so
/// that a web page cannot reach it through a name it controls (DNS
/// rebinding). One given `--listen` elsewhere answers to any name.
fn host_allowed(listen: SocketAddr, host: Option<&str>) -> bool {
    if !listen.ip().is_loopback() {
        return true;
    }
    let Some(host) = host else { return false };
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost")
        || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// A response body: bytes at once, or events as they come.
#[derive(Debug)]
pub enum Body {
    Once(Option<Bytes>),
    Events(mpsc::Receiver<Bytes>),
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            Body::Once(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Body::Events(rx) => rx.poll_recv(cx).map(|m| m.map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, Body::Once(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Body::Once(Some(b)) => SizeHint::with_exact(b.len() as u64),
            Body::Once(None) => SizeHint::with_exact(0),
            Body::Events(_) => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpStream;

    struct Hello;

    impl Site for Hello {
        fn get(&self, path: &str) -> Reply {
            match path {
                "/" => Reply::text("hello\n"),
                "/events" => {
                    let (tx, rx) = mpsc::channel(4);
                    let _ = tx.try_send(Bytes::from_static(b"data: one\n\n"));
                    let _ = tx.try_send(Bytes::from_static(b"data: two\n\n"));
                    Reply::Events(rx)
                }
                _ => Reply::not_found(),
            }
        }
    }

    fn server() -> SocketAddr {
        serve("127.0.0.1:0".parse().expect("addr"), Arc::new(Hello)).expect("serves").addr()
    }

    /// Sends `request` and reads until the server closes or 2 s pass.
    fn exchange(addr: SocketAddr, request: &[u8]) -> String {
        let mut s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(2))).expect("timeout");
        let _ = s.write_all(request);
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn pages_not_found_and_read_only() {
        let addr = server();
        let ok = exchange(addr, b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n") && ok.ends_with("\r\n\r\nhello\n"), "{ok}");
        assert!(ok.contains("content-security-policy: default-src 'none'"), "{ok}");
        let head =
            exchange(addr, b"HEAD / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n") && head.ends_with("\r\n\r\n"), "{head}");
        let missing =
            exchange(addr, b"GET /nope HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        assert!(missing.starts_with("HTTP/1.1 404 Not Found\r\n"), "{missing}");
        let post = exchange(
            addr,
            b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi",
        );
        assert!(post.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"), "{post}");
        assert!(post.contains("allow: GET, HEAD"), "{post}");
        let rebound =
            exchange(addr, b"GET / HTTP/1.1\r\nHost: evil.example:80\r\nConnection: close\r\n\r\n");
        assert!(rebound.starts_with("HTTP/1.1 421 Misdirected Request\r\n"), "{rebound}");
    }

    #[test]
    fn oversized_and_garbled_requests_get_4xx() {
        let addr = server();
        let mut big = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ".to_vec();
        big.extend(std::iter::repeat_n(b'a', 64 * 1024));
        big.extend_from_slice(b"\r\n\r\n");
        let answer = exchange(addr, &big);
        assert!(answer.starts_with("HTTP/1.1 431 Request Header Fields Too Large"), "{answer}");
        let garbled = exchange(addr, b"\x16\x03\x01 nonsense\r\n\r\n");
        assert!(garbled.starts_with("HTTP/1.1 400 Bad Request"), "{garbled}");
        // Still serving.
        let ok = exchange(addr, b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        assert!(ok.starts_with("HTTP/1.1 200 OK"), "{ok}");
    }

    #[test]
    fn events_stream_as_they_come() {
        let addr = server();
        let answer =
            exchange(addr, b"GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        assert!(answer.contains("content-type: text/event-stream"), "{answer}");
        assert!(answer.contains("data: one\n\n") && answer.contains("data: two\n\n"), "{answer}");
    }

    #[test]
    fn hosts_a_loopback_server_answers_to() {
        let local: SocketAddr = "127.0.0.1:8181".parse().expect("addr");
        for host in ["localhost:8181", "127.0.0.1:8181", "127.0.0.1", "[::1]:8181", "LOCALHOST"] {
            assert!(host_allowed(local, Some(host)), "{host}");
        }
        for host in ["example.com", "10.0.0.1:8181", "localhost.example:8181"] {
            assert!(!host_allowed(local, Some(host)), "{host}");
        }
        assert!(!host_allowed(local, None));
        let any: SocketAddr = "0.0.0.0:8181".parse().expect("addr");
        assert!(host_allowed(any, Some("lab-controller:8181")));
    }
}
