//! SIGTERM lets in-flight requests finish before the server exits (Kubernetes sends SIGTERM on
//! every rollout and scale-down).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::*;

const PORT: u16 = 18091;

#[tokio::test]
async fn sigterm_finishes_in_flight_requests_then_exits_cleanly() {
    let mut server = extra_server(PORT, &[], &[], None).await;

    // A request that is half sent when SIGTERM arrives...
    let mut conn = TcpStream::connect(("127.0.0.1", PORT)).unwrap();
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: infra\r\n").unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert!(Command::new("kill").args(["-TERM", &server.id().to_string()]).status().unwrap().success());
    std::thread::sleep(Duration::from_millis(300));
    // ...is still answered once it is complete.
    conn.write_all(b"Connection: close\r\n\r\n").unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut response = String::new();
    conn.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "in-flight request got: {response:?}");

    // New connections are refused and the process exits with success, promptly.
    let start = Instant::now();
    let status = loop {
        if let Some(status) = server.try_wait().unwrap() {
            break status;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "the server did not exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit status {status}");
    assert!(TcpStream::connect(("127.0.0.1", PORT)).is_err());
}
