// Softmax along the last axis: one workgroup per row, with tree reductions
// for the row's maximum and for the sum of exponentials.

// The element type in memory: f32, or f16 in the variant built where the
// adapter has SHADER_F16 (arithmetic stays f32).
alias T = f32;

struct Params {
    rows: u32,
    n: u32,
    groups_x: u32,
    pad: u32,
}

@group(0) @binding(0) var<storage, read> x: array<T>;
@group(0) @binding(1) var<storage, read_write> out: array<T>;
@group(0) @binding(2) var<uniform> p: Params;

var<workgroup> partial: array<f32, 256>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let row = wg.y * p.groups_x + wg.x;
    if (row >= p.rows) {
        return;
    }
    let base = row * p.n;
    var m = -3.4028235e38;
    for (var j = li; j < p.n; j += 256u) {
        m = max(m, f32(x[base + j]));
    }
    partial[li] = m;
    workgroupBarrier();
    for (var s = 128u; s > 0u; s = s >> 1u) {
        if (li < s) {
            partial[li] = max(partial[li], partial[li + s]);
        }
        workgroupBarrier();
    }
    let row_max = partial[0];
    workgroupBarrier();
    var total = 0.0;
    for (var j = li; j < p.n; j += 256u) {
        total += exp(f32(x[base + j]) - row_max);
    }
    partial[li] = total;
    workgroupBarrier();
    for (var s = 128u; s > 0u; s = s >> 1u) {
        if (li < s) {
            partial[li] = partial[li] + partial[li + s];
        }
        workgroupBarrier();
    }
    let inv = 1.0 / partial[0];
    for (var j = li; j < p.n; j += 256u) {
        out[base + j] = T(exp(f32(x[base + j]) - row_max) * inv);
    }
}
