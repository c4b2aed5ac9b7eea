//! README.md's curl tour, replayed against the real binary so the README and
//! the server cannot drift.
//!
//! The tour is the first ```` ```sh ```` block after the `## A tour with
//! curl` heading. Each `curl` command (with `\` continuations) is parsed like
//! a shell would (quotes, `$VAR` expansion) into method, path, headers and
//! body, and sent with a Rust HTTP client to a server on a free port. The
//! annotations the README carries for readers are checked:
//!
//! - `# -> 201` after a command: the status it must answer; optionally
//!   followed by JSON that the answer must contain (every field shown must
//!   be there with that value; arrays element by element);
//! - `KEY=ak_acme_...  # owner_key.key of the answer above`: a variable
//!   taken from the previous answer (dotted path, numbers index arrays);
//! - `ADMIN=...`: the operator key the binary printed at first start.
//!
//! A command without a status annotation fails the test: every request of
//! the tour states what it answers.

use std::collections::HashMap;

use serde_json::Value;

use crate::cli_binary::{read_admin_key, start, wait_healthy};

/// Read at run time, so a README edit needs no rebuild to be checked.
const README_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md");
const TOUR_HEADING: &str = "## A tour with curl";
const TOUR_HOST: &str = "localhost:7070";

/// One step of the tour.
#[derive(Debug)]
enum Step {
    /// `NAME=... # path of the answer above`, or a variable the harness
    /// provides (`ADMIN`).
    Assign {
        name: String,
        from_path: Option<String>,
    },
    /// A curl command and what it must answer.
    Request {
        line: usize,
        words: Vec<String>,
        expected_status: Option<u16>,
        expected_body: Option<Value>,
    },
}

/// The lines of the tour's code block, with their README line numbers.
fn tour_block(readme: &str) -> Vec<(usize, &str)> {
    let mut lines = readme.lines().enumerate();
    lines
        .by_ref()
        .find(|(_, line)| line.trim() == TOUR_HEADING)
        .expect("README has the tour heading");
    lines
        .by_ref()
        .find(|(_, line)| line.trim() == "```sh")
        .expect("the tour has a ```sh block");
    lines
        .take_while(|(_, line)| line.trim() != "```")
        .map(|(n, line)| (n + 1, line))
        .collect()
}

/// Splits a shell line into words: single quotes literal, double quotes and
/// bare words expand `$NAME`/`${NAME}` (left as `$NAME` markers here, filled
/// in at send time), `#` at a word start begins a comment.
fn shell_words(line: &str) -> (Vec<String>, Option<String>) {
    let mut words = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let Some(&first) = chars.peek() else {
            return (words, None);
        };
        if first == '#' {
            return (words, Some(chars.collect::<String>()));
        }
        let mut word = String::new();
        while let Some(&c) = chars.peek() {
            if c.is_whitespace() {
                break;
            }
            chars.next();
            match c {
                '\'' => {
                    for q in chars.by_ref() {
                        if q == '\'' {
                            break;
                        }
                        // Marks a literal `$` so expansion leaves it alone.
                        word.push(if q == '$' { '\u{0}' } else { q });
                    }
                }
                '"' => {
                    while let Some(q) = chars.next() {
                        match q {
                            '"' => break,
                            '\\' => word.extend(chars.next()),
                            _ => word.push(q),
                        }
                    }
                }
                '\\' => word.extend(chars.next()),
                _ => word.push(c),
            }
        }
        words.push(word);
    }
}

/// `$NAME` and `${NAME}` replaced from `vars`; a literal (single-quoted)
/// `$` restored.
fn expand(word: &str, vars: &HashMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = word;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        rest = &rest[at + 1..];
        let (name, after) = if let Some(braced) = rest.strip_prefix('{') {
            let end = braced.find('}').expect("closed ${...}");
            (&braced[..end], &braced[end + 1..])
        } else {
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            (&rest[..end], &rest[end..])
        };
        let value = vars
            .get(name)
            .unwrap_or_else(|| panic!("the tour uses ${name} before setting it"));
        out.push_str(value);
        rest = after;
    }
    out.push_str(rest);
    out.replace('\u{0}', "$")
}

fn parse_tour(readme: &str) -> Vec<Step> {
    let block = tour_block(readme);
    let mut steps = Vec::new();
    let mut index = 0;
    while index < block.len() {
        let (line_no, first) = block[index];
        // Join `\` continuations.
        let mut line = first.to_owned();
        while line.trim_end().ends_with('\\') {
            index += 1;
            let trimmed = line.trim_end();
            line = format!(
                "{} {}",
                &trimmed[..trimmed.len() - 1],
                block[index].1.trim()
            );
        }
        index += 1;
        let (words, comment) = shell_words(&line);
        match words.first().map(String::as_str) {
            None => {
                let comment = comment.unwrap_or_default();
                if let Some(expectation) = comment.trim_start_matches('#').trim().strip_prefix("->")
                {
                    let Some(Step::Request {
                        expected_status,
                        expected_body,
                        ..
                    }) = steps.last_mut()
                    else {
                        panic!("README line {line_no}: `# ->` follows no curl command");
                    };
                    let expectation = expectation.trim();
                    let (status, body) = expectation.split_once(' ').unwrap_or((expectation, ""));
                    *expected_status = Some(status.parse().unwrap_or_else(|_| {
                        panic!("README line {line_no}: bad status {status:?}")
                    }));
                    if !body.trim().is_empty() {
                        *expected_body = Some(serde_json::from_str(body).unwrap_or_else(|e| {
                            panic!("README line {line_no}: expected body is not JSON: {e}")
                        }));
                    }
                }
            }
            Some("curl") => steps.push(Step::Request {
                line: line_no,
                words,
                expected_status: None,
                expected_body: None,
            }),
            Some(word) if word.contains('=') && words.len() == 1 => {
                let name = word.split_once('=').expect("has =").0.to_owned();
                let from_path = comment.and_then(|c| {
                    c.trim_start_matches('#')
                        .trim()
                        .strip_suffix(" of the answer above")
                        .map(str::to_owned)
                });
                steps.push(Step::Assign { name, from_path });
            }
            Some(other) => panic!("README line {line_no}: the tour runs only curl, not {other:?}"),
        }
    }
    steps
}

/// The parts of a curl command the tour uses.
struct CurlRequest {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    body: Option<String>,
}

fn curl_request(words: &[String], vars: &HashMap<String, String>, base_url: &str) -> CurlRequest {
    let mut method = None;
    let mut url = None;
    let mut headers = Vec::new();
    let mut body = None;
    let mut args = words[1..].iter().map(|w| expand(w, vars));
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-s" | "-S" | "-sS" => {}
            "-X" => method = args.next(),
            "-H" => {
                let header = args.next().expect("-H takes a header");
                let (name, value) = header.split_once(':').expect("header has a colon");
                headers.push((name.trim().to_owned(), value.trim().to_owned()));
            }
            "-d" | "--data" => body = args.next(),
            flag if flag.starts_with('-') => panic!("unsupported curl flag {flag}"),
            target => {
                let path = target
                    .strip_prefix(TOUR_HOST)
                    .unwrap_or_else(|| panic!("tour URLs start with {TOUR_HOST}: {target}"));
                url = Some(format!("{base_url}{path}"));
            }
        }
    }
    let method = method.unwrap_or_else(|| if body.is_some() { "POST" } else { "GET" }.to_owned());
    CurlRequest {
        method,
        url: url.expect("curl names a URL"),
        headers,
        body,
    }
}

fn send(agent: &ureq::Agent, request: &CurlRequest) -> (u16, String) {
    let mut builder = ureq::http::Request::builder()
        .method(request.method.as_str())
        .uri(request.url.as_str());
    for (name, value) in &request.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    let http = builder
        .body(request.body.clone().unwrap_or_default())
        .expect("valid request");
    let mut response = agent.run(http).expect("the server answers");
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().expect("readable body");
    (status, text)
}

/// Whether `actual` has everything `expected` shows.
fn contains(actual: &Value, expected: &Value) -> bool {
    match (actual, expected) {
        (Value::Object(a), Value::Object(e)) => e
            .iter()
            .all(|(k, ev)| a.get(k).is_some_and(|av| contains(av, ev))),
        (Value::Array(a), Value::Array(e)) => {
            a.len() == e.len() && a.iter().zip(e).all(|(av, ev)| contains(av, ev))
        }
        _ => actual == expected,
    }
}

fn lookup<'v>(value: &'v Value, path: &str) -> Option<&'v Value> {
    path.split('.')
        .try_fold(value, |v, part| match part.parse::<usize>() {
            Ok(i) => v.get(i),
            Err(_) => v.get(part),
        })
}

#[test]
fn readme_curl_tour_runs_against_the_real_binary() {
    let readme = std::fs::read_to_string(README_PATH).expect("README.md readable");
    let steps = parse_tour(&readme);
    assert!(
        steps
            .iter()
            .filter(|s| matches!(s, Step::Request { .. }))
            .count()
            >= 10,
        "the tour has its requests"
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = start(&dir.path().join("data"));
    read_admin_key(&mut server);
    wait_healthy(&server.url);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut vars = HashMap::new();
    let mut last_answer: Option<(usize, Value)> = None;
    for step in &steps {
        match step {
            Step::Assign {
                name,
                from_path: None,
            } => {
                assert_eq!(name, "ADMIN", "only ADMIN comes from outside the tour");
                vars.insert(name.clone(), server.admin_key.clone().expect("admin key"));
            }
            Step::Assign {
                name,
                from_path: Some(path),
            } => {
                let (line, answer) = last_answer.as_ref().expect("an answer above");
                let value = lookup(answer, path).unwrap_or_else(|| {
                    panic!("{name}: no {path} in the answer of README line {line}: {answer}")
                });
                let text = match value {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                vars.insert(name.clone(), text);
            }
            Step::Request {
                line,
                words,
                expected_status,
                expected_body,
            } => {
                let expected_status = expected_status.unwrap_or_else(|| {
                    panic!("README line {line}: annotate the expected status (`# -> 200`)")
                });
                let request = curl_request(words, &vars, &server.url);
                let (status, text) = send(&agent, &request);
                assert_eq!(
                    status, expected_status,
                    "README line {line}: {} {} answered {status}: {text}",
                    request.method, request.url
                );
                let answer: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
                if let Some(expected) = expected_body {
                    assert!(
                        contains(&answer, expected),
                        "README line {line}: the answer {answer} does not contain {expected}"
                    );
                }
                last_answer = Some((*line, answer));
            }
        }
    }
}

#[test]
fn shell_words_follow_quoting_rules() {
    let (words, comment) =
        shell_words(r#"curl -H "Authorization: Bearer $KEY" -d '{"a":"$x"}' plain # note"#);
    assert_eq!(
        words,
        vec![
            "curl",
            "-H",
            "Authorization: Bearer $KEY",
            "-d",
            "{\"a\":\"\u{0}x\"}",
            "plain"
        ]
    );
    assert_eq!(comment.as_deref(), Some("# note"));
    let vars = HashMap::from([("KEY".to_owned(), "k1".to_owned())]);
    assert_eq!(expand(&words[2], &vars), "Authorization: Bearer k1");
    assert_eq!(expand(&words[4], &vars), "{\"a\":\"$x\"}");
}

#[test]
fn answers_are_checked_for_the_fields_the_readme_shows() {
    let answer = serde_json::json!({"documents": [{"_id": "o1", "total": 42}], "more": 1});
    assert!(contains(
        &answer,
        &serde_json::json!({"documents": [{"_id": "o1"}]})
    ));
    assert!(!contains(
        &answer,
        &serde_json::json!({"documents": [{"_id": "o2"}]})
    ));
    assert!(!contains(&answer, &serde_json::json!({"documents": []})));
    assert_eq!(lookup(&answer, "documents.0._id"), Some(&Value::from("o1")));
}
