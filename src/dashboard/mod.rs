//! The built-in dashboard at `/dashboard`: server-rendered pages (askama templates, compiled in,
//! HTML-escaped by default) over the same queries as the JSON API, plus a vendored htmx and a small
//! script of our own for the live tail, all embedded in the binary.
//!
//! Boundary: a web edge beside `crate::http` (JSON API), over the same services; neither imports the
//! other. Parameters, links, health and the error mapping come from `crate::web`. It reads through
//! the services and stores, never writes a table itself (redrive and validate go through their
//! modules). Every page is sent with a strict
//! Content-Security-Policy (scripts only from `/dashboard/assets`), so even a payload that escaped
//! escaping could not run.

mod pages;
pub mod view;

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse, ResponseError};
use askama::Template;

use crate::config::Settings;
use crate::web::error::{ApiError, ErrorCode};

pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Routes of the dashboard.
pub fn configure(cfg: &mut web::ServiceConfig, settings: &Settings) {
    // Forms carry content pasted into a text box: a urlencoded form escapes most bytes as %XX, so
    // allow three times the content limit, but no more than 16 MiB (use the API for more).
    let form_limit = settings
        .stamping
        .max_content_bytes
        .saturating_mul(3)
        .saturating_add(64 * 1024)
        .min(16 << 20);
    let forms = web::FormConfig::default()
        .limit(form_limit)
        .error_handler(|err, _req| {
            let e = match err {
                actix_web::error::UrlencodedError::Overflow { size, limit } => ApiError::too_large(
                    Some("content"),
                    format!("form body of {size} bytes is over the limit of {limit} bytes"),
                ),
                other => ApiError::validation("form", format!("malformed form: {other}")),
            };
            DashError(e).into()
        });
    cfg.service(
        web::scope("/dashboard")
            .app_data(forms)
            .route("", web::get().to(pages::overview))
            .route("/", web::get().to(pages::overview))
            .route(
                "/fragments/overview",
                web::get().to(pages::overview_fragment),
            )
            .route("/events", web::get().to(pages::events))
            .route("/events/{event_id}", web::get().to(pages::event))
            .route("/search", web::get().to(pages::search))
            .route("/traces/session/{id}", web::get().to(pages::session_trace))
            .route(
                "/traces/correlation/{id}",
                web::get().to(pages::correlation_trace),
            )
            .route("/workflows", web::get().to(pages::workflows))
            .route("/workflows/{id}", web::get().to(pages::workflow))
            .route("/namespaces", web::get().to(pages::namespaces))
            .route("/dlq", web::get().to(pages::dlq))
            .route("/dlq/redrive", web::post().to(pages::dlq_redrive))
            .route("/stamps", web::get().to(pages::stamps))
            .route("/stamps/validate", web::post().to(pages::stamps_validate))
            .route("/assets/{name}", web::get().to(asset)),
    );
}

/// Files embedded in the binary: (name, content type, bytes).
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "htmx.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/vendor/htmx-2.0.11.min.js"),
    ),
    (
        "dashboard.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/dashboard.js"),
    ),
    (
        "dashboard.css",
        "text/css; charset=utf-8",
        include_bytes!("../../assets/dashboard.css"),
    ),
];

async fn asset(name: web::Path<String>) -> Result<HttpResponse, DashError> {
    let name = name.into_inner();
    let (_, content_type, bytes) = ASSETS.iter().find(|(n, _, _)| *n == name).ok_or_else(|| {
        DashError(ApiError::new(
            ErrorCode::NotFound,
            None,
            format!("no dashboard asset {name:?}"),
        ))
    })?;
    Ok(HttpResponse::Ok()
        .content_type(*content_type)
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .body(*bytes))
}

/// Cross-site request forgery guard for the dashboard's forms (the service has no login, so a
/// cookie token would protect nothing): a browser says where a request comes from
/// (`Sec-Fetch-Site`, else `Origin`); anything but this origin is refused. Requests without either
/// header come from non-browser clients, which a foreign page cannot drive.
pub fn same_origin(req: &actix_web::HttpRequest) -> Result<(), DashError> {
    let refuse = || {
        DashError(ApiError::new(
            ErrorCode::CrossSiteRequest,
            None,
            "dashboard forms accept requests from the dashboard itself only",
        ))
    };
    let headers = req.headers();
    if let Some(site) = headers.get("sec-fetch-site") {
        return match site.to_str() {
            Ok("same-origin") | Ok("none") => Ok(()),
            _ => Err(refuse()),
        };
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
        let origin_host = origin
            .to_str()
            .ok()
            .and_then(|o| o.split_once("://"))
            .map(|(_, rest)| rest.trim_end_matches('/'));
        return match (origin_host, host) {
            (Some(o), Some(h)) if o.eq_ignore_ascii_case(h) => Ok(()),
            _ => Err(refuse()),
        };
    }
    Ok(())
}

/// An HTML page with the dashboard's security headers.
pub fn html(status: StatusCode, body: String) -> HttpResponse {
    let mut res = HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .body(body);
    res.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    res
}

pub fn render<T: Template>(page: &T) -> Result<HttpResponse, DashError> {
    let body = page.render().map_err(|e| {
        DashError(ApiError::new(
            ErrorCode::InternalError,
            None,
            format!("rendering failed: {e}"),
        ))
    })?;
    Ok(html(StatusCode::OK, body))
}

#[derive(Template)]
#[template(path = "dashboard/error.html")]
struct ErrorPage<'a> {
    status: u16,
    code: &'a str,
    message: &'a str,
}

/// An API error shown as a page: same status and code as the JSON API would give.
#[derive(Debug)]
pub struct DashError(pub ApiError);

impl<E: Into<ApiError>> From<E> for DashError {
    fn from(e: E) -> Self {
        DashError(e.into())
    }
}

impl std::fmt::Display for DashError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.0.code, self.0.message)
    }
}

impl ResponseError for DashError {
    fn status_code(&self) -> StatusCode {
        self.0.status()
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.0.status();
        if status.is_server_error() {
            tracing::error!(code = self.0.code.as_str(), error = %self.0.message, "dashboard page failed");
        }
        let message = if status == StatusCode::INTERNAL_SERVER_ERROR {
            "internal error (see the service log)"
        } else {
            &self.0.message
        };
        let page = ErrorPage {
            status: status.as_u16(),
            code: self.0.code.as_str(),
            message,
        };
        let body = page
            .render()
            .unwrap_or_else(|_| "dashboard error".to_owned());
        html(status, body)
    }
}
