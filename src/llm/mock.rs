//! A mock OpenAI-compatible server for tests, benches and dry runs (`riveg-bench mock-llm`).
//!
//! Plain `std::net` HTTP/1.1, just enough for ureq and curl: `Content-Length` request bodies (a
//! chunked body gets 411), keep-alive (closed on `Connection: close`, on shutdown, or after
//! [`IDLE_LIMIT`] idle), one thread per connection (at most [`MAX_CONNECTIONS`]). It binds to
//! loopback addresses only: it is a test double, not a service.
//!
//! Routes: `POST …/chat/completions` answers according to a scripted [`Behaviour`] (it counts the
//! requests and records the last `Authorization` header, so tests can check what was sent);
//! `GET …/models` lists the model `mock`; anything else is a 404.
//!
//! [`Behaviour::Echo`] answers deterministically from the prompt: it reads the last `Entity:` and
//! `Type:` lines of the last user message (the built-in template ends with them) and replies
//! `{entity}({type})-A mock description of {entity}.`

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A keep-alive connection idle this long is closed.
pub const IDLE_LIMIT: Duration = Duration::from_secs(60);
/// Connections served at once; more get a 503.
pub const MAX_CONNECTIONS: usize = 256;
const MAX_HEADER_BYTES: usize = 64 * 1024;
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;
/// How often blocked connection threads look at the stop flag.
const POLL: Duration = Duration::from_millis(20);

/// How the mock answers `POST …/chat/completions`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Behaviour {
    /// 200 with a deterministic expansion built from the prompt.
    Echo,
    /// The first `times` requests get HTTP `status`, later ones are answered as [`Behaviour::Echo`].
    Fail(u16, u32),
    /// Every request gets HTTP `status`.
    AlwaysFail(u16),
    /// Waits this many milliseconds, then answers as [`Behaviour::Echo`].
    Delay(u64),
    /// 200 with a body that is not JSON.
    Malformed,
    /// 200 with `"choices": []`.
    Empty,
    /// 200 with one choice whose content is blank.
    EmptyContent,
}

impl FromStr for Behaviour {
    type Err = String;

    /// `echo`, `fail:STATUS:TIMES`, `always-fail:STATUS`, `delay:MS`, `malformed`, `empty`,
    /// `empty-content` (for the CLI's `--behaviour`).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = text.trim().split(':').collect();
        let num = |s: &str| {
            s.parse::<u64>()
                .map_err(|_| format!("{s:?} in mock behaviour {text:?} is not a number"))
        };
        let status = |s: &str| match num(s)? {
            n @ 100..=599 => Ok(n as u16),
            n => Err(format!("{n} is not an HTTP status")),
        };
        match parts.as_slice() {
            ["echo"] => Ok(Behaviour::Echo),
            ["fail", s, times] => Ok(Behaviour::Fail(
                status(s)?,
                u32::try_from(num(times)?).map_err(|e| e.to_string())?,
            )),
            ["always-fail", s] => Ok(Behaviour::AlwaysFail(status(s)?)),
            ["delay", ms] => Ok(Behaviour::Delay(num(ms)?)),
            ["malformed"] => Ok(Behaviour::Malformed),
            ["empty"] => Ok(Behaviour::Empty),
            ["empty-content"] => Ok(Behaviour::EmptyContent),
            _ => Err(format!(
                "unknown mock behaviour {text:?}; use echo, fail:STATUS:TIMES, always-fail:STATUS, \
                 delay:MS, malformed, empty or empty-content"
            )),
        }
    }
}

/// State shared by the accept thread, the connection threads and the handle.
#[derive(Debug)]
struct Shared {
    behaviour: Mutex<Behaviour>,
    retry_after_s: Mutex<Option<u64>>,
    stop: AtomicBool,
    chat_requests: AtomicU64,
    /// Requests answered with an error under `Fail`, since the behaviour was set.
    failures_sent: AtomicU64,
    last_authorization: Mutex<Option<String>>,
    open_connections: AtomicUsize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking connection thread must not take the server down with it.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A running mock server; stops on [`MockServer::shutdown`] or drop.
#[derive(Debug)]
pub struct MockServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept_thread: Option<JoinHandle<()>>,
}

impl MockServer {
    /// Starts on `127.0.0.1` and a free port.
    pub fn start(behaviour: Behaviour) -> std::io::Result<MockServer> {
        MockServer::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), behaviour)
    }

    /// Starts on `addr`, which must be a loopback address (port 0 picks a free port).
    pub fn start_on(addr: SocketAddr, behaviour: Behaviour) -> std::io::Result<MockServer> {
        if !addr.ip().is_loopback() {
            return Err(std::io::Error::new(
                ErrorKind::InvalidInput,
                format!("the mock LLM server binds to loopback only, not {addr}; use 127.0.0.1"),
            ));
        }
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            behaviour: Mutex::new(behaviour),
            retry_after_s: Mutex::new(None),
            stop: AtomicBool::new(false),
            chat_requests: AtomicU64::new(0),
            failures_sent: AtomicU64::new(0),
            last_authorization: Mutex::new(None),
            open_connections: AtomicUsize::new(0),
        });
        let accept_shared = Arc::clone(&shared);
        let accept_thread = std::thread::Builder::new()
            .name(format!("mock-llm-{}", addr.port()))
            .spawn(move || accept_loop(listener, accept_shared))?;
        Ok(MockServer {
            addr,
            shared,
            accept_thread: Some(accept_thread),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `http://127.0.0.1:PORT/v1`, ready for [`LlmConfig::base_url`](super::LlmConfig).
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Chat-completion requests received so far (all behaviours, failures included).
    pub fn requests(&self) -> u64 {
        self.shared.chat_requests.load(Ordering::SeqCst)
    }

    /// The `Authorization` header of the last chat request (`None` if it had none).
    pub fn last_authorization(&self) -> Option<String> {
        lock(&self.shared.last_authorization).clone()
    }

    /// Replaces the behaviour (and restarts `Fail`'s count).
    pub fn set_behaviour(&self, behaviour: Behaviour) {
        *lock(&self.shared.behaviour) = behaviour;
        self.shared.failures_sent.store(0, Ordering::SeqCst);
    }

    /// Adds `Retry-After: SECONDS` to 429 and 503 answers (`None`: no header, the default).
    pub fn set_retry_after_s(&self, seconds: Option<u64>) {
        *lock(&self.shared.retry_after_s) = seconds;
    }

    /// Blocks until the server stops (it never does on its own: for `serve_forever`).
    pub fn wait(mut self) {
        if let Some(handle) = self.accept_thread.take() {
            let _ = handle.join();
        }
    }

    /// Stops accepting, closes idle connections and joins the accept thread.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let Some(handle) = self.accept_thread.take() else {
            return;
        };
        // Wake the blocking accept() with a connection of our own; if that fails, leave the
        // thread detached rather than hang.
        if TcpStream::connect_timeout(&self.addr, Duration::from_secs(1)).is_ok() {
            let _ = handle.join();
        }
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs a mock server on `addr` (loopback only) until the process ends, for
/// `riveg-bench mock-llm`. Prints the base URL to stderr once listening (port 0 picks one).
pub fn serve_forever(addr: SocketAddr, behaviour: Behaviour) -> std::io::Result<()> {
    let server = MockServer::start_on(addr, behaviour.clone())?;
    eprintln!(
        "mock LLM ({behaviour:?}) listening on {} (POST /v1/chat/completions); Ctrl-C stops it",
        server.base_url()
    );
    log::info!("mock LLM listening on {}", server.base_url());
    server.wait();
    Ok(())
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        let stream = match stream {
            Ok(s) => s,
            Err(e) => {
                log::warn!("mock LLM: accept failed: {e}");
                std::thread::sleep(POLL);
                continue;
            }
        };
        let open = shared.open_connections.fetch_add(1, Ordering::SeqCst);
        if open >= MAX_CONNECTIONS {
            shared.open_connections.fetch_sub(1, Ordering::SeqCst);
            let mut stream = stream;
            let _ = write_response(
                &mut stream,
                503,
                &error_json("mock server busy"),
                None,
                true,
            );
            continue;
        }
        let conn_shared = Arc::clone(&shared);
        let spawned = std::thread::Builder::new()
            .name("mock-llm-conn".to_string())
            .spawn(move || {
                serve_connection(stream, &conn_shared);
                conn_shared.open_connections.fetch_sub(1, Ordering::SeqCst);
            });
        if let Err(e) = spawned {
            shared.open_connections.fetch_sub(1, Ordering::SeqCst);
            log::warn!("mock LLM: cannot start a connection thread: {e}");
        }
    }
}

/// One parsed request.
struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Why reading a request stopped.
enum ReadEnd {
    /// Peer closed, idle limit, shutdown or IO error: close silently.
    Closed,
    /// A request we refuse: answer this status and close.
    Refuse(u16, &'static str),
}

fn serve_connection(mut stream: TcpStream, shared: &Shared) {
    if stream.set_nonblocking(false).is_err() || stream.set_read_timeout(Some(POLL)).is_err() {
        return;
    }
    let _ = stream.set_nodelay(true);
    let mut buffer: Vec<u8> = Vec::new();
    loop {
        let request = match read_request(&mut stream, &mut buffer, shared) {
            Ok(r) => r,
            Err(ReadEnd::Closed) => return,
            Err(ReadEnd::Refuse(status, why)) => {
                let _ = write_response(&mut stream, status, &error_json(why), None, true);
                return;
            }
        };
        let close = request
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let (status, body, retry_after_s) = respond(&request, shared);
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        if write_response(&mut stream, status, &body, retry_after_s, close).is_err() || close {
            return;
        }
    }
}

/// Reads one request from `stream`; bytes after it stay in `buffer`.
fn read_request(
    stream: &mut TcpStream,
    buffer: &mut Vec<u8>,
    shared: &Shared,
) -> Result<Request, ReadEnd> {
    let idle_since = Instant::now();
    let mut chunk = [0u8; 8192];
    let mut fill = |buffer: &mut Vec<u8>| -> Result<(), ReadEnd> {
        loop {
            if shared.stop.load(Ordering::SeqCst) || idle_since.elapsed() > IDLE_LIMIT {
                return Err(ReadEnd::Closed);
            }
            match stream.read(&mut chunk) {
                Ok(0) => return Err(ReadEnd::Closed),
                Ok(n) => {
                    buffer.extend_from_slice(&chunk[..n]);
                    return Ok(());
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return Err(ReadEnd::Closed),
            }
        }
    };
    let header_end = loop {
        if let Some(pos) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos;
        }
        if buffer.len() > MAX_HEADER_BYTES {
            return Err(ReadEnd::Refuse(431, "request headers too large"));
        }
        fill(buffer)?;
    };
    let head = String::from_utf8_lossy(&buffer[..header_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().unwrap_or_default().split_whitespace();
    let (Some(method), Some(path)) = (request_line.next(), request_line.next()) else {
        return Err(ReadEnd::Refuse(400, "malformed request line"));
    };
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut request = Request {
        method: method.to_string(),
        path: path.to_string(),
        headers,
        body: Vec::new(),
    };
    if request
        .header("transfer-encoding")
        .is_some_and(|v| !v.eq_ignore_ascii_case("identity"))
    {
        return Err(ReadEnd::Refuse(411, "send a Content-Length body"));
    }
    let body_len = match request.header("content-length") {
        None => 0,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if n <= MAX_BODY_BYTES => n,
            Ok(_) => return Err(ReadEnd::Refuse(413, "request body too large")),
            Err(_) => return Err(ReadEnd::Refuse(400, "bad Content-Length")),
        },
    };
    let body_start = header_end + 4;
    while buffer.len() < body_start + body_len {
        fill(buffer)?;
    }
    request.body = buffer[body_start..body_start + body_len].to_vec();
    buffer.drain(..body_start + body_len);
    Ok(request)
}

/// The status, JSON body and `Retry-After` for a request.
fn respond(request: &Request, shared: &Shared) -> (u16, String, Option<u64>) {
    let path = request.path.split('?').next().unwrap_or_default();
    if request.method == "GET" && path.ends_with("/models") {
        let body = serde_json::json!({
            "object": "list",
            "data": [{"id": "mock", "object": "model", "owned_by": "riveg-bench"}],
        });
        return (200, body.to_string(), None);
    }
    if !(request.method == "POST" && path.ends_with("/chat/completions")) {
        let why = format!("no route for {} {}", request.method, request.path);
        return (404, error_json(&why), None);
    }
    shared.chat_requests.fetch_add(1, Ordering::SeqCst);
    *lock(&shared.last_authorization) = request.header("authorization").map(str::to_string);
    let behaviour = lock(&shared.behaviour).clone();
    let failure = |status: u16| {
        let retry_after = if matches!(status, 429 | 503) {
            *lock(&shared.retry_after_s)
        } else {
            None
        };
        (status, error_json("scripted mock failure"), retry_after)
    };
    match behaviour {
        Behaviour::AlwaysFail(status) => failure(status),
        Behaviour::Fail(status, times) => {
            if shared.failures_sent.fetch_add(1, Ordering::SeqCst) < u64::from(times) {
                failure(status)
            } else {
                echo(&request.body, true)
            }
        }
        Behaviour::Delay(ms) => {
            let until = Instant::now() + Duration::from_millis(ms);
            while Instant::now() < until && !shared.stop.load(Ordering::SeqCst) {
                std::thread::sleep(POLL.min(until.saturating_duration_since(Instant::now())));
            }
            echo(&request.body, true)
        }
        Behaviour::Echo => echo(&request.body, true),
        Behaviour::Malformed => (200, "{\"choices\": [{\"message\": ".to_string(), None),
        Behaviour::Empty => (
            200,
            serde_json::json!({"id": "mock", "object": "chat.completion", "choices": []})
                .to_string(),
            None,
        ),
        Behaviour::EmptyContent => echo(&request.body, false),
    }
}

/// A chat-completion answer: the echo text, or blank content when `with_content` is false.
fn echo(body: &[u8], with_content: bool) -> (u16, String, Option<u64>) {
    let request: serde_json::Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            return (
                400,
                error_json(&format!("request body is not JSON: {e}")),
                None,
            )
        }
    };
    let model = request
        .get("model")
        .and_then(|m| m.as_str())
        .unwrap_or("mock");
    let user = request
        .get("messages")
        .and_then(|m| m.as_array())
        .and_then(|messages| {
            messages
                .iter()
                .rev()
                .find(|m| m.get("role").and_then(|r| r.as_str()) == Some("user"))
        })
        .and_then(|m| m.get("content"))
        .and_then(|c| c.as_str());
    let Some(user) = user else {
        return (400, error_json("no user message in `messages`"), None);
    };
    let content = if with_content {
        echo_text(user)
    } else {
        "  ".to_string()
    };
    let reply = serde_json::json!({
        "id": "chatcmpl-mock",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content},
            "finish_reason": "stop",
        }],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
    });
    (200, reply.to_string(), None)
}

/// `{entity}({type})-A mock description of {entity}.` from the last `Entity:` / `Type:` lines.
pub fn echo_text(user_message: &str) -> String {
    let field = |name: &str| {
        user_message
            .lines()
            .rev()
            .find_map(|l| l.trim_start().strip_prefix(name))
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    match (field("Entity:"), field("Type:")) {
        (Some(entity), ty) => format!(
            "{entity}({})-A mock description of {entity}.",
            ty.unwrap_or("OTHER")
        ),
        (None, _) => format!(
            "A mock description of a prompt of {} characters.",
            user_message.chars().count()
        ),
    }
}

fn error_json(message: &str) -> String {
    serde_json::json!({"error": {"message": message, "type": "mock_error"}}).to_string()
}

fn write_response(
    stream: &mut TcpStream,
    status: u16,
    body: &str,
    retry_after_s: Option<u64>,
    close: bool,
) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        411 => "Length Required",
        413 => "Payload Too Large",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Mock Status",
    };
    let mut head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(s) = retry_after_s {
        head.push_str(&format!("Retry-After: {s}\r\n"));
    }
    head.push_str(if close {
        "Connection: close\r\n\r\n"
    } else {
        "Connection: keep-alive\r\n\r\n"
    });
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body.as_bytes());
    stream.write_all(&bytes)?;
    stream.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_reads_the_last_entity_and_type_lines() {
        let prompt = "Example\nEntity: X\nType: LOC\nTweet: hi\nEntity: Angelina Jolie\nType: PER";
        assert_eq!(
            echo_text(prompt),
            "Angelina Jolie(PER)-A mock description of Angelina Jolie."
        );
        assert_eq!(echo_text("no fields"), echo_text("no fields"));
    }

    #[test]
    fn behaviours_parse_from_cli_text() {
        assert_eq!("echo".parse(), Ok(Behaviour::Echo));
        assert_eq!("fail:429:2".parse(), Ok(Behaviour::Fail(429, 2)));
        assert_eq!("always-fail:500".parse(), Ok(Behaviour::AlwaysFail(500)));
        assert_eq!("delay:250".parse(), Ok(Behaviour::Delay(250)));
        assert!("fail:99:1".parse::<Behaviour>().is_err());
        assert!("sometimes".parse::<Behaviour>().is_err());
    }

    #[test]
    fn refuses_non_loopback_addresses() {
        let err = MockServer::start_on("0.0.0.0:0".parse().unwrap(), Behaviour::Echo).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
    }
}
