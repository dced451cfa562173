use super::*;

fn replies(bytes: &[u8], step: usize) -> Result<Vec<Reply>, TorError> {
    let mut r = ReplyReader::default();
    let mut out = Vec::new();
    for chunk in bytes.chunks(step.max(1)) {
        r.feed(chunk, |rep| out.push(rep))?;
    }
    Ok(out)
}

const PROTOCOLINFO: &[u8] = b"250-PROTOCOLINFO 1\r\n250-AUTH METHODS=COOKIE,SAFECOOKIE COOKIEFILE=\"/var/lib/tor/control_auth_cookie\"\r\n250-VERSION Tor=\"0.4.9.11\"\r\n250 OK\r\n";

#[test]
fn replies_parse_in_any_split_with_data_lines() {
    let mut bytes = PROTOCOLINFO.to_vec();
    bytes.extend_from_slice(b"250+onions/current=\r\nabc\r\n..dotted\r\n.\r\n250 OK\r\n515 Authentication failed\r\n");
    for step in [1, 2, 7, 1000] {
        let r = replies(&bytes, step).unwrap();
        assert_eq!(r.len(), 3, "step {step}");
        assert_eq!(r[0].code, 250);
        assert_eq!(r[0].lines[1], "AUTH METHODS=COOKIE,SAFECOOKIE COOKIEFILE=\"/var/lib/tor/control_auth_cookie\"");
        assert_eq!(r[1].lines, ["onions/current=", "abc", ".dotted", "OK"]);
        assert_eq!((r[2].code, r[2].lines.as_slice()), (515, ["Authentication failed".to_string()].as_slice()));
    }
    assert!(matches!(replies(b"25x OK\r\n", 3), Err(TorError::Malformed(_))));
    assert!(matches!(replies(b"250*OK\r\n", 3), Err(TorError::Malformed(_))));
    let long = vec![b'a'; MAX_REPLY + 1];
    assert_eq!(replies(&long, 4096).unwrap_err(), TorError::TooLong, "a reply without end is bounded");
}

#[test]
fn mappings_unquote_as_core() {
    let m = parse_mapping(r#"METHODS=COOKIE,SAFECOOKIE COOKIEFILE="/home/x/.tor/control auth \"c\"""#);
    assert_eq!(m["METHODS"], "COOKIE,SAFECOOKIE");
    assert_eq!(m["COOKIEFILE"], "/home/x/.tor/control auth \"c\"");
    let m = parse_mapping("PrivateKey=ED25519-V3:KPDR/+== ServiceID=abc");
    assert_eq!((m["PrivateKey"].as_str(), m["ServiceID"].as_str()), ("ED25519-V3:KPDR/+==", "abc"));
    assert!(parse_mapping("no mapping here").is_empty());
}

fn reply(code: u16, lines: &[&str]) -> Reply {
    Reply { code, lines: lines.iter().map(|s| s.to_string()).collect() }
}

/// A control port's SAFECOOKIE exchange, the server side computed here.
#[test]
fn safecookie_then_add_onion_with_a_new_key_then_the_saved_one() {
    let nonce = [7u8; 32];
    let (mut s, first) = TorSession::start(None, None, 18444, "127.0.0.1:18445".into(), nonce);
    assert_eq!(first, TorStep::Send("PROTOCOLINFO 1\r\n".into()));
    let info = replies(PROTOCOLINFO, 100).unwrap().remove(0);
    assert_eq!(s.on_reply(&info).unwrap(), TorStep::ReadCookie("/var/lib/tor/control_auth_cookie".into()));
    let cookie = vec![0x42u8; 32];
    assert!(matches!(s.cookie("c", vec![1; 31]), Err(TorError::BadCookie(_))), "31 bytes refused");
    assert_eq!(
        s.cookie("c", cookie.clone()).unwrap(),
        TorStep::Send(format!("AUTHCHALLENGE SAFECOOKIE {}\r\n", "07".repeat(32)))
    );
    let server_nonce = [9u8; 32];
    let parts: [&[u8]; 3] = [&cookie, &nonce, &server_nonce];
    let server_hash = hmac_sha256(SERVER_KEY, &parts);
    let line = format!("AUTHCHALLENGE SERVERHASH={} SERVERNONCE={}", hex(&server_hash), hex(&server_nonce));
    let want = format!("AUTHENTICATE {}\r\n", hex(&hmac_sha256(CLIENT_KEY, &parts)));
    assert_eq!(s.on_reply(&reply(250, &[&line])).unwrap(), TorStep::Send(want));
    assert_eq!(
        s.on_reply(&reply(250, &["OK"])).unwrap(),
        TorStep::Send("ADD_ONION NEW:ED25519-V3 PoWDefensesEnabled=1 Port=18444,127.0.0.1:18445\r\n".into())
    );
    // An older Tor without PoW defenses: a syntax error, then the same without them.
    assert_eq!(
        s.on_reply(&reply(512, &["Unrecognized option"])).unwrap(),
        TorStep::Send("ADD_ONION NEW:ED25519-V3 Port=18444,127.0.0.1:18445\r\n".into())
    );
    let ok = reply(
        250,
        &["ServiceID=cempfx6x6hdzzv77go7vlc3kzc2bc7phs5q634hsqburbw5l2a3rkbid", "PrivateKey=ED25519-V3:KPDR==", "OK"],
    );
    assert_eq!(
        s.on_reply(&ok).unwrap(),
        TorStep::Ready {
            service_id: "cempfx6x6hdzzv77go7vlc3kzc2bc7phs5q634hsqburbw5l2a3rkbid".into(),
            private_key: "ED25519-V3:KPDR==".into()
        }
    );
    // With the saved key, the same service is asked for; Tor does not echo the key back.
    let (mut s, _) = TorSession::start(None, Some("ED25519-V3:KPDR==".into()), 8333, "127.0.0.1:8334".into(), nonce);
    let null = reply(250, &["PROTOCOLINFO 1", "AUTH METHODS=NULL", "OK"]);
    assert_eq!(s.on_reply(&null).unwrap(), TorStep::Send("AUTHENTICATE\r\n".into()), "NULL preferred to SAFECOOKIE");
    assert_eq!(
        s.on_reply(&reply(250, &["OK"])).unwrap(),
        TorStep::Send("ADD_ONION ED25519-V3:KPDR== PoWDefensesEnabled=1 Port=8333,127.0.0.1:8334\r\n".into())
    );
    let ok = reply(250, &["ServiceID=abc", "OK"]);
    assert_eq!(
        s.on_reply(&ok).unwrap(),
        TorStep::Ready { service_id: "abc".into(), private_key: "ED25519-V3:KPDR==".into() }
    );
}

#[test]
fn authentication_choices_and_failures_as_core() {
    let start = |pw: Option<&str>| TorSession::start(pw.map(str::to_string), None, 1, "127.0.0.1:2".into(), [0; 32]).0;
    let info = |methods: &str| reply(250, &["PROTOCOLINFO 1", &format!("AUTH METHODS={methods}"), "OK"]);
    // A password goes with HASHEDPASSWORD, quotes escaped.
    let mut s = start(Some("p\"w"));
    assert_eq!(s.on_reply(&info("NULL,HASHEDPASSWORD")).unwrap(), TorStep::Send("AUTHENTICATE \"p\\\"w\"\r\n".into()));
    assert!(matches!(start(Some("pw")).on_reply(&info("SAFECOOKIE")), Err(TorError::NoAuth(_))));
    let e = start(None).on_reply(&info("HASHEDPASSWORD")).unwrap_err();
    assert!(e.to_string().contains("no password provided with --torpassword"), "{e}");
    assert!(matches!(start(None).on_reply(&info("COOKIE")), Err(TorError::NoAuth(_))), "plain COOKIE is not used");
    assert_eq!(start(None).on_reply(&reply(551, &["Internal error"])).unwrap_err(), TorError::ProtocolInfo(551));
    // A server that does not know the cookie is not answered.
    let mut s = start(None);
    s.on_reply(&replies(PROTOCOLINFO, 10).unwrap().remove(0)).unwrap();
    s.cookie("c", vec![1; 32]).unwrap();
    let line = format!("AUTHCHALLENGE SERVERHASH={} SERVERNONCE={}", "00".repeat(32), "11".repeat(32));
    assert!(matches!(s.on_reply(&reply(250, &[&line])), Err(TorError::Challenge(_))));
    let mut s = start(None);
    s.on_reply(&info("NULL")).unwrap();
    assert_eq!(s.on_reply(&reply(515, &["Authentication failed"])).unwrap_err(), TorError::AuthFailed(515));
    let mut s = start(None);
    s.on_reply(&info("NULL")).unwrap();
    s.on_reply(&reply(250, &["OK"])).unwrap();
    assert_eq!(s.on_reply(&reply(552, &["Bad"])).unwrap_err(), TorError::AddOnion(552));
}
