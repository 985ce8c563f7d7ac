//! Network namespaces of the mesh harness: one anonymous *node* namespace per test (the test
//! thread enters it; bridge `smbr0` holds the node address 10.77.0.1/24) and one named netns
//! per pod (`smesh-<pid>-<n>`, a veth on the bridge, `eth0` = 10.77.0.<n+10>/24).
//!
//! ```text
//!  node namespace (anonymous, entered by the test thread)        pod namespace smesh-<pid>-<n>
//!  apiserver, istiod, gateway, node agent, probes                app processes, pilot-agent, Envoy
//!  smbr0 10.77.0.1/24 ── smv<n> ═══════════ veth ═══════════════ eth0 10.77.0.<n+10>/24
//!                                                                default via 10.77.0.1
//! ```
//!
//! Nothing here touches the machine's own network namespace: `unshare(CLONE_NEWNET)` moves
//! only the calling thread, and every address lives inside namespaces this module creates.
//! Links and addresses are made with `ip` (iproute2); a child process inherits the netns of
//! the *thread* that spawns it, which is why the node namespace is per thread.
//!
//! Cleanup: [`PodNetwork`] deletes its namespace on drop (after killing any process still
//! inside), [`NodeNamespace`] deletes every pod namespace still registered under it, and
//! [`enter_new_node_namespace`] first sweeps `smesh-*` namespaces whose owner pid is dead
//! (left by a test process that was killed).

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;
use std::sync::Mutex;

/// The bridge in the node namespace that every pod's veth is attached to.
pub const BRIDGE: &str = "smbr0";
/// The node's address on [`BRIDGE`]: apiserver, istiod, probes and the pods' gateway.
pub const NODE_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
/// Prefix length of the pod network 10.77.0.0/24.
pub const PREFIX_LEN: u8 = 24;
/// The pod CIDR written into the Node object.
pub const POD_CIDR: &str = "10.77.0.0/24";
/// Named pod namespaces are `smesh-<pid>-<n>`.
pub const NAME_PREFIX: &str = "smesh-";
/// Pod `n` gets 10.77.0.(n + FIRST_HOST).
const FIRST_HOST: u8 = 10;
/// 10.77.0.10 ..= 10.77.0.254.
const MAX_PODS: u8 = 245;
/// Where `ip netns add` keeps its named namespaces.
const NETNS_DIR: &str = "/run/netns";
const IP: &str = "ip";

/// What went wrong while making or removing a namespace.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    #[error("unshare(CLONE_NEWNET): {0} (creating network namespaces needs root / CAP_SYS_ADMIN)")]
    Unshare(#[source] nix::Error),
    #[error("starting `{command}`: {source}")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "this thread is not in a node namespace (netns inode {inode}): call enter_new_node_namespace() on it, or start the node agent from the thread that did"
    )]
    NotInNodeNamespace { inode: u64 },
    #[error("all {MAX_PODS} pod addresses of {POD_CIDR} are in use")]
    AddressesExhausted,
}

/// Node namespaces alive in this process (netns inode), and pod namespaces by index.
#[derive(Debug, Default)]
struct Registry {
    nodes: BTreeSet<u64>,
    /// pod index → inode of the node namespace it was made from.
    pods: BTreeMap<u8, u64>,
    /// Where the next search for a free index starts: indexes are handed out round-robin
    /// so a deleted pod's address is not reused at once (stale endpoints would reach the
    /// new pod).
    next: u8,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    nodes: BTreeSet::new(),
    pods: BTreeMap::new(),
    next: 0,
});

fn registry() -> std::sync::MutexGuard<'static, Registry> {
    // A panic while holding the lock leaves plain data that is still consistent.
    REGISTRY
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The anonymous network namespace the calling thread was moved into. Dropping it deletes
/// every pod namespace still registered under it; the namespace itself disappears with the
/// last thread and process inside it.
#[derive(Debug)]
pub struct NodeNamespace {
    inode: u64,
}

/// Moves the **calling thread** (only it) into a new network namespace with `lo` up and
/// bridge [`BRIDGE`] = [`NODE_IP`]/24, after sweeping stale pod namespaces of dead test
/// processes. Processes and threads this thread starts afterwards live in it.
pub fn enter_new_node_namespace() -> Result<NodeNamespace, NetnsError> {
    let swept = sweep_stale_namespaces()?;
    if !swept.is_empty() {
        tracing::info!(
            ?swept,
            "deleted stale pod namespaces of dead test processes"
        );
    }
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).map_err(NetnsError::Unshare)?;
    let inode = current_netns_inode()?;
    let node_cidr = format!("{NODE_IP}/{PREFIX_LEN}");
    run_ip(&["link", "set", "lo", "up"])?;
    run_ip(&["link", "add", BRIDGE, "type", "bridge"])?;
    run_ip(&["addr", "add", &node_cidr, "dev", BRIDGE])?;
    run_ip(&["link", "set", BRIDGE, "up"])?;
    registry().nodes.insert(inode);
    tracing::info!(inode, bridge = BRIDGE, ip = %NODE_IP, "entered a new node network namespace");
    Ok(NodeNamespace { inode })
}

impl NodeNamespace {
    /// The inode of the namespace (`/proc/thread-self/ns/net`), which identifies it.
    pub fn inode(&self) -> u64 {
        self.inode
    }
}

impl Drop for NodeNamespace {
    fn drop(&mut self) {
        let leftovers: Vec<u8> = {
            let mut reg = registry();
            reg.nodes.remove(&self.inode);
            let mine: Vec<u8> = reg
                .pods
                .iter()
                .filter(|(_, node)| **node == self.inode)
                .map(|(n, _)| *n)
                .collect();
            for n in &mine {
                reg.pods.remove(n);
            }
            mine
        };
        for n in leftovers {
            let name = pod_namespace_name(std::process::id(), n);
            if let Err(e) = delete_named_namespace(&name) {
                tracing::warn!(namespace = %name, error = %e, "deleting pod namespace");
            }
        }
    }
}

/// The network of one pod: a named namespace with `eth0` on the node bridge.
#[derive(Debug)]
pub struct PodNetwork {
    index: u8,
    name: String,
    ip: Ipv4Addr,
    host_veth: String,
    deleted: bool,
}

/// Creates a pod namespace from the calling thread, which must be in a node namespace made by
/// [`enter_new_node_namespace`] in this process: `smesh-<pid>-<n>` with `lo` up, `eth0` =
/// 10.77.0.<n+10>/24 (veth peer `smv<n>` on [`BRIDGE`]) and a default route via [`NODE_IP`].
/// `n` is the next free index in this process, round-robin.
pub fn create_pod_network() -> Result<PodNetwork, NetnsError> {
    let node = current_netns_inode()?;
    let index = {
        let mut reg = registry();
        if !reg.nodes.contains(&node) {
            return Err(NetnsError::NotInNodeNamespace { inode: node });
        }
        let index = next_free_index(reg.pods.keys().copied(), reg.next)
            .ok_or(NetnsError::AddressesExhausted)?;
        reg.pods.insert(index, node);
        reg.next = (index + 1) % MAX_PODS;
        index
    };
    let mut pod = PodNetwork {
        index,
        name: pod_namespace_name(std::process::id(), index),
        ip: pod_ip(index),
        host_veth: format!("smv{index}"),
        deleted: false,
    };
    // Drop of `pod` undoes a half-made namespace if a step fails.
    pod.set_up()?;
    Ok(pod)
}

impl PodNetwork {
    fn set_up(&mut self) -> Result<(), NetnsError> {
        let ns = self.name.as_str();
        let cidr = format!("{}/{PREFIX_LEN}", self.ip);
        let gateway = NODE_IP.to_string();
        run_ip(&["netns", "add", ns])?;
        run_ip(&[
            "link",
            "add",
            &self.host_veth,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            ns,
        ])?;
        run_ip(&["link", "set", &self.host_veth, "master", BRIDGE, "up"])?;
        run_ip(&["-n", ns, "addr", "add", &cidr, "dev", "eth0"])?;
        run_ip(&["-n", ns, "link", "set", "eth0", "up"])?;
        run_ip(&["-n", ns, "link", "set", "lo", "up"])?;
        run_ip(&["-n", ns, "route", "add", "default", "via", &gateway])?;
        Ok(())
    }

    /// `smesh-<pid>-<n>`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The pod's address on `eth0`.
    pub fn ip(&self) -> Ipv4Addr {
        self.ip
    }

    /// The node-side end of the veth pair, attached to [`BRIDGE`].
    pub fn host_veth(&self) -> &str {
        &self.host_veth
    }

    /// `ip netns exec <name> <program>`: a command that runs inside the pod namespace (ip
    /// also gives it a mount namespace of its own, slave to the host's).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(IP);
        cmd.arg("netns").arg("exec").arg(&self.name).arg(program);
        cmd
    }

    /// Pids of processes still inside the namespace.
    pub fn pids(&self) -> Result<Vec<i32>, NetnsError> {
        namespace_pids(&self.name)
    }

    /// Kills what is left inside (SIGKILL), then deletes the namespace; its veth pair goes
    /// with it.
    pub fn delete(mut self) -> Result<(), NetnsError> {
        self.delete_inner()
    }

    fn delete_inner(&mut self) -> Result<(), NetnsError> {
        if self.deleted {
            return Ok(());
        }
        self.deleted = true;
        let result = delete_named_namespace(&self.name);
        registry().pods.remove(&self.index);
        result
    }
}

impl Drop for PodNetwork {
    fn drop(&mut self) {
        if let Err(e) = self.delete_inner() {
            tracing::warn!(namespace = %self.name, error = %e, "deleting pod namespace");
        }
    }
}

/// `smesh-<pid>-<n>`.
pub fn pod_namespace_name(pid: u32, index: u8) -> String {
    format!("{NAME_PREFIX}{pid}-{index}")
}

/// 10.77.0.(n + 10).
pub fn pod_ip(index: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 77, 0, index.saturating_add(FIRST_HOST))
}

/// The owner pid encoded in a pod namespace name, or `None` if the name is not ours.
pub fn owner_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(NAME_PREFIX)?;
    let (pid, index) = rest.split_once('-')?;
    index.parse::<u8>().ok()?;
    pid.parse().ok()
}

/// The first index not in `used`, searching from `start` and wrapping around.
fn next_free_index(used: impl Iterator<Item = u8>, start: u8) -> Option<u8> {
    let used: BTreeSet<u8> = used.collect();
    (start..MAX_PODS)
        .chain(0..start.min(MAX_PODS))
        .find(|n| !used.contains(n))
}

/// The inode of the calling thread's namespace if it is a node namespace of this process,
/// else [`NetnsError::NotInNodeNamespace`].
pub fn current_node_namespace() -> Result<u64, NetnsError> {
    let inode = current_netns_inode()?;
    if registry().nodes.contains(&inode) {
        Ok(inode)
    } else {
        Err(NetnsError::NotInNodeNamespace { inode })
    }
}

/// The inode of the calling thread's network namespace.
pub fn current_netns_inode() -> Result<u64, NetnsError> {
    let link = std::fs::read_link("/proc/thread-self/ns/net").map_err(|source| NetnsError::Io {
        context: "reading /proc/thread-self/ns/net".to_string(),
        source,
    })?;
    parse_ns_link(&link.to_string_lossy()).ok_or_else(|| NetnsError::Io {
        context: format!("unexpected namespace link {}", link.display()),
        source: std::io::Error::from(std::io::ErrorKind::InvalidData),
    })
}

/// `net:[4026532281]` → 4026532281.
fn parse_ns_link(link: &str) -> Option<u64> {
    link.strip_prefix("net:[")?.strip_suffix(']')?.parse().ok()
}

/// Deletes `smesh-<pid>-*` namespaces whose pid is not a live process (killing whatever is
/// still inside them). Returns the names deleted.
pub fn sweep_stale_namespaces() -> Result<Vec<String>, NetnsError> {
    let entries = match std::fs::read_dir(NETNS_DIR) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(NetnsError::Io {
                context: format!("listing {NETNS_DIR}"),
                source,
            });
        }
    };
    let mut swept = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = owner_pid(&name) else {
            continue;
        };
        if Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        delete_named_namespace(&name)?;
        swept.push(name);
    }
    Ok(swept)
}

/// Pids inside a named namespace (`ip netns pids`).
pub fn namespace_pids(name: &str) -> Result<Vec<i32>, NetnsError> {
    let out = run_ip(&["netns", "pids", name])?;
    Ok(out
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect())
}

/// SIGKILLs every process inside, then `ip netns del`. A namespace already gone is fine.
fn delete_named_namespace(name: &str) -> Result<(), NetnsError> {
    if !Path::new(NETNS_DIR).join(name).exists() {
        return Ok(());
    }
    for pid in namespace_pids(name).unwrap_or_default() {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    run_ip(&["netns", "del", name]).map(|_| ())
}

/// Runs `ip <args>` from the calling thread (so in its network namespace); stdout on success.
fn run_ip(args: &[&str]) -> Result<String, NetnsError> {
    let command = format!("{IP} {}", args.join(" "));
    let out = Command::new(IP)
        .args(args)
        .output()
        .map_err(|source| NetnsError::Spawn {
            command: command.clone(),
            source,
        })?;
    if !out.status.success() {
        return Err(NetnsError::Command {
            command,
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::procs;
    use std::io::{Read, Write};
    use std::time::{Duration, Instant};

    fn is_root() -> bool {
        nix::unistd::geteuid().is_root()
    }

    #[test]
    fn names_and_addresses() {
        assert_eq!(pod_namespace_name(4242, 3), "smesh-4242-3");
        assert_eq!(pod_ip(0), Ipv4Addr::new(10, 77, 0, 10));
        assert_eq!(pod_ip(244), Ipv4Addr::new(10, 77, 0, 254));
        assert_eq!(owner_pid("smesh-4242-3"), Some(4242));
        // Not ours: other prefixes, missing or non-numeric parts.
        assert_eq!(owner_pid("cni-1234"), None);
        assert_eq!(owner_pid("smesh-4242"), None);
        assert_eq!(owner_pid("smesh-abc-1"), None);
        assert_eq!(owner_pid("smesh-12-x"), None);
        assert_eq!(parse_ns_link("net:[4026532281]"), Some(4026532281));
        assert_eq!(parse_ns_link("mnt:[4026532281]"), None);
        let err = namespace_pids("smesh-no-such-namespace").unwrap_err();
        assert!(
            matches!(&err, NetnsError::Command { stderr, .. } if stderr.contains("Cannot open network namespace")),
            "{err}"
        );
    }

    #[test]
    fn next_free_index_goes_round_robin_and_runs_out() {
        assert_eq!(next_free_index([].into_iter(), 0), Some(0));
        assert_eq!(next_free_index([0, 1, 3].into_iter(), 0), Some(2));
        // Freed 0 is not reused while later indexes are free.
        assert_eq!(next_free_index([1].into_iter(), 2), Some(2));
        // Wraps around at the end of the range.
        assert_eq!(next_free_index([244].into_iter(), 244), Some(0));
        assert_eq!(next_free_index(0..MAX_PODS, 7), None);
    }

    #[test]
    fn pod_network_refused_outside_a_node_namespace() {
        // A fresh thread that never entered a node namespace.
        let err = std::thread::spawn(create_pod_network)
            .join()
            .unwrap()
            .unwrap_err();
        assert!(current_node_namespace().is_err());
        assert!(
            matches!(err, NetnsError::NotInNodeNamespace { .. }),
            "{err}"
        );
        assert!(err.to_string().contains("not in a node namespace"));
    }

    #[test]
    fn enter_fails_with_a_clear_error_without_privileges() {
        if is_root() {
            eprintln!("skipped: running as root, so unshare cannot fail for lack of privileges");
            return;
        }
        let err = std::thread::spawn(enter_new_node_namespace)
            .join()
            .unwrap()
            .unwrap_err();
        assert!(err.to_string().contains("needs root"), "{err}");
    }

    #[test]
    fn sweep_deletes_namespaces_of_dead_pids_only() {
        if !is_root() {
            eprintln!("skipped: needs root to create network namespaces");
            return;
        }
        // A pid that certainly exited: a child we waited for.
        let mut child = Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let stale = pod_namespace_name(dead, 200);
        let alive = pod_namespace_name(std::process::id(), 201);
        run_ip(&["netns", "add", &stale]).unwrap();
        run_ip(&["netns", "add", &alive]).unwrap();
        let swept = sweep_stale_namespaces().unwrap();
        let stale_left = Path::new(NETNS_DIR).join(&stale).exists();
        let alive_left = Path::new(NETNS_DIR).join(&alive).exists();
        delete_named_namespace(&alive).unwrap();
        delete_named_namespace(&stale).unwrap();
        assert!(swept.contains(&stale), "{swept:?}");
        assert!(!stale_left, "stale namespace survived the sweep");
        assert!(alive_left, "sweep deleted a namespace of a live process");
    }

    /// GET / over plain TCP from the calling thread (so from its network namespace).
    fn http_get(addr: &str) -> std::io::Result<String> {
        let mut stream = std::net::TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        stream.write_all(b"GET / HTTP/1.0\r\nHost: pod\r\n\r\n")?;
        let mut body = String::new();
        stream.read_to_string(&mut body)?;
        Ok(body)
    }

    #[test]
    fn pod_serves_http_to_the_node_and_everything_is_gone_after_drop() {
        if !is_root() {
            eprintln!("skipped: needs root to create network namespaces");
            return;
        }
        let logs = tempfile::tempdir().unwrap();
        let logs_path = logs.path().to_path_buf();
        let (ns_name, server_pid, node_inode, body) = std::thread::spawn(move || {
            let outer = current_netns_inode().unwrap();
            let node = enter_new_node_namespace().unwrap();
            assert_ne!(node.inode(), outer, "the thread did not move");
            // Other threads of the process stay where they were.
            let pod = create_pod_network().unwrap();
            assert!(Path::new(NETNS_DIR).join(pod.name()).exists());
            let mut cmd = pod.command("python3");
            cmd.args(["-m", "http.server", "8000", "--directory", "/etc"]);
            let server = procs::spawn("http-server", cmd, &logs_path).unwrap();
            let addr = format!("{}:8000", pod.ip());
            let deadline = Instant::now() + Duration::from_secs(30);
            let body = loop {
                match http_get(&addr) {
                    Ok(body) => break body,
                    Err(e) => {
                        assert!(Instant::now() < deadline, "no answer from {addr}: {e}");
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
            };
            // A thread spawned from here inherits the node namespace.
            let inherited = std::thread::spawn(current_node_namespace).join().unwrap();
            assert_eq!(inherited.unwrap(), node.inode());
            let pid = server.pid();
            let name = pod.name().to_string();
            // Order as the node agent does it: processes, then the namespace, then the node.
            drop(server);
            drop(pod);
            let inode = node.inode();
            drop(node);
            (name, pid, inode, body)
        })
        .join()
        .unwrap();
        assert!(body.starts_with("HTTP/1.0 200"), "{body}");
        assert!(
            body.contains("hostname"),
            "directory listing of /etc: {body}"
        );
        assert!(!Path::new(NETNS_DIR).join(&ns_name).exists());
        assert!(!Path::new(&format!("/proc/{server_pid}")).exists());
        assert!(!registry().nodes.contains(&node_inode));
    }

    #[test]
    fn node_namespace_drop_deletes_leftover_pod_namespaces_and_processes() {
        if !is_root() {
            eprintln!("skipped: needs root to create network namespaces");
            return;
        }
        let (name, pid) = std::thread::spawn(|| {
            let node = enter_new_node_namespace().unwrap();
            let pod = create_pod_network().unwrap();
            let name = pod.name().to_string();
            // Leak the PodNetwork and a process inside it: only NodeNamespace's drop is left.
            let mut sleeper = pod.command("sleep");
            sleeper.arg("60");
            let child = sleeper.spawn().unwrap();
            let pid = child.id();
            let deadline = Instant::now() + Duration::from_secs(10);
            while !namespace_pids(&name).unwrap().contains(&(pid as i32)) {
                assert!(Instant::now() < deadline, "sleep never entered {name}");
                std::thread::sleep(Duration::from_millis(20));
            }
            std::mem::forget(pod);
            drop(node);
            let mut child = child;
            let status = child.wait().unwrap();
            assert!(!status.success(), "sleep should have been killed");
            (name, pid)
        })
        .join()
        .unwrap();
        assert!(!Path::new(NETNS_DIR).join(&name).exists());
        assert!(!Path::new(&format!("/proc/{pid}")).exists());
    }
}
