//! Which OpenCL devices become which units.
//!
//! **The rule.** Devices of type ACCELERATOR or CUSTOM become units; CPU
//! and GPU devices do not (the CPU and wgpu backends serve those). An
//! accelerator or custom device whose device, vendor or platform name
//! contains an NPU pattern (`npu`, `neural`, `ai boost`, `ethos`, `hexagon`)
//! is an NPU; one matching an FPGA pattern (`fpga`, `altera`, `xilinx`,
//! `alveo`, `agilex`, `stratix`, `arria`, `versal`, `vitis`) is an FPGA.
//! Otherwise an ACCELERATOR device is an FPGA (the OpenCL type FPGA
//! platforms report) and a CUSTOM device an NPU.
//!
//! **The override.** `XPU_OPENCL_UNITS` (or
//! [`RuntimeBuilder::opencl_units`](crate::RuntimeBuilder::opencl_units))
//! replaces the rule with an explicit list: `fpga=0:0,npu=0:1` makes device
//! 0 of platform 0 an FPGA unit and device 1 an NPU unit. Any device may be
//! named, so one device can present both kinds, each its own unit with its
//! own memory node. A unit whose device is CPU or GPU typed, or an
//! accelerator whose names match the other kind, is marked emulated.
//!
//! ```
//! use xpu::backend::opencl::{parse_units, UnitRequest};
//! use xpu::UnitKind;
//! let units = parse_units("fpga=0:0, npu=0:1").unwrap();
//! assert_eq!(units[1], UnitRequest { kind: UnitKind::Npu, platform: 0, device: 1 });
//! assert!(parse_units("gpu=0:0").is_err());
//! ```

use crate::error::{Error, Result};
use crate::unit::UnitKind;

/// The OpenCL device types the rule distinguishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceType {
    Cpu,
    Gpu,
    Accelerator,
    Custom,
    Other,
}

impl DeviceType {
    /// Upper-case name, as OpenCL spells the type.
    pub fn as_str(&self) -> &'static str {
        match self {
            DeviceType::Cpu => "CPU",
            DeviceType::Gpu => "GPU",
            DeviceType::Accelerator => "ACCELERATOR",
            DeviceType::Custom => "CUSTOM",
            DeviceType::Other => "OTHER",
        }
    }
}

/// One OpenCL device as discovery sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceListing {
    pub platform: usize,
    pub device: usize,
    pub platform_name: String,
    pub name: String,
    pub vendor: String,
    pub device_type: DeviceType,
}

/// One entry of an `XPU_OPENCL_UNITS` list: present device
/// `platform:device` as a unit of `kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnitRequest {
    pub kind: UnitKind,
    pub platform: usize,
    pub device: usize,
}

/// A device chosen as a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Assignment {
    pub kind: UnitKind,
    pub platform: usize,
    pub device: usize,
    pub emulated: bool,
}

const NPU_PATTERNS: [&str; 5] = ["npu", "neural", "ai boost", "ethos", "hexagon"];
const FPGA_PATTERNS: [&str; 9] = [
    "fpga", "altera", "xilinx", "alveo", "agilex", "stratix", "arria", "versal", "vitis",
];

/// The unit kind the rule gives a device, or `None` for CPU and GPU devices.
pub fn kind_by_rule(d: &DeviceListing) -> Option<UnitKind> {
    let names = format!("{} {} {}", d.name, d.vendor, d.platform_name).to_ascii_lowercase();
    let matches = |patterns: &[&str]| patterns.iter().any(|p| names.contains(p));
    match d.device_type {
        DeviceType::Accelerator | DeviceType::Custom if matches(&NPU_PATTERNS) => {
            Some(UnitKind::Npu)
        }
        DeviceType::Accelerator | DeviceType::Custom if matches(&FPGA_PATTERNS) => {
            Some(UnitKind::Fpga)
        }
        DeviceType::Accelerator => Some(UnitKind::Fpga),
        DeviceType::Custom => Some(UnitKind::Npu),
        _ => None,
    }
}

/// Parses an `XPU_OPENCL_UNITS` list such as `fpga=0:0,npu=0:0`.
pub fn parse_units(spec: &str) -> Result<Vec<UnitRequest>> {
    let bad = |entry: &str, why: &str| {
        Error::Config(format!(
            "XPU_OPENCL_UNITS entry `{entry}`: {why} (expected KIND=PLATFORM:DEVICE, \
             KIND fpga or npu, e.g. `fpga=0:0,npu=0:0`)"
        ))
    };
    spec.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(|entry| {
            let (kind, place) = entry.split_once('=').ok_or_else(|| bad(entry, "no `=`"))?;
            let kind = match kind.trim().to_ascii_lowercase().as_str() {
                "fpga" => UnitKind::Fpga,
                "npu" => UnitKind::Npu,
                other => return Err(bad(entry, &format!("`{other}` is not fpga or npu"))),
            };
            let (platform, device) = place
                .split_once(':')
                .ok_or_else(|| bad(entry, "no `:` between platform and device"))?;
            let index = |s: &str, what: &str| {
                s.trim()
                    .parse::<usize>()
                    .map_err(|_| bad(entry, &format!("{what} `{}` is not a number", s.trim())))
            };
            Ok(UnitRequest {
                kind,
                platform: index(platform, "platform")?,
                device: index(device, "device")?,
            })
        })
        .collect()
}

/// The unit list to use: `spec` when given, else `XPU_OPENCL_UNITS` when
/// set and not empty, else none (the rule decides).
pub fn unit_requests(spec: Option<&str>) -> Result<Option<Vec<UnitRequest>>> {
    let from_env = std::env::var("XPU_OPENCL_UNITS")
        .ok()
        .filter(|s| !s.trim().is_empty());
    spec.or(from_env.as_deref()).map(parse_units).transpose()
}

/// The units for these devices: by the rule, or as `requests` say when
/// given. A request naming a device that does not exist is an error that
/// lists the devices there are.
pub fn assign(
    devices: &[DeviceListing],
    requests: Option<&[UnitRequest]>,
) -> std::result::Result<Vec<Assignment>, String> {
    let Some(requests) = requests else {
        return Ok(devices
            .iter()
            .filter_map(|d| {
                kind_by_rule(d).map(|kind| Assignment {
                    kind,
                    platform: d.platform,
                    device: d.device,
                    emulated: false,
                })
            })
            .collect());
    };
    requests
        .iter()
        .map(|r| {
            let d = devices
                .iter()
                .find(|d| d.platform == r.platform && d.device == r.device)
                .ok_or_else(|| {
                    let found: Vec<String> = devices
                        .iter()
                        .map(|d| format!("{}:{} {}", d.platform, d.device, d.name))
                        .collect();
                    format!(
                        "XPU_OPENCL_UNITS names device {}:{}, which does not exist (devices: {})",
                        r.platform,
                        r.device,
                        if found.is_empty() {
                            "none".to_string()
                        } else {
                            found.join(", ")
                        }
                    )
                })?;
            Ok(Assignment {
                kind: r.kind,
                platform: r.platform,
                device: r.device,
                emulated: kind_by_rule(d) != Some(r.kind),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(name: &str, vendor: &str, device_type: DeviceType) -> DeviceListing {
        DeviceListing {
            platform: 0,
            device: 0,
            platform_name: "Some Platform".into(),
            name: name.into(),
            vendor: vendor.into(),
            device_type,
        }
    }

    #[test]
    fn the_rule_maps_accelerators_by_name_and_leaves_cpus_and_gpus() {
        let cases = [
            (
                device(
                    "Intel(R) FPGA Emulation Device",
                    "Intel(R) Corporation",
                    DeviceType::Accelerator,
                ),
                Some(UnitKind::Fpga),
            ),
            (
                device("xilinx_u250_gen3x16", "Xilinx", DeviceType::Accelerator),
                Some(UnitKind::Fpga),
            ),
            (
                device(
                    "Intel(R) AI Boost",
                    "Intel(R) Corporation",
                    DeviceType::Accelerator,
                ),
                Some(UnitKind::Npu),
            ),
            (
                device("Mystery", "Acme", DeviceType::Accelerator),
                Some(UnitKind::Fpga),
            ),
            (
                device("Mystery", "Acme", DeviceType::Custom),
                Some(UnitKind::Npu),
            ),
            (
                device("pthread-skylake", "AuthenticAMD", DeviceType::Cpu),
                None,
            ),
            (
                device("NVIDIA H100", "NVIDIA Corporation", DeviceType::Gpu),
                None,
            ),
        ];
        for (d, want) in cases {
            assert_eq!(kind_by_rule(&d), want, "{}", d.name);
        }
    }

    #[test]
    fn an_override_presents_a_cpu_device_as_emulated_fpga_and_npu() {
        let cpu = device("pthread-skylake", "AuthenticAMD", DeviceType::Cpu);
        assert!(assign(std::slice::from_ref(&cpu), None).unwrap().is_empty());
        let requests = parse_units("fpga=0:0,npu=0:0").unwrap();
        let units = assign(std::slice::from_ref(&cpu), Some(&requests)).unwrap();
        assert_eq!(units.len(), 2);
        assert!(units.iter().all(|u| u.emulated));
        assert_eq!(units[0].kind, UnitKind::Fpga);
        assert_eq!(units[1].kind, UnitKind::Npu);
        let fpga = device("Agilex 7", "Intel", DeviceType::Accelerator);
        let units = assign(&[fpga], Some(&requests)).unwrap();
        assert!(!units[0].emulated, "an FPGA presented as FPGA is real");
        assert!(units[1].emulated, "an FPGA presented as NPU is not");
    }

    #[test]
    fn bad_lists_and_missing_devices_say_what_is_wrong() {
        for (spec, says) in [
            ("fpga", "no `=`"),
            ("gpu=0:0", "`gpu` is not fpga or npu"),
            ("npu=0", "no `:`"),
            ("npu=x:0", "platform `x` is not a number"),
        ] {
            let e = parse_units(spec).unwrap_err().to_string();
            assert!(e.contains(says), "{spec}: {e}");
        }
        let cpu = device("pthread", "AMD", DeviceType::Cpu);
        let e = assign(&[cpu], Some(&parse_units("fpga=1:0").unwrap())).unwrap_err();
        assert!(e.contains("1:0") && e.contains("0:0 pthread"), "{e}");
    }
}
