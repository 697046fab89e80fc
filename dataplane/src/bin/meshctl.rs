//! `meshctl`: talks to the local meshd over its API socket. See `meshctl --help`.

use std::io::Write;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use meshd::api::client;
use meshd::api::request::Request;
use meshd::cli::args::{
    AttachmentCommand, Command, CompletionShell, CtlArgs, KeyCommand, NetworkCommand, NodeCommand,
    ServiceCommand,
};
use meshd::cli::render::render;

fn main() -> ExitCode {
    let args = CtlArgs::parse();
    let request = match args.command {
        Command::Completion { shell } => {
            let shell = match shell {
                CompletionShell::Bash => clap_complete::Shell::Bash,
                CompletionShell::Zsh => clap_complete::Shell::Zsh,
                CompletionShell::Fish => clap_complete::Shell::Fish,
            };
            clap_complete::generate(shell, &mut CtlArgs::command(), "meshctl", &mut std::io::stdout());
            return ExitCode::SUCCESS;
        }
        Command::Attachment { command: AttachmentCommand::Ls { owner } } => {
            Request::AttachmentLs { owner_prefix: owner }
        }
        Command::JoinToken { role, rotate } => Request::JoinToken { role, rotate },
        Command::Key { command: KeyCommand::Rotate } => Request::KeyRotate {},
        Command::Node { command: NodeCommand::Ls } => Request::NodeLs {},
        Command::Node { command: NodeCommand::Update { availability, node } } => {
            Request::NodeUpdate { node, availability }
        }
        Command::Node { command: NodeCommand::Promote { node } } => Request::NodePromote { node },
        Command::Node { command: NodeCommand::Demote { node } } => Request::NodeDemote { node },
        Command::Node { command: NodeCommand::Rm { force, node } } => Request::NodeRm { node, force },
        Command::Leave => Request::Leave {},
        Command::Stats => Request::Stats {},
        Command::Network { command: NetworkCommand::Create { name, subnet } } => {
            Request::NetworkCreate { name, subnet }
        }
        Command::Network { command: NetworkCommand::Ls } => Request::NetworkLs {},
        Command::Network { command: NetworkCommand::Inspect { name } } => Request::NetworkInspect { name },
        Command::Network { command: NetworkCommand::Rm { name } } => Request::NetworkRm { name },
        Command::Attach { netns, network, service, name, no_resolv_conf } => {
            Request::Attach { netns, network, service, name, no_resolv_conf, interface: None, owner: None }
        }
        Command::Detach { netns, network, grace } => {
            Request::Detach { netns, network, grace_ms: grace.map_or(0, |g| g.as_millis() as u64) }
        }
        Command::Service { command: ServiceCommand::Create { name, network, publish, endpoint_mode } } => {
            Request::ServiceCreate { name, network, publish, endpoint_mode }
        }
        Command::Service { command: ServiceCommand::Ls } => Request::ServiceLs {},
        Command::Service { command: ServiceCommand::Ps { name } } => Request::ServicePs { name },
        Command::Service { command: ServiceCommand::Inspect { name } } => Request::ServiceInspect { name },
        Command::Service { command: ServiceCommand::Rm { name } } => Request::ServiceRm { name },
    };
    // A detach with a grace period answers when the period is over.
    let wait = match &request {
        Request::Detach { grace_ms, .. } => std::time::Duration::from_millis(*grace_ms),
        // Three steps, each waiting (at most a minute) for every node.
        Request::KeyRotate {} => std::time::Duration::from_secs(180),
        _ => std::time::Duration::ZERO,
    };
    match client::call_waiting(&args.socket, &request, wait) {
        Ok(reply) => {
            let mut stdout = std::io::stdout().lock();
            // A closed pipe (`meshctl node ls | head -1`) is not an error worth a message.
            let _ = stdout.write_all(render(&reply, args.format).as_bytes());
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("meshctl: error: {error}");
            ExitCode::FAILURE
        }
    }
}
