//! The `CORS` filter: answers preflights and adds the CORS headers to
//! responses for allowed origins.

use ferry_core::model::Cors;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};

use crate::body::{self, Body};

/// Whether `req` is a CORS preflight.
pub(super) fn is_preflight(req: &Request<Body>) -> bool {
    req.method() == Method::OPTIONS
        && req.headers().contains_key(header::ORIGIN)
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

/// The preflight answer. Origins that are not allowed get no CORS headers,
/// so the browser refuses the real request.
pub(super) fn preflight(cors: &Cors, req: &Request<Body>) -> Response<Body> {
    let mut rsp = Response::new(body::empty());
    *rsp.status_mut() = StatusCode::OK;
    let origin = req.headers().get(header::ORIGIN);
    let Some(origin) = origin.filter(|o| allows(cors, o)) else {
        return rsp;
    };
    let headers = rsp.headers_mut();
    set_origin(cors, origin, headers);
    let methods = if cors.allow_methods.iter().any(|m| m == "*") && cors.allow_credentials {
        req.headers()
            .get(header::ACCESS_CONTROL_REQUEST_METHOD)
            .cloned()
    } else {
        joined(&cors.allow_methods)
    };
    if let Some(methods) = methods {
        headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, methods);
    }
    let allow_headers = if cors.allow_headers.iter().any(|h| h == "*") && cors.allow_credentials {
        req.headers()
            .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
            .cloned()
    } else {
        joined(&cors.allow_headers)
    };
    if let Some(allow_headers) = allow_headers {
        headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, allow_headers);
    }
    if let Some(max_age) = cors.max_age {
        headers.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from(max_age));
    }
    rsp
}

/// Adds CORS headers to a normal response when `origin` is allowed.
pub(super) fn decorate(cors: &Cors, origin: Option<&HeaderValue>, headers: &mut HeaderMap) {
    let Some(origin) = origin.filter(|o| allows(cors, o)) else {
        return;
    };
    set_origin(cors, origin, headers);
    if let Some(expose) = joined(&cors.expose_headers) {
        headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, expose);
    }
}

fn set_origin(cors: &Cors, origin: &HeaderValue, headers: &mut HeaderMap) {
    let any = cors.allow_origins.iter().any(|o| o == "*");
    if any && !cors.allow_credentials {
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
    } else {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        headers.append(header::VARY, HeaderValue::from_static("Origin"));
    }
    if cors.allow_credentials {
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
}

fn allows(cors: &Cors, origin: &HeaderValue) -> bool {
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    cors.allow_origins
        .iter()
        .any(|allowed| match allowed.split_once('*') {
            None => allowed.eq_ignore_ascii_case(origin),
            Some((head, tail)) => {
                origin.len() > head.len() + tail.len()
                    && origin[..head.len()].eq_ignore_ascii_case(head)
                    && origin[origin.len() - tail.len()..].eq_ignore_ascii_case(tail)
            }
        })
}

fn joined(values: &[String]) -> Option<HeaderValue> {
    if values.is_empty() {
        return None;
    }
    HeaderValue::from_str(&values.join(", ")).ok()
}
