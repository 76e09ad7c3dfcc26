//! HTTP to one node-agent's management API, by address, with timeouts.

use std::net::SocketAddr;
use std::time::Duration;

use lab_spec::frr_check::FrrCheck;
use lab_spec::frr_hand::FrrRunning;
use lab_spec::{ConfigAnswer, HealthReport, NodeConfig};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{addr} is unreachable: {reason}")]
    Unreachable { addr: SocketAddr, reason: String },
    #[error("{addr} refused the token (HTTP {status}): {message}")]
    Unauthorized { addr: SocketAddr, status: u16, message: String },
    #[error("{addr} answered HTTP {status}: {message}")]
    Status { addr: SocketAddr, status: u16, message: String },
    #[error("{addr} answered something that is not a {what}: {reason}")]
    Garbled { addr: SocketAddr, what: &'static str, reason: String },
}

impl ClientError {
    pub fn is_unreachable(&self) -> bool {
        matches!(self, ClientError::Unreachable { .. })
    }
}

/// HTTP client for the agents of a lab.
#[derive(Debug, Clone)]
pub struct AgentClient {
    agent: ureq::Agent,
}

impl AgentClient {
    /// `timeout` bounds each whole request, connection included.
    pub fn new(timeout: Duration) -> Self {
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .timeout_connect(Some(timeout.min(Duration::from_secs(3))))
            .http_status_as_error(false)
            .user_agent(concat!("pi-lab/", env!("CARGO_PKG_VERSION")))
            .build();
        AgentClient { agent: config.into() }
    }

    pub fn health(&self, addr: SocketAddr) -> Result<HealthReport, ClientError> {
        let (status, body) = self.call(addr, self.agent.get(url(addr, "/v1/health")).call())?;
        if status != 200 {
            return Err(status_error(addr, status, &body));
        }
        serde_json::from_str(&body).map_err(|e| ClientError::Garbled {
            addr,
            what: "health report",
            reason: e.to_string(),
        })
    }

    /// `GET /v1/health` of every agent at once, in the order given.
    pub fn health_all(&self, addrs: &[SocketAddr]) -> Vec<Result<HealthReport, ClientError>> {
        std::thread::scope(|scope| {
            let asks: Vec<_> = addrs.iter().map(|a| scope.spawn(move || self.health(*a))).collect();
            asks.into_iter()
                .zip(addrs)
                .map(|(ask, addr)| {
                    ask.join().unwrap_or_else(|_| {
                        Err(ClientError::Unreachable {
                            addr: *addr,
                            reason: "the request thread panicked".into(),
                        })
                    })
                })
                .collect()
        })
    }

    pub fn metrics(&self, addr: SocketAddr) -> Result<String, ClientError> {
        let (status, body) = self.call(addr, self.agent.get(url(addr, "/metrics")).call())?;
        if status != 200 {
            return Err(status_error(addr, status, &body));
        }
        Ok(body)
    }

    /// `PUT /v1/config` with the lab token: the agent's verdict, or an
    /// error when the answer is not one (a garbled 200 is not "applied").
    /// `force`: the config replaces the lines changed by hand in FRR
    /// (`?force=true`); without it the agent keeps them.
    pub fn push(
        &self,
        addr: SocketAddr,
        token: &str,
        config: &NodeConfig,
        force: bool,
    ) -> Result<ConfigAnswer, ClientError> {
        let body = serde_json::to_string(config).map_err(|e| ClientError::Garbled {
            addr,
            what: "config",
            reason: e.to_string(),
        })?;
        // The controller's time: a board without NTP sets its clock from it.
        let request = self
            .agent
            .put(url(addr, if force { "/v1/config?force=true" } else { "/v1/config" }))
            .header("Authorization", format!("Bearer {token}"))
            .header("Date", httpdate::fmt_http_date(std::time::SystemTime::now()))
            .content_type("application/json");
        let (status, body) = self.call(addr, request.send(body))?;
        if !ConfigAnswer::carried_by(status) {
            return Err(status_error(addr, status, &body));
        }
        ConfigAnswer::from_http(status, &body).map_err(|e| match status {
            // A plain HTTP error (a refused request) rather than a verdict.
            400 | 500 if serde_json::from_str::<serde_json::Value>(&body).is_ok() => {
                status_error(addr, status, &body)
            }
            _ => ClientError::Garbled { addr, what: "config answer", reason: e.to_string() },
        })
    }

    /// `GET /v1/frr/running` with the lab token: FRR's running config and
    /// the lines changed by hand in it.
    pub fn frr_running(&self, addr: SocketAddr, token: &str) -> Result<FrrRunning, ClientError> {
        let request = self
            .agent
            .get(url(addr, "/v1/frr/running"))
            .header("Authorization", format!("Bearer {token}"));
        let (status, body) = self.call(addr, request.call())?;
        if status != 200 {
            return Err(status_error(addr, status, &body));
        }
        serde_json::from_str(&body).map_err(|e| ClientError::Garbled {
            addr,
            what: "running config",
            reason: e.to_string(),
        })
    }

    /// `POST /v1/frr/check` with the lab token: the lines of `text` the
    /// node's FRR refuses (nothing is applied).
    pub fn frr_check(
        &self,
        addr: SocketAddr,
        token: &str,
        text: &str,
    ) -> Result<FrrCheck, ClientError> {
        let request = self
            .agent
            .post(url(addr, "/v1/frr/check"))
            .header("Authorization", format!("Bearer {token}"))
            .content_type("text/plain");
        let (status, body) = self.call(addr, request.send(text))?;
        if status != 200 {
            return Err(status_error(addr, status, &body));
        }
        serde_json::from_str(&body).map_err(|e| ClientError::Garbled {
            addr,
            what: "FRR check",
            reason: e.to_string(),
        })
    }

    fn call(
        &self,
        addr: SocketAddr,
        result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<(u16, String), ClientError> {
        let mut response =
            result.map_err(|e| ClientError::Unreachable { addr, reason: e.to_string() })?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .read_to_string()
            .map_err(|e| ClientError::Unreachable { addr, reason: e.to_string() })?;
        Ok((status, body))
    }
}

fn url(addr: SocketAddr, path: &str) -> String {
    format!("http://{addr}{path}")
}

fn status_error(addr: SocketAddr, status: u16, body: &str) -> ClientError {
    let message = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
        .unwrap_or_else(|| match body.trim() {
            "" if status == 404 => "nothing there; is this a node-agent?".to_string(),
            "" => "(empty answer)".to_string(),
            text => text.chars().take(200).collect(),
        });
    if matches!(status, 401 | 403) {
        ClientError::Unauthorized { addr, status, message }
    } else {
        ClientError::Status { addr, status, message }
    }
}
