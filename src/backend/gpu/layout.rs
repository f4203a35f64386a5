//! A shader's bind group layout, read from its WGSL with naga: what wgpu
//! would derive itself, except that the parameters uniform is bound at a
//! dynamic offset, so that every launch of a pipeline can share one bind
//! group per set of tensors and take its parameters from a ring buffer.

/// The layout entries of group 0 that `entry` uses: each storage buffer
/// read-only when the WGSL declares it `read` (two read-only bindings of
/// one buffer may then share a dispatch), each uniform at a dynamic
/// offset. Errors name what naga found wrong.
pub(super) fn entries(
    source: &str,
    entry: &str,
) -> Result<Vec<wgpu::BindGroupLayoutEntry>, String> {
    let module = naga::front::wgsl::parse_str(source).map_err(|e| e.emit_to_string(source))?;
    let info = naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::all(),
    )
    .validate(&module)
    .map_err(|e| e.emit_to_string(source))?;
    let index = module
        .entry_points
        .iter()
        .position(|ep| ep.name == entry && ep.stage == naga::ShaderStage::Compute)
        .ok_or_else(|| format!("no compute entry point `{entry}`"))?;
    let uses = info.get_entry_point(index);
    let mut entries: Vec<wgpu::BindGroupLayoutEntry> = module
        .global_variables
        .iter()
        .filter(|(handle, _)| !uses[*handle].is_empty())
        .filter_map(|(_, var)| {
            let binding = var.binding.as_ref().filter(|b| b.group == 0)?;
            let ty = match var.space {
                naga::AddressSpace::Storage { access } => wgpu::BufferBindingType::Storage {
                    read_only: !access.contains(naga::StorageAccess::STORE),
                },
                naga::AddressSpace::Uniform => wgpu::BufferBindingType::Uniform,
                _ => return None,
            };
            Some(wgpu::BindGroupLayoutEntry {
                binding: binding.binding,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    has_dynamic_offset: ty == wgpu::BufferBindingType::Uniform,
                    ty,
                    min_binding_size: None,
                },
                count: None,
            })
        })
        .collect();
    entries.sort_by_key(|e| e.binding);
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::entries;

    #[test]
    fn storage_access_and_dynamic_uniform_come_from_the_wgsl() {
        let source = "
            struct P { n: u32, pad0: u32, pad1: u32, pad2: u32 }
            @group(0) @binding(0) var<storage, read> x: array<f32>;
            @group(0) @binding(1) var<storage, read_write> y: array<f32>;
            @group(0) @binding(2) var<uniform> p: P;
            @group(0) @binding(3) var<storage, read_write> unused: array<f32>;
            @compute @workgroup_size(64)
            fn main(@builtin(global_invocation_id) i: vec3<u32>) {
                if (i.x < p.n) { y[i.x] = x[i.x]; }
            }";
        let found = entries(source, "main").unwrap();
        let kinds: Vec<(u32, wgpu::BindingType)> =
            found.iter().map(|e| (e.binding, e.ty)).collect();
        let storage = |read_only| wgpu::BindingType::Buffer {
            ty: wgpu::BufferBindingType::Storage { read_only },
            has_dynamic_offset: false,
            min_binding_size: None,
        };
        let uniform = wgpu::BindingType::Buffer {
            ty: wgpu::BufferBindingType::Uniform,
            has_dynamic_offset: true,
            min_binding_size: None,
        };
        assert_eq!(
            kinds,
            vec![(0, storage(true)), (1, storage(false)), (2, uniform)]
        );
        assert!(entries(source, "start")
            .unwrap_err()
            .contains("no compute entry point"));
    }
}
