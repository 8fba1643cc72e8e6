//! Who is on the other end of a control connection, and whether they may use it.
//!
//! Owns the credential check (`SO_PEERCRED` plus group membership). It never reads requests.

use std::ffi::CString;

use nix::unistd::{getgrouplist, Gid, Group, Uid, User};

/// The peer's credentials as the kernel reported them when it connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    /// Effective user id.
    pub uid: u32,
    /// Effective group id.
    pub gid: u32,
    /// Process id, when the kernel gave one.
    pub pid: Option<i32>,
}

/// Why a peer was let in, or why not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The peer is root.
    Root,
    /// The peer's group or one of its user's groups is the control group.
    Member,
    /// Neither.
    Refused,
}

/// The control group, resolved once at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlGroup {
    /// Its name, for messages.
    pub name: String,
    /// Its id.
    pub gid: u32,
}

/// The configured group does not exist.
#[derive(Debug, thiserror::Error)]
pub enum GroupError {
    /// No such group.
    #[error("control.group {0:?} is not a group on this system (see /etc/group); name an existing group, e.g. adm")]
    Unknown(String),
    /// The group database could not be read.
    #[error("cannot look up control.group {name:?}: {source}")]
    Lookup {
        /// The group.
        name: String,
        /// Why.
        source: nix::Error,
    },
}

impl ControlGroup {
    /// Looks the group up by name (blocking: it may ask NSS).
    pub fn resolve(name: &str) -> Result<Self, GroupError> {
        match Group::from_name(name) {
            Ok(Some(g)) => Ok(ControlGroup {
                name: name.to_owned(),
                gid: g.gid.as_raw(),
            }),
            Ok(None) => Err(GroupError::Unknown(name.to_owned())),
            Err(source) => Err(GroupError::Lookup {
                name: name.to_owned(),
                source,
            }),
        }
    }

    /// Decides whether `peer` may use the socket: root, a process whose effective group is the
    /// control group, or a process whose user is a member of it (supplementary groups from the
    /// group database, `getgrouplist`). Blocking: it may ask NSS.
    pub fn admit(&self, peer: &Peer) -> Verdict {
        if peer.uid == 0 {
            return Verdict::Root;
        }
        if peer.gid == self.gid || user_groups(peer.uid, peer.gid).contains(&self.gid) {
            return Verdict::Member;
        }
        Verdict::Refused
    }
}

/// The groups the user with this uid belongs to (its primary group `gid` included); empty when
/// the user is unknown, which only ever means fewer rights.
pub fn user_groups(uid: u32, gid: u32) -> Vec<u32> {
    let Ok(Some(user)) = User::from_uid(Uid::from_raw(uid)) else {
        return Vec::new();
    };
    let Ok(name) = CString::new(user.name) else {
        return Vec::new();
    };
    getgrouplist(&name, Gid::from_raw(gid))
        .map(|gs| gs.into_iter().map(Gid::as_raw).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_admitted_whatever_the_group() {
        let g = ControlGroup {
            name: "x".into(),
            gid: 4242,
        };
        let peer = Peer {
            uid: 0,
            gid: 0,
            pid: None,
        };
        assert_eq!(g.admit(&peer), Verdict::Root);
    }

    #[test]
    fn a_peer_whose_effective_group_is_the_control_group_is_a_member() {
        let g = ControlGroup {
            name: "x".into(),
            gid: 4242,
        };
        let peer = Peer {
            uid: 65534,
            gid: 4242,
            pid: None,
        };
        assert_eq!(g.admit(&peer), Verdict::Member);
        let stranger = Peer {
            uid: 65534,
            gid: 65534,
            pid: None,
        };
        assert_eq!(g.admit(&stranger), Verdict::Refused);
    }

    #[test]
    fn a_users_group_list_holds_its_primary_group() {
        let uid = nix::unistd::getuid().as_raw();
        let gid = nix::unistd::getgid().as_raw();
        if User::from_uid(Uid::from_raw(uid)).ok().flatten().is_none() {
            eprintln!("skipped: uid {uid} has no passwd entry, so it has no group list");
            return;
        }
        assert!(user_groups(uid, gid).contains(&gid));
    }

    #[test]
    fn an_unknown_group_is_named_in_the_error() {
        let err = ControlGroup::resolve("no-such-group-tarpit-test").unwrap_err();
        assert!(
            err.to_string().contains("no-such-group-tarpit-test"),
            "{err}"
        );
    }
}
