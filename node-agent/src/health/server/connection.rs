//! One connection's I/O, never blocking: reading its request as bytes
//! arrive, writing the answer, then lingering so the client gets the answer
//! rather than a reset. [`exchange`] runs the same steps over any stream.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use super::ServerConfig;
use crate::health::http::{CONTINUE, Progress, ReadError, Request, RequestReader, Response};
use crate::health::routes::{self, Context};
use crate::health::{Backend, HttpCounters};

/// Time a client gets to take our answer and close after it, before we do.
pub(super) const LINGER: Duration = Duration::from_millis(500);
/// Bytes read and thrown away while lingering.
const LINGER_BYTES: usize = 1 << 20;

pub(super) struct Conn {
    pub(super) stream: TcpStream,
    /// Tells a worker's late answer from the slot's next connection.
    pub(super) id: u64,
    pub(super) peer: Option<SocketAddr>,
    pub(super) deadline: Instant,
    pub(super) state: State,
    /// This connection's bytes in the loop's `buffered`.
    pub(super) counted: usize,
}

pub(super) enum State {
    /// Reading the request.
    Reading(RequestReader),
    /// A worker has the request.
    Working,
    /// Writing the answer.
    Writing { out: Vec<u8>, sent: usize },
    /// Answer sent and our side shut: reading what the client still sends
    /// until it closes, so it gets our answer rather than a reset.
    Lingering { drained: usize },
}

/// What a connection needs next.
pub(super) enum Step {
    Keep,
    Close,
    Request(Request),
    Respond(Response),
    /// The answer is out: linger.
    Linger,
}

/// One whole exchange over a stream that never makes us wait (its reads
/// return bytes or end): the loop's reading, routing and answering, in one
/// call. The fuzz target drives the API through it. Returns the status
/// answered, `None` when the client left without a request.
pub fn exchange(
    stream: &mut (impl Read + Write),
    backend: &dyn Backend,
    config: &ServerConfig,
) -> io::Result<Option<u16>> {
    let counters = HttpCounters::default();
    let ctx = Context { backend, bootstrap_files: &config.bootstrap_files, counters: &counters };
    let mut reader = RequestReader::new(config.limits);
    let mut scratch = vec![0; 16 * 1024];
    let response =
        match read_request(stream, &mut reader, &mut scratch, |n| n <= config.max_buffered) {
            // Only a stream that makes us wait says "keep"; see above.
            Step::Keep | Step::Linger => return Err(ErrorKind::WouldBlock.into()),
            Step::Close => return Ok(None),
            Step::Respond(response) => response,
            Step::Request(request) => routes::handle(&request, &ctx),
        };
    stream.write_all(&response.to_bytes())?;
    Ok(Some(response.status))
}

/// Read what the client sent so far into its request. `room(n)`: may `n`
/// more bytes be held?
pub(super) fn read_request(
    stream: &mut (impl Read + Write),
    reader: &mut RequestReader,
    scratch: &mut [u8],
    room: impl Fn(usize) -> bool,
) -> Step {
    loop {
        let want = reader.wants().min(scratch.len());
        let n = match stream.read(&mut scratch[..want]) {
            Ok(0) => return refusal(reader.closed()),
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Step::Keep,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return refusal(ReadError::Io(e)),
        };
        if !room(reader.buffered() + n) {
            return Step::Respond(
                Response::error(503, "too many requests under way; try again shortly")
                    .with_header("Retry-After", "1"),
            );
        }
        match reader.feed(&scratch[..n]) {
            Ok(Progress::NeedMore) => {}
            Ok(Progress::SendContinue) => {
                // Nothing else was written yet: the socket's buffer takes it.
                if stream.write(CONTINUE).ok() != Some(CONTINUE.len()) {
                    return Step::Close;
                }
            }
            Ok(Progress::Done(request)) => return Step::Request(request),
            Err(e) => return refusal(e),
        }
    }
}

/// Every read error is an answer with its status, except a vanished client.
fn refusal(e: ReadError) -> Step {
    match e.status() {
        Some(status) => {
            tracing::debug!(status, "refused request: {e}");
            Step::Respond(Response::error(status, &e.to_string()))
        }
        None => Step::Close,
    }
}

pub(super) fn write_answer(stream: &mut TcpStream, out: &[u8], sent: &mut usize) -> Step {
    while *sent < out.len() {
        match stream.write(&out[*sent..]) {
            Ok(0) => return Step::Close,
            Ok(n) => *sent += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Step::Keep,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return Step::Close,
        }
    }
    // Close gently: a client still sending a body we refused would otherwise
    // get a reset instead of our answer.
    if stream.shutdown(Shutdown::Write).is_err() {
        return Step::Close;
    }
    Step::Linger
}

pub(super) fn linger(stream: &mut TcpStream, drained: &mut usize, scratch: &mut [u8]) -> Step {
    loop {
        match stream.read(scratch) {
            Ok(0) => return Step::Close,
            Ok(n) => {
                *drained += n;
                if *drained >= LINGER_BYTES {
                    return Step::Close;
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Step::Keep,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return Step::Close,
        }
    }
}
