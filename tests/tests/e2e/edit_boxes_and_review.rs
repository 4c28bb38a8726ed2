//! What the editor does, through the API: box operations with revisions and sequence numbers,
//! last-writer-wins on the same box, the "no objects" flag, review states, and removing a class
//! that boxes still use.

use e2e::{Studio, fixtures};
use reqwest::StatusCode;
use serde_json::{Value, json};

const A: &str = "7f1c2d3e-4b5a-4c6d-8e9f-0a1b2c3d4e5f";
const B: &str = "0b8e6a52-91d4-4f3b-a7c2-5d6e7f809a1b";

async fn post(http: &reqwest::Client, url: String, body: Value) -> anyhow::Result<(StatusCode, Value)> {
    let response = http.post(url).json(&body).send().await?;
    Ok((response.status(), response.json().await.unwrap_or(Value::Null)))
}

#[tokio::test]
async fn edit_boxes_and_review() -> anyhow::Result<()> {
    let studio = Studio::start().await?;
    let project = studio.create_project("Review", &["cat", "dog", "bird"]).await?;
    let (_, uploaded) = studio
        .upload(project.id, &[("one.png", fixtures::png(100, 50, 1))])
        .await?;
    let image = uploaded[0]["id"].as_i64().unwrap_or_default();
    let http = studio.http().clone();
    let ops = studio.api(&format!("/api/images/{image}/ops"));

    // Two creates in one request: sequence numbers in order, status moves to in_progress.
    let (status, body) = post(
        &http,
        ops.clone(),
        json!({"ops": [
            {"op": "create", "box": {"id": A, "class_id": 0, "x0": 10, "y0": 10, "x1": 30, "y1": 20}},
            {"op": "create", "box": {"id": B, "class_id": 1, "x0": 90, "y0": 40, "x1": 120, "y1": 70}},
        ]}),
    )
    .await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "in_progress");
    let seqs: Vec<i64> = body["applied"]
        .as_array()
        .map(|a| a.iter().filter_map(|o| o["seq"].as_i64()).collect())
        .unwrap_or_default();
    assert_eq!(seqs, [1, 2]);
    // Clipped to the 100×50 image.
    assert_eq!(body["applied"][1]["bbox"]["x1"], 100.0);
    assert_eq!(body["applied"][1]["bbox"]["y1"], 50.0);

    // Update based on revision 1 → revision 2. A stale update (base 1) from the same person (an
    // edit queued while their previous one was on its way) overwrites nobody; one from another
    // person still wins, and says whose change it replaced.
    let (_, body) = post(&http, ops.clone(), json!({"ops": [{"op": "update", "base_rev": 1, "box": {"id": A, "class_id": 2, "x0": 11, "y0": 10, "x1": 30, "y1": 20}}]})).await?;
    assert_eq!(body["applied"][0]["bbox"]["revision"], 2);
    assert!(body["applied"][0]["overwrote"].is_null());
    let (_, body) = post(&http, ops.clone(), json!({"ops": [{"op": "update", "base_rev": 1, "box": {"id": A, "class_id": 2, "x0": 11, "y0": 10, "x1": 31, "y1": 20}}]})).await?;
    assert_eq!(body["applied"][0]["bbox"]["revision"], 3);
    assert!(body["applied"][0]["overwrote"].is_null(), "{body}");
    let colleague = studio.add_user("colleague", "colleague's long password").await?;
    studio.add_member(project.id, "colleague", api::Role::Annotator).await?;
    let token = colleague.create_token(&studio.url, "ops").await?.token;
    let colleague_http = e2e::accounts::bearer_client(&token)?;
    let (_, body) = post(&colleague_http, ops.clone(), json!({"ops": [{"op": "update", "base_rev": 1, "box": {"id": A, "class_id": 0, "x0": 12, "y0": 10, "x1": 30, "y1": 20}}]})).await?;
    assert_eq!(body["applied"][0]["bbox"]["revision"], 4);
    assert_eq!(body["applied"][0]["overwrote"], "admin", "{body}");

    // Resending a create (a retried request) updates instead of failing; deleting twice is harmless.
    let (status, _) = post(
        &http,
        ops.clone(),
        json!({"ops": [{"op": "create", "box": {"id": A, "class_id": 0, "x0": 12, "y0": 10, "x1": 30, "y1": 20}}]}),
    )
    .await?;
    assert_eq!(status, StatusCode::OK);
    for _ in 0..2 {
        let (status, _) = post(
            &http,
            ops.clone(),
            json!({"ops": [{"op": "delete", "box": {"id": B, "class_id": 1, "x0": 0, "y0": 0, "x1": 0, "y1": 0}}]}),
        )
        .await?;
        assert_eq!(status, StatusCode::OK);
    }

    // The server refuses bad operations one by one and applies the rest: each refusal names
    // its operation (index in `ops`, or none for the flag) with a code and a reason.
    let refused_batches = [
        (
            json!({"ops": [{"op": "create", "box": {"class_id": 9, "x0": 1, "y0": 1, "x1": 5, "y1": 5}}]}),
            0,
            vec![(Some(0), "unknown_class")],
        ),
        (
            json!({"ops": [{"op": "create", "box": {"class_id": 0, "x0": 5, "y0": 5, "x1": 5, "y1": 9}}]}),
            0,
            vec![(Some(0), "invalid_box")],
        ),
        (
            json!({"ops": [{"op": "create", "box": {"id": "not-a-uuid", "class_id": 0, "x0": 1, "y0": 1, "x1": 5, "y1": 5}}]}),
            0,
            vec![(Some(0), "invalid_box")],
        ),
        (
            json!({"ops": [
                {"op": "create", "box": {"class_id": 0, "x0": 1, "y0": 1, "x1": 5, "y1": 5}},
                {"op": "update", "box": {"id": B, "class_id": 0, "x0": 1, "y0": 1, "x1": 5, "y1": 5}},
                {"op": "create", "box": {"class_id": 7, "x0": 1, "y0": 1, "x1": 5, "y1": 5}},
                {"op": "create", "box": {"class_id": 1, "x0": 40, "y0": 1, "x1": 60, "y1": 25}}]}),
            2,
            vec![(Some(1), "box_deleted"), (Some(2), "unknown_class")],
        ),
        (
            json!({"ops": [], "negative": true}),
            0,
            vec![(None, "negative_with_boxes")],
        ),
    ];
    for (batch, applied, refusals) in refused_batches {
        let (status, body) = post(&http, ops.clone(), batch.clone()).await?;
        assert_eq!(status, StatusCode::OK, "{batch}: {body}");
        assert_eq!(
            body["applied"].as_array().map(Vec::len),
            Some(applied),
            "{batch}: {body}"
        );
        let got: Vec<(Option<u64>, &str)> = body["refused"]
            .as_array()
            .map(|r| {
                r.iter()
                    .map(|r| (r["index"].as_u64(), r["code"].as_str().unwrap_or("")))
                    .collect()
            })
            .unwrap_or_default();
        let want: Vec<(Option<u64>, &str)> = refusals.iter().map(|(i, c)| (i.map(|i| i as u64), *c)).collect();
        assert_eq!(got, want, "{batch}: {body}");
        assert!(
            body["refused"][0]["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{body}"
        );
    }
    assert_eq!(
        body_negative(&http, &studio, image).await?,
        Some(false),
        "a refused flag changes nothing"
    );
    let boxes: Value = http
        .get(studio.api(&format!("/api/images/{image}/boxes")))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(
        boxes["boxes"].as_array().map(Vec::len),
        Some(3),
        "A, plus the two good creates of the mixed batch: {boxes}"
    );
    // Replacing every box is one decision: a bad box refuses the whole request, nothing changes.
    let put = http
        .put(studio.api(&format!("/api/images/{image}/boxes")))
        .json(&json!({"boxes": [{"class_id": 0, "x0": 1, "y0": 1, "x1": 9, "y1": 9}, {"class_id": 9, "x0": 1, "y0": 1, "x1": 9, "y1": 9}]}))
        .send()
        .await?;
    assert_eq!(put.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let refused: Value = put.json().await?;
    assert_eq!(refused["error"]["code"], "unknown_class", "{refused}");
    let after: Value = http
        .get(studio.api(&format!("/api/images/{image}/boxes")))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(after["boxes"], boxes["boxes"], "a refused replacement keeps the boxes");

    // PUT replaces the human boxes (scripts); an empty list plus negative marks a reviewed negative.
    let put = http
        .put(studio.api(&format!("/api/images/{image}/boxes")))
        .json(&json!({"boxes": [], "negative": true}))
        .send()
        .await?;
    assert_eq!(put.status(), StatusCode::OK);
    let boxes: Value = put.json().await?;
    assert_eq!(
        (boxes["negative"].as_bool(), boxes["boxes"].as_array().map(Vec::len)),
        (Some(true), Some(0))
    );
    // Drawing on it again clears the flag.
    let (_, body) = post(
        &http,
        ops.clone(),
        json!({"ops": [{"op": "create", "box": {"class_id": 1, "x0": 1, "y0": 1, "x1": 20, "y1": 20}}]}),
    )
    .await?;
    assert_eq!(body["negative"], false);
    let last_seq = body["applied"][0]["seq"].as_i64().unwrap_or_default();

    // Review: approve needs a submitted image; reject needs a comment; reopen after.
    let status_url = studio.api(&format!("/api/images/{image}/status"));
    let (status, body) = post(&http, status_url.clone(), json!({"status": "approved"})).await?;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("invalid_transition"))
    );
    let (_, body) = post(&http, status_url.clone(), json!({"status": "submitted"})).await?;
    assert_eq!(body["status"], "submitted");
    let (status, body) = post(
        &http,
        status_url.clone(),
        json!({"status": "rejected", "comment": "  "}),
    )
    .await?;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("comment_required"))
    );
    let (_, body) = post(
        &http,
        status_url.clone(),
        json!({"status": "rejected", "comment": "Box the tail too"}),
    )
    .await?;
    assert_eq!(
        (body["status"].as_str(), body["review_comment"].as_str()),
        (Some("rejected"), Some("Box the tail too"))
    );
    let (_, body) = post(&http, status_url.clone(), json!({"status": "in_progress"})).await?;
    assert_eq!(body["status"], "in_progress");
    post(&http, status_url.clone(), json!({"status": "submitted"})).await?;
    let (_, body) = post(&http, status_url.clone(), json!({"status": "approved"})).await?;
    assert_eq!(body["status"], "approved");
    assert!(body["review_comment"].is_null(), "approval clears the old comment");
    let listed: Value = http
        .get(studio.api(&format!("/api/projects/{}/images?status=approved", project.id)))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(listed["total"], 1);
    let by_class: Value = http
        .get(studio.api(&format!("/api/projects/{}/images?class_id=1", project.id)))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(by_class["total"], 1);

    // Removing a class that boxes use needs an answer: move them (or delete them).
    let patch = |body: Value| {
        http.patch(studio.api(&format!("/api/projects/{}", project.id)))
            .json(&body)
            .send()
    };
    let refused = patch(json!({"classes": [{"id": 0, "name": "cat"}, {"id": 2, "name": "bird"}]})).await?;
    assert_eq!(refused.status(), StatusCode::CONFLICT);
    let refused: Value = refused.json().await?;
    assert_eq!(refused["error"]["code"], "class_in_use");
    // Review decisions are numbered too: the sequence as it stands before the move.
    let before_move: api::ImageBoxes = http
        .get(studio.api(&format!("/api/images/{image}/boxes")))
        .send()
        .await?
        .json()
        .await?;
    assert!(
        before_move.seq > last_seq,
        "the status changes took numbers of their own"
    );
    let moved = patch(json!({"classes": [{"id": 0, "name": "cat"}, {"id": 2, "name": "bird"}], "removed_class_boxes": [{"class_id": 1, "move_to": 2}]})).await?;
    assert_eq!(moved.status(), StatusCode::OK);
    let boxes: Value = http
        .get(studio.api(&format!("/api/images/{image}/boxes")))
        .send()
        .await?
        .json()
        .await?;
    let classes: Vec<i64> = boxes["boxes"]
        .as_array()
        .map(|b| b.iter().filter_map(|b| b["class_id"].as_i64()).collect())
        .unwrap_or_default();
    assert_eq!(classes, [2]);
    // The move was numbered and logged like an edit: one sequence number for the moved box, so
    // the next edit gets the one after.
    let (_, body) = post(
        &http,
        ops.clone(),
        json!({"ops": [{"op": "create", "box": {"class_id": 0, "x0": 1, "y0": 1, "x1": 9, "y1": 9}}]}),
    )
    .await?;
    assert_eq!(body["applied"][0]["seq"].as_i64(), Some(before_move.seq + 2), "{body}");
    Ok(())
}

async fn body_negative(http: &reqwest::Client, studio: &Studio, image: i64) -> anyhow::Result<Option<bool>> {
    let boxes: Value = http
        .get(studio.api(&format!("/api/images/{image}/boxes")))
        .send()
        .await?
        .json()
        .await?;
    Ok(boxes["negative"].as_bool())
}
