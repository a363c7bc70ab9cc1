//! The codegen request/response gateway (SPEC §6): `schemas` holds the 9 message schemas as pure,
//! validated wire types; `gateway` publishes requests and routes responses back to the waiting HTTP
//! request, across instances.

pub mod gateway;
pub mod schemas;
