//! Uploading images: sizes are upright, bytes are kept untouched, duplicates are reported, and
//! bad files get a clear 4xx without harming what is stored.

use e2e::{Studio, fixtures};
use reqwest::StatusCode;
use serde_json::Value;

#[tokio::test]
async fn upload_images() -> anyhow::Result<()> {
    let studio = Studio::start_with(&["--max-upload-mb", "1", "--max-megapixels", "20"]).await?;
    let project = studio.create_project("Uploads", &["thing"]).await?;
    let http = studio.http().clone();

    let rotated = fixtures::jpeg(64, 32, 6, 1);
    let (status, body) = studio
        .upload(
            project.id,
            &[
                ("rotated.jpg", rotated.clone()),
                ("plain.png", fixtures::png(80, 60, 2)),
                ("old.bmp", fixtures::bmp(50, 40, 3)),
            ],
        )
        .await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    let sizes: Vec<(String, u64, u64)> = body
        .as_array()
        .map(|list| {
            list.iter()
                .map(|f| {
                    (
                        f["file_name"].as_str().unwrap_or_default().to_owned(),
                        f["width"].as_u64().unwrap_or(0),
                        f["height"].as_u64().unwrap_or(0),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    // EXIF orientation 6: stored 64×32, upright 32×64.
    assert_eq!(
        sizes,
        [
            ("rotated.jpg".into(), 32, 64),
            ("plain.png".into(), 80, 60),
            ("old.bmp".into(), 50, 40)
        ]
    );
    let rotated_id = body[0]["id"].as_i64().unwrap_or_default();

    // Original bytes come back untouched; the thumbnail is an upright JPEG.
    let file = http
        .get(studio.api(&format!("/api/images/{rotated_id}/file")))
        .send()
        .await?;
    assert_eq!(file.headers()["content-type"], "image/jpeg");
    assert_eq!(file.bytes().await?.to_vec(), rotated);
    let thumb = http
        .get(studio.api(&format!("/api/images/{rotated_id}/thumb")))
        .send()
        .await?;
    assert_eq!(thumb.headers()["content-type"], "image/jpeg");
    let thumb = image::load_from_memory(&thumb.bytes().await?)?;
    assert_eq!((thumb.width(), thumb.height()), (32, 64), "thumbnails are upright");

    // The same bytes again: reported as a duplicate of the stored image, not stored twice.
    let (status, body) = studio.upload(project.id, &[("again.jpg", rotated.clone())]).await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body[0]["duplicate"], true);
    assert_eq!(body[0]["id"].as_i64(), Some(rotated_id));

    // Bad files: each gets its reason; a request where every file fails is a 4xx.
    let cases: [(&str, Vec<u8>, StatusCode, &str); 4] = [
        (
            "notes.pdf",
            b"%PDF-1.7 definitely not an image".to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_image",
        ),
        (
            "bomb.png",
            fixtures::png_bomb(40_000, 40_000),
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_many_pixels",
        ),
        (
            "huge.png",
            {
                let mut bytes = fixtures::png(8, 8, 0);
                bytes.resize(1024 * 1024 + 10, 0);
                bytes
            },
            StatusCode::PAYLOAD_TOO_LARGE,
            "file_too_large",
        ),
        (
            "broken.jpg",
            rotated[..rotated.len() / 3].to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "corrupt_image",
        ),
    ];
    for (name, bytes, expected_status, code) in cases {
        let (status, body) = studio.upload(project.id, &[(name, bytes)]).await?;
        assert_eq!(status, expected_status, "{name}: {body}");
        assert_eq!(body["error"]["code"], code, "{name}: {body}");
        assert!(
            body["error"]["message"].as_str().unwrap_or_default().contains(name),
            "{name}: {body}"
        );
    }
    // A mixed request: the good file is stored, the bad one reported.
    let (status, body) = studio
        .upload(
            project.id,
            &[("fine.png", fixtures::png(10, 10, 9)), ("bad.txt", b"hello".to_vec())],
        )
        .await?;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body[0]["id"].is_i64() && body[1]["error"]["code"] == "unsupported_image",
        "{body}"
    );
    let no_files = http
        .post(studio.api(&format!("/api/projects/{}/images", project.id)))
        .multipart(reqwest::multipart::Form::new().text("note", "no file here"))
        .send()
        .await?;
    assert_eq!(no_files.status(), StatusCode::BAD_REQUEST);
    let missing = studio.upload(999, &[("a.png", fixtures::png(4, 4, 0))]).await?;
    assert_eq!(missing.0, StatusCode::NOT_FOUND);

    // Listing: four images, paged with a cursor, filtered by status.
    let page: Value = http
        .get(studio.api(&format!("/api/projects/{}/images?limit=3", project.id)))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(page["total"], 4);
    assert_eq!(page["images"].as_array().map(Vec::len), Some(3));
    let cursor = page["next_cursor"].as_i64().unwrap_or_default();
    let rest: Value = http
        .get(studio.api(&format!("/api/projects/{}/images?limit=3&cursor={cursor}", project.id)))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(rest["images"].as_array().map(Vec::len), Some(1));
    assert!(rest["next_cursor"].is_null());
    let none: Value = http
        .get(studio.api(&format!("/api/projects/{}/images?status=approved", project.id)))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(none["total"], 0);
    let bad = http
        .get(studio.api(&format!("/api/projects/{}/images?status=done", project.id)))
        .send()
        .await?;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    Ok(())
}
