//! The exported student is the network it was exported from: tract (the studio's engine, in
//! the registry and the browser) runs the ONNX file and computes the trainer's own forward and
//! decode to 1e-4 on random inputs — with batch norms that have moved away from the identity, so
//! the folding is exercised — and the file describes itself as an Ultralytics export does.

use burn::module::Module;
use burn::prelude::*;
use burn::tensor::Distribution;
use train::export::export_onnx;
use train::weights::Weights;
use train::yolo::Yolo;

const IMGSZ: u32 = 64;

fn names() -> Vec<String> {
    ["circle", "square", "it's a triangle"].map(String::from).to_vec()
}

/// A network whose batch norms have running statistics of their own: three training-mode
/// forward passes over random images move them off mean 0, variance 1.
fn network_with_statistics(device: &Device) -> Yolo {
    let training = device.clone().autodiff();
    let mut model = Yolo::new(3, device).to_device(&training).train();
    for _ in 0..3 {
        let images = Tensor::<4>::random(
            [2, 3, IMGSZ as usize, IMGSZ as usize],
            Distribution::Uniform(0.0, 1.0),
            &training,
        );
        let _ = model.forward(images);
    }
    model = model.valid().to_device(device);
    model
}

fn flat<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap_or_default()
}

#[test]
fn tract_runs_the_export_as_the_trainer_computes_it() -> anyhow::Result<()> {
    let device = Device::flex();
    let model = network_with_statistics(&device);
    let onnx = export_onnx(&model, IMGSZ, &names()).map_err(anyhow::Error::msg)?;
    let detector = models::Detector::load(&onnx).map_err(|e| anyhow::anyhow!("{e}"))?;

    let info = detector.info();
    assert_eq!(info.input_size_px, IMGSZ);
    assert_eq!(info.class_names, names(), "names from the metadata, quotes and all");
    assert_eq!(info.stride, Some(32));
    assert_eq!(
        info.layout,
        models::OutputLayout::Ultralytics {
            classes: 3,
            anchors: 64 + 16 + 4
        }
    );

    let mut worst = (0.0f32, 0.0f32);
    for _ in 0..2 {
        let input = Tensor::<4>::random(
            [1, 3, IMGSZ as usize, IMGSZ as usize],
            Distribution::Uniform(0.0, 1.0),
            &device,
        );
        let want = flat(model.decode(model.forward(input.clone())));
        let (got, _) = detector.run_raw(flat(input)).map_err(|e| anyhow::anyhow!("{e}"))?;
        assert_eq!(got.len(), want.len());
        let anchors = want.len() / 7;
        for (i, (a, b)) in got.iter().zip(&want).enumerate() {
            let error = (a - b).abs();
            if i / anchors < 4 {
                // Pixels: relative to the box's size.
                worst.0 = worst.0.max(error / b.abs().max(1.0));
            } else {
                worst.1 = worst.1.max(error);
            }
        }
    }
    println!(
        "max |tract − burn|: boxes {:.2e} (relative), classes {:.2e}",
        worst.0, worst.1
    );
    assert!(worst.0 < 1e-4, "boxes differ by {:e}", worst.0);
    assert!(worst.1 < 1e-4, "class probabilities differ by {:e}", worst.1);
    Ok(())
}

#[test]
fn an_export_loads_back_for_fine_tuning() -> anyhow::Result<()> {
    let device = Device::flex();
    let model = network_with_statistics(&device);
    let onnx = export_onnx(&model, IMGSZ, &names()).map_err(anyhow::Error::msg)?;
    let mut again = Yolo::new(3, &device);
    again
        .load_ultralytics(&Weights::from_onnx(&onnx).map_err(anyhow::Error::msg)?, &device)
        .map_err(anyhow::Error::msg)?;
    let input = Tensor::<4>::random(
        [1, 3, IMGSZ as usize, IMGSZ as usize],
        Distribution::Uniform(0.0, 1.0),
        &device,
    );
    let a = flat(model.decode(model.forward(input.clone())));
    let b = flat(again.decode(again.forward(input)));
    let worst = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs() / y.abs().max(1.0))
        .fold(0.0, f32::max);
    assert!(worst < 1e-4, "{worst:e}");
    Ok(())
}

#[test]
fn names_must_match_the_classes() {
    let device = Device::flex();
    let refused = export_onnx(&Yolo::new(3, &device), IMGSZ, &names()[..2])
        .err()
        .unwrap_or_default();
    assert_eq!(refused, "2 class names for a network of 3 classes");
}
