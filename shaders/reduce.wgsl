// Sum or max of x viewed as [outer, n, inner] along the middle axis.
// `main`: one workgroup per output; each invocation folds a strided share
// of the axis, then a tree in workgroup memory combines the 256 partial
// results. For a long axis and few outputs, `partial` runs first with
// `chunks` workgroups per output, each folding one stretch of the axis into
// out[output * chunks + chunk]; `main` then reduces those partial results
// (outer = outputs, n = chunks, inner = 1).

// The element type in memory: f32, or f16 in the variant built where the
// adapter has SHADER_F16 (arithmetic stays f32).
alias T = f32;

struct Params {
    outer: u32,
    n: u32,
    inner: u32,
    op: u32,      // REDUCE_SUM or REDUCE_MAX
    groups_x: u32,
    chunks: u32,  // `partial` only
    pad1: u32,
    pad2: u32,
}

@group(0) @binding(0) var<storage, read> x: array<T>;
@group(0) @binding(1) var<storage, read_write> out: array<T>;
@group(0) @binding(2) var<uniform> p: Params;

var<workgroup> partial_results: array<f32, 256>;

fn combine(u: f32, v: f32) -> f32 {
    if (p.op == REDUCE_SUM) {
        return u + v;
    }
    return max(u, v);
}

fn identity() -> f32 {
    if (p.op == REDUCE_MAX) {
        return -3.4028235e38;
    }
    return 0.0;
}

// Folds x[(oo * n + j) * inner + ii] for j in [start, end) over the
// workgroup; every invocation gets the result.
fn fold(li: u32, oo: u32, ii: u32, start: u32, end: u32) -> f32 {
    var acc = identity();
    for (var j = start + li; j < end; j += 256u) {
        acc = combine(acc, f32(x[(oo * p.n + j) * p.inner + ii]));
    }
    partial_results[li] = acc;
    workgroupBarrier();
    for (var s = 128u; s > 0u; s = s >> 1u) {
        if (li < s) {
            partial_results[li] = combine(partial_results[li], partial_results[li + s]);
        }
        workgroupBarrier();
    }
    return partial_results[0];
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let o = wg.y * p.groups_x + wg.x;
    if (o >= p.outer * p.inner) {
        return;
    }
    let result = fold(li, o / p.inner, o % p.inner, 0u, p.n);
    if (li == 0u) {
        out[o] = T(result);
    }
}

@compute @workgroup_size(256)
fn partial(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let g = wg.y * p.groups_x + wg.x;
    if (g >= p.outer * p.inner * p.chunks) {
        return;
    }
    let o = g / p.chunks;
    let stretch = (p.n + p.chunks - 1u) / p.chunks;
    let start = (g % p.chunks) * stretch;
    let result = fold(li, o / p.inner, o % p.inner, start, min(start + stretch, p.n));
    if (li == 0u) {
        out[g] = T(result);
    }
}
