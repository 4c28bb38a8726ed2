//! `distillery distill`, autodistill's one-liner: a folder of shapes photos and the trained
//! shapes detector as the teacher go in, with an ontology that renames its classes and merges
//! two of them; a YOLO zip and a student ONNX file come out. The zip's labels are what the
//! `models` runtime finds in each photo at the confidence asked for, under the ontology's
//! names; the student is a detector of the ontology's classes at the size asked for, and
//! onnxruntime runs it as tract does. A tiny
//! training (two epochs at 64 px) keeps it short: the student's accuracy is `train_student`'s
//! business.

use std::io::Read;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, ensure};

const TEACHER: &str = "shapes-yolov8n-320.onnx";
const PHOTOS: usize = 24;
const MIN_CONF: f32 = 0.25;
/// Scores this close to the threshold may land either side of it (the zip is cut on the
/// server's scores, the expectation on this process's: same runtime, same decoder).
const SCORE_TOLERANCE: f32 = 1e-3;
/// The teacher's classes (circle, square, triangle, star) → the project's classes.
const ONTOLOGY: &str = r#"{"circle": "round", "square": "boxy", "triangle": "pointy", "star": "pointy"}"#;
const PROJECT_CLASS_OF_TEACHER_CLASS: [usize; 4] = [0, 1, 2, 2];

fn distill(images: &Path, work: &Path, ontology: &str) -> anyhow::Result<std::process::Output> {
    Ok(Command::new(e2e::studio::binary_path())
        .arg("distill")
        .arg(images)
        .arg("--teacher")
        .arg(e2e::reference_models_dir().join(TEACHER))
        .args(["--ontology", ontology])
        .args([
            "--epochs",
            "2",
            "--imgsz",
            "64",
            "--batch",
            "8",
            "--inference-threads",
            "2",
        ])
        .args(["--min-conf", &MIN_CONF.to_string()])
        .arg("--data-dir")
        .arg(work.join("data"))
        .envs(e2e::postgres::database_env_blocking(&work.join("data"))?)
        .arg("--out")
        .arg(work.join("dataset.zip"))
        .arg("--student-out")
        .arg(work.join("student.onnx"))
        .output()?)
}

#[test]
fn distill_a_folder_into_a_dataset_and_a_student() -> anyhow::Result<()> {
    let work = tempfile::tempdir()?;
    let images = work.path().join("shape-photos");
    std::fs::create_dir(&images)?;
    let mut photos = Vec::new();
    for i in 0..PHOTOS {
        let name = format!("train_{i:04}.jpg");
        let bytes = e2e::reference_model_file(&format!("shapes/images/train/{name}"))?;
        std::fs::write(images.join(&name), &bytes)?;
        photos.push((name, bytes));
    }

    let bad = distill(&images, work.path(), r#"["circle"]"#)?;
    ensure!(!bad.status.success());
    ensure!(String::from_utf8_lossy(&bad.stderr).contains("--ontology must be a JSON object"));

    let run = distill(&images, work.path(), ONTOLOGY)?;
    let (stdout, stderr) = (
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr),
    );
    ensure!(run.status.success(), "{stdout}\n{stderr}");
    println!("{stdout}");
    ensure!(
        stdout.contains("Distilled \"shape-photos\" (3 classes: round, boxy, pointy)"),
        "{stdout}"
    );
    ensure!(stdout.contains(&format!("{PHOTOS} images")), "{stdout}");
    for step in ["import", "teacher", "training", "export", "total"] {
        ensure!(stdout.lines().any(|l| l.starts_with(step)), "no {step} row: {stdout}");
    }

    // The zip: the ontology's names, and per photo the teacher's detections at the threshold.
    let zip_file = std::fs::File::open(work.path().join("dataset.zip"))?;
    let mut zip = zip::ZipArchive::new(zip_file)?;
    let names: Vec<String> = zip
        .file_names()
        .map(|n| n.map(|n| n.into_owned()))
        .collect::<Result<_, _>>()?;
    let mut read = |name: &str| -> anyhow::Result<Option<String>> {
        match zip.by_name(name) {
            Ok(mut entry) => {
                let mut text = String::new();
                entry.read_to_string(&mut text)?;
                Ok(Some(text))
            }
            Err(zip::result::ZipError::FileNotFound) => Ok(None),
            Err(error) => Err(error.into()),
        }
    };
    let yaml = read("data.yaml")?.context("data.yaml")?;
    ensure!(
        yaml.contains("round") && yaml.contains("boxy") && yaml.contains("pointy"),
        "{yaml}"
    );
    ensure!(!yaml.contains("circle") && !yaml.contains("star"), "{yaml}");
    let teacher = models::Detector::load(&e2e::reference_model_file(TEACHER)?)?;
    let mut labeled = 0;
    for (name, bytes) in &photos {
        // Files are named `<image id>-<original stem>` in the zip. A photo the teacher found
        // nothing in is left out (unreviewed, it is not known to be empty).
        let suffix = format!("-{}.txt", name.trim_end_matches(".jpg"));
        let labels = match names.iter().find(|n| n.starts_with("labels/") && n.ends_with(&suffix)) {
            Some(file) => read(file)?.context("label file")?,
            None => String::new(),
        };
        let mut counts = [0usize; 3];
        for line in labels.lines().filter(|l| !l.trim().is_empty()) {
            let class: usize = line.split_whitespace().next().context("class")?.parse()?;
            ensure!(class < 3, "{name}: {line}");
            counts[class] += 1;
        }
        let found = e2e::detect_in(&teacher, bytes, MIN_CONF - SCORE_TOLERANCE, models::DEFAULT_IOU)?;
        for (class, &count) in counts.iter().enumerate() {
            let of_class = found
                .detections
                .iter()
                .filter(|d| PROJECT_CLASS_OF_TEACHER_CLASS[d.class_index] == class);
            let possible = of_class.clone().count();
            let sure = of_class.filter(|d| d.score >= MIN_CONF + SCORE_TOLERANCE).count();
            ensure!(
                (sure..=possible).contains(&count),
                "{name}, class {class}: {count} labels, the teacher finds {sure}..={possible}"
            );
        }
        labeled += usize::from(counts.iter().sum::<usize>() > 0);
    }
    ensure!(labeled > PHOTOS / 2, "only {labeled} photos have labels");

    // The student: the ontology's classes, at the size asked for.
    let student = models::Detector::load(&std::fs::read(work.path().join("student.onnx"))?)?;
    let info = student.info();
    ensure!(info.class_names == ["round", "boxy", "pointy"], "{info:?}");
    ensure!(info.input_size_px == 64, "{info:?}");

    // …which onnxruntime runs as tract does: the opset, initializer names and shapes the
    // export wrote are ones another engine accepts and reads the same way.
    let library = std::env::var("DISTILLERY_TEST_ONNXRUNTIME").context(
        "DISTILLERY_TEST_ONNXRUNTIME names libonnxruntime.so; `cargo xtask test` installs it from PyPI and sets it",
    )?;
    models::onnxruntime::init(Path::new(&library))?;
    let bytes = std::fs::read(work.path().join("student.onnx"))?;
    let ort = models::onnxruntime::OrtModel::load(&bytes, models::onnxruntime::OrtDevice::Cpu, 1)?;
    let input: Vec<f32> = (0..3 * 64 * 64).map(|i| ((i * 7919) % 256) as f32 / 255.0).collect();
    let (by_tract, _) = student.run_raw(input.clone())?;
    let (by_ort, _) = ort.run(input, 64)?;
    // Relative to each output row's scale (one row per box side or class, one value per
    // anchor): a two-epoch network's outputs reach hundreds of pixels (its activations are far
    // from settled), where two engines' float sums part in the fourth digit — onnxruntime and
    // ONNX's own reference evaluator differ by 1e-5 of the scale on such a file, tract (rational
    // approximations of exp and sigmoid) by up to ~2e-3 of the value. Measured against each
    // value alone, a side that comes out near zero after its anchor and its distance cancel
    // showed 9e-3 on one training, though its row was right; against the row's largest value
    // that noise stays small, while a wrong graph (an axis, a padding, a folded batch norm
    // misread) is off by tenths of the scale and up.
    ensure!(
        by_tract.len() == by_ort.len(),
        "{} vs {} values",
        by_tract.len(),
        by_ort.len()
    );
    let anchors = by_tract.len() / (4 + info.class_names.len());
    let worst = by_tract
        .chunks(anchors)
        .zip(by_ort.chunks(anchors))
        .flat_map(|(tract_row, ort_row)| {
            let scale = tract_row.iter().fold(1.0f32, |m, v| m.max(v.abs()));
            tract_row.iter().zip(ort_row).map(move |(a, b)| (a - b).abs() / scale)
        })
        .fold(0.0f32, |w, d| if d.is_nan() { f32::INFINITY } else { w.max(d) });
    ensure!(
        worst < 5e-3,
        "onnxruntime differs from tract by up to {worst} of an output row's scale"
    );

    // The project stays in the data folder; distilling into the same name again is refused.
    let again = distill(&images, work.path(), ONTOLOGY)?;
    ensure!(!again.status.success());
    let stderr = String::from_utf8_lossy(&again.stderr);
    ensure!(
        stderr.contains("already has a project named \"shape-photos\""),
        "{stderr}"
    );
    Ok(())
}
