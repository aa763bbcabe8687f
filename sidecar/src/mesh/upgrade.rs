//! HTTP/1.1 upgrades (WebSocket) between proxies, carried as HTTP/2
//! extended CONNECT (RFC 8441).
//!
//! * The client proxy turns the app's `GET` with `Connection: upgrade` and
//!   `Upgrade: <protocol>` into a `CONNECT` stream whose `:protocol` is
//!   that protocol ([`into_connect`]). The other headers stay, so the
//!   handshake (`Sec-WebSocket-Key`, `Sec-WebSocket-Version`, …) is
//!   answered by the server app itself, end to end.
//! * The server proxy turns the stream back into the app's upgrade request
//!   ([`from_connect`]). The app's `101` goes back as a `200` to the
//!   CONNECT ([`into_connect_response`]), with the app's headers such as
//!   `Sec-WebSocket-Accept`, and becomes a `101` again for the calling app
//!   ([`into_switching_response`]).
//! * The bytes after the handshake are spliced through the stream, on both
//!   sides, by [`crate::proxy::client::tunnel`].
//!
//! An app's answer other than `101` comes back as it is, and the calling
//! app's connection stays plain HTTP. `Upgrade: h2c` is not carried: it
//! asks for HTTP/2, which the hop between proxies already is, and such a
//! request goes as an ordinary one.

use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode, Version};
use hyper::ext::Protocol;

use crate::proxy::hygiene::is_upgrade;

/// The protocol the request upgrades to when the mesh carries it: a `GET`
/// with `Connection: upgrade` and a single protocol other than `h2c` in
/// `Upgrade`.
pub fn requested<B>(req: &Request<B>) -> Option<Protocol> {
    if req.method() != Method::GET || !is_upgrade(req.headers()) {
        return None;
    }
    let mut values = req.headers().get_all(header::UPGRADE).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return None;
    };
    let protocol = value.to_str().ok()?.trim();
    let single = !protocol.is_empty() && !protocol.contains([',', ' ', '\t']);
    (single && !protocol.eq_ignore_ascii_case("h2c")).then(|| Protocol::from(protocol))
}

/// Makes `req` (for which [`requested`] gave `protocol`) the extended
/// CONNECT that carries it between proxies.
pub fn into_connect<B>(req: &mut Request<B>, protocol: Protocol) {
    *req.method_mut() = Method::CONNECT;
    *req.version_mut() = Version::HTTP_2;
    remove_upgrade_headers(req.headers_mut());
    // An upgrade request has no body; CONNECT may not declare one.
    req.headers_mut().remove(header::CONTENT_LENGTH);
    req.extensions_mut().insert(protocol);
}

/// For an extended CONNECT from another proxy, makes `req` the HTTP/1.1
/// upgrade request the app expects, and gives the protocol; other
/// requests are left alone.
pub fn from_connect<B>(req: &mut Request<B>) -> Option<Protocol> {
    if req.method() != Method::CONNECT {
        return None;
    }
    let protocol = req.extensions_mut().remove::<Protocol>()?;
    let value = HeaderValue::from_str(protocol.as_str()).ok()?;
    *req.method_mut() = Method::GET;
    *req.version_mut() = Version::HTTP_11;
    let headers = req.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, value);
    Some(protocol)
}

/// Makes the app's `101` the answer to the CONNECT: `200`, its headers
/// kept but for the connection-level ones.
pub fn into_connect_response<B>(rsp: &mut Response<B>) {
    *rsp.status_mut() = StatusCode::OK;
    *rsp.version_mut() = Version::HTTP_2;
    let headers = rsp.headers_mut();
    remove_upgrade_headers(headers);
    headers.remove(header::CONTENT_LENGTH);
}

/// Makes the server proxy's `200` to the CONNECT the `101` the calling
/// app expects for `protocol`.
pub fn into_switching_response<B>(rsp: &mut Response<B>, protocol: &Protocol) {
    *rsp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    *rsp.version_mut() = Version::HTTP_11;
    let headers = rsp.headers_mut();
    headers.remove(header::CONTENT_LENGTH);
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    if let Ok(value) = HeaderValue::from_str(protocol.as_str()) {
        headers.insert(header::UPGRADE, value);
    }
}

fn remove_upgrade_headers(headers: &mut HeaderMap) {
    headers.remove(header::CONNECTION);
    headers.remove(header::UPGRADE);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upgrade_request(method: Method, upgrade: &[&str]) -> Request<()> {
        let mut req = Request::builder()
            .method(method)
            .uri("/chat")
            .header(header::HOST, "chat.shop:8080")
            .header(header::CONNECTION, "keep-alive, Upgrade")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
            .header(header::CONTENT_LENGTH, "0")
            .body(())
            .unwrap();
        for value in upgrade {
            req.headers_mut()
                .append(header::UPGRADE, HeaderValue::from_str(value).unwrap());
        }
        req
    }

    #[test]
    fn only_a_get_upgrading_to_one_protocol_other_than_h2c_is_carried() {
        let carried = requested(&upgrade_request(Method::GET, &["websocket"]));
        assert_eq!(carried.as_ref().map(Protocol::as_str), Some("websocket"));
        for (method, upgrade) in [
            (Method::POST, &["websocket"][..]),
            (Method::GET, &["h2c"]),
            (Method::GET, &["H2C"]),
            (Method::GET, &["websocket, foo"]),
            (Method::GET, &["websocket", "foo"]),
            (Method::GET, &[""]),
            (Method::GET, &[]),
        ] {
            let req = upgrade_request(method.clone(), upgrade);
            assert!(requested(&req).is_none(), "{method} {upgrade:?}");
        }
        let mut no_connection = upgrade_request(Method::GET, &["websocket"]);
        no_connection.headers_mut().remove(header::CONNECTION);
        assert!(requested(&no_connection).is_none());
    }

    #[test]
    fn the_request_survives_the_round_trip_through_connect() {
        let mut req = upgrade_request(Method::GET, &["websocket"]);
        let protocol = requested(&req).unwrap();
        into_connect(&mut req, protocol);
        assert_eq!(req.method(), Method::CONNECT);
        assert_eq!(req.version(), Version::HTTP_2);
        for gone in [header::CONNECTION, header::UPGRADE, header::CONTENT_LENGTH] {
            assert!(!req.headers().contains_key(&gone), "{gone}");
        }
        assert_eq!(
            req.extensions().get::<Protocol>().map(Protocol::as_str),
            Some("websocket")
        );

        let protocol = from_connect(&mut req).unwrap();
        assert_eq!(protocol.as_str(), "websocket");
        assert_eq!(req.method(), Method::GET);
        assert_eq!(req.version(), Version::HTTP_11);
        assert_eq!(req.headers()[header::UPGRADE], "websocket");
        assert_eq!(req.headers()[header::CONNECTION], "upgrade");
        assert_eq!(
            req.headers()["sec-websocket-key"],
            "dGhlIHNhbXBsZSBub25jZQ=="
        );
        assert_eq!(req.headers()[header::HOST], "chat.shop:8080");
        assert!(req.extensions().get::<Protocol>().is_none());
    }

    #[test]
    fn a_plain_connect_or_get_is_not_an_upgrade() {
        let mut connect = Request::connect("db.shop:5432").body(()).unwrap();
        assert!(from_connect(&mut connect).is_none());
        assert_eq!(connect.method(), Method::CONNECT);
        let mut get = Request::get("/").body(()).unwrap();
        get.extensions_mut()
            .insert(Protocol::from_static("websocket"));
        assert!(from_connect(&mut get).is_none());
        assert_eq!(get.method(), Method::GET);
    }

    #[test]
    fn the_apps_101_travels_as_a_200_and_back() {
        let mut rsp = Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header(header::CONNECTION, "Upgrade")
            .header(header::UPGRADE, "websocket")
            .header("sec-websocket-accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
            .body(())
            .unwrap();
        into_connect_response(&mut rsp);
        assert_eq!(rsp.status(), StatusCode::OK);
        assert!(!rsp.headers().contains_key(header::UPGRADE));
        assert!(!rsp.headers().contains_key(header::CONNECTION));

        into_switching_response(&mut rsp, &Protocol::from_static("websocket"));
        assert_eq!(rsp.status(), StatusCode::SWITCHING_PROTOCOLS);
        assert_eq!(rsp.version(), Version::HTTP_11);
        assert_eq!(rsp.headers()[header::UPGRADE], "websocket");
        assert_eq!(rsp.headers()[header::CONNECTION], "upgrade");
        assert_eq!(
            rsp.headers()["sec-websocket-accept"],
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }
}
