//! Processing units: their kinds and what the runtime knows about each.

/// The kind of processing unit a task can run on.
///
/// ```
/// use xpu::UnitKind;
/// assert_eq!(UnitKind::parse("gpu").unwrap(), UnitKind::Gpu);
/// assert_eq!(UnitKind::Custom("dsp").to_string(), "dsp");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnitKind {
    Cpu,
    Gpu,
    Tpu,
    Npu,
    Lpu,
    Fpga,
    Vpu,
    /// A kind brought by an embedder's own backend.
    Custom(&'static str),
}

impl UnitKind {
    /// The built-in kinds.
    pub const BUILT_IN: [UnitKind; 7] = [
        UnitKind::Cpu,
        UnitKind::Gpu,
        UnitKind::Tpu,
        UnitKind::Npu,
        UnitKind::Lpu,
        UnitKind::Fpga,
        UnitKind::Vpu,
    ];

    /// Lower-case name.
    pub fn as_str(&self) -> &'static str {
        match self {
            UnitKind::Cpu => "cpu",
            UnitKind::Gpu => "gpu",
            UnitKind::Tpu => "tpu",
            UnitKind::Npu => "npu",
            UnitKind::Lpu => "lpu",
            UnitKind::Fpga => "fpga",
            UnitKind::Vpu => "vpu",
            UnitKind::Custom(s) => s,
        }
    }

    /// Parses a built-in kind name (case-insensitive).
    pub fn parse(s: &str) -> crate::Result<UnitKind> {
        let lower = s.to_ascii_lowercase();
        UnitKind::BUILT_IN
            .into_iter()
            .find(|k| k.as_str() == lower)
            .ok_or_else(|| {
                crate::Error::UnknownUnit(format!(
                    "`{s}` is not a unit kind (cpu, gpu, tpu, npu, lpu, fpga, vpu)"
                ))
            })
    }
}

impl std::fmt::Display for UnitKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// Index of a unit in the runtime ([`crate::Runtime::units`]).
pub type UnitId = usize;

/// Index of a memory node; host RAM is node 0.
pub type NodeId = usize;

/// The host memory node.
pub const HOST: NodeId = 0;

/// A unit as the runtime lists it.
#[derive(Debug, Clone)]
pub struct UnitInfo {
    pub id: UnitId,
    pub kind: UnitKind,
    /// The backend's name ("cpu", "wgpu", ...).
    pub backend: String,
    /// The device's own name.
    pub device: String,
    /// True when the device is not the hardware its kind names.
    pub emulated: bool,
    /// The memory node the unit computes on.
    pub node: NodeId,
    /// Capacity of that node in bytes.
    pub memory_bytes: usize,
    /// Limits and capabilities the backend reports (free text).
    pub details: String,
}

/// Where a task may run: anywhere, one unit, or any unit of a kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Placement {
    #[default]
    Any,
    Unit(UnitId),
    Kind(UnitKind),
}
