//! Connection discipline over real sockets on a loopback port (`custody_server::serve`):
//! a client that sends nothing, stops mid-headers or sits idle on keep-alive is closed by
//! the server, and a flood of such connections cannot lock out `/healthz` or the deploy
//! gate. No timing is asserted: each read waits for the server to close the socket, under
//! a generous guard that only keeps a broken build from hanging the suite.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::support::{Backend, TestServer};

/// Far longer than any deadline configured below: reaching it means a socket was kept.
const GUARD: Duration = Duration::from_secs(60);

fn settings(max_connections: usize) -> custody_server::Settings {
    let mut s = custody_server::Settings::default();
    s.connections.header_read_timeout = Duration::from_secs(1);
    s.connections.idle_timeout = Duration::from_secs(1);
    s.connections.max_connections = max_connections;
    s.connections.max_connections_per_client = 0;
    s
}

/// Serves `server` on a loopback port until the returned sender is dropped.
pub(crate) async fn serve(server: &TestServer) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(custody_server::serve(
        listener,
        server.state.clone(),
        async {
            let _ = stopped.await;
        },
    ));
    (addr, stop)
}

/// Reads until the server closes `stream` (or resets it); everything it sent. Panics if
/// the guard passes first (the server kept the socket).
pub(crate) async fn until_closed(stream: &mut (impl AsyncRead + Unpin)) -> Vec<u8> {
    let mut got = Vec::new();
    let read = tokio::time::timeout(GUARD, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the server kept the socket open");
    got
}

/// One request on a fresh connection: the status line.
async fn status_line(addr: SocketAddr, target: &str, token: Option<&str>) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let auth = token.map_or(String::new(), |t| format!("authorization: Bearer {t}\r\n"));
    let request =
        format!("GET {target} HTTP/1.1\r\nhost: custody\r\n{auth}connection: close\r\n\r\n");
    s.write_all(request.as_bytes()).await.unwrap();
    let answer = until_closed(&mut s).await;
    String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_half_sent_and_idle_keep_alive_sockets_are_closed() {
    let server = TestServer::start_with(Backend::Sqlite, settings(1024)).await;
    let (addr, _stop) = serve(&server).await;
    // Sends nothing at all.
    let mut silent = TcpStream::connect(addr).await.unwrap();
    // Stops in the middle of its headers.
    let mut half = TcpStream::connect(addr).await.unwrap();
    half.write_all(b"GET /healthz HTTP/1.1\r\nhost: cus")
        .await
        .unwrap();
    // Asks once, keeps the connection alive, then says nothing more.
    let mut kept = TcpStream::connect(addr).await.unwrap();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nhost: custody\r\n\r\n")
        .await
        .unwrap();
    assert!(until_closed(&mut silent).await.is_empty());
    let answered = String::from_utf8(until_closed(&mut half).await).unwrap();
    assert!(!answered.contains("200 OK"), "{answered}");
    let answered = String::from_utf8(until_closed(&mut kept).await).unwrap();
    assert!(answered.starts_with("HTTP/1.1 200 OK"), "{answered}");
    assert_eq!(answered.matches("HTTP/1.1").count(), 1, "{answered}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_idle_connections_leaves_healthz_and_the_deploy_gate_answering() {
    // A cap of 32 stands for the open-file limit (which also lowers the cap, see
    // `connections::max_connections`): 200 idle sockets are many times what fits.
    let server = TestServer::start_with(Backend::Sqlite, settings(32)).await;
    let (addr, _stop) = serve(&server).await;
    let mut flood = Vec::new();
    for _ in 0..200 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\n").await.unwrap(); // never finished
        flood.push(s);
    }
    assert_eq!(status_line(addr, "/healthz", None).await, "HTTP/1.1 200 OK");
    let gate = format!(
        "/api/v1/verify?env=production&digest=sha256:{}",
        "a".repeat(64)
    );
    let verdict = status_line(addr, &gate, Some(server.token("argo"))).await;
    // Denied (nothing was promoted), but answered by the gate, not refused for room.
    assert_eq!(verdict, "HTTP/1.1 403 Forbidden");
    // The oldest sockets were closed to make room; the rest by their deadline.
    for s in &mut flood {
        until_closed(s).await;
    }
}

/// At a client's connection cap, that client's connection idle longest is closed to make
/// room (a browser's or a proxy's keep-alive pool recycles its own sockets, and never
/// locks itself out); only a client whose every connection is busy is refused. Neither
/// deadline can close anything here: each is longer than the test's guard.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_at_its_cap_recycles_its_own_idle_connections() {
    let mut s = settings(1024);
    s.connections.header_read_timeout = 2 * GUARD;
    s.connections.idle_timeout = 2 * GUARD;
    s.request_timeout = 2 * GUARD;
    s.connections.max_connections_per_client = 4;
    let server = TestServer::start_with(Backend::Sqlite, s).await;
    let (addr, _stop) = serve(&server).await;
    // Four keep-alive connections, each answered once and then idle, oldest first.
    let mut kept = Vec::new();
    for _ in 0..4 {
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.write_all(b"GET /healthz HTTP/1.1\r\nhost: custody\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 1024];
        let n = tokio::time::timeout(GUARD, c.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200 OK"));
        kept.push(c);
    }
    // A fifth is served, and the idlest of the four (the first) was closed for it.
    assert_eq!(status_line(addr, "/healthz", None).await, "HTTP/1.1 200 OK");
    assert!(until_closed(&mut kept[0]).await.is_empty());
    drop(kept);

    // Another client (127.0.0.2) with four connections each in the middle of a request
    // (headers in, body awaited): busy, so none is closed for room, and its fifth
    // connection is refused.
    let from = |ip: &str| {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(format!("{ip}:0").parse().unwrap()).unwrap();
        socket.connect(addr)
    };
    // `Expect: 100-continue`: the server says "100 Continue" once the handler reads the
    // body, so the request is known to be in flight before the next connection opens.
    let head = format!(
        "POST /api/v1/tokens HTTP/1.1\r\nhost: custody\r\nauthorization: Bearer {}\r\n\
         content-type: application/json\r\ncontent-length: 64\r\nexpect: 100-continue\r\n\r\n",
        server.token("root")
    );
    let mut busy = Vec::new();
    for _ in 0..4 {
        let mut c = from("127.0.0.2").await.unwrap();
        c.write_all(head.as_bytes()).await.unwrap();
        let mut buf = [0u8; 256];
        let n = tokio::time::timeout(GUARD, c.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(
            buf[..n].starts_with(b"HTTP/1.1 100 Continue"),
            "{:?}",
            &buf[..n]
        );
        busy.push(c);
    }
    let mut refused = from("127.0.0.2").await.unwrap();
    refused
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: custody\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let answer = until_closed(&mut refused).await;
    assert!(answer.is_empty(), "{}", String::from_utf8_lossy(&answer));
    // The first client is not affected by the second's cap.
    assert_eq!(status_line(addr, "/healthz", None).await, "HTTP/1.1 200 OK");
}

/// The request timeout is a fixed deadline for the whole body, not a pause between its
/// pieces: a client trickling a body one byte every 50 ms (each gap far shorter than the
/// timeout, the whole far longer) is answered 408 naming the deadline, under its caller,
/// and nothing is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_trickled_past_the_request_timeout_is_408() {
    let mut s = settings(1024);
    s.request_timeout = Duration::from_millis(400);
    let server = TestServer::start_with(Backend::Sqlite, s).await;
    let (addr, _stop) = serve(&server).await;
    let before = server.size().await;
    let body = format!(
        r#"{{"principal":"argo","expires":"30d"{}}}"#,
        " ".repeat(48)
    )
    .into_bytes();
    let head = format!(
        "POST /api/v1/tokens HTTP/1.1\r\nhost: custody\r\nauthorization: Bearer {}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        server.token("root"),
        body.len()
    );
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    write.write_all(head.as_bytes()).await.unwrap();
    // 80-odd bytes at 50 ms each: some four seconds, ten times the timeout.
    let sender = tokio::spawn(async move {
        for byte in body {
            write.write_all(&[byte]).await?;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        std::io::Result::Ok(())
    });
    let mut answer = Vec::new();
    let read_all = tokio::time::timeout(GUARD, read.read_to_end(&mut answer)).await;
    assert!(read_all.is_ok(), "the server kept a trickling socket open");
    sender.abort();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("did not arrive within"), "{answer}");
    assert_eq!(server.size().await, before, "a timed-out request wrote");
    let rows: Vec<_> = server
        .access_log()
        .await
        .into_iter()
        .filter(|r| r.entry.path == "/api/v1/tokens")
        .map(|r| (r.entry.status, r.entry.principal))
        .collect();
    assert_eq!(rows, [(408, "root".to_owned())]);
}

/// A client may send its whole request, shut its side of the connection and wait: the
/// change is made and answered, never made with the answer dropped (a token's secret is
/// shown once only).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_half_closes_after_its_request_gets_the_answer() {
    let server = TestServer::start_with(Backend::Sqlite, settings(1024)).await;
    let (addr, _stop) = serve(&server).await;
    let before = server.size().await;
    let body = r#"{"principal":"argo","expires":"30d"}"#;
    let request = format!(
        "POST /api/v1/tokens HTTP/1.1\r\nhost: custody\r\nauthorization: Bearer {}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        server.token("root"),
        body.len()
    );
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    stream.shutdown().await.unwrap();
    let answer = until_closed(&mut stream).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer:?}");
    assert!(answer.contains("\"token\":\"cst_"), "{answer}");
    assert_eq!(server.size().await, before + 1);
}
