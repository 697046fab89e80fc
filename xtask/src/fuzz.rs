//! `cargo xtask fuzz`: the property and differential tests at depth, then coverage-guided fuzzing
//! of every place meshd reads bytes from outside the process (`tests/fuzz`, with cargo-afl).
//!
//! The properties are the test command's own (`PROPTEST_CASES` deepens every one of them: see
//! `tests/src/depth.rs`), run as one process per core, each with its share of the cases and its
//! own random seed; a failure is shrunk and kept in the test's `.proptest-regressions` file, as
//! the test command does. The AFL targets run one at a time for a bounded time (and number of
//! executions); their corpora live under `target/fuzz/out/` and grow from one run to the next;
//! a crash is copied to `tests/fuzz/regressions/TARGET/` and replayed before every later run.
//!
//! Everything runs under `nice -n 10`: the machines are shared.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use super::{target_dir, workspace_root};

pub const USAGE: &str = "  fuzz [--cases N] [--minutes M] [--target T]... [--no-properties] [--no-afl] [--dev]
                          every property test with N cases each (default 1000000, split over
                          the cores; release build, or the test command's with --dev), then each AFL target (tests/fuzz) for M minutes (default
                          10) or N executions, whichever comes first; installs cargo-afl when
                          missing. Targets: gossip_udp gossip_tcp raft dns_fast api cni docker
                          config";

/// The property and differential tests: (package, cargo test selection, test name filter).
const PROPERTIES: [(&str, &[&str], &str); 6] = [
    ("meshd", &["--test", "fuzz_decoders"], ""),
    ("meshd", &["--test", "fuzz_runtimes"], ""),
    ("meshd", &["--lib"], "monitor::event::tests::any_record_decodes_or_is_refused"),
    ("meshd", &["--lib"], "reconcile::incremental::tests::incremental_equals_full"),
    ("meshd-dns", &["--test", "fuzz_fast"], ""),
    ("meshd-dns", &["--test", "fuzz_handler"], ""),
];

/// The AFL targets (`meshd-fuzz TARGET`), in the order they run.
pub const TARGETS: [&str; 8] =
    ["gossip_udp", "gossip_tcp", "raft", "dns_fast", "api", "cni", "docker", "config"];

struct Options {
    cases: u64,
    minutes: u64,
    targets: Vec<String>,
    properties: bool,
    afl: bool,
    /// The properties in the dev profile: no release build, slower cases.
    dev: bool,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut options = Options {
        cases: 1_000_000,
        minutes: 10,
        targets: Vec::new(),
        properties: true,
        afl: true,
        dev: false,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value")).cloned();
        match arg.as_str() {
            "--cases" => options.cases = value("--cases")?.parse().map_err(|e| format!("--cases: {e}"))?,
            "--minutes" => {
                options.minutes = value("--minutes")?.parse().map_err(|e| format!("--minutes: {e}"))?
            }
            "--target" => {
                let target = value("--target")?;
                if !TARGETS.contains(&target.as_str()) {
                    return Err(format!("unknown target {target:?} (targets: {})", TARGETS.join(" ")));
                }
                options.targets.push(target);
            }
            "--no-properties" => options.properties = false,
            "--no-afl" => options.afl = false,
            "--dev" => options.dev = true,
            other => return Err(format!("unknown option {other:?}\n\n{USAGE}")),
        }
    }
    if options.targets.is_empty() {
        options.targets = TARGETS.iter().map(|t| t.to_string()).collect();
    }
    Ok(options)
}

pub fn fuzz(args: &[String]) -> Result<(), String> {
    let options = parse(args)?;
    if options.properties {
        // `cargo test` without a profile is the test command's build (the `test` profile), which
        // `--profile dev` would not reuse.
        properties(options.cases, if options.dev { &[] } else { &["--release"] })?;
    }
    if options.afl {
        afl(&options)?;
    }
    Ok(())
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

fn run(command: &mut Command, what: &str) -> Result<(), String> {
    let status = command.status().map_err(|e| format!("cannot run {what}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{what} failed ({status})"))
    }
}

fn niced(program: &str) -> Command {
    let mut command = Command::new("nice");
    command.args(["-n", "10", program]);
    command
}

fn properties(cases: u64, profile: &[&str]) -> Result<(), String> {
    let jobs = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    let share = cases.div_ceil(jobs).max(1);
    println!(
        "== properties: {cases} cases each, {jobs} processes of {share} ({} build)",
        if profile.is_empty() { "test" } else { "release" }
    );
    for (package, selection, _) in PROPERTIES {
        let mut build = niced(&cargo());
        build.arg("test").args(profile).args(["--locked", "--no-run", "-p", package]).args(selection);
        run(build.current_dir(workspace_root()), "the release build of the property tests")?;
    }
    let mut failed = Vec::new();
    println!("| property test | cases | seconds | cases/s | result |\n| --- | --- | --- | --- | --- |");
    for (package, selection, filter) in PROPERTIES {
        let name = if filter.is_empty() { selection[1].to_string() } else { filter.to_string() };
        let started = Instant::now();
        let children: Vec<_> = (0..jobs)
            .map(|_| {
                let mut command = niced(&cargo());
                command
                    .arg("test")
                    .args(profile)
                    .args(["--locked", "--quiet", "-p", package])
                    .args(selection)
                    .arg("--")
                    .args((!filter.is_empty()).then_some(filter))
                    .args(["--test-threads=1"])
                    .env("PROPTEST_CASES", share.to_string())
                    .current_dir(workspace_root())
                    .spawn()
            })
            .collect::<Result<_, _>>()
            .map_err(|e| format!("cannot run cargo test: {e}"))?;
        let mut ok = true;
        for mut child in children {
            ok &= child.wait().map_err(|e| format!("cargo test: {e}"))?.success();
        }
        let seconds = started.elapsed().as_secs_f64();
        let total = share * jobs;
        println!(
            "| {package} {name} | {total} | {seconds:.0} | {:.0} | {} |",
            total as f64 / seconds,
            if ok { "pass" } else { "FAIL (see the .proptest-regressions file)" }
        );
        if !ok {
            failed.push(name);
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("properties failed: {}", failed.join(", ")))
    }
}

fn fuzz_dir() -> PathBuf {
    target_dir().join("fuzz")
}

/// cargo-afl from crates.io when missing; it builds its AFL++ (fuzzer and runtime, one version)
/// for the toolchain in use.
fn ensure_cargo_afl() -> Result<(), String> {
    let present = Command::new(cargo()).args(["afl", "--version"]).output().is_ok_and(|o| o.status.success());
    if !present {
        println!("== installing cargo-afl");
        run(Command::new(cargo()).args(["install", "--locked", "cargo-afl"]), "cargo install cargo-afl")?;
    }
    // Builds AFL++ for this toolchain unless it is built already (then it says so and fails).
    let _ = Command::new(cargo()).args(["afl", "config", "--build"]).output();
    Ok(())
}

fn afl(options: &Options) -> Result<(), String> {
    ensure_cargo_afl()?;
    let manifest = workspace_root().join("tests/fuzz/Cargo.toml");
    let mut build = niced(&cargo());
    build
        .args(["afl", "build", "--release", "--locked", "--manifest-path"])
        .arg(&manifest)
        .env("CARGO_TARGET_DIR", fuzz_dir());
    run(&mut build, "cargo afl build")?;
    let binary = fuzz_dir().join("release/meshd-fuzz");
    let seeds = fuzz_dir().join("seeds");
    run(Command::new(&binary).arg("seeds").arg(&seeds), "meshd-fuzz seeds")?;

    let regressions = workspace_root().join("tests/fuzz/regressions");
    let mut rows = Vec::new();
    let mut findings = Vec::new();
    for target in &options.targets {
        // Earlier findings first: each must pass now.
        let kept = files(&regressions.join(target));
        if !kept.is_empty() {
            run(
                Command::new(&binary).args(["replay", target]).args(&kept),
                &format!("the {target} regressions"),
            )?;
        }
        let out = fuzz_dir().join("out").join(target);
        // afl-fuzz creates the output directory, not its parents.
        std::fs::create_dir_all(fuzz_dir().join("out"))
            .map_err(|e| format!("cannot create target/fuzz/out: {e}"))?;
        println!("== {target}: {} minutes or {} executions", options.minutes, options.cases);
        // A resumed run counts the executions of the earlier ones in -E: add them.
        let before: u64 = stat(&out, "execs_done").parse().unwrap_or(0);
        let mut command = niced(&cargo());
        command
            .args(["afl", "fuzz", "-i"])
            .arg(seeds.join(target))
            .arg("-o")
            .arg(&out)
            .args([
                "-V",
                &(options.minutes * 60).to_string(),
                "-E",
                &(before + options.cases).to_string(),
                "-t",
                "2000",
                "--",
            ])
            .arg(&binary)
            .arg(target)
            .env("AFL_NO_UI", "1")
            .env("AFL_AUTORESUME", "1")
            .env("AFL_NO_AFFINITY", "1")
            .env("AFL_SKIP_CPUFREQ", "1")
            .env("AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES", "1")
            .stdout(std::process::Stdio::null());
        run(&mut command, &format!("afl-fuzz on {target}"))?;
        let field = |name: &str| stat(&out, name);
        for crash in files(&out.join("default/crashes")) {
            // AFL's names (id:000000,sig:06,...) without the characters some file systems refuse.
            let name = crash.file_name().expect("a file").to_string_lossy().replace([':', ','], "_");
            let kept = regressions.join(target).join(name);
            std::fs::create_dir_all(kept.parent().expect("a dir")).map_err(|e| e.to_string())?;
            std::fs::copy(&crash, &kept).map_err(|e| format!("cannot keep {}: {e}", crash.display()))?;
            findings.push(kept);
        }
        let done: u64 = field("execs_done").parse().unwrap_or(0);
        rows.push(format!(
            "| {target} | {} (all runs: {done}) | {} | {} | {} / {} ({}) | {} | {} |",
            done.saturating_sub(before),
            field("run_time"),
            field("execs_per_sec"),
            field("edges_found"),
            field("total_edges"),
            field("bitmap_cvg"),
            field("corpus_count"),
            field("saved_crashes"),
        ));
    }
    println!("| target | executions | seconds | execs/s | edges | corpus | crashes |");
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for row in rows {
        println!("{row}");
    }
    if findings.is_empty() {
        Ok(())
    } else {
        let list: Vec<String> = findings.iter().map(|p| p.display().to_string()).collect();
        Err(format!(
            "{} crashing inputs kept as regression seeds (replay one with target/fuzz/release/meshd-fuzz TARGET < FILE):\n  {}",
            list.len(),
            list.join("\n  ")
        ))
    }
}

/// One field of AFL's `fuzzer_stats` in `out` ("?" when there is none yet).
fn stat(out: &Path, name: &str) -> String {
    let stats = std::fs::read_to_string(out.join("default/fuzzer_stats")).unwrap_or_default();
    stats
        .lines()
        .find_map(|l| l.split_once(':').filter(|(k, _)| k.trim() == name).map(|(_, v)| v.trim().to_string()))
        .unwrap_or_else(|| "?".into())
}

/// The regular files of `dir` (none if it does not exist), sorted; AFL's README is not an input.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.file_name().is_some_and(|n| n != "README.txt"))
        .collect();
    out.sort();
    out
}
