//! A minimal blocking HTTP/1.1 client (one request per connection) for `arbiter bench serve`,
//! loopback only, no dependencies. Private to the binary; the end-to-end tests compile this
//! same file into their harness (`#[path]`), so it is not public API.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Sends one request and returns `(status, body)`; status 0 when the exchange failed.
pub fn request(addr: SocketAddr, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    let Ok(mut s) = TcpStream::connect(addr) else { return (0, "connect failed".into()) };
    let _ = s.set_read_timeout(Some(Duration::from_secs(60)));
    let body = body.unwrap_or("");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: arbiter\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    if s.write_all(req.as_bytes()).is_err() {
        return (0, "write failed".into());
    }
    let mut raw = String::new();
    if s.read_to_string(&mut raw).is_err() {
        return (0, "read failed".into());
    }
    let status = raw.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = raw.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}
