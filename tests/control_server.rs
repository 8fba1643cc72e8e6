//! The control socket server against a mock handler: requests, bounds, peers, the socket file.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tarpit::control::client::{self, ClientError};
use tarpit::control::config::ControlConfig;
use tarpit::control::protocol::{
    AddRequest, ErrorCode, Payload, Reply, Request, MAX_REQUEST_BYTES,
};
use tarpit::control::server::{ControlServer, ServerError, ServerLimits};

use support::{own_group, root_or_skip, start};

const T: Duration = Duration::from_secs(10);

fn ask(socket: &std::path::Path, request: &Request) -> Reply {
    client::ask(socket, request, T).unwrap()
}

fn line_exchange(
    stream: &mut UnixStream,
    reader: &mut BufReader<UnixStream>,
    line: &[u8],
) -> Reply {
    stream.write_all(line).unwrap();
    let mut reply = String::new();
    reader.read_line(&mut reply).unwrap();
    serde_json::from_str(&reply).unwrap()
}

fn connect(socket: &std::path::Path) -> (UnixStream, BufReader<UnixStream>) {
    let s = UnixStream::connect(socket).unwrap();
    s.set_read_timeout(Some(T)).unwrap();
    let r = BufReader::new(s.try_clone().unwrap());
    (s, r)
}

fn error_code(reply: &Reply) -> ErrorCode {
    match reply {
        Reply::Error(e) => e.code,
        Reply::Ok(p) => panic!("expected an error, got {p:?}"),
    }
}

#[test]
fn every_request_round_trips_to_the_handler_and_back() {
    let server = start(&own_group(), ServerLimits::default());
    let s = &server.socket;
    let add = Request::Add(AddRequest {
        address: "2001:db8:1:2::/64".parse().unwrap(),
        duration: Some("3d".parse().unwrap()),
        reason: Some("spam run".into()),
        force: false,
    });
    match ask(s, &add) {
        Reply::Ok(Payload::Added(a)) => {
            assert_eq!(a.listing.remaining_secs, 3 * 86_400);
            assert_eq!(a.listing.reason, "spam run");
            assert!(!a.replaced);
        }
        other => panic!("{other:?}"),
    }
    match ask(s, &Request::List { expired: false }) {
        Reply::Ok(Payload::Listings { listings }) => {
            assert_eq!(listings.len(), 1);
            assert_eq!(listings[0].address.to_string(), "2001:db8:1:2::/64");
        }
        other => panic!("{other:?}"),
    }
    let show = Request::Show {
        address: "2001:db8:1:2::25".parse().unwrap(),
    };
    match ask(s, &show) {
        Reply::Ok(Payload::Host(h)) => {
            assert_eq!(h.listing.unwrap().address.to_string(), "2001:db8:1:2::/64");
            assert_eq!(h.history.len(), 1);
        }
        other => panic!("{other:?}"),
    }
    assert!(
        matches!(ask(s, &Request::Status {}), Reply::Ok(Payload::Status(st)) if st.counts.listed == 1)
    );
    assert!(
        matches!(ask(s, &Request::Stats {}), Reply::Ok(Payload::Stats(st)) if st.diverted_packets == 11)
    );
    assert!(matches!(
        ask(s, &Request::Reload {}),
        Reply::Ok(Payload::Reloaded(_))
    ));
    let del = Request::Del {
        address: "2001:db8:1:2::25".parse().unwrap(),
        forget: true,
    };
    match ask(s, &del) {
        Reply::Ok(Payload::Removed(r)) => {
            assert_eq!(r.removed.len(), 1);
            assert!(r.forgotten);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(error_code(&ask(s, &del)), ErrorCode::NotFound);
    assert!(matches!(ask(s, &Request::Flush {}), Reply::Ok(Payload::Flushed(f)) if f.removed == 0));
}

#[test]
fn a_malformed_request_gets_an_error_and_the_connection_stays_usable() {
    let server = start(&own_group(), ServerLimits::default());
    let (mut s, mut r) = connect(&server.socket);
    for bad in [
        &b"this is not json\n"[..],
        b"{\"cmd\":\"ban\"}\n",
        b"{\"cmd\":\"show\",\"address\":\"mail.example.org\"}\n",
        b"[1,2,3]\n",
        b"\xff\xfe\n",
    ] {
        let reply = line_exchange(&mut s, &mut r, bad);
        assert_eq!(error_code(&reply), ErrorCode::BadRequest, "{bad:?}");
    }
    // Blank lines are skipped; the next request is answered on the same connection.
    let reply = line_exchange(&mut s, &mut r, b"\n{\"cmd\":\"status\"}\n");
    assert!(matches!(reply, Reply::Ok(Payload::Status(_))), "{reply:?}");
}

#[test]
fn an_oversized_request_gets_an_error_and_is_closed_but_the_server_keeps_serving() {
    let server = start(&own_group(), ServerLimits::default());
    let (mut s, mut r) = connect(&server.socket);
    // Much more than the limit, with no newline: the server must not wait for one.
    let big = vec![b'x'; 4 * MAX_REQUEST_BYTES];
    let _ = s.write_all(&big);
    let mut reply = String::new();
    r.read_line(&mut reply).unwrap();
    let reply: Reply = serde_json::from_str(&reply).unwrap();
    assert_eq!(error_code(&reply), ErrorCode::BadRequest);
    let mut rest = Vec::new();
    // The connection is closed after the error (reset is as good as EOF here).
    let n = r.read_to_end(&mut rest).unwrap_or(0);
    assert_eq!(n, 0);
    assert!(matches!(
        ask(&server.socket, &Request::Status {}),
        Reply::Ok(_)
    ));
}

#[test]
fn a_request_just_under_the_limit_is_read() {
    let server = start(&own_group(), ServerLimits::default());
    let (mut s, mut r) = connect(&server.socket);
    let reason = "r".repeat(MAX_REQUEST_BYTES - 100);
    let mut line = serde_json::to_vec(&Request::Add(AddRequest {
        address: "192.0.2.7".parse().unwrap(),
        duration: None,
        reason: Some(reason.clone()),
        force: false,
    }))
    .unwrap();
    line.push(b'\n');
    assert!(line.len() <= MAX_REQUEST_BYTES);
    let reply = line_exchange(&mut s, &mut r, &line);
    assert!(matches!(reply, Reply::Ok(Payload::Added(a)) if a.listing.reason == reason));
}

#[test]
fn connections_over_the_limit_are_told_the_daemon_is_busy() {
    let limits = ServerLimits {
        max_connections: 2,
        ..ServerLimits::default()
    };
    let server = start(&own_group(), limits);
    let held: Vec<_> = (0..2)
        .map(|_| {
            let (mut s, mut r) = connect(&server.socket);
            // A full exchange proves each connection holds a permit.
            assert!(matches!(
                line_exchange(&mut s, &mut r, b"{\"cmd\":\"status\"}\n"),
                Reply::Ok(_)
            ));
            (s, r)
        })
        .collect();
    let err = client::ask(&server.socket, &Request::Status {}, T);
    match err {
        Ok(reply) => assert_eq!(error_code(&reply), ErrorCode::Busy),
        Err(ClientError::Io { .. }) => {} // the busy line may race the write of our request
        Err(e) => panic!("{e}"),
    }
    drop(held);
    // Permits come back when connections close.
    let mut ok = false;
    for _ in 0..50 {
        if matches!(
            client::ask(&server.socket, &Request::Status {}, T),
            Ok(Reply::Ok(_))
        ) {
            ok = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(ok, "the server never served again after connections closed");
}

#[test]
fn an_idle_connection_is_closed_after_the_idle_timeout() {
    let limits = ServerLimits {
        idle_timeout: Duration::from_millis(200),
        ..ServerLimits::default()
    };
    let server = start(&own_group(), limits);
    let (_s, mut r) = connect(&server.socket);
    let mut buf = Vec::new();
    assert_eq!(r.read_to_end(&mut buf).unwrap(), 0);
}

#[test]
fn the_socket_is_0660_in_the_control_group_in_a_created_directory_and_removed_on_shutdown() {
    let group = own_group();
    let mut server = start(&group, ServerLimits::default());
    let meta = std::fs::metadata(&server.socket).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    let gid = nix::unistd::Group::from_name(&group)
        .unwrap()
        .unwrap()
        .gid
        .as_raw();
    assert_eq!(meta.gid(), gid);
    assert_eq!(meta.uid(), nix::unistd::geteuid().as_raw());
    server.stop();
    assert!(!server.socket.exists(), "socket file left behind");
}

fn bind_in_runtime(config: &ControlConfig) -> Result<(), ServerError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async { ControlServer::bind(config).map(drop) })
}

#[test]
fn a_stale_socket_is_replaced_a_live_one_and_a_plain_file_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("control.sock");
    let config = ControlConfig {
        socket: path.clone(),
        group: own_group(),
    };
    // A socket file whose listener is gone: what a crashed daemon leaves.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    bind_in_runtime(&config).unwrap();

    let live = std::os::unix::net::UnixListener::bind(dir.path().join("live.sock")).unwrap();
    let err = bind_in_runtime(&ControlConfig {
        socket: dir.path().join("live.sock"),
        group: own_group(),
    })
    .unwrap_err();
    assert!(matches!(err, ServerError::InUse(_)), "{err}");
    drop(live);

    std::fs::write(dir.path().join("plain"), "keep me").unwrap();
    let err = bind_in_runtime(&ControlConfig {
        socket: dir.path().join("plain"),
        group: own_group(),
    })
    .unwrap_err();
    assert!(matches!(err, ServerError::NotASocket(_)), "{err}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("plain")).unwrap(),
        "keep me"
    );
}

#[test]
fn an_unknown_group_is_refused_at_bind() {
    let dir = tempfile::tempdir().unwrap();
    let err = bind_in_runtime(&ControlConfig {
        socket: dir.path().join("c.sock"),
        group: "no-such-group-for-tarpit".into(),
    })
    .unwrap_err();
    assert!(
        err.to_string().contains("no-such-group-for-tarpit"),
        "{err}"
    );
}

/// Everything the servers in this test binary log, for tests that check a warning was given.
fn log() -> Arc<Mutex<Vec<u8>>> {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let writer = Arc::clone(&buf);
        tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || SharedLog(Arc::clone(&writer)))
            .init();
        buf
    })
    .clone()
}

struct SharedLog(Arc<Mutex<Vec<u8>>>);

impl Write for SharedLog {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn nobody() -> (u32, u32) {
    let u = nix::unistd::User::from_name("nobody")
        .unwrap()
        .expect("user nobody");
    (u.uid.as_raw(), u.gid.as_raw())
}

fn tarpitctl_as(uid: u32, gid: u32, socket: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tarpitctl"))
        .args(["--socket"])
        .arg(socket)
        .arg("status")
        .uid(uid)
        .gid(gid)
        .output()
        .unwrap()
}

#[test]
fn a_peer_neither_root_nor_in_the_group_is_refused_by_its_credentials() {
    if !root_or_skip("a_peer_neither_root_nor_in_the_group_is_refused_by_its_credentials") {
        return;
    }
    let (uid, gid) = nobody();
    let log = log();
    // adm does not hold nobody; open the file's mode so the credential check is what refuses.
    let server = start("adm", ServerLimits::default());
    std::fs::set_permissions(&server.socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = tarpitctl_as(uid, gid, &server.socket);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains("for root and members of group \"adm\""),
        "{stderr}"
    );
    let logged = String::from_utf8_lossy(&log.lock().unwrap()).into_owned();
    assert!(
        logged.lines().any(|l| l.contains("WARN")
            && l.contains("refused a peer")
            && l.contains(&format!("uid={uid}"))),
        "no warning logged:\n{logged}"
    );
    // The server goes on serving those it admits.
    assert!(matches!(
        ask(&server.socket, &Request::Status {}),
        Reply::Ok(_)
    ));
}

#[test]
fn the_socket_files_mode_keeps_strangers_out_before_they_reach_the_daemon() {
    if !root_or_skip("the_socket_files_mode_keeps_strangers_out_before_they_reach_the_daemon") {
        return;
    }
    let (uid, gid) = nobody();
    let server = start("adm", ServerLimits::default());
    let out = tarpitctl_as(uid, gid, &server.socket);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("permission denied"), "{stderr}");
}

#[test]
fn a_member_of_the_control_group_is_admitted() {
    if !root_or_skip("a_member_of_the_control_group_is_admitted") {
        return;
    }
    let (uid, gid) = nobody();
    let group = nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(gid))
        .unwrap()
        .expect("nobody's group")
        .name;
    let server = start(&group, ServerLimits::default());
    let out = tarpitctl_as(uid, gid, &server.socket);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("daemon:     up"));
}
