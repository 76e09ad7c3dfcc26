//! The page and its assets, built into the binary: the dashboard loads
//! nothing from anywhere but itself, so it works in an offline lab.

pub const INDEX: &str = include_str!("assets/index.html");
pub const SCRIPT: &str = include_str!("assets/app.js");
pub const STYLE: &str = include_str!("assets/style.css");
