//! What a launch binds, made once and reused: making a bind group and a
//! parameters buffer was most of a tiny launch's cost. Parameters go into
//! a ring of uniform memory, bound at a dynamic offset; bind groups are
//! kept per pipeline and set of tensor buffers, and go with their buffers.

use std::collections::HashMap;

use parking_lot::Mutex;
use smallvec::SmallVec;

use super::kernels::ShaderKey;
use crate::dtype::DType;

/// Bytes of parameters the ring holds; one submission must not need more
/// (a launch needs at most two slots).
const RING_BYTES: u64 = 128 << 10;

/// Launch parameters, written into one uniform buffer in turn. A slot is
/// written through the queue, so its new content lands after every
/// submission made before the write: a slot is free again as soon as the
/// ring comes round to it, without waiting for the device.
pub(super) struct ParamRing {
    buffer: wgpu::Buffer,
    /// Offset of the next slot.
    next: Mutex<u64>,
    /// Offsets are multiples of this (the device's uniform offset alignment).
    align: u64,
}

impl ParamRing {
    pub fn new(device: &wgpu::Device, limits: &wgpu::Limits) -> ParamRing {
        ParamRing {
            buffer: device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("xpu launch parameters"),
                size: RING_BYTES,
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }),
            next: Mutex::new(0),
            align: u64::from(limits.min_uniform_buffer_offset_alignment.max(4)),
        }
    }

    pub fn buffer(&self) -> &wgpu::Buffer {
        &self.buffer
    }

    /// Writes `params` into the next slot and returns its offset, or
    /// `None` when they are larger than the whole ring.
    pub fn write(&self, queue: &wgpu::Queue, params: &[u32]) -> Option<u32> {
        let bytes: &[u8] = bytemuck::cast_slice(params);
        let len = (bytes.len() as u64).max(4);
        if len > RING_BYTES {
            return None;
        }
        let offset = {
            let mut next = self.next.lock();
            if *next + len > RING_BYTES {
                *next = 0;
            }
            let offset = *next;
            *next = (offset + len).div_ceil(self.align) * self.align;
            offset
        };
        queue.write_buffer(&self.buffer, offset, bytes);
        u32::try_from(offset).ok()
    }
}

/// What a bind group is made for: a pipeline, the size of its parameters,
/// and the tensor buffers at bindings 0, 1, ... (each a buffer, an offset
/// and a size: a view binds a range of its whole's buffer).
#[derive(PartialEq, Eq, Hash)]
pub(super) struct BindKey {
    pub shader: ShaderKey,
    pub dtype: DType,
    pub params_bytes: u64,
    pub buffers: SmallVec<[(wgpu::Buffer, u64, u64); 4]>,
}

/// Bind groups kept at most; past this the cache starts again empty.
const KEPT: usize = 1024;

/// Bind groups of a device, by what they were made for. A kept bind group
/// holds its buffers: a buffer's entries are dropped with the buffer
/// ([`BindGroups::forget`]), so that its memory is freed when xpu frees it.
#[derive(Default)]
pub(super) struct BindGroups {
    kept: Mutex<HashMap<BindKey, wgpu::BindGroup>>,
}

impl BindGroups {
    /// The bind group for `key`, made by `make` the first time.
    pub fn get_or_make(
        &self,
        key: BindKey,
        make: impl FnOnce() -> wgpu::BindGroup,
    ) -> wgpu::BindGroup {
        let mut kept = self.kept.lock();
        if let Some(group) = kept.get(&key) {
            return group.clone();
        }
        if kept.len() >= KEPT {
            kept.clear();
        }
        let group = make();
        kept.insert(key, group.clone());
        group
    }

    /// Drops every bind group that binds `buffer`.
    pub fn forget(&self, buffer: &wgpu::Buffer) {
        self.kept
            .lock()
            .retain(|key, _| !key.buffers.iter().any(|(b, ..)| b == buffer));
    }

    /// Bind groups kept.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.kept.lock().len()
    }
}
