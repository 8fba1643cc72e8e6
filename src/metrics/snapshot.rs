//! The figures one scrape shows: plain data, taken at one moment by whoever owns them.
//!
//! The daemon's core fills a [`Snapshot`] between two batches (it owns the counters, so nothing is
//! counted twice and nothing is locked); [`super::render`] turns it into the exposition format.
//! This file never reads a socket, the store or the kernel itself.

use ipnet::IpNet;
use time::OffsetDateTime;

use crate::event::EventClass;

/// Everything the endpoint reports, as of one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// When the daemon started.
    pub started: OffsetDateTime,
    /// Events parsed since start, for every class (zeros included, so rates start at once).
    pub events_by_class: Vec<(EventClass, u64)>,
    /// The listings in force now.
    pub active: ActiveListings,
    /// Listings made since start, by the policy and by hand.
    pub listings_total: u64,
    /// Packets the diversion rules matched, per the kernel; `None` when it could not be read.
    pub diverted_packets: Option<u64>,
    /// The stall listener's figures; `None` when it does not run.
    pub stall: Option<StallFigures>,
    /// One entry per configured log source.
    pub sources: Vec<SourceFigures>,
}

/// The address family of a listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Family {
    /// IPv4 hosts and prefixes.
    V4,
    /// IPv6 hosts and prefixes.
    V6,
}

impl Family {
    /// Both, in output order.
    pub const ALL: [Family; 2] = [Family::V4, Family::V6];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Family::V4 => "ipv4",
            Family::V6 => "ipv6",
        }
    }
}

/// Which offence a listing is: 1st, 2nd, 3rd, or 4th and later (the escalation is capped soon
/// after, and a bounded label keeps the series count fixed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct OffenceBucket(u8);

impl OffenceBucket {
    /// Every bucket, in output order.
    pub const ALL: [OffenceBucket; 4] = [
        OffenceBucket(1),
        OffenceBucket(2),
        OffenceBucket(3),
        OffenceBucket(4),
    ];

    /// The bucket of offence number `offence` (counted from 1; 0 is taken as 1).
    pub fn of(offence: u32) -> OffenceBucket {
        OffenceBucket(u8::try_from(offence.clamp(1, 4)).unwrap_or(4))
    }

    /// The label value: `1`, `2`, `3` or `4+`.
    pub fn as_str(self) -> &'static str {
        match self.0 {
            1 => "1",
            2 => "2",
            3 => "3",
            _ => "4+",
        }
    }

    fn index(self) -> usize {
        usize::from(self.0.clamp(1, 4) - 1)
    }
}

/// Active listings counted by family and offence bucket.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ActiveListings {
    counts: [[u64; 4]; 2],
}

impl ActiveListings {
    /// Counts one listing of `net` that is offence number `offence`.
    pub fn add(&mut self, net: &IpNet, offence: u32) {
        let family = match net {
            IpNet::V4(_) => 0,
            IpNet::V6(_) => 1,
        };
        self.counts[family][OffenceBucket::of(offence).index()] += 1;
    }

    /// How many listings of `family` are in `bucket`.
    pub fn get(&self, family: Family, bucket: OffenceBucket) -> u64 {
        let f = match family {
            Family::V4 => 0,
            Family::V6 => 1,
        };
        self.counts[f][bucket.index()]
    }

    /// All of them.
    pub fn total(&self) -> u64 {
        self.counts.iter().flatten().sum()
    }
}

/// The stall listener's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StallFigures {
    /// Connections held now.
    pub held: u64,
    /// Connections accepted and held since start.
    pub accepted: u64,
    /// Seconds connections were held, live ones included.
    pub seconds_held: u64,
    /// Connections closed at once because `max_connections` were held.
    pub refused_full: u64,
    /// Connections closed at once because `max_per_ip` were held from that address.
    pub refused_per_ip: u64,
}

impl From<&crate::stall::StatsSnapshot> for StallFigures {
    fn from(s: &crate::stall::StatsSnapshot) -> Self {
        StallFigures {
            held: s.current,
            accepted: s.total,
            seconds_held: s.seconds_held,
            refused_full: s.refused_full,
            refused_per_ip: s.refused_per_ip,
        }
    }
}

/// One log source's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceFigures {
    /// Its name (`file:/var/log/mail.log`, `journald:...`).
    pub name: String,
    /// Lines read since start.
    pub lines: u64,
    /// Events found in them.
    pub events: u64,
    /// Seconds from the newest line's own timestamp to the moment of the snapshot; `None` before
    /// the first line with a timestamp.
    pub lag_seconds: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listings_are_counted_by_family_and_offence_bucket() {
        let mut a = ActiveListings::default();
        a.add(&"192.0.2.1/32".parse().unwrap(), 1);
        a.add(&"192.0.2.2/32".parse().unwrap(), 3);
        a.add(&"198.51.100.0/24".parse().unwrap(), 9);
        a.add(&"2001:db8::/64".parse().unwrap(), 4);
        a.add(&"2001:db8:1::/64".parse().unwrap(), 0);
        let b = OffenceBucket::of;
        assert_eq!(a.get(Family::V4, b(1)), 1);
        assert_eq!(a.get(Family::V4, b(2)), 0);
        assert_eq!(a.get(Family::V4, b(3)), 1);
        assert_eq!(a.get(Family::V4, b(4)), 1, "9th offence is in 4+");
        assert_eq!(a.get(Family::V6, b(4)), 1);
        assert_eq!(a.get(Family::V6, b(1)), 1, "0 is taken as a 1st offence");
        assert_eq!(a.total(), 5);
        assert_eq!(b(17).as_str(), "4+");
        assert_eq!(b(2).as_str(), "2");
    }
}
