//! node-agent's management API on arbitrary bytes: reading the request
//! (limits, headers, bodies, 100-continue), routing, auth and config
//! parsing must answer every input with one well-formed HTTP response and
//! never panic. The bytes arrive in chunks whose size the first input byte
//! picks, as a slow or bursty client would send them.
#![no_main]

use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::OnceLock;

use lab_spec::health::{Board, ReconcileState, SflowState, System};
use lab_spec::node_config::Auth;
use lab_spec::{HealthReport, NodeConfig};
use libfuzzer_sys::fuzz_target;
use node_agent::health::http::Limits;
use node_agent::health::memory::MemoryBackend;
use node_agent::health::{ReconcileStats, ServerConfig, exchange};

/// The token the fuzzer can find in the dictionary (`fuzz-agent/http.dict`).
const TOKEN: &str = "fuzz-token";

struct Fixture {
    config: NodeConfig,
    report: HealthReport,
    server: ServerConfig,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let text = format!(
            "schema = 1\nlab = \"fuzz\"\nhostname = \"leaf1\"\nrole = \"leaf\"\n\
             [management]\naddress = \"192.168.200.11/24\"\ncontroller = \"192.168.200.1\"\n\
             [sflow]\ncollectors = []\npolling_interval = 20\nsampling_rate = 0\n\
             agent_address = \"10.0.0.1\"\ninterfaces = []\n\
             [health]\nlisten = \"192.168.200.11:9180\"\n\
             [auth]\ntoken_sha256 = \"{}\"\n",
            Auth::from_token(TOKEN).token_sha256
        );
        let config = NodeConfig::from_toml(&text).expect("fixture config").with_version();
        let report = HealthReport {
            schema: 1,
            node: None,
            lab: None,
            role: None,
            agent_version: "fuzz".into(),
            board: Board::default(),
            system: System::default(),
            bgp: Vec::new(),
            ospf: Vec::new(),
            isis: Vec::new(),
            ospf6: Vec::new(),
            vxlan: Vec::new(),
            sflow: SflowState::default(),
            reconcile: ReconcileState::default(),
            healthy: true,
            problems: Vec::new(),
        };
        let mut server = ServerConfig::new("127.0.0.1:0".parse().expect("address"));
        // Small limits, so inputs reach them.
        server.limits = Limits { max_head: 2048, max_body: 8192, ..Limits::default() };
        server.max_buffered = 16 * 1024;
        server.bootstrap_files = vec![PathBuf::from("/nonexistent/fuzz/bootstrap.sha256")];
        Fixture { config, report, server }
    })
}

/// A client that sends `input` in chunks of `chunk` bytes, then closes.
struct Client<'a> {
    input: &'a [u8],
    chunk: usize,
    answer: Vec<u8>,
}

impl Read for Client<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.chunk.min(buf.len()).min(self.input.len());
        buf[..n].copy_from_slice(&self.input[..n]);
        self.input = &self.input[n..];
        Ok(n)
    }
}

impl Write for Client<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.answer.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, input)) = data.split_first() else { return };
    let f = fixture();
    // The top bit: a provisioned node or a fresh one (bootstrap token path).
    let config = (first & 0x80 == 0).then(|| f.config.clone());
    let backend = MemoryBackend::new(config, f.report.clone(), ReconcileStats::default());
    let mut client = Client { input, chunk: usize::from(first & 0x7f) + 1, answer: Vec::new() };
    let status = exchange(&mut client, &backend, &f.server).expect("a client that never waits");
    let Some(status) = status else {
        assert!(input.is_empty(), "a request with bytes went unanswered");
        return;
    };
    // The answer is one well-formed response (after a 100 Continue, maybe).
    let mut answer = &client.answer[..];
    if let Some(rest) = answer.strip_prefix(node_agent::health::http::CONTINUE) {
        answer = rest;
    }
    let mut headers = [httparse::EMPTY_HEADER; 16];
    let mut parsed = httparse::Response::new(&mut headers);
    let head = match parsed.parse(answer) {
        Ok(httparse::Status::Complete(n)) => n,
        other => panic!("not an HTTP response: {other:?}"),
    };
    assert_eq!(parsed.code, Some(status));
    let length = parsed
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .and_then(|h| std::str::from_utf8(h.value).ok()?.parse::<usize>().ok())
        .expect("Content-Length");
    assert_eq!(length, answer.len() - head, "Content-Length differs from the body");
    // The in-memory agent never fails: no input may make the API do so.
    assert!(status != 500, "500 for {:?}", String::from_utf8_lossy(input));
});
