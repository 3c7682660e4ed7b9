//! cargo-fuzz target: the CLI's file loading (size limit, UTF-8 check with a
//! position, parsing) on arbitrary bytes written to a file.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = std::env::temp_dir().join(format!("ovlcheck-fuzz-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("case.ovl");
    std::fs::write(&path, data).expect("scratch file");
    if let Err(e) = ovlcheck_harness::corpus::load_case(&path) {
        let msg = e.to_string();
        assert!(msg.contains("case.ovl"), "error does not name the file: {msg}");
    }
});
