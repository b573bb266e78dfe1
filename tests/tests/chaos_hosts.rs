//! The chaos harness's hosts (issue 14): a process in a host's network
//! namespace cannot reach the machine's loopback, only what the harness
//! relays to it at its gateway, and the namespace is gone once the hosts
//! are dropped. Skipped (with a note) where namespaces are not permitted.

use std::net::SocketAddr;
use std::process::{Command, Stdio};

use kassa_tests::chaos::hosts::{HostMode, Hosts, netns_permitted};

/// Whether a TCP connection to `addr` succeeds from inside `namespace`.
fn connects_from(namespace: &str, addr: SocketAddr) -> bool {
    let script = format!("exec 3<>/dev/tcp/{}/{}", addr.ip(), addr.port());
    Command::new("ip")
        .args(["netns", "exec", namespace, "timeout", "5", "bash", "-c", &script])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_netns_host_reaches_the_machine_only_through_its_relays() {
    if !netns_permitted() {
        println!("skipped: network namespaces are not permitted here (the harness falls back to --hosts loopback)");
        return;
    }
    let service = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a service on loopback");
    let service_addr = service.local_addr().expect("its address");
    let other = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind another service");
    let other_addr = other.local_addr().expect("its address");
    let accept = tokio::spawn(async move { while service.accept().await.is_ok() {} });

    let hosts = Hosts::create(HostMode::Netns, &["api1".to_owned()], &[service_addr]).await.expect("hosts");
    let host = hosts.get("api1").expect("the host");
    let namespace = host.namespace.clone().expect("a netns host has a namespace");
    assert_ne!(host.addr, host.gateway, "the host has an address of its own");
    let (relayed, loopback, other_relayed) = {
        let (namespace, relayed, other) = (namespace.clone(), host.reach(service_addr), host.reach(other_addr));
        tokio::task::spawn_blocking(move || {
            (
                connects_from(&namespace, relayed),
                connects_from(&namespace, service_addr),
                connects_from(&namespace, other),
            )
        })
        .await
        .expect("probes")
    };
    assert!(relayed, "the relayed service is reachable at the gateway {}", host.reach(service_addr));
    assert!(!loopback, "the machine's 127.0.0.1 is not the host's loopback");
    assert!(!other_relayed, "a service that is not relayed is not reachable");

    drop(hosts);
    let listed = Command::new("ip").args(["netns", "list"]).output().expect("ip netns list");
    assert!(!String::from_utf8_lossy(&listed.stdout).contains(&namespace), "{namespace} is removed with the hosts");
    accept.abort();
    drop(other);
}
