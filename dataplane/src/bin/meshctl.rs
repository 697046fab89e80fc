//! `meshctl`: talks to the local meshd over its API socket. See `meshctl --help`.

use std::io::Write;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use meshd::api::client;
use meshd::api::reply::StreamLine;
use meshd::api::request::Request;
use meshd::cli::args::{
    AttachmentCommand, Command, CompletionShell, CtlArgs, EventType, Format, KeyCommand, NetworkCommand,
    NodeCommand, ServiceCommand, TaskCommand,
};
use meshd::cli::progress::wait_with_progress;
use meshd::cli::render::{event_line, render};
use meshd::monitor::EventKind;
use meshd::state::network_options::{apply_opt, NetworkOptions};

fn main() -> ExitCode {
    let args = CtlArgs::parse();
    if let Command::Monitor { kind, network, service, follow } = args.command {
        let types = match kind {
            EventType::Drop => vec![EventKind::Drop],
            EventType::Flow => vec![EventKind::Flow],
            EventType::All => vec![],
        };
        return monitor(&args.socket, args.format, Request::Monitor { types, network, service, follow });
    }
    let request = match args.command {
        Command::Monitor { .. } => unreachable!("handled above"),
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
        Command::Backup { file } => match std::path::absolute(&file) {
            // meshd writes it: the path must mean the same file to meshd as here.
            Ok(path) => Request::Backup { path: path.display().to_string() },
            Err(error) => {
                eprintln!("meshctl: error: {}: {error}", file.display());
                return ExitCode::FAILURE;
            }
        },
        Command::Network {
            command:
                NetworkCommand::Create { name, subnet, gateway, ip_range, aux_addresses, internal, opts, labels },
        } => {
            let mut options = NetworkOptions {
                gateway,
                ip_range,
                aux_addresses: aux_addresses.into_iter().collect(),
                internal,
                mtu: None,
                labels: labels.into_iter().collect(),
                encrypted: false,
            };
            for (key, value) in &opts {
                if let Err(error) = apply_opt(&mut options, key, value) {
                    eprintln!("meshctl: error: {error}");
                    return ExitCode::FAILURE;
                }
            }
            Request::NetworkCreate { name: checked(name), subnet, options }
        }
        Command::Network { command: NetworkCommand::Ls } => Request::NetworkLs {},
        Command::Network { command: NetworkCommand::Inspect { name } } => Request::NetworkInspect { name },
        Command::Network { command: NetworkCommand::Rm { name } } => Request::NetworkRm { name },
        Command::Task { command: TaskCommand::Health { task, health } } => {
            Request::TaskHealth { task, health }
        }
        Command::Attach { netns, network, service, name, aliases, no_resolv_conf, health } => {
            Request::Attach {
                netns,
                network,
                service,
                name: name.map(checked),
                no_resolv_conf,
                interface: None,
                owner: None,
                aliases: aliases.into_iter().map(checked).collect(),
                health,
            }
        }
        Command::Detach { netns, network, grace } => {
            Request::Detach { netns, network, grace_ms: grace.map_or(0, |g| g.as_millis() as u64) }
        }
        // Published ports are typed here, where the request enters (the API's decoder checks
        // the same text again for other clients); a bad one exits 1 as a refused request does.
        Command::Service { command: ServiceCommand::Create { name, network, publish, endpoint_mode } } => {
            let Some(publish) = typed(&publish) else { return ExitCode::FAILURE };
            Request::ServiceCreate { name: checked(name), network, publish, endpoint_mode }
        }
        Command::Service {
            command: ServiceCommand::Update { name, publish_add, publish_rm, endpoint_mode },
        } => {
            let (Some(publish_add), Some(publish_rm)) = (typed(&publish_add), typed(&publish_rm)) else {
                return ExitCode::FAILURE;
            };
            Request::ServiceUpdate { name, publish_add, publish_rm, endpoint_mode }
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
    let call = || client::call_waiting(&args.socket, &request, wait);
    let result = match &request {
        Request::Detach { netns, .. } if !wait.is_zero() => wait_with_progress(
            &format!("detaching {netns}: its tasks terminate (open flows finish, no new ones)"),
            wait,
            call,
        ),
        _ => call(),
    };
    match result {
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

/// `meshctl monitor`: prints each event as it comes (flushed at once, so a pipe sees it too).
/// A new name, checked before any request is sent (the API would refuse it the same way); a bad
/// one ends meshctl with the rule it breaks, as the cluster's own refusals do (exit 1).
fn checked<T: TryFrom<String, Error = meshd::name_rules::NameError>>(name: String) -> T {
    T::try_from(name).unwrap_or_else(|error| {
        eprintln!("meshctl: error: {error}");
        std::process::exit(1)
    })
}

fn monitor(socket: &std::path::Path, format: Format, request: Request) -> ExitCode {
    let mut stdout = std::io::stdout().lock();
    let result = client::stream(socket, &request, |line| match line {
        StreamLine::Event(event) => {
            stdout.write_all(event_line(&event, format).as_bytes()).is_ok() && stdout.flush().is_ok()
        }
        StreamLine::Dropped { count } => {
            eprintln!("meshctl: {count} events lost: this monitor read too slowly");
            true
        }
        StreamLine::End {} => false,
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("meshctl: error: {error}");
            ExitCode::FAILURE
        }
    }
}

/// `--publish`-style arguments parsed into their typed values (`PublishSpec`, `UnpublishSpec`);
/// None after saying which one is wrong and why.
fn typed<T: std::str::FromStr>(texts: &[String]) -> Option<Vec<T>>
where
    T::Err: std::fmt::Display,
{
    texts
        .iter()
        .map(|text| text.parse::<T>().map_err(|error| eprintln!("meshctl: error: {error}")).ok())
        .collect()
}
