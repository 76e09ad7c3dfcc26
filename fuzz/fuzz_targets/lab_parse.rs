//! The lab-file parser, planner and compiler must never panic, whatever
//! the input: `RUSTC_BOOTSTRAP=1 cargo fuzz run lab_parse`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match lab_spec::parse_bytes(data, "fuzz.toml") {
        // Rendering walks the source by byte offsets: exercise it too.
        Err(diags) => drop(diags.to_string()),
        Ok(lab) => match lab_spec::Plan::new(&lab) {
            Err(diags) => drop(diags.to_string()),
            Ok(plan) => {
                drop(plan.warnings.to_string());
                for config in lab_spec::compile::compile(&lab, &plan, "token").values() {
                    let _ = config.to_toml();
                }
            }
        },
    }
});
