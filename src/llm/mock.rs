//! A mock OpenAI-compatible server for tests, benches and dry runs (`riveg-bench mock-llm`).
//!
//! Plain `std::net` HTTP/1.1, just enough for ureq and curl: `Content-Length` request bodies (a
//! chunked body gets 411), keep-alive (closed on `Connection: close`, on shutdown, or after
//! [`IDLE_LIMIT`] idle), one thread per connection (at most [`MAX_CONNECTIONS`]). It binds to
//! loopback addresses only: it is a test double, not a service.
//!
//! Routes: `POST …/chat/completions` answers according to a scripted [`Behaviour`] (it counts the
//! requests and records the last `Authorization` header, so tests can check what was sent);
//! `GET …/models` lists the model `mock`; `GET …/models/{id}` describes any model id; anything
//! else is a 404.
//!
//! Chat requests are read as OpenAI's: `content` is a string or a list of `text` and `image_url`
//! parts; `n` (1 to 16) gives that many equal choices; `stream: true` gets the completion as
//! server-sent events (`chat.completion.chunk`s, then `data: [DONE]`), so any OpenAI client can be
//! dry-run against the mock.
//!
//! [`Behaviour::Echo`] answers deterministically from the prompt. A text request: it reads the
//! last `Entity:` and `Type:` lines of the last user message (the built-in reformulation template
//! ends with them) and replies `{entity}({type})-A mock description of {entity}.` A request with
//! an image (the MLLM prompt): see [`mllm_text`]; entities come from the tweet's capitalised
//! tokens and boxes from the image's bright regions, so tests can predict every number.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

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
    /// Every request gets HTTP `status` with a FastAPI-style `{"detail": ...}` body (a list of
    /// validation errors for 422, a string otherwise).
    Detail(u16),
    /// Answers as [`Behaviour::Echo`], then appends the request's `Authorization` header to the
    /// completion (a leaky endpoint: clients must redact their key).
    EchoAuthorization,
    /// Every request gets HTTP `status` with the `Authorization` header in the error message.
    EchoAuthorizationError(u16),
    /// A text-only model: a request with an `image_url` part gets 400; others as
    /// [`Behaviour::Echo`].
    NoVision,
    /// 200 with exactly this completion text (e.g. a scripted MLLM reply with bad boxes).
    Content(String),
}

impl FromStr for Behaviour {
    type Err = String;

    /// `echo`, `fail:STATUS:TIMES`, `always-fail:STATUS`, `delay:MS`, `malformed`, `empty`,
    /// `empty-content`, `detail:STATUS`, `echo-auth`, `echo-auth-error:STATUS`, `no-vision`,
    /// `content:TEXT` (for the CLI's `--behaviour`; TEXT is everything after the first colon).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if let Some(content) = text.trim_start().strip_prefix("content:") {
            return Ok(Behaviour::Content(content.to_string()));
        }
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
            ["detail", s] => Ok(Behaviour::Detail(status(s)?)),
            ["echo-auth"] => Ok(Behaviour::EchoAuthorization),
            ["echo-auth-error", s] => Ok(Behaviour::EchoAuthorizationError(status(s)?)),
            ["no-vision"] => Ok(Behaviour::NoVision),
            _ => Err(format!(
                "unknown mock behaviour {text:?}; use echo, fail:STATUS:TIMES, always-fail:STATUS, \
                 delay:MS, malformed, empty, empty-content, detail:STATUS, echo-auth, \
                 echo-auth-error:STATUS, no-vision or content:TEXT"
            )),
        }
    }
}

/// State shared by the accept thread, the connection threads and the handle.
#[derive(Debug)]
struct Shared {
    behaviour: Mutex<Behaviour>,
    retry_after_s: Mutex<Option<u64>>,
    /// Send `Retry-After` as an HTTP date (now + the seconds) instead of seconds.
    retry_after_as_date: AtomicBool,
    stop: AtomicBool,
    chat_requests: AtomicU64,
    /// Requests answered with an error under `Fail`, since the behaviour was set.
    failures_sent: AtomicU64,
    last_authorization: Mutex<Option<String>>,
    last_body: Mutex<Option<Vec<u8>>>,
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
            retry_after_as_date: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            chat_requests: AtomicU64::new(0),
            failures_sent: AtomicU64::new(0),
            last_authorization: Mutex::new(None),
            last_body: Mutex::new(None),
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

    /// The JSON body of the last chat request (`None` before the first, or if it was not JSON),
    /// so tests can check the fields a client sent.
    pub fn last_request(&self) -> Option<serde_json::Value> {
        let body = lock(&self.shared.last_body).clone()?;
        serde_json::from_slice(&body).ok()
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

    /// Writes `Retry-After` in its HTTP-date form (`Wed, 21 Oct 2015 07:28:00 GMT`, now plus the
    /// seconds set with [`MockServer::set_retry_after_s`]) when `as_date`, else as seconds.
    pub fn set_retry_after_http_date(&self, as_date: bool) {
        self.shared
            .retry_after_as_date
            .store(as_date, Ordering::SeqCst);
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
            let _ = write_response(&mut stream, &Reply::error(503, "mock server busy"), true);
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
                let _ = write_response(&mut stream, &Reply::error(status, why), true);
                return;
            }
        };
        let close = request
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let reply = respond(&request, shared);
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        if write_response(&mut stream, &reply, close).is_err() || close {
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

/// One answer: status, body, its content type and `Retry-After`.
struct Reply {
    status: u16,
    body: String,
    content_type: &'static str,
    /// The `Retry-After` header's value.
    retry_after: Option<String>,
}

impl Reply {
    fn json(status: u16, body: String) -> Reply {
        Reply {
            status,
            body,
            content_type: "application/json",
            retry_after: None,
        }
    }

    fn error(status: u16, message: &str) -> Reply {
        Reply::json(status, error_json(message))
    }
}

/// The answer to a request.
fn respond(request: &Request, shared: &Shared) -> Reply {
    let path = request.path.split('?').next().unwrap_or_default();
    if request.method == "GET" && path.ends_with("/models") {
        let body = serde_json::json!({
            "object": "list",
            "data": [{"id": "mock", "object": "model", "created": 0, "owned_by": "riveg-bench"}],
        });
        return Reply::json(200, body.to_string());
    }
    if request.method == "GET" {
        // `GET …/models/{id}`: the mock serves any model name it is asked for.
        if let Some((_, id)) = path.split_once("/models/").filter(|(_, id)| !id.is_empty()) {
            let body = serde_json::json!({
                "id": id, "object": "model", "created": 0, "owned_by": "riveg-bench",
            });
            return Reply::json(200, body.to_string());
        }
    }
    if !(request.method == "POST" && path.ends_with("/chat/completions")) {
        let why = format!("no route for {} {}", request.method, request.path);
        return Reply::error(404, &why);
    }
    shared.chat_requests.fetch_add(1, Ordering::SeqCst);
    let authorization = request.header("authorization").map(str::to_string);
    *lock(&shared.last_authorization) = authorization.clone();
    *lock(&shared.last_body) = Some(request.body.clone());
    let behaviour = lock(&shared.behaviour).clone();
    let failure = |status: u16| {
        let seconds = if matches!(status, 429 | 503) {
            *lock(&shared.retry_after_s)
        } else {
            None
        };
        let retry_after = seconds.map(|s| {
            if shared.retry_after_as_date.load(Ordering::SeqCst) {
                httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(s))
            } else {
                s.to_string()
            }
        });
        Reply {
            retry_after,
            ..Reply::error(status, "scripted mock failure")
        }
    };
    let chat = ChatRequest::parse(&request.body);
    match behaviour {
        Behaviour::AlwaysFail(status) => failure(status),
        Behaviour::Fail(status, times) => {
            if shared.failures_sent.fetch_add(1, Ordering::SeqCst) < u64::from(times) {
                failure(status)
            } else {
                complete(chat, Content::Answer)
            }
        }
        Behaviour::Delay(ms) => {
            let until = Instant::now() + Duration::from_millis(ms);
            while Instant::now() < until && !shared.stop.load(Ordering::SeqCst) {
                std::thread::sleep(POLL.min(until.saturating_duration_since(Instant::now())));
            }
            complete(chat, Content::Answer)
        }
        Behaviour::Echo => complete(chat, Content::Answer),
        Behaviour::Malformed => Reply::json(200, "{\"choices\": [{\"message\": ".to_string()),
        Behaviour::Empty => Reply::json(
            200,
            serde_json::json!({"id": "mock", "object": "chat.completion", "choices": []})
                .to_string(),
        ),
        Behaviour::EmptyContent => complete(chat, Content::Blank),
        Behaviour::Detail(status) => {
            // FastAPI's shapes: a list of validation errors for 422, else a string.
            let detail = if status == 422 {
                serde_json::json!([{"loc": ["body", "messages"], "msg": "scripted mock validation failure", "type": "value_error"}])
            } else {
                serde_json::json!("scripted mock failure (FastAPI style)")
            };
            Reply::json(status, serde_json::json!({ "detail": detail }).to_string())
        }
        Behaviour::EchoAuthorization => complete(chat, Content::WithAuthorization(authorization)),
        Behaviour::EchoAuthorizationError(status) => Reply::error(
            status,
            &format!(
                "invalid credentials in header Authorization: {}",
                authorization.as_deref().unwrap_or("(none)")
            ),
        ),
        Behaviour::Content(text) => complete(chat, Content::Scripted(text)),
        Behaviour::NoVision => match chat {
            Ok(c) if c.image_url.is_some() => Reply::json(
                400,
                serde_json::json!({"error": {
                    "message": format!("{} is not a multimodal model: image_url content parts are not supported", c.model),
                    "type": "invalid_request_error",
                }})
                .to_string(),
            ),
            other => complete(other, Content::Answer),
        },
    }
}

/// What a chat request asks, as far as the mock cares.
struct ChatRequest {
    model: String,
    /// The last user message's text (a string, or its text parts joined by newlines).
    user: String,
    /// The last user message's first `image_url` part.
    image_url: Option<String>,
    n: usize,
    stream: bool,
}

/// Most choices one request may ask for.
const MAX_CHOICES: u64 = 16;

impl ChatRequest {
    /// The request, or the 400 answer a server would give.
    fn parse(body: &[u8]) -> Result<ChatRequest, Reply> {
        let request: serde_json::Value = serde_json::from_slice(body)
            .map_err(|e| Reply::error(400, &format!("request body is not JSON: {e}")))?;
        let model = request
            .get("model")
            .and_then(|m| m.as_str())
            .unwrap_or("mock")
            .to_string();
        let last_user = request
            .get("messages")
            .and_then(|m| m.as_array())
            .and_then(|messages| {
                messages
                    .iter()
                    .rev()
                    .find(|m| m.get("role").and_then(|r| r.as_str()) == Some("user"))
            })
            .ok_or_else(|| Reply::error(400, "no message with role \"user\" in `messages`"))?;
        let (user, image_url) = match last_user.get("content") {
            Some(serde_json::Value::String(s)) => (s.clone(), None),
            Some(serde_json::Value::Array(parts)) => {
                let mut texts = Vec::new();
                let mut image = None;
                for (i, part) in parts.iter().enumerate() {
                    match part.get("type").and_then(|t| t.as_str()) {
                        Some("text") => match part.get("text").and_then(|t| t.as_str()) {
                            Some(t) => texts.push(t),
                            None => {
                                return Err(Reply::error(
                                    400,
                                    &format!("content part {i} of type \"text\" has no text"),
                                ))
                            }
                        },
                        Some("image_url") => {
                            let url = part
                                .get("image_url")
                                .and_then(|u| u.get("url").or(Some(u)))
                                .and_then(|u| u.as_str());
                            match url {
                                Some(u) => {
                                    image.get_or_insert_with(|| u.to_string());
                                }
                                None => {
                                    return Err(Reply::error(
                                        400,
                                        &format!("content part {i} of type \"image_url\" has no url"),
                                    ))
                                }
                            }
                        }
                        other => {
                            return Err(Reply::error(
                                400,
                                &format!(
                                    "content part {i} has type {other:?}; the mock reads \"text\" and \"image_url\" parts"
                                ),
                            ))
                        }
                    }
                }
                (texts.join("\n"), image)
            }
            _ => {
                return Err(Reply::error(
                    400,
                    "the last user message's content is neither text nor a list of parts",
                ))
            }
        };
        let n = match request.get("n") {
            None | Some(serde_json::Value::Null) => 1,
            Some(v) => match v.as_u64() {
                Some(n @ 1..=MAX_CHOICES) => n as usize,
                _ => {
                    return Err(Reply::error(
                        400,
                        &format!("n must be an integer from 1 to {MAX_CHOICES}, not {v}"),
                    ))
                }
            },
        };
        let stream = request
            .get("stream")
            .and_then(|s| s.as_bool())
            .unwrap_or(false);
        Ok(ChatRequest {
            model,
            user,
            image_url,
            n,
            stream,
        })
    }
}

/// What the completion says.
enum Content {
    /// Exactly this text.
    Scripted(String),
    /// The deterministic answer: [`echo_text`] for text, [`mllm_text`] with an image.
    Answer,
    /// Blank content.
    Blank,
    /// The answer followed by the request's `Authorization` header (a leaky server).
    WithAuthorization(Option<String>),
}

/// A chat completion (JSON, or SSE chunks when the request streams) with `n` equal choices.
fn complete(chat: Result<ChatRequest, Reply>, content: Content) -> Reply {
    let chat = match chat {
        Ok(c) => c,
        Err(reply) => return reply,
    };
    let answer = || match &chat.image_url {
        Some(url) => mllm_text(&chat.user, url),
        None => Ok(echo_text(&chat.user)),
    };
    let text = match content {
        Content::Blank => "  ".to_string(),
        Content::Scripted(text) => text,
        Content::Answer => match answer() {
            Ok(t) => t,
            Err(why) => return Reply::error(400, &why),
        },
        Content::WithAuthorization(header) => match answer() {
            Ok(t) => format!(
                "{t} (sent with Authorization: {})",
                header.as_deref().unwrap_or("(none)")
            ),
            Err(why) => return Reply::error(400, &why),
        },
    };
    if chat.stream {
        return Reply {
            content_type: "text/event-stream",
            ..Reply::json(200, sse_body(&chat.model, &text, chat.n))
        };
    }
    let completion_words = text.split_whitespace().count() * chat.n;
    let prompt_words = chat.user.split_whitespace().count();
    let choices: Vec<serde_json::Value> = (0..chat.n)
        .map(|i| {
            serde_json::json!({
                "index": i,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            })
        })
        .collect();
    let reply = serde_json::json!({
        "id": "chatcmpl-mock",
        "object": "chat.completion",
        "created": 0,
        "model": chat.model,
        "choices": choices,
        // Whitespace-separated words stand in for tokens: deterministic, so tests can check
        // the usage bookkeeping (tokens/s) of the client.
        "usage": {
            "prompt_tokens": prompt_words,
            "completion_tokens": completion_words,
            "total_tokens": prompt_words + completion_words,
        },
    });
    Reply::json(200, reply.to_string())
}

/// `text` as OpenAI's server-sent events: per choice a role chunk, the text in word-sized
/// pieces, a `finish_reason` chunk; then `data: [DONE]`.
fn sse_body(model: &str, text: &str, n: usize) -> String {
    let chunk = |index: usize, delta: serde_json::Value, finish: Option<&str>| {
        let value = serde_json::json!({
            "id": "chatcmpl-mock",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": model,
            "choices": [{"index": index, "delta": delta, "finish_reason": finish}],
        });
        format!("data: {value}\n\n")
    };
    let mut body = String::new();
    for index in 0..n {
        body.push_str(&chunk(
            index,
            serde_json::json!({"role": "assistant", "content": ""}),
            None,
        ));
        for piece in text.split_inclusive(' ') {
            body.push_str(&chunk(index, serde_json::json!({ "content": piece }), None));
        }
        body.push_str(&chunk(index, serde_json::json!({}), Some("stop")));
    }
    body.push_str("data: [DONE]\n\n");
    body
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

/// A pixel whose luma is at least this is "bright".
pub const BRIGHT_LUMA: u8 = 200;

/// The deterministic GMNER answer to an image request, as a multimodal LLM might write it: a
/// fenced JSON list followed by a sentence (so clients exercise their reply parsing).
///
/// - Entities: runs of capitalised tokens (first character upper case) of the last `Tweet:`
///   line of `user_message` (the whole message when there is none). A run of two or more tokens
///   is `PER`, a single all-capitals token of two or more letters `ORG`, any other single token
///   `LOC`.
/// - Boxes: the bright regions of the image ([`bright_regions`]), largest first; the i-th
///   entity gets the i-th region, later entities `null`. They are written in the convention named
///   by the last `Box format:` line (`pixel` when absent) for the image as received.
pub fn mllm_text(user_message: &str, image_url: &str) -> Result<String, String> {
    let line = |name: &str| {
        user_message
            .lines()
            .rev()
            .find_map(|l| l.trim_start().strip_prefix(name))
            .map(str::trim)
    };
    let tweet = line("Tweet:").unwrap_or(user_message);
    let convention: crate::llm::mllm::BoxConvention = match line("Box format:") {
        Some(name) => name.parse()?,
        None => crate::llm::mllm::BoxConvention::Pixel,
    };
    let image = decode_data_url(image_url)?;
    let (w, h) = image.dimensions();
    let regions = bright_regions(&image);
    let mut entities = Vec::new();
    let tokens: Vec<&str> = tweet.split_whitespace().collect();
    let mut i = 0;
    while i < tokens.len() {
        let capitalised = |t: &str| t.chars().next().is_some_and(char::is_uppercase);
        if !capitalised(tokens[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < tokens.len() && capitalised(tokens[i]) {
            i += 1;
        }
        let run = &tokens[start..i];
        let entity_type = match run {
            [one] if one.chars().count() >= 2 && one.chars().all(|c| !c.is_lowercase()) => "ORG",
            [_] => "LOC",
            _ => "PER",
        };
        let bbox = regions.get(entities.len()).map(|&[x1, y1, x2, y2]| {
            let (x1, y1, x2, y2) = (f64::from(x1), f64::from(y1), f64::from(x2), f64::from(y2));
            let (wf, hf) = (f64::from(w), f64::from(h));
            let round4 = |v: f64| (v * 10_000.0).round() / 10_000.0;
            match convention {
                crate::llm::mllm::BoxConvention::Pixel => vec![x1, y1, x2, y2],
                crate::llm::mllm::BoxConvention::Normalized => {
                    vec![
                        round4(x1 / wf),
                        round4(y1 / hf),
                        round4(x2 / wf),
                        round4(y2 / hf),
                    ]
                }
                crate::llm::mllm::BoxConvention::Grid1000 => vec![
                    (x1 * 1000.0 / wf).round(),
                    (y1 * 1000.0 / hf).round(),
                    (x2 * 1000.0 / wf).round(),
                    (y2 * 1000.0 / hf).round(),
                ],
            }
        });
        entities.push(serde_json::json!({
            "entity": run.join(" "),
            "type": entity_type,
            "box": bbox,
        }));
    }
    let list = serde_json::Value::Array(entities).to_string();
    Ok(format!(
        "```json\n{list}\n```\nThese are the entities the riveg-bench mock found."
    ))
}

/// Decodes a `data:image/...;base64,...` URL.
fn decode_data_url(url: &str) -> Result<image::GrayImage, String> {
    use base64::Engine as _;
    let Some(rest) = url.strip_prefix("data:") else {
        return Err(format!(
            "the mock reads only data: URLs of images, not {:?}",
            url.chars().take(40).collect::<String>()
        ));
    };
    let Some((_, payload)) = rest.split_once(";base64,") else {
        return Err(
            "the image data URL is not base64 (expected data:image/...;base64,...)".to_string(),
        );
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(payload.trim())
        .map_err(|e| format!("the image data URL is not valid base64: {e}"))?;
    let image = image::load_from_memory(&bytes)
        .map_err(|e| format!("the image in the data URL cannot be decoded: {e}"))?;
    Ok(image.to_luma8())
}

/// Boxes `[x1, y1, x2, y2]` (pixels, end exclusive) of the 4-connected regions of pixels with
/// luma ≥ [`BRIGHT_LUMA`], largest first (ties: top to bottom, then left to right). Regions
/// smaller than 0.1% of the image (at least 4 pixels) are noise and left out.
pub fn bright_regions(image: &image::GrayImage) -> Vec<[u32; 4]> {
    let (w, h) = image.dimensions();
    let (wu, hu) = (w as usize, h as usize);
    let min_area = ((wu * hu) / 1000).max(4);
    let mut seen = vec![false; wu * hu];
    let mut regions: Vec<(usize, [u32; 4])> = Vec::new();
    let mut stack = Vec::new();
    for start in 0..wu * hu {
        if seen[start] || image.as_raw()[start] < BRIGHT_LUMA {
            continue;
        }
        seen[start] = true;
        stack.push(start);
        let (mut x1, mut y1, mut x2, mut y2) = (wu, hu, 0, 0);
        let mut area = 0;
        while let Some(p) = stack.pop() {
            let (x, y) = (p % wu, p / wu);
            area += 1;
            x1 = x1.min(x);
            y1 = y1.min(y);
            x2 = x2.max(x + 1);
            y2 = y2.max(y + 1);
            let mut visit = |q: usize| {
                if !seen[q] && image.as_raw()[q] >= BRIGHT_LUMA {
                    seen[q] = true;
                    stack.push(q);
                }
            };
            if x > 0 {
                visit(p - 1);
            }
            if x + 1 < wu {
                visit(p + 1);
            }
            if y > 0 {
                visit(p - wu);
            }
            if y + 1 < hu {
                visit(p + wu);
            }
        }
        if area >= min_area {
            // Coordinates fit in u32: they are bounded by the image's u32 size.
            regions.push((area, [x1 as u32, y1 as u32, x2 as u32, y2 as u32]));
        }
    }
    regions.sort_by(|a, b| {
        b.0.cmp(&a.0)
            .then(a.1[1].cmp(&b.1[1]))
            .then(a.1[0].cmp(&b.1[0]))
    });
    regions.into_iter().map(|(_, b)| b).collect()
}

fn error_json(message: &str) -> String {
    serde_json::json!({"error": {"message": message, "type": "mock_error"}}).to_string()
}

fn write_response(stream: &mut TcpStream, reply: &Reply, close: bool) -> std::io::Result<()> {
    let Reply {
        status,
        body,
        content_type,
        retry_after,
    } = reply;
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        411 => "Length Required",
        413 => "Payload Too Large",
        429 => "Too Many Requests",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Entity",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Mock Status",
    };
    let mut head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(value) = retry_after {
        head.push_str(&format!("Retry-After: {value}\r\n"));
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
        assert_eq!("detail:422".parse(), Ok(Behaviour::Detail(422)));
        assert_eq!("echo-auth".parse(), Ok(Behaviour::EchoAuthorization));
        assert_eq!(
            "echo-auth-error:401".parse(),
            Ok(Behaviour::EchoAuthorizationError(401))
        );
        assert_eq!("no-vision".parse(), Ok(Behaviour::NoVision));
        assert_eq!(
            "content:[{\"a\": 1}]".parse(),
            Ok(Behaviour::Content("[{\"a\": 1}]".to_string()))
        );
        assert!("fail:99:1".parse::<Behaviour>().is_err());
        assert!("sometimes".parse::<Behaviour>().is_err());
    }

    #[test]
    fn bright_regions_are_found_largest_first() {
        let mut image = image::GrayImage::new(100, 80);
        for (x, y) in (10..20).flat_map(|x| (5..15).map(move |y| (x, y))) {
            image.put_pixel(x, y, image::Luma([255]));
        }
        for (x, y) in (50..90).flat_map(|x| (40..70).map(move |y| (x, y))) {
            image.put_pixel(x, y, image::Luma([230]));
        }
        // A speck below the noise floor, and a grey area below the threshold.
        image.put_pixel(0, 0, image::Luma([255]));
        for (x, y) in (30..40).flat_map(|x| (30..40).map(move |y| (x, y))) {
            image.put_pixel(x, y, image::Luma([BRIGHT_LUMA - 1]));
        }
        assert_eq!(
            bright_regions(&image),
            vec![[50, 40, 90, 70], [10, 5, 20, 15]]
        );
    }

    #[test]
    fn mllm_answer_follows_the_declared_convention() {
        use base64::Engine as _;
        let mut image = image::RgbImage::new(200, 100);
        for (x, y) in (20..60).flat_map(|x| (10..50).map(move |y| (x, y))) {
            image.put_pixel(x, y, image::Rgb([255, 255, 255]));
        }
        let mut png = Vec::new();
        image
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        let url = format!(
            "data:image/png;base64,{}",
            base64::engine::general_purpose::STANDARD.encode(&png)
        );
        let list = |reply: String| -> serde_json::Value {
            let inner = reply
                .strip_prefix("```json\n")
                .and_then(|r| r.split_once("\n```"))
                .unwrap()
                .0
                .to_string();
            serde_json::from_str(&inner).unwrap()
        };
        let prompt =
            "Rules...\nBox format: grid1000\nTweet: UN envoy Angelina Jolie visits Paris today";
        assert_eq!(
            list(mllm_text(prompt, &url).unwrap()),
            serde_json::json!([
                {"entity": "UN", "type": "ORG", "box": [100.0, 100.0, 300.0, 500.0]},
                {"entity": "Angelina Jolie", "type": "PER", "box": null},
                {"entity": "Paris", "type": "LOC", "box": null},
            ])
        );
        let pixel = mllm_text("Tweet: Paris", &url).unwrap();
        assert_eq!(
            list(pixel),
            serde_json::json!([{"entity": "Paris", "type": "LOC", "box": [20.0, 10.0, 60.0, 50.0]}])
        );
        assert!(mllm_text("Tweet: x", "http://example.org/a.jpg").is_err());
        assert!(mllm_text("Tweet: x", "data:image/png;base64,!!!").is_err());
        assert!(mllm_text("Box format: polar\nTweet: x", &url).is_err());
    }

    #[test]
    fn refuses_non_loopback_addresses() {
        let err = MockServer::start_on("0.0.0.0:0".parse().unwrap(), Behaviour::Echo).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
    }
}
