//! Request and response headers across the proxy: framing checks,
//! hop-by-hop removal and the `X-Forwarded-*` / `Forwarded` headers.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use std::net::SocketAddr;

/// Why a request's framing is refused.
#[derive(Debug, PartialEq, Eq)]
pub struct BadFraming(pub &'static str);

/// Refuses requests whose body length is ambiguous: the ways to smuggle a
/// second request past a proxy. (hyper already refuses most malformed
/// framing; these are checked again so the rule holds whatever it accepts.)
pub fn check_framing(headers: &HeaderMap) -> Result<(), BadFraming> {
    if headers.contains_key(wharf_net::framing::BAD_FRAMING_HEADER) {
        return Err(BadFraming(
            "both Content-Length and Transfer-Encoding are set",
        ));
    }
    let te: Vec<&HeaderValue> = headers.get_all(header::TRANSFER_ENCODING).iter().collect();
    let cl: Vec<&HeaderValue> = headers.get_all(header::CONTENT_LENGTH).iter().collect();
    if !te.is_empty() && !cl.is_empty() {
        return Err(BadFraming(
            "both Content-Length and Transfer-Encoding are set",
        ));
    }
    if let Some(first) = cl.first() {
        // `Content-Length: 5, 5` and repeated headers must all agree.
        let mut values = cl
            .iter()
            .flat_map(|v| v.as_bytes().split(|b| *b == b','))
            .map(|v| v.trim_ascii());
        let want = values.next().unwrap_or(first.as_bytes());
        if want.is_empty() || !want.iter().all(u8::is_ascii_digit) {
            return Err(BadFraming("Content-Length is not a number"));
        }
        if values.any(|v| v != want) {
            return Err(BadFraming("Content-Length values differ"));
        }
    }
    if !te.is_empty() {
        let codings: Vec<String> = te
            .iter()
            .flat_map(|v| v.to_str().unwrap_or("\u{0}").split(','))
            .map(|c| c.trim().to_ascii_lowercase())
            .collect();
        // Anything but plain `chunked` would be dropped with the header
        // (it is hop-by-hop) or read differently by the member.
        if codings != ["chunked"] {
            return Err(BadFraming("Transfer-Encoding other than chunked"));
        }
    }
    Ok(())
}

/// Headers that belong to one connection, never forwarded (RFC 9110 §7.6.1).
const HOP_BY_HOP: &[HeaderName] = &[
    header::CONNECTION,
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Removes hop-by-hop headers, and those named by `Connection`.
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for n in named.iter().chain(HOP_BY_HOP) {
        headers.remove(n);
    }
    headers.remove("keep-alive");
    headers.remove("proxy-connection");
}

/// The `Upgrade` protocol a request asks for (`websocket`), if it asks
/// with `Connection: upgrade` as HTTP/1.1 requires.
pub fn upgrade_of(headers: &HeaderMap) -> Option<HeaderValue> {
    let asks = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    if asks {
        headers.get(header::UPGRADE).cloned()
    } else {
        None
    }
}

/// The client's address as the forwarding headers write it: formatted once
/// per connection rather than for every request on it.
pub struct Peer {
    pub addr: SocketAddr,
    /// For `X-Forwarded-For`: `192.0.2.1`, `2001:db8::1`.
    ip: String,
    /// For `Forwarded`: `for=192.0.2.1`, `for="[2001:db8::1]"`.
    node: String,
}

impl Peer {
    pub fn new(addr: SocketAddr) -> Peer {
        let ip = addr.ip().to_string();
        let node = if addr.is_ipv6() {
            format!("for=\"[{ip}]\"")
        } else {
            format!("for={ip}")
        };
        Peer { addr, ip, node }
    }
}

/// What the proxy tells the member about the client.
pub struct ClientSide<'a> {
    pub peer: &'a Peer,
    /// `http` or `https`.
    pub proto: &'static str,
    /// The Host the client asked for, as sent.
    pub host: &'a str,
    /// The port the client connected to.
    pub port: u16,
}

/// Appends `prev, ` when a previous proxy set a value.
fn push_prev(out: &mut Vec<u8>, prev: Option<&str>) {
    if let Some(prev) = prev.filter(|p| !p.trim().is_empty()) {
        out.extend_from_slice(prev.as_bytes());
        out.extend_from_slice(b", ");
    }
}

/// Appends the `X-Forwarded-For` value for a request that came with
/// `prev`: the client appended to it.
fn push_xff(out: &mut Vec<u8>, prev: Option<&str>, c: &ClientSide<'_>) {
    push_prev(out, prev);
    out.extend_from_slice(c.peer.ip.as_bytes());
}

/// Appends the `Forwarded` value (RFC 7239) for a request that came with
/// `prev`: an element for this hop appended to it.
fn push_forwarded(out: &mut Vec<u8>, prev: Option<&str>, c: &ClientSide<'_>) {
    push_prev(out, prev);
    out.extend_from_slice(c.peer.node.as_bytes());
    out.extend_from_slice(b";proto=");
    out.extend_from_slice(c.proto.as_bytes());
    out.extend_from_slice(b";host=\"");
    out.extend(c.host.bytes().filter(|b| *b != b'"' && *b != b'\\'));
    out.push(b'"');
}

/// The `X-Forwarded-For` and `Forwarded` values for a request that came
/// with `prev_xff` and `prev_forwarded`: the client appended to each.
pub fn forwarded_values(
    prev_xff: Option<&str>,
    prev_forwarded: Option<&str>,
    c: &ClientSide<'_>,
) -> (String, String) {
    let (mut xff, mut forwarded) = (Vec::with_capacity(48), Vec::with_capacity(96));
    push_xff(&mut xff, prev_xff, c);
    push_forwarded(&mut forwarded, prev_forwarded, c);
    // Made of strings and ASCII only.
    let text = |v: Vec<u8>| String::from_utf8(v).unwrap_or_default();
    (text(xff), text(forwarded))
}

/// Writes the forwarding header lines (`X-Forwarded-For`, `-Proto`,
/// `-Host`, `-Port`, `Forwarded`) of an HTTP/1.1 head into `out`, for a
/// request that came with `prev_xff` and `prev_forwarded`.
pub fn write_forwarding(
    out: &mut Vec<u8>,
    prev_xff: Option<&str>,
    prev_forwarded: Option<&str>,
    c: &ClientSide<'_>,
) {
    out.extend_from_slice(b"x-forwarded-for: ");
    push_xff(out, prev_xff, c);
    out.extend_from_slice(b"\r\nx-forwarded-proto: ");
    out.extend_from_slice(c.proto.as_bytes());
    out.extend_from_slice(b"\r\nx-forwarded-host: ");
    out.extend_from_slice(c.host.as_bytes());
    out.extend_from_slice(b"\r\nx-forwarded-port: ");
    out.extend_from_slice(itoa::Buffer::new().format(c.port).as_bytes());
    out.extend_from_slice(b"\r\nforwarded: ");
    push_forwarded(out, prev_forwarded, c);
    out.extend_from_slice(b"\r\n");
}

/// Sets `X-Forwarded-For` (appended), `-Proto`, `-Host`, `-Port` and
/// appends a `Forwarded` element (RFC 7239).
pub fn add_forwarded(headers: &mut HeaderMap, c: &ClientSide<'_>) {
    let (xff, forwarded) = forwarded_values(
        headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()),
        headers.get(header::FORWARDED).and_then(|v| v.to_str().ok()),
        c,
    );
    let mut set = |name: &HeaderName, v: HeaderValue| {
        headers.insert(name.clone(), v);
    };
    if let Ok(v) = HeaderValue::try_from(xff) {
        set(&X_FORWARDED_FOR, v);
    }
    set(&X_FORWARDED_PROTO, HeaderValue::from_static(c.proto));
    if let Ok(v) = HeaderValue::from_str(c.host) {
        set(&X_FORWARDED_HOST, v);
    }
    set(&X_FORWARDED_PORT, HeaderValue::from(c.port));
    if let Ok(v) = HeaderValue::try_from(forwarded) {
        set(&header::FORWARDED, v);
    }
}

pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub static X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn ambiguous_framing_is_refused() {
        let bad = [
            vec![("content-length", "5"), ("transfer-encoding", "chunked")],
            vec![("content-length", "5"), ("content-length", "6")],
            vec![("content-length", "5, 6")],
            vec![("content-length", "-1")],
            vec![("transfer-encoding", "gzip")],
            vec![("transfer-encoding", "gzip, chunked")],
            vec![("transfer-encoding", "chunked, chunked")],
            vec![
                ("transfer-encoding", "chunked"),
                ("transfer-encoding", "gzip"),
            ],
        ];
        for h in bad {
            assert!(check_framing(&headers(&h)).is_err(), "{h:?} accepted");
        }
        let good = [
            vec![("content-length", "5")],
            vec![("content-length", "5"), ("content-length", "5")],
            vec![("transfer-encoding", "Chunked")],
            vec![],
        ];
        for h in good {
            assert!(check_framing(&headers(&h)).is_ok(), "{h:?} refused");
        }
    }

    #[test]
    fn hop_by_hop_headers_go() {
        let mut h = headers(&[
            ("connection", "keep-alive, x-private"),
            ("keep-alive", "timeout=5"),
            ("x-private", "secret"),
            ("te", "trailers"),
            ("upgrade", "websocket"),
            ("proxy-connection", "keep-alive"),
            ("x-kept", "yes"),
        ]);
        remove_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1, "{h:?}");
        assert_eq!(h["x-kept"], "yes");
    }

    #[test]
    fn forwarded_headers_append() {
        let mut h = headers(&[
            ("x-forwarded-for", "203.0.113.9"),
            ("forwarded", "for=203.0.113.9"),
        ]);
        add_forwarded(
            &mut h,
            &ClientSide {
                peer: &Peer::new("192.0.2.1:5555".parse().unwrap()),
                proto: "https",
                host: "as.example.com:8243",
                port: 8243,
            },
        );
        assert_eq!(h["x-forwarded-for"], "203.0.113.9, 192.0.2.1");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["x-forwarded-host"], "as.example.com:8243");
        assert_eq!(h["x-forwarded-port"], "8243");
        assert_eq!(
            h["forwarded"],
            "for=203.0.113.9, for=192.0.2.1;proto=https;host=\"as.example.com:8243\""
        );
    }

    /// The fast path's head lines say what the hyper path's headers say.
    #[test]
    fn forwarding_lines_match_the_headers() {
        for (peer, prev) in [
            ("192.0.2.1:5555", None),
            (
                "[2001:db8::1]:443",
                Some(("203.0.113.9", "for=203.0.113.9")),
            ),
        ] {
            let peer = Peer::new(peer.parse().unwrap());
            let c = ClientSide {
                peer: &peer,
                proto: "http",
                host: "a\"b.example:8280",
                port: 8280,
            };
            let mut h = HeaderMap::new();
            if let Some((xff, fwd)) = prev {
                h.insert(&X_FORWARDED_FOR, HeaderValue::from_static(xff));
                h.insert(header::FORWARDED, HeaderValue::from_static(fwd));
            }
            add_forwarded(&mut h, &c);
            let mut lines = vec![];
            write_forwarding(&mut lines, prev.map(|p| p.0), prev.map(|p| p.1), &c);
            let mut expected = String::new();
            for name in [
                "x-forwarded-for",
                "x-forwarded-proto",
                "x-forwarded-host",
                "x-forwarded-port",
                "forwarded",
            ] {
                expected += &format!("{name}: {}\r\n", h[name].to_str().unwrap());
            }
            assert_eq!(String::from_utf8(lines).unwrap(), expected);
        }
        let v6 = Peer::new("[2001:db8::1]:443".parse().unwrap());
        assert_eq!(
            (v6.ip.as_str(), v6.node.as_str()),
            ("2001:db8::1", "for=\"[2001:db8::1]\"")
        );
    }

    #[test]
    fn upgrade_needs_connection_upgrade() {
        assert!(upgrade_of(&headers(&[("upgrade", "websocket")])).is_none());
        assert_eq!(
            upgrade_of(&headers(&[
                ("connection", "keep-alive, Upgrade"),
                ("upgrade", "websocket")
            ]))
            .unwrap(),
            "websocket"
        );
    }
}
