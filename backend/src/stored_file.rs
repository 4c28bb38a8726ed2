//! Serving a stored object over HTTP. Keys are content hashes, so an object never changes: the
//! hash is its ETag, browsers may keep it forever, and a revalidation is answered 304 without
//! touching the store.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::TryStreamExt;

use crate::error::ApiError;
use crate::store::{Key, Store};

/// How one kind of stored file is served.
pub struct Served<'a> {
    /// The object.
    pub key: Key,
    /// Its content hash, the ETag.
    pub sha256: &'a str,
    /// Its media type.
    pub content_type: &'static str,
    /// `private` for a project's images, `public` for model files.
    pub cache_control: &'static str,
}

/// The object as a streamed response (or 304 when the client already has these bytes).
pub async fn serve(store: &Store, file: Served<'_>, headers: &HeaderMap) -> Result<Response, ApiError> {
    let etag = format!("\"{}\"", file.sha256);
    let cache_control = HeaderValue::from_static(file.cache_control);
    let already_held = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(',').map(str::trim))
        .any(|tag| tag == "*" || tag.trim_start_matches("W/") == etag);
    let etag = HeaderValue::from_str(&etag).map_err(ApiError::internal)?;
    if already_held {
        return Ok((
            StatusCode::NOT_MODIFIED,
            [(header::ETAG, etag), (header::CACHE_CONTROL, cache_control)],
        )
            .into_response());
    }
    let found = store.get(&file.key).await.map_err(ApiError::internal)?;
    let length = found.meta.size;
    let body = Body::from_stream(found.into_stream().map_err(std::io::Error::other));
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(file.content_type)),
            (header::CONTENT_LENGTH, HeaderValue::from(length)),
            (header::ETAG, etag),
            (header::CACHE_CONTROL, cache_control),
        ],
        body,
    )
        .into_response())
}

/// The media type of an image stored with this extension (the studio keeps only these).
pub fn image_type(extension: &str) -> &'static str {
    match extension {
        "jpg" => "image/jpeg",
        "png" => "image/png",
        "webp" => "image/webp",
        "bmp" => "image/bmp",
        _ => "application/octet-stream",
    }
}
