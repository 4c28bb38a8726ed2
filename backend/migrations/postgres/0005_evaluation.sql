-- What each model version detects on approved images at the evaluation's low confidence (0.001,
-- as `yolo val`): the Quality page's figures and the label-error ranking are computed from these
-- against the human boxes of the moment, so a review or an edit changes the figures at once and
-- only a new model version or a newly approved image needs inference.
CREATE TABLE evaluation_detections (
    model_id BIGINT  NOT NULL REFERENCES models (id) ON DELETE CASCADE,
    image_id BIGINT  NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    -- JSON array of api::PredictedBox, by the model's class index.
    boxes    TEXT    NOT NULL,
    -- Why the image could not be read; such rows count as done but not in the figures.
    error    TEXT,
    PRIMARY KEY (model_id, image_id)
);
CREATE INDEX evaluation_detections_by_image ON evaluation_detections (image_id);

-- A person looked at a suspected label error and said the label is right: not raised again for
-- that model version.
CREATE TABLE confirmed_labels (
    model_id     BIGINT  NOT NULL REFERENCES models (id) ON DELETE CASCADE,
    image_id     BIGINT  NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    -- api::Suspicion::key
    key          TEXT    NOT NULL,
    confirmed_at TEXT    NOT NULL DEFAULT (utc_now()),
    PRIMARY KEY (model_id, image_id, key)
);
