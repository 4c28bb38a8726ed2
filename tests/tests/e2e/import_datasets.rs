//! Importing datasets: an exported project comes back box for box; Ultralytics, flat and COCO
//! layouts are understood; hostile or broken archives are refused with every problem named and
//! the project left exactly as it was; the CLI imports and exports beside a running server.

use std::io::{Cursor, Write};
use std::process::Command;

use api::Project;
use e2e::fixtures::zip_of;
use e2e::{Studio, fixtures};
use reqwest::StatusCode;
use serde_json::{Value, json};
use zip::write::SimpleFileOptions;

async fn import_zip(studio: &Studio, project_id: i64, zip: Vec<u8>) -> anyhow::Result<(StatusCode, Value)> {
    let form =
        reqwest::multipart::Form::new().part("file", reqwest::multipart::Part::bytes(zip).file_name("dataset.zip"));
    let response = studio
        .http()
        .clone()
        .post(studio.api(&format!("/api/projects/{project_id}/import")))
        .multipart(form)
        .send()
        .await?;
    Ok((response.status(), response.json().await.unwrap_or(Value::Null)))
}

/// Every box of a project as (image file name, class name, normalised cx, cy, w, h).
async fn normalised_boxes(studio: &Studio, project: &Project) -> anyhow::Result<Vec<(String, String, [f64; 4])>> {
    let http = studio.http().clone();
    let page: api::ImagePage = http
        .get(studio.api(&format!("/api/projects/{}/images?limit=500", project.id)))
        .send()
        .await?
        .json()
        .await?;
    let project: Project = http
        .get(studio.api(&format!("/api/projects/{}", project.id)))
        .send()
        .await?
        .json()
        .await?;
    let mut out = Vec::new();
    for image in page.images {
        let boxes: api::ImageBoxes = http
            .get(studio.api(&format!("/api/images/{}/boxes", image.id)))
            .send()
            .await?
            .json()
            .await?;
        for b in boxes.boxes {
            let class = project
                .classes
                .iter()
                .find(|c| c.id == b.class_id)
                .map(|c| c.name.clone())
                .unwrap_or_default();
            let l = api::yolo::YoloLabel::from_corners(0, [b.x0, b.y0, b.x1, b.y1], image.width, image.height);
            out.push((image.file_name.clone(), class, [l.cx, l.cy, l.w, l.h]));
        }
    }
    out.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    Ok(out)
}

#[tokio::test]
async fn import_datasets() -> anyhow::Result<()> {
    let studio = Studio::start_with(&["--max-import-entries", "20"]).await?;
    let http = studio.http().clone();

    // 1. Round trip: export a labelled project, import the zip into a new one.
    let source = studio.create_project("Source", &["car", "person"]).await?;
    let files: Vec<(String, Vec<u8>)> = (0..6u8)
        .map(|i| (format!("img{i}.png"), fixtures::png(90 + u32::from(i), 70, i)))
        .collect();
    let refs: Vec<(&str, Vec<u8>)> = files.iter().map(|(n, b)| (n.as_str(), b.clone())).collect();
    let (_, uploaded) = studio.upload(source.id, &refs).await?;
    for (n, image) in uploaded.as_array().cloned().unwrap_or_default().iter().enumerate() {
        let id = image["id"].as_i64().unwrap_or_default();
        let boxes = json!([
            {"class_id": 0, "x0": 3.3 + n as f64, "y0": 4.7, "x1": 40.1, "y1": 33.9},
            {"class_id": 1, "x0": 50.0, "y0": 10.25, "x1": 88.8, "y1": 69.5},
        ]);
        http.put(studio.api(&format!("/api/images/{id}/boxes")))
            .json(&json!({"boxes": boxes}))
            .send()
            .await?;
    }
    let exported = http
        .get(studio.api(&format!("/api/projects/{}/export", source.id)))
        .send()
        .await?
        .bytes()
        .await?;
    let copy = studio.create_project("Copy", &[]).await?;
    let (status, report) = import_zip(&studio, copy.id, exported.to_vec()).await?;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(
        (
            report["format"].as_str(),
            report["images_added"].as_u64(),
            report["boxes_added"].as_u64()
        ),
        (Some("yolo"), Some(6), Some(12))
    );
    assert_eq!(report["classes_created"], json!(["car", "person"]));
    let before = normalised_boxes(&studio, &source).await?;
    let after = normalised_boxes(&studio, &copy).await?;
    assert_eq!(before.len(), after.len());
    for ((_, class_a, a), (_, class_b, b)) in before.iter().zip(&after) {
        assert_eq!(class_a, class_b);
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() <= 1e-6, "{a:?} vs {b:?}");
        }
    }
    // Importing the same zip again adds nothing: every image is a duplicate.
    let (_, again) = import_zip(&studio, copy.id, exported.to_vec()).await?;
    assert_eq!(
        (again["images_added"].as_u64(), again["duplicates"].as_u64()),
        (Some(0), Some(6))
    );
    // Each imported box was numbered and logged like an edit: the copy's next edit is the 13th.
    let first = page_first_id(&studio, copy.id).await?;
    let next: Value = http
        .post(studio.api(&format!("/api/images/{first}/ops")))
        .json(&json!({"ops": [{"op": "create", "box": {"class_id": 0, "x0": 1, "y0": 1, "x1": 9, "y1": 9}}]}))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(next["applied"][0]["seq"], 13, "{next}");

    // 2. An Ultralytics dataset zipped with its folder, names as a dict, splits kept as fixed.
    let ultralytics = zip_of(&[
        (
            "coco8/data.yaml",
            b"path: ../datasets/coco8\ntrain: images/train\nval: images/val\nnames:\n  0: person\n  1: dog\n".to_vec(),
        ),
        ("coco8/images/train/a.jpg", fixtures::jpeg(64, 48, 1, 1)),
        (
            "coco8/labels/train/a.txt",
            b"1 0.5 0.5 0.25 0.5\n0 0.1 0.1 0.1 0.1\n".to_vec(),
        ),
        ("coco8/images/val/b.png", fixtures::png(32, 32, 2)),
        ("coco8/labels/val/b.txt", Vec::new()),
        ("coco8/images/val/c.png", fixtures::png(30, 32, 3)),
        ("__MACOSX/._a.jpg", b"junk".to_vec()),
    ]);
    let target = studio.create_project("Ultra", &["dog"]).await?;
    let (status, report) = import_zip(&studio, target.id, ultralytics).await?;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(
        (
            report["images_added"].as_u64(),
            report["boxes_added"].as_u64(),
            report["negatives"].as_u64(),
            report["unlabeled"].as_u64()
        ),
        (Some(3), Some(2), Some(1), Some(1))
    );
    assert_eq!(report["classes_created"], json!(["person"]), "dog already existed");
    let page: api::ImagePage = http
        .get(studio.api(&format!("/api/projects/{}/images", target.id)))
        .send()
        .await?
        .json()
        .await?;
    let splits: Vec<(String, Option<api::Split>, bool)> = page
        .images
        .iter()
        .map(|i| (i.file_name.clone(), i.fixed_split, i.negative))
        .collect();
    assert_eq!(
        splits,
        [
            ("a.jpg".into(), Some(api::Split::Train), false),
            ("b.png".into(), Some(api::Split::Val), true),
            ("c.png".into(), Some(api::Split::Val), false)
        ]
    );

    // 3. COCO JSON with its images.
    let coco = json!({
        "images": [{"id": 7, "file_name": "x.png", "width": 40, "height": 20}],
        "annotations": [{"id": 1, "image_id": 7, "category_id": 3, "bbox": [4, 2, 10, 8], "area": 80, "iscrowd": 0}],
        "categories": [{"id": 3, "name": "kite"}]
    });
    let coco_zip = zip_of(&[
        ("annotations.json", serde_json::to_vec(&coco)?),
        ("images/x.png", fixtures::png(40, 20, 5)),
    ]);
    let kites = studio.create_project("Kites", &[]).await?;
    let (status, report) = import_zip(&studio, kites.id, coco_zip).await?;
    assert_eq!(
        (status, report["format"].as_str(), report["boxes_added"].as_u64()),
        (StatusCode::OK, Some("coco"), Some(1)),
        "{report}"
    );
    let image_id = page_first_id(&studio, kites.id).await?;
    let boxes: api::ImageBoxes = http
        .get(studio.api(&format!("/api/images/{image_id}/boxes")))
        .send()
        .await?
        .json()
        .await?;
    let b = &boxes.boxes[0];
    assert_eq!([b.x0, b.y0, b.x1, b.y1], [4.0, 2.0, 14.0, 10.0]);

    // 4. Refused archives: every problem is named, and the project is exactly as it was.
    let guarded = studio.create_project("Guarded", &["one"]).await?;
    studio
        .upload(guarded.id, &[("keep.png", fixtures::png(10, 10, 1))])
        .await?;
    let yaml = b"names: [one, two]\n".to_vec();
    let mut with_symlink = zip::ZipWriter::new(Cursor::new(Vec::new()));
    with_symlink.start_file("data.yaml", SimpleFileOptions::default())?;
    with_symlink.write_all(&yaml)?;
    with_symlink.add_symlink("images/link.png", "/etc/passwd", SimpleFileOptions::default())?;
    let with_symlink = with_symlink.finish()?.into_inner();
    let mut bomb = zip::ZipWriter::new(Cursor::new(Vec::new()));
    bomb.start_file(
        "images/zeros.png",
        SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated),
    )?;
    bomb.write_all(&vec![0u8; 64 << 20])?;
    let bomb = bomb.finish()?.into_inner();
    let many_files: Vec<(String, Vec<u8>)> = (0..21)
        .map(|i| (format!("images/{i}.png"), fixtures::png(4, 4, 0)))
        .collect();
    let too_many = zip_of(
        &many_files
            .iter()
            .map(|(n, b)| (n.as_str(), b.clone()))
            .collect::<Vec<_>>(),
    );
    let cases: Vec<(&str, Vec<u8>, &[&str])> = vec![
        (
            "zip-slip",
            zip_of(&[("data.yaml", yaml.clone()), ("../evil.png", fixtures::png(4, 4, 0))]),
            &["../evil.png: absolute or escaping path"],
        ),
        (
            "absolute path",
            zip_of(&[("data.yaml", yaml.clone()), ("/etc/evil.png", fixtures::png(4, 4, 0))]),
            &["/etc/evil.png: absolute or escaping path"],
        ),
        (
            "symlink",
            with_symlink,
            &["images/link.png: symbolic links are not allowed"],
        ),
        ("zip bomb", bomb, &["images/zeros.png: compressed", "zip bomb"]),
        (
            "bad labels",
            zip_of(&[
                ("data.yaml", yaml.clone()),
                ("images/train/a.png", fixtures::png(20, 20, 1)),
                (
                    "labels/train/a.txt",
                    b"0 0.5 0.5 0.2 0.2\n1 0.5 1.5 0.2 0.2\n7 0.5 0.5 0.2 0.2\n".to_vec(),
                ),
            ]),
            &[
                "labels/train/a.txt:2: 1.5 is outside [0, 1]",
                "labels/train/a.txt:3: class 7 is not below the class count 2",
            ],
        ),
        (
            "not an image",
            zip_of(&[("images/fake.png", b"text, not pixels".to_vec())]),
            &["images/fake.png: this is not a JPEG, PNG, WebP or BMP image"],
        ),
        (
            "labels but no names",
            zip_of(&[
                ("images/a.png", fixtures::png(8, 8, 1)),
                ("labels/a.txt", b"0 0.5 0.5 0.1 0.1\n".to_vec()),
            ]),
            &["labels/a.txt: labels without class names"],
        ),
        (
            "not a zip",
            b"PK but not really".to_vec(),
            &["not a readable zip archive"],
        ),
        (
            "too many entries",
            too_many,
            &["the archive has 21 entries, more than 20"],
        ),
    ];
    for (what, archive, expected) in cases {
        let (status, body) = import_zip(&studio, guarded.id, archive).await?;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{what}: {body}");
        assert_eq!(body["error"]["code"], "import_rejected", "{what}: {body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        for needle in expected {
            assert!(
                message.contains(needle),
                "{what}: {message:?} should mention {needle:?}"
            );
        }
    }
    let unchanged: Project = http
        .get(studio.api(&format!("/api/projects/{}", guarded.id)))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(unchanged, guarded, "classes untouched");
    let page: api::ImagePage = http
        .get(studio.api(&format!("/api/projects/{}/images", guarded.id)))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(page.total, 1, "no image added by a refused import");

    // 5. The CLI, beside the running server: import a flat folder with classes.txt, export it.
    let folder = tempfile::tempdir()?;
    std::fs::write(folder.path().join("classes.txt"), "boat\nbuoy\n")?;
    std::fs::write(folder.path().join("one.png"), fixtures::png(50, 40, 1))?;
    std::fs::write(folder.path().join("one.txt"), "1 0.5 0.5 0.5 0.5\n")?;
    std::fs::write(folder.path().join("two.bmp"), fixtures::bmp(30, 30, 2))?;
    std::fs::write(folder.path().join("two.txt"), "0 0.25 0.25 0.1 0.1\n")?;
    let database = e2e::postgres::database_env(studio.data_dir()).await?;
    let cli = |args: &[&str]| {
        Command::new(e2e::studio::binary_path())
            .args(args)
            .arg("--data-dir")
            .arg(studio.data_dir())
            .envs(database.clone())
            .output()
    };
    let out = cli(&["import", &folder.path().display().to_string(), "--project", "From CLI"])?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        stdout.contains("2 images added") && stdout.contains("2 boxes"),
        "{stdout}"
    );
    let listed: Vec<Project> = http.get(studio.api("/api/projects")).send().await?.json().await?;
    let from_cli = listed
        .iter()
        .find(|p| p.name == "From CLI")
        .ok_or_else(|| anyhow::anyhow!("not listed: {listed:?}"))?;
    assert_eq!(
        from_cli.classes.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        ["boat", "buoy"]
    );
    let zip_path = folder.path().join("out.zip");
    let out = cli(&[
        "export",
        "--project",
        "From CLI",
        "--out",
        &zip_path.display().to_string(),
    ])?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let archive = zip::ZipArchive::new(std::fs::File::open(&zip_path)?)?;
    assert_eq!(
        archive.len(),
        2 * 2 + 2,
        "2 images, 2 label files, data.yaml, manifest.json"
    );
    let missing = cli(&["export", "--project", "Nope", "--out", "x.zip"])?;
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("there is no project named \"Nope\""));
    Ok(())
}

async fn page_first_id(studio: &Studio, project_id: i64) -> anyhow::Result<i64> {
    let page: api::ImagePage = studio
        .http()
        .get(studio.api(&format!("/api/projects/{project_id}/images")))
        .send()
        .await?
        .json()
        .await?;
    page.images
        .first()
        .map(|i| i.id)
        .ok_or_else(|| anyhow::anyhow!("no images"))
}

/// A 5,000-image dataset imports on Linux's usual limit of 1,024 open files, and the server
/// keeps answering another person's edits while it does. Prints those edits' latency and the
/// server's peak memory (figures for the closing note, not assertions).
#[tokio::test]
async fn import_five_thousand_images() -> anyhow::Result<()> {
    const IMAGES: u32 = 5_000;
    let studio = Studio::start_with_open_files_limit(1024, &[]).await?;
    let http = studio.http().clone();
    // Someone labeling in another project meanwhile.
    let other = studio.create_project("Elsewhere", &["thing"]).await?;
    let (_, uploaded) = studio
        .upload(other.id, &[("a.png", fixtures::png(200, 100, 1))])
        .await?;
    let image = uploaded[0]["id"].as_i64().unwrap_or_default();

    let mut entries: Vec<(String, Vec<u8>)> = vec![("data.yaml".into(), b"names: [dot]\n".to_vec())];
    for n in 0..IMAGES {
        entries.push((format!("images/train/{n:05}.jpg"), fixtures::numbered_jpeg(64, 48, n)));
        entries.push((format!("labels/train/{n:05}.txt"), b"0 0.5 0.5 0.25 0.5\n".to_vec()));
    }
    let refs: Vec<(&str, Vec<u8>)> = entries.iter().map(|(n, b)| (n.as_str(), b.clone())).collect();
    let zip = zip_of(&refs);
    drop(refs);
    let target = studio.create_project("Large", &[]).await?;
    let started = std::time::Instant::now();
    let import = tokio::spawn({
        let url = studio.api(&format!("/api/projects/{}/import", target.id));
        let http = studio.http().clone();
        async move {
            let form =
                reqwest::multipart::Form::new().part("file", reqwest::multipart::Part::bytes(zip).file_name("big.zip"));
            let response = http.post(url).multipart(form).send().await?;
            anyhow::Ok((response.status(), response.json::<Value>().await.unwrap_or(Value::Null)))
        }
    });
    let mut latencies_ms = Vec::new();
    let ops = studio.api(&format!("/api/images/{image}/ops"));
    while !import.is_finished() {
        let x0 = latencies_ms.len() % 100;
        let sent = std::time::Instant::now();
        let response = http
            .post(&ops)
            .json(&json!({"ops": [{"op": "create", "box": {"class_id": 0, "x0": x0, "y0": 10, "x1": x0 + 50, "y1": 60}}]}))
            .send()
            .await?;
        assert_eq!(response.status(), StatusCode::OK, "{}", response.text().await?);
        latencies_ms.push(sent.elapsed().as_secs_f64() * 1000.0);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (status, report) = import.await??;
    let import_s = started.elapsed().as_secs_f64();
    assert_eq!(status, StatusCode::OK, "{report}\n{}", studio.log());
    assert_eq!(
        (report["images_added"].as_u64(), report["boxes_added"].as_u64()),
        (Some(u64::from(IMAGES)), Some(u64::from(IMAGES))),
        "{report}"
    );
    let listed: Value = http
        .get(studio.api(&format!("/api/projects/{}/images?limit=1", target.id)))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(listed["total"], IMAGES);
    assert!(!latencies_ms.is_empty(), "no edit was answered during the import");
    latencies_ms.sort_by(f64::total_cmp);
    let at = |q: f64| latencies_ms[((latencies_ms.len() - 1) as f64 * q) as usize];
    println!(
        "import of {IMAGES} images: {import_s:.1} s ({:.0} images/s); {} edits answered meanwhile, \
         latency median {:.1} ms, p95 {:.1} ms, max {:.1} ms; server peak RSS {} MiB",
        f64::from(IMAGES) / import_s,
        latencies_ms.len(),
        at(0.5),
        at(0.95),
        at(1.0),
        studio.peak_rss_kib().unwrap_or_default() / 1024
    );
    Ok(())
}
