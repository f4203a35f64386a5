//! Images: PNG in and out, pipeline parsing, and a photograph through
//! stages placed across VPU, GPU and CPU units (the `vision` example), each
//! stage within 1 level of the CPU path, pixel by pixel.

#[path = "../examples/vision/across.rs"]
mod across;

use xpu::vision::{self, Pixels};
use xpu::{Runtime, UnitKind};

/// The fetched photograph, or a synthetic one when the data was not
/// fetched (CI fetches it).
fn photo() -> Pixels {
    match vision::data_file("images/astronaut.png") {
        Ok(path) => vision::load_png(path).unwrap(),
        Err(e) => {
            assert!(std::env::var("CI").is_err(), "{e}");
            eprintln!("{e}; using a synthetic image");
            let (h, w) = (96, 128);
            let data = (0..h * w * 3)
                .map(|i| ((i * 7 + (i / (w * 3)) * 13) % 256) as u8)
                .collect();
            Pixels {
                shape: vec![h, w, 3],
                data,
            }
        }
    }
}

#[test]
fn a_photograph_crosses_units_and_matches_the_cpu_path() {
    let rt = Runtime::builder().cpu_units(1).build().unwrap();
    let photo = photo();
    let outcome = across::run(&rt, &photo).unwrap();
    assert!(outcome.worst <= 1.0, "max difference {}", outcome.worst);
    assert_eq!(outcome.edges.shape, photo.shape[..2].to_vec());
    let edges = outcome.edges.data.iter().filter(|&&v| v == 255).count();
    assert!(
        edges > 0 && edges < outcome.edges.data.len() / 2,
        "{edges} edge pixels"
    );
    assert!(outcome.edges.data.iter().all(|&v| v == 0 || v == 255));
    let units: Vec<&str> = outcome.stages.iter().map(|(_, u, _)| u.as_str()).collect();
    for (kind, stage) in [(UnitKind::Vpu, 1), (UnitKind::Gpu, 3)] {
        if rt.units().iter().any(|u| u.kind == kind) {
            assert!(units[stage].ends_with(kind.as_str()), "{units:?}");
        }
    }
}

#[test]
fn png_round_trip_and_bad_files() {
    let dir = std::env::temp_dir().join(format!("xpu-png-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for shape in [vec![5, 7], vec![4, 6, 3]] {
        let n: usize = shape.iter().product();
        let pixels = Pixels {
            shape: shape.clone(),
            data: (0..n).map(|i| (i * 37 % 256) as u8).collect(),
        };
        let path = dir.join("x.png");
        vision::save_png(&path, &pixels).unwrap();
        assert_eq!(vision::load_png(&path).unwrap(), pixels);
    }
    std::fs::write(dir.join("bad.png"), b"not a png").unwrap();
    let err = vision::load_png(dir.join("bad.png"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("bad.png"), "{err}");
    let err = vision::save_png(
        dir.join("y.png"),
        &Pixels {
            shape: vec![2, 2, 2],
            data: vec![0; 8],
        },
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("[2, 2, 2]"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn pipelines_parse_and_say_what_is_wrong() {
    let stages = vision::parse_pipeline("gray, blur=2 ,sobel,threshold=50,resize=32x16").unwrap();
    let names: Vec<&str> = stages.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        ["gray", "blur=2", "sobel", "threshold=50", "resize=32x16"]
    );
    let mut shape = vec![64, 48, 3];
    for s in &stages {
        shape = s.output_shape(&shape).unwrap();
    }
    assert_eq!(shape, vec![16, 32]);
    for (spec, says) in [
        ("sharpen", "unknown stage `sharpen`"),
        ("blur=-1", "not a positive number"),
        ("resize=10", "resize=WIDTHxHEIGHT"),
    ] {
        let e = vision::parse_pipeline(spec).unwrap_err().to_string();
        assert!(e.contains(says), "{spec}: {e}");
    }
    let gray = vision::parse_pipeline("gray").unwrap();
    assert!(gray[0].output_shape(&[4, 4]).is_err());
}

#[test]
fn a_photograph_in_bands_with_halos_matches_the_whole_image_on_every_unit_kind() {
    use xpu::{DType, Error, Placement, TaskOptions};
    let rt = Runtime::builder().build().unwrap();
    let photo = photo();
    let stages = vision::fuse(vision::parse_pipeline("gray,blur=1.5,sobel,threshold=96").unwrap());
    let input = rt.tensor(&photo.shape, &photo.data).unwrap().named("photo");
    let cpu = TaskOptions::default().on(Placement::Kind(UnitKind::Cpu));
    let mut whole = input.clone();
    for stage in &stages {
        let shape = stage.output_shape(whole.shape()).unwrap();
        let out = rt.empty(&shape, DType::U8);
        rt.submit_with(&stage.kernel, &[whole.read(), out.write()], cpu.clone())
            .unwrap();
        whole = out;
    }
    let want = rt.read::<u8>(&whole).unwrap();
    let mut kinds: Vec<UnitKind> = Vec::new();
    for unit in rt.units() {
        if !kinds.contains(&unit.kind) {
            kinds.push(unit.kind);
        }
    }
    for kind in kinds {
        let on = TaskOptions::default().on(Placement::Kind(kind));
        let banded = match vision::submit_banded(&rt, &stages, &input, 5, &on) {
            Err(Error::Config(e)) if e.contains("no unit can run") => continue,
            other => other.unwrap(),
        };
        let got = rt.read::<u8>(&banded).unwrap();
        assert_eq!(got.len(), want.len());
        let worst = got.iter().zip(&want).map(|(a, b)| a.abs_diff(*b)).max();
        assert!(worst <= Some(1), "{kind}: bands differ by {worst:?}");
    }
    let err = vision::submit_banded(&rt, &stages, &input, 0, &cpu).unwrap_err();
    assert!(err.to_string().contains("0 bands do not fit"), "{err}");
    let resize = vision::parse_pipeline("gray,resize=8x8").unwrap();
    let err = vision::submit_banded(&rt, &resize, &input, 2, &cpu).unwrap_err();
    assert!(err.to_string().contains("resizes"), "{err}");
}
