//! The student network is YOLOv8n as Ultralytics builds it: the trained `shapes-yolov8n-320`
//! export's weights load into it layer by layer (names and shapes), and on the export's
//! reference input it computes what onnxruntime computed from the same file
//! (`shapes-yolov8n-320.output.npy`, `[1, 8, 2100]`: boxes in pixels, class probabilities).

use burn::prelude::*;
use train::weights::Weights;
use train::yolo::Yolo;

fn reference(name: &str) -> anyhow::Result<Vec<u8>> {
    let dir = models::conformance::reference_models_dir();
    Ok(std::fs::read(dir.join(name))?)
}

#[test]
fn shapes_export_runs_the_same_in_the_student_network() -> anyhow::Result<()> {
    let device = Device::flex();
    let weights = Weights::from_onnx(&reference("shapes-yolov8n-320.onnx")?).map_err(anyhow::Error::msg)?;
    let mut network = Yolo::new(4, &device);
    network
        .load_ultralytics(&weights, &device)
        .map_err(anyhow::Error::msg)?;

    let input = models::npy::read_f32(&reference("shapes-yolov8n-320.input.npy")?).map_err(anyhow::Error::msg)?;
    let want = models::npy::read_f32(&reference("shapes-yolov8n-320.output.npy")?).map_err(anyhow::Error::msg)?;
    let images = Tensor::<4>::from_data(TensorData::new(input.data, input.shape), &device);
    let output = network.decode(network.forward(images));
    assert_eq!(output.dims().to_vec(), want.shape, "Ultralytics' layout");
    let got: Vec<f32> = output
        .into_data()
        .try_to_vec::<f32>()
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;

    // Box rows are pixels (0..320), class rows probabilities: onnxruntime and burn sum in
    // different orders, so allow a float32 accumulation's worth of each.
    let anchors = want.shape[2];
    let (mut box_error, mut class_error) = (0.0f32, 0.0f32);
    for (i, (a, b)) in got.iter().zip(&want.data).enumerate() {
        let error = (a - b).abs();
        if i / anchors < 4 {
            box_error = box_error.max(error);
        } else {
            class_error = class_error.max(error);
        }
    }
    println!("max |burn − onnxruntime|: boxes {box_error:.2e} px, classes {class_error:.2e}");
    assert!(box_error < 1e-2, "boxes differ by {box_error} px");
    assert!(class_error < 1e-4, "class probabilities differ by {class_error}");
    Ok(())
}

#[test]
fn weights_of_another_shape_are_refused_by_name() -> anyhow::Result<()> {
    let device = Device::flex();
    let weights = Weights::from_onnx(&reference("shapes-yolov8n-320.onnx")?).map_err(anyhow::Error::msg)?;
    // Eighty classes: the class branch is 80 wide, the shapes export's 64.
    let mut network = Yolo::new(80, &device);
    let refused = network.load_ultralytics(&weights, &device).err().unwrap_or_default();
    assert!(refused.starts_with("model.22.cv3.0.0"), "{refused}");
    Ok(())
}
