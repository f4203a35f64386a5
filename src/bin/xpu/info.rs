//! `xpu info`: the units and backends of this machine.

use crate::report::bytes;
use crate::RuntimeArgs;

pub fn run(args: &RuntimeArgs) -> xpu::Result<()> {
    let rt = args.build(None)?;
    println!(
        "{:<4} {:<6} {:<8} {:<40} {:>10} {:>5}  emulated",
        "id", "kind", "backend", "device", "memory", "node"
    );
    for u in rt.units() {
        println!(
            "{:<4} {:<6} {:<8} {:<40} {:>10} {:>5}  {}",
            u.id,
            u.kind,
            u.backend,
            u.device,
            bytes(u.memory_bytes as u64),
            u.node,
            if u.emulated { "yes" } else { "no" }
        );
        if !u.details.is_empty() {
            println!("     {}", u.details);
        }
        let sharers: Vec<String> = rt
            .units()
            .iter()
            .filter(|v| v.id != u.id && v.resource.is_some() && v.resource == u.resource)
            .map(|v| v.id.to_string())
            .collect();
        if let (Some(resource), false) = (&u.resource, sharers.is_empty()) {
            println!(
                "     shares its device ({resource}) with unit {}: placement counts them as one",
                sharers.join(", ")
            );
        }
        if let Some(why) = u.down_reason() {
            println!("     DOWN (takes no tasks): {why}");
        }
    }
    println!();
    for b in rt.backends() {
        match &b.reason {
            None => println!("backend {:<8} up: {} unit(s)", b.name, b.units),
            Some(why) => println!("backend {:<8} not available: {why}", b.name),
        }
    }
    println!("policy: {}", rt.policy().as_str());
    Ok(())
}
