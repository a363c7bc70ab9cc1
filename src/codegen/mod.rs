//! The codegen request/response gateway (SPEC §6). `schemas` holds the 9 message schemas as pure,
//! validated wire types; the HTTP gateway that publishes requests and waits for responses is not built
//! yet (see the open issue).

pub mod schemas;
