//! Validates every WGSL shader in `shaders/` with naga at build time, so a
//! shader error fails the build with the file, line and message.

use std::path::Path;

#[path = "src/backend/gpu/variant.rs"]
mod variant;

fn main() {
    println!("cargo:rerun-if-changed=shaders");
    let dir = Path::new("shaders");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut files: Vec<_> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "wgsl"))
        .collect();
    files.sort();
    let mut failed = false;
    for path in files {
        println!("cargo:rerun-if-changed={}", path.display());
        let name = path.display().to_string();
        let source = match std::fs::read_to_string(&path) {
            Ok(s) => s,
            Err(e) => {
                println!("cargo:warning={name}: cannot read: {e}");
                failed = true;
                continue;
            }
        };
        let f16 = variant::with_f16_elements(&source);
        failed |= !valid(&name, &source);
        if let Some(f16) = f16 {
            failed |= !valid(&format!("{name} (f16 variant)"), &f16);
        }
    }
    if failed {
        panic!("WGSL validation failed; the messages above give the file, line and error");
    }
}

/// Parses and validates one shader, printing what is wrong.
fn valid(name: &str, source: &str) -> bool {
    let module = match naga::front::wgsl::parse_str(source) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("{}", e.emit_to_string_with_path(source, name));
            println!(
                "cargo:warning={name}: {}",
                first_line(&e.emit_to_string_with_path(source, name))
            );
            return false;
        }
    };
    let mut validator = naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::all(),
    );
    if let Err(e) = validator.validate(&module) {
        eprintln!("{}", e.emit_to_string_with_path(source, name));
        println!(
            "cargo:warning={name}: {}",
            first_line(&e.emit_to_string_with_path(source, name))
        );
        return false;
    }
    true
}

fn first_line(s: &str) -> String {
    s.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .to_string()
}
