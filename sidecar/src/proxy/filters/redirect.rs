//! `RequestRedirect`: answers with a `Location` built from the request and
//! the filter.

use ferry_core::model::Redirect;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};

use super::replace_path;
use crate::body::{self, Body};
use crate::proxy::ConnInfo;
use crate::proxy::route::request_host;

/// The redirect response for `req`.
pub(super) fn respond(
    redirect: &Redirect,
    req: &Request<Body>,
    prefix: Option<&str>,
) -> Response<Body> {
    let info = req.extensions().get::<ConnInfo>();
    let request_scheme = if info.is_some_and(|i| i.tls) {
        "https"
    } else {
        "http"
    };
    let scheme = redirect.scheme.as_deref().unwrap_or(request_scheme);
    let host = match &redirect.hostname {
        Some(hostname) => hostname.clone(),
        None => request_host(req)
            .map(|h| h.into_owned())
            .unwrap_or_default(),
    };
    // The spec: an explicit port, else the scheme's well-known port when
    // the scheme is set, else the listener's port. Well-known ports are
    // left out of `Location`.
    let port = match (redirect.port, &redirect.scheme) {
        (Some(port), _) => Some(port),
        (None, Some(_)) => None,
        (None, None) => info.map(|i| i.port),
    };
    let port = port.filter(|&p| !matches!((scheme, p), ("http", 80) | ("https", 443)));
    let path = match &redirect.path {
        Some(modifier) => replace_path(modifier, req.uri().path(), prefix),
        None => req.uri().path().to_string(),
    };
    let mut location = format!("{scheme}://{host}");
    if let Some(port) = port {
        location.push(':');
        location.push_str(&port.to_string());
    }
    location.push_str(&path);
    if let Some(query) = req.uri().query() {
        location.push('?');
        location.push_str(query);
    }
    let mut rsp = Response::new(body::empty());
    *rsp.status_mut() = StatusCode::from_u16(redirect.status).unwrap_or(StatusCode::FOUND);
    if let Ok(location) = HeaderValue::from_str(&location) {
        rsp.headers_mut().insert(header::LOCATION, location);
    }
    rsp
}
