//! cargo-fuzz target: the `.ovl` parser on arbitrary bytes. It must never
//! panic or hang; every error carries a position inside the input, and what
//! parses must print back to the same case.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match ovlcheck_case::parse_case("fuzz.ovl", text) {
        Ok(case) => {
            let printed = ovlcheck_case::print_case(&case);
            let again = ovlcheck_case::parse_case("printed.ovl", &printed).expect("printed cases parse");
            assert_eq!(case, again);
        }
        Err(e) => {
            assert!(e.line >= 1 && e.column >= 1);
            assert!(e.line <= text.lines().count().max(1) + 1);
        }
    }
});
