//! What a handler returns, and how each outcome maps to the wire (SPEC §4): a bad field is a
//! 400 with the exact message, not found a 404, an unknown path 404, a wrong operation 405.

use serde_json::Value;

use crate::proto::pb::{HandleRequestReply, ProtoError, Response};

const ERR_CODED: u32 = 3;
const ERR_UNSUPPORTED_OPERATION: u32 = 5;
const ERR_UNSUPPORTED_PATH: u32 = 6;
const ERR_INVALID_REQUEST: u32 = 7;

#[derive(Debug)]
pub enum Reply {
    Data(Value),
    /// A read of something that does not exist: 404.
    NotFound,
    /// The request is wrong: 400 with exactly this message.
    Invalid(String),
    /// An HTTP status of our choosing (503 for "frozen", retryable).
    Coded(u16, String),
    UnsupportedPath,
    UnsupportedOperation,
    /// Nothing to say (rollback).
    Empty,
}

pub type HandlerResult = Result<Reply, Reply>;

pub fn invalid(msg: impl Into<String>) -> Reply {
    Reply::Invalid(msg.into())
}

/// The words of a failure, to carry through code that speaks `String`.
pub fn reply_text(r: Reply) -> String {
    match r {
        Reply::Invalid(m) | Reply::Coded(_, m) => m,
        other => format!("{other:?}"),
    }
}

impl Reply {
    pub fn into_proto(self) -> HandleRequestReply {
        match self {
            Reply::Data(v) => HandleRequestReply {
                response: Some(Response {
                    data: v.to_string(),
                    ..Default::default()
                }),
                err: None,
            },
            Reply::NotFound | Reply::Empty => HandleRequestReply {
                response: None,
                err: None,
            },
            Reply::Invalid(msg) => HandleRequestReply {
                response: Some(Response {
                    data: serde_json::json!({ "error": msg }).to_string(),
                    ..Default::default()
                }),
                err: Some(ProtoError {
                    err_type: ERR_INVALID_REQUEST,
                    err_msg: msg,
                    err_code: 0,
                }),
            },
            Reply::Coded(code, msg) => HandleRequestReply {
                response: None,
                err: Some(ProtoError {
                    err_type: ERR_CODED,
                    err_msg: msg,
                    err_code: code as i64,
                }),
            },
            Reply::UnsupportedPath => HandleRequestReply {
                response: None,
                err: Some(ProtoError {
                    err_type: ERR_UNSUPPORTED_PATH,
                    err_msg: "unsupported path".into(),
                    err_code: 0,
                }),
            },
            Reply::UnsupportedOperation => HandleRequestReply {
                response: None,
                err: Some(ProtoError {
                    err_type: ERR_UNSUPPORTED_OPERATION,
                    err_msg: "unsupported operation".into(),
                    err_code: 0,
                }),
            },
        }
    }
}
