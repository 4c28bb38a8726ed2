-- An image's audit log (`GET /api/images/{iid}/history`) reads its own events, newest first,
-- without scanning the whole project's.
CREATE INDEX box_events_by_image ON box_events (image_id, seq);
CREATE INDEX review_events_by_image ON review_events (image_id, seq);
