//! Status codes the gRPC convention expects where tonic's transport chooses
//! another: a request message over the size limit is `RESOURCE_EXHAUSTED` (as
//! gRPC's own implementations answer it), not the `OUT_OF_RANGE` tonic's
//! decoder gives. Applied to every response by a layer in `app.rs`.
//!
//! Only answers whose status travels in the response headers (the
//! trailers-only form, which every error before a handler's first message
//! takes — the case of a unary call) can be mended here.

use tonic::codegen::http::{HeaderValue, Response};

/// The message tonic's decoder gives a request over the size limit.
const TOO_LARGE: &str = "decoded message length too large";

/// `response`, with an over-size request's `OUT_OF_RANGE` turned into
/// `RESOURCE_EXHAUSTED`.
pub fn conventional<B>(mut response: Response<B>) -> Response<B> {
    let headers = response.headers_mut();
    let out_of_range = headers
        .get("grpc-status")
        .is_some_and(|status| status == HeaderValue::from_static("11"));
    if out_of_range {
        // grpc-message is percent-encoded: compare decoded text.
        let too_large = headers
            .get("grpc-message")
            .is_some_and(|message| percent_decoded(message.as_bytes()).contains(TOO_LARGE));
        if too_large {
            headers.insert("grpc-status", HeaderValue::from_static("8"));
        }
    }
    response
}

/// gRPC's percent-encoding of `grpc-message`, undone (invalid escapes kept).
fn percent_decoded(bytes: &[u8]) -> String {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied(),
            bytes.get(i + 2).copied(),
        ) {
            (b'%', Some(a), Some(b)) if hex(a).is_some() && hex(b).is_some() => {
                out.push((hex(a).unwrap() * 16 + hex(b).unwrap()) as u8);
                i += 3;
            }
            (byte, _, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: &'static str, message: &'static str) -> Response<()> {
        let mut response = Response::new(());
        let headers = response.headers_mut();
        headers.insert("grpc-status", HeaderValue::from_static(status));
        headers.insert("grpc-message", HeaderValue::from_static(message));
        response
    }

    fn status(response: &Response<()>) -> &str {
        response.headers()["grpc-status"].to_str().unwrap()
    }

    #[test]
    fn an_over_size_request_is_resource_exhausted_and_nothing_else_changes() {
        let too_large =
            "Error,%20decoded%20message%20length%20too%20large:%20found%205000000%20bytes";
        assert_eq!(status(&conventional(answer("11", too_large))), "8");
        assert_eq!(
            status(&conventional(answer("11", "as_of%20out%20of%20range"))),
            "11"
        );
        assert_eq!(status(&conventional(answer("3", too_large))), "3");
        assert_eq!(status(&conventional(answer("0", ""))), "0");
        assert_eq!(percent_decoded(b"a%20b%2"), "a b%2");
    }
}
