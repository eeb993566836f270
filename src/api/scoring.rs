//! The `RiskScoring` service: unary, batch and streaming scoring.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument;

use super::{ApiError, convert};
use crate::features::FeatureStore;
use crate::pb;
use crate::pb::risk_scoring_server::RiskScoring;
use crate::scoring::{Assessment, ScoreTarget, Scorer, UnknownCode};

/// Most items one `ScoreBatch` call may carry.
pub const MAX_BATCH_ITEMS: usize = 10_000;
/// Most stream items scored together (one store read) when they arrive at once.
const STREAM_CHUNK: usize = 256;

/// gRPC adapter over a [`Scorer`].
#[derive(Debug)]
pub struct RiskScoringService<S> {
    scorer: Arc<Scorer<S>>,
}

impl<S> RiskScoringService<S> {
    /// The service, answering with `scorer`.
    pub fn new(scorer: Arc<Scorer<S>>) -> Self {
        RiskScoringService { scorer }
    }
}

impl<S: FeatureStore> RiskScoringService<S> {
    async fn score_one(&self, target: ScoreTarget) -> Result<Response<pb::RiskScore>, Status> {
        let kind = target.kind();
        let models = self.scorer.models();
        let model = &models.model(kind).manifest;
        let span = tracing::info_span!(
            "score",
            family = kind.name(),
            model = %model.name,
            version = %model.version,
        );
        let mut answers = self
            .scorer
            .score(&models, vec![target])
            .instrument(span)
            .await;
        let answer = answers
            .pop()
            .ok_or_else(|| ApiError::Internal("scorer returned no answer".into()))?
            .map_err(|unknown| super::error::unknown_code(&unknown, ""))?;
        Ok(Response::new(convert::risk_score(answer)))
    }
}

#[tonic::async_trait]
impl<S: FeatureStore> RiskScoring for RiskScoringService<S> {
    async fn score_order(
        &self,
        request: Request<pb::ScoreOrderRequest>,
    ) -> Result<Response<pb::RiskScore>, Status> {
        let target = convert::order_target(request.get_ref(), "")?;
        self.score_one(target).await
    }

    async fn score_shipment(
        &self,
        request: Request<pb::ScoreShipmentRequest>,
    ) -> Result<Response<pb::RiskScore>, Status> {
        let target = convert::shipment_target(request.get_ref(), "")?;
        self.score_one(target).await
    }

    async fn score_site(
        &self,
        request: Request<pb::ScoreSiteRequest>,
    ) -> Result<Response<pb::RiskScore>, Status> {
        let target = convert::site_target(request.get_ref(), "")?;
        self.score_one(target).await
    }

    async fn score_batch(
        &self,
        request: Request<pb::ScoreBatchRequest>,
    ) -> Result<Response<pb::ScoreBatchResponse>, Status> {
        let items = &request.get_ref().items;
        if items.is_empty() {
            return Err(ApiError::invalid("items", "at least one item is required").into());
        }
        if items.len() > MAX_BATCH_ITEMS {
            return Err(ApiError::invalid(
                "items",
                format!(
                    "at most {MAX_BATCH_ITEMS} items per call, got {}",
                    items.len()
                ),
            )
            .into());
        }
        let targets = items
            .iter()
            .enumerate()
            .map(|(i, item)| convert::item_target(item, &format!("items[{i}]")))
            .collect::<Result<Vec<_>, _>>()?;
        let models = self.scorer.models();
        let span = tracing::info_span!(
            "score_batch",
            items = targets.len(),
            models = %models.versions(),
        );
        let answers = self.scorer.score(&models, targets).instrument(span).await;
        // A malformed item fails the call; an item naming a code the network
        // does not know fails alone, with NOT_FOUND.
        let results = items
            .iter()
            .zip(answers)
            .enumerate()
            .map(|(i, (item, answer))| pb::ScoreResult {
                request_id: item.request_id.clone(),
                outcome: Some(outcome(
                    answer,
                    &convert::item_path(item, &format!("items[{i}]")),
                )),
            })
            .collect();
        Ok(Response::new(pb::ScoreBatchResponse { results }))
    }

    type ScoreStreamStream = ReceiverStream<Result<pb::ScoreResult, Status>>;

    async fn score_stream(
        &self,
        request: Request<Streaming<pb::ScoreItem>>,
    ) -> Result<Response<Self::ScoreStreamStream>, Status> {
        let mut inbound = request.into_inner();
        let (items_tx, items_rx) = mpsc::channel::<pb::ScoreItem>(STREAM_CHUNK * 4);
        let (results_tx, results_rx) = mpsc::channel(STREAM_CHUNK * 4);
        // Reader: forwards items so the scorer can take whatever has arrived as one chunk.
        let reader_results = results_tx.clone();
        tokio::spawn(
            async move {
                loop {
                    match inbound.message().await {
                        Ok(Some(item)) => {
                            if items_tx.send(item).await.is_err() {
                                break;
                            }
                        }
                        Ok(None) => break,
                        Err(status) => {
                            let _ = reader_results.send(Err(status)).await;
                            break;
                        }
                    }
                }
            }
            .instrument(tracing::info_span!("score_stream_reader")),
        );
        let scorer = Arc::clone(&self.scorer);
        tokio::spawn(
            score_chunks(scorer, items_rx, results_tx)
                .instrument(tracing::info_span!("score_stream")),
        );
        Ok(Response::new(ReceiverStream::new(results_rx)))
    }
}

/// One item's answer on the wire: its score, or NOT_FOUND naming the unknown
/// code's field under `at`.
fn outcome(answer: Result<Assessment, UnknownCode>, at: &str) -> pb::score_result::Outcome {
    match answer {
        Ok(answer) => pb::score_result::Outcome::Score(convert::risk_score(answer)),
        Err(unknown) => pb::score_result::Outcome::Error(super::error::item_error(
            &super::error::unknown_code(&unknown, at),
        )),
    }
}

/// Scores stream items in arrival order, a ready chunk at a time.
async fn score_chunks<S: FeatureStore>(
    scorer: Arc<Scorer<S>>,
    mut items: mpsc::Receiver<pb::ScoreItem>,
    results: mpsc::Sender<Result<pb::ScoreResult, Status>>,
) {
    let mut chunk = Vec::with_capacity(STREAM_CHUNK);
    while items.recv_many(&mut chunk, STREAM_CHUNK).await > 0 {
        // The valid items' targets, in order; an invalid item keeps its error.
        let mut targets: Vec<ScoreTarget> = Vec::with_capacity(chunk.len());
        let errors: Vec<Option<ApiError>> = chunk
            .iter()
            .map(|item| match convert::item_target(item, "") {
                Ok(target) => {
                    targets.push(target);
                    None
                }
                Err(error) => Some(error),
            })
            .collect();
        // Each chunk is scored and answered as one request: it takes the models
        // being served when it starts, so a long-lived stream follows a deploy
        // or a rollback, and each answer names the version that produced it.
        let models = scorer.models();
        let span = tracing::info_span!(
            "score_chunk",
            items = targets.len(),
            models = %models.versions(),
        );
        let mut answers = scorer
            .score(&models, targets)
            .instrument(span)
            .await
            .into_iter();
        for (item, error) in chunk.drain(..).zip(errors) {
            let outcome = match error.map_or(Ok(()), Err) {
                Ok(()) => match answers.next() {
                    Some(answer) => outcome(answer, &convert::item_path(&item, "")),
                    None => pb::score_result::Outcome::Error(super::error::item_error(
                        &ApiError::Internal("scorer returned too few answers".into()),
                    )),
                },
                Err(error) => pb::score_result::Outcome::Error(super::error::item_error(&error)),
            };
            let result = pb::ScoreResult {
                request_id: item.request_id,
                outcome: Some(outcome),
            };
            if results.send(Ok(result)).await.is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Mutex;
    use std::time::Duration;

    use tracing::field::{Field, Visit};
    use tracing_subscriber::layer::{Context, SubscriberExt};

    use super::*;
    use crate::features::InMemoryFeatureStore;
    use crate::network::Network;
    use crate::registry::ModelRegistry;
    use crate::schema::RiskKind;

    /// A field's name and value, as text.
    type FieldText = (String, String);
    /// A span's name and its fields.
    type SpanText = (String, Vec<FieldText>);

    /// Every span opened.
    #[derive(Clone, Default)]
    struct Spans(Arc<Mutex<Vec<SpanText>>>);

    struct Fields(Vec<FieldText>);

    impl Visit for Fields {
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            self.0
                .push((field.name().to_string(), format!("{value:?}")));
        }
        fn record_str(&mut self, field: &Field, value: &str) {
            self.0.push((field.name().to_string(), value.to_string()));
        }
    }

    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Spans {
        fn on_new_span(
            &self,
            attrs: &tracing::span::Attributes<'_>,
            _: &tracing::span::Id,
            _: Context<'_, S>,
        ) {
            let mut fields = Fields(Vec::new());
            attrs.record(&mut fields);
            let name = attrs.metadata().name().to_string();
            self.0.lock().unwrap().push((name, fields.0));
        }
    }

    #[tokio::test]
    async fn the_rpc_span_names_the_family_model_and_version_of_the_answer() {
        let spans = Spans::default();
        let _guard =
            tracing::subscriber::set_default(tracing_subscriber::registry().with(spans.clone()));
        let models = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/models"));
        let registry = Arc::new(ModelRegistry::load(models).unwrap());
        let store = Arc::new(InMemoryFeatureStore::new(Duration::from_secs(60)));
        let network = Network::load(&models.join("network.toml")).unwrap();
        let scorer = Scorer::new(store, registry, Arc::new(network));
        let service = RiskScoringService::new(Arc::new(scorer));

        let answer = service
            .score_site(Request::new(pb::ScoreSiteRequest {
                site: "ATL".into(),
                as_of: None,
            }))
            .await
            .unwrap()
            .into_inner();

        let spans = spans.0.lock().unwrap();
        let (_, fields) = spans
            .iter()
            .find(|(name, _)| name == "score")
            .expect("a span for the RPC");
        let field = |name: &str| {
            fields
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.clone())
        };
        assert_eq!(
            field("family").as_deref(),
            Some(RiskKind::SiteCongestion.name())
        );
        assert_eq!(field("model"), Some(answer.model_name));
        assert_eq!(field("version"), Some(answer.model_version));
    }
}
