//! Just enough HTTP/1.x for a scrape: read one bounded request head, answer once, close.
//!
//! Owns the wire format only: finding the end of a request head, parsing its request line and
//! the one header that matters (`Accept`), and writing a response with `Content-Length` and
//! `Connection: close`. No keep-alive, no bodies, no chunking: a scraper needs none of them, and
//! every feature left out is one a hostile client cannot use. It never touches a socket.

/// What a request head said, as far as the endpoint cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The method, as sent (methods are case-sensitive).
    pub method: String,
    /// The path, without query string or fragment.
    pub path: String,
    /// The `Accept` header's value (several are joined with commas).
    pub accept: Option<String>,
}

/// A request head that is not valid HTTP/1.x.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad request: {0}")]
pub struct BadRequest(pub &'static str);

/// Where the head in `buf` ends (just past its blank line), once it is all there.
pub fn head_end(buf: &[u8]) -> Option<usize> {
    let crlf = memchr::memmem::find(buf, b"\r\n\r\n").map(|i| i + 4);
    let lf = memchr::memmem::find(buf, b"\n\n").map(|i| i + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Parses a complete request head (as delimited by [`head_end`]).
pub fn parse_head(head: &[u8]) -> Result<Request, BadRequest> {
    let text = std::str::from_utf8(head).map_err(|_| BadRequest("the head is not UTF-8"))?;
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let request_line = lines.next().ok_or(BadRequest("no request line"))?;
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(BadRequest("the request line is not METHOD TARGET VERSION"));
    };
    if method.is_empty() || !method.bytes().all(is_token_byte) {
        return Err(BadRequest("the method is not a token"));
    }
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Err(BadRequest("not HTTP/1.0 or HTTP/1.1"));
    }
    let path = path_of(target).ok_or(BadRequest("the target is not a path"))?;
    let mut accept: Option<String> = None;
    for line in lines.take_while(|l| !l.is_empty()) {
        let (name, value) = line
            .split_once(':')
            .ok_or(BadRequest("a header line without a colon"))?;
        if name.is_empty() || !name.bytes().all(is_token_byte) {
            return Err(BadRequest("a header name is not a token"));
        }
        if name.eq_ignore_ascii_case("accept") {
            let value = value.trim();
            accept = Some(match accept {
                Some(before) => format!("{before}, {value}"),
                None => value.to_owned(),
            });
        }
    }
    Ok(Request {
        method: method.to_owned(),
        path: path.to_owned(),
        accept,
    })
}

/// The path of an origin-form (`/metrics?x`) or absolute-form (`http://host/metrics`) target.
fn path_of(target: &str) -> Option<&str> {
    let rest = match target.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => {
            &rest[rest.find('/').unwrap_or(rest.len())..]
        }
        Some(_) => return None,
        None => target,
    };
    let path = rest.split(['?', '#']).next().unwrap_or("");
    match path {
        "" if target.contains("://") => Some("/"),
        p if p.starts_with('/') => Some(p),
        _ => None,
    }
}

/// RFC 9110 `tchar`.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A whole response, ready to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The `Content-Type`.
    pub content_type: &'static str,
    /// The body (left out on the wire for `HEAD`).
    pub body: Vec<u8>,
}

impl Response {
    /// A short plain-text response, e.g. an error.
    pub fn text(status: u16, body: &str) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            body: format!("{body}\n").into_bytes(),
        }
    }

    /// The bytes to send; `head_only` for `HEAD` requests.
    pub fn to_bytes(&self, head_only: bool) -> Vec<u8> {
        let mut out = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
            self.status,
            reason(self.status),
            self.content_type,
            self.body.len()
        );
        if self.status == 405 {
            out.push_str("Allow: GET, HEAD\r\n");
        }
        out.push_str("\r\n");
        let mut bytes = out.into_bytes();
        if !head_only {
            bytes.extend_from_slice(&self.body);
        }
        bytes
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scrape_request_is_read_with_its_accept_header() {
        let head = b"GET /metrics?x=1 HTTP/1.1\r\nHost: 127.0.0.1:9465\r\nAccept: application/openmetrics-text;version=1.0.0;q=0.5\r\naccept: text/plain;q=0.4\r\n\r\n";
        assert_eq!(head_end(head), Some(head.len()));
        let r = parse_head(head).unwrap();
        assert_eq!(r.method, "GET");
        assert_eq!(r.path, "/metrics");
        assert_eq!(
            r.accept.as_deref(),
            Some("application/openmetrics-text;version=1.0.0;q=0.5, text/plain;q=0.4")
        );
    }

    #[test]
    fn bare_newlines_and_absolute_targets_are_accepted() {
        let r = parse_head(b"HEAD http://mx.example.org:9465/metrics HTTP/1.0\n\n").unwrap();
        assert_eq!((r.method.as_str(), r.path.as_str()), ("HEAD", "/metrics"));
        assert_eq!(r.accept, None);
        assert_eq!(parse_head(b"GET http://h HTTP/1.1\n\n").unwrap().path, "/");
    }

    #[test]
    fn the_head_ends_at_the_first_blank_line_only() {
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: x\r\n"), None);
        assert_eq!(head_end(b"GET / HTTP/1.1\n\nrest"), Some(16));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n\r\nGET"), Some(18));
    }

    #[test]
    fn garbage_is_a_bad_request() {
        for head in [
            &b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n"[..],
            b"GET /metrics\r\n\r\n",
            b"GET  /metrics HTTP/1.1\r\n\r\n",
            b"GET /metrics HTTP/2.0\r\n\r\n",
            b"GET metrics HTTP/1.1\r\n\r\n",
            b"GET ftp://h/metrics HTTP/1.1\r\n\r\n",
            b"G(T /metrics HTTP/1.1\r\n\r\n",
            b"GET /metrics HTTP/1.1\r\nno colon here\r\n\r\n",
            b"GET /metrics HTTP/1.1\r\n folded: header\r\n\r\n",
            b"\r\n\r\n",
        ] {
            assert!(
                parse_head(head).is_err(),
                "{:?}",
                String::from_utf8_lossy(head)
            );
        }
    }

    #[test]
    fn responses_carry_length_and_close_and_head_leaves_the_body_out() {
        let r = Response::text(404, "no such page");
        let full = String::from_utf8(r.to_bytes(false)).unwrap();
        assert!(full.starts_with("HTTP/1.1 404 Not Found\r\n"), "{full}");
        assert!(full.contains("Content-Length: 13\r\n"), "{full}");
        assert!(full.contains("Connection: close\r\n"), "{full}");
        assert!(full.ends_with("\r\n\r\nno such page\n"), "{full}");
        let head = String::from_utf8(r.to_bytes(true)).unwrap();
        assert!(head.ends_with("Content-Length: 13\r\nConnection: close\r\n\r\n"));
        let r = String::from_utf8(Response::text(405, "GET only").to_bytes(false)).unwrap();
        assert!(r.contains("Allow: GET, HEAD\r\n"), "{r}");
    }
}
