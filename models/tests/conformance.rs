//! Runs every reference graph in `../shared/models` and compares with onnxruntime's outputs
//! (models/README.md there: ≤1e-3 absolute on box rows, ≤1e-5 on score rows).

use anyhow::{Context, anyhow};

use models::conformance::{REFERENCE_MODELS, compare, reference_models_dir};
use models::{Detector, npy};

fn read(name: &str) -> anyhow::Result<Vec<u8>> {
    let path = reference_models_dir().join(name);
    std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))
}

#[test]
fn reproduces_onnxruntime_outputs() -> anyhow::Result<()> {
    for name in REFERENCE_MODELS {
        let detector = Detector::load(&read(&format!("{name}.onnx"))?)?;
        let input = npy::read_f32(&read(&format!("{name}.input.npy"))?).map_err(|e| anyhow!(e))?;
        let expected = npy::read_f32(&read(&format!("{name}.output.npy"))?).map_err(|e| anyhow!(e))?;
        let (output, _) = detector.run_raw(input.data)?;
        let report = compare(detector.info(), &output, &expected).map_err(|e| anyhow!(e))?;
        println!("{name}: {report:?}, matrix kernels {:?}", detector.matmul_kernels());
        // Every convolution is a matrix product: the introspection the browser test relies on
        // must see them.
        assert!(!detector.matmul_kernels().is_empty(), "{name}: no matrix product found");
        assert!(report.within_tolerance(), "{name}: {report:?}");
    }
    Ok(())
}

#[test]
fn reads_ultralytics_metadata() -> anyhow::Result<()> {
    let bytes = read("yolov8n-320-random.onnx")?;
    let info = Detector::load(&bytes)?.info().clone();
    assert_eq!(info.input_size_px, 320);
    assert_eq!(
        info.layout,
        models::OutputLayout::Ultralytics {
            classes: 80,
            anchors: 2100
        }
    );
    // Built from yolov8n.yaml without a dataset, so the names are the indices themselves.
    assert_eq!(info.class_names.len(), 80);
    assert_eq!(&info.class_names[..3], ["0", "1", "2"]);
    assert_eq!(info.stride, Some(32));
    Ok(())
}

#[test]
fn refuses_what_it_cannot_run() -> anyhow::Result<()> {
    let cases: [(&[u8], &str); 2] = [(b"not an onnx file", "not a loadable ONNX model"), (b"", "")];
    for (bytes, reason) in cases {
        let error = Detector::load(bytes).err().context("garbage loaded")?.to_string();
        assert!(error.contains(reason), "{error}");
    }
    // A real graph cut short: the protobuf is truncated.
    let bytes = read("yolov8n-320-random.onnx")?;
    assert!(Detector::load(&bytes[..bytes.len() / 2]).is_err());
    Ok(())
}

#[test]
fn detects_in_image_pixels_with_score_vectors() -> anyhow::Result<()> {
    let bytes = read("yolov8n-320-random.onnx")?;
    let detector = Detector::load(&bytes)?;
    // A 400×300 gradient: letterboxed with 40 px of padding above and below.
    let data: Vec<u8> = (0..300u32)
        .flat_map(|y| (0..400u32).flat_map(move |x| [(x % 256) as u8, (y % 256) as u8, 128]))
        .collect();
    let pixels = models::Pixels {
        data: &data,
        width_px: 400,
        height_px: 300,
        channels: 3,
    };
    let prediction = detector.detect(pixels, 0.25, 0.7)?;
    assert!(prediction.best_candidate_score > 0.0);
    for d in &prediction.detections {
        assert!(d.score > 0.25 && d.class_scores.len() == 80 && d.class_scores[d.class_index] == d.score);
        assert!(
            d.bbox[0] >= 0.0 && d.bbox[2] <= 400.0 && d.bbox[1] >= 0.0 && d.bbox[3] <= 300.0,
            "{d:?}"
        );
    }
    let lower = detector.detect(pixels, 0.05, 0.7)?;
    assert!(lower.detections.len() >= prediction.detections.len());
    assert!(
        detector
            .detect(
                models::Pixels {
                    data: &data[1..],
                    ..pixels
                },
                0.25,
                0.7
            )
            .is_err()
    );
    Ok(())
}
