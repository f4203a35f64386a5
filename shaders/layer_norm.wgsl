// Layer norm over the last axis: one workgroup per row; tree reductions for
// the mean and the variance; then (x - mean) / sqrt(var + eps) * gamma + beta.

// The element type in memory: f32, or f16 in the variant built where the
// adapter has SHADER_F16 (arithmetic stays f32).
alias T = f32;

struct Params {
    rows: u32,
    n: u32,
    groups_x: u32,
    eps: f32,
}

@group(0) @binding(0) var<storage, read> x: array<T>;
@group(0) @binding(1) var<storage, read> gamma: array<T>;
@group(0) @binding(2) var<storage, read> beta: array<T>;
@group(0) @binding(3) var<storage, read_write> out: array<T>;
@group(0) @binding(4) var<uniform> p: Params;

var<workgroup> partial: array<f32, 256>;

fn row_sum(li: u32) -> f32 {
    workgroupBarrier();
    for (var s = 128u; s > 0u; s = s >> 1u) {
        if (li < s) {
            partial[li] = partial[li] + partial[li + s];
        }
        workgroupBarrier();
    }
    let total = partial[0];
    workgroupBarrier();
    return total;
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let row = wg.y * p.groups_x + wg.x;
    if (row >= p.rows) {
        return;
    }
    let base = row * p.n;
    let count = f32(p.n);
    var s = 0.0;
    for (var j = li; j < p.n; j += 256u) {
        s += f32(x[base + j]);
    }
    partial[li] = s;
    let mean = row_sum(li) / count;
    var v = 0.0;
    for (var j = li; j < p.n; j += 256u) {
        let d = f32(x[base + j]) - mean;
        v += d * d;
    }
    partial[li] = v;
    let inv = 1.0 / sqrt(row_sum(li) / count + p.eps);
    for (var j = li; j < p.n; j += 256u) {
        out[base + j] = T((f32(x[base + j]) - mean) * inv * f32(gamma[j]) + f32(beta[j]));
    }
}
