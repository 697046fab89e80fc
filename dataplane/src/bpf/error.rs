//! One error type for everything eBPF: each variant names the operation and the object, program,
//! map or interface involved, and keeps aya's error (with the verifier log) as its source.

use std::io;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum BpfError {
    #[error("cannot check or mount bpffs at {path}: {source}")]
    Bpffs { path: PathBuf, source: io::Error },
    #[error("cannot create pin directory {path}: {source}")]
    PinDir { path: PathBuf, source: io::Error },
    #[error("cannot load eBPF object {object}: {source}")]
    Object { object: &'static str, source: Box<aya::EbpfError> },
    #[error("eBPF object {object} has no program {program}")]
    MissingProgram { object: &'static str, program: &'static str },
    #[error("eBPF object {object} has no map {map}")]
    MissingMap { object: &'static str, map: &'static str },
    #[error("the kernel refused program {program} of {object}: {source}")]
    Program { object: &'static str, program: &'static str, source: Box<aya::programs::ProgramError> },
    #[error("cannot attach {program} to {interface}: {source}")]
    Attach { program: &'static str, interface: String, source: Box<aya::programs::ProgramError> },
    #[error("pinned link of {program} on {interface}: {source}")]
    Link { program: &'static str, interface: String, source: Box<aya::programs::links::LinkError> },
    #[error("map {map}: {source}")]
    Map { map: &'static str, source: Box<aya::maps::MapError> },
}
