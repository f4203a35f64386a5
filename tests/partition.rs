//! Partitions through the public API: tasks on a tensor and on its parts
//! (nested too) in random order, under every policy and on every unit kind
//! present, equal a sequential replay; the bytes gathers and scatters copy;
//! eviction of parts and of the whole; the errors.

mod common;
#[path = "../examples/custom_unit/dsp.rs"]
#[allow(dead_code)] // only the backend is used here, not its `fir` kernel
mod dsp;

use std::sync::Arc;

use common::rng::Rng;
use xpu::{
    BinaryOp, DType, Error, Kernel, Mode, Partition, Placement, Policy, Runtime, TaskOptions,
    Tensor, UnaryOp, UnitKind, HOST,
};

/// A tensor of the family and where its elements sit in the root.
struct Member {
    tensor: Tensor,
    /// Root element index of each of its elements, in its row-major order.
    at: Vec<usize>,
    writable: bool,
}

/// The members of `parent` cut by `partition`, given its own root indices.
fn parts_of(rt: &Runtime, parent: &Member, p: Partition) -> Vec<Member> {
    let shape = parent.tensor.shape().to_vec();
    let writable = parent.writable && !p.overlaps();
    let parts = parent.tensor.partition(rt, p.clone()).unwrap();
    parts
        .iter()
        .enumerate()
        .map(|(i, part)| {
            let start = start_of(&p, i, &shape);
            let at = indices(part.shape())
                .map(|i| {
                    let pos: Vec<usize> = i.iter().zip(&start).map(|(a, b)| a + b).collect();
                    parent.at[flat(&shape, &pos)]
                })
                .collect();
            Member {
                tensor: part.clone(),
                at,
                writable,
            }
        })
        .collect()
}

/// Where part `i` of `p` starts in a tensor of `shape` (the partitions
/// used here).
fn start_of(p: &Partition, i: usize, shape: &[usize]) -> Vec<usize> {
    let mut start = vec![0; shape.len()];
    match *p {
        Partition::Axis { axis, size } => start[axis] = i * size,
        Partition::Blocks { rows, cols } => {
            let across = shape[1].div_ceil(cols);
            start[0] = i / across * rows;
            start[1] = i % across * cols;
        }
        Partition::Bands { rows, halo } => start[0] = (i * rows).saturating_sub(halo),
        Partition::Sizes { .. } => unreachable!("not used here"),
    }
    start
}

fn indices(shape: &[usize]) -> impl Iterator<Item = Vec<usize>> + '_ {
    let total: usize = shape.iter().product();
    (0..total).map(move |mut i| {
        let mut idx = vec![0; shape.len()];
        for d in (0..shape.len()).rev() {
            idx[d] = i % shape[d];
            i /= shape[d];
        }
        idx
    })
}

fn flat(shape: &[usize], at: &[usize]) -> usize {
    shape.iter().zip(at).fold(0, |acc, (n, i)| acc * n + i)
}

/// The root `[8, 6]` and its family: row blocks (shared memory), 2-D
/// blocks and column blocks (copied), a row block cut into columns, a
/// block cut into rows, and read-only bands with a halo.
fn family(rt: &Runtime, start: &[f32]) -> Vec<Member> {
    let root = Member {
        tensor: rt.tensor(&[8, 6], start).unwrap().named("W"),
        at: (0..48).collect(),
        writable: true,
    };
    let rows = parts_of(rt, &root, Partition::rows(3));
    let tiles = parts_of(rt, &root, Partition::blocks(3, 4));
    let cols = parts_of(rt, &root, Partition::cols(4));
    let bands = parts_of(rt, &root, Partition::bands(3, 1));
    let nested_cols = parts_of(rt, &rows[1], Partition::cols(2));
    let nested_rows = parts_of(rt, &tiles[0], Partition::rows(2));
    let mut all = vec![root];
    for group in [rows, tiles, cols, bands, nested_cols, nested_rows] {
        all.extend(group);
    }
    all
}

fn constant(rt: &Runtime, shape: &[usize], v: f32) -> Tensor {
    rt.tensor(shape, vec![v; shape.iter().product()]).unwrap()
}

/// Submits on `placement`, or anywhere if no unit there runs it.
fn submit(rt: &Runtime, kernel: &Kernel, accesses: &[xpu::Access], placement: Placement) {
    match rt.submit_with(kernel, accesses, TaskOptions::default().on(placement)) {
        Err(Error::NoCapableUnit { .. }) => {
            rt.submit(kernel, accesses).unwrap();
        }
        other => {
            other.unwrap();
        }
    }
}

/// Random tasks on the members; returns nothing, panics on a mismatch.
fn interleave(policy: Policy, seed: u64) {
    let rt = Runtime::builder().policy(policy).build().unwrap();
    let mut rng = Rng(seed);
    let mut model: Vec<f32> = (0..48).map(|i| i as f32).collect();
    let members = family(&rt, &model);
    let mut placements = vec![Placement::Any];
    for unit in rt.units() {
        if !placements.contains(&Placement::Kind(unit.kind)) {
            placements.push(Placement::Kind(unit.kind));
        }
    }
    let add = Kernel::Binary(BinaryOp::Add);
    let mul = Kernel::Binary(BinaryOp::Mul);
    let mut snapshots = Vec::new();
    for step in 0..40 {
        let m = &members[rng.below(members.len())];
        let shape = m.tensor.shape().to_vec();
        let place = placements[rng.below(placements.len())];
        let zeros = constant(&rt, &shape, 0.0);
        match rng.below(4) {
            // x := k - x, in two tasks (the second writes x without reading it)
            0 if m.writable => {
                let k = rng.below(9) as f32;
                let tmp = rt.empty(&shape, DType::F32);
                let minus = constant(&rt, &shape, -1.0);
                submit(
                    &rt,
                    &mul,
                    &[m.tensor.read(), minus.read(), tmp.write()],
                    place,
                );
                let kt = constant(&rt, &shape, k);
                submit(&rt, &add, &[tmp.read(), kt.read(), m.tensor.write()], place);
                for &i in &m.at {
                    model[i] = k - model[i];
                }
            }
            // x := fresh values
            1 if m.writable => {
                let values: Vec<f32> = (0..m.at.len()).map(|_| rng.below(50) as f32).collect();
                let src = rt.tensor(&shape, &values).unwrap();
                submit(
                    &rt,
                    &add,
                    &[src.read(), zeros.read(), m.tensor.write()],
                    place,
                );
                for (&i, v) in m.at.iter().zip(values) {
                    model[i] = v;
                }
            }
            // a task reads x; its copy is checked at the end
            2 => {
                let out = rt.empty(&shape, DType::F32);
                submit(
                    &rt,
                    &add,
                    &[m.tensor.read(), zeros.read(), out.write()],
                    place,
                );
                let expected: Vec<f32> = m.at.iter().map(|&i| model[i]).collect();
                snapshots.push((step, out, expected));
            }
            // the caller reads x now
            _ => {
                let expected: Vec<f32> = m.at.iter().map(|&i| model[i]).collect();
                let name = m.tensor.name().unwrap_or_default().to_string();
                assert_eq!(
                    rt.read::<f32>(&m.tensor).unwrap(),
                    expected,
                    "{policy:?} seed {seed} step {step}: read of {name}"
                );
            }
        }
    }
    for (step, out, expected) in snapshots {
        assert_eq!(
            rt.read::<f32>(&out).unwrap(),
            expected,
            "{policy:?} seed {seed}: the task of step {step}"
        );
    }
    for m in &members {
        let expected: Vec<f32> = m.at.iter().map(|&i| model[i]).collect();
        assert_eq!(
            rt.read::<f32>(&m.tensor).unwrap(),
            expected,
            "{policy:?} seed {seed}: final read of {:?}",
            m.tensor.name()
        );
    }
}

#[test]
fn tasks_on_a_tensor_and_its_parts_in_any_order_equal_a_sequential_replay() {
    for policy in Policy::ALL {
        for seed in 1..=3 {
            interleave(policy, seed);
        }
    }
}

fn cpu_only() -> Runtime {
    Runtime::builder()
        .cpu_units(2)
        .device_discovery(false)
        .build()
        .unwrap()
}

/// Adds 1 to the first element, in place.
fn bump_first() -> Kernel {
    Kernel::custom("bump_first", &[Mode::ReadWrite], |args| {
        args[0].as_f32_mut()?[0] += 1.0;
        Ok(())
    })
}

fn host_copied(rt: &Runtime) -> u64 {
    rt.memory_stats()[HOST].bytes_copied
}

#[test]
fn row_blocks_on_the_host_share_memory_and_copy_nothing() {
    let rt = cpu_only();
    let n = 4096;
    let a = rt.zeros(&[n, n], DType::F32).unwrap().named("A");
    let rows = a.partition(&rt, Partition::rows(256)).unwrap();
    assert_eq!(rows.len(), 16);
    for part in rows.iter() {
        rt.submit(&bump_first(), &[part.rw()]).unwrap();
    }
    let whole = rt.read::<f32>(&a).unwrap();
    for block in 0..16 {
        assert_eq!(whole[block * 256 * n], 1.0, "block {block}");
        assert_eq!(whole[block * 256 * n + 1], 0.0, "block {block}");
    }
    // and back to the parts after a task on the whole
    rt.submit(&bump_first(), &[a.rw()]).unwrap();
    assert_eq!(rt.read::<f32>(&rows[0]).unwrap()[0], 2.0);
    assert_eq!(host_copied(&rt), 0);
    assert!(rt.transfers().is_empty(), "{:?}", rt.transfers());
}

#[test]
fn blocks_that_are_not_contiguous_are_copied_and_counted_exactly() {
    let rt = cpu_only();
    let a = rt
        .tensor(&[4, 4], (0..16).map(|v| v as f32).collect::<Vec<_>>())
        .unwrap()
        .named("A");
    let tiles = a.partition(&rt, Partition::blocks(2, 2)).unwrap();
    // The first task on a block scatters all four (64 bytes)...
    rt.submit(&bump_first(), &[tiles.at(&[1, 1]).unwrap().rw()])
        .unwrap();
    rt.wait_all();
    assert_eq!(host_copied(&rt), 64);
    // ...a read of the whole gathers them (64 more)...
    let whole = rt.read::<f32>(&a).unwrap();
    assert_eq!(whole[10], 11.0);
    assert_eq!(host_copied(&rt), 128);
    // ...a second read finds it current, and the blocks are still live.
    rt.read::<f32>(&a).unwrap();
    rt.submit(&bump_first(), &[tiles[0].rw()]).unwrap();
    assert_eq!(rt.read::<f32>(&tiles[0]).unwrap(), vec![1.0, 1.0, 4.0, 5.0]);
    assert_eq!(host_copied(&rt), 128);
    // Row blocks of the same tensor share its memory: the gather that
    // makes the whole current again is the only copy.
    let rows = a.partition(&rt, Partition::rows(2)).unwrap();
    assert_eq!(
        rt.read::<f32>(&rows[0]).unwrap(),
        vec![1.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]
    );
    assert_eq!(host_copied(&rt), 192);
    let local: Vec<_> = rt
        .transfers()
        .into_iter()
        .filter(|t| t.from == t.to)
        .collect();
    assert_eq!(local.iter().map(|t| t.bytes).sum::<usize>(), 192);
}

/// One CPU unit and a DSP (the custom backend example) with `capacity`
/// bytes of memory.
fn with_dsp(capacity: usize) -> Runtime {
    Runtime::builder()
        .cpu_units(1)
        .device_discovery(false)
        .backend(Arc::new(dsp::DspBackend::new(1, capacity)))
        .build()
        .unwrap()
}

/// Sets every element to `v`.
fn fill(v: f32) -> Kernel {
    Kernel::custom("fill", &[Mode::Write], move |args| {
        args[0].as_f32_mut()?.fill(v);
        Ok(())
    })
}

#[test]
fn eviction_of_parts_and_of_the_whole_under_a_small_device_loses_nothing() {
    // Room for one 8 KiB tensor: the whole, its eight rows, or `other`.
    let rt = with_dsp(8 << 10);
    let on_dsp = TaskOptions::default().on(Placement::Kind(UnitKind::Custom("dsp")));
    let w = rt.zeros(&[8, 256], DType::F32).unwrap().named("W");
    let other = rt.empty(&[8, 256], DType::F32);
    let rows = w.partition(&rt, Partition::rows(1)).unwrap();
    for round in 0..3 {
        // Rows written on the device, then pushed out by `other`: each is
        // the only valid copy, so it is written back into the whole's memory.
        for (i, row) in rows.iter().enumerate() {
            let v = (round * 8 + i) as f32;
            rt.submit_with(&fill(v), &[row.write()], on_dsp.clone())
                .unwrap();
        }
        rt.submit_with(&fill(-1.0), &[other.write()], on_dsp.clone())
            .unwrap();
        let expected: Vec<f32> = (0..8)
            .flat_map(|i| vec![(round * 8 + i) as f32; 256])
            .collect();
        assert_eq!(rt.read::<f32>(&w).unwrap(), expected, "round {round}");
        // The whole written on the device and pushed out, read through its parts.
        let v = round as f32 + 0.5;
        rt.submit_with(&fill(v), &[w.write()], on_dsp.clone())
            .unwrap();
        rt.submit_with(&fill(-2.0), &[other.write()], on_dsp.clone())
            .unwrap();
        for (i, row) in rows.iter().enumerate() {
            assert_eq!(
                rt.read::<f32>(row).unwrap(),
                vec![v; 256],
                "round {round}, row {i}"
            );
        }
    }
    let device = &rt.memory_stats()[1];
    assert!(device.write_backs > 0 && device.evictions > 0, "{device:?}");
    assert_eq!(rt.memory_stats()[HOST].bytes_copied, 0);
}

/// On unit `unit`: a whole written there, then each of its row blocks
/// written there from one source; checks what the whole reads back and
/// returns the bytes the unit's memory allocated for the source and the
/// row blocks.
fn bytes_allocated_for_row_blocks(rt: &Runtime, unit: usize) -> usize {
    let info = &rt.units()[unit];
    let on = TaskOptions::default().on(Placement::Unit(unit));
    let relu = Kernel::Unary(UnaryOp::Relu);
    let w = rt.empty(&[8, 256], DType::F32).named("W");
    let negative = constant(rt, &[8, 256], -1.0);
    rt.submit_with(&relu, &[negative.read(), w.write()], on.clone())
        .unwrap();
    rt.wait_all();
    let before = rt.memory_stats()[info.node].allocated;
    let values: Vec<f32> = (0..512).map(|v| v as f32).collect();
    let source = rt.tensor(&[2, 256], &values).unwrap();
    let rows = w.partition(rt, Partition::rows(2)).unwrap();
    for row in &rows {
        rt.submit_with(&relu, &[source.read(), row.write()], on.clone())
            .unwrap();
    }
    rt.wait_all();
    let allocated = rt.memory_stats()[info.node].allocated - before;
    let expected: Vec<f32> = (0..4).flat_map(|_| values.clone()).collect();
    assert_eq!(
        rt.read::<f32>(&w).unwrap(),
        expected,
        "{} ({})",
        info.kind,
        info.backend
    );
    allocated
}

#[test]
fn row_blocks_on_a_device_are_views_of_their_whole_buffer() {
    let dsp = with_dsp(1 << 20);
    // Only the 2 KiB source is allocated: the four rows lie in W's buffer.
    assert_eq!(bytes_allocated_for_row_blocks(&dsp, 1), 2 << 10);
    let rt = Runtime::builder().build().unwrap();
    for unit in rt.units() {
        if ["wgpu", "opencl"].contains(&unit.backend.as_str()) {
            assert_eq!(
                bytes_allocated_for_row_blocks(&rt, unit.id),
                2 << 10,
                "{} ({})",
                unit.kind,
                unit.backend
            );
        }
    }
}

#[test]
fn nested_row_blocks_on_a_device_are_views_of_the_outermost_buffer() {
    let rt = with_dsp(1 << 20);
    let on_dsp = TaskOptions::default().on(Placement::Kind(UnitKind::Custom("dsp")));
    let w = rt.zeros(&[8, 256], DType::F32).unwrap().named("W");
    rt.submit_with(&fill(1.0), &[w.write()], on_dsp.clone())
        .unwrap();
    let halves = w.partition(&rt, Partition::rows(4)).unwrap();
    let quarters = halves[1].partition(&rt, Partition::rows(2)).unwrap();
    // The second half's quarters lie in W's buffer whether or not the
    // half has storage of its own there yet: first one that does not...
    rt.submit_with(&fill(2.0), &[quarters[0].write()], on_dsp.clone())
        .unwrap();
    // ...then, once the half is a view itself, one inside that view.
    rt.submit_with(&fill(3.0), &[halves[1].write()], on_dsp.clone())
        .unwrap();
    rt.submit_with(&fill(4.0), &[quarters[1].write()], on_dsp.clone())
        .unwrap();
    rt.wait_all();
    assert_eq!(rt.memory_stats()[1].allocated, 8 << 10);
    let mut expected = vec![1.0; 4 * 256];
    expected.extend([3.0; 2 * 256]);
    expected.extend([4.0; 2 * 256]);
    assert_eq!(rt.read::<f32>(&w).unwrap(), expected);
}

#[test]
fn views_and_their_whole_are_evicted_without_losing_what_the_views_hold() {
    // Room for two 8 KiB tensors: W (with its rows inside) and one more.
    let rt = with_dsp(16 << 10);
    let on_dsp = TaskOptions::default().on(Placement::Kind(UnitKind::Custom("dsp")));
    let w = rt.zeros(&[8, 256], DType::F32).unwrap().named("W");
    let rows = w.partition(&rt, Partition::rows(1)).unwrap();
    let (a, b) = (
        rt.empty(&[8, 256], DType::F32),
        rt.empty(&[8, 256], DType::F32),
    );
    for round in 0..3 {
        let v = round as f32;
        rt.submit_with(&fill(v), &[w.write()], on_dsp.clone())
            .unwrap();
        // The rows' only valid copies are views of W's buffer...
        for (i, row) in rows.iter().enumerate() {
            rt.submit_with(&fill(v + i as f32), &[row.write()], on_dsp.clone())
                .unwrap();
        }
        rt.wait_all();
        // ...until `a` and `b` need the room: W's buffer is freed only
        // once the views are gone, written back first.
        rt.submit_with(&fill(-1.0), &[a.write()], on_dsp.clone())
            .unwrap();
        rt.submit_with(&fill(-2.0), &[b.write()], on_dsp.clone())
            .unwrap();
        rt.wait_all();
        let expected: Vec<f32> = (0..8).flat_map(|i| vec![v + i as f32; 256]).collect();
        assert_eq!(rt.read::<f32>(&w).unwrap(), expected, "round {round}");
        assert_eq!(rt.read::<f32>(&b).unwrap(), vec![-2.0; 8 * 256]);
    }
    let device = &rt.memory_stats()[1];
    assert!(device.write_backs >= 8, "{device:?}");
    assert!(device.peak <= 16 << 10, "{device:?}");
}

/// Copies its input into its output.
fn copy() -> Kernel {
    Kernel::custom("copy", &[Mode::Read, Mode::Write], |args| {
        let input = args[0].as_f32()?.to_vec();
        args[1].as_f32_mut()?.copy_from_slice(&input);
        Ok(())
    })
}

#[test]
fn a_write_to_a_part_or_its_whole_waits_for_earlier_readers_of_the_other() {
    let rt = cpu_only();
    let n = 1024;
    let a = rt.tensor(&[n, n], vec![1.0f32; n * n]).unwrap().named("A");
    let rows = a.partition(&rt, Partition::rows(n / 4)).unwrap();
    // The rows hold their content and so does the whole: no copy task
    // stands between the tasks below, and the rows share the whole's memory.
    assert_eq!(rt.read::<f32>(&rows[0]).unwrap()[0], 1.0);
    let whole_before = rt.empty(&[n, n], DType::F32);
    let reader = rt
        .submit(&copy(), &[a.read(), whole_before.write()])
        .unwrap();
    let writer = rt.submit(&fill(9.0), &[rows[1].write()]).unwrap();
    let row_before = rt.empty(&[n / 4, n], DType::F32);
    let row_reader = rt
        .submit(&copy(), &[rows[2].read(), row_before.write()])
        .unwrap();
    let whole_writer = rt.submit(&fill(5.0), &[a.write()]).unwrap();
    assert_eq!(rt.read::<f32>(&whole_before).unwrap(), vec![1.0; n * n]);
    let mut expected = vec![1.0; n / 4 * n];
    assert_eq!(rt.read::<f32>(&row_before).unwrap(), expected);
    expected.fill(5.0);
    assert_eq!(rt.read::<f32>(&rows[2]).unwrap(), expected);
    let profile = rt.profile();
    let span = |id: u64| {
        let t = profile.tasks.iter().find(|t| t.id == id).unwrap();
        (t.start, t.end)
    };
    assert!(span(writer.id()).0 >= span(reader.id()).1);
    assert!(span(whole_writer.id()).0 >= span(row_reader.id()).1);
}

#[test]
fn partitions_that_do_not_fit_or_repeat_are_clear_errors() {
    let rt = cpu_only();
    let a = rt.zeros(&[4, 4], DType::F32).unwrap().named("A");
    let message = |p: Partition| a.partition(&rt, p).unwrap_err().to_string();
    assert_eq!(
        message(Partition::sizes(0, &[1, 2])),
        format!(
            "cannot cut tensor {} `A` into parts of sizes [1, 2] along axis 0: \
             the parts cover 3 of axis 0's 4: they must cover it exactly",
            a.id()
        )
    );
    assert!(message(Partition::rows(8)).contains("blocks of 8 do not fit axis 0 of 4"));
    assert!(message(Partition::along(3, 1)).contains("axis 3 is outside a tensor of 2 axes"));
    a.partition(&rt, Partition::rows(2)).unwrap();
    assert!(message(Partition::rows(2)).contains("already partitioned this way"));
}

#[test]
fn writes_to_overlapping_or_shared_elements_are_refused() {
    let rt = cpu_only();
    let img = rt.zeros(&[6, 4], DType::F32).unwrap().named("img");
    let bands = img.partition(&rt, Partition::bands(2, 1)).unwrap();
    assert_eq!(bands[1].shape(), &[4, 4]);
    let err = rt.submit(&bump_first(), &[bands[1].rw()]).unwrap_err();
    assert!(matches!(err, Error::ReadOnlyPart { .. }), "{err}");
    assert!(err.to_string().contains("`img[1]`"), "{err}");
    assert!(err.to_string().contains("halo of 1"), "{err}");
    // Reading bands is fine, and so is writing the whole afterwards.
    let out = rt.empty(&[4, 4], DType::F32);
    let relu = Kernel::Unary(UnaryOp::Relu);
    rt.submit(&relu, &[bands[1].read(), out.write()]).unwrap();
    rt.submit(&bump_first(), &[img.rw()]).unwrap();
    assert_eq!(rt.read::<f32>(&bands[0]).unwrap()[0], 1.0);

    let rows = img.partition(&rt, Partition::rows(3)).unwrap();
    let cols = img.partition(&rt, Partition::cols(2)).unwrap();
    let noop = Kernel::Noop;
    let err = rt
        .submit(&noop, &[img.read(), rows[0].write()])
        .unwrap_err();
    assert!(matches!(err, Error::PartsOverlap { .. }), "{err}");
    let err = rt
        .submit(&noop, &[cols[0].read(), rows[0].rw()])
        .unwrap_err();
    assert!(err.to_string().contains("cannot also access"), "{err}");
    // Two blocks of one partition do not overlap; reading a tensor and
    // its part together writes nothing.
    let siblings = rt.submit(&noop, &[cols[0].read(), cols[1].rw()]).unwrap();
    rt.wait(&siblings).unwrap();
    let reads = rt.submit(&noop, &[img.read(), rows[1].read()]).unwrap();
    rt.wait(&reads).unwrap();
}
