//! Integration tests: the LLM client and reformulator against the mock server on 127.0.0.1, and
//! the mock itself as an OpenAI-compatible server (list content, `n`, streaming, models).
//! Every test has its own server (port 0) and cache directory; delays and timeouts are kept to a
//! few hundred milliseconds and retries to a handful (except the HTTP-date `Retry-After` test,
//! which waits 1-2 s: HTTP dates have whole seconds).

use std::time::{Duration, Instant};

use riveg_bench::data::model::{Entity, Tweet};
use riveg_bench::llm::{
    Behaviour, ChatMessage, Item, LlmClient, LlmConfig, LlmError, LlmReformulator, MockServer,
    PromptTemplate, ResponseCache,
};
use riveg_bench::pipeline::stages::{Reformulator, StageKind};

fn config(server: &MockServer) -> LlmConfig {
    LlmConfig {
        timeout_ms: 5_000,
        max_retries: 0,
        backoff_base_ms: 1,
        backoff_max_ms: 20,
        ..LlmConfig::for_base_url(server.base_url())
    }
}

fn tweet() -> (Tweet, Vec<Entity>) {
    let tokens = "RT Angelina Jolie slams Donald Trump at the UN in New York"
        .split(' ')
        .map(str::to_string)
        .collect();
    let entities = vec![
        Entity::new("Angelina Jolie", "PER"),
        Entity::new("Donald Trump", "PER"),
        Entity::new("UN", "ORG"),
        Entity::new("New York", "LOC"),
    ];
    let tweet = Tweet {
        id: "O_2371".to_string(),
        tokens: Some(tokens),
        entities: entities.clone(),
        ..Tweet::default()
    };
    (tweet, entities)
}

fn expected(entities: &[Entity]) -> Vec<String> {
    entities
        .iter()
        .map(|e| {
            format!(
                "{}({})-A mock description of {}.",
                e.text, e.entity_type, e.text
            )
        })
        .collect()
}

fn reformulator(config: LlmConfig, cache_dir: Option<&std::path::Path>) -> LlmReformulator {
    LlmReformulator::new(config, PromptTemplate::default(), cache_dir).unwrap()
}

/// Runs one tweet and returns the error (the test expects one).
fn failing_run(config: LlmConfig) -> LlmError {
    let (tweet, entities) = tweet();
    let reformulator = reformulator(config, None);
    reformulator
        .reformulate_entities(&tweet, &entities[..1])
        .unwrap_err()
}

#[test]
fn llm_echo_success_in_entity_order() {
    let server = MockServer::start(Behaviour::Echo).unwrap();
    let (tweet, entities) = tweet();
    let mut r = reformulator(config(&server), None);
    assert_eq!(r.kind(), StageKind::Llm);
    let got = r.reformulate(&tweet, &entities).unwrap();
    assert_eq!(got, expected(&entities));
    assert_eq!(server.requests(), 4);
    let stats = r.stats();
    assert_eq!(
        (stats.requests_sent, stats.replies_ok, stats.retries),
        (4, 4, 0)
    );
    assert_eq!(server.last_authorization(), None);
    assert!(r.reformulate(&tweet, &[]).unwrap().is_empty());
}

#[test]
fn llm_cache_hit_sends_no_request() {
    let server = MockServer::start(Behaviour::Echo).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (tweet, entities) = tweet();
    let first = reformulator(config(&server), Some(dir.path()));
    let cold = first.reformulate_entities(&tweet, &entities).unwrap();
    assert_eq!(first.stats().cache_misses, 4);
    assert_eq!(server.requests(), 4);

    // A failing server proves that nothing is asked the second time.
    server.set_behaviour(Behaviour::AlwaysFail(500));
    let second = reformulator(config(&server), Some(dir.path()));
    let warm = second.reformulate_entities(&tweet, &entities).unwrap();
    assert_eq!(warm, cold);
    assert_eq!(server.requests(), 4, "a warm cache sends 0 requests");
    let stats = second.stats();
    assert_eq!((stats.cache_hits, stats.requests_sent), (4, 0));

    // Another temperature is another key.
    let hotter = LlmConfig {
        temperature: Some(0.7),
        ..config(&server)
    };
    assert!(reformulator(hotter, Some(dir.path()))
        .reformulate_entities(&tweet, &entities[..1])
        .is_err());
}

#[test]
fn llm_corrupt_cache_file_is_a_miss_and_is_rewritten() {
    let server = MockServer::start(Behaviour::Echo).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (tweet, entities) = tweet();
    let r = reformulator(config(&server), Some(dir.path()));
    r.reformulate_entities(&tweet, &entities[..1]).unwrap();
    let cache = ResponseCache::open(dir.path()).unwrap();
    let files: Vec<_> = walk(dir.path());
    assert_eq!(files.len(), 1, "{files:?}");
    std::fs::write(&files[0], b"{\"key\": trunc").unwrap();

    let again = reformulator(config(&server), Some(cache.dir()));
    let got = again.reformulate_entities(&tweet, &entities[..1]).unwrap();
    assert_eq!(got, expected(&entities[..1]));
    assert_eq!(server.requests(), 2);
    assert!(
        serde_json::from_slice::<serde_json::Value>(&std::fs::read(&files[0]).unwrap()).is_ok()
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn llm_duplicate_entities_share_one_request() {
    let server = MockServer::start(Behaviour::Echo).unwrap();
    let (tweet, _) = tweet();
    let entities = vec![
        Entity::new("UN", "ORG"),
        Entity::new("UN", "ORG"),
        Entity::new("New York", "LOC"),
    ];
    let r = reformulator(config(&server), None);
    let got = r.reformulate_entities(&tweet, &entities).unwrap();
    assert_eq!(got, expected(&entities));
    assert_eq!(server.requests(), 2);
}

#[test]
fn llm_429_then_success_counts_retries() {
    let server = MockServer::start(Behaviour::Fail(429, 2)).unwrap();
    // Retry-After is honoured but capped at backoff_max_ms (20 ms here), so this stays fast.
    server.set_retry_after_s(Some(3600));
    let (tweet, entities) = tweet();
    let r = reformulator(
        LlmConfig {
            max_retries: 3,
            max_concurrency: 1,
            ..config(&server)
        },
        None,
    );
    let started = Instant::now();
    let got = r.reformulate_entities(&tweet, &entities[..1]).unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(got, expected(&entities[..1]));
    assert_eq!(server.requests(), 3);
    let stats = r.stats();
    assert_eq!(
        (stats.retries, stats.requests_sent, stats.replies_ok),
        (2, 3, 1)
    );
}

#[test]
fn llm_retry_after_http_date_is_honoured() {
    let server = MockServer::start(Behaviour::Fail(503, 1)).unwrap();
    // "now + 2 s" as an HTTP date (whole seconds): the client waits between 1 and 2 s, where its
    // own backoff would be 1 ms.
    server.set_retry_after_s(Some(2));
    server.set_retry_after_http_date(true);
    let (tweet, entities) = tweet();
    let r = reformulator(
        LlmConfig {
            max_retries: 1,
            backoff_base_ms: 1,
            backoff_max_ms: 5_000,
            ..config(&server)
        },
        None,
    );
    let started = Instant::now();
    let got = r.reformulate_entities(&tweet, &entities[..1]).unwrap();
    assert_eq!(got, expected(&entities[..1]));
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "Retry-After date ignored: retried after {:?}",
        started.elapsed()
    );
    assert_eq!((r.stats().retries, server.requests()), (1, 2));
}

#[test]
fn llm_500_until_retries_run_out() {
    let server = MockServer::start(Behaviour::AlwaysFail(500)).unwrap();
    let err = failing_run(LlmConfig {
        max_retries: 2,
        ..config(&server)
    });
    assert!(
        matches!(
            err,
            LlmError::RetriesExhausted {
                attempts: 3,
                last_status: 500,
                ..
            }
        ),
        "{err:?}"
    );
    let message = err.to_string();
    for needle in [
        "tweet O_2371",
        "\"Angelina Jolie\"",
        "3 attempt",
        "HTTP 500",
        "scripted mock failure",
        "hint:",
    ] {
        assert!(message.contains(needle), "{needle:?} missing in {message}");
    }
    assert_eq!(server.requests(), 3);
}

#[test]
fn llm_other_4xx_is_not_retried_and_401_names_the_key_variable() {
    let server = MockServer::start(Behaviour::AlwaysFail(401)).unwrap();
    let var = format!("RIVEG_TEST_LLM_KEY_401_{}", std::process::id());
    std::env::set_var(&var, "sk-test-401");
    let err = failing_run(LlmConfig {
        max_retries: 3,
        api_key_env: Some(var.clone()),
        ..config(&server)
    });
    assert!(matches!(err, LlmError::Http { status: 401, .. }), "{err:?}");
    assert!(err.to_string().contains(&var), "{err}");
    assert!(!err.to_string().contains("sk-test-401"));
    assert_eq!(server.requests(), 1);

    let server = MockServer::start(Behaviour::AlwaysFail(404)).unwrap();
    let err = failing_run(config(&server));
    assert!(matches!(err, LlmError::Http { status: 404, .. }), "{err:?}");
    assert!(err.to_string().contains("base_url"), "{err}");
}

#[test]
fn llm_timeout_is_reported() {
    let server = MockServer::start(Behaviour::Delay(2_000)).unwrap();
    let started = Instant::now();
    let err = failing_run(LlmConfig {
        timeout_ms: 200,
        ..config(&server)
    });
    assert!(started.elapsed() < Duration::from_millis(1_500));
    assert!(
        matches!(
            err,
            LlmError::Timeout {
                timeout_ms: 200,
                attempts: 1,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("200 ms"), "{err}");
    assert!(err.to_string().contains("O_2371"), "{err}");
}

#[test]
fn llm_malformed_json_is_reported_without_retry() {
    let server = MockServer::start(Behaviour::Malformed).unwrap();
    let err = failing_run(LlmConfig {
        max_retries: 2,
        ..config(&server)
    });
    assert!(matches!(err, LlmError::MalformedReply { .. }), "{err:?}");
    assert!(err.to_string().contains("invalid JSON"), "{err}");
    assert_eq!(server.requests(), 1);
}

#[test]
fn llm_empty_replies_are_errors() {
    for (behaviour, why) in [
        (Behaviour::Empty, "no choices"),
        (Behaviour::EmptyContent, "content is empty"),
    ] {
        let server = MockServer::start(behaviour).unwrap();
        let err = failing_run(config(&server));
        assert!(matches!(err, LlmError::EmptyReply { .. }), "{err:?}");
        assert!(err.to_string().contains(why), "{err}");
    }
}

#[test]
fn llm_unreachable_endpoint_has_a_hint() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let err = failing_run(LlmConfig {
        max_retries: 1,
        backoff_base_ms: 1,
        ..LlmConfig::for_base_url(format!("http://127.0.0.1:{port}/v1"))
    });
    assert!(
        matches!(err, LlmError::Unreachable { attempts: 2, .. }),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(message.contains("riveg-bench mock-llm"), "{message}");
    assert!(message.contains(&port.to_string()), "{message}");
}

#[test]
fn llm_api_key_is_sent_as_bearer_and_never_shown() {
    let server = MockServer::start(Behaviour::Echo).unwrap();
    let var = format!("RIVEG_TEST_LLM_KEY_{}", std::process::id());
    let secret = "sk-riveg-test-secret-42";
    std::env::set_var(&var, secret);
    let config = LlmConfig {
        api_key_env: Some(var.clone()),
        ..config(&server)
    };
    let client = LlmClient::new(config.clone()).unwrap();
    let reply = client
        .chat(
            &[ChatMessage::user("Entity: Paris\nType: LOC")],
            &Item::none(),
        )
        .unwrap();
    assert_eq!(reply, "Paris(LOC)-A mock description of Paris.");
    assert_eq!(
        server.last_authorization().as_deref(),
        Some(format!("Bearer {secret}").as_str())
    );
    let r = reformulator(config.clone(), None);
    for shown in [
        format!("{config:?}"),
        format!("{client:?}"),
        format!("{r:?}"),
    ] {
        assert!(!shown.contains(secret), "key leaked in {shown}");
    }
    assert!(format!("{client:?}").contains("redacted"));

    let missing = LlmConfig {
        api_key_env: Some(format!("{var}_UNSET")),
        ..LlmConfig::for_base_url(server.base_url())
    };
    let err = LlmClient::new(missing).unwrap_err();
    assert!(matches!(err, LlmError::Config { .. }), "{err:?}");
    assert!(err.to_string().contains(&format!("{var}_UNSET")), "{err}");
}

#[test]
fn llm_requests_run_concurrently_up_to_the_limit() {
    let server = MockServer::start(Behaviour::Delay(200)).unwrap();
    let (tweet, _) = tweet();
    let entities: Vec<Entity> = (0..8)
        .map(|i| Entity::new(format!("Entity {i}"), "OTHER"))
        .collect();
    let r = reformulator(
        LlmConfig {
            max_concurrency: 8,
            ..config(&server)
        },
        None,
    );
    let started = Instant::now();
    let got = r.reformulate_entities(&tweet, &entities).unwrap();
    // Sequential would take 1.6 s.
    assert!(
        started.elapsed() < Duration::from_millis(1_200),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(got, expected(&entities));
}

#[test]
fn llm_stage_error_names_tweet_and_entity() {
    let server = MockServer::start(Behaviour::AlwaysFail(400)).unwrap();
    let (tweet, entities) = tweet();
    let mut r = reformulator(config(&server), None);
    let err = r.reformulate(&tweet, &entities).unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("tweet O_2371, entity \"Angelina Jolie\""),
        "{message}"
    );
}

/// What curl (or any HTTP/1.1 client) sees: `Connection: close`, the models route, a 404.
#[test]
fn llm_mock_speaks_plain_http() {
    use std::io::{Read, Write};
    let server = MockServer::start(Behaviour::Echo).unwrap();
    let exchange = |request: &str| {
        let mut stream = std::net::TcpStream::connect(server.addr()).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut reply = String::new();
        stream.read_to_string(&mut reply).unwrap();
        reply
    };
    let body = r#"{"model":"m","messages":[{"role":"user","content":"Entity: UN\nType: ORG"}]}"#;
    let reply = exchange(&format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ));
    assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply}");
    assert!(
        reply.contains("UN(ORG)-A mock description of UN."),
        "{reply}"
    );
    let models = exchange("GET /v1/models HTTP/1.1\r\nConnection: close\r\n\r\n");
    assert!(models.contains("\"mock\""), "{models}");
    let missing = exchange("GET /nope HTTP/1.1\r\nConnection: close\r\n\r\n");
    assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
    assert_eq!(server.requests(), 1);
    server.shutdown();
}

#[test]
fn llm_sampling_settings_are_sent_and_keyed() {
    let server = MockServer::start(Behaviour::Echo).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (tweet, entities) = tweet();
    let mut reasoning: LlmConfig = toml::from_str(
        "temperature = \"omit\"\nmax_tokens = \"omit\"\nmax_completion_tokens = 512\n\
         seed = 7\ntop_p = 0.9\nextra = { n = 2, chat_template_kwargs = { enable_thinking = false } }\n",
    )
    .unwrap();
    reasoning.base_url = server.base_url();
    reasoning.max_retries = 0;
    let r = reformulator(reasoning.clone(), Some(dir.path()));
    let got = r.reformulate_entities(&tweet, &entities[..1]).unwrap();
    // n = 2: two choices come back; the first is used.
    assert_eq!(got, expected(&entities[..1]));
    let sent = server.last_request().unwrap();
    assert_eq!(sent["max_completion_tokens"], 512);
    assert_eq!(sent["seed"], 7);
    assert_eq!(sent["top_p"], 0.9);
    assert_eq!(sent["n"], 2);
    assert_eq!(sent["stream"], false);
    assert_eq!(
        sent["chat_template_kwargs"],
        serde_json::json!({"enable_thinking": false})
    );
    for omitted in ["temperature", "max_tokens"] {
        assert!(sent.get(omitted).is_none(), "{omitted} sent: {sent}");
    }
    assert_eq!(server.requests(), 1);

    // Same settings: a cache hit. Any other seed or extra field: a new request.
    reformulator(reasoning.clone(), Some(dir.path()))
        .reformulate_entities(&tweet, &entities[..1])
        .unwrap();
    assert_eq!(server.requests(), 1);
    let other_seed = LlmConfig {
        seed: Some(8),
        ..reasoning.clone()
    };
    reformulator(other_seed, Some(dir.path()))
        .reformulate_entities(&tweet, &entities[..1])
        .unwrap();
    assert_eq!(server.requests(), 2);
    let mut other_extra = reasoning;
    other_extra
        .extra
        .insert("reasoning_effort".to_string(), "low".into());
    reformulator(other_extra, Some(dir.path()))
        .reformulate_entities(&tweet, &entities[..1])
        .unwrap();
    assert_eq!(server.requests(), 3);
    assert_eq!(server.last_request().unwrap()["reasoning_effort"], "low");
}

fn files_text(dir: &std::path::Path) -> String {
    walk(dir)
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn llm_echoed_api_key_is_redacted_everywhere() {
    let server = MockServer::start(Behaviour::EchoAuthorization).unwrap();
    let var = format!("RIVEG_TEST_LLM_KEY_ECHO_{}", std::process::id());
    let secret = "sk-riveg-echoed-secret-77";
    std::env::set_var(&var, secret);
    let config = LlmConfig {
        api_key_env: Some(var.clone()),
        ..config(&server)
    };
    let dir = tempfile::tempdir().unwrap();
    let (tweet, entities) = tweet();
    let r = reformulator(config.clone(), Some(dir.path()));
    let got = r.reformulate_entities(&tweet, &entities[..1]).unwrap();
    // The server really did echo the header ...
    assert_eq!(
        server.last_authorization().as_deref(),
        Some(format!("Bearer {secret}").as_str())
    );
    // ... but neither the prediction nor the cache holds the key.
    assert_eq!(
        got,
        vec!["Angelina Jolie(PER)-A mock description of Angelina Jolie. (sent with Authorization: Bearer <redacted>)".to_string()]
    );
    let cached = files_text(dir.path());
    assert!(cached.contains("Bearer <redacted>"), "{cached}");
    assert!(!cached.contains(secret), "{cached}");

    // Error bodies that echo it: not retried (400) and retried (500), the message is redacted.
    for (status, retries) in [(400, 0), (500, 1)] {
        server.set_behaviour(Behaviour::EchoAuthorizationError(status));
        let err = failing_run(LlmConfig {
            max_retries: retries,
            ..config.clone()
        });
        let message = err.to_string();
        assert!(
            message.contains("invalid credentials in header Authorization: Bearer <redacted>"),
            "{message}"
        );
        assert!(!message.contains(secret), "{message}");
        assert!(!format!("{err:?}").contains(secret));
    }
}

#[test]
fn llm_fastapi_detail_bodies_show_their_message() {
    let server = MockServer::start(Behaviour::Detail(404)).unwrap();
    let err = failing_run(config(&server));
    let message = err.to_string();
    assert!(
        message.contains("HTTP 404: scripted mock failure (FastAPI style)\n"),
        "{message}"
    );
    assert!(!message.contains("{\"detail\""), "{message}");
    server.set_behaviour(Behaviour::Detail(422));
    let message = failing_run(config(&server)).to_string();
    assert!(
        message.contains("HTTP 422: body.messages: scripted mock validation failure"),
        "{message}"
    );
}

/// What an OpenAI SDK sends that our client does not: list-form content, `n` > 1, `stream`,
/// `GET /v1/models/{id}`.
#[test]
fn llm_mock_answers_any_openai_client() {
    let server = MockServer::start(Behaviour::Echo).unwrap();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let post = |body: serde_json::Value| {
        let mut response = agent
            .post(format!("{}/chat/completions", server.base_url()))
            .header("Content-Type", "application/json")
            .send(body.to_string())
            .unwrap();
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let text = response.body_mut().read_to_string().unwrap();
        (status, content_type, text)
    };
    let parts = serde_json::json!([
        {"type": "text", "text": "Entity: UN"},
        {"type": "text", "text": "Type: ORG"},
    ]);
    let (status, _, text) = post(serde_json::json!({
        "model": "gpt-x", "n": 3,
        "messages": [{"role": "user", "content": parts}],
    }));
    assert_eq!(status, 200, "{text}");
    let reply: serde_json::Value = serde_json::from_str(&text).unwrap();
    let choices = reply["choices"].as_array().unwrap();
    assert_eq!(choices.len(), 3);
    for (i, choice) in choices.iter().enumerate() {
        assert_eq!(choice["index"], i);
        assert_eq!(
            choice["message"]["content"],
            "UN(ORG)-A mock description of UN."
        );
    }
    assert_eq!(reply["model"], "gpt-x");

    let (status, content_type, text) = post(serde_json::json!({
        "model": "gpt-x", "stream": true, "n": 2,
        "messages": [{"role": "user", "content": "Entity: UN\nType: ORG"}],
    }));
    assert_eq!((status, content_type.as_str()), (200, "text/event-stream"));
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    let mut streamed = [String::new(), String::new()];
    let mut finished = 0;
    for event in text.split("\n\n").filter(|e| !e.is_empty()) {
        let data = event.strip_prefix("data: ").unwrap();
        if data == "[DONE]" {
            continue;
        }
        let chunk: serde_json::Value = serde_json::from_str(data).unwrap();
        assert_eq!(chunk["object"], "chat.completion.chunk");
        let choice = &chunk["choices"][0];
        let index = choice["index"].as_u64().unwrap() as usize;
        if let Some(piece) = choice["delta"]["content"].as_str() {
            streamed[index].push_str(piece);
        }
        if choice["finish_reason"] == "stop" {
            finished += 1;
        }
    }
    assert_eq!(finished, 2);
    assert_eq!(streamed[0], "UN(ORG)-A mock description of UN.");
    assert_eq!(streamed[1], streamed[0]);

    let (status, _, text) = post(serde_json::json!({
        "model": "m", "n": 0, "messages": [{"role": "user", "content": "x"}],
    }));
    assert_eq!(status, 400);
    assert!(text.contains("n must be"), "{text}");
    let (status, _, text) = post(serde_json::json!({
        "model": "m", "messages": [{"role": "system", "content": "x"}],
    }));
    assert_eq!(status, 400);
    assert!(text.contains("no message with role"), "{text}");

    let mut response = agent
        .get(format!("{}/models/gpt-x", server.base_url()))
        .call()
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let model: serde_json::Value =
        serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap();
    assert_eq!(
        (model["id"].as_str(), model["object"].as_str()),
        (Some("gpt-x"), Some("model"))
    );
}
