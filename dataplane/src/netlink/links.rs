//! Link operations shared by the overlay: look-ups by name, MAC addresses, deletion, and a
//! netlink handle opened inside another network namespace.

use std::fs::File;
use std::io;
use std::path::Path;

use futures::TryStreamExt;
use netlink_packet_route::link::{LinkAttribute, LinkMessage};
use nix::sched::{setns, CloneFlags};
use rtnetlink::Handle;

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("netlink: {operation} {link}: {source}")]
    Netlink { operation: &'static str, link: String, source: rtnetlink::Error },
    #[error("no link named {0}")]
    Missing(String),
    #[error("cannot enter network namespace {path}: {source}")]
    Netns { path: String, source: io::Error },
    #[error("an interface named {name} already exists in network namespace {netns}")]
    Taken { name: String, netns: String },
}

pub fn netlink_err(
    operation: &'static str,
    link: impl Into<String>,
) -> impl FnOnce(rtnetlink::Error) -> LinkError {
    let link = link.into();
    move |source| LinkError::Netlink { operation, link, source }
}

/// The link named `name`, if it exists.
pub async fn find(handle: &Handle, name: &str) -> Result<Option<LinkMessage>, LinkError> {
    let mut links = handle.link().get().match_name(name.to_string()).execute();
    match links.try_next().await {
        Ok(link) => Ok(link),
        // The kernel answers ENODEV for a name that does not exist.
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc_enodev() => Ok(None),
        Err(source) => Err(LinkError::Netlink { operation: "get", link: name.to_string(), source }),
    }
}

fn libc_enodev() -> i32 {
    nix::errno::Errno::ENODEV as i32
}

/// Every link name in the namespace of `handle`.
pub async fn names(handle: &Handle) -> Result<Vec<String>, LinkError> {
    let mut out = Vec::new();
    let mut links = handle.link().get().execute();
    while let Some(link) = links.try_next().await.map_err(netlink_err("list", "*"))? {
        out.extend(link.attributes.iter().find_map(|a| match a {
            LinkAttribute::IfName(name) => Some(name.clone()),
            _ => None,
        }));
    }
    Ok(out)
}

pub fn mac_of(link: &LinkMessage) -> [u8; 6] {
    let mut mac = [0u8; 6];
    if let Some(bytes) = link.attributes.iter().find_map(|a| match a {
        LinkAttribute::Address(bytes) if bytes.len() == 6 => Some(bytes),
        _ => None,
    }) {
        mac.copy_from_slice(bytes);
    }
    mac
}

/// Deletes the link named `name`; a missing link is not an error.
pub async fn delete(handle: &Handle, name: &str) -> Result<(), LinkError> {
    if let Some(link) = find(handle, name).await? {
        handle.link().del(link.header.index).execute().await.map_err(netlink_err("delete", name))?;
    }
    Ok(())
}

/// A netlink handle whose socket lives in the network namespace at `path`. The socket is opened
/// on a short-lived thread that entered the namespace (setns moves only the calling thread), and
/// keeps talking to that namespace from any thread afterwards.
pub async fn handle_in(path: &Path) -> Result<Handle, LinkError> {
    let shown = path.display().to_string();
    let file = File::open(path).map_err(|source| LinkError::Netns { path: shown.clone(), source })?;
    let runtime = tokio::runtime::Handle::current();
    let opened = std::thread::spawn(move || -> io::Result<_> {
        setns(&file, CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
        // The socket registers with tokio's reactor when it is created.
        let _entered = runtime.enter();
        rtnetlink::new_connection()
    })
    .join()
    .map_err(|_| LinkError::Netns { path: shown.clone(), source: io::Error::other("thread panicked") })?
    .map_err(|source| LinkError::Netns { path: shown, source })?;
    let (connection, handle, _) = opened;
    tokio::spawn(connection);
    Ok(handle)
}
