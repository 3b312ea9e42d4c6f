//! The xenstore request handler: the input is a stream of wire messages (16-byte header,
//! payload length taken from the header and clamped to what is left), each handled by one of
//! two seeded domain stores. Every wire form must reparse and replies must echo the request id.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xenolith::xenstore::{HEADER, Message, Store};

fuzz_target!(|data: &[u8]| {
    let mut stores = [
        Store::for_domain(1, "fuzz", 32 * 1024, 1),
        Store::for_domain(7, "", 0, 0),
    ];
    let mut rest = data;
    while let Some((kind, req_id, tx_id, len)) = Message::header(rest) {
        let body = &rest[HEADER..];
        let take = len.min(body.len());
        let req = Message {
            kind,
            req_id,
            tx_id,
            payload: body[..take].to_vec(),
        };
        rest = &body[take..];
        let out = stores[(req_id & 1) as usize].handle(&req);
        for m in &out {
            let b = m.to_bytes();
            let (_, _, _, n) = Message::header(&b).expect("header of a reply");
            assert_eq!(n, m.payload.len(), "reply length field");
        }
        assert!(
            out.is_empty() || out.iter().any(|m| m.req_id == req.req_id),
            "no reply echoes request id {req_id:#x}"
        );
    }
});
