//! The peer's side: the few messages of the open V2 inference protocol
//! (KServe / Triton / MLServer, package `inference`) that this load generator
//! sends and reads, declared with prost's derive (unknown fields of the answer
//! are skipped), and a client that sends `ModelInfer`. Knows nothing of Detour.

use std::sync::Arc;

use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Channel;

#[derive(Clone, PartialEq, prost::Message)]
pub struct ModelInferRequest {
    #[prost(string, tag = "1")]
    pub model_name: String,
    #[prost(string, tag = "2")]
    pub model_version: String,
    #[prost(message, repeated, tag = "5")]
    pub inputs: Vec<InferInputTensor>,
    #[prost(bytes = "vec", repeated, tag = "7")]
    pub raw_input_contents: Vec<Vec<u8>>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct InferInputTensor {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub datatype: String,
    #[prost(int64, repeated, tag = "3")]
    pub shape: Vec<i64>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ModelInferResponse {
    #[prost(message, repeated, tag = "5")]
    pub outputs: Vec<InferOutputTensor>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct InferOutputTensor {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(int64, repeated, tag = "3")]
    pub shape: Vec<i64>,
}

/// 64 distinct requests of `rows` × `features` pseudo-random FP32 values.
pub fn requests(
    model: &str,
    version: &str,
    rows: usize,
    features: usize,
) -> Vec<ModelInferRequest> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    (0..64)
        .map(|_| {
            let mut raw = Vec::with_capacity(rows * features * 4);
            for _ in 0..rows * features {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let value = (state >> 40) as f32 / (1u64 << 24) as f32 * 4.0 - 2.0;
                raw.extend_from_slice(&value.to_le_bytes());
            }
            ModelInferRequest {
                model_name: model.to_string(),
                model_version: version.to_string(),
                inputs: vec![InferInputTensor {
                    name: "input-0".into(),
                    datatype: "FP32".into(),
                    shape: vec![rows as i64, features as i64],
                }],
                raw_input_contents: vec![raw],
            }
        })
        .collect()
}

/// Sends one `ModelInfer` and reads its answer.
pub async fn infer(
    grpc: &mut tonic::client::Grpc<Channel>,
    request: ModelInferRequest,
) -> Result<ModelInferResponse, tonic::Status> {
    grpc.ready()
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let codec = tonic_prost::ProstCodec::<ModelInferRequest, ModelInferResponse>::default();
    let path = PathAndQuery::from_static("/inference.GRPCInferenceService/ModelInfer");
    Ok(grpc
        .unary(tonic::Request::new(request), path, codec)
        .await?
        .into_inner())
}

/// One worker's V2 client: cycles through pre-built requests of `rows` rows.
pub struct Client {
    grpc: tonic::client::Grpc<Channel>,
    requests: Arc<Vec<ModelInferRequest>>,
    rows: usize,
}

impl Client {
    pub fn new(channel: Channel, requests: Arc<Vec<ModelInferRequest>>, rows: usize) -> Self {
        Client {
            grpc: tonic::client::Grpc::new(channel),
            requests,
            rows,
        }
    }

    /// Sends the `i`-th request; an error unless the answer has a row per row
    /// sent.
    pub async fn send(&mut self, i: u64) -> Result<(), String> {
        let request = self.requests[i as usize % self.requests.len()].clone();
        let answer = infer(&mut self.grpc, request)
            .await
            .map_err(|e| format!("{:?}: {}", e.code(), e.message()))?;
        if answer
            .outputs
            .first()
            .is_none_or(|o| o.shape.first() != Some(&(self.rows as i64)))
        {
            return Err(format!("unexpected V2 answer shape: {:?}", answer.outputs));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn requests_are_distinct_raw_fp32_rows_within_plus_minus_two() {
        let requests = requests("gbc", "1", 3, 5);
        assert_eq!(requests.len(), 64);
        assert_ne!(requests[0], requests[1]);
        let request = &requests[0];
        assert_eq!(
            (request.model_name.as_str(), request.model_version.as_str()),
            ("gbc", "1")
        );
        assert_eq!(request.inputs[0].shape, [3, 5]);
        assert_eq!(request.inputs[0].datatype, "FP32");
        let raw = &request.raw_input_contents[0];
        assert_eq!(raw.len(), 3 * 5 * 4);
        for value in raw.chunks(4) {
            let value = f32::from_le_bytes(value.try_into().unwrap());
            assert!((-2.0..2.0).contains(&value), "{value}");
        }
        // The same every run: the peer and Detour see the same inputs.
        assert_eq!(super::requests("gbc", "1", 3, 5), requests);
        let decoded = ModelInferRequest::decode(&request.encode_to_vec()[..]).unwrap();
        assert_eq!(&decoded, request);
    }
}
