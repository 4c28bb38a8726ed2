//! Exporting a labelled project: the YOLO zip follows Ultralytics' dataset rules and gives back
//! every box; COCO has absolute xywh boxes; `include` picks the images.

use std::collections::{BTreeMap, HashMap};
use std::io::{Cursor, Read};

use api::yolo::parse_labels;
use e2e::{Studio, fixtures};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Every entry of a zip: name → (bytes, stored uncompressed?).
fn unzip(bytes: &[u8]) -> anyhow::Result<BTreeMap<String, (Vec<u8>, bool)>> {
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes))?;
    let mut entries = BTreeMap::new();
    for index in 0..archive.len() {
        let mut file = archive.by_index(index)?;
        let stored = file.compression() == zip::CompressionMethod::Stored;
        let mut data = Vec::new();
        file.read_to_end(&mut data)?;
        entries.insert(file.name()?.into_owned(), (data, stored));
    }
    Ok(entries)
}

/// Ultralytics' rules for a detection dataset: data.yaml names train and val folders relative to
/// itself (no `path:`), `nc` matches the names, each image has a label file found by replacing
/// `/images/` with `/labels/` and the extension with `.txt`, every label line parses with values
/// in [0, 1] and class < nc, and both train and val hold images.
fn check_ultralytics_rules(entries: &BTreeMap<String, (Vec<u8>, bool)>, class_names: &[&str]) -> anyhow::Result<()> {
    let yaml = String::from_utf8(entries.get("data.yaml").map(|e| e.0.clone()).unwrap_or_default())?;
    anyhow::ensure!(
        !yaml.lines().any(|l| l.starts_with("path:")),
        "data.yaml must not set path:\n{yaml}"
    );
    anyhow::ensure!(
        yaml.contains("train: images/train\n") && yaml.contains("val: images/val\n"),
        "{yaml}"
    );
    anyhow::ensure!(yaml.contains(&format!("nc: {}\n", class_names.len())), "{yaml}");
    for (index, name) in class_names.iter().enumerate() {
        anyhow::ensure!(
            yaml.contains(&format!("  {index}: \"{name}\"\n")),
            "names dict in {yaml}"
        );
    }
    let mut per_split: HashMap<&str, usize> = HashMap::new();
    for (name, (_, stored)) in entries.iter().filter(|(n, _)| n.starts_with("images/")) {
        let split = name.split('/').nth(1).unwrap_or_default();
        *per_split.entry(split).or_default() += 1;
        anyhow::ensure!(*stored, "{name} must be stored, not recompressed");
        let label = name.replacen("images/", "labels/", 1);
        let label = format!(
            "{}.txt",
            label.rsplit_once('.').map_or(label.as_str(), |(stem, _)| stem)
        );
        let text = entries.get(&label).map(|e| String::from_utf8_lossy(&e.0).into_owned());
        let text = text.ok_or_else(|| anyhow::anyhow!("{name} has no label file {label}"))?;
        parse_labels(&text, class_names.len()).map_err(|errors| anyhow::anyhow!("{label}: {errors:?}"))?;
    }
    anyhow::ensure!(
        per_split.get("train").copied().unwrap_or(0) > 0,
        "no train images: {per_split:?}"
    );
    anyhow::ensure!(
        per_split.get("val").copied().unwrap_or(0) > 0,
        "no val images: {per_split:?}"
    );
    Ok(())
}

#[tokio::test]
async fn export_yolo_zip() -> anyhow::Result<()> {
    let studio = Studio::start().await?;
    let class_names = ["car", "person", "traffic light"];
    let project = studio.create_project("Streets", &class_names).await?;
    let http = studio.http().clone();

    let empty = http
        .get(studio.api(&format!("/api/projects/{}/export", project.id)))
        .send()
        .await?;
    assert_eq!(empty.status(), StatusCode::UNPROCESSABLE_ENTITY, "nothing labeled yet");

    // Twelve images: ten labelled (boxes of every class), one reviewed negative, one untouched.
    let files: Vec<(String, Vec<u8>)> = (0..12u8)
        .map(|i| (format!("frame {i:02}.png"), fixtures::png(64 + u32::from(i) * 8, 48, i)))
        .collect();
    let files_ref: Vec<(&str, Vec<u8>)> = files.iter().map(|(n, b)| (n.as_str(), b.clone())).collect();
    let (_, uploaded) = studio.upload(project.id, &files_ref).await?;
    let ids: Vec<i64> = uploaded
        .as_array()
        .map(|a| a.iter().filter_map(|f| f["id"].as_i64()).collect())
        .unwrap_or_default();
    assert_eq!(ids.len(), 12);
    let mut expected_boxes: HashMap<i64, Vec<(u32, [f64; 4], u32)>> = HashMap::new();
    for (n, id) in ids.iter().enumerate().take(10) {
        let width = 64 + n as u32 * 8;
        let boxes: Vec<(u32, [f64; 4])> = (0..3u32)
            .map(|k| {
                (
                    project.classes[k as usize].id,
                    [
                        1.5 + f64::from(k) * 10.0,
                        2.25,
                        11.0 + f64::from(k) * 10.0,
                        30.5 + n as f64,
                    ],
                )
            })
            .collect();
        let body: Vec<Value> = boxes
            .iter()
            .map(|(c, [x0, y0, x1, y1])| json!({"class_id": c, "x0": x0, "y0": y0, "x1": x1, "y1": y1}))
            .collect();
        let put = http
            .put(studio.api(&format!("/api/images/{id}/boxes")))
            .json(&json!({"boxes": body}))
            .send()
            .await?;
        assert_eq!(put.status(), StatusCode::OK);
        expected_boxes.insert(*id, boxes.into_iter().map(|(c, r)| (c, r, width)).collect());
    }
    let negative = ids[10];
    http.put(studio.api(&format!("/api/images/{negative}/boxes")))
        .json(&json!({"boxes": [], "negative": true}))
        .send()
        .await?;

    let response = http
        .get(studio.api(&format!(
            "/api/projects/{}/export?format=yolo&include=labeled",
            project.id
        )))
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/zip");
    assert_eq!(
        response.headers()["content-disposition"],
        "attachment; filename=\"Streets-yolo.zip\""
    );
    let entries = unzip(&response.bytes().await?)?;
    check_ultralytics_rules(&entries, &class_names)?;

    // 11 images (10 labelled + the negative); the untouched one is left out.
    let images: Vec<&String> = entries.keys().filter(|k| k.starts_with("images/")).collect();
    assert_eq!(images.len(), 11, "{images:?}");
    let manifest: Value = serde_json::from_slice(&entries["manifest.json"].0)?;
    assert_eq!(manifest["counts"]["images"], 11);
    assert_eq!(manifest["counts"]["boxes"], 30);
    assert_eq!(manifest["classes"][2]["name"], "traffic light");

    // Round trip: every exported line maps back to the stored box within 1e-6 (normalised), with
    // its class; the original bytes are unchanged; the negative has an empty label file.
    for image in manifest["images"].as_array().cloned().unwrap_or_default() {
        let id = image["image_id"].as_i64().unwrap_or_default();
        let split = image["split"].as_str().unwrap_or_default();
        let file = image["file"].as_str().unwrap_or_default();
        let original = &files[ids.iter().position(|i| *i == id).unwrap_or_default()];
        assert_eq!(image["original_name"].as_str(), Some(original.0.as_str()));
        assert_eq!(
            entries[&format!("images/{split}/{file}")].0,
            original.1,
            "bytes of {file}"
        );
        let stem = file.rsplit_once('.').map_or(file, |(s, _)| s);
        let text = String::from_utf8_lossy(&entries[&format!("labels/{split}/{stem}.txt")].0).into_owned();
        let labels = parse_labels(&text, 3).map_err(|e| anyhow::anyhow!("{e:?}"))?;
        if id == negative {
            assert!(labels.is_empty());
            continue;
        }
        let expected = &expected_boxes[&id];
        assert_eq!(labels.len(), expected.len());
        for (label, (class_id, [x0, y0, x1, y1], width)) in labels.iter().zip(expected) {
            let class_index = project.classes.iter().position(|c| c.id == *class_id).unwrap_or(99);
            assert_eq!(label.class_index, class_index);
            // YOLO's definition, written out here: centre and size over the image's size.
            let (width, height) = (f64::from(*width), 48.0);
            let want = [
                (x0 + x1) / 2.0 / width,
                (y0 + y1) / 2.0 / height,
                (x1 - x0) / width,
                (y1 - y0) / height,
            ];
            for (got, want) in [label.cx, label.cy, label.w, label.h].iter().zip(want) {
                assert!((got - want).abs() <= 1e-6, "{file}: {got} vs {want}");
            }
        }
        if id == ids[0] {
            // The 64×48 frame's label file, computed by hand: box k is [1.5 + 10k, 2.25, 11 + 10k,
            // 30.5], so cx = (6.25 + 10k) / 64, cy = 16.375 / 48, w = 9.5 / 64, h = 28.25 / 48.
            assert_eq!(
                text,
                "0 0.097656 0.341146 0.148438 0.588542\n\
                 1 0.253906 0.341146 0.148438 0.588542\n\
                 2 0.410156 0.341146 0.148438 0.588542\n",
                "{file}"
            );
        }
    }

    // The split is deterministic: a second export is byte-identical.
    let again = http
        .get(studio.api(&format!(
            "/api/projects/{}/export?format=yolo&include=labeled",
            project.id
        )))
        .send()
        .await?
        .bytes()
        .await?;
    assert_eq!(unzip(&again)?, entries);

    // COCO: absolute [x, y, w, h], categories from 1.
    let coco = http
        .get(studio.api(&format!("/api/projects/{}/export?format=coco", project.id)))
        .send()
        .await?;
    let coco = unzip(&coco.bytes().await?)?;
    let annotations: api::coco::CocoDataset = serde_json::from_slice(&coco["annotations.json"].0)?;
    assert_eq!(
        (
            annotations.images.len(),
            annotations.annotations.len(),
            annotations.categories.len()
        ),
        (11, 30, 3)
    );
    assert_eq!(annotations.categories[0].id, 1);
    let first = &annotations.annotations[0];
    assert_eq!(first.bbox, [1.5, 2.25, 9.5, 28.25]);
    assert!(coco.contains_key(&format!("images/{}", annotations.images[0].file_name)));

    // include=approved: only what a reviewer approved.
    for status in ["submitted", "approved"] {
        http.post(studio.api(&format!("/api/images/{}/status", ids[0])))
            .json(&json!({"status": status}))
            .send()
            .await?;
    }
    let approved: Value = http
        .get(studio.api(&format!(
            "/api/projects/{}/export?include=approved&dry_run=true",
            project.id
        )))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(
        (approved["images"].as_u64(), approved["boxes"].as_u64()),
        (Some(1), Some(3))
    );

    for (query, code) in [
        ("format=xml", "invalid_format"),
        ("include=some", "invalid_include"),
        ("min_conf=2", "invalid_min_conf"),
    ] {
        let response = http
            .get(studio.api(&format!("/api/projects/{}/export?{query}", project.id)))
            .send()
            .await?;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{query}");
        let body: Value = response.json().await?;
        assert_eq!(body["error"]["code"], code);
    }
    Ok(())
}
