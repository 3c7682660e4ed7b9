//! The `docker` backend on a real, private Docker engine
//! (docs/engines.md): a short campaign, the corpus, the engine left as it
//! was found, the store it leaves behind checked by `inspect`, and the
//! Docker-specific rules shown to matter. Skips loudly without root or
//! `dockerd`; fails instead under `OVL_REQUIRE_KERNEL=1`.

mod common;

use common::dockerd::Dockerd;
use common::ovlcheck;
use ovlcheck_case::oci::TarCommit;
use ovlcheck_driver::{Backend, BackendOptions, Wants};
use ovlcheck_engine::DockerBackend;
use ovlcheck_harness::contract::Contract;
use ovlcheck_harness::runner::{adapted, compare_run};
use ovlcheck_model::Model;
use std::process::Output;

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("--json output: {e}\n{}\n{}", stdout(o), stderr(o)))
}

/// A campaign and the whole corpus on the engine: no new divergence, no
/// backend failure, every case's images and containers removed, and the
/// store the engine is left with is consistent.
#[test]
fn docker_campaign_and_corpus_show_no_new_divergence() {
    let Some(mut d) = Dockerd::start("docker_campaign_and_corpus") else {
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
        "40",
        "--seed",
        "1",
        "--json",
    ]);
    assert_eq!(fuzz.status.code(), Some(0), "{}", stderr(&fuzz));
    let j = json(&fuzz);
    assert_eq!(
        j["profile"], "default",
        "--profile all means the one profile docker runs"
    );
    assert_eq!(j["divergences"], 0, "{j}");
    assert_eq!(j["backend_failures"], 0, "{j}");
    // A campaign on an engine makes cases an image can carry
    // (harness/src/gen/image.rs): none is refused, each is committed and
    // judged.
    assert_eq!(j["unsupported"], 0, "{j}");
    assert_eq!(j["exported"], 40, "{j}");

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
    assert_eq!(replay.status.code(), Some(0), "{}", stderr(&replay));
    let j = json(&replay);
    assert_eq!(j["new_divergences"], 0, "{j}");
    assert_eq!(j["backend_failures"], 0, "{j}");
    assert!(j["exported"].as_u64().unwrap() >= 100, "{j}");

    assert_eq!(d.docker(&["ps", "-aq"]), "", "every container removed");
    assert_eq!(d.docker(&["images", "-aq"]), "", "every image removed");
    d.stop();
    let root = d.data_root();
    let inspect = ovlcheck(&["inspect", root.to_str().unwrap()]);
    assert_eq!(
        inspect.status.code(),
        Some(0),
        "the store is consistent:\n{}{}",
        stdout(&inspect),
        stderr(&inspect)
    );
}

/// Cases packed in one container (`--pack 8`) are judged as alone.
#[test]
fn docker_packed_campaign_reports_what_its_cases_alone_report() {
    let Some(mut d) = Dockerd::start("docker_packed_campaign") else {
        return;
    };
    let socket = d.socket();
    common::engine_pack_reports_as_alone(&["--backend", "docker", "--engine-socket", &socket]);
    assert_eq!(d.docker(&["ps", "-aq"]), "", "every container removed");
    assert_eq!(d.docker(&["images", "-aq"]), "", "every image removed");
    d.stop();
}

/// Each of corpus/docker's rules is needed: judged as ovlcheck's own store
/// commits (the container layer rotated into the image, every xattr kept),
/// what Docker did diverges from the model.
#[test]
fn docker_rules_are_needed_to_agree_with_docker() {
    let Some(d) = Dockerd::start("docker_rules_are_needed") else {
        return;
    };
    let backend = DockerBackend::new(Some(&d.socket()), BackendOptions::default())
        .unwrap_or_else(|e| panic!("docker backend: {e}"));
    for name in [
        "commit-under-init-layer.ovl",
        "commit-drops-user-xattrs.ovl",
    ] {
        let path = common::corpus_dir().join("docker").join(name);
        let case = ovlcheck_harness::corpus::load_case(&path).unwrap();
        let case = adapted(&backend, &case).unwrap();
        let wants = Wants {
            kernel_view: false,
            export: true,
        };
        let mut run = backend.run_case(&case, wants).unwrap();
        let judged = compare_run(Model::new(&case).unwrap(), &case, &run, Contract::Layout);
        assert!(
            judged.divergence.is_none(),
            "{name}: {:?}",
            judged.divergence
        );
        run.commit_tar = Some(TarCommit::default());
        if let Some(e) = run.export.as_mut() {
            e.commit = TarCommit::default();
        }
        let judged = compare_run(Model::new(&case).unwrap(), &case, &run, Contract::Layout);
        assert!(
            judged.divergence.is_some(),
            "{name}: without Docker's rules the model must disagree with Docker"
        );
    }
}

/// A socket nobody listens on is one line and exit status 2.
#[test]
fn docker_backend_without_an_engine_is_a_one_line_error() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("nobody.sock");
    let o = ovlcheck(&[
        "fuzz",
        "--backend",
        "docker",
        "--engine-socket",
        socket.to_str().unwrap(),
        "--cases",
        "1",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("socket at") && err.contains(socket.to_str().unwrap()),
        "{err}"
    );
}
