//! Prometheus metrics in the text exposition format 0.0.4, written by hand.
//!
//! The server records two families itself: `aerolith_http_requests_total`
//! (counter by route template, method and status) and
//! `aerolith_http_request_duration_seconds` (histogram by route template and
//! method). Route labels are templates (`/v1/tenants/{id}`), never raw paths,
//! so ids cannot explode the number of series; unmatched requests share the
//! route label `unmatched`. Everything else (per-tenant usage, engine stats)
//! comes from [`MetricsSource`]s registered at start-up, which write their
//! families through a [`MetricsWriter`] when `/metrics` is scraped.
//! Durations are kept in whole microseconds; no floating point is summed.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};

/// Content type of the exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// Route label for requests that matched no route.
pub const UNMATCHED_ROUTE: &str = "unmatched";
/// Upper bounds of the latency histogram buckets, in microseconds, with their
/// `le` label text.
pub const DURATION_BUCKETS_US: [(u64, &str); 14] = [
    (500, "0.0005"),
    (1_000, "0.001"),
    (2_500, "0.0025"),
    (5_000, "0.005"),
    (10_000, "0.01"),
    (25_000, "0.025"),
    (50_000, "0.05"),
    (100_000, "0.1"),
    (250_000, "0.25"),
    (500_000, "0.5"),
    (1_000_000, "1"),
    (2_500_000, "2.5"),
    (5_000_000, "5"),
    (10_000_000, "10"),
];

/// A producer of extra metric families, asked for its current values at
/// every scrape (per-tenant usage counters, engine statistics).
pub trait MetricsSource: Send + Sync {
    /// Writes this source's families. Must be quick: it runs on the scrape.
    fn collect(&self, out: &mut MetricsWriter);
}

/// Label pairs of one sample.
pub type Labels<'a> = &'a [(&'a str, &'a str)];

/// Writes metric families in the text format, with `# HELP` and `# TYPE`
/// lines, escaped label values, and each family name at most once.
#[derive(Debug, Default)]
pub struct MetricsWriter {
    text: String,
    families: BTreeSet<String>,
}

impl MetricsWriter {
    /// An empty writer.
    pub fn new() -> MetricsWriter {
        MetricsWriter::default()
    }

    /// Writes a counter family. Returns `false` (and writes nothing) if the
    /// name is invalid or was already written.
    pub fn counter(&mut self, name: &str, help: &str, samples: &[(Labels<'_>, u64)]) -> bool {
        if !self.header(name, help, "counter") {
            return false;
        }
        for (labels, value) in samples {
            self.sample(name, labels, &value.to_string());
        }
        true
    }

    /// Writes a gauge family. Returns `false` (and writes nothing) if the
    /// name is invalid or was already written.
    pub fn gauge(&mut self, name: &str, help: &str, samples: &[(Labels<'_>, i64)]) -> bool {
        if !self.header(name, help, "gauge") {
            return false;
        }
        for (labels, value) in samples {
            self.sample(name, labels, &value.to_string());
        }
        true
    }

    /// The text written so far.
    pub fn finish(self) -> String {
        self.text
    }

    fn header(&mut self, name: &str, help: &str, kind: &str) -> bool {
        if !is_valid_metric_name(name) || !self.families.insert(name.to_owned()) {
            tracing::warn!(
                metric = name,
                "metric family skipped: invalid or duplicate name"
            );
            return false;
        }
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
        true
    }

    fn sample(&mut self, name: &str, labels: Labels<'_>, value: &str) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (key, val)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let _ = write!(self.text, "{key}=\"{}\"", escape_label_value(val));
            }
            self.text.push('}');
        }
        self.text.push(' ');
        self.text.push_str(value);
        self.text.push('\n');
    }
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`, the metric name grammar.
fn is_valid_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn escape_label_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

fn method_label(method: &str) -> &'static str {
    match method {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "OPTIONS" => "OPTIONS",
        "TRACE" => "TRACE",
        "CONNECT" => "CONNECT",
        _ => "other",
    }
}

#[derive(Debug, Default, Clone)]
struct Histogram {
    /// Count per bucket of `DURATION_BUCKETS_US` (not cumulative), plus +Inf.
    bucket_counts: [u64; DURATION_BUCKETS_US.len() + 1],
    sum_us: u64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, duration_us: u64) {
        let index = DURATION_BUCKETS_US
            .iter()
            .position(|(bound_us, _)| duration_us <= *bound_us)
            .unwrap_or(DURATION_BUCKETS_US.len());
        self.bucket_counts[index] += 1;
        self.sum_us = self.sum_us.saturating_add(duration_us);
        self.count += 1;
    }
}

#[derive(Debug, Default)]
struct HttpMetrics {
    /// By route template, so recording a request of a known route looks it
    /// up by `&str` and allocates nothing.
    routes: BTreeMap<String, RouteMetrics>,
}

/// The counters of one route template.
#[derive(Debug, Default)]
struct RouteMetrics {
    requests: BTreeMap<(&'static str, u16), u64>,
    durations: BTreeMap<&'static str, Histogram>,
}

/// The server's metrics registry.
#[derive(Default)]
pub struct Metrics {
    http: Mutex<HttpMetrics>,
    sources: RwLock<Vec<Arc<dyn MetricsSource>>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("sources", &self.sources.read().len())
            .finish_non_exhaustive()
    }
}

impl Metrics {
    /// An empty registry.
    pub fn new() -> Metrics {
        Metrics::default()
    }

    /// Adds a source of extra families, collected at every scrape.
    pub fn register_source(&self, source: Arc<dyn MetricsSource>) {
        self.sources.write().push(source);
    }

    /// Records one finished HTTP request. Methods outside the standard set
    /// are counted as `other`, so invented methods cannot add series.
    pub fn record_request(&self, route: &str, method: &str, status: u16, duration: Duration) {
        let method = method_label(method);
        let duration_us = u64::try_from(duration.as_micros()).unwrap_or(u64::MAX);
        let mut http = self.http.lock();
        let counters = match http.routes.get_mut(route) {
            Some(counters) => counters,
            None => http.routes.entry(route.to_owned()).or_default(),
        };
        *counters.requests.entry((method, status)).or_default() += 1;
        counters
            .durations
            .entry(method)
            .or_default()
            .observe(duration_us);
    }

    /// The full exposition text: the HTTP families, then every source's.
    pub fn render(&self) -> String {
        let mut out = MetricsWriter::new();
        self.render_http(&mut out);
        let sources = self.sources.read().clone();
        for source in sources {
            source.collect(&mut out);
        }
        out.finish()
    }

    fn render_http(&self, out: &mut MetricsWriter) {
        let mut requests: BTreeMap<(String, String, u16), u64> = BTreeMap::new();
        let mut durations: BTreeMap<(String, String), Histogram> = BTreeMap::new();
        {
            let http = self.http.lock();
            for (route, counters) in &http.routes {
                for (&(method, status), &n) in &counters.requests {
                    requests.insert((route.clone(), method.to_owned(), status), n);
                }
                for (&method, histogram) in &counters.durations {
                    durations.insert((route.clone(), method.to_owned()), histogram.clone());
                }
            }
        }
        let statuses: Vec<(String, String, String, u64)> = requests
            .into_iter()
            .map(|((route, method, status), n)| (route, method, status.to_string(), n))
            .collect();
        let samples: Vec<([(&str, &str); 3], u64)> = statuses
            .iter()
            .map(|(route, method, status, n)| {
                (
                    [
                        ("route", route.as_str()),
                        ("method", method.as_str()),
                        ("status", status.as_str()),
                    ],
                    *n,
                )
            })
            .collect();
        let sample_refs: Vec<(Labels<'_>, u64)> =
            samples.iter().map(|(l, n)| (&l[..], *n)).collect();
        out.counter(
            "aerolith_http_requests_total",
            "HTTP requests handled, by route template, method and status.",
            &sample_refs,
        );

        let name = "aerolith_http_request_duration_seconds";
        if !out.header(
            name,
            "Time from receiving a request to producing its response head, by route template and method.",
            "histogram",
        ) {
            return;
        }
        for ((route, method), histogram) in &durations {
            let mut cumulative = 0u64;
            let bucket_name = format!("{name}_bucket");
            for (i, count) in histogram.bucket_counts.iter().enumerate() {
                cumulative += count;
                let le = DURATION_BUCKETS_US.get(i).map_or("+Inf", |(_, le)| *le);
                out.sample(
                    &bucket_name,
                    &[("route", route), ("method", method), ("le", le)],
                    &cumulative.to_string(),
                );
            }
            let labels: [(&str, &str); 2] = [("route", route), ("method", method)];
            let sum = format!(
                "{}.{:06}",
                histogram.sum_us / 1_000_000,
                histogram.sum_us % 1_000_000
            );
            out.sample(&format!("{name}_sum"), &labels, &sum);
            out.sample(
                &format!("{name}_count"),
                &labels,
                &histogram.count.to_string(),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        let mut out = MetricsWriter::new();
        assert!(out.counter("x_total", "help", &[(&[("a", "q\"b\\c\nd")], 1)]));
        assert!(out.finish().contains(r#"x_total{a="q\"b\\c\nd"} 1"#));
    }

    #[test]
    fn duplicate_and_invalid_family_names_are_skipped() {
        let mut out = MetricsWriter::new();
        assert!(out.gauge("g", "h", &[(&[], -3)]));
        assert!(!out.gauge("g", "h", &[(&[], 4)]));
        assert!(!out.counter("1bad", "h", &[(&[], 1)]));
        assert_eq!(out.finish(), "# HELP g h\n# TYPE g gauge\ng -3\n");
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_sum_is_in_seconds() {
        let metrics = Metrics::new();
        metrics.record_request("/r", "GET", 200, Duration::from_micros(400));
        metrics.record_request("/r", "GET", 200, Duration::from_millis(3));
        metrics.record_request("/r", "GET", 500, Duration::from_secs(20));
        let text = metrics.render();
        let line = |needle: &str| {
            text.lines()
                .find(|l| l.starts_with(needle))
                .unwrap_or_else(|| panic!("no line {needle} in\n{text}"))
                .to_owned()
        };
        assert!(line(
            r#"aerolith_http_request_duration_seconds_bucket{route="/r",method="GET",le="0.0005"}"#
        )
        .ends_with(" 1"));
        assert!(line(
            r#"aerolith_http_request_duration_seconds_bucket{route="/r",method="GET",le="0.005"}"#
        )
        .ends_with(" 2"));
        assert!(line(
            r#"aerolith_http_request_duration_seconds_bucket{route="/r",method="GET",le="10"}"#
        )
        .ends_with(" 2"));
        assert!(line(
            r#"aerolith_http_request_duration_seconds_bucket{route="/r",method="GET",le="+Inf"}"#
        )
        .ends_with(" 3"));
        assert!(line("aerolith_http_request_duration_seconds_sum").ends_with(" 20.003400"));
        assert!(
            line(r#"aerolith_http_requests_total{route="/r",method="GET",status="500"}"#)
                .ends_with(" 1")
        );
    }

    #[test]
    fn nonstandard_methods_share_one_label() {
        let metrics = Metrics::new();
        metrics.record_request(UNMATCHED_ROUTE, "FOO", 404, Duration::ZERO);
        metrics.record_request(UNMATCHED_ROUTE, "BAR", 404, Duration::ZERO);
        let text = metrics.render();
        assert!(text.contains(
            "aerolith_http_requests_total{route=\"unmatched\",method=\"other\",status=\"404\"} 2\n"
        ));
        assert!(!text.contains("FOO"));
    }

    #[test]
    fn registered_sources_are_collected_at_render() {
        struct Engine;
        impl MetricsSource for Engine {
            fn collect(&self, out: &mut MetricsWriter) {
                out.gauge(
                    "aerolith_engine_live_bytes",
                    "Live bytes.",
                    &[(&[("db", "t1")], 42)],
                );
            }
        }
        let metrics = Metrics::new();
        metrics.register_source(Arc::new(Engine));
        assert!(metrics
            .render()
            .contains("aerolith_engine_live_bytes{db=\"t1\"} 42\n"));
    }
}
