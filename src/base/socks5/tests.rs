use super::*;

/// Feeds `answer` to `s` in pieces of `step` bytes, collecting what it asks to send.
fn feed(s: &mut Socks5, answer: &[u8], step: usize) -> (Result<Progress, Socks5Error>, Vec<u8>) {
    let mut out = Vec::new();
    let mut last = Ok(Progress::NeedMore);
    for chunk in answer.chunks(step.max(1)) {
        last = s.receive(chunk, &mut out);
        if !matches!(last, Ok(Progress::NeedMore)) {
            break;
        }
    }
    (last, out)
}

fn request(name: &str, port: u16) -> Vec<u8> {
    let mut r = vec![5, 1, 0, 3, name.len() as u8];
    r.extend_from_slice(name.as_bytes());
    r.extend_from_slice(&port.to_be_bytes());
    r
}

#[test]
fn no_auth_connect_sends_the_name_as_a_domain_name_in_any_split() {
    for step in [1, 2, 3, 100] {
        let (mut s, greeting) = Socks5::start("peer.example", 8333, None).unwrap();
        assert_eq!(greeting, [5, 1, 0], "one method: no authentication");
        let (r, out) = feed(&mut s, &[5, 0], step);
        assert_eq!((r, out), (Ok(Progress::NeedMore), request("peer.example", 8333)));
        // Reply with an IPv4 bound address, then two bytes that are already the peer's.
        let (r, out) = feed(&mut s, &[5, 0, 0, 1, 127, 0, 0, 1, 0x20, 0x8d, 0xf9, 0xbe], 100);
        assert_eq!(r, Ok(Progress::Connected { used: 10 }), "step {step}");
        assert!(out.is_empty() && s.is_connected());
    }
}

#[test]
fn an_ip_literal_also_goes_as_a_name_as_core_sends_it() {
    let (mut s, _) = Socks5::start("127.0.0.5", 18444, None).unwrap();
    let (_, out) = feed(&mut s, &[5, 0], 1);
    assert_eq!(out, request("127.0.0.5", 18444));
}

#[test]
fn username_and_password_when_the_proxy_picks_them() {
    let mut creds = IsolationCredentials::new([0xab; 8]);
    let c = creds.next_credentials();
    assert_eq!((c.username.as_str(), c.password.as_str()), ("abababababababab-0", "abababababababab-0"));
    assert_eq!(creds.next_credentials().username, "abababababababab-1", "a new pair per connection");
    let (mut s, greeting) = Socks5::start("x.onion", 8333, Some(&c)).unwrap();
    assert_eq!(greeting, [5, 2, 0, 2]);
    let (r, out) = feed(&mut s, &[5, 2], 1);
    let mut auth = vec![1, 18];
    auth.extend_from_slice(b"abababababababab-0");
    auth.push(18);
    auth.extend_from_slice(b"abababababababab-0");
    assert_eq!((r, out), (Ok(Progress::NeedMore), auth));
    let (r, out) = feed(&mut s, &[1, 0], 1);
    assert_eq!((r, out), (Ok(Progress::NeedMore), request("x.onion", 8333)));
    // Domain-name bound address, split byte by byte.
    let mut reply = vec![5, 0, 0, 3, 4];
    reply.extend_from_slice(b"abcd");
    reply.extend_from_slice(&[0, 80]);
    assert_eq!(feed(&mut s, &reply, 1).0, Ok(Progress::Connected { used: 1 }));
    assert!(s.is_connected());
    // A proxy that takes no authentication is fine even when we offered it.
    let (mut s, _) = Socks5::start("x.onion", 8333, Some(&c)).unwrap();
    assert_eq!(feed(&mut s, &[5, 0], 2).1, request("x.onion", 8333));
}

#[test]
fn refusals_and_protocol_errors_say_why() {
    let refused = |code: u8| {
        let (mut s, _) = Socks5::start("a.b", 1, None).unwrap();
        assert_eq!(feed(&mut s, &[5, 0], 2).0, Ok(Progress::NeedMore));
        feed(&mut s, &[5, code, 0, 1], 4).0
    };
    assert_eq!(refused(5).unwrap_err().to_string(), "proxy could not connect: connection refused");
    assert_eq!(refused(4).unwrap_err().to_string(), "proxy could not connect: host unreachable");
    assert_eq!(
        refused(0xf0).unwrap_err().to_string(),
        "proxy could not connect: onion service descriptor can not be found"
    );
    assert_eq!(refused(0x42).unwrap_err().to_string(), "proxy could not connect: unknown (0x42)");

    let (mut s, _) = Socks5::start("a.b", 1, None).unwrap();
    assert_eq!(feed(&mut s, &[4, 0], 1).0, Err(Socks5Error::NotSocks5));
    let (mut s, _) = Socks5::start("a.b", 1, None).unwrap();
    assert_eq!(feed(&mut s, &[5, 2], 2).0, Err(Socks5Error::AuthMethod(2)), "user/pass not offered");
    let (mut s, _) = Socks5::start("a.b", 1, None).unwrap();
    assert_eq!(feed(&mut s, &[5, 0xff], 2).0, Err(Socks5Error::AuthMethod(0xff)));
    let c = Credentials { username: "u".into(), password: "p".into() };
    let (mut s, _) = Socks5::start("a.b", 1, Some(&c)).unwrap();
    assert_eq!(feed(&mut s, &[5, 2], 2).0, Ok(Progress::NeedMore));
    assert_eq!(feed(&mut s, &[1, 1], 2).0, Err(Socks5Error::AuthFailed));
    for bad in [[5, 0, 1, 1], [5, 0, 0, 9], [6, 0, 0, 1]] {
        let (mut s, _) = Socks5::start("a.b", 1, None).unwrap();
        assert_eq!(feed(&mut s, &[5, 0], 2).0, Ok(Progress::NeedMore));
        assert_eq!(feed(&mut s, &bad, 4).0, Err(Socks5Error::Malformed), "{bad:?}");
    }
}

#[test]
fn names_and_credentials_past_255_bytes_are_refused_before_anything_is_sent() {
    assert_eq!(Socks5::start(&"a".repeat(256), 1, None).unwrap_err(), Socks5Error::NameTooLong);
    assert!(Socks5::start(&"a".repeat(255), 1, None).is_ok());
    let c = Credentials { username: "u".repeat(256), password: String::new() };
    assert_eq!(Socks5::start("a.b", 1, Some(&c)).unwrap_err(), Socks5Error::CredentialsTooLong);
}

#[test]
fn any_answer_bytes_never_panic_and_stay_bounded() {
    use rand::RngExt;
    let mut rng = rand::rng();
    for _ in 0..2000 {
        let c = Credentials { username: "u".into(), password: "p".into() };
        let (mut s, _) = Socks5::start("a.b", 1, rng.random::<bool>().then_some(&c)).unwrap();
        let len = rng.random_range(0..600);
        let mut bytes = vec![0u8; len];
        rng.fill(&mut bytes[..]);
        // Mostly well-formed heads so the deeper states are reached.
        if len >= 6 && rng.random::<bool>() {
            bytes[..6].copy_from_slice(&[5, 0, 5, 0, 0, 3]);
        }
        let (r, _) = feed(&mut s, &bytes, rng.random_range(1..10));
        if let Ok(Progress::Connected { used }) = r {
            assert!(used <= len);
        }
        assert!(s.got.len() <= MAX_REPLY);
    }
}
