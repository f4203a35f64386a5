// C = alpha * op(A) * op(B) + beta * C on f32, row-major.
// A workgroup of 16x16 invocations computes a 64x64 tile of C, each
// invocation a 4x4 block held in registers; A and B pass through workgroup
// memory 16 columns of K at a time, loaded so that neighbouring invocations
// read neighbouring addresses whatever the transposes.

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

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> c: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

const TILE: u32 = 64u;
const TK: u32 = 16u;

// Tiles of op(A) and op(B), k-major: index = k * 64 + (row or column).
var<workgroup> a_tile: array<f32, 1024>;
var<workgroup> b_tile: array<f32, 1024>;

fn op_a(row: u32, kk: u32) -> f32 {
    if (row >= p.m || kk >= p.k) {
        return 0.0;
    }
    if (p.trans_a == 0u) {
        return a[row * p.k + kk];
    }
    return a[kk * p.m + row];
}

fn op_b(kk: u32, col: u32) -> f32 {
    if (kk >= p.k || col >= p.n) {
        return 0.0;
    }
    if (p.trans_b == 0u) {
        return b[kk * p.n + col];
    }
    return b[col * p.k + kk];
}

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row0 = wg.y * TILE;
    let col0 = wg.x * TILE;
    let tid = lid.y * 16u + lid.x;
    var acc: array<f32, 16>;
    for (var i = 0u; i < 16u; i++) {
        acc[i] = 0.0;
    }
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
            a_tile[ka * TILE + ma] = op_a(row0 + ma, t + ka);
            var kb = e / TILE;
            var nb = e % TILE;
            if (p.trans_b != 0u) {
                kb = e % TK;
                nb = e / TK;
            }
            b_tile[kb * TILE + nb] = op_b(t + kb, col0 + nb);
        }
        workgroupBarrier();
        for (var kk = 0u; kk < TK; kk++) {
            var av: array<f32, 4>;
            var bv: array<f32, 4>;
            for (var i = 0u; i < 4u; i++) {
                av[i] = a_tile[kk * TILE + lid.y * 4u + i];
                bv[i] = b_tile[kk * TILE + lid.x * 4u + i];
            }
            for (var i = 0u; i < 4u; i++) {
                for (var j = 0u; j < 4u; j++) {
                    acc[i * 4u + j] = fma(av[i], bv[j], acc[i * 4u + j]);
                }
            }
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < 4u; i++) {
        let r = row0 + lid.y * 4u + i;
        for (var j = 0u; j < 4u; j++) {
            let col = col0 + lid.x * 4u + j;
            if (r < p.m && col < p.n) {
                let idx = r * p.n + col;
                var v = p.alpha * acc[i * 4u + j];
                if (p.beta != 0.0) {
                    v = v + p.beta * c[idx];
                }
                c[idx] = v;
            }
        }
    }
}
