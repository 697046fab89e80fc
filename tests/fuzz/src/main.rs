//! `meshd-fuzz TARGET`: one fuzz target under AFL (persistent mode), or once on stdin when not
//! under AFL. `meshd-fuzz seeds DIR`: the seed corpora. `meshd-fuzz replay TARGET FILE...`: each
//! file through the target, as a regression test does.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["seeds", dir] => match meshd_fuzz::seeds::write(std::path::Path::new(dir)) {
            Ok(n) => {
                println!("{n} seeds written under {dir}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("meshd-fuzz: cannot write the seeds: {e}");
                ExitCode::FAILURE
            }
        },
        ["replay", target, files @ ..] => {
            let Some(run) = meshd_fuzz::target(target) else { return unknown(target) };
            for file in files {
                let bytes = std::fs::read(file).unwrap_or_else(|e| panic!("cannot read {file}: {e}"));
                run(&bytes);
            }
            println!("{} files replayed through {target}", files.len());
            ExitCode::SUCCESS
        }
        [target] => {
            let Some(run) = meshd_fuzz::target(target) else { return unknown(target) };
            // The universe's keys and certificates are made once, before the first input.
            let _ = meshd_fuzz::universe::universe();
            afl::fuzz!(|data: &[u8]| run(data));
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("usage: meshd-fuzz TARGET | seeds DIR | replay TARGET FILE...");
            ExitCode::FAILURE
        }
    }
}

fn unknown(target: &str) -> ExitCode {
    let names: Vec<&str> = meshd_fuzz::TARGETS.iter().map(|(n, _)| *n).collect();
    eprintln!("meshd-fuzz: unknown target {target:?} (targets: {})", names.join(", "));
    ExitCode::FAILURE
}
