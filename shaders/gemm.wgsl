// C = alpha * op(A) * op(B) + beta * C on f32, row-major.
// A workgroup of 16x16 invocations computes a 64x64 tile of C, each
// invocation a 4x4 block held in four vec4 registers; A and B pass through
// workgroup memory 16 columns of K at a time, loaded so that neighbouring
// invocations read neighbouring addresses whatever the transposes, and read
// back four values to a load.

// The element type in memory: f32, or f16 in the variant built where the
// adapter has SHADER_F16 (arithmetic stays f32).
alias T = f32;

struct Params {
    m: u32,
    n: u32,
    k: u32,
    trans_a: u32,
    trans_b: u32,
    alpha: f32,
    beta: f32,
    pad: u32,
}

@group(0) @binding(0) var<storage, read> a: array<T>;
@group(0) @binding(1) var<storage, read> b: array<T>;
@group(0) @binding(2) var<storage, read_write> c: array<T>;
@group(0) @binding(3) var<uniform> p: Params;

const TILE: u32 = 64u;
const TK: u32 = 16u;

// Tiles of op(A) and op(B), k-major, four rows (columns) to a vector:
// a_tile[k * 16 + i] holds rows 4i..4i+3 of column k of the A tile.
var<workgroup> a_tile: array<vec4<f32>, 256>;
var<workgroup> b_tile: array<vec4<f32>, 256>;

fn op_a(row: u32, kk: u32) -> f32 {
    if (row >= p.m || kk >= p.k) {
        return 0.0;
    }
    if (p.trans_a == 0u) {
        return f32(a[row * p.k + kk]);
    }
    return f32(a[kk * p.m + row]);
}

fn op_b(kk: u32, col: u32) -> f32 {
    if (kk >= p.k || col >= p.n) {
        return 0.0;
    }
    if (p.trans_b == 0u) {
        return f32(b[kk * p.n + col]);
    }
    return f32(b[col * p.k + kk]);
}

fn store_c(r: u32, col0: u32, v: vec4<f32>) {
    if (r >= p.m) {
        return;
    }
    for (var j = 0u; j < 4u; j++) {
        let col = col0 + j;
        if (col < p.n) {
            let idx = r * p.n + col;
            var out = p.alpha * v[j];
            if (p.beta != 0.0) {
                out = out + p.beta * f32(c[idx]);
            }
            c[idx] = T(out);
        }
    }
}

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row0 = wg.y * TILE;
    let col0 = wg.x * TILE;
    let tid = lid.y * 16u + lid.x;
    // The 4x4 block of this invocation, one vector per row, in registers:
    // fixed names rather than an indexed array, which compilers may spill.
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var t = 0u; t < p.k; t += TK) {
        for (var l = 0u; l < 4u; l++) {
            let e = tid + l * 256u;
            // Walk memory contiguously: along K when A is row-major, along M otherwise.
            var ka = e / TILE;
            var ma = e % TILE;
            if (p.trans_a == 0u) {
                ka = e % TK;
                ma = e / TK;
            }
            a_tile[ka * 16u + ma / 4u][ma % 4u] = op_a(row0 + ma, t + ka);
            var kb = e / TILE;
            var nb = e % TILE;
            if (p.trans_b != 0u) {
                kb = e % TK;
                nb = e / TK;
            }
            b_tile[kb * 16u + nb / 4u][nb % 4u] = op_b(t + kb, col0 + nb);
        }
        workgroupBarrier();
        for (var kk = 0u; kk < TK; kk++) {
            let av = a_tile[kk * 16u + lid.y];
            let bv = b_tile[kk * 16u + lid.x];
            acc0 = fma(vec4<f32>(av.x), bv, acc0);
            acc1 = fma(vec4<f32>(av.y), bv, acc1);
            acc2 = fma(vec4<f32>(av.z), bv, acc2);
            acc3 = fma(vec4<f32>(av.w), bv, acc3);
        }
        workgroupBarrier();
    }
    let r = row0 + lid.y * 4u;
    let col = col0 + lid.x * 4u;
    store_c(r, col, acc0);
    store_c(r + 1u, col, acc1);
    store_c(r + 2u, col, acc2);
    store_c(r + 3u, col, acc3);
}
