// Sum or max of x viewed as [outer, n, inner] along the middle axis.
// One workgroup per output: each invocation folds a strided share of the
// axis, then a tree in workgroup memory combines the 256 partial results.

struct Params {
    outer: u32,
    n: u32,
    inner: u32,
    op: u32,      // 0 sum, 1 max
    groups_x: u32,
    pad0: u32,
    pad1: u32,
    pad2: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

var<workgroup> partial: array<f32, 256>;

fn combine(u: f32, v: f32) -> f32 {
    if (p.op == 0u) {
        return u + v;
    }
    return max(u, v);
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let o = wg.y * p.groups_x + wg.x;
    if (o >= p.outer * p.inner) {
        return;
    }
    let oo = o / p.inner;
    let ii = o % p.inner;
    var acc = 0.0;
    if (p.op == 1u) {
        acc = -3.4028235e38;
    }
    for (var j = li; j < p.n; j += 256u) {
        acc = combine(acc, x[(oo * p.n + j) * p.inner + ii]);
    }
    partial[li] = acc;
    workgroupBarrier();
    for (var s = 128u; s > 0u; s = s >> 1u) {
        if (li < s) {
            partial[li] = combine(partial[li], partial[li + s]);
        }
        workgroupBarrier();
    }
    if (li == 0u) {
        out[o] = partial[0];
    }
}
