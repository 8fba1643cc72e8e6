//! The fields a rule may capture, and where in a match each one is found.
//!
//! Group names in rule files map to a fixed set of fields, resolved to capture indexes once at
//! compile time, so that taking a field from a match is an array lookup and no name lookup or
//! allocation happens per line.

/// A field a rule may capture (its group name in rule files is [`Field::as_str`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// The client's address (required; only from the MTA's client field).
    Ip,
    /// The client's host name as the MTA logged it.
    Name,
    /// The HELO/EHLO name.
    Helo,
    /// The envelope sender (empty for `<>`).
    Sender,
    /// The envelope recipient.
    Recipient,
    /// The SMTP reply code.
    Code,
    /// The enhanced status code (`5.7.1`).
    Dsn,
    /// The reject text.
    Reason,
    /// The SMTP command or protocol stage.
    Cmd,
    /// The MTA's action word (`reject`, `milter-reject`, ...).
    Action,
    /// What was tested (header, body, a limit's name, ...).
    What,
    /// Any other detail a classifier may look at.
    Detail,
    /// The queue id (Postfix) or message id (Exim).
    Queue,
}

impl Field {
    /// Every field, in index order.
    pub const ALL: [Field; 13] = [
        Field::Ip,
        Field::Name,
        Field::Helo,
        Field::Sender,
        Field::Recipient,
        Field::Code,
        Field::Dsn,
        Field::Reason,
        Field::Cmd,
        Field::Action,
        Field::What,
        Field::Detail,
        Field::Queue,
    ];

    /// The group name used in rule files.
    pub fn as_str(self) -> &'static str {
        match self {
            Field::Ip => "ip",
            Field::Name => "name",
            Field::Helo => "helo",
            Field::Sender => "sender",
            Field::Recipient => "recipient",
            Field::Code => "code",
            Field::Dsn => "dsn",
            Field::Reason => "reason",
            Field::Cmd => "cmd",
            Field::Action => "action",
            Field::What => "what",
            Field::Detail => "detail",
            Field::Queue => "queue",
        }
    }

    /// The field a group name stands for; `sender_2` is `sender` found elsewhere in the line.
    pub fn from_group(name: &str) -> Option<Field> {
        let base = name.strip_suffix("_2").unwrap_or(name);
        Field::ALL.into_iter().find(|f| f.as_str() == base)
    }
}

/// Where a field's text is found in a match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A group of the rule's regex.
    Head(usize),
    /// A group of the rule's lead regex.
    Lead(usize),
    /// A group of the rule's tail regex.
    Tail(usize),
    /// The text between the regex's match (and lead) and the tail.
    Between,
}
