//! The console's stylesheet and script, embedded and served under names holding their
//! hash.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::error::ApiError;

/// An embedded asset, served under a name holding its hash (cached for a year).
pub(crate) struct Asset {
    pub(crate) path: String,
    content_type: &'static str,
    body: &'static str,
}

impl Asset {
    fn new(stem: &str, ext: &str, content_type: &'static str, body: &'static str) -> Asset {
        let hash = hex::encode(&Sha256::digest(body.as_bytes())[..6]);
        Asset { path: format!("/admin/assets/{stem}.{hash}.{ext}"), content_type, body }
    }
}

pub(crate) static CSS: LazyLock<Asset> =
    LazyLock::new(|| Asset::new("console", "css", "text/css; charset=utf-8", include_str!("../../assets/console.css")));
pub(crate) static JS: LazyLock<Asset> = LazyLock::new(|| {
    Asset::new("console", "js", "text/javascript; charset=utf-8", include_str!("../../assets/console.js"))
});

/// GET /admin/assets/{file}
pub(super) async fn asset(Path(file): Path<String>) -> Response {
    for a in [&*CSS, &*JS] {
        if a.path.rsplit('/').next() == Some(file.as_str()) {
            return (
                [
                    (header::CONTENT_TYPE, a.content_type),
                    (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
                ],
                a.body,
            )
                .into_response();
        }
    }
    ApiError::not_found().into_response()
}
