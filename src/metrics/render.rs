//! Turns a [`Snapshot`] into the Prometheus exposition formats, with `prometheus-client`.
//!
//! Every scrape builds a fresh registry from the snapshot: the figures belong to the daemon's
//! core, so there are no long-lived metric handles to keep in step with it. OpenMetrics text is
//! served to scrapers that ask for it (Prometheus does); the classic text format 0.0.4 to
//! everyone else (curl, a browser). Names carry their unit (`_seconds`) and counters end in
//! `_total`, as both formats want. This file never touches a socket.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::{prometheus_text, text};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family as MetricFamily;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

use super::snapshot::{Family, OffenceBucket, Snapshot};

/// The label set of one series.
type Labels = Vec<(&'static str, String)>;

/// Which exposition format to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0 text (`# EOF` at the end, `# UNIT` lines, `info` metrics).
    OpenMetrics,
    /// The Prometheus text format 0.0.4.
    Text,
}

impl Format {
    /// The `Content-Type` of a response in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::Text => prometheus_text::CONTENT_TYPE,
        }
    }

    /// The format an `Accept` header prefers: OpenMetrics when it is acceptable and weighted at
    /// least as high as plain text, else the text format (also without any `Accept`).
    pub fn negotiate(accept: Option<&str>) -> Format {
        let Some(accept) = accept else {
            return Format::Text;
        };
        let mut openmetrics = 0.0f32;
        let mut plain = 0.0f32;
        for range in accept.split(',') {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or("").to_ascii_lowercase();
            let q = parts
                .filter_map(|p| p.split_once('='))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
                .and_then(|(_, v)| v.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            match media.as_str() {
                "application/openmetrics-text" => openmetrics = openmetrics.max(q),
                "text/plain" | "text/*" | "*/*" => plain = plain.max(q),
                _ => {}
            }
        }
        if openmetrics > 0.0 && openmetrics >= plain {
            Format::OpenMetrics
        } else {
            Format::Text
        }
    }
}

/// The snapshot in `format`.
pub fn render(snapshot: &Snapshot, format: Format) -> Result<String, std::fmt::Error> {
    let registry = registry(snapshot);
    let mut out = String::with_capacity(4096);
    match format {
        Format::OpenMetrics => text::encode(&mut out, &registry)?,
        Format::Text => prometheus_text::encode(&mut out, &registry)?,
    }
    Ok(out)
}

fn counter(value: u64) -> Counter {
    let c = Counter::default();
    c.inc_by(value);
    c
}

fn gauge(value: u64) -> Gauge {
    let g = Gauge::default();
    g.set(i64::try_from(value).unwrap_or(i64::MAX));
    g
}

fn counters(series: impl IntoIterator<Item = (Labels, u64)>) -> MetricFamily<Labels, Counter> {
    let family = MetricFamily::<Labels, Counter>::default();
    for (labels, value) in series {
        family.get_or_create(&labels).inc_by(value);
    }
    family
}

/// A registry holding the snapshot's figures.
fn registry(s: &Snapshot) -> Registry {
    let mut r = Registry::default();
    r.register(
        "tarpit_build",
        "Build information: the version of tarpitd that runs",
        Info::new(vec![("version", env!("CARGO_PKG_VERSION").to_owned())]),
    );
    let started: Gauge = Gauge::default();
    started.set(s.started.unix_timestamp());
    r.register_with_unit(
        "tarpit_start_time",
        "When tarpitd started, in seconds since the Unix epoch",
        Unit::Seconds,
        started,
    );
    r.register(
        "tarpit_events",
        "Rejection events parsed from the mail logs since start, by event class",
        counters(
            s.events_by_class
                .iter()
                .map(|(class, n)| (vec![("class", class.as_str().to_owned())], *n)),
        ),
    );
    let active = MetricFamily::<Labels, Gauge>::default();
    for family in Family::ALL {
        for bucket in OffenceBucket::ALL {
            let labels = vec![
                ("family", family.as_str().to_owned()),
                ("offence", bucket.as_str().to_owned()),
            ];
            active
                .get_or_create(&labels)
                .set(i64::try_from(s.active.get(family, bucket)).unwrap_or(i64::MAX));
        }
    }
    r.register(
        "tarpit_listings_active",
        "Listings in force now, by address family and by which offence of the listed client it is (1, 2, 3, 4+)",
        active,
    );
    r.register(
        "tarpit_listings",
        "Listings made since start, by the policy and by hand",
        counter(s.listings_total),
    );
    if let Some(packets) = s.diverted_packets {
        r.register(
            "tarpit_diverted_packets",
            "Packets from listed clients the nftables rules diverted (the kernel's rule counters; they restart when the table is rebuilt)",
            counter(packets),
        );
    }
    let stall = s.stall.unwrap_or_default();
    r.register(
        "tarpit_stall_connections_held",
        "Connections the stall listener holds open now",
        gauge(stall.held),
    );
    r.register(
        "tarpit_stall_connections_accepted",
        "Connections the stall listener accepted and held since start",
        counter(stall.accepted),
    );
    r.register_with_unit(
        "tarpit_stall_held",
        "Time connections were held by the stall listener since start, live ones included: the senders' time wasted",
        Unit::Seconds,
        counter(stall.seconds_held),
    );
    r.register(
        "tarpit_stall_connections_refused",
        "Connections the stall listener closed at once because a limit was reached (max_connections or max_per_ip)",
        counters([
            (vec![("limit", "max_connections".to_owned())], stall.refused_full),
            (vec![("limit", "max_per_ip".to_owned())], stall.refused_per_ip),
        ]),
    );
    let source = |name: &str| vec![("source", name.to_owned())];
    r.register(
        "tarpit_source_lines_read",
        "Log lines read since start, by source",
        counters(s.sources.iter().map(|f| (source(&f.name), f.lines))),
    );
    r.register(
        "tarpit_source_events",
        "Rejection events found since start, by source",
        counters(s.sources.iter().map(|f| (source(&f.name), f.events))),
    );
    let lag = MetricFamily::<Labels, Gauge<f64, AtomicU64>>::default();
    for f in &s.sources {
        if let Some(seconds) = f.lag_seconds {
            lag.get_or_create(&source(&f.name)).set(seconds);
        }
    }
    r.register_with_unit(
        "tarpit_source_lag",
        "Now minus the timestamp of the newest line read from the source (a quiet log grows it too)",
        Unit::Seconds,
        lag,
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventClass;
    use crate::metrics::snapshot::{ActiveListings, SourceFigures, StallFigures};

    fn sample() -> Snapshot {
        let mut active = ActiveListings::default();
        active.add(&"192.0.2.7/32".parse().unwrap(), 1);
        active.add(&"198.51.100.0/24".parse().unwrap(), 5);
        active.add(&"2001:db8:1::/64".parse().unwrap(), 2);
        Snapshot {
            started: time::macros::datetime!(2026-12-04 10:00 UTC),
            events_by_class: EventClass::ALL
                .iter()
                .map(|c| (*c, u64::from(*c == EventClass::RelayDenied) * 7))
                .collect(),
            active,
            listings_total: 4,
            diverted_packets: Some(1234),
            stall: Some(StallFigures {
                held: 3,
                accepted: 10,
                seconds_held: 5400,
                refused_full: 0,
                refused_per_ip: 2,
            }),
            sources: vec![
                SourceFigures {
                    name: "file:/var/log/mail.log".into(),
                    lines: 1000,
                    events: 7,
                    lag_seconds: Some(1.5),
                },
                SourceFigures {
                    name: "journald:postfix@-.service".into(),
                    lines: 0,
                    events: 0,
                    lag_seconds: None,
                },
            ],
        }
    }

    /// The sample lines (no comments) of `text`.
    fn samples(text: &str) -> Vec<&str> {
        text.lines().filter(|l| !l.starts_with('#')).collect()
    }

    #[test]
    fn openmetrics_carries_every_figure_with_units_types_and_eof() {
        let text = render(&sample(), Format::OpenMetrics).unwrap();
        let lines = samples(&text);
        let version = env!("CARGO_PKG_VERSION");
        for expected in [
            format!("tarpit_build_info{{version=\"{version}\"}} 1"),
            "tarpit_start_time_seconds 1796378400".to_owned(),
            "tarpit_events_total{class=\"relay-denied\"} 7".to_owned(),
            "tarpit_events_total{class=\"rbl-listed\"} 0".to_owned(),
            "tarpit_listings_active{family=\"ipv4\",offence=\"1\"} 1".to_owned(),
            "tarpit_listings_active{family=\"ipv4\",offence=\"4+\"} 1".to_owned(),
            "tarpit_listings_active{family=\"ipv6\",offence=\"2\"} 1".to_owned(),
            "tarpit_listings_active{family=\"ipv6\",offence=\"3\"} 0".to_owned(),
            "tarpit_listings_total 4".to_owned(),
            "tarpit_diverted_packets_total 1234".to_owned(),
            "tarpit_stall_connections_held 3".to_owned(),
            "tarpit_stall_connections_accepted_total 10".to_owned(),
            "tarpit_stall_held_seconds_total 5400".to_owned(),
            "tarpit_stall_connections_refused_total{limit=\"max_per_ip\"} 2".to_owned(),
            "tarpit_source_lines_read_total{source=\"file:/var/log/mail.log\"} 1000".to_owned(),
            "tarpit_source_events_total{source=\"journald:postfix@-.service\"} 0".to_owned(),
            "tarpit_source_lag_seconds{source=\"file:/var/log/mail.log\"} 1.5".to_owned(),
        ] {
            assert!(lines.contains(&expected.as_str()), "{expected} in\n{text}");
        }
        assert_eq!(
            lines
                .iter()
                .filter(|l| l.starts_with("tarpit_events_total"))
                .count(),
            EventClass::ALL.len(),
            "every class is shown"
        );
        assert_eq!(
            lines
                .iter()
                .filter(|l| l.starts_with("tarpit_listings_active{"))
                .count(),
            8,
            "2 families × 4 offence buckets"
        );
        assert!(
            !text.contains("tarpit_source_lag_seconds{source=\"journald"),
            "no lag before the first line"
        );
        assert!(text.contains("# TYPE tarpit_stall_held_seconds counter\n"));
        assert!(text.contains("# UNIT tarpit_stall_held_seconds seconds\n"));
        assert!(text.contains("# TYPE tarpit_build info\n"));
        assert!(text.contains("# HELP tarpit_events Rejection events"));
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn the_text_format_has_no_eof_and_types_info_as_gauge() {
        let text = render(&sample(), Format::Text).unwrap();
        assert!(!text.contains("# EOF"));
        assert!(!text.contains("# UNIT"));
        assert!(
            text.contains("# TYPE tarpit_events_total counter\n"),
            "{text}"
        );
        assert!(text.contains("# TYPE tarpit_build_info gauge\n"), "{text}");
        assert!(samples(&text).contains(&"tarpit_stall_held_seconds_total 5400"));
    }

    #[test]
    fn without_stall_or_kernel_counters_they_show_zero_or_nothing() {
        let mut s = sample();
        s.stall = None;
        s.diverted_packets = None;
        let text = render(&s, Format::OpenMetrics).unwrap();
        assert!(
            !text.contains("tarpit_diverted_packets"),
            "unknown is left out"
        );
        assert!(samples(&text).contains(&"tarpit_stall_connections_held 0"));
    }

    #[test]
    fn label_values_are_escaped() {
        let mut s = sample();
        s.sources[0].name = "file:/var/log/a\"b\\c".into();
        let text = render(&s, Format::OpenMetrics).unwrap();
        assert!(
            text.contains(r#"tarpit_source_lines_read_total{source="file:/var/log/a\"b\\c"} 1000"#),
            "{text}"
        );
    }

    #[test]
    fn prometheus_gets_openmetrics_and_curl_gets_text() {
        let prometheus = "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1";
        assert_eq!(Format::negotiate(Some(prometheus)), Format::OpenMetrics);
        assert_eq!(Format::negotiate(Some("*/*")), Format::Text);
        assert_eq!(Format::negotiate(None), Format::Text);
        assert_eq!(
            Format::negotiate(Some("application/openmetrics-text;q=0, */*")),
            Format::Text
        );
        assert_eq!(
            Format::negotiate(Some("text/plain;q=0.9, application/OpenMetrics-Text;q=0.5")),
            Format::Text
        );
        assert_eq!(
            Format::negotiate(Some("application/openmetrics-text")),
            Format::OpenMetrics
        );
        assert!(Format::OpenMetrics
            .content_type()
            .starts_with("application/openmetrics-text; version=1.0.0"));
        assert!(Format::Text
            .content_type()
            .starts_with("text/plain; version=0.0.4"));
    }
}
