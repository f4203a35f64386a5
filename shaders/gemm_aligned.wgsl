// C = alpha * A * B + beta * C on f32, row-major, for the common aligned
// case: no transposes, M a multiple of 128, N of 64, K of 16. A workgroup
// of 16x16 invocations computes a 128x64 tile of C, each invocation an 8x4
// block in eight vec4 registers; no bounds checks, and every global load
// and store is four floats wide.

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

@group(0) @binding(0) var<storage, read> a: array<vec4<T>>;
@group(0) @binding(1) var<storage, read> b: array<vec4<T>>;
@group(0) @binding(2) var<storage, read_write> c: array<vec4<T>>;
@group(0) @binding(3) var<uniform> p: Params;

const ROWS: u32 = 128u;
const COLS: u32 = 64u;
const TK: u32 = 16u;

// k-major tiles, four rows (columns) to a vector:
// a_tile[k * 32 + i] holds rows 4i..4i+3 of column k of the A tile.
var<workgroup> a_tile: array<vec4<f32>, 512>;
var<workgroup> b_tile: array<vec4<f32>, 256>;

fn store_row(r: u32, col: u32, v: vec4<f32>) {
    let idx = (r * p.n + col) / 4u;
    var out = p.alpha * v;
    if (p.beta != 0.0) {
        out = out + p.beta * vec4<f32>(c[idx]);
    }
    c[idx] = vec4<T>(out);
}

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row0 = wg.y * ROWS;
    let col0 = wg.x * COLS;
    let tid = lid.y * 16u + lid.x;
    let k4 = p.k / 4u;
    let n4 = p.n / 4u;
    // This invocation's share of each tile load: two vec4 of A (four
    // consecutive k of one row each), one vec4 of B (four consecutive columns).
    let a_row = tid / 4u;
    let a_kv = tid % 4u;
    let b_k = tid / 16u;
    let b_cv = tid % 16u;
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    var acc4 = vec4<f32>(0.0);
    var acc5 = vec4<f32>(0.0);
    var acc6 = vec4<f32>(0.0);
    var acc7 = vec4<f32>(0.0);
    for (var t = 0u; t < p.k; t += TK) {
        for (var h = 0u; h < 2u; h++) {
            let row = a_row + h * 64u;
            let av = vec4<f32>(a[(row0 + row) * k4 + t / 4u + a_kv]);
            for (var j = 0u; j < 4u; j++) {
                a_tile[(a_kv * 4u + j) * 32u + row / 4u][row % 4u] = av[j];
            }
        }
        b_tile[b_k * 16u + b_cv] = vec4<f32>(b[(t + b_k) * n4 + col0 / 4u + b_cv]);
        workgroupBarrier();
        for (var kk = 0u; kk < TK; kk++) {
            let x0 = a_tile[kk * 32u + lid.y * 2u];
            let x1 = a_tile[kk * 32u + lid.y * 2u + 1u];
            let y = b_tile[kk * 16u + lid.x];
            acc0 = fma(vec4<f32>(x0.x), y, acc0);
            acc1 = fma(vec4<f32>(x0.y), y, acc1);
            acc2 = fma(vec4<f32>(x0.z), y, acc2);
            acc3 = fma(vec4<f32>(x0.w), y, acc3);
            acc4 = fma(vec4<f32>(x1.x), y, acc4);
            acc5 = fma(vec4<f32>(x1.y), y, acc5);
            acc6 = fma(vec4<f32>(x1.z), y, acc6);
            acc7 = fma(vec4<f32>(x1.w), y, acc7);
        }
        workgroupBarrier();
    }
    let r = row0 + lid.y * 8u;
    let col = col0 + lid.x * 4u;
    store_row(r + 0u, col, acc0);
    store_row(r + 1u, col, acc1);
    store_row(r + 2u, col, acc2);
    store_row(r + 3u, col, acc3);
    store_row(r + 4u, col, acc4);
    store_row(r + 5u, col, acc5);
    store_row(r + 6u, col, acc6);
    store_row(r + 7u, col, acc7);
}
