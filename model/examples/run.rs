//! Runs `.ovl` cases on the model and prints each step's allowed outcomes
//! and the final merged and raw upper views (the format the scenario
//! snapshots use). `cargo run -p ovlcheck-model --example run -- FILE...`

use ovlcheck_case::parse_case;
use ovlcheck_model::Model;

fn main() {
    for file in std::env::args().skip(1) {
        let text = std::fs::read_to_string(&file).expect("readable case");
        let case = match parse_case(&file, &text) {
            Ok(c) => c,
            Err(e) => {
                println!("{e}");
                continue;
            }
        };
        let mut m = match Model::new(&case) {
            Ok(m) => m,
            Err(e) => {
                println!("{file}: {e}");
                continue;
            }
        };
        for step in &case.steps {
            let (outcome, next) = m.step(step);
            let pin = match &step.expect {
                Some(e) if *e != outcome => format!("   <-- PINNED {e}"),
                _ => String::new(),
            };
            println!("{:<50} => {outcome}{pin}", ovl_step(step));
            m = next;
        }
        println!("== merged\n{}", m.merged_view());
        if let Some(u) = m.upper_view() {
            println!("== upper\n{u}");
        }
    }
}

fn ovl_step(step: &ovlcheck_case::Step) -> String {
    let mut c = ovlcheck_case::Case::default();
    c.steps.push(step.unpinned());
    let text = ovlcheck_case::print_case(&c);
    text.lines().last().unwrap_or_default().trim().to_string()
}
