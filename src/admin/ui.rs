//! The web page at `/ui/`: plain HTML, CSS and ES modules compiled into the binary, so the
//! page works with no network, no CDN and no build step. The page only reads the admin API
//! (and pins noise through `PUT /api/v1/noise`), with the bearer token when the admin port
//! asks for one; its files carry no data, so they are served without the token.

use super::reply::{text, Reply};
use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::Full;

/// One embedded file.
struct Asset {
    /// The name after `/ui/`.
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

/// Everything the page is made of.
const ASSETS: &[Asset] = &[
    Asset {
        name: "index.html",
        content_type: "text/html; charset=utf-8",
        body: include_bytes!("ui/index.html"),
    },
    Asset {
        name: "style.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("ui/style.css"),
    },
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("ui/app.js"),
    },
    Asset {
        name: "api.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("ui/api.js"),
    },
    Asset {
        name: "dom.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("ui/dom.js"),
    },
    Asset {
        name: "charts.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("ui/charts.js"),
    },
    Asset {
        name: "diff.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("ui/diff.js"),
    },
    Asset {
        name: "overview.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("ui/overview.js"),
    },
    Asset {
        name: "route.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("ui/route.js"),
    },
    Asset {
        name: "sample.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("ui/sample.js"),
    },
    Asset {
        name: "noise.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("ui/noise.js"),
    },
    Asset {
        name: "favicon.svg",
        content_type: "image/svg+xml",
        body: include_bytes!("ui/favicon.svg"),
    },
];

/// Only the page's own files and the admin API: sample bodies are shown as text, and
/// this keeps a body that slipped through from running script or calling elsewhere.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

/// Whether `path` is the page's: `/ui` or anything under `/ui/`.
pub fn is_page(path: &str) -> bool {
    path == "/ui" || path.starts_with("/ui/")
}

/// The answer for a page path: `/ui` redirects to `/ui/`, `/ui/` is `index.html`, other names
/// are the embedded files, anything else a 404.
pub fn get(path: &str) -> Reply {
    if path == "/ui" {
        let mut response = text(StatusCode::MOVED_PERMANENTLY, "see /ui/\n");
        response
            .headers_mut()
            .insert(header::LOCATION, HeaderValue::from_static("/ui/"));
        return response;
    }
    let name = match path.strip_prefix("/ui/") {
        Some("") => "index.html",
        Some(name) => name,
        None => "",
    };
    let Some(asset) = ASSETS.iter().find(|asset| asset.name == name) else {
        return text(
            StatusCode::NOT_FOUND,
            "no such file of the web page: try /ui/\n",
        );
    };
    let mut response = Response::new(Full::new(Bytes::from_static(asset.body)));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    // Revalidated each time: after an upgrade the page never mixes old and new modules.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every module the page imports is embedded: a new `.js` file that was not added to
    /// [`ASSETS`] fails here rather than as a blank page.
    #[test]
    fn every_imported_module_is_embedded() {
        for asset in ASSETS {
            let source = String::from_utf8_lossy(asset.body);
            for line in source.lines() {
                let Some((_, rest)) = line.split_once(" from './") else {
                    continue;
                };
                let name = rest.split('\'').next().unwrap_or_default();
                assert!(
                    ASSETS.iter().any(|known| known.name == name),
                    "{} imports {name}, which is not embedded",
                    asset.name
                );
            }
        }
    }

    #[test]
    fn paths_map_to_files_or_404() {
        assert_eq!(get("/ui").status(), StatusCode::MOVED_PERMANENTLY);
        let index = get("/ui/");
        assert_eq!(index.status(), StatusCode::OK);
        assert_eq!(
            index.headers()[header::CONTENT_TYPE],
            "text/html; charset=utf-8"
        );
        assert!(index
            .headers()
            .contains_key(header::CONTENT_SECURITY_POLICY));
        assert_eq!(get("/ui/app.js").status(), StatusCode::OK);
        assert_eq!(get("/ui/../Cargo.toml").status(), StatusCode::NOT_FOUND);
        assert_eq!(get("/ui/nope.js").status(), StatusCode::NOT_FOUND);
        assert!(is_page("/ui") && is_page("/ui/x") && !is_page("/uix"));
    }
}
