//! The codegen schemas (`codegen::schemas`): the first byte picks what the rest is parsed as — the
//! request or response of each operation, a status event, or a raw message checked the way the
//! tracer dead-letters invalid codegen messages. A parsed message must pass its own validation and
//! parse again after serialising, with the same ids and timestamp (it is forwarded and stored in that
//! form). Not whole equality: serde_json's default float parsing can move a long decimal by one ulp
//! between the two parses.
#![no_main]

use libfuzzer_sys::fuzz_target;
use omninode_bridge::codegen::gateway::check_codegen_message;
use omninode_bridge::codegen::schemas::{
    parse_request, parse_response, parse_status, Operation, SchemaError,
};
use omninode_bridge::events::topics::{
    codegen_request_topic, codegen_response_topic, CODEGEN_STATUS_TOPIC,
};

fn named(e: &SchemaError) {
    assert!(!e.field.is_empty(), "error without a field: {e}");
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, bytes)) = data.split_first() else {
        return;
    };
    let op = Operation::ALL[usize::from(selector % 4)];
    match selector % 16 {
        0..=3 => match parse_request(op, bytes) {
            Ok(req) => {
                assert_eq!(req.operation(), op);
                assert!(req.validate().is_ok());
                let again = serde_json::to_vec(&req).expect("a request serialises");
                let back = parse_request(op, &again).expect("a serialised message parses again");
                assert_eq!(
                    (back.correlation_id(), back.session_id(), back.timestamp()),
                    (req.correlation_id(), req.session_id(), req.timestamp())
                );
            }
            Err(e) => named(&e),
        },
        4..=7 => match parse_response(op, bytes) {
            Ok(resp) => {
                assert_eq!(resp.operation(), op);
                assert!(resp.validate().is_ok());
                let again = serde_json::to_vec(&resp).expect("a response serialises");
                let back = parse_response(op, &again).expect("a serialised message parses again");
                assert_eq!(
                    (back.correlation_id(), back.session_id(), back.timestamp()),
                    (resp.correlation_id(), resp.session_id(), resp.timestamp())
                );
            }
            Err(e) => named(&e),
        },
        8 => match parse_status(bytes) {
            Ok(ev) => {
                assert!(ev.validate().is_ok());
                let again = serde_json::to_vec(&ev).expect("a status event serialises");
                let back = parse_status(&again).expect("a serialised status event parses again");
                assert_eq!(
                    (back.session_id, back.timestamp),
                    (ev.session_id, ev.timestamp)
                );
            }
            Err(e) => named(&e),
        },
        9..=12 => {
            let _ = check_codegen_message(&codegen_request_topic(op.as_str()), bytes);
        }
        13..=14 => {
            let _ = check_codegen_message(&codegen_response_topic(op.as_str()), bytes);
        }
        _ => {
            let _ = check_codegen_message(CODEGEN_STATUS_TOPIC, bytes);
        }
    }
});
