//! A person uploads three images (one a phone photo stored sideways with EXIF orientation 6),
//! draws two boxes with the mouse, changes a class with a number key, undoes and redoes it,
//! moves and resizes a box, goes to the next image and back, reloads — everything is still
//! there and upright — and downloads the YOLO zip.

use std::io::Read;
use std::time::Duration;

use e2e::browser::Modifier;
use e2e::{Browser, Studio, fixtures};

#[tokio::test]
async fn label_first_image() -> anyhow::Result<()> {
    let studio = Studio::start().await?;
    let project = studio.create_project("Harbour", &["boat", "buoy"]).await?;
    let browser = Browser::start().await?;
    browser.sign_in(&studio).await?;
    let outcome = label(&browser, &studio, &project).await;
    studio.with_log(browser.finish("label_first_image", outcome).await)
}

async fn label(browser: &Browser, studio: &Studio, project: &api::Project) -> anyhow::Result<()> {
    let client = &browser.client;
    let files = tempfile::tempdir()?;
    let inputs = [
        ("rotated.jpg", fixtures::jpeg(320, 160, 6, 1)),
        ("harbour.png", fixtures::png(400, 300, 2)),
        ("old.bmp", fixtures::bmp(200, 150, 3)),
    ];
    let mut paths = Vec::new();
    for (name, bytes) in &inputs {
        let path = files.path().join(name);
        std::fs::write(&path, bytes)?;
        paths.push(path.display().to_string());
    }

    client.goto(&format!("{}/projects/{}", studio.url, project.id)).await?;
    browser
        .find("#upload-input")
        .await?
        .send_keys(&paths.join("\n"))
        .await?;
    browser.wait_for_count(".upload-item[data-state=done]", 3).await?;
    browser.wait_for_count(".thumb", 3).await?;
    let ids = browser.attributes(".thumb", "data-image-id").await?;
    let rotated = ids.first().cloned().unwrap_or_default();

    browser
        .find(&format!(".thumb[data-image-id='{rotated}']"))
        .await?
        .click()
        .await?;
    browser.wait_for_count(".overlay", 1).await?;
    // The editor works in upright pixels: the 320×160 sideways photo is 160×320.
    let view_box = browser.attributes(".overlay", "viewBox").await?;
    anyhow::ensure!(view_box == ["0 0 160 320"], "viewBox {view_box:?}");
    wait_until_image_loaded(browser).await?;
    let natural = browser
        .numbers("const i = document.querySelector('.canvas-image'); return [i.naturalWidth, i.naturalHeight];")
        .await?;
    anyhow::ensure!(
        natural == [160.0, 320.0],
        "the browser shows the photo upright: {natural:?}"
    );

    // Two boxes drawn by dragging, at known fractions of the image.
    let area = browser
        .numbers("const r = document.querySelector('.overlay').getBoundingClientRect(); return [r.left, r.top, r.width, r.height];")
        .await?;
    let at = |fx: f64, fy: f64| (area[0] + area[2] * fx, area[1] + area[3] * fy);
    browser.drag(at(0.1, 0.1), at(0.5, 0.4)).await?;
    browser.wait_for_count(".overlay rect.box[data-box-id]", 1).await?;
    browser.drag(at(0.55, 0.5), at(0.9, 0.9)).await?;
    browser.wait_for_count(".overlay rect.box[data-box-id]", 2).await?;
    let classes = browser
        .attributes(".overlay rect.box[data-box-id]", "data-class-id")
        .await?;
    anyhow::ensure!(classes == ["0", "0"], "both drawn with the first class: {classes:?}");

    // "2" gives the selected (last drawn) box the second class; undo and redo it.
    browser.press(&[], '2').await?;
    wait_for_classes(browser, &["0", "1"]).await?;
    browser.press(&[Modifier::Control], 'z').await?;
    wait_for_classes(browser, &["0", "0"]).await?;
    browser.press(&[Modifier::Control, Modifier::Shift], 'z').await?;
    wait_for_classes(browser, &["0", "1"]).await?;
    browser.wait_for_count(".sync[data-sync=saved]", 1).await?;

    // Move the first box by dragging its body, then resize it by its bottom-right handle.
    browser.drag(at(0.3, 0.25), at(0.35, 0.3)).await?;
    browser.wait_for_count(".handle-se", 1).await?;
    browser.drag(at(0.55, 0.45), at(0.6, 0.5)).await?;
    browser.wait_for_count(".sync[data-sync=saved]", 1).await?;

    // Stored on the server, in upright pixels.
    let boxes: api::ImageBoxes = studio
        .http()
        .get(studio.api(&format!("/api/images/{rotated}/boxes")))
        .send()
        .await?
        .json()
        .await?;
    let got: Vec<(u32, [f64; 4])> = boxes
        .boxes
        .iter()
        .map(|b| (b.class_id, [b.x0, b.y0, b.x1, b.y1]))
        .collect();
    let expected = [(0, [24.0, 48.0, 96.0, 160.0]), (1, [88.0, 160.0, 144.0, 288.0])];
    anyhow::ensure!(got.len() == 2, "stored {got:?}");
    for ((class, rect), (want_class, want_rect)) in got.iter().zip(expected) {
        anyhow::ensure!(*class == want_class, "stored {got:?}");
        for (a, b) in rect.iter().zip(want_rect) {
            anyhow::ensure!((a - b).abs() <= 3.0, "stored {got:?}, drawn about {expected:?}");
        }
    }
    anyhow::ensure!(
        boxes.status == api::ImageStatus::InProgress,
        "status {:?}",
        boxes.status
    );

    // D opens an unlabeled image (the shared queue's: one of the other two, in this person's
    // random order — there is no student), A walks the gallery back: the boxes and status are
    // the server's.
    browser.press(&[], 'd').await?;
    let unlabeled = format!(
        ".editor[data-image-id='{}'], .editor[data-image-id='{}']",
        ids[1], ids[2]
    );
    browser.wait_for_count(&unlabeled, 1).await?;
    for _ in 0..2 {
        if !browser
            .client
            .find_all(fantoccini::Locator::Css(&format!(".editor[data-image-id='{rotated}']")))
            .await?
            .is_empty()
        {
            break;
        }
        let on = browser.attributes(".editor", "data-image-id").await?;
        browser.press(&[], 'a').await?;
        browser
            .wait_for_count(&format!(".editor:not([data-image-id='{}'])", on.join("")), 1)
            .await?;
    }
    browser
        .wait_for_count(&format!(".editor[data-image-id='{rotated}']"), 1)
        .await?;
    browser.wait_for_count(".overlay rect.box[data-box-id]", 2).await?;
    browser.wait_for_text(".badge[data-status]", "In progress").await?;

    // A reload shows the same thing.
    client.refresh().await?;
    browser.wait_for_count(".overlay rect.box[data-box-id]", 2).await?;
    wait_for_classes(browser, &["0", "1"]).await?;
    let view_box = browser.attributes(".overlay", "viewBox").await?;
    anyhow::ensure!(view_box == ["0 0 160 320"], "viewBox after reload {view_box:?}");

    // Export from the project page: the browser downloads the YOLO zip.
    client.goto(&format!("{}/projects/{}", studio.url, project.id)).await?;
    browser.find("#export-button").await?.click().await?;
    browser.wait_for_text(".export-summary", "1 image · 2 boxes").await?;
    let zip_path = browser.download_dir().join("Harbour-yolo.zip");
    let deadline = tokio::time::Instant::now() + e2e::browser::UI_TIMEOUT;
    while !zip_path.is_file() {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "no download at {}",
            zip_path.display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut archive = zip::ZipArchive::new(std::fs::File::open(&zip_path)?)?;
    let mut names: Vec<String> = archive
        .file_names()
        .map(|n| n.map(|n| n.into_owned()))
        .collect::<Result<_, _>>()?;
    names.sort();
    let image_entry = names
        .iter()
        .find(|n| n.starts_with("images/") && n.ends_with(&format!("{rotated:0>6}-rotated.jpg")));
    let image_entry = image_entry
        .ok_or_else(|| anyhow::anyhow!("no image in {names:?}"))?
        .clone();
    let label_entry = image_entry.replacen("images/", "labels/", 1).replace(".jpg", ".txt");
    anyhow::ensure!(
        names.contains(&"data.yaml".to_owned()) && names.contains(&"manifest.json".to_owned()),
        "{names:?}"
    );
    let mut labels = String::new();
    archive.by_name(&label_entry)?.read_to_string(&mut labels)?;
    let classes: Vec<&str> = labels.lines().filter_map(|l| l.split(' ').next()).collect();
    anyhow::ensure!(classes == ["0", "1"], "labels {labels:?}");
    Ok(())
}

async fn wait_for_classes(browser: &Browser, expected: &[&str]) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + e2e::browser::UI_TIMEOUT;
    loop {
        let classes = browser
            .attributes(".overlay rect.box[data-box-id]", "data-class-id")
            .await?;
        if classes == expected {
            return Ok(());
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "classes {classes:?}, expected {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait_until_image_loaded(browser: &Browser) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + e2e::browser::UI_TIMEOUT;
    loop {
        let done = browser
            .numbers(
                "const i = document.querySelector('.canvas-image'); return [i.complete && i.naturalWidth > 0 ? 1 : 0];",
            )
            .await?;
        if done == [1.0] {
            return Ok(());
        }
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "the image did not load");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
