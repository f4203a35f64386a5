//! Processing units: their kinds, what the runtime knows about each, and
//! which are out of service.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

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
    /// True when it computes on the host's own cores (see
    /// [`UnitDesc::host_cores`](crate::UnitDesc::host_cores)).
    pub host_cores: bool,
    /// The device it shares with other units, if any (see
    /// [`UnitDesc::resource`](crate::UnitDesc::resource)).
    pub resource: Option<String>,
    /// The memory node the unit computes on.
    pub node: NodeId,
    /// Capacity of that node in bytes.
    pub memory_bytes: usize,
    /// Limits and capabilities the backend reports (free text).
    pub details: String,
    /// Whether it is in service (shared with the runtime, which takes the
    /// unit out of service when its device is lost).
    pub(crate) status: Arc<UnitStatus>,
}

impl UnitInfo {
    /// Whether the unit is out of service: its device reported itself
    /// lost, so it takes no more tasks.
    pub fn is_down(&self) -> bool {
        self.status.is_down()
    }

    /// Why the unit is out of service, or `None` while it takes tasks.
    pub fn down_reason(&self) -> Option<String> {
        self.status.reason()
    }
}

/// One unit's service state: a flag read on every placement decision, and
/// the reason beside it.
#[derive(Debug, Default)]
pub(crate) struct UnitStatus {
    down: AtomicBool,
    reason: Mutex<Option<String>>,
}

impl UnitStatus {
    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::Acquire)
    }

    pub fn reason(&self) -> Option<String> {
        if !self.is_down() {
            return None;
        }
        self.reason.lock().clone()
    }
}

/// Which units are out of service, by unit id.
pub(crate) struct UnitHealth {
    units: Vec<Arc<UnitStatus>>,
}

impl UnitHealth {
    pub fn new(units: &[UnitInfo]) -> UnitHealth {
        UnitHealth {
            units: units.iter().map(|u| u.status.clone()).collect(),
        }
    }

    /// `units` units, all in service (the simulator's).
    pub fn in_service(units: usize) -> UnitHealth {
        UnitHealth {
            units: (0..units).map(|_| Arc::default()).collect(),
        }
    }

    /// Number of units.
    pub fn len(&self) -> usize {
        self.units.len()
    }

    pub fn is_down(&self, unit: UnitId) -> bool {
        self.units.get(unit).is_some_and(|u| u.is_down())
    }

    /// Takes `unit` out of service; true the first time.
    pub fn mark_down(&self, unit: UnitId, why: String) -> bool {
        let Some(status) = self.units.get(unit) else {
            return false;
        };
        let mut reason = status.reason.lock();
        if status.is_down() {
            return false;
        }
        *reason = Some(why);
        status.down.store(true, Ordering::Release);
        true
    }

    /// Why `unit` is down.
    pub fn reason(&self, unit: UnitId) -> Option<String> {
        self.units.get(unit).and_then(|u| u.reason())
    }
}

/// Where a task may run: anywhere, one unit, or any unit of a kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Placement {
    #[default]
    Any,
    Unit(UnitId),
    Kind(UnitKind),
}

impl Placement {
    /// A unit id (`3`) or a unit kind (`gpu`, `lpu`, ...).
    ///
    /// ```
    /// use xpu::{Placement, UnitKind};
    /// assert_eq!(Placement::parse("3")?, Placement::Unit(3));
    /// assert_eq!(Placement::parse("gpu")?, Placement::Kind(UnitKind::Gpu));
    /// assert!(Placement::parse("qpu").is_err());
    /// # Ok::<(), xpu::Error>(())
    /// ```
    pub fn parse(unit: &str) -> crate::Result<Placement> {
        match unit.parse::<UnitId>() {
            Ok(id) => Ok(Placement::Unit(id)),
            Err(_) => UnitKind::parse(unit).map(Placement::Kind),
        }
    }
}
