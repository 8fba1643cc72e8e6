//! The line's header: its timestamp, the syslog program that wrote it, and where the message starts.
//!
//! Knows the timestamp shapes MTAs and syslog daemons write (RFC 3164 with or without a zero-padded
//! day, RFC 3339 / ISO 8601, RFC 5424, Exim's own `YYYY-MM-DD HH:MM:SS[.fff] [+zzzz]`) and the
//! `host program[pid]: ` tag. It only splits the line; it never looks inside the message, and it
//! does no time-zone arithmetic (that is [`super::clock`]'s job). Everything here is a few byte
//! comparisons, because every line of a busy mail log passes through it.

/// A timestamp as written in the log, before any time-zone or year is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// The year, when the log wrote one.
    pub year: Option<i16>,
    /// 1..=12
    pub month: i8,
    /// 1..=31
    pub day: i8,
    /// 0..=23
    pub hour: i8,
    /// 0..=59
    pub minute: i8,
    /// 0..=60 (a leap second is clamped later)
    pub second: i8,
    /// Fraction of a second.
    pub nanos: i32,
    /// Offset from UTC in seconds, when the log wrote one.
    pub offset: Option<i32>,
}

/// A line split into its parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<'a> {
    /// The line's own timestamp, if it has one.
    pub stamp: Option<Stamp>,
    /// The syslog program tag without the pid (`postfix/smtpd`, `exim`), if the line has one.
    pub program: Option<&'a [u8]>,
    /// The message after the header.
    pub body: &'a [u8],
}

/// Splits `line` into timestamp, program and body. Lines with neither a timestamp nor a program
/// tag come back with the whole line as the body.
pub fn split(line: &[u8]) -> Header<'_> {
    if line.first() == Some(&b'<') {
        if let Some(h) = rfc5424_or_pri(line) {
            return h;
        }
    }
    let (stamp, rest) = match leading_stamp(line) {
        Some((stamp, used)) => (Some(stamp), skip_spaces(&line[used..])),
        None => (None, line),
    };
    // A line without a date must begin at its host name: text that starts with blanks is a
    // continuation line (e.g. an Exim rejectlog header) and never a header of its own.
    if stamp.is_none() && rest.first().is_none_or(|b| b.is_ascii_whitespace()) {
        return Header {
            stamp,
            program: None,
            body: line,
        };
    }
    match syslog_tag(rest) {
        Some((program, body)) => Header {
            stamp,
            program: Some(program),
            body,
        },
        None => Header {
            stamp,
            program: None,
            body: rest,
        },
    }
}

/// Parses a timestamp at the start of `s`; returns it and the bytes it used.
pub fn leading_stamp(s: &[u8]) -> Option<(Stamp, usize)> {
    match s.first()? {
        b'0'..=b'9' => iso_stamp(s),
        b'A'..=b'Z' => bsd_stamp(s),
        _ => None,
    }
}

fn skip_spaces(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|&&b| b == b' ').count();
    &s[n..]
}

fn digits<const N: usize>(s: &[u8], at: usize) -> Option<i32> {
    let part = s.get(at..at + N)?;
    let mut v = 0i32;
    for &b in part {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v * 10 + i32::from(b - b'0');
    }
    Some(v)
}

fn month_of(name: &[u8]) -> Option<i8> {
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    MONTHS
        .iter()
        .position(|m| m.as_slice() == name)
        .map(|i| i as i8 + 1)
}

/// `Dec  4 10:00:00`, `Dec 04 10:00:00`, `Mar 7 02:09:33`, optionally with a fraction.
fn bsd_stamp(s: &[u8]) -> Option<(Stamp, usize)> {
    let month = month_of(s.get(0..3)?)?;
    if s.get(3) != Some(&b' ') {
        return None;
    }
    let mut at = 4;
    if s.get(at) == Some(&b' ') {
        at += 1;
    }
    let day = match (s.get(at), s.get(at + 1)) {
        (Some(a), Some(b' ')) if a.is_ascii_digit() => {
            at += 1;
            i32::from(a - b'0')
        }
        _ => {
            let d = digits::<2>(s, at)?;
            at += 2;
            d
        }
    };
    if s.get(at) != Some(&b' ') {
        return None;
    }
    let (hour, minute, second, nanos, used) = clock_time(s, at + 1)?;
    Some((
        Stamp {
            year: None,
            month,
            day: day as i8,
            hour,
            minute,
            second,
            nanos,
            offset: None,
        },
        used,
    ))
}

/// `HH:MM:SS[.fraction]` at `at`; returns the parts and the index just past them.
fn clock_time(s: &[u8], at: usize) -> Option<(i8, i8, i8, i32, usize)> {
    let hour = digits::<2>(s, at)?;
    let minute = digits::<2>(s, at + 3)?;
    let second = digits::<2>(s, at + 6)?;
    if s.get(at + 2) != Some(&b':') || s.get(at + 5) != Some(&b':') {
        return None;
    }
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut end = at + 8;
    let mut nanos = 0i32;
    if matches!(s.get(end), Some(b'.') | Some(b',')) {
        let start = end + 1;
        let mut i = start;
        let mut scale = 100_000_000i32;
        while let Some(b) = s.get(i).filter(|b| b.is_ascii_digit()) {
            nanos += i32::from(b - b'0') * scale;
            scale /= 10;
            i += 1;
        }
        if i == start {
            return None;
        }
        end = i;
    }
    Some((hour as i8, minute as i8, second as i8, nanos, end))
}

/// `2026-12-04T10:00:00.123+01:00`, `2026-12-04 10:00:00`, `2026-12-04 10:00:00.123 +0100`.
fn iso_stamp(s: &[u8]) -> Option<(Stamp, usize)> {
    let year = digits::<4>(s, 0)?;
    let month = digits::<2>(s, 5)?;
    let day = digits::<2>(s, 8)?;
    if s.get(4) != Some(&b'-') || s.get(7) != Some(&b'-') {
        return None;
    }
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let sep = *s.get(10)?;
    if sep != b'T' && sep != b' ' {
        return None;
    }
    let (hour, minute, second, nanos, mut end) = clock_time(s, 11)?;
    let mut offset = None;
    match s.get(end) {
        Some(b'Z') | Some(b'z') => {
            offset = Some(0);
            end += 1;
        }
        Some(b'+') | Some(b'-') => {
            if let Some((o, used)) = zone_offset(&s[end..]) {
                offset = Some(o);
                end += used;
            }
        }
        // Exim's `log_timezone` writes ` +0100` after a space.
        Some(b' ') if matches!(s.get(end + 1), Some(b'+') | Some(b'-')) => {
            if let Some((o, used)) = zone_offset(&s[end + 1..]) {
                let next = s.get(end + 1 + used);
                if next.is_none() || next == Some(&b' ') {
                    offset = Some(o);
                    end += 1 + used;
                }
            }
        }
        _ => {}
    }
    Some((
        Stamp {
            year: Some(year as i16),
            month: month as i8,
            day: day as i8,
            hour,
            minute,
            second,
            nanos,
            offset,
        },
        end,
    ))
}

/// `+01:00`, `+0100`, `-05`; returns seconds east of UTC and the bytes used.
fn zone_offset(s: &[u8]) -> Option<(i32, usize)> {
    let sign = match s.first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let hours = digits::<2>(s, 1)?;
    let (minutes, used) = if s.get(3) == Some(&b':') {
        (digits::<2>(s, 4)?, 6)
    } else if let Some(m) = digits::<2>(s, 3) {
        (m, 5)
    } else {
        (0, 3)
    };
    if hours > 23 || minutes > 59 {
        return None;
    }
    Some((sign * (hours * 3600 + minutes * 60), used))
}

/// `host program[pid]: body` or `program[pid]: body` (no host). The program must look like a
/// program name; the caller decides whether it is one it knows.
fn syslog_tag(s: &[u8]) -> Option<(&[u8], &[u8])> {
    // Either the first or the second word is `program[pid]:` / `program:`.
    let first_end = memchr::memchr(b' ', s)?;
    if let Some(found) = program_word(&s[..first_end]) {
        return Some((found, &s[first_end + 1..]));
    }
    let rest = &s[first_end + 1..];
    let second_end = memchr::memchr(b' ', rest).unwrap_or(rest.len());
    let program = program_word(&rest[..second_end])?;
    let body = rest.get(second_end + 1..).unwrap_or_default();
    Some((program, body))
}

/// `postfix/smtpd[123]:` or `exim:` → the program name, if the word has that shape.
fn program_word(word: &[u8]) -> Option<&[u8]> {
    let word = word.strip_suffix(b":")?;
    let name = match word.strip_suffix(b"]") {
        Some(w) => {
            let open = memchr::memrchr(b'[', w)?;
            let pid = &w[open + 1..];
            if pid.is_empty() || !pid.iter().all(u8::is_ascii_digit) {
                return None;
            }
            &w[..open]
        }
        None => word,
    };
    let ok = name.first().is_some_and(u8::is_ascii_alphabetic)
        && name
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'_' | b'.'));
    ok.then_some(name)
}

/// `<13>1 2026-12-04T10:00:00Z host app procid msgid [sd] msg` (RFC 5424), or `<13>` before an
/// RFC 3164 line.
fn rfc5424_or_pri(line: &[u8]) -> Option<Header<'_>> {
    let close = memchr::memchr(b'>', line.get(..6)?)?;
    if close < 2 || !line[1..close].iter().all(u8::is_ascii_digit) {
        return None;
    }
    let rest = &line[close + 1..];
    let Some(rest) = rest.strip_prefix(b"1 ") else {
        // RFC 3164 with its priority kept.
        let h = split(rest);
        return (h.stamp.is_some()).then_some(h);
    };
    let mut fields = rest.splitn(6, |&b| b == b' ');
    let stamp_field = fields.next()?;
    let _host = fields.next()?;
    let app = fields.next()?;
    let _procid = fields.next()?;
    let _msgid = fields.next()?;
    let mut msg = fields.next().unwrap_or_default();
    let stamp = if stamp_field == b"-" {
        None
    } else {
        let (stamp, used) = iso_stamp(stamp_field)?;
        if used != stamp_field.len() {
            return None;
        }
        Some(stamp)
    };
    msg = skip_structured_data(msg)?;
    let msg = msg.strip_prefix("\u{feff}".as_bytes()).unwrap_or(msg);
    let program = (app != b"-").then_some(app);
    Some(Header {
        stamp,
        program,
        body: msg,
    })
}

/// Skips RFC 5424 STRUCTURED-DATA (`-` or `[id k="v"]...`) and the space after it.
fn skip_structured_data(s: &[u8]) -> Option<&[u8]> {
    if let Some(rest) = s.strip_prefix(b"-") {
        return Some(rest.strip_prefix(b" ").unwrap_or(rest));
    }
    let mut i = 0;
    while s.get(i) == Some(&b'[') {
        // Inside an element, `]` may be escaped as `\]` within a quoted value.
        let mut in_quotes = false;
        i += 1;
        loop {
            match s.get(i)? {
                b'\\' => i += 1,
                b'"' => in_quotes = !in_quotes,
                b']' if !in_quotes => break,
                _ => {}
            }
            i += 1;
        }
        i += 1;
    }
    if i == 0 {
        return None;
    }
    let rest = &s[i..];
    Some(rest.strip_prefix(b" ").unwrap_or(rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(y: Option<i16>, mo: i8, d: i8, h: i8, mi: i8, s: i8) -> Stamp {
        Stamp {
            year: y,
            month: mo,
            day: d,
            hour: h,
            minute: mi,
            second: s,
            nanos: 0,
            offset: None,
        }
    }

    #[test]
    fn rfc3164_with_space_padded_day() {
        let h = split(b"Dec  4 10:00:00 mx postfix/smtpd[123]: connect from x[192.0.2.1]");
        assert_eq!(h.stamp, Some(stamp(None, 12, 4, 10, 0, 0)));
        assert_eq!(h.program, Some(&b"postfix/smtpd"[..]));
        assert_eq!(h.body, b"connect from x[192.0.2.1]");
    }

    #[test]
    fn postfix_maillog_file_with_zero_padded_day_and_single_space_day() {
        let h = split(b"Dec 04 10:00:00 mx postfix/smtpd[123]: x");
        assert_eq!(h.stamp, Some(stamp(None, 12, 4, 10, 0, 0)));
        let h = split(b"Mar 7 02:09:33 server postfix/smtpd[27246]: x");
        assert_eq!(h.stamp, Some(stamp(None, 3, 7, 2, 9, 33)));
        assert_eq!(h.body, b"x");
    }

    #[test]
    fn rfc3339_with_fraction_and_offset() {
        let h = split(b"2026-12-04T10:00:00.123456+01:00 mx postfix/postscreen[9]: PASS NEW");
        let s = h.stamp.unwrap();
        assert_eq!((s.year, s.month, s.day, s.hour), (Some(2026), 12, 4, 10));
        assert_eq!(s.nanos, 123_456_000);
        assert_eq!(s.offset, Some(3600));
        assert_eq!(h.program, Some(&b"postfix/postscreen"[..]));
        assert_eq!(h.body, b"PASS NEW");
    }

    #[test]
    fn rfc5424_with_structured_data_and_bom() {
        let line = "<22>1 2026-12-04T10:00:00.5Z mx postfix/smtpd 42 - [meta x=\"a]b\"] \u{feff}lost connection";
        let h = split(line.as_bytes());
        assert_eq!(h.stamp.unwrap().offset, Some(0));
        assert_eq!(h.program, Some(&b"postfix/smtpd"[..]));
        assert_eq!(h.body, b"lost connection");
    }

    #[test]
    fn journal_line_without_a_date() {
        let h = split(b"mx1.example.org exim[29786]: 2019-10-22 03:39:17 H=x [192.0.2.1] ...");
        assert_eq!(h.stamp, None);
        assert_eq!(h.program, Some(&b"exim"[..]));
        assert_eq!(h.body, b"2019-10-22 03:39:17 H=x [192.0.2.1] ...");
    }

    #[test]
    fn exim_mainlog_with_zone_and_pid() {
        let h = split(b"2026-12-04 10:00:00.123 +0100 [5718] no MAIL in SMTP connection");
        let s = h.stamp.unwrap();
        assert_eq!(s.offset, Some(3600));
        assert_eq!(s.nanos, 123_000_000);
        assert_eq!(h.program, None);
        assert_eq!(h.body, b"[5718] no MAIL in SMTP connection");
    }

    #[test]
    fn exim_body_that_looks_like_a_tag_keeps_its_words() {
        let h = split(b"2013-12-30 00:24:50 1VxPit-000MMd-U4 SA: Action: flagged");
        // `SA:` has the shape of a program tag; the dispatcher rejects unknown programs.
        assert_eq!(h.program, Some(&b"SA"[..]));
    }

    #[test]
    fn continuation_lines_are_not_headers() {
        let h = split(b"  exim[1]: 2026-12-04 10:00:00 H=(x) [192.0.2.9] rejected RCPT <a>: x");
        assert_eq!(h.stamp, None);
        assert_eq!(h.program, None);
    }

    #[test]
    fn garbage_does_not_panic() {
        for line in [
            &b""[..],
            b"<",
            b"<1>",
            b"<99>1 ",
            b"Dec",
            b"Dec 4",
            b"2026-13-01 00:00:00",
            b"\xff\xfe",
        ] {
            let _ = split(line);
        }
    }
}
