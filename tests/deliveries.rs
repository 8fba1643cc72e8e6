//! Delivery lines: our MTA's successful deliveries name correspondents (never offenders), and a
//! remote reply or recipient that imitates the relay field makes the line count for nobody.

use tarpit::parse::clock::Clock;
use tarpit::parse::{Malformed, MtaChoice, Outcome, Parser};

fn parse(line: &str) -> Outcome {
    let clock = Clock::new(
        jiff::tz::TimeZone::UTC,
        "2026-12-04T12:00:00Z".parse().unwrap(),
    );
    Parser::builtin(MtaChoice::Auto, clock)
        .unwrap()
        .parse(line.as_bytes())
}

fn delivered_to(line: &str) -> Option<(String, Option<String>)> {
    match parse(line) {
        Outcome::Delivered(d) => Some((d.ip.to_string(), d.queue_id)),
        _ => None,
    }
}

#[test]
fn postfix_smtp_status_sent_names_the_relay() {
    let line = "Dec  4 10:00:00 mx postfix/smtp[123]: 4F5A3D2C1B: to=<bob@example.net>, relay=mx.example.net[198.51.100.5]:25, delay=0.5, delays=0.1/0/0.2/0.2, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as ABC)";
    assert_eq!(
        delivered_to(line),
        Some(("198.51.100.5".into(), Some("4F5A3D2C1B".into())))
    );
}

#[test]
fn exim_delivery_names_the_host() {
    let line = "2026-12-04 10:00:00 1tWz1b-0000000Cd32-UvWy => bob@example.net R=dnslookup T=remote_smtp H=mx.example.net [198.51.100.6]:25 X=TLS1.3:TLS_AES_256_GCM_SHA384:256 CV=yes C=\"250 2.0.0 OK id=1\"";
    assert_eq!(
        delivered_to(line),
        Some((
            "198.51.100.6".into(),
            Some("1tWz1b-0000000Cd32-UvWy".into())
        ))
    );
}

#[test]
fn local_deliveries_and_deferrals_name_nobody() {
    assert_eq!(delivered_to("Dec  4 10:00:00 mx postfix/local[1]: 4F5A3D2C1B: to=<bob@example.org>, relay=local, delay=0.5, delays=0.1/0/0.2/0.2, dsn=2.0.0, status=sent (delivered to mailbox)"), None);
    assert_eq!(delivered_to("Dec  4 10:00:00 mx postfix/smtp[1]: 4F5A3D2C1B: to=<bob@example.net>, relay=mx.example.net[198.51.100.5]:25, delay=0.5, delays=0.1/0/0.2/0.2, dsn=4.0.0, status=deferred (host said 451)"), None);
}

#[test]
fn a_reply_or_recipient_imitating_the_relay_is_refused() {
    let reply = "Dec  4 10:00:00 mx postfix/smtp[123]: 4F5A3D2C1B: to=<bob@example.net>, relay=mx.example.net[198.51.100.5]:25, delay=0.5, delays=0.1/0/0.2/0.2, dsn=2.0.0, status=sent (250 relay=x[203.0.113.9]:25)";
    assert_eq!(parse(reply), Outcome::Malformed(Malformed::Ambiguous));
    let rcpt = "Dec  4 10:00:00 mx postfix/smtp[123]: 4F5A3D2C1B: to=<\"x, relay=evil[203.0.113.9]:25, delay=0\"@example.net>, relay=mx.example.net[198.51.100.5]:25, delay=0.5, delays=0.1/0/0.2/0.2, dsn=2.0.0, status=sent (250 ok)";
    assert_eq!(parse(rcpt), Outcome::Malformed(Malformed::Ambiguous));
    let exim = "2026-12-04 10:00:00 1tWz1b-0000000Cd32-UvWy => bob@example.net R=dnslookup T=remote_smtp H=mx.example.net [198.51.100.6]:25 C=\"250 H=evil [203.0.113.9] ok\"";
    assert_eq!(parse(exim), Outcome::Malformed(Malformed::Ambiguous));
}
