//! `pi-lab`: the host side of a Raspberry Pi network lab.
//!
//! Each module is one thing a user does; `main.rs` only parses the command
//! line and hands over to them.

pub mod agent_client;
pub mod bmap;
pub mod capture;
pub mod cli;
pub mod connect;
pub mod dashboard;
pub mod emulated;
pub mod flash;
pub mod fleet;
pub mod fleet_client;
pub mod frr_check;
pub mod graph;
pub mod http_server;
pub mod image;
pub mod impair;
pub mod import;
pub mod interrupt;
pub mod inventory;
pub mod lab;
pub mod lab_arg;
pub mod lab_file;
pub mod lab_host;
pub mod lab_up;
pub mod link;
pub mod mbr;
pub mod pcapng;
pub mod plan_table;
pub mod programs;
pub mod provision;
pub mod runner;
pub mod running_lab;
pub mod save;
pub mod secrets;
pub mod sflow_watch;
pub mod status;
pub mod switch;
pub mod table;
pub mod validate;

/// Returned by commands whose issue has not landed yet.
#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not built yet")]
pub struct NotBuilt(pub &'static str);

/// An error and its causes on one line, `what: why: why`. A cause whose
/// text the message already carries (a thiserror message with `{source}`)
/// is not repeated. Errors may quote files (a TOML parser shows the bad
/// line): control characters are escaped and long lines cut.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut cause = err.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = c.source();
    }
    // Long enough for pi-lab's own errors (which list nodes, ports and
    // what to do), short enough that a hostile file cannot flood a terminal.
    lab_spec::diagnostics::for_terminal_within(&out, 2000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot read lab file x.toml: {source}")]
    struct Quoting {
        source: std::io::Error,
    }

    #[derive(Debug, thiserror::Error)]
    #[error("cannot listen")]
    struct Silent(#[source] std::io::Error);

    #[test]
    fn a_cause_is_said_once() {
        let missing = || std::io::Error::from(std::io::ErrorKind::NotFound);
        let text = error_chain(&Quoting { source: missing() });
        assert_eq!(text, format!("cannot read lab file x.toml: {}", missing()));
        let text = error_chain(&Silent(missing()));
        assert_eq!(text, format!("cannot listen: {}", missing()));
    }

    #[derive(Debug, thiserror::Error)]
    #[error("bad line:\n{0}")]
    struct Quoted(String);

    #[test]
    fn quoted_file_text_is_made_safe_to_print() {
        let text = error_chain(&Quoted(format!("a\0b\u{200b}c{}", "x".repeat(5000))));
        assert!(text.starts_with("bad line:\na\\0b\\u{200b}cxxx"), "{text}");
        assert!(text.len() < 2100, "{text}");
        let own = format!("nothing was started: {}", "leaf1:eth1 (delay 20ms), ".repeat(20));
        assert_eq!(error_chain(&Quoted(own.clone())), format!("bad line:\n{own}"), "not cut");
    }
}
