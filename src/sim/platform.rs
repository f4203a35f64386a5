//! A platform description: memory nodes with capacities, links with
//! bandwidth and latency, and units with their kind, node and speed per
//! kernel, read from TOML (see `platforms/*.toml` and the module docs of
//! `crate::sim`). Entries with `count = N` are repeated, `{i}` in their
//! names standing for 0..N. Units that name one `resource` share a
//! device: they run one kernel at a time between them.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::perfmodel::Law;
use crate::unit::{NodeId, UnitKind};

/// A unit's speed on one kernel.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Speed {
    /// Sustained GFLOP/s, plus the unit's fixed cost per task.
    Gflops(f64),
    /// Seconds as a fitted law of the footprint's bytes (`a * n^b + c`),
    /// as `xpu perfmodel show` prints it.
    Law(Law),
}

/// One simulated unit.
#[derive(Debug, Clone, PartialEq)]
pub struct SimUnit {
    pub kind: UnitKind,
    pub name: String,
    pub node: NodeId,
    /// Fixed cost per task (launch, synchronisation), seconds.
    pub latency: f64,
    /// Kernels it runs, by name; the others it cannot run.
    pub speeds: HashMap<String, Speed>,
    /// The device it shares with the other units that name it (two queues
    /// on one card, say): they run one kernel at a time between them, and
    /// placement counts them as one device, as it does real units that
    /// share one (`UnitDesc::resource`).
    pub resource: Option<String>,
}

impl SimUnit {
    /// Seconds for a task of `kernel` with `flops` and a footprint of
    /// `bytes`, or `None` if the unit does not run the kernel.
    pub fn seconds(&self, kernel: &str, flops: f64, bytes: f64) -> Option<f64> {
        Some(match self.speeds.get(kernel)? {
            Speed::Gflops(g) => self.latency + flops / (g * 1e9),
            Speed::Law(law) => self.latency + law.eval(bytes).max(0.0),
        })
    }
}

/// One memory node.
#[derive(Debug, Clone, PartialEq)]
pub struct SimNode {
    pub name: String,
    /// Bytes it holds at most (`None`: unbounded, as the host is taken to be).
    pub capacity: Option<u64>,
}

/// A link between two nodes, one queue per direction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SimLink {
    pub a: NodeId,
    pub b: NodeId,
    /// Bytes per second.
    pub bandwidth: f64,
    /// Seconds per copy.
    pub latency: f64,
}

/// A platform to simulate.
///
/// ```
/// let p = xpu::sim::Platform::from_toml(r#"
///     name = "two GPUs"
///     [[node]]
///     name = "host"
///     [[node]]
///     name = "gpu{i}"
///     count = 2
///     capacity_gib = 16
///     [[link]]
///     between = ["host", "gpu{i}"]
///     count = 2
///     bandwidth_gbs = 12
///     latency_us = 10
///     [[unit]]
///     kind = "cpu"
///     count = 4
///     node = "host"
///     gflops = { gemm = 50, potrf = 20 }
///     [[unit]]
///     kind = "gpu"
///     count = 2
///     node = "gpu{i}"
///     latency_us = 5
///     gflops = { gemm = 5000 }
/// "#)?;
/// assert_eq!(p.units.len(), 6);
/// assert_eq!(p.nodes.len(), 3);
/// assert_eq!(p.units[5].node, 2);
/// assert_eq!(p.units[5].seconds("gemm", 5e9, 0.0), Some(5e-6 + 1e-3));
/// assert_eq!(p.units[5].seconds("potrf", 1e9, 0.0), None);
/// # Ok::<(), xpu::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Platform {
    pub name: String,
    /// Node 0 is the host: every tile starts there.
    pub nodes: Vec<SimNode>,
    pub links: Vec<SimLink>,
    pub units: Vec<SimUnit>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlatformFile {
    name: String,
    #[serde(default)]
    description: Option<String>,
    node: Vec<NodeEntry>,
    #[serde(default)]
    link: Vec<LinkEntry>,
    unit: Vec<UnitEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NodeEntry {
    name: String,
    #[serde(default = "one")]
    count: usize,
    capacity_gib: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LinkEntry {
    between: [String; 2],
    #[serde(default = "one")]
    count: usize,
    bandwidth_gbs: f64,
    latency_us: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UnitEntry {
    kind: String,
    #[serde(default = "one")]
    count: usize,
    node: String,
    #[serde(default)]
    latency_us: f64,
    #[serde(default)]
    gflops: HashMap<String, f64>,
    #[serde(default)]
    law: HashMap<String, LawEntry>,
    #[serde(default)]
    resource: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LawEntry {
    a: f64,
    b: f64,
    c: f64,
}

fn one() -> usize {
    1
}

/// A positive number (not NaN).
fn positive(x: f64) -> bool {
    x > 0.0
}

/// Zero or more (not NaN).
fn not_negative(x: f64) -> bool {
    x >= 0.0
}

fn platform_error(what: impl Into<String>) -> Error {
    Error::Config(format!("platform description: {}", what.into()))
}

/// `name` with `{i}` replaced by `i`.
fn expand(name: &str, i: usize) -> String {
    name.replace("{i}", &i.to_string())
}

/// The most memory nodes a platform has (replica sets are 64-bit masks).
const MAX_NODES: usize = 64;

impl Platform {
    /// Reads a platform description file.
    pub fn load(path: &Path) -> Result<Platform> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Io(format!("platform {}: {e}", path.display())))?;
        Platform::from_toml(&text).map_err(|e| Error::Config(format!("{}: {e}", path.display())))
    }

    /// Parses a platform description.
    pub fn from_toml(text: &str) -> Result<Platform> {
        let file: PlatformFile = toml::from_str(text).map_err(|e| platform_error(e.to_string()))?;
        let _ = file.description;
        let mut nodes = Vec::new();
        for n in &file.node {
            for i in 0..n.count {
                if n.capacity_gib.is_some_and(|c| c.is_nan() || c <= 0.0) {
                    return Err(platform_error(format!(
                        "node `{}`: capacity_gib must be positive",
                        n.name
                    )));
                }
                nodes.push(SimNode {
                    name: expand(&n.name, i),
                    capacity: n.capacity_gib.map(|g| (g * (1u64 << 30) as f64) as u64),
                });
            }
        }
        if nodes.is_empty() || nodes.len() > MAX_NODES {
            return Err(platform_error(format!(
                "{} memory nodes; a platform has 1 to {MAX_NODES} (the first is the host)",
                nodes.len()
            )));
        }
        let node_id = |name: &str| -> Result<NodeId> {
            nodes.iter().position(|n| n.name == name).ok_or_else(|| {
                platform_error(format!(
                    "no memory node is called `{name}` (nodes: {})",
                    nodes
                        .iter()
                        .map(|n| n.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })
        };
        let mut links = Vec::new();
        for l in &file.link {
            if !positive(l.bandwidth_gbs) || !not_negative(l.latency_us) {
                return Err(platform_error(format!(
                    "link {:?}: bandwidth_gbs must be positive and latency_us not negative",
                    l.between
                )));
            }
            for i in 0..l.count {
                let (a, b) = (
                    node_id(&expand(&l.between[0], i))?,
                    node_id(&expand(&l.between[1], i))?,
                );
                if a == b {
                    return Err(platform_error(format!(
                        "link {:?} joins node `{}` to itself",
                        l.between, nodes[a].name
                    )));
                }
                links.push(SimLink {
                    a,
                    b,
                    bandwidth: l.bandwidth_gbs * 1e9,
                    latency: l.latency_us * 1e-6,
                });
            }
        }
        let mut units = Vec::new();
        for u in &file.unit {
            let kind = UnitKind::parse(&u.kind).map_err(|e| platform_error(e.to_string()))?;
            if u.gflops.is_empty() && u.law.is_empty() {
                return Err(platform_error(format!(
                    "unit `{}` on `{}` runs no kernel: give `gflops` or `law` per kernel",
                    u.kind, u.node
                )));
            }
            let mut speeds = HashMap::new();
            for (kernel, &g) in &u.gflops {
                if !positive(g) {
                    return Err(platform_error(format!(
                        "unit `{}`: gflops of `{kernel}` must be positive, got {g}",
                        u.kind
                    )));
                }
                speeds.insert(kernel.clone(), Speed::Gflops(g));
            }
            for (kernel, l) in &u.law {
                speeds.insert(
                    kernel.clone(),
                    Speed::Law(Law {
                        a: l.a,
                        b: l.b,
                        c: l.c,
                    }),
                );
            }
            if !not_negative(u.latency_us) {
                return Err(platform_error(format!(
                    "unit `{}`: latency_us must not be negative",
                    u.kind
                )));
            }
            for i in 0..u.count {
                units.push(SimUnit {
                    kind,
                    name: format!("{} {}", u.kind, i),
                    node: node_id(&expand(&u.node, i))?,
                    latency: u.latency_us * 1e-6,
                    speeds: speeds.clone(),
                    resource: u.resource.as_deref().map(|r| expand(r, i)),
                });
            }
        }
        if units.is_empty() {
            return Err(platform_error("no units"));
        }
        for (i, u) in units.iter().enumerate() {
            let Some(resource) = &u.resource else {
                continue;
            };
            if let Some(other) = units[..i]
                .iter()
                .find(|o| o.resource.as_ref() == Some(resource) && o.node != u.node)
            {
                return Err(platform_error(format!(
                    "units `{}` and `{}` share the device `{resource}` but not its memory (nodes `{}` and `{}`)",
                    other.name, u.name, nodes[other.node].name, nodes[u.node].name
                )));
            }
        }
        let platform = Platform {
            name: file.name,
            nodes,
            links,
            units,
        };
        for node in 1..platform.nodes.len() {
            if platform.route(0, node).is_none() {
                return Err(platform_error(format!(
                    "node `{}` has no link to the host `{}`",
                    platform.nodes[node].name, platform.nodes[0].name
                )));
            }
        }
        Ok(platform)
    }

    /// The link between `a` and `b`, if there is one.
    pub fn link(&self, a: NodeId, b: NodeId) -> Option<usize> {
        self.links
            .iter()
            .position(|l| (l.a == a && l.b == b) || (l.a == b && l.b == a))
    }

    /// The links a copy from `from` to `to` crosses, in order: the direct
    /// link, or through the host.
    pub fn route(&self, from: NodeId, to: NodeId) -> Option<Vec<(NodeId, NodeId)>> {
        if from == to {
            return Some(Vec::new());
        }
        if self.link(from, to).is_some() {
            return Some(vec![(from, to)]);
        }
        if from != 0 && to != 0 && self.link(from, 0).is_some() && self.link(0, to).is_some() {
            return Some(vec![(from, 0), (0, to)]);
        }
        None
    }
}
