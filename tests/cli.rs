//! The command line: exit codes, error positions, JSON summaries,
//! determinism across runs, jobs and shards, and the text commands.

mod common;

use std::path::Path;
use std::process::{Command, Output};

fn ovlcheck(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ovlcheck"))
        .args(args)
        .output()
        .expect("runs ovlcheck")
}

/// `fuzz --backend model --profile PROFILE --cases CASES --json`.
fn model_fuzz(profile: &str, cases: &str) -> Output {
    ovlcheck(&[
        "fuzz",
        "--backend",
        "model",
        "--profile",
        profile,
        "--cases",
        cases,
        "--json",
    ])
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("writes");
    p.display().to_string()
}

fn last_json(out: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().expect("stdout has a last line");
    serde_json::from_str(line).unwrap_or_else(|e| panic!("last line is not JSON ({e}): {line}"))
}

/// The summary without the fields that depend on timing.
fn untimed(mut v: serde_json::Value) -> serde_json::Value {
    let o = v.as_object_mut().expect("object");
    o.remove("elapsed_s");
    o.remove("cases_per_s");
    o.remove("jobs");
    v
}

const GOOD: &str = "lower\n  dir d 0755\n  file d/x 0644 \"x\"\n  file a 0644 \"hi\"\nops\n  read a => \"hi\"\n  unlink a\n  mkdir e 0755\n";

#[test]
fn bad_input_names_file_line_and_column_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write(
        dir.path(),
        "bad.ovl",
        "lower\n  file a 0644 \"x\"\nops\n  mkdir /abs 0755\n",
    );
    for cmd in ["show", "repro", "run"] {
        let out = ovlcheck(&[cmd, &bad, "--backend", "model"][..if cmd == "run" { 4 } else { 2 }]);
        assert_eq!(out.status.code(), Some(2), "{cmd}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("bad.ovl:4:9"), "{cmd}: {err}");
        assert!(err.contains("absolute"), "{cmd}: {err}");
        assert!(out.stdout.is_empty(), "{cmd} printed to stdout");
    }
}

#[test]
fn missing_file_and_unknown_profile_exit_2() {
    assert_eq!(
        ovlcheck(&["show", "/nonexistent/x.ovl"]).status.code(),
        Some(2)
    );
    let out = ovlcheck(&[
        "fuzz",
        "--backend",
        "model",
        "--profile",
        "nosuch",
        "--cases",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown profile"));
    assert_eq!(ovlcheck(&["fuzz", "--shard", "3/2"]).status.code(), Some(2));
    for pack in ["0", "65", "x"] {
        let out = ovlcheck(&["fuzz", "--backend", "model", "--pack", pack]);
        assert_eq!(out.status.code(), Some(2), "--pack {pack}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("from 1 to 64"),
            "{out:?}"
        );
    }
    // Profile options as a case's `profile` line takes them: the kernel's
    // conflicts are refused with the reason.
    let fuzz = |profile: &str| model_fuzz(profile, "3");
    let out = fuzz("idmapped=on index=on");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"profile\":\"idmapped=on index=on\""));
    let out = fuzz("userxattr metacopy=on");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("userxattr conflicts with metacopy=on"));
}

/// On the model (as in the vm guest) a campaign gives some cases their
/// own `fs.protected_*` settings, unless its `--profile` names settings,
/// which every case then keeps.
#[test]
fn a_model_campaign_varies_the_sysctls_unless_the_profile_names_them() {
    let profiles = |profile: &str| -> Vec<String> {
        let out = model_fuzz(profile, "40");
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        let summary = last_json(&out);
        let list = summary["profiles"].as_array().expect("profiles").clone();
        list.iter()
            .map(|p| p.as_str().expect("a string").to_string())
            .collect()
    };
    let varied = profiles("default");
    assert!(varied.len() > 1, "{varied:?}");
    assert!(varied
        .iter()
        .all(|p| p == "default" || p.contains("protected_")));
    let named = "protected_symlinks=1 protected_regular=2";
    assert_eq!(profiles(named), [named]);
}

#[test]
fn fuzz_json_is_deterministic_across_runs_jobs_and_shards() {
    let run = |extra: &[&str]| {
        let mut args = vec![
            "fuzz",
            "--backend",
            "model",
            "--cases",
            "300",
            "--seed",
            "7",
            "--json",
        ];
        args.extend_from_slice(extra);
        let out = ovlcheck(&args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        last_json(&out)
    };
    let a = run(&["--jobs", "1"]);
    let b = run(&["--jobs", "2"]);
    let c = run(&["--jobs", "1"]);
    assert_eq!(untimed(a.clone()), untimed(b));
    assert_eq!(untimed(a.clone()), untimed(c));
    for key in [
        "command",
        "backend",
        "profile",
        "seed",
        "cases",
        "ops",
        "divergences",
        "elapsed_s",
        "cases_per_s",
        "kernel",
        "saved",
    ] {
        assert!(a.get(key).is_some(), "summary lacks {key}");
    }
    assert_eq!(a["cases"], 300);
    let s0 = run(&["--shard", "0/2"]);
    let s1 = run(&["--shard", "1/2"]);
    assert_eq!(
        s0["cases"].as_u64().unwrap() + s1["cases"].as_u64().unwrap(),
        300
    );
    assert_eq!(
        s0["ops"].as_u64().unwrap() + s1["ops"].as_u64().unwrap(),
        a["ops"].as_u64().unwrap()
    );
    let avg = a["ops"].as_f64().unwrap() / a["cases"].as_f64().unwrap();
    assert!(avg >= 10.0, "cases average {avg} ops");
}

#[test]
fn a_broken_pin_is_a_divergence_with_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let case = write(
        dir.path(),
        "pin.ovl",
        "lower\n  file a 0644 \"hi\"\nops\n  read a => \"bye\"\n",
    );
    let out = ovlcheck(&["replay", &case, "--backend", "model"]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("first difference"), "{stdout}");
    // With --json the summary is alone on stdout, the report on stderr.
    let out = ovlcheck(&["replay", &case, "--backend", "model", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is one JSON object: {e}"));
    assert_eq!(summary["divergences"], 1);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("first difference"), "{stderr}");
}

#[test]
fn show_draws_the_layer_stack() {
    let dir = tempfile::tempdir().unwrap();
    let case = write(
        dir.path(),
        "s.ovl",
        "lower\n  dir d 0755\n  file d/x 0644 \"x\"\nlower\n  whiteout d/x\n  opaque d\nupper\n  file n 0644 \"\"\nops\n",
    );
    let out = ovlcheck(&["show", &case]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let t = String::from_utf8_lossy(&out.stdout);
    assert!(
        t.contains("path")
            && t.contains("L0")
            && t.contains("L1")
            && t.contains("upper")
            && t.contains("merged"),
        "{t}"
    );
    assert!(t.contains("whiteout") && t.contains("opaque"), "{t}");
}

#[test]
fn diff_prints_the_predicted_changeset_and_refuses_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let case = write(
        dir.path(),
        "d.ovl",
        "lower oci\n  file f 0644 \"f\"\n  file g 0644 \"g\"\n  file .wh.gone 0600 \"\"\nops\n  unlink f\n  link g h\n",
    );
    let out = ovlcheck(&["diff", &case, "--backend", "model"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let t = String::from_utf8_lossy(&out.stdout);
    assert!(t.contains("native diff"), "{t}");
    assert!(
        t.contains(".wh.f file 0600 0:0 size=0 \"\"  (whiteout: deletes f below)"),
        "{t}"
    );
    assert!(
        t.contains("h file 0644 0:0 size=1") && t.contains("(hard link to g)"),
        "{t}"
    );
    let bad = write(
        dir.path(),
        "bad.ovl",
        "lower oci\n  file d/.wh. 0600 \"\"\n",
    );
    let out = ovlcheck(&["diff", &bad, "--backend", "model"]);
    assert_eq!(out.status.code(), Some(2));
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("bad.ovl:2:"), "{e}");
}

#[test]
fn repro_script_runs_standalone_and_agrees_with_the_pins() {
    let dir = tempfile::tempdir().unwrap();
    let case = write(dir.path(), "r.ovl", GOOD);
    let out = ovlcheck(&["repro", &case]);
    assert_eq!(out.status.code(), Some(0));
    let script = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(script.starts_with("#!/bin/sh"));
    assert!(script.contains("mount -t overlay"));
    if common::kernel("repro_script_runs_standalone").is_none() {
        return;
    }
    let path = write(dir.path(), "r.sh", &script);
    let run = Command::new("sh").arg(&path).output().expect("sh runs");
    let text = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "script failed: {}\n{text}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(text.contains("read a  =>  \"hi\""), "{text}");
    assert!(text.contains("unlink a  =>  ok"), "{text}");
}

#[test]
fn run_shows_model_and_backend_side_by_side() {
    let dir = tempfile::tempdir().unwrap();
    let case = write(dir.path(), "g.ovl", GOOD);
    let out = ovlcheck(&["run", &case, "--backend", "model"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let t = String::from_utf8_lossy(&out.stdout);
    assert!(
        t.contains("model") && t.contains("backend") && t.contains("no divergence"),
        "{t}"
    );
}

#[test]
fn run_pin_keeps_the_header_comments_and_replaces_the_pins() {
    let dir = tempfile::tempdir().unwrap();
    let text = "# why this case exists\n#   (a second line)\n\nlower\n  file a 0644 \"hi\"\nops\n  # not part of the header\n  read a => \"bye\"\n";
    let case = write(dir.path(), "h.ovl", text);
    let out = ovlcheck(&["run", &case, "--backend", "model", "--pin"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pinned = String::from_utf8_lossy(&out.stdout);
    assert!(
        pinned.starts_with("# why this case exists\n#   (a second line)\n\nlower\n"),
        "{pinned}"
    );
    assert!(pinned.contains("read a => \"hi\""), "{pinned}");
    assert!(!pinned.contains("not part of the header"), "{pinned}");
}

/// Reproducers of corpus cases whose outcomes depend on how the script
/// runs: a userxattr case whose EPERM only happens in the user namespace
/// ovlcheck mounts it in, a read-only stack (the container layer is the
/// top lower, and its commits), a symlink to `..` that must not leave the
/// overlay root, an errno with two names, and a link and a rename as
/// another user whose errors depend on the executor's order of walks,
/// cases with open fds (run by one helper process between mounts),
/// idmapped layers (root and userxattr, owners the mounts do not map,
/// inode flags, a commit, data-only layers, an overlay above them), an
/// overlay as the lower layer (escaped layers, data-only layers), offline
/// changes to a lower layer, lookups cached since the mount's walk,
/// listings whose d_ino depends on the upper sharing the lowers'
/// filesystem, ops on the root itself (`rmdir .` is EBUSY, as of `/`), a
/// store of `upper_size` bytes the lowers share (commits that take its
/// pages), and data with newlines. Each pinned outcome must come out of
/// the script.
#[test]
fn repro_scripts_reproduce_the_pins_of_namespace_readonly_and_escape_cases() {
    let files = [
        "regressions/userxattr-rename-fresh-link-sticky-eperm.ovl",
        "rules/49-readonly.ovl",
        "found/userxattr-e6ab3aa31f80.ovl",
        "rules/60-xattr-namespaces.ovl",
        "regressions/link-root-as-other-uid.ovl",
        "found/default-8d5e5ac025b2.ovl",
        "fds/03-unlinked-open-file.ovl",
        "fds/05-readdir-continued-merged-dir.ovl",
        "fds/09-nofollow-symlink.ovl",
        "fds/11-removed-directory-fd.ovl",
        "fds/12-fifo-fds.ovl",
        "rules/85-statfs-fsid-own.ovl",
        "rules/87-statfs-fsid-xdev-off.ovl",
        "rules/88-statfs-fsid-readonly-uuid-on.ovl",
        "rules/89-statfs-zero-fsid.ovl",
        "rules/100-data-only-layers.ovl",
        "rules/101-data-only-metacopy.ovl",
        "rules/102-data-only-nofollow.ovl",
        "rules/105-acl-set.ovl",
        "rules/106-acl-kill-sgid.ovl",
        "rules/107-acl-default-create.ovl",
        "rules/95-unmapped-owners.ovl",
        "rules/96-unmapped-upper-dirs.ovl",
        "regressions/idmapped-chattr.ovl",
        "regressions/idmapped-capability.ovl",
        "regressions/userxattr-idmapped-rootless-owners.ovl",
        "rules/113-nested-lower.ovl",
        "rules/114-offline-lower-changes.ovl",
        "regressions/offline-file-takes-default-acl.ovl",
        "regressions/nested-listed-whiteout.ovl",
        "rules/116-index-alias-redirect-refused.ovl",
        "rules/117-nested-escaped-markers.ovl",
        "rules/118-escaped-lower-layer.ovl",
        "rules/61-readdir-stale-entries-samefs.ovl",
        "rules/93-readdir-leaves-out-failed-lookups.ovl",
        "rules/97-impure-listing-fails.ovl",
        "rules/109-metacopy-data-keeps-lower.ovl",
        "rules/112-link-looked-up-after-data-copy-up.ovl",
        "fds/17-cached-listing-across-copy-up.ovl",
        "regressions/remount-first-walks-the-mount.ovl",
        "regressions/xino-on-one-filesystem-ignored.ovl",
        "regressions/idmapped-owners.ovl",
        "regressions/idmapped-data-only-layers.ovl",
        "rules/119-nested-idmapped.ovl",
        "regressions/root-itself-ops.ovl",
        "regressions/enospc-commit-full-store.ovl",
        "regressions/enospc-commit-takes-store-pages.ovl",
        "docker/commit-under-init-layer.ovl",
        "regressions/readonly-commit.ovl",
    ];
    if common::kernel("repro_scripts_reproduce_the_pins").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for name in files {
        let case = common::corpus_dir().join(name);
        let out = ovlcheck(&["repro", case.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(0), "{name}");
        let script = write(dir.path(), "r.sh", &String::from_utf8_lossy(&out.stdout));
        let run = Command::new("sh").arg(&script).output().expect("sh runs");
        let printed = String::from_utf8_lossy(&run.stdout).replace("  =>  ", " => ");
        assert!(
            run.status.success(),
            "{name}: {}\n{printed}",
            String::from_utf8_lossy(&run.stderr)
        );
        let text = std::fs::read_to_string(&case).unwrap();
        for pinned in text.lines().map(str::trim).filter(|l| l.contains(" => ")) {
            assert!(
                printed.lines().any(|l| l == pinned),
                "{name}: `{pinned}` not reproduced:\n{printed}"
            );
        }
    }
}

/// `replay --repeat N --jobs J` runs each case N times and reports them in
/// file order: the same summary whatever the number of threads.
#[test]
fn replay_repeat_is_the_same_on_any_number_of_threads() {
    if common::kernel("replay_repeat").is_none() {
        return;
    }
    let root = env!("CARGO_MANIFEST_DIR");
    let cases = [
        format!("{root}/corpus/seed-article.ovl"),
        format!("{root}/corpus/known-kernel/userxattr-link-alias-stale-permission.ovl"),
        format!("{root}/corpus/known-kernel/xwhiteout-only-dir-rmdir-not-empty.ovl"),
    ];
    let run = |jobs: &str| {
        let out = ovlcheck(&[
            "replay", &cases[0], &cases[1], &cases[2], "--repeat", "4", "--jobs", jobs, "--json",
        ]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let lines: Vec<String> = String::from_utf8_lossy(&out.stderr)
            .lines()
            .filter(|l| l.contains(".ovl: "))
            .map(str::to_string)
            .collect();
        (untimed(last_json(&out)), lines)
    };
    let (one, lines) = run("1");
    assert_eq!(one["cases"], 12, "three files, four runs each: {one}");
    // Files run in path order: corpus/known-kernel/... before seed-article.
    assert!(lines[2].ends_with("seed-article.ovl: 4x ok"), "{lines:?}");
    let known =
        one["known_divergences"].as_u64().unwrap() + one["fixed"].as_array().unwrap().len() as u64;
    // Two kernel bugs: four known runs of a case, or one fixed.
    assert!([8, 5, 2].contains(&known), "{one}");
    assert_eq!(run("2"), (one, lines));
}

/// `generate --kernel-version` prints a case made for that kernel, as a vm
/// campaign makes it: the profile names the kernel, and before v6.6 no
/// layer has a `user.*` xattr (its tmpfs could not keep one).
#[test]
fn generate_for_an_older_kernel() {
    for index in 0..40 {
        let i = index.to_string();
        let out = ovlcheck(&["generate", "--index", &i, "--kernel-version", "6.1"]);
        assert_eq!(out.status.code(), Some(0));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("kernel=6.1"), "{text}");
        let layer_user_xattr = text
            .lines()
            .take_while(|l| *l != "ops")
            .any(|l| l.trim_start().starts_with("xattr ") && l.contains(" user."));
        assert!(!layer_user_xattr, "{text}");
    }
    let bad = ovlcheck(&["generate", "--index", "0", "--kernel-version", "six"]);
    assert_eq!(bad.status.code(), Some(2));
}

/// The `generate` arguments a campaign names when ovlcheck panics on one of
/// its cases print that case again, whatever the generator's options; a
/// campaign that rotates through its backend's own profiles names none.
#[test]
fn generate_args_print_a_campaigns_case_again() {
    use ovlcheck_case::profile::KernelVersion;
    use ovlcheck_case::{print_case, Profile};
    use ovlcheck_harness::gen::{case_at, GenConfig};
    // `generate` gives cases the ids a harness that is not root maps.
    let map = ovlcheck_driver::idmap::IdMap::current();
    let ids = (*map != ovlcheck_driver::idmap::IdMap::Root).then(|| map.mapped());
    let mut options = Profile::default();
    for word in ["redirect_dir=on", "index=on"] {
        options.set_option(word).expect("a profile option");
    }
    let configs = [
        GenConfig::default(),
        GenConfig {
            profile: Profile::preset("default"),
            max_ops: 40,
            image_layers: true,
            ..GenConfig::default()
        },
        GenConfig {
            profile: Some(options),
            kernel: Some(KernelVersion { major: 6, minor: 1 }),
            sysctls: true,
            ..GenConfig::default()
        },
    ];
    for (seed, config) in (3..).zip(configs) {
        let config = GenConfig { ids, ..config };
        for index in [0, 7, 463] {
            let args = config
                .generate_args(seed, index)
                .expect("one profile or all");
            let mut argv = vec!["generate"];
            argv.extend(args.iter().map(String::as_str));
            let out = ovlcheck(&argv);
            assert_eq!(out.status.code(), Some(0), "{args:?}");
            let text = String::from_utf8_lossy(&out.stdout);
            let (_, printed) = text.split_once('\n').expect("a header line");
            assert_eq!(
                printed,
                print_case(&case_at(&config, seed, index)),
                "{args:?}"
            );
        }
    }
    let rotating = GenConfig {
        rotation: vec![
            Profile::default(),
            Profile::preset("xdev").expect("a preset"),
        ],
        ..GenConfig::default()
    };
    assert_eq!(rotating.generate_args(1, 0), None);
}
