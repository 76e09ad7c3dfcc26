//! The netlab topology import (YAML with positions, then conversion to a
//! lab file) must never panic, whatever the input, and what it produces
//! goes through the same parser, planner and compiler as a lab file:
//! `RUSTC_BOOTSTRAP=1 cargo fuzz run netlab_import`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let import = match lab_spec::netlab::convert(text, "fuzz.yml", "fuzz") {
        Ok(import) => import,
        // Rendering walks the source by byte offsets: exercise it too.
        Err(diags) => return drop(diags.to_string()),
    };
    drop(import.notes.to_string());
    match lab_spec::parse(&import.toml, "fuzz.yml (as TOML)") {
        Err(diags) => drop(diags.to_string()),
        Ok(lab) => match lab_spec::Plan::new(&lab) {
            Err(diags) => drop(diags.to_string()),
            Ok(plan) => {
                for config in lab_spec::compile::compile(&lab, &plan, "token").values() {
                    let _ = config.to_toml();
                }
            }
        },
    }
});
