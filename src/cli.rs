//! Command-line parsing and the commands (README.md, "Commands").

use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use ovlcheck_case::profile::{KernelVersion, PRESETS};
use ovlcheck_case::{print_case, Case, Profile};
use ovlcheck_driver::{Backend, BackendKind};
use ovlcheck_harness::campaign::{self, FuzzOptions, Shard};
use ovlcheck_harness::contract::Contract;
use ovlcheck_harness::gen::GenConfig;
use ovlcheck_harness::known::{KnownSet, Verdict};
use ovlcheck_harness::replay::{self, Replayed};
use ovlcheck_harness::runner::run_case_under;
use ovlcheck_harness::summary::{Header, Summary};
use ovlcheck_harness::{
    changes, corpus, explore, inspect, report, repro, show, Divergence, ModelBackend, RunError,
};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Exit status: no divergence.
const OK: i32 = 0;
/// Exit status: a divergence was found.
const DIVERGED: i32 = 1;
/// Exit status: bad input or unusable environment.
const BAD: i32 = 2;

#[derive(Parser)]
#[command(
    name = "ovlcheck",
    version,
    about = "Differential model checker for Linux overlay filesystems",
    long_about = "Compares a pure model of overlayfs semantics with a real overlay mount \
(the kernel's, fuse-overlayfs, or your own) on generated and hand-written cases.\n\n\
Exit status: 0 no divergence, 1 divergence found, 2 bad input or unusable environment."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate random cases, run them on model and backend, shrink and report divergences.
    Fuzz(FuzzArgs),
    /// Run every op sequence up to a depth over a small fixed universe (bounded model checking).
    Explore(ExploreArgs),
    /// Replay case files or folders of them (the corpus) against a backend.
    Replay(ReplayArgs),
    /// Run one case with model and backend side by side.
    Run(RunArgs),
    /// Draw a case's layer stack before and after its ops as two tables.
    ///
    /// One row per path; columns: each lower layer bottom to top (then the
    /// layers `commit` steps made), the upper, and the merged view. "Before"
    /// is the case as written. "After" is the model's end state, or with
    /// --backend the layers that implementation left. Cells mark whiteouts, opaque dirs, redirects,
    /// copy-ups and metacopy files; a legend line follows the tables.
    #[command(mut_arg("backend", |a| {
        a.default_value("model").help(
            "Whose end state the after table shows: model (no mount), kernel, \
             fuse-overlayfs or exec (see --mount-cmd)",
        )
    }))]
    Show(ShowArgs),
    /// Print a case's image-layer changeset: the OCI tar entries a store's
    /// Diff makes of its container layer after the ops.
    ///
    /// The model's prediction beside the entries the backend's store wrote
    /// (one line per tar entry; `.wh.` whiteouts and `.wh..wh..opq` opaque
    /// markers explained; '<' model only, '>' store only), then whether the
    /// changeset, applied as a new layer and mounted, shows the tree the
    /// model predicts. With --backend model, the prediction alone.
    #[command(mut_arg("backend", |a| {
        a.default_value("kernel").help(
            "Whose store writes the changeset: kernel, fuse-overlayfs, exec (see --mount-cmd), \
             or model (the prediction alone)",
        )
    }))]
    Diff(ShowArgs),
    /// Print a standalone shell script that reproduces a case without ovlcheck.
    Repro(CaseArg),
    /// Print case number I of a fuzz campaign (same --seed, --profile, --max-ops) as a .ovl file.
    Generate(GenerateArgs),
    /// Explain and check a real container store: a Docker data-root (or its
    /// overlay2/ folder), a containers/storage root (podman) or a containerd
    /// root.
    ///
    /// Draws images, containers (each stack as `show` draws a case) and
    /// every layer with its short link, lower file and parent chain, then
    /// lists each problem found with the path it is about. Exit status: 0 no
    /// problems, 1 problems, 2 not a store. With --case, writes one
    /// container's layers and upper as a .ovl case instead (docs/inspect.md).
    Inspect(InspectArgs),
}

#[derive(Args)]
struct InspectArgs {
    /// The store's directory.
    dir: PathBuf,
    /// Write this container (id, unique id prefix or name) as a .ovl case
    /// to stdout: its lower layers bottom first, its read-write layer as
    /// the upper; what a case cannot hold is named on stderr.
    #[arg(long, value_name = "CONTAINER")]
    case: Option<String>,
    /// Print the report as one JSON object.
    #[arg(long, conflicts_with = "case")]
    json: bool,
}

#[derive(Args)]
struct GenerateArgs {
    /// Case index within the campaign (as reported by fuzz: "case #I").
    #[arg(long)]
    index: u64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Profile preset, or `all` (the fuzz default: rotates by index).
    #[arg(long, default_value = "all")]
    profile: String,
    #[arg(long, default_value_t = 20)]
    max_ops: usize,
    /// The kernel the case is for, MAJOR.MINOR, as a vm campaign's cases
    /// name it (`kernel=` in their profile); default the host's.
    #[arg(long, value_parser = parse_kernel_version)]
    kernel_version: Option<KernelVersion>,
    /// The case as a campaign on a container engine makes it: lower
    /// layers an image can carry, an empty container layer.
    #[arg(long)]
    image_layers: bool,
    /// The case as a campaign on the model or vm backend makes it: one
    /// case in four names its own `fs.protected_*` settings.
    #[arg(long)]
    sysctls: bool,
}

/// Whether a `--profile` names `fs.protected_*` settings itself
/// (`protected_symlinks=1`): its campaign keeps them in every case.
fn names_sysctls(profile: &str) -> bool {
    profile
        .split_whitespace()
        .any(|option| option.starts_with("protected_"))
}

/// Prints a report for people: on stdout, or on stderr with `--json`,
/// whose summary is then the only thing on stdout.
macro_rules! say {
    ($json:expr, $($arg:tt)*) => {
        match $json {
            true => eprintln!($($arg)*),
            false => println!($($arg)*),
        }
    };
}

fn parse_kernel_version(s: &str) -> Result<KernelVersion, String> {
    KernelVersion::parse(s).ok_or_else(|| format!("`{s}` is not MAJOR.MINOR"))
}

#[derive(Args, Clone)]
struct BackendArgs {
    /// Implementation to check: kernel, fuse-overlayfs, exec (your own, see --mount-cmd), docker (a Docker engine's overlay2, see --engine-socket), podman (containers/storage's overlay through podman's service), containerd (its overlayfs snapshotter, through ctr), vm (another kernel under qemu, see --kernel) or model (no mount).
    #[arg(long, default_value = "kernel")]
    backend: String,
    /// exec backend: mount command template with {lowerdir} {upperdir} {workdir} {target}.
    #[arg(long)]
    mount_cmd: Option<String>,
    /// exec backend: unmount command template with {target}.
    #[arg(long, default_value = "umount {target}")]
    umount_cmd: String,
    /// docker, podman and containerd backends: the engine's API socket
    /// (default: $DOCKER_HOST, $CONTAINER_HOST or $CONTAINERD_ADDRESS, else
    /// a private dockerd, `podman system service` or containerd started in a
    /// scratch directory and stopped at the end).
    #[arg(long)]
    engine_socket: Option<String>,
    /// vm backend: the guest kernel, a bzImage (vmlinuz) or a vmlinux
    /// (docs/vm.md).
    #[arg(long)]
    kernel: Option<PathBuf>,
    /// vm backend: an initrd unpacked in the guest before ovlcheck's own.
    #[arg(long)]
    initrd: Option<PathBuf>,
    /// vm backend: the guest kernel's module tree holding overlay.ko
    /// (default: /lib/modules/RELEASE of the image).
    #[arg(long)]
    modules: Option<PathBuf>,
    /// vm backend: qemu's accelerator, tcg or kvm.
    #[arg(long, default_value = "tcg")]
    accel: String,
    /// What is compared: posix, layout or kernel (default: kernel for the
    /// kernel and the model, layout for fuse-overlayfs and the engines, posix for exec).
    #[arg(long, value_parser = parse_contract)]
    contract: Option<Contract>,
}

impl BackendArgs {
    /// The contract asked for, or the backend's default.
    fn contract(&self, backend: &dyn Backend) -> Contract {
        self.contract
            .unwrap_or_else(|| Contract::default_for(backend.kind()))
    }
}

fn parse_contract(s: &str) -> Result<Contract, String> {
    Contract::from_name(s)
        .ok_or_else(|| format!("unknown contract `{s}`: use posix, layout or kernel"))
}

#[derive(Args, Clone)]
struct KnownArgs {
    /// Also fail (exit 1) on known divergences and on known cases that no
    /// longer diverge.
    #[arg(long)]
    strict: bool,
    /// Folders or files of known cases (`known` lines); default: ./corpus.
    #[arg(long)]
    known: Vec<PathBuf>,
}

/// The known cases `--known` names (default: ./corpus) for `backend`.
fn load_known(a: &KnownArgs, backend: &str) -> Result<KnownSet, corpus::LoadError> {
    let paths = if a.known.is_empty() {
        ovlcheck_harness::known::default_paths()
    } else {
        a.known.clone()
    };
    KnownSet::load(&paths, backend)
}

#[derive(Args)]
struct FuzzArgs {
    #[command(flatten)]
    backend: BackendArgs,
    /// Mount profile (a preset, see --help) or `all` to rotate through every preset.
    #[arg(long, default_value = "all", long_help = profile_help())]
    profile: String,
    /// Number of cases in the whole campaign (all shards together).
    #[arg(long, default_value_t = 2000)]
    cases: u64,
    /// Campaign seed: the same seed gives the same cases and the same report.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Most steps per generated case (the mean is about half).
    #[arg(long, default_value_t = 20)]
    max_ops: usize,
    /// Worker threads (results do not depend on it).
    #[arg(long, default_value_t = default_jobs())]
    jobs: usize,
    /// Run only shard I of N (cases with index = I mod N), e.g. 0/4.
    #[arg(long, value_parser = Shard::parse)]
    shard: Option<Shard>,
    /// Save each minimized divergence as a .ovl file in this folder.
    #[arg(long)]
    save: Option<PathBuf>,
    #[command(flatten)]
    known: KnownArgs,
    /// Most distinct divergences to shrink and report.
    #[arg(long, default_value_t = 10)]
    max_reported: usize,
    /// Run up to N cases of one profile in one overlay mount, each beneath
    /// its own directory of every layer (docs/performance.md, "Packing");
    /// a packed case that diverges is run again alone and judged by that
    /// run. 1 runs every case alone.
    #[arg(long, default_value_t = 1, value_parser = parse_pack)]
    pack: usize,
    /// Skip the export check (the container layer as an OCI layer tar,
    /// applied and mounted; docs/images.md), e.g. to measure its cost.
    #[arg(long)]
    no_export: bool,
    /// Print one JSON summary object as the last line of stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct ExploreArgs {
    #[command(flatten)]
    backend: BackendArgs,
    /// Longest op sequence.
    #[arg(long, default_value_t = 2)]
    depth: usize,
    /// Mount profile preset.
    #[arg(long, default_value = "default", long_help = profile_help())]
    profile: String,
    #[arg(long, default_value_t = default_jobs())]
    jobs: usize,
    /// Save each new divergence as a .ovl file in this folder.
    #[arg(long)]
    save: Option<PathBuf>,
    #[command(flatten)]
    known: KnownArgs,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct ReplayArgs {
    /// Case files or folders (searched recursively for *.ovl).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    #[command(flatten)]
    backend: BackendArgs,
    /// Also fail (exit 1) on known divergences and on known cases that no
    /// longer diverge.
    #[arg(long)]
    strict: bool,
    /// Run each case this many times (to catch a divergence that depends
    /// on timing, or to measure one case's rate).
    #[arg(long, default_value_t = 1)]
    repeat: usize,
    /// Threads running cases at once (results are reported in file order).
    #[arg(long, default_value_t = 1)]
    jobs: usize,
    /// Run up to N consecutive runs of one profile in one overlay mount
    /// (as `fuzz --pack`).
    #[arg(long, default_value_t = 1, value_parser = parse_pack)]
    pack: usize,
    #[arg(long)]
    json: bool,
}

/// `--pack N`: 1 to [`ovlcheck_driver::pack::MAX_PACK`].
fn parse_pack(s: &str) -> Result<usize, String> {
    let max = ovlcheck_driver::pack::MAX_PACK;
    match s.parse::<usize>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(format!("expected a number of cases from 1 to {max}")),
    }
}

#[derive(Args)]
struct RunArgs {
    /// The case file.
    case: PathBuf,
    #[command(flatten)]
    backend: BackendArgs,
    /// Print the case with every step pinned to the backend's observed
    /// outcome (how corpus cases get their `=>` pins) instead of the table.
    #[arg(long)]
    pin: bool,
}

#[derive(Args)]
struct ShowArgs {
    /// The case file.
    case: PathBuf,
    #[command(flatten)]
    backend: BackendArgs,
}

#[derive(Args)]
struct CaseArg {
    /// The case file.
    case: PathBuf,
}

fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn profile_help() -> String {
    let mut s = String::from("Mount profile. Presets:\n");
    for p in PRESETS {
        s.push_str(&format!("  {:<10} {}\n", p.name, p.help));
    }
    s.push_str("  all        rotate through every preset (fuzz only)\n");
    s.push_str(
        "or profile options, as a case's `profile` line takes them (\"idmapped=on index=on\")",
    );
    s
}

/// Runs the CLI and returns the exit status.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { BAD } else { OK };
        }
    };
    let stop = install_signal_handlers();
    match cli.command {
        Command::Fuzz(a) => fuzz(a, &stop),
        Command::Explore(a) => explore_cmd(a, &stop),
        Command::Replay(a) => replay(a, &stop),
        Command::Run(a) => run_one(a),
        Command::Show(a) => match make_backend(&a.backend) {
            Ok(b) => with_case(&a.case, |c| show::tables(c, &*b).map(|t| print!("{t}"))),
            Err(e) => fail(e),
        },
        Command::Diff(a) => match make_backend(&a.backend) {
            Ok(b) => with_case(&a.case, |c| changes::listing(c, &*b).map(|t| print!("{t}"))),
            Err(e) => fail(e),
        },
        Command::Repro(a) => with_case(&a.case, |c| repro::script(c).map(|t| print!("{t}"))),
        Command::Generate(a) => generate(a),
        Command::Inspect(a) => inspect_cmd(a),
    }
}

fn inspect_cmd(a: InspectArgs) -> i32 {
    if let Some(sel) = &a.case {
        let store = match inspect::read(&a.dir) {
            Ok(s) => s,
            Err(e) => return fail(e),
        };
        let container = match store.find_container(sel) {
            Ok(c) => c,
            Err(e) => return fail(e),
        };
        return match inspect::export::container_case(&store, container) {
            Ok((case, warnings)) => {
                for w in warnings {
                    eprintln!("ovlcheck: {w}");
                }
                let text = print_case(&case);
                // What is printed must parse back: a store too big for the
                // format's limits is refused instead.
                if let Err(e) = ovlcheck_case::parse_case("exported case", &text) {
                    return fail(format!(
                        "container {} does not fit the case format: {e}",
                        container.name
                    ));
                }
                print!(
                    "# container {} {} of {} store {}\n{text}",
                    container.name,
                    container.id,
                    store.kind,
                    store.root.display(),
                );
                OK
            }
            Err(e) => fail(e),
        };
    }
    let store = match inspect::inspect(&a.dir) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    if a.json {
        match serde_json::to_string(&store) {
            Ok(j) => println!("{j}"),
            Err(e) => return fail(e),
        }
    } else {
        print!("{}", inspect::draw::render(&store));
    }
    if store.problems.is_empty() {
        OK
    } else {
        DIVERGED
    }
}

/// SIGINT and SIGTERM set a flag: the run stops at the next case boundary,
/// prints the summary so far and keeps what it found. A second signal
/// terminates at once (the driver's workers die with the process).
fn install_signal_handlers() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let _ = signal_hook::flag::register_conditional_shutdown(sig, 130, Arc::clone(&stop));
        let _ = signal_hook::flag::register(sig, Arc::clone(&stop));
    }
    stop
}

fn make_backend(a: &BackendArgs) -> Result<Box<dyn Backend>, String> {
    match a.backend.as_str() {
        "model" => Ok(Box::new(ModelBackend)),
        "docker" => ovlcheck_engine::DockerBackend::new(
            a.engine_socket.as_deref(),
            ovlcheck_driver::BackendOptions::default(),
        )
        .map(|b| Box::new(b) as Box<dyn Backend>)
        .map_err(|e| e.to_string()),
        "podman" => ovlcheck_engine::PodmanBackend::new(
            a.engine_socket.as_deref(),
            ovlcheck_driver::BackendOptions::default(),
        )
        .map(|b| Box::new(b) as Box<dyn Backend>)
        .map_err(|e| e.to_string()),
        "containerd" => ovlcheck_engine::ContainerdBackend::new(
            a.engine_socket.as_deref(),
            ovlcheck_driver::BackendOptions::default(),
        )
        .map(|b| Box::new(b) as Box<dyn Backend>)
        .map_err(|e| e.to_string()),
        "vm" => {
            let kernel = a
                .kernel
                .clone()
                .ok_or("the vm backend needs --kernel PATH (a bzImage or vmlinux)")?;
            let mut opts = ovlcheck_vm::VmOptions::new(kernel);
            opts.initrd = a.initrd.clone();
            opts.modules = a.modules.clone();
            opts.accel = a.accel.clone();
            let b = ovlcheck_vm::VmBackend::new(opts).map_err(|e| e.to_string())?;
            eprintln!("ovlcheck: {}", b.describe());
            for note in ovlcheck_vm::version_notes(&b) {
                eprintln!("ovlcheck: vm: {note}");
            }
            Ok(Box::new(b))
        }
        "exec" if a.mount_cmd.is_none() => {
            Err("the exec backend needs --mount-cmd (see --help)".into())
        }
        name => {
            let opts = ovlcheck_driver::BackendOptions {
                mount_template: a.mount_cmd.clone(),
                umount_template: Some(a.umount_cmd.clone()),
                ..Default::default()
            };
            let backend =
                ovlcheck_driver::backend_by_name(name, &opts).map_err(|e| e.to_string())?;
            if let Some(kind) = ovlcheck_driver::BackendKind::from_name(name) {
                ovlcheck_driver::check_environment(kind).map_err(|e| e.to_string())?;
            }
            Ok(backend)
        }
    }
}

/// The profiles `--profile all` rotates through on `backend`: every
/// preset it runs, in preset order; where the harness is not root
/// ([`rootless_ids`]), a preset it cannot run is run as its userxattr form
/// (overlayfs.rst, "User xattr": what an unprivileged user mounts) when
/// that is a valid profile the backend runs, and left out otherwise.
/// Duplicates are dropped, so that no profile counts twice.
fn campaign_profiles(backend: &dyn Backend) -> Vec<Profile> {
    let runs = |p: &Profile| backend.adapt_profile(p).is_ok();
    rotation_of(&runs, rootless_ids(backend).is_some())
}

/// [`campaign_profiles`] for a backend that `runs` the profiles it does.
fn rotation_of(runs_profile: &dyn Fn(&Profile) -> bool, rootless: bool) -> Vec<Profile> {
    let mut runs: Vec<Profile> = Vec::new();
    for preset in PRESETS {
        let p = Profile::preset(preset.name).expect("every preset parses");
        let unprivileged = || {
            let mut u = p.clone();
            u.userxattr = true;
            // userxattr follows no redirect whatever redirect_dir says
            // (params.c: ovl_fs_params_verify), so `nofollow` adds nothing.
            if u.redirect_dir == ovlcheck_case::RedirectDir::NoFollow {
                u.redirect_dir = ovlcheck_case::RedirectDir::Follow;
            }
            u.validate().ok().map(|()| u)
        };
        let run = if runs_profile(&p) {
            Some(p.clone())
        } else if rootless {
            unprivileged().filter(|u| runs_profile(u))
        } else {
            None
        };
        if let Some(run) = run.filter(|r| !runs.contains(r)) {
            runs.push(run);
        }
    }
    runs
}

/// `--profile all` on `backend`: one profile where it runs one (a
/// container engine mounts its own way), else the rotation
/// ([`campaign_profiles`]), empty where that is every preset.
fn all_profiles(backend: &dyn Backend) -> (Option<Profile>, Vec<Profile>) {
    rotation_or_one(campaign_profiles(backend))
}

/// One profile where `runs` has one, else the rotation `runs`, empty where
/// that is every preset.
fn rotation_or_one(runs: Vec<Profile>) -> (Option<Profile>, Vec<Profile>) {
    let every: Vec<Profile> = PRESETS
        .iter()
        .filter_map(|p| Profile::preset(p.name))
        .collect();
    match runs.as_slice() {
        [one] => (Some(one.clone()), Vec::new()),
        _ if runs == every => (None, Vec::new()),
        _ => (None, runs),
    }
}

/// The ids a harness that is not root can give its cases on a mounted
/// backend: those its user namespaces map (driver/src/idmap.rs).
fn rootless_ids(backend: &dyn Backend) -> Option<u32> {
    let mounted = matches!(
        backend.kind(),
        BackendKind::Kernel | BackendKind::FuseOverlayfs | BackendKind::Exec
    );
    let map = ovlcheck_driver::idmap::IdMap::current();
    (mounted && *map != ovlcheck_driver::idmap::IdMap::Root).then(|| map.mapped())
}

/// A preset name, or profile options as a case's `profile` line takes
/// them (`"idmapped=on metacopy=on"`).
fn parse_profile(name: &str) -> Result<Profile, String> {
    if let Some(p) = Profile::preset(name) {
        return Ok(p);
    }
    if name.trim().is_empty() {
        return Err("an empty profile: give a preset or profile options".into());
    }
    let mut p = Profile::default();
    for word in name.split_whitespace() {
        p.set_option(word).map_err(|why| {
            let names: Vec<&str> = PRESETS.iter().map(|p| p.name).collect();
            format!(
                "unknown profile `{name}` ({word}: {why}); give a preset ({}) or profile \
                 options (e.g. `redirect_dir=on index=on`)",
                names.join(", ")
            )
        })?;
    }
    p.validate()
        .map_err(|why| format!("profile `{name}`: {why}"))?;
    Ok(p)
}

fn fail(msg: impl std::fmt::Display) -> i32 {
    eprintln!("ovlcheck: {msg}");
    BAD
}

fn progress_bar(len: u64) -> Option<ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:40}] {pos}/{len} cases  {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    Some(pb)
}

fn fuzz(a: FuzzArgs, stop: &AtomicBool) -> i32 {
    let backend = match make_backend(&a.backend) {
        Ok(b) => b,
        Err(e) => return fail(e),
    };
    let (profile, rotation) = match a.profile.as_str() {
        "all" => all_profiles(&*backend),
        name => match parse_profile(name) {
            Ok(p) => (Some(p), Vec::new()),
            Err(e) => return fail(e),
        },
    };
    if let Some(p) = &profile {
        if let Err(why) = backend.adapt_profile(p) {
            return fail(format!("{}: profile {}: {why}", backend.name(), a.profile));
        }
    }
    if rootless_ids(&*backend).is_some() {
        let runs = match (&profile, rotation.as_slice()) {
            (Some(p), _) => p.to_string(),
            (None, r) => r
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(", "),
        };
        eprintln!(
            "not root: every case runs in a user namespace ({}), on the profiles an \
             unprivileged user can mount: {runs}",
            ovlcheck_driver::idmap::IdMap::current().describe()
        );
    }
    let known = match load_known(&a.known, backend.name()) {
        Ok(k) => k,
        Err(e) => return fail(e),
    };
    let contract = a.backend.contract(&*backend);
    let shard = a.shard.unwrap_or(Shard::ALL);
    // The guest's kernel on the vm backend: cases are made for it.
    let kernel = backend
        .adapt_profile(&Profile::default())
        .ok()
        .and_then(|p| p.kernel);
    let opts = FuzzOptions {
        seed: a.seed,
        cases: a.cases,
        gen: GenConfig {
            profile,
            rotation,
            max_ops: a.max_ops.max(1),
            kernel,
            ids: rootless_ids(&*backend),
            image_layers: backend.kind().is_engine(),
            sysctls: backend.kind().runs_own_sysctls() && !names_sysctls(&a.profile),
            ..GenConfig::default()
        },
        jobs: a.jobs.max(1),
        shard,
        max_reported: a.max_reported,
        shrink_runs: 3000,
        contract,
        known,
        export: !a.no_export,
        pack: a.pack,
    };
    let total = shard.indices(a.cases).len() as u64;
    let pb = progress_bar(total);
    let tick = |r: &campaign::CaseResult| {
        if let Some(pb) = &pb {
            pb.inc(1);
            if r.diverged && !r.known {
                pb.set_message("divergence found");
            }
        }
    };
    let result = campaign::fuzz(&*backend, &opts, stop, &tick);
    if let Some(pb) = &pb {
        pb.finish_and_clear();
    }
    let c = match result {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    for (index, msg) in &c.failures {
        eprintln!("case #{index}: {msg}");
    }
    let mut saved = Vec::new();
    for f in &c.findings {
        say!(a.json, "{}", report::render(&f.divergence, backend.name()));
        if backend.kind() == ovlcheck_driver::BackendKind::Vm {
            say!(a.json, "{}", on_host_kernel(&f.divergence.case, contract));
        }
        say!(
            a.json,
            "(case #{} of seed {}, shrunk from {} to {} steps+entries in {} runs)\n",
            f.index,
            a.seed,
            f.original_size,
            campaign::case_size(&f.divergence.case),
            f.shrink_runs
        );
        if let Some(dir) = &a.save {
            match save_case(dir, &f.divergence.case) {
                Ok(p) => saved.push(p),
                Err(e) => return fail(e),
            }
        }
    }
    let known = c.known();
    for k in &known {
        say!(
            a.json,
            "known divergence: {} ({} cases; {})",
            k.signature,
            k.cases,
            k.case
        );
    }
    // `all` on a backend that runs one preset names that preset.
    let ran = match &opts.gen.profile {
        Some(p) if a.profile == "all" => p.preset_name().unwrap_or("all"),
        _ => a.profile.as_str(),
    };
    let header = Header {
        backend: backend.name(),
        contract,
        profile: ran,
    };
    let mut summary = Summary::of_campaign(&header, &c, &opts, saved);
    if let Some(r) = backend.kernel_release() {
        summary.kernel = r;
    }
    print_summary(&summary, a.json);
    summary.status(a.known.strict)
}

fn save_case(dir: &Path, case: &Case) -> Result<String, String> {
    let text = format!(
        "# saved by ovlcheck: backend outcomes pinned\n{}",
        print_case(case)
    );
    corpus::save(dir, case, &text)
        .map(|p| p.display().to_string())
        .map_err(|e| format!("cannot save to {}: {e}", dir.display()))
}

fn print_summary(s: &Summary, json: bool) {
    let fixed = if s.fixed.is_empty() {
        String::new()
    } else {
        format!(", {} known cases fixed", s.fixed.len())
    };
    let unsupported = if s.unsupported > 0 {
        format!(", {} unsupported", s.unsupported)
    } else {
        String::new()
    };
    eprintln!(
        "{}: {} cases, {} ops, {} divergent cases ({} new, {} known; {} distinct){fixed}{unsupported}, {} backend failures ({} contract), {} exported and applied ({} naive), {:.1}s ({} cases/s){}",
        s.command,
        s.cases,
        s.ops,
        s.divergences,
        s.new_divergences,
        s.known_divergences,
        s.distinct,
        s.backend_failures,
        s.contract,
        s.exported,
        s.exported_naive,
        s.elapsed_s,
        s.cases_per_s,
        if s.interrupted { ", INTERRUPTED" } else { "" }
    );
    if let Some(p) = &s.packed {
        eprintln!(
            "packed: {} cases shared mounts of up to {}; {} of them diverged there and were run again alone",
            p.cases, p.pack, p.run_again_alone
        );
    }
    if let Some(rules) = &s.rules {
        for line in rules.lines() {
            eprintln!("{line}");
        }
    }
    if json {
        println!("{}", s.to_json());
    }
}

fn explore_cmd(a: ExploreArgs, stop: &AtomicBool) -> i32 {
    let backend = match make_backend(&a.backend) {
        Ok(b) => b,
        Err(e) => return fail(e),
    };
    let profile = match parse_profile(&a.profile) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    let known = match load_known(&a.known, backend.name()) {
        Ok(k) => k,
        Err(e) => return fail(e),
    };
    let start = Instant::now();
    let x = match explore::explore(&*backend, &profile, a.depth, a.jobs.max(1), stop) {
        Ok(x) => x,
        Err(e) => return fail(e),
    };
    let mut saved = Vec::new();
    let contract = Contract::default_for(backend.kind());
    let matching = |d: &Divergence| {
        known
            .matching_on(&*backend, (contract, true), d)
            .map(Path::to_path_buf)
    };
    let new: Vec<&Divergence> = x
        .divergences
        .iter()
        .filter(|d| matching(d).is_none())
        .collect();
    for d in new.iter().take(10) {
        say!(a.json, "{}", report::render(d, backend.name()));
    }
    if let Some(dir) = &a.save {
        for d in &new {
            match save_case(dir, &d.case) {
                Ok(p) => saved.push(p),
                Err(e) => return fail(e),
            }
        }
    }
    let header = Header {
        backend: backend.name(),
        contract: Contract::default_for(backend.kind()),
        profile: &a.profile,
    };
    let interrupted = stop.load(Ordering::SeqCst);
    let mut summary = Summary::of_exploration(
        &header,
        &x,
        &matching,
        a.jobs.max(1),
        saved,
        interrupted,
        start.elapsed(),
    );
    for k in &summary.known {
        say!(
            a.json,
            "known divergence: {} ({} cases; {})",
            k.signature,
            k.cases,
            k.case
        );
    }
    if let Some(r) = backend.kernel_release() {
        summary.kernel = r;
    }
    print_summary(&summary, a.json);
    summary.status(a.known.strict)
}

fn replay(a: ReplayArgs, stop: &AtomicBool) -> i32 {
    let backend = match make_backend(&a.backend) {
        Ok(b) => b,
        Err(e) => return fail(e),
    };
    let contract = a.backend.contract(&*backend);
    let name = backend.name().to_string();
    let opts = replay::ReplayOptions {
        contract,
        repeat: a.repeat.max(1),
        jobs: a.jobs.max(1),
        pack: a.pack,
    };
    let r = match replay::replay(&*backend, &a.paths, opts, stop) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let host_check = (backend.kind() == ovlcheck_driver::BackendKind::Vm).then_some(contract);
    for runs in r.cases.chunk_by(|x, y| x.0 == y.0) {
        print_replayed(&runs[0].0, runs, &name, host_check, a.json);
    }
    let header = Header {
        backend: &name,
        contract,
        profile: "per-case",
    };
    let mut summary = Summary::of_replay(&header, &r);
    if let Some(r) = backend.kernel_release() {
        summary.kernel = r;
    }
    print_summary(&summary, a.json);
    summary.status(a.strict)
}

/// For a divergence found on a guest kernel (the vm backend, docs/vm.md):
/// whether the host kernel shows it too, so a report tells a difference of
/// the guest's kernel from one the model has with every kernel.
fn on_host_kernel(case: &Case, contract: Contract) -> String {
    let release = ovlcheck_driver::kernel_release();
    let host = match ovlcheck_driver::check_environment(ovlcheck_driver::BackendKind::Kernel)
        .and_then(|()| ovlcheck_driver::backend_by_name("kernel", &Default::default()))
    {
        Ok(b) => b,
        Err(e) => return format!("host kernel {release}: not run ({e})"),
    };
    let case = match ovlcheck_harness::runner::adapted(&*host, case) {
        Ok(c) => c,
        Err(why) => return format!("host kernel {release}: not run ({why})"),
    };
    match run_case_under(&*host, &case, contract) {
        Ok(run) => match run.divergence {
            Some(d) => format!(
                "host kernel {release}: diverges too ({}): not a difference of the guest's kernel",
                d.signature()
            ),
            None => format!(
                "host kernel {release}: agrees with the model: a difference of the guest's kernel"
            ),
        },
        Err(e) => format!("host kernel {release}: not run ({e})"),
    }
}

/// One case file's runs: the first new divergence in full, the rest as one
/// line (with counts when the case ran more than once).
fn print_replayed(
    path: &Path,
    runs: &[(PathBuf, Replayed)],
    backend: &str,
    host_check: Option<Contract>,
    json: bool,
) {
    let path = path.display();
    let mut counts: Vec<(String, usize)> = Vec::new();
    let mut shown = false;
    for (_, r) in runs {
        let word = match r {
            Replayed::Judged {
                verdict,
                divergence,
            } => {
                let sig = divergence.as_ref().map(|d| d.signature().to_string());
                match verdict {
                    Verdict::Agrees => "ok".to_string(),
                    Verdict::Known => format!("known ({})", sig.unwrap_or_default()),
                    Verdict::Fixed => format!("FIXED: known to diverge on {backend}, now agrees"),
                    Verdict::New => {
                        if let (Some(d), false) = (divergence, shown) {
                            say!(json, "{path}: FAIL\n{}", report::render(d, backend));
                            if let Some(contract) = host_check {
                                say!(json, "{}\n", on_host_kernel(&d.case, contract));
                            }
                            shown = true;
                        }
                        format!("FAIL ({})", sig.unwrap_or_default())
                    }
                }
            }
            Replayed::Unsupported(why) => format!("not run: {why}"),
            Replayed::Failed(e) => format!("backend failure: {e}"),
        };
        match counts.iter_mut().find(|(w, _)| *w == word) {
            Some((_, n)) => *n += 1,
            None => counts.push((word, 1)),
        }
    }
    let line: Vec<String> = counts
        .into_iter()
        .map(|(w, n)| {
            if runs.len() > 1 {
                format!("{n}x {w}")
            } else {
                w
            }
        })
        .collect();
    eprintln!("{path}: {}", line.join(", "));
}

fn run_one(a: RunArgs) -> i32 {
    let (case, header) = match corpus::load_case_with_header(&a.case) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let backend = match make_backend(&a.backend) {
        Ok(b) => b,
        Err(e) => return fail(e),
    };
    // Pinning replaces whatever the file pins; outcomes pinned under
    // another profile than the backend runs say nothing.
    let case = match ovlcheck_harness::runner::adapted(&*backend, &case) {
        Ok(c) if a.pin => c.unpinned(),
        Ok(c) => c,
        Err(why) => return fail(format!("{}: {}: {why}", a.case.display(), backend.name())),
    };
    let contract = a.backend.contract(&*backend);
    match run_case_under(&*backend, &case, contract) {
        Ok(run) if a.pin => {
            let mut pinned = case.clone();
            for (step, seen) in pinned.steps.iter_mut().zip(&run.observed) {
                step.expect = Some(seen.clone());
            }
            print!("{header}{}", print_case(&pinned));
            if run.divergence.is_some() {
                eprintln!("ovlcheck: the model diverges from {} on this case (run without --pin for the report)", backend.name());
                DIVERGED
            } else {
                OK
            }
        }
        Ok(run) => match run.divergence {
            Some(d) => {
                println!("{}", report::render(&d, backend.name()));
                DIVERGED
            }
            None => {
                println!(
                    "profile: {}   backend: {}   contract: {}\n",
                    case.profile,
                    backend.name(),
                    contract.name()
                );
                print!(
                    "{}",
                    report::steps_table(&case, &run.predicted, &run.observed, None)
                );
                println!("\nno divergence: outcomes, merged view, upper view, after remount and after commit all agree");
                OK
            }
        },
        Err(RunError::Backend(e)) => fail(e),
        Err(RunError::BadCase(m)) => fail(format!("{}: {m}", a.case.display())),
    }
}

fn with_case(path: &Path, f: impl FnOnce(&Case) -> Result<(), String>) -> i32 {
    match corpus::load_case(path) {
        Ok(c) => match f(&c) {
            Ok(()) => OK,
            Err(e) => fail(format!("{}: {e}", path.display())),
        },
        Err(e) => fail(e),
    }
}

fn generate(a: GenerateArgs) -> i32 {
    // As `fuzz` on the kernel backend makes them: a harness that is not
    // root rotates through the profiles it can mount, with the ids its
    // user namespaces map.
    let map = ovlcheck_driver::idmap::IdMap::current();
    let rootless = *map != ovlcheck_driver::idmap::IdMap::Root;
    let (profile, rotation) = match a.profile.as_str() {
        "all" if rootless => {
            let kernel = |p: &Profile| {
                ovlcheck_driver::support::adapt_profile(ovlcheck_driver::BackendKind::Kernel, p)
                    .is_ok()
            };
            rotation_or_one(rotation_of(&kernel, true))
        }
        "all" => (None, Vec::new()),
        name => match parse_profile(name) {
            Ok(p) => (Some(p), Vec::new()),
            Err(e) => return fail(e),
        },
    };
    let gen = GenConfig {
        profile,
        rotation,
        max_ops: a.max_ops.max(1),
        kernel: a.kernel_version,
        ids: rootless.then(|| map.mapped()),
        image_layers: a.image_layers,
        sysctls: a.sysctls,
        ..GenConfig::default()
    };
    let case = ovlcheck_harness::gen::case_at(&gen, a.seed, a.index);
    print!(
        "# case #{} of seed {}\n{}",
        a.index,
        a.seed,
        print_case(&case)
    );
    OK
}
