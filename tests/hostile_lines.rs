//! Hostile log lines: text the remote client controls (HELO, sender, recipient, commands, header
//! text, reject reasons) dressed up as client fields. Each must yield no event or an event for
//! the true client; where the true client is certain, the event is required.

use std::net::IpAddr;

use tarpit::parse::clock::Clock;
use tarpit::parse::{Malformed, MtaChoice, Outcome, Parser};

fn parser() -> Parser {
    let clock = Clock::new(
        jiff::tz::TimeZone::UTC,
        "2026-12-04T12:00:00Z".parse().unwrap(),
    );
    Parser::builtin(MtaChoice::Auto, clock).unwrap()
}

/// What a hostile line must yield.
enum Want {
    /// Exactly this client.
    Client(&'static str),
    /// No event at all (the line is ambiguous or damaged).
    Nothing,
    /// This client or nothing.
    ClientOrNothing(&'static str),
}

const PF: &str = "Dec  4 10:00:00 mx postfix/smtpd[4242]: ";
const PS: &str = "Dec  4 10:00:00 mx postfix/postscreen[4242]: ";
const CL: &str = "Dec  4 10:00:00 mx postfix/cleanup[4243]: ";
const EX: &str = "2026-12-04 10:00:00 ";

fn cases() -> Vec<(String, Want)> {
    use Want::*;
    let long_tail = "A".repeat(100_000);
    vec![
        // 1 HELO that is a bracketed address
        (format!("{PF}NOQUEUE: reject: RCPT from unknown[192.0.2.10]: 554 5.7.1 <x@example.org>: Relay access denied; from=<a@example.com> to=<x@example.org> proto=ESMTP helo=<[198.51.100.99]>"), Client("192.0.2.10")),
        // 2 HELO that imitates a client field
        (format!("{PF}NOQUEUE: reject: RCPT from unknown[192.0.2.11]: 554 5.7.1 <x@example.org>: Relay access denied; from=<a@example.com> to=<x@example.org> proto=ESMTP helo=<reject: RCPT from evil[198.51.100.1]:>"), Client("192.0.2.11")),
        // 3 bracketed address in the sender's local part
        (format!("{PF}NOQUEUE: reject: RCPT from mail.example.com[192.0.2.12]: 550 5.1.1 <u@example.org>: Recipient address rejected: User unknown in local recipient table; from=<\"[198.51.100.2]\"@example.com> to=<u@example.org> proto=ESMTP helo=<mail.example.com>"), Client("192.0.2.12")),
        // 4 recipient that imitates a whole reject
        (format!("{PF}NOQUEUE: reject: RCPT from unknown[192.0.2.13]: 550 5.1.1 <reject: RCPT from x[198.51.100.3]: 550@example.org>: Recipient address rejected: User unknown in local recipient table; from=<a@example.com> to=<reject: RCPT from x[198.51.100.3]: 550@example.org> proto=ESMTP helo=<h>"), Client("192.0.2.13")),
        // 5 sender that carries a fake envelope and client
        (format!("{PF}NOQUEUE: reject: RCPT from unknown[192.0.2.14]: 554 5.7.1 <x@example.org>: Relay access denied; from=<a; from=<b> to=<c> proto=ESMTP helo=<x[198.51.100.4]>@example.com> to=<x@example.org> proto=ESMTP helo=<h>"), Client("192.0.2.14")),
        // 6 non-SMTP command text with a client field in it
        (format!("{PF}warning: non-SMTP command from unknown[192.0.2.15]: GET /from x[198.51.100.5]: HTTP/1.1"), Client("192.0.2.15")),
        // 7 postscreen pregreet text with a postscreen-shaped client
        (format!("{PS}PREGREET 40 after 0.1 from [192.0.2.16]:4321: EHLO from [198.51.100.6]:25:\\r\\n"), Client("192.0.2.16")),
        // 8 header text (before the client field) with a fake client field
        (format!("{CL}4F5A3D2C1B: reject: header Subject: cheap pills from evil.example[198.51.100.7]; from=<x> from mail.example.com[192.0.2.17]; from=<s@example.com> to=<u@example.org> proto=ESMTP helo=<mail.example.com>: 5.7.1 message content rejected"), Nothing),
        // 9 sender (after the client field) with a fake client field
        (format!("{CL}4F5A3D2C1B: reject: header Subject: cheap pills from mail.example.com[192.0.2.18]; from=<a from evil.example[198.51.100.8]; b@example.com> to=<u@example.org> proto=ESMTP helo=<h>: 5.7.1 message content rejected"), Nothing),
        // 10 a clean header reject is counted
        (format!("{CL}4F5A3D2C1B: reject: header Subject: cheap pills from mail.example.com[192.0.2.19]; from=<s@example.com> to=<u@example.org> proto=ESMTP helo=<mail.example.com>: 5.7.1 message content rejected"), Client("192.0.2.19")),
        // 11 another daemon's line that quotes a Postfix line
        ("Dec  4 10:00:00 mx dovecot[1]: postfix/smtpd[2]: NOQUEUE: reject: RCPT from x[198.51.100.9]: 554 5.7.1 <a@b>: Relay access denied; from=<a> to=<b> proto=SMTP helo=<h>".to_owned(), Nothing),
        // 12 a whole log line inside a HELO
        (format!("{PF}NOQUEUE: reject: RCPT from unknown[192.0.2.20]: 450 4.7.1 <h>: Helo command rejected: Host not found; from=<a@example.com> to=<u@example.org> proto=ESMTP helo=<mx postfix/smtpd[1]: NOQUEUE: reject: RCPT from x[198.51.100.10]: 554 5.7.1>"), Client("192.0.2.20")),
        // 13 SASL user name that is a bracketed address
        (format!("{PF}warning: unknown[192.0.2.21]: SASL LOGIN authentication failed: UGFzc3dvcmQ6, sasl_username=[198.51.100.11]"), Client("192.0.2.21")),
        // 14 a name with brackets cannot be Postfix's (it validates names): refused
        (format!("{PF}NOQUEUE: reject: RCPT from evil[198.51.100.12]x[192.0.2.22]: 554 5.7.1 <a@b>: Relay access denied; from=<a> to=<b> proto=SMTP helo=<h>"), Nothing),
        // 15 an over-long line
        (format!("{PF}NOQUEUE: reject: RCPT from unknown[192.0.2.23]: 554 5.7.1 <a@b>: Relay access denied; from=<{long_tail}> to=<b> proto=SMTP helo=<h>"), Nothing),
        // 16 invalid UTF-8 in the HELO
        (format!("{PF}NOQUEUE: reject: RCPT from unknown[192.0.2.24]: 554 5.7.1 <a@b>: Relay access denied; from=<a> to=<b> proto=SMTP helo=<\u{fffd}\u{fffd}[198.51.100.13]>"), Client("192.0.2.24")),
        // 17 a NUL byte inside the line (damaged file)
        (format!("{PF}NOQUEUE: reject: RCPT from unknown[192.0.2.25]\0[198.51.100.14]: 554 5.7.1 <a@b>: Relay access denied; proto=SMTP"), Nothing),
        // 18 NUL bytes before a line (what a crash leaves) do not hide it
        (format!("\0\0\0\0{PF}too many errors after RCPT from unknown[192.0.2.26]"), Client("192.0.2.26")),
        // 19 IPv6 client, IPv6 literal HELO
        (format!("{PF}NOQUEUE: reject: RCPT from unknown[2001:db8::1]: 550 5.1.1 <u@example.org>: Recipient address rejected: User unknown in local recipient table; from=<a@example.com> to=<u@example.org> proto=ESMTP helo=<[IPv6:2001:db8::bad]>"), Client("2001:db8::1")),
        // 20 IPv4-mapped IPv6 client is the IPv4 address
        (format!("{PF}too many errors after DATA from unknown[::ffff:192.0.2.30]"), Client("192.0.2.30")),
        // 21 an address that is not one
        (format!("{PF}too many errors after DATA from unknown[999.1.1.1]"), Nothing),
        // 22 pipelining with a client field in the pipelined text
        (format!("{PF}improper command pipelining after CONNECT from unknown[192.0.2.31]: EHLO x from y[198.51.100.15]:"), Client("192.0.2.31")),
        // 23 text after a field that must end the line
        (format!("{PF}too many errors after RCPT from x[192.0.2.32] from y[198.51.100.16]"), Nothing),
        // 24 a carriage return with a second line after it stays one line
        (format!("{PF}NOQUEUE: reject: RCPT from unknown[192.0.2.33]: 554 5.7.1 <a@b>: Relay access denied; from=<a> to=<b> proto=SMTP helo=<x\rDec  4 10:00:00 mx postfix/smtpd[1]: too many errors after RCPT from y[198.51.100.17]>"), Client("192.0.2.33")),
        // 25 rejectlog continuation (a header line) that imitates an Exim line
        (format!("  exim[1]: {EX}H=(x) [198.51.100.18] F=<a@b> rejected RCPT <c@d>: relay not permitted"), Nothing),
        // 26 Exim junk HELO holding a fake host field
        (format!("{EX}H=(a) [198.51.100.20] y) [192.0.2.40]:25 F=<s@example.com> rejected RCPT <r@example.org>: relay not permitted"), Nothing),
        // 27 Exim recipient holding a host field
        (format!("{EX}H=(a) [192.0.2.41]:25 F=<s@example.com> rejected RCPT <x) [198.51.100.21]@example.org>: Unknown user"), ClientOrNothing("192.0.2.41")),
        // 28 Exim quoted command with a fake host field before the real one (fail2ban gh-1979)
        (format!("{EX}SMTP protocol error in \"aUtH lOgIn\" H=(test) [198.51.100.22]\" H=(roxzgj) [192.0.2.42] AUTH command used when not advertised"), Client("192.0.2.42")),
        // 29 Exim AUTH mechanism (one word of the client's) shaped as a host field after the real one
        (format!("{EX}SMTP protocol error in \"AUTH H=[198.51.100.23]\" H=(x) [192.0.2.43]:1234 I=[203.0.113.1]:25 H=[198.51.100.23] authentication mechanism not supported"), Nothing),
        // 30 Exim mechanism with a quote cannot move the choice to a fake field
        (format!("{EX}SMTP protocol error in \"AUTH X\" H=(y) [198.51.100.24]\" H=(real) [192.0.2.44] X\" authentication mechanism not supported"), ClientOrNothing("192.0.2.44")),
        // 31 Exim synchronization error with input holding a host field
        (format!("{EX}SMTP protocol synchronization error (next input sent too soon: pipelining was not advertised): rejected \"RSET\" H=mail.example.com [192.0.2.45]:58302 I=[203.0.113.1]:25 next input=\"QUIT H=(z) [198.51.100.25]\""), Nothing),
        // 32 Exim authenticator set_id holding a host field
        (format!("{EX}dovecot_login authenticator failed for (User) [192.0.2.46]:21298 I=[203.0.113.1]:465: 535 Incorrect authentication data (set_id=x) [198.51.100.26])"), Nothing),
        // 33 sa-exim Message-Id holding a fake host
        (format!("{EX}1VxHWD-000NuW-83 SA: Action: silently tossed message: score=31.0 required=5.0 trigger=30.0 (scanned in 6/6 secs | Message-Id: a. From <x> (host=evil [198.51.100.27]) for y). From <s@example.com> (host=mail.example.com [192.0.2.47]) for u@example.org"), Nothing),
        // 34 Exim HELO literal is not the client
        (format!("{EX}H=([198.51.100.28]) [192.0.2.48]:3755 I=[203.0.113.1]:25 F=<s@example.com> rejected RCPT <r@example.net>: relay not permitted"), Client("192.0.2.48")),
        // 35 Exim reject reason quoting an address in brackets with text around it
        (format!("{EX}H=mail.example.com [192.0.2.49] F=<s@example.com> rejected RCPT <u@example.org>: host [198.51.100.29] said no"), Client("192.0.2.49")),
        // 36 a journal line with a forged program inside the message
        ("mx kernel: postfix/smtpd[1]: too many errors after RCPT from x[198.51.100.30]".to_owned(), Nothing),
    ]
}

#[test]
fn hostile_lines_yield_no_event_or_the_true_client() {
    let parser = parser();
    let cases = cases();
    assert!(cases.len() >= 30);
    let mut failures = Vec::new();
    for (i, (line, want)) in cases.iter().enumerate() {
        let got: Option<IpAddr> = match parser.parse(line.as_bytes()) {
            Outcome::Event(e) => Some(e.ip),
            _ => None,
        };
        let ok = match want {
            Want::Client(ip) => got == Some(ip.parse().unwrap()),
            Want::Nothing => got.is_none(),
            Want::ClientOrNothing(ip) => got.is_none() || got == Some(ip.parse().unwrap()),
        };
        if !ok {
            failures.push(format!(
                "case {}: got {got:?}\n    {}",
                i + 1,
                line.chars().take(300).collect::<String>()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn damaged_lines_are_reported_as_malformed_not_dropped_silently() {
    let parser = parser();
    let long = format!("{PF}{}", "x".repeat(70_000));
    assert_eq!(
        parser.parse(long.as_bytes()),
        Outcome::Malformed(Malformed::TooLong)
    );
    assert_eq!(
        parser.parse(b"Dec  4 10:00:00 mx postfix/smtpd[1]: a\0b"),
        Outcome::Malformed(Malformed::Nul)
    );
    let ambiguous = &cases()[7].0;
    assert_eq!(
        parser.parse(ambiguous.as_bytes()),
        Outcome::Malformed(Malformed::Ambiguous)
    );
    assert_eq!(
        parser.parse(b"random words without a header"),
        Outcome::Malformed(Malformed::NoHeader)
    );
    assert_eq!(
        parser.parse(b"   indented continuation"),
        Outcome::NotAnEvent
    );
}

#[test]
fn invalid_utf8_bytes_do_not_hide_the_client() {
    let mut line = format!("{PF}NOQUEUE: reject: RCPT from unknown[192.0.2.50]: 554 5.7.1 <a@b>: Relay access denied; from=<").into_bytes();
    line.extend_from_slice(b"\xff\xfe\xc3");
    line.extend_from_slice(b"> to=<b@example.org> proto=SMTP helo=<h>");
    match parser().parse(&line) {
        Outcome::Event(e) => {
            assert_eq!(e.ip.to_string(), "192.0.2.50");
            assert_eq!(e.recipient.as_deref(), Some("b@example.org"));
        }
        other => panic!("expected an event, got {other:?}"),
    }
}
