//! The dashboard's paths: the page and its two assets, the topology, the
//! live state (also as server-sent events), one node's details, and the
//! flow metrics.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::body::Bytes;
use tokio::sync::mpsc;

use super::model::{Condition, Live, Topology};
use super::{Health, assets, lock, metrics_page};
use crate::http_server::{Reply, Site};
use crate::sflow_watch::view::Watch;

/// With nothing new to say, a comment line this often tells a dropped
/// connection from an idle one.
const KEEPALIVE: Duration = Duration::from_secs(15);
/// Events a slow page may fall behind by before it is dropped (its
/// browser reconnects and starts from the latest state).
const BACKLOG: usize = 8;

/// Everyone following the live state.
#[derive(Debug, Default)]
pub struct Hub {
    clients: Mutex<Vec<mpsc::Sender<Bytes>>>,
}

impl Hub {
    /// A new follower; it gets `first` at once.
    fn subscribe(&self, first: Option<Bytes>) -> mpsc::Receiver<Bytes> {
        let (tx, rx) = mpsc::channel(BACKLOG);
        if let Some(event) = first {
            let _ = tx.try_send(event);
        }
        lock(&self.clients).push(tx);
        rx
    }

    /// Sends `event` to every follower; the gone and the too slow are
    /// dropped.
    fn send(&self, event: &Bytes) {
        lock(&self.clients).retain(|c| c.try_send(event.clone()).is_ok());
    }
}

/// The last state published, as JSON and as an event.
#[derive(Debug, Default)]
struct Published {
    seq: u64,
    live: Option<Live>,
    json: Bytes,
    event: Option<Bytes>,
    at: Option<Instant>,
}

#[derive(Debug)]
pub struct Page {
    topology: Bytes,
    nodes: Vec<String>,
    hub: Arc<Hub>,
    published: Mutex<Published>,
    health: Health,
    watch: Arc<Mutex<Watch>>,
    top: usize,
}

impl Page {
    pub fn new(
        topology: &Topology,
        hub: Arc<Hub>,
        health: Health,
        watch: Arc<Mutex<Watch>>,
        top: usize,
    ) -> Page {
        Page {
            topology: serde_json::to_vec(topology).unwrap_or_default().into(),
            nodes: topology.nodes.keys().cloned().collect(),
            hub,
            published: Mutex::new(Published::default()),
            health,
            watch,
            top,
        }
    }

    /// Makes `live` the current state and pushes it to every page, if it
    /// differs from the last; otherwise a keepalive now and then.
    pub fn publish(&self, live: Live) {
        let mut p = lock(&self.published);
        let now = Instant::now();
        if p.live.as_ref() == Some(&live) {
            if p.at.is_some_and(|at| now.duration_since(at) >= KEEPALIVE) {
                p.at = Some(now);
                self.hub.send(&Bytes::from_static(b": keepalive\n\n"));
            }
            return;
        }
        p.seq += 1;
        let json = serde_json::json!({ "seq": p.seq, "live": &live }).to_string();
        let event = Bytes::from(format!("event: state\nid: {}\ndata: {json}\n\n", p.seq));
        self.hub.send(&event);
        *p = Published {
            seq: p.seq,
            live: Some(live),
            json: json.into(),
            event: Some(event),
            at: Some(now),
        };
    }

    fn node(&self, name: &str) -> Reply {
        if !self.nodes.iter().any(|n| n == name) {
            return Reply::not_found();
        }
        let health = lock(&self.health);
        let body = match health.get(name) {
            None => serde_json::json!({ "node": name, "condition": Condition::Unknown }),
            Some(s) => serde_json::json!({
                "node": name,
                "condition": Condition::of(s),
                "api": s.api,
                "reachable": s.reachable,
                "problems": s.problems,
                "report": s.report,
            }),
        };
        Reply::json(body.to_string())
    }
}

impl Site for Page {
    fn get(&self, path: &str) -> Reply {
        match path {
            "/" | "/index.html" => Reply::new("text/html; charset=utf-8", assets::INDEX),
            "/app.js" => Reply::new("text/javascript; charset=utf-8", assets::SCRIPT),
            "/style.css" => Reply::new("text/css; charset=utf-8", assets::STYLE),
            "/api/topology" => Reply::json(self.topology.clone()),
            "/api/state" => Reply::json(lock(&self.published).json.clone()),
            "/events" => {
                let first = lock(&self.published).event.clone();
                Reply::Events(self.hub.subscribe(first))
            }
            "/metrics" => Reply::metrics(metrics_page(&self.watch, self.top)),
            _ => match path.strip_prefix("/api/nodes/") {
                Some(name) => self.node(name),
                None => Reply::not_found(),
            },
        }
    }
}
