//! Writes N arbitrary cases (`ovlcheck_case::arb::case`) as `.ovl` files into
//! DIR, for differential spot checks: `gen DIR N SEED`.

use ovlcheck_case::{arb, print_case};
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = &args[1];
    let n: usize = args[2].parse().expect("count");
    let seed: u8 = args[3].parse().expect("seed");
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &[seed; 32]);
    let mut runner = TestRunner::new_with_rng(Config::default(), rng);
    for i in 0..n {
        let case = arb::case().new_tree(&mut runner).expect("case").current();
        std::fs::write(format!("{dir}/c{i:03}.ovl"), print_case(&case.unpinned())).expect("write");
    }
}
