//! Status codes the gRPC convention expects where tonic's transport chooses
//! another: a request message over the size limit is `RESOURCE_EXHAUSTED` (as
//! gRPC's own implementations answer it), not the `OUT_OF_RANGE` tonic's
//! decoder gives. Applied to every response by a layer in `app.rs`.
//!
//! Only answers whose status travels in the response headers (the
//! trailers-only form, which every error before a handler's first message
//! takes — the case of a unary call) can be mended here.

use tonic::codegen::http::{HeaderValue, Response};
use tonic::{Code, Status};

/// The message tonic's decoder gives a request over the size limit.
const TOO_LARGE: &str = "decoded message length too large";

/// `response`, with an over-size request's `OUT_OF_RANGE` turned into
/// `RESOURCE_EXHAUSTED`.
pub fn conventional<B>(mut response: Response<B>) -> Response<B> {
    // Cheap first: most responses carry no status in their headers.
    if response.headers().get("grpc-status").is_none() {
        return response;
    }
    let too_large = Status::from_header_map(response.headers())
        .is_some_and(|s| s.code() == Code::OutOfRange && s.message().contains(TOO_LARGE));
    if too_large {
        response.headers_mut().insert(
            "grpc-status",
            HeaderValue::from(Code::ResourceExhausted as i32),
        );
    }
    response
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
        assert!(conventional(Response::new(())).headers().is_empty());
    }
}
