//! The `docker` backend where Docker diffs naively: the overlay module
//! turns `redirect_dir` on by default (`redirect_dir=Y`, as a kernel built
//! with `CONFIG_OVERLAY_FS_REDIRECT_DIR` does), so Docker's mounts are the
//! `redirect` profile's and its overlay2 driver refuses native diff (moby
//! overlay2 check.go, `doesSupportNativeDiff`; docs/engines.md, "The naive
//! differ"). The test sets the module parameter for the private daemon it
//! starts and puts it back afterwards; nothing else runs meanwhile, as
//! cargo runs test binaries one after another and this one has one test.
//! Skips loudly without root, the parameter or `dockerd`; fails instead
//! under `OVL_REQUIRE_KERNEL=1`.

mod common;

use common::dockerd::Dockerd;
use common::ovlcheck;
use ovlcheck_case::oci::NaiveCompare;
use ovlcheck_driver::support::MODULE_REDIRECT_DIR;
use ovlcheck_driver::{Backend, BackendOptions, Wants};
use ovlcheck_engine::DockerBackend;
use ovlcheck_harness::contract::Contract;
use ovlcheck_harness::known::KnownSet;
use ovlcheck_harness::runner::{adapted, compare_run, run_case_checked};
use ovlcheck_model::Model;
use std::process::Output;

/// The overlay module's `redirect_dir` default set to `Y`, put back as it
/// was when dropped.
struct RedirectDirDefault {
    was: String,
}

impl RedirectDirDefault {
    fn on() -> Result<RedirectDirDefault, String> {
        let was = std::fs::read_to_string(MODULE_REDIRECT_DIR)
            .map_err(|e| format!("{MODULE_REDIRECT_DIR}: {e}"))?;
        std::fs::write(MODULE_REDIRECT_DIR, "Y")
            .map_err(|e| format!("{MODULE_REDIRECT_DIR}: {e}"))?;
        Ok(RedirectDirDefault {
            was: was.trim().to_string(),
        })
    }
}

impl Drop for RedirectDirDefault {
    fn drop(&mut self) {
        if let Err(e) = std::fs::write(MODULE_REDIRECT_DIR, &self.was) {
            eprintln!("{MODULE_REDIRECT_DIR}: cannot put back {}: {e}", self.was);
        }
    }
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "--json output: {e}\n{}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    })
}

/// A campaign and the corpus's `redirect` cases on a Docker that diffs
/// naively agree with the model, and corpus/docker/
/// naive-diff-compares-times.ovl needs the model's times-and-sizes rule
/// to agree: judged by content, as ovlcheck's own store diffs, it
/// diverges.
#[test]
fn docker_naive_diff_agrees_with_the_model() {
    let test = "docker_naive_diff_agrees_with_the_model";
    let redirect_on = match RedirectDirDefault::on() {
        Ok(g) => g,
        Err(why) if common::kernel_required() => {
            panic!("{test}: the overlay module's redirect_dir is required (OVL_REQUIRE_KERNEL=1): {why}")
        }
        Err(why) => {
            eprintln!(
                "\n*** SKIP {test}: {why}\n*** (set OVL_REQUIRE_KERNEL=1 to make this a failure)\n"
            );
            return;
        }
    };
    // Started after the parameter is set: the daemon checks native diff
    // once, when its driver starts.
    let Some(mut d) = Dockerd::start(test) else {
        return;
    };
    let socket = d.socket();
    let fuzz = ovlcheck(&[
        "fuzz",
        "--backend",
        "docker",
        "--engine-socket",
        &socket,
        "--cases",
        "30",
        "--seed",
        "1",
        "--json",
    ]);
    let j = json(&fuzz);
    assert_eq!(fuzz.status.code(), Some(0), "{j}");
    assert_eq!(
        j["profile"], "redirect",
        "Docker's mounts follow the module"
    );
    assert_eq!(j["divergences"], 0, "{j}");
    assert_eq!(j["backend_failures"], 0, "{j}");
    // The cases whose image layers a naive ApplyDiff would not make as
    // their tars describe are not run (engine/src/naive_apply.rs).
    let exported = j["exported"].as_u64().unwrap();
    assert_eq!(exported + j["unsupported"].as_u64().unwrap(), 30, "{j}");
    assert!(exported >= 15, "most cases run: {j}");
    assert_eq!(
        j["exported_naive"], j["exported"],
        "every commit diffs naively: {j}"
    );

    let corpus = common::corpus_dir();
    let replay = ovlcheck(&[
        "replay",
        corpus.to_str().unwrap(),
        "--backend",
        "docker",
        "--engine-socket",
        &socket,
        "--json",
    ]);
    let j = json(&replay);
    assert_eq!(replay.status.code(), Some(0), "{j}");
    assert_eq!(j["new_divergences"], 0, "{j}");
    assert_eq!(j["backend_failures"], 0, "{j}");
    // The corpus's cases of the `redirect` profile that an image can carry.
    assert!(j["exported"].as_u64().unwrap() >= 5, "{j}");
    assert_eq!(j["exported_naive"], j["exported"], "{j}");

    let backend = DockerBackend::new(Some(&socket), BackendOptions::default())
        .unwrap_or_else(|e| panic!("docker backend: {e}"));
    let path = corpus.join("docker").join("naive-diff-compares-times.ovl");
    let case = ovlcheck_harness::corpus::load_case(&path).unwrap();
    let case = adapted(&backend, &case).unwrap();
    let wants = Wants {
        kernel_view: false,
        export: true,
    };
    let mut run = backend.run_case(&case, wants).unwrap();
    let judged = compare_run(Model::new(&case).unwrap(), &case, &run, Contract::Layout);
    assert!(judged.divergence.is_none(), "{:?}", judged.divergence);
    for commit in run
        .commit_tar
        .iter_mut()
        .chain(run.export.iter_mut().map(|e| &mut e.commit))
    {
        commit.naive = NaiveCompare::Content;
    }
    let judged = compare_run(Model::new(&case).unwrap(), &case, &run, Contract::Layout);
    assert!(
        judged.divergence.is_some(),
        "judged by content, the model must disagree with Docker's naive diff"
    );

    // A known divergence of the default profile is known here too: its
    // case, run again under the redirect profile, adapted to the engine
    // (its -init layer) as a campaign's cases are, shows it.
    let known_path = corpus.join("fds").join("18-read-of-a-listed-directory.ovl");
    let mut moved = ovlcheck_harness::corpus::load_case(&known_path).unwrap();
    moved.profile = case.profile.clone();
    let moved = adapted(&backend, &moved.unpinned()).unwrap();
    let judged = run_case_checked(&backend, &moved, Contract::Layout, true).unwrap();
    let divergence = judged
        .divergence
        .expect("an ext4 layer's directory cookie: fread is EINVAL");
    let known = KnownSet::load(std::slice::from_ref(&corpus), "docker").unwrap();
    assert_eq!(
        known.matching(&divergence),
        None,
        "written for the default profile"
    );
    let matched = known.matching_on(&backend, (Contract::Layout, true), &divergence);
    assert_eq!(matched, Some(known_path.as_path()));
    drop(backend);
    d.stop();
    drop(redirect_on);
}
