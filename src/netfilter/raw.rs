//! The few places where the netfilter driver calls `libnftnl`/`libmnl` directly.
//!
//! The safe `nftnl` 0.9 API lacks set flags, per-element timeouts, element messages without
//! `NLM_F_EXCL`, set flushes, the `redir` and xtables `target` expressions, rule compat
//! attributes and every kind of dump parsing. Each gap is closed here by one small safe
//! function or type whose `unsafe` block says why it is sound. This module owns no policy: it
//! never decides what goes into the kernel, it only encodes and decodes messages. Nothing
//! outside this file may use `unsafe`.

use std::cell::Cell;
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::io;
use std::os::fd::RawFd;
use std::ptr::{self, NonNull};

use nftnl::expr::{Expression, Register};
use nftnl::nftnl_sys as sys;
use nftnl::set::{Set, SetKey};
use nftnl::{MsgType, NlMsg, ProtoFamily, Rule};

/// `NFTA_RULE_COMPAT` and its two members, from `linux/netfilter/nf_tables.h`.
const NFTA_RULE_COMPAT: u16 = 5;
const NFTA_RULE_COMPAT_PROTO: u16 = 1;
const NFTA_RULE_COMPAT_FLAGS: u16 = 2;

/// Sets a set's `NFTNL_SET_FLAGS` (for example `interval | timeout`), which `nftnl` only
/// exposes for anonymous sets.
pub(crate) fn set_flags<K>(set: &Set<'_, K>, flags: u32) {
    // SAFETY: `as_ptr` is the live `nftnl_set` owned by `set`, which outlives the call;
    // `nftnl_set_set_u32` copies the value and keeps no pointer to it.
    unsafe { sys::nftnl_set_set_u32(set.as_ptr().as_ptr(), sys::NFTNL_SET_FLAGS as u16, flags) }
}

/// Appends one element to `set`: `key` (the set's key length), an optional timeout in
/// milliseconds and, for the first address after an interval, the `INTERVAL_END` flag.
pub(crate) fn add_element<K: SetKey>(
    set: &Set<'_, K>,
    key: &[u8],
    timeout_ms: Option<u64>,
    interval_end: bool,
) {
    debug_assert_eq!(key.len(), K::LEN as usize);
    // SAFETY: `nftnl_set_elem_alloc` aborts-or-returns a fresh element (checked for null:
    // on allocation failure we abort like `nftnl` itself does). `nftnl_set_elem_set` copies
    // `key.len()` bytes out of the live slice. `nftnl_set_elem_add` moves the element into
    // the live set, which frees it when the set is dropped, so nothing here is freed twice.
    unsafe {
        let Some(elem) = NonNull::new(sys::nftnl_set_elem_alloc()) else {
            std::process::abort();
        };
        let elem = elem.as_ptr();
        sys::nftnl_set_elem_set(
            elem,
            sys::NFTNL_SET_ELEM_KEY as u16,
            key.as_ptr().cast::<c_void>(),
            key.len() as u32,
        );
        if let Some(ms) = timeout_ms {
            sys::nftnl_set_elem_set_u64(elem, sys::NFTNL_SET_ELEM_TIMEOUT as u16, ms);
        }
        if interval_end {
            sys::nftnl_set_elem_set_u32(
                elem,
                sys::NFTNL_SET_ELEM_FLAGS as u16,
                libc::NFT_SET_ELEM_INTERVAL_END as u32,
            );
        }
        sys::nftnl_set_elem_add(set.as_ptr().as_ptr(), elem);
    }
}

/// What an element message does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ElemOp {
    /// `NEWSETELEM` with `NLM_F_EXCL`: an element that is already there fails the batch.
    Create,
    /// `NEWSETELEM` without `NLM_F_EXCL`: an element that is already there is accepted (and,
    /// on kernels since 6.10, takes the new timeout).
    Upsert,
    /// `DELSETELEM`: an element that is not there fails the batch.
    Delete,
}

/// Writes all elements of `set` into `batch` as one or more element messages (libnftnl
/// splits them at 64 KiB each); returns how many messages were written.
pub(crate) fn push_elements<K>(batch: &mut nftnl::Batch, set: &Set<'_, K>, op: ElemOp) -> usize {
    // SAFETY: the iterator is created from the live set and destroyed below before `set`
    // can be dropped (it borrows `set` for this whole function). `nftnl_set_elems_iter_cur`
    // only reads the iterator.
    let iter = unsafe { sys::nftnl_set_elems_iter_create(set.as_ptr().as_ptr()) };
    let Some(iter) = NonNull::new(iter) else {
        std::process::abort();
    };
    let msg = ElemsMsg {
        iter,
        family: set.get_family() as u16,
        op,
        more: Cell::new(1),
    };
    let mut count = 0;
    // SAFETY: as above, the iterator is live.
    while msg.more.get() > 0 && !unsafe { sys::nftnl_set_elems_iter_cur(iter.as_ptr()) }.is_null() {
        batch.add(&msg, MsgType::Add);
        count += 1;
    }
    // SAFETY: created above, destroyed once, not used afterwards.
    unsafe { sys::nftnl_set_elems_iter_destroy(iter.as_ptr()) };
    count
}

/// One element message drawn from a live element iterator.
struct ElemsMsg {
    iter: NonNull<sys::nftnl_set_elems_iter>,
    family: u16,
    op: ElemOp,
    more: Cell<i32>,
}

// SAFETY: `write` writes one netlink message into the batch buffer `nftnl::Batch` hands it,
// which has room for `nft_nlmsg_maxsize()` bytes; libnftnl's payload builder stops each
// message below that size and reports through its return value whether elements remain.
unsafe impl NlMsg for ElemsMsg {
    unsafe fn write(&self, buf: *mut c_void, seq: u32, _msg_type: MsgType) {
        let (kind, flags) = match self.op {
            ElemOp::Create => (
                libc::NFT_MSG_NEWSETELEM,
                libc::NLM_F_CREATE | libc::NLM_F_EXCL | libc::NLM_F_ACK,
            ),
            ElemOp::Upsert => (
                libc::NFT_MSG_NEWSETELEM,
                libc::NLM_F_CREATE | libc::NLM_F_ACK,
            ),
            ElemOp::Delete => (libc::NFT_MSG_DELSETELEM, libc::NLM_F_ACK),
        };
        // SAFETY: see the impl's comment; `iter` is live while the message exists.
        unsafe {
            let nlh = sys::nftnl_nlmsg_build_hdr(
                buf.cast::<c_char>(),
                kind as u16,
                self.family,
                flags as u16,
                seq,
            );
            self.more.set(sys::nftnl_set_elems_nlmsg_build_payload_iter(
                nlh,
                self.iter.as_ptr(),
            ));
        }
    }
}

/// A `DELSETELEM` message without elements: the kernel empties the whole set.
pub(crate) struct FlushSet<'a, 'b, K>(pub(crate) &'a Set<'b, K>);

// SAFETY: writes one small message (header plus table and set names) into the batch buffer.
unsafe impl<K> NlMsg for FlushSet<'_, '_, K> {
    unsafe fn write(&self, buf: *mut c_void, seq: u32, _msg_type: MsgType) {
        // SAFETY: the set is live; libnftnl adds no element list when the set has no elements.
        unsafe {
            let nlh = sys::nftnl_nlmsg_build_hdr(
                buf.cast::<c_char>(),
                libc::NFT_MSG_DELSETELEM as u16,
                self.0.get_family() as u16,
                libc::NLM_F_ACK as u16,
                seq,
            );
            sys::nftnl_set_elems_nlmsg_build_payload(nlh, self.0.as_ptr().as_ptr());
        }
    }
}

/// The `redir` expression: redirect to this host, port taken from `port_register`.
pub(crate) struct Redir {
    pub(crate) port_register: Register,
}

impl Expression for Redir {
    fn to_expr(&self, _rule: &Rule) -> NonNull<sys::nftnl_expr> {
        // SAFETY: a fresh expression is allocated (abort on null, as nftnl does) and handed
        // to the caller, which passes it to `nftnl_rule_add_expr` (the rule then owns it).
        unsafe {
            let Some(expr) = NonNull::new(sys::nftnl_expr_alloc(c"redir".as_ptr())) else {
                std::process::abort();
            };
            sys::nftnl_expr_set_u32(
                expr.as_ptr(),
                sys::NFTNL_EXPR_REDIR_REG_PROTO_MIN as u16,
                self.port_register.to_raw(),
            );
            expr
        }
    }
}

/// The xtables compat `target` expression with the given target name, revision 0 and
/// `info_len` zero bytes of target info (for `TARPIT`: variant 0, plain tarpit).
pub(crate) struct XtTarget {
    pub(crate) name: &'static CStr,
    pub(crate) info_len: usize,
}

impl Expression for XtTarget {
    fn to_expr(&self, _rule: &Rule) -> NonNull<sys::nftnl_expr> {
        // SAFETY: a fresh expression as in `Redir`. libnftnl's `target` expression takes
        // ownership of the info buffer (it keeps the pointer and `free`s it with the
        // expression), so the buffer must come from `malloc` and must not be freed here:
        // `calloc` gives zeroed memory, and its ownership moves to the expression.
        unsafe {
            let Some(expr) = NonNull::new(sys::nftnl_expr_alloc(c"target".as_ptr())) else {
                std::process::abort();
            };
            sys::nftnl_expr_set_str(
                expr.as_ptr(),
                sys::NFTNL_EXPR_TG_NAME as u16,
                self.name.as_ptr(),
            );
            sys::nftnl_expr_set_u32(expr.as_ptr(), sys::NFTNL_EXPR_TG_REV as u16, 0);
            let info = libc::calloc(1, self.info_len.max(1));
            if info.is_null() {
                std::process::abort();
            }
            sys::nftnl_expr_set(
                expr.as_ptr(),
                sys::NFTNL_EXPR_TG_INFO as u16,
                info,
                self.info_len as u32,
            );
            expr
        }
    }
}

/// A rule message followed by the `NFTA_RULE_COMPAT` attribute (layer-4 protocol), which
/// xtables targets such as `TARPIT` (`.proto = IPPROTO_TCP`) require and `nftnl` cannot set.
pub(crate) struct CompatRule<'a> {
    pub(crate) rule: Rule<'a>,
    pub(crate) l4proto: u32,
}

// SAFETY: the inner rule writes its message into the batch buffer; the few bytes appended
// here (a 4-byte nest header and two 8-byte attributes) fit easily in the buffer's
// `nft_nlmsg_maxsize()` room, and `mnl_attr_*` update `nlmsg_len` for them.
unsafe impl NlMsg for CompatRule<'_> {
    unsafe fn write(&self, buf: *mut c_void, seq: u32, msg_type: MsgType) {
        // SAFETY: see the impl's comment; `buf` starts with the header the rule just wrote.
        unsafe {
            self.rule.write(buf, seq, msg_type);
            let nlh = buf.cast::<libc::nlmsghdr>();
            let nest = mnl::mnl_sys::mnl_attr_nest_start(nlh, NFTA_RULE_COMPAT);
            mnl::mnl_sys::mnl_attr_put_u32(nlh, NFTA_RULE_COMPAT_PROTO, self.l4proto.to_be());
            mnl::mnl_sys::mnl_attr_put_u32(nlh, NFTA_RULE_COMPAT_FLAGS, 0);
            mnl::mnl_sys::mnl_attr_nest_end(nlh, nest);
        }
    }
}

/// What a dump request asks for.
#[derive(Debug, Clone, Copy)]
pub(crate) enum DumpOf<'a> {
    /// All elements of one set (`GETSETELEM`).
    Elements { set: &'a CStr },
    /// All sets of the table (`GETSET`).
    Sets,
    /// All rules of the table (`GETRULE`).
    Rules,
}

/// Builds a `NLM_F_DUMP` request for `what` in table `table` of `family`.
pub(crate) fn dump_request(
    family: ProtoFamily,
    table: &CStr,
    what: DumpOf<'_>,
    seq: u32,
) -> Vec<u8> {
    let mut buf = vec![0u8; nftnl::nft_nlmsg_maxsize() as usize];
    let flags = libc::NLM_F_DUMP as u16;
    let kind = match what {
        DumpOf::Elements { .. } => libc::NFT_MSG_GETSETELEM,
        DumpOf::Sets => libc::NFT_MSG_GETSET,
        DumpOf::Rules => libc::NFT_MSG_GETRULE,
    };
    // SAFETY: `buf` has room for the largest message libnftnl builds; the temporary objects
    // are allocated (abort on null), given copies of the names, used to build the payload,
    // and freed exactly once before returning. `nlmsg_len` is read from the header just built.
    unsafe {
        let nlh = sys::nftnl_nlmsg_build_hdr(
            buf.as_mut_ptr().cast::<c_char>(),
            kind as u16,
            family as u16,
            flags,
            seq,
        );
        if let DumpOf::Rules = what {
            let r = alloc_or_abort(sys::nftnl_rule_alloc());
            sys::nftnl_rule_set_str(r, sys::NFTNL_RULE_TABLE as u16, table.as_ptr());
            sys::nftnl_rule_nlmsg_build_payload(nlh, r);
            sys::nftnl_rule_free(r);
        } else {
            let s = alloc_or_abort(sys::nftnl_set_alloc());
            sys::nftnl_set_set_str(s, sys::NFTNL_SET_TABLE as u16, table.as_ptr());
            if let DumpOf::Elements { set } = what {
                sys::nftnl_set_set_str(s, sys::NFTNL_SET_NAME as u16, set.as_ptr());
                sys::nftnl_set_elems_nlmsg_build_payload(nlh, s);
            } else {
                sys::nftnl_set_nlmsg_build_payload(nlh, s);
            }
            sys::nftnl_set_free(s);
        }
        let len = (*nlh).nlmsg_len as usize;
        buf.truncate(len);
    }
    buf
}

fn alloc_or_abort<T>(p: *mut T) -> *mut T {
    if p.is_null() {
        std::process::abort();
    }
    p
}

/// One set element as the kernel reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawElem {
    pub(crate) key: Vec<u8>,
    pub(crate) interval_end: bool,
    /// Remaining time in milliseconds, when the element has a timeout.
    pub(crate) expires_ms: Option<u64>,
}

/// Parses one `NEWSETELEM` dump message (a whole netlink message, header included) and
/// appends its elements to `out`. Returns false when libnftnl cannot parse it.
pub(crate) fn parse_elements(msg: &[u8], out: &mut Vec<RawElem>) -> bool {
    if !holds_header(msg) {
        return false;
    }
    // SAFETY: `msg` is one complete netlink message (checked: at least a header and no
    // shorter than its `nlmsg_len`), aligned by the caller's u64 buffer; libnftnl only reads
    // it. The temporary set is freed once. `collect_elem` receives `out` as its data pointer
    // and runs only during `nftnl_set_elem_foreach`, while the `&mut` borrow is live.
    unsafe {
        let s = alloc_or_abort(sys::nftnl_set_alloc());
        let ok = sys::nftnl_set_elems_nlmsg_parse(msg.as_ptr().cast::<libc::nlmsghdr>(), s) >= 0;
        if ok {
            sys::nftnl_set_elem_foreach(s, Some(collect_elem), ptr::from_mut(out).cast::<c_void>());
        }
        sys::nftnl_set_free(s);
        ok
    }
}

unsafe extern "C" fn collect_elem(e: *mut sys::nftnl_set_elem, data: *mut c_void) -> c_int {
    // SAFETY: called by `nftnl_set_elem_foreach` from `parse_elements` with a live element
    // and the `Vec<RawElem>` pointer passed there. Every attribute is checked with
    // `nftnl_set_elem_is_set` before it is read, because the getters dereference the
    // attribute unconditionally; the key is copied out of libnftnl's memory.
    unsafe {
        let out = &mut *data.cast::<Vec<RawElem>>();
        if !sys::nftnl_set_elem_is_set(e, sys::NFTNL_SET_ELEM_KEY as u16) {
            return 0;
        }
        let mut len = 0u32;
        let key = sys::nftnl_set_elem_get(e, sys::NFTNL_SET_ELEM_KEY as u16, &mut len);
        if key.is_null() {
            return 0;
        }
        let key = std::slice::from_raw_parts(key.cast::<u8>(), len as usize).to_vec();
        let flags = if sys::nftnl_set_elem_is_set(e, sys::NFTNL_SET_ELEM_FLAGS as u16) {
            sys::nftnl_set_elem_get_u32(e, sys::NFTNL_SET_ELEM_FLAGS as u16)
        } else {
            0
        };
        let expires_ms = if sys::nftnl_set_elem_is_set(e, sys::NFTNL_SET_ELEM_EXPIRATION as u16) {
            Some(sys::nftnl_set_elem_get_u64(
                e,
                sys::NFTNL_SET_ELEM_EXPIRATION as u16,
            ))
        } else {
            None
        };
        out.push(RawElem {
            key,
            interval_end: flags & libc::NFT_SET_ELEM_INTERVAL_END as u32 != 0,
            expires_ms,
        });
    }
    0
}

/// Parses one `NEWSET` dump message and returns the set's name.
pub(crate) fn parse_set_name(msg: &[u8]) -> Option<String> {
    if !holds_header(msg) {
        return None;
    }
    // SAFETY: as in `parse_elements`; the name is copied before the set is freed.
    unsafe {
        let s = alloc_or_abort(sys::nftnl_set_alloc());
        let mut name = None;
        if sys::nftnl_set_nlmsg_parse(msg.as_ptr().cast::<libc::nlmsghdr>(), s) >= 0
            && sys::nftnl_set_is_set(s, sys::NFTNL_SET_NAME as u16)
        {
            let p = sys::nftnl_set_get_str(s, sys::NFTNL_SET_NAME as u16);
            if !p.is_null() {
                name = Some(CStr::from_ptr(p).to_string_lossy().into_owned());
            }
        }
        sys::nftnl_set_free(s);
        name
    }
}

/// A rule as the kernel reported it: its chain, its counter and a text rendering.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RawRule {
    pub(crate) chain: String,
    pub(crate) packets: u64,
    pub(crate) bytes: u64,
    /// libnftnl's own rendering, e.g. `[ counter pkts 0 bytes 0 ]` per expression.
    pub(crate) text: String,
    /// The `NFTA_RULE_COMPAT` layer-4 protocol, when present.
    pub(crate) compat_proto: Option<u32>,
}

/// Parses one `NEWRULE` message (from a dump or from a batch).
pub(crate) fn parse_rule(msg: &[u8]) -> Option<RawRule> {
    if !holds_header(msg) {
        return None;
    }
    // SAFETY: as in `parse_elements`. `sum_counter` gets the `RawRule` as data pointer and
    // runs only inside `nftnl_expr_foreach`. `nftnl_rule_snprintf` writes at most
    // `text.len()` bytes including the terminating NUL into `text`.
    unsafe {
        let r = alloc_or_abort(sys::nftnl_rule_alloc());
        if sys::nftnl_rule_nlmsg_parse(msg.as_ptr().cast::<libc::nlmsghdr>(), r) < 0 {
            sys::nftnl_rule_free(r);
            return None;
        }
        let mut out = RawRule::default();
        if sys::nftnl_rule_is_set(r, sys::NFTNL_RULE_CHAIN as u16) {
            let p = sys::nftnl_rule_get_str(r, sys::NFTNL_RULE_CHAIN as u16);
            if !p.is_null() {
                out.chain = CStr::from_ptr(p).to_string_lossy().into_owned();
            }
        }
        if sys::nftnl_rule_is_set(r, sys::NFTNL_RULE_COMPAT_PROTO as u16) {
            out.compat_proto = Some(sys::nftnl_rule_get_u32(
                r,
                sys::NFTNL_RULE_COMPAT_PROTO as u16,
            ));
        }
        sys::nftnl_expr_foreach(
            r,
            Some(sum_counter),
            ptr::from_mut(&mut out).cast::<c_void>(),
        );
        let mut text = vec![0u8; 4096];
        let n = sys::nftnl_rule_snprintf(
            text.as_mut_ptr().cast::<c_char>(),
            text.len(),
            r,
            sys::NFTNL_OUTPUT_DEFAULT,
            0,
        );
        if n > 0 {
            text.truncate((n as usize).min(text.len() - 1));
            out.text = String::from_utf8_lossy(&text).into_owned();
        }
        sys::nftnl_rule_free(r);
        Some(out)
    }
}

unsafe extern "C" fn sum_counter(e: *mut sys::nftnl_expr, data: *mut c_void) -> c_int {
    // SAFETY: called by `nftnl_expr_foreach` from `parse_rule` with a live expression and
    // the `RawRule` pointer passed there; attributes are checked before they are read.
    unsafe {
        let out = &mut *data.cast::<RawRule>();
        let name = sys::nftnl_expr_get_str(e, sys::NFTNL_EXPR_NAME as u16);
        if name.is_null() || CStr::from_ptr(name) != c"counter" {
            return 0;
        }
        if sys::nftnl_expr_is_set(e, sys::NFTNL_EXPR_CTR_PACKETS as u16) {
            out.packets += sys::nftnl_expr_get_u64(e, sys::NFTNL_EXPR_CTR_PACKETS as u16);
        }
        if sys::nftnl_expr_is_set(e, sys::NFTNL_EXPR_CTR_BYTES as u16) {
            out.bytes += sys::nftnl_expr_get_u64(e, sys::NFTNL_EXPR_CTR_BYTES as u16);
        }
    }
    0
}

/// True when `msg` starts with a netlink header whose length fits inside `msg`.
fn holds_header(msg: &[u8]) -> bool {
    const HDR: usize = std::mem::size_of::<libc::nlmsghdr>();
    msg.len() >= HDR
        && u32::from_ne_bytes([msg[0], msg[1], msg[2], msg[3]]) as usize <= msg.len()
        && msg.as_ptr().align_offset(4) == 0
}

/// The file descriptor of an `mnl` socket, for socket options and non-blocking reads.
pub(crate) fn socket_fd(socket: &mnl::Socket) -> RawFd {
    // SAFETY: `as_raw_socket` is the live `mnl_socket` owned by `socket`; the call only
    // reads its descriptor field.
    unsafe { mnl::mnl_sys::mnl_socket_get_fd(socket.as_raw_socket()) }
}

/// Sets an integer socket option.
pub(crate) fn set_int_option(fd: RawFd, level: c_int, name: c_int, value: c_int) -> io::Result<()> {
    // SAFETY: `value` is a live `c_int` and its exact size is passed; the kernel copies it.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            ptr::from_ref(&value).cast::<c_void>(),
            std::mem::size_of::<c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Sends `pages` as ONE netlink datagram to the kernel (`sendmsg` with one iovec per page),
/// without first copying them into one buffer.
pub(crate) fn send_datagram(fd: RawFd, pages: &[&[u8]]) -> io::Result<usize> {
    let mut iov: Vec<libc::iovec> = pages
        .iter()
        .map(|p| libc::iovec {
            iov_base: p.as_ptr().cast_mut().cast::<c_void>(),
            iov_len: p.len(),
        })
        .collect();
    // SAFETY: an all-zero `sockaddr_nl` and `msghdr` are valid values of these plain C
    // structs; the kernel only reads the pages (the `*mut` in `iovec` is C's lack of const),
    // the address and the iovec array, all of which outlive the call.
    unsafe {
        let mut kernel: libc::sockaddr_nl = std::mem::zeroed();
        kernel.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_name = ptr::from_mut(&mut kernel).cast::<c_void>();
        msg.msg_namelen = std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t;
        msg.msg_iov = iov.as_mut_ptr();
        msg.msg_iovlen = iov.len() as _;
        let n = libc::sendmsg(fd, &msg, 0);
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }
}

/// Sets a socket's receive timeout (so a lost reply cannot hang the daemon).
pub(crate) fn set_recv_timeout(fd: RawFd, timeout: std::time::Duration) -> io::Result<()> {
    let tv = libc::timeval {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_usec: timeout.subsec_micros() as libc::suseconds_t,
    };
    // SAFETY: `tv` is a live `timeval` and its exact size is passed; the kernel copies it.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            ptr::from_ref(&tv).cast::<c_void>(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Receives one datagram into `buf`; with `wait == false` returns `Ok(None)` instead of
/// blocking when nothing is queued. A datagram longer than `buf` is an error.
pub(crate) fn recv(fd: RawFd, buf: &mut [u8], wait: bool) -> io::Result<Option<usize>> {
    let flags = if wait { 0 } else { libc::MSG_DONTWAIT } | libc::MSG_TRUNC;
    // SAFETY: the kernel writes at most `buf.len()` bytes into the live, exclusively
    // borrowed buffer.
    let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast::<c_void>(), buf.len(), flags) };
    if n < 0 {
        let err = io::Error::last_os_error();
        return match err.kind() {
            io::ErrorKind::WouldBlock if !wait => Ok(None),
            _ => Err(err),
        };
    }
    let n = n as usize;
    if n > buf.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "netlink reply of {n} bytes did not fit the {}-byte buffer",
                buf.len()
            ),
        ));
    }
    Ok(Some(n))
}

/// A receive buffer aligned for netlink headers (netlink messages are 4-byte aligned inside
/// a datagram, so an 8-byte-aligned start keeps every message aligned).
pub(crate) struct AlignedBuf {
    words: Vec<u64>,
}

impl AlignedBuf {
    /// A zeroed buffer of at least `bytes` bytes.
    pub(crate) fn new(bytes: usize) -> Self {
        Self {
            words: vec![0u64; bytes.div_ceil(8)],
        }
    }

    /// Copies `bytes` into a fresh aligned buffer.
    pub(crate) fn copy_of(bytes: &[u8]) -> Self {
        let mut buf = Self::new(bytes.len());
        buf.bytes_mut()[..bytes.len()].copy_from_slice(bytes);
        buf
    }

    /// The buffer as bytes.
    pub(crate) fn bytes(&self) -> &[u8] {
        // SAFETY: a `u64` slice is valid as a byte slice of 8 times its length, with the
        // same lifetime and borrow; `u8` has no alignment or validity requirements.
        unsafe {
            std::slice::from_raw_parts(self.words.as_ptr().cast::<u8>(), self.words.len() * 8)
        }
    }

    /// The buffer as mutable bytes.
    pub(crate) fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `bytes`, with the exclusive borrow carried over; every byte pattern
        // is a valid `u64`, so writes through the byte view cannot break the words.
        unsafe {
            std::slice::from_raw_parts_mut(
                self.words.as_mut_ptr().cast::<u8>(),
                self.words.len() * 8,
            )
        }
    }
}

/// A table name as the C string libnftnl needs; `None` when it holds a NUL byte.
pub(crate) fn c_name(name: &str) -> Option<CString> {
    CString::new(name).ok()
}
