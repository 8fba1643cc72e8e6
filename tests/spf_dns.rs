//! SPF records resolved over real DNS from a name server on loopback: the configured
//! `spf_nameserver` is used, the walk follows include/redirect/a/mx, and a server that stops
//! answering leaves the last good answer in place.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_resolver::proto::rr::rdata::{A, AAAA, MX, TXT};
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};
use tarpit::policy::spf::SpfAllow;
use tarpit::policy::spf_dns::DnsResolver;

/// A tiny authoritative server for example.org's test zone, answering over UDP on loopback.
fn serve(up: Arc<AtomicBool>) -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        loop {
            let Ok((n, peer)) = socket.recv_from(&mut buf) else {
                return;
            };
            if !up.load(Ordering::SeqCst) {
                continue; // a dead server: the client times out
            }
            let Ok(query) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let mut reply = Message::new(query.metadata.id, MessageType::Response, OpCode::Query);
            reply.metadata.recursion_desired = query.metadata.recursion_desired;
            reply.metadata.recursion_available = true;
            reply.metadata.authoritative = true;
            let mut found = false;
            for q in &query.queries {
                reply.add_query(q.clone());
                let name = q.name().to_ascii().to_lowercase();
                for data in answers(&name, q.query_type()) {
                    found = true;
                    reply.add_answer(Record::from_rdata(q.name().clone(), 60, data));
                }
            }
            if !found {
                reply.metadata.response_code = ResponseCode::NXDomain;
            }
            if let Ok(bytes) = reply.to_vec() {
                let _ = socket.send_to(&bytes, peer);
            }
        }
    });
    addr
}

fn answers(name: &str, kind: RecordType) -> Vec<RData> {
    let txt = |s: &str| vec![RData::TXT(TXT::new(vec![s.to_owned()]))];
    match (name, kind) {
        ("example.org.", RecordType::TXT) => {
            txt("v=spf1 mx include:_spf.example.org redirect=_rest.example.org")
        }
        ("_spf.example.org.", RecordType::TXT) => {
            txt("v=spf1 ip4:192.0.2.0/28 a:out.example.org ~all")
        }
        ("_rest.example.org.", RecordType::TXT) => txt("v=spf1 ip6:2001:db8:26::/48 -all"),
        ("example.org.", RecordType::MX) => vec![RData::MX(MX::new(
            10,
            Name::from_str("mx1.example.org.").unwrap(),
        ))],
        ("mx1.example.org.", RecordType::A) => {
            vec![RData::A(A::from_str("198.51.100.25").unwrap())]
        }
        ("out.example.org.", RecordType::AAAA) => {
            vec![RData::AAAA(AAAA::from_str("2001:db8:25::1").unwrap())]
        }
        _ => Vec::new(),
    }
}

#[test]
fn spf_hosts_come_from_the_configured_name_server_and_survive_its_outage() {
    let up = Arc::new(AtomicBool::new(true));
    let addr = serve(up.clone());
    let resolver = DnsResolver::new(Some(addr)).unwrap();
    let mut spf = SpfAllow::default();
    let domains = vec!["example.org".to_string()];
    let errors = spf.refresh(&resolver, &domains);
    assert!(errors.is_empty(), "{errors:?}");
    let nets = spf.networks();
    let got: Vec<String> = nets.iter().map(|(n, _)| n.to_string()).collect();
    assert!(got.contains(&"198.51.100.25/32".to_string()), "{got:?}");
    assert!(got.contains(&"192.0.2.0/28".to_string()), "{got:?}");
    assert!(got.contains(&"2001:db8:25::1/128".to_string()), "{got:?}");
    assert!(got.contains(&"2001:db8:26::/48".to_string()), "{got:?}");
    let mx = nets
        .iter()
        .find(|(n, _)| n.contains(&"198.51.100.25".parse::<IpAddr>().unwrap()))
        .unwrap();
    assert_eq!(mx.1, "example.org: mx");

    up.store(false, Ordering::SeqCst);
    let started = std::time::Instant::now();
    let errors = spf.refresh(&resolver, &domains);
    assert_eq!(errors.len(), 1, "the outage is reported");
    assert_eq!(spf.networks(), nets, "the last good answer is kept");
    assert!(started.elapsed() < Duration::from_secs(120));
}
