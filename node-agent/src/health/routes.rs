//! What each endpoint does. No client chooses a command to run: the only
//! thing a client can change is the config, and only through
//! `Backend::apply_config`.

use std::path::PathBuf;

use lab_spec::announce::same_serial;
use lab_spec::{ConfigAnswer, NODE_CONFIG_SCHEMA, NodeConfig, health::Board};

use super::auth::{self, Denied};
use super::http::{PROMETHEUS, Request, Response};
use super::{Backend, HandChanges, HttpCounters, metrics};

/// Everything a request handler may use.
pub struct Context<'a> {
    pub backend: &'a dyn Backend,
    pub bootstrap_files: &'a [PathBuf],
    pub counters: &'a HttpCounters,
}

/// Where the server answers a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Work {
    /// In the event loop, at once.
    Now,
    /// On the refresh worker, after `Backend::refresh`: a report whose
    /// routing state is too old.
    Refresh,
    /// On a config worker: as long as a reconcile pass.
    Apply,
    /// On the refresh worker, without a refresh: it asks FRR itself.
    Frr,
}

pub fn work(request: &Request, backend: &dyn Backend) -> Work {
    match (request.method.as_str(), request.path.as_str()) {
        ("PUT", "/v1/config") => Work::Apply,
        ("GET", "/v1/frr/running") | ("POST", "/v1/frr/check") => Work::Frr,
        ("GET", "/v1/health" | "/metrics") if backend.stale() => Work::Refresh,
        _ => Work::Now,
    }
}

pub fn handle(request: &Request, ctx: &Context<'_>) -> Response {
    match (request.method.as_str(), request.path.as_str()) {
        ("GET", "/v1/health") => Response::json(200, &ctx.backend.health()),
        ("GET", "/metrics") => get_metrics(ctx),
        ("GET", "/v1/config") => get_config(request, ctx),
        ("PUT", "/v1/config") => put_config(request, ctx),
        ("GET", "/v1/frr/running") => frr_running(request, ctx),
        ("POST", "/v1/frr/check") => frr_check(request, ctx),
        (_, "/v1/health" | "/metrics" | "/v1/frr/running") => method_not_allowed("GET"),
        (_, "/v1/config") => method_not_allowed("GET, PUT"),
        (_, "/v1/frr/check") => method_not_allowed("POST"),
        (_, path) => Response::error(
            404,
            &format!(
                "no endpoint {path}; try /v1/health, /metrics, /v1/config, /v1/frr/running or /v1/frr/check"
            ),
        ),
    }
}

fn method_not_allowed(allow: &'static str) -> Response {
    Response::error(405, &format!("method not allowed; use {allow}")).with_header("Allow", allow)
}

fn get_metrics(ctx: &Context<'_>) -> Response {
    let report = ctx.backend.health();
    let stats = ctx.backend.reconcile_stats();
    let frr = ctx.backend.frr_talk();
    Response::new(200, PROMETHEUS, metrics::render(&report, &stats, frr, ctx.counters))
}

fn authorize(request: &Request, ctx: &Context<'_>) -> Result<Option<NodeConfig>, Response> {
    let current = ctx.backend.current_config();
    let hash = current.as_ref().map(|c| c.auth.token_sha256.as_str());
    match auth::authorize(request.header("authorization"), hash, ctx.bootstrap_files) {
        Ok(()) => Ok(current),
        Err(denied) => Err(refuse(&denied)),
    }
}

fn refuse(denied: &Denied) -> Response {
    let response = Response::error(denied.status(), &denied.to_string());
    if denied.status() == 401 {
        response.with_header("WWW-Authenticate", "Bearer realm=\"node-agent\"")
    } else {
        response
    }
}

fn get_config(request: &Request, ctx: &Context<'_>) -> Response {
    match authorize(request, ctx) {
        Ok(Some(config)) => Response::json(200, &config),
        Ok(None) => Response::error(404, "this node is not provisioned yet"),
        Err(response) => response,
    }
}

/// FRR's running config and the hand changes in it (token: it may hold
/// secrets such as BGP passwords).
fn frr_running(request: &Request, ctx: &Context<'_>) -> Response {
    if let Err(response) = authorize(request, ctx) {
        return response;
    }
    match ctx.backend.frr_running() {
        Some(Ok(running)) => Response::json(200, &running),
        Some(Err(e)) => Response::error(503, &format!("FRR does not answer: {e}")),
        None => Response::error(404, "this node runs no FRR"),
    }
}

/// FRR's own check of the frr.conf text in the body; nothing is applied.
fn frr_check(request: &Request, ctx: &Context<'_>) -> Response {
    if let Err(response) = authorize(request, ctx) {
        return response;
    }
    let Ok(text) = std::str::from_utf8(&request.body) else {
        return Response::error(400, "the body is not UTF-8 text");
    };
    match ctx.backend.frr_check(text) {
        Some(Ok(check)) => Response::json(200, &check),
        Some(Err(e)) => Response::error(500, &format!("FRR could not check it: {e}")),
        None => Response::error(404, "this node has no FRR to check with"),
    }
}

fn put_config(request: &Request, ctx: &Context<'_>) -> Response {
    if let Err(response) = authorize(request, ctx) {
        return response;
    }
    let hand = match hand_changes(request.query.as_deref()) {
        Ok(hand) => hand,
        Err(reason) => return Response::error(400, &reason),
    };
    if let Some(date) = request.header("date") {
        ctx.backend.controller_time(date);
    }
    let config = match parse_config(&request.body, request.header("content-type")) {
        Ok(config) => config,
        Err(ParseError::MediaType(t)) => {
            return Response::error(
                415,
                &format!(
                    "Content-Type {t} is not supported; send application/toml or application/json"
                ),
            );
        }
        Err(ParseError::Syntax(reason)) => {
            return answer(&ConfigAnswer::Invalid {
                reasons: vec![format!("the body is not a valid NodeConfig: {reason}")],
            });
        }
    };
    let problems = check_config(&config, &ctx.backend.health().board);
    if !problems.is_empty() {
        return answer(&ConfigAnswer::Invalid { reasons: problems });
    }
    answer(&ctx.backend.apply_config(config, hand))
}

/// `?force=true` (or `1`): the config replaces the lines changed by hand
/// in FRR; without it they stay on top of it. Other parameters are
/// ignored, as an older agent ignores this one.
fn hand_changes(query: Option<&str>) -> Result<HandChanges, String> {
    let force = query.into_iter().flat_map(|q| q.split('&')).find_map(|p| p.strip_prefix("force="));
    match force {
        None | Some("false" | "0") => Ok(HandChanges::Keep),
        Some("true" | "1") => Ok(HandChanges::Drop),
        Some(other) => Err(format!("force={other}: write force=true or force=false")),
    }
}

fn answer(answer: &ConfigAnswer) -> Response {
    Response::json(answer.status(), answer)
}

#[derive(Debug)]
enum ParseError {
    MediaType(String),
    Syntax(String),
}

/// A NodeConfig in TOML or JSON, as the Content-Type says; without one,
/// JSON when it looks like JSON, else TOML.
fn parse_config(body: &[u8], content_type: Option<&str>) -> Result<NodeConfig, ParseError> {
    let text = std::str::from_utf8(body)
        .map_err(|e| ParseError::Syntax(format!("the body is not UTF-8: {e}")))?;
    let media = content_type.map(|t| t.split(';').next().unwrap_or("").trim().to_ascii_lowercase());
    let json = match media.as_deref() {
        Some("application/json") => true,
        Some("application/toml" | "text/toml" | "text/plain") => false,
        None | Some("") | Some("application/octet-stream") => text.trim_start().starts_with('{'),
        Some(other) => return Err(ParseError::MediaType(other.to_string())),
    };
    let config = if json {
        serde_json::from_str(text).map_err(|e| ParseError::Syntax(format!("JSON: {e}")))?
    } else {
        NodeConfig::from_toml(text).map_err(|e| ParseError::Syntax(format!("TOML: {e}")))?
    };
    Ok(if config.version.is_empty() { config.with_version() } else { config })
}

/// Checks the server can make without the agent: the things that would make
/// the node unreachable or apply someone else's config.
fn check_config(config: &NodeConfig, board: &Board) -> Vec<String> {
    let mut problems = Vec::new();
    if config.schema != NODE_CONFIG_SCHEMA {
        problems.push(format!(
            "schema is {}, this agent understands schema {NODE_CONFIG_SCHEMA}",
            config.schema
        ));
    }
    if config.hostname.is_empty()
        || !config.hostname.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        problems.push(format!("hostname {:?} must be letters, digits and '-'", config.hostname));
    }
    let hash = &config.auth.token_sha256;
    if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        problems.push("auth.token_sha256 must be 64 hex digits (the SHA-256 of the token)".into());
    }
    if let (Some(wanted), Some(actual)) = (&config.identity.serial, &board.serial)
        && !same_serial(wanted, actual)
    {
        problems.push(format!(
            "identity.serial is {wanted} but this board's serial number is {actual}"
        ));
    }
    if let (Some(wanted), Some(actual)) = (&config.identity.mac, &board.mac)
        && !wanted.eq_ignore_ascii_case(actual)
    {
        problems.push(format!("identity.mac is {wanted} but this board's MAC is {actual}"));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn force_says_what_becomes_of_hand_changes() {
        assert_eq!(hand_changes(None), Ok(HandChanges::Keep));
        assert_eq!(hand_changes(Some("force=false")), Ok(HandChanges::Keep));
        assert_eq!(hand_changes(Some("x=1&force=true")), Ok(HandChanges::Drop));
        assert_eq!(hand_changes(Some("force=1")), Ok(HandChanges::Drop));
        assert!(hand_changes(Some("force=maybe")).is_err());
    }

    #[test]
    fn unknown_media_types_are_refused() {
        assert!(matches!(
            parse_config(b"x", Some("image/png")),
            Err(ParseError::MediaType(t)) if t == "image/png"
        ));
        assert!(
            matches!(parse_config(b"{", None), Err(ParseError::Syntax(s)) if s.starts_with("JSON"))
        );
        assert!(
            matches!(parse_config(b"a = [", None), Err(ParseError::Syntax(s)) if s.starts_with("TOML"))
        );
    }
}
