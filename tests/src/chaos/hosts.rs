//! The "hosts" a chaos run puts its processes on. With [`HostMode::Netns`]
//! every API and worker gets a network namespace of its own, joined to this
//! machine by a veth pair on a /30 (`10.200.S.4i+1` on the machine's side,
//! `10.200.S.4i+2` inside): it has its own loopback, its own address and no
//! other way out, as a separate machine on a LAN would. The database server
//! (and the SMTP sink) listen on 127.0.0.1 only, so the run relays each of
//! them from the machine's side of every veth ([`Relay`]); a host reaches
//! PostgreSQL at its gateway, `10.200.S.4i+1:5432`. With
//! [`HostMode::Loopback`] each process only listens on an address of its
//! own, `127.0.0.2`, `127.0.0.3`, …, for machines where namespaces are not
//! permitted.
//!
//! Namespaces are named `kassa-chaos-PID-I` and removed when [`Hosts`] is
//! dropped; those of a run that died without cleaning up (its PID gone) are
//! removed by the next run.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail};
use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// Where the processes of a run live.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HostMode {
    /// A network namespace per process, joined by veth pairs (needs root).
    Netns,
    /// A 127.0.0.x address per process, all on this machine's loopback.
    Loopback,
}

impl HostMode {
    /// `netns` or `loopback`.
    pub fn as_str(self) -> &'static str {
        match self {
            HostMode::Netns => "netns",
            HostMode::Loopback => "loopback",
        }
    }
}

/// One host: where its processes run, listen and reach the machine.
#[derive(Clone, Debug)]
pub struct Host {
    /// Its name in the report: `api1`, `worker2`.
    pub name: String,
    /// Its own address: its processes listen here.
    pub addr: IpAddr,
    /// The address at which it reaches the database and the SMTP sink:
    /// the machine's end of its veth, or 127.0.0.1 on loopback.
    pub gateway: IpAddr,
    /// Its network namespace, if it has one.
    pub namespace: Option<String>,
}

impl Host {
    /// A command that runs `program` on this host (inside its namespace).
    pub fn command(&self, program: &Path) -> Command {
        match &self.namespace {
            Some(namespace) => {
                // `ip netns exec` enters the namespace and execs the program:
                // the child's pid is the program's, so SIGKILL reaches it.
                let mut command = Command::new("ip");
                command.args(["netns", "exec", namespace]).arg(program);
                command
            }
            None => Command::new(program),
        }
    }

    /// How this host reaches `target`, a service on the machine's loopback
    /// (relayed at the same port on its gateway when it has a namespace).
    pub fn reach(&self, target: SocketAddr) -> SocketAddr {
        match self.namespace {
            Some(_) => SocketAddr::new(self.gateway, target.port()),
            None => target,
        }
    }

    /// `addr` (namespace `name`), for the report.
    pub fn describe(&self) -> String {
        match &self.namespace {
            Some(namespace) => format!("{} {} (netns {namespace}, gateway {})", self.name, self.addr, self.gateway),
            None => format!("{} {} (loopback)", self.name, self.addr),
        }
    }
}

/// Forwards every connection made to `listen` to `target`, until dropped.
pub struct Relay {
    task: JoinHandle<()>,
}

impl Relay {
    /// Listens on `listen` and relays each connection to `target`.
    pub async fn start(listen: SocketAddr, target: SocketAddr) -> anyhow::Result<Relay> {
        let listener = TcpListener::bind(listen).await.with_context(|| format!("Failed to listen on {listen}"))?;
        let task = tokio::spawn(async move {
            // Dropping the set (when the relay is aborted) cuts every relayed connection.
            let mut connections = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((mut inbound, _)) = accepted else { continue };
                        connections.spawn(async move {
                            if let Ok(mut outbound) = TcpStream::connect(target).await {
                                let _ = inbound.set_nodelay(true);
                                let _ = outbound.set_nodelay(true);
                                let _ = copy_bidirectional(&mut inbound, &mut outbound).await;
                            }
                        });
                    }
                    Some(_) = connections.join_next(), if !connections.is_empty() => {}
                }
            }
        });
        Ok(Relay { task })
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The hosts of a run; namespaces and relays are removed when dropped
/// (after the processes on them: drop the cluster first).
pub struct Hosts {
    /// The hosts, in the order asked for.
    pub hosts: Vec<Host>,
    /// How they are made.
    pub mode: HostMode,
    namespaces: Vec<String>,
    _relays: Vec<Relay>,
}

/// Runs `ip ARGS`; an error carries its standard error.
fn ip(args: &[&str]) -> anyhow::Result<()> {
    let output = Command::new("ip").args(args).output().context("Failed to run ip (is iproute2 installed?)")?;
    if !output.status.success() {
        bail!("ip {} failed: {}", args.join(" "), String::from_utf8_lossy(&output.stderr).trim());
    }
    Ok(())
}

const NAMESPACE_PREFIX: &str = "kassa-chaos-";

/// Whether this process may make network namespaces (root, and a kernel
/// and container that allow it): makes one and removes it.
pub fn netns_permitted() -> bool {
    let probe = format!("kassa-netns-probe-{}", std::process::id());
    let made = ip(&["netns", "add", &probe]).is_ok();
    made && ip(&["netns", "del", &probe]).is_ok()
}

/// Removes the namespaces of earlier runs whose process is gone.
fn remove_stale_namespaces() {
    let Ok(output) = Command::new("ip").args(["netns", "list"]).output() else { return };
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Some(name) = line.split_whitespace().next() else { continue };
        let Some(pid) = name.strip_prefix(NAMESPACE_PREFIX).and_then(|rest| rest.split('-').next()) else { continue };
        if !Path::new("/proc").join(pid).exists() {
            let _ = ip(&["netns", "del", name]);
        }
    }
}

/// A third octet for `10.200.S.0/24` that no interface of this machine uses
/// yet (another run, or another engineer's, may hold one).
fn free_subnet() -> anyhow::Result<u8> {
    let output = Command::new("ip").args(["-o", "-4", "addr", "show"]).output().context("Failed to run ip addr")?;
    let in_use = String::from_utf8_lossy(&output.stdout).into_owned();
    let start = std::process::id() % 256;
    (0..256)
        .map(|offset| u8::try_from((start + offset) % 256).unwrap_or(0))
        .find(|octet| !in_use.contains(&format!(" 10.200.{octet}.")))
        .context("every 10.200.S.0/24 subnet is in use")
}

impl Hosts {
    /// Makes one host per name; in netns mode relays each of `services`
    /// (addresses on this machine) from every host's gateway.
    pub async fn create(mode: HostMode, names: &[String], services: &[SocketAddr]) -> anyhow::Result<Hosts> {
        match mode {
            HostMode::Loopback => {
                let hosts = names
                    .iter()
                    .enumerate()
                    .map(|(i, name)| {
                        let last = u8::try_from(i + 2).context("too many hosts for 127.0.0.x")?;
                        Ok(Host {
                            name: name.clone(),
                            addr: IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)),
                            gateway: IpAddr::V4(Ipv4Addr::LOCALHOST),
                            namespace: None,
                        })
                    })
                    .collect::<anyhow::Result<Vec<Host>>>()?;
                Ok(Hosts { hosts, mode, namespaces: Vec::new(), _relays: Vec::new() })
            }
            HostMode::Netns => {
                if names.len() > 63 {
                    bail!("at most 63 hosts fit in one 10.200.S.0/24");
                }
                remove_stale_namespaces();
                let subnet = free_subnet()?;
                let mut hosts = Hosts { hosts: Vec::new(), mode, namespaces: Vec::new(), _relays: Vec::new() };
                for (i, name) in names.iter().enumerate() {
                    let host = hosts.add_namespace(i, name, subnet).with_context(|| {
                        format!("Failed to make network namespace {i} (not permitted here? try --hosts loopback)")
                    })?;
                    for service in services {
                        let relay = Relay::start(host.reach(*service), *service).await?;
                        hosts._relays.push(relay);
                    }
                    hosts.hosts.push(host);
                }
                Ok(hosts)
            }
        }
    }

    fn add_namespace(&mut self, index: usize, name: &str, subnet: u8) -> anyhow::Result<Host> {
        let pid = std::process::id();
        let namespace = format!("{NAMESPACE_PREFIX}{pid}-{index}");
        // Interface names have at most 15 characters: kc + pid (≤ 7) + h/n + index.
        let (outside, inside) = (format!("kc{pid}h{index}"), format!("kc{pid}n{index}"));
        let base = u8::try_from(4 * index).context("too many hosts")?;
        let gateway = Ipv4Addr::new(10, 200, subnet, base + 1);
        let addr = Ipv4Addr::new(10, 200, subnet, base + 2);
        ip(&["netns", "add", &namespace])?;
        self.namespaces.push(namespace.clone());
        ip(&["link", "add", &outside, "type", "veth", "peer", "name", &inside])?;
        ip(&["link", "set", &inside, "netns", &namespace])?;
        ip(&["addr", "add", &format!("{gateway}/30"), "dev", &outside])?;
        ip(&["link", "set", &outside, "up"])?;
        ip(&["-n", &namespace, "addr", "add", &format!("{addr}/30"), "dev", &inside])?;
        ip(&["-n", &namespace, "link", "set", &inside, "up"])?;
        ip(&["-n", &namespace, "link", "set", "lo", "up"])?;
        Ok(Host {
            name: name.to_owned(),
            addr: IpAddr::V4(addr),
            gateway: IpAddr::V4(gateway),
            namespace: Some(namespace),
        })
    }

    /// The host called `name`.
    pub fn get(&self, name: &str) -> anyhow::Result<&Host> {
        self.hosts.iter().find(|h| h.name == name).with_context(|| format!("there is no host {name}"))
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        // Deleting a namespace deletes the veth end inside it, and so its peer.
        for namespace in self.namespaces.drain(..) {
            if let Err(error) = ip(&["netns", "del", &namespace]) {
                eprintln!("chaos: could not remove network namespace {namespace}: {error:#}");
            }
        }
    }
}
