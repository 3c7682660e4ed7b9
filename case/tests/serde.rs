//! JSON (the machine form) round trips.

use ovlcheck_case::{arb, Case, View};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn case_json_round_trip(case in arb::case()) {
        let json = serde_json::to_string(&case).unwrap();
        let back: Case = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(back, case);
    }

    #[test]
    fn view_json_round_trip(view in arb::view()) {
        let json = serde_json::to_string(&view).unwrap();
        let back: View = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(back, view);
    }

    #[test]
    fn outcome_json_round_trip(o in arb::outcome()) {
        let json = serde_json::to_string(&o).unwrap();
        prop_assert_eq!(serde_json::from_str::<ovlcheck_case::Outcome>(&json).unwrap(), o);
    }
}
