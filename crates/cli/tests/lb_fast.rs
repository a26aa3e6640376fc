//! The load balancer's own HTTP/1.1 path, against a member whose answers
//! the test writes byte by byte: every response framing passed through,
//! hop-by-hop headers removed, forwarding headers set, requests it does
//! not take handed to the hyper path mid-connection, a stale pooled
//! connection replaced, a malformed answer refused.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use wharf_testkit::{TestLb, PATIENCE};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_wharf"))
}

/// A member that answers each request by its path:
/// `/chunked` a chunked body with a trailer, `/close` a body ended by
/// closing, `/empty` 204, `/bad` a malformed head, `/once` closes the
/// connection after answering (so the next request on it finds it closed),
/// anything else `200` with the request head (and body) it received.
async fn raw_member(connections: Arc<AtomicUsize>) -> std::net::SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                continue;
            };
            connections.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    let end = loop {
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                        let mut tmp = [0u8; 4096];
                        match s.read(&mut tmp).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&tmp[..n]),
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_string();
                    let cl: usize = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap())
                        })
                        .unwrap_or(0);
                    // A chunked body (from the hyper path) runs to its last
                    // chunk; the test's bodies have no trailers.
                    let chunked = head
                        .to_ascii_lowercase()
                        .contains("transfer-encoding: chunked");
                    let cl = if chunked {
                        loop {
                            if let Some(i) = buf[end..].windows(5).position(|w| w == b"0\r\n\r\n") {
                                break i + 5;
                            }
                            let mut tmp = [0u8; 4096];
                            match s.read(&mut tmp).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&tmp[..n]),
                            }
                        }
                    } else {
                        cl
                    };
                    while buf.len() < end + cl {
                        let mut tmp = [0u8; 4096];
                        match s.read(&mut tmp).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&tmp[..n]),
                        }
                    }
                    let body = String::from_utf8_lossy(&buf[end..end + cl]).to_string();
                    buf.drain(..end + cl);
                    let path = head.split(' ').nth(1).unwrap_or("/").to_string();
                    let reply: Vec<u8> = match path.as_str() {
                        "/chunked" => b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: x-sum\r\n\r\n5\r\nhello\r\n7\r\n, world\r\n0\r\nx-sum: 12\r\n\r\n".to_vec(),
                        "/close" => {
                            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end").await;
                            return;
                        }
                        "/empty" => b"HTTP/1.1 204 No Content\r\nx-empty: yes\r\n\r\n".to_vec(),
                        "/bad" => b"HTTP/1.1 two hundred\r\n\r\n".to_vec(),
                        "/once" => {
                            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nonce").await;
                            return;
                        }
                        _ => {
                            let text = format!("{head}{body}");
                            format!(
                                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: keep-alive, x-private\r\nx-private: secret\r\nKeep-Alive: timeout=5\r\nx-kept: yes\r\n\r\n{text}",
                                text.len()
                            )
                            .into_bytes()
                        }
                    };
                    if s.write_all(&reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

fn services(member: std::net::SocketAddr) -> String {
    format!("services {{ s {{ hosts *; domains {{ d {{ members {member}; }} }} }} }}")
}

/// Sends raw bytes and reads until `n` responses are complete (by the
/// test's knowledge of their bodies: the reader reads until the end marker).
async fn raw(addr: std::net::SocketAddr, request: &[u8], until: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(PATIENCE, async {
        loop {
            let mut tmp = [0u8; 4096];
            let n = s.read(&mut tmp).await.unwrap();
            out.extend_from_slice(&tmp[..n]);
            if n == 0 || String::from_utf8_lossy(&out).contains(until) {
                break;
            }
        }
    })
    .await
    .expect("the answers in time");
    String::from_utf8_lossy(&out).to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_fast_path_passes_every_framing_and_hands_back_what_it_does_not_take() {
    let connections = Arc::new(AtomicUsize::new(0));
    let member = raw_member(connections.clone()).await;
    let lb = TestLb::start(bin(), &services(member), "", "", false);
    let http = reqwest::Client::new();

    // Content-Length, with hop-by-hop headers gone and forwarding headers set.
    let r = http
        .get(lb.url("/echo?q=1"))
        .header("connection", "keep-alive, x-drop")
        .header("x-drop", "hop")
        .header("x-forwarded-for", "203.0.113.7")
        .header("te", "trailers")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-kept"], "yes");
    for gone in ["x-private", "keep-alive"] {
        assert!(!r.headers().contains_key(gone), "{gone} reached the client");
    }
    let seen = r.text().await.unwrap().to_ascii_lowercase();
    assert!(seen.starts_with("get /echo?q=1 http/1.1\r\n"), "{seen}");
    assert!(
        seen.contains("x-forwarded-for: 203.0.113.7, 127.0.0.1\r\n"),
        "{seen}"
    );
    assert!(
        seen.contains("x-forwarded-proto: http\r\n")
            && seen.contains("forwarded: for=127.0.0.1;proto=http;host="),
        "{seen}"
    );
    for gone in ["x-drop", "\r\nte:", "connection:"] {
        assert!(!seen.contains(gone), "{gone:?} reached the member: {seen}");
    }

    // Chunked (with its trailer), ended-by-close, and no-body answers.
    let r = http.get(lb.url("/chunked")).send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), "hello, world");
    let r = http.get(lb.url("/close")).send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), "until the end");
    let r = http.get(lb.url("/empty")).send().await.unwrap();
    assert_eq!(
        (r.status().as_u16(), &r.headers()["x-empty"]),
        (204, &"yes".parse().unwrap())
    );
    let r = http.head(lb.url("/echo")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().is_empty());

    // A small body goes through; on one connection, a request the fast path
    // does not take (a chunked body) is handed to the hyper path, and the
    // requests after it are still answered, in order.
    let pipelined = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nfirst\
POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nsecond\r\n0\r\n\r\n\
GET /echo?third HTTP/1.1\r\nHost: x\r\n\r\n";
    let out = raw(lb.http, pipelined, "/echo?third").await;
    let first = out.find("first").expect("the first body");
    let second = out.find("second").expect("the second body");
    let third = out.find("/echo?third").expect("the third request");
    assert!(first < second && second < third, "{out}");
    assert_eq!(out.matches("HTTP/1.1 200 OK").count(), 3, "{out}");

    // A malformed answer is refused with 502, never passed on.
    let r = http.get(lb.url("/bad")).send().await.unwrap();
    assert_eq!(r.status(), 502);

    // A pooled connection the member closed is replaced without a failure.
    let r = http.get(lb.url("/once")).send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), "once");
    for _ in 0..5 {
        let r = http.get(lb.url("/echo")).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }

    // Ambiguous framing is refused (lb.rs shows it never reaches a member).
    let out = raw(
        lb.http,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "\r\n\r\n",
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 400"), "{out}");
    assert!(connections.load(Ordering::SeqCst) > 0);
    // A client that asks to close gets its answer and a closed connection.
    let out = raw(
        lb.http,
        b"GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "\u{0}",
    )
    .await;
    assert!(
        out.starts_with("HTTP/1.1 200 OK")
            && out.to_ascii_lowercase().contains("connection: close"),
        "{out}"
    );
}

/// Requests served on the fast path by both worker threads are all
/// counted: the per-thread metric slots add up to exactly what was served.
#[tokio::test(flavor = "multi_thread")]
async fn every_fast_path_request_is_counted_once() {
    let member = raw_member(Arc::new(AtomicUsize::new(0))).await;
    let lb = TestLb::start(bin(), &services(member), "", "", false);
    let (clients, each) = (8, 25);
    let mut tasks = vec![];
    for _ in 0..clients {
        // A client (and so a connection) each: the acceptor deals them to
        // the worker threads in turn.
        let (http, url) = (reqwest::Client::new(), lb.url("/echo"));
        tasks.push(tokio::spawn(async move {
            for _ in 0..each {
                let r = http.get(&url).send().await.unwrap();
                assert_eq!(r.status(), 200);
                r.bytes().await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let m = reqwest::get(lb.status_url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let value = |name: &str| -> Option<u64> {
        m.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
    };
    let served = clients * each;
    assert_eq!(
        value("wharf_lb_requests_total{service=\"s\",status=\"200\"}"),
        Some(served),
        "{m}"
    );
    assert_eq!(
        value("wharf_lb_request_duration_seconds_count{service=\"s\"}"),
        Some(served),
        "{m}"
    );
    assert_eq!(
        value("wharf_lb_request_duration_seconds_bucket{le=\"+Inf\",service=\"s\"}"),
        Some(served),
        "{m}"
    );
}
