"""A thin, typed layer over Detour's gRPC API.

Every method takes plain Python values (dicts in the proto's JSON form, with
RFC 3339 strings for timestamps, or the generated messages themselves) and
returns the generated response message. A call the server refuses raises
:class:`DetourError` with the gRPC status code and the server's message,
which names the offending field.
"""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Optional, Sequence, Union

import grpc
from google.protobuf import json_format
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from detour.v1 import admin_pb2, admin_pb2_grpc
from detour.v1 import anomalies_pb2, anomalies_pb2_grpc
from detour.v1 import ingest_pb2, ingest_pb2_grpc
from detour.v1 import recommend_pb2, recommend_pb2_grpc
from detour.v1 import scoring_pb2, scoring_pb2_grpc
from detour.v1 import types_pb2

#: Rows `score_features` sends per call: half the server's limit of 10,000,
#: so a call of full carrier rows (about 1.5 KB each) stays well under the
#: server's 16 MB message limit.
MAX_FEATURE_ROWS = 5_000

Fields = Union[Mapping[str, Any], Message]


class DetourError(Exception):
    """A call the server answered with an error status."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message


def _message(value: Optional[Fields], cls: type) -> Any:
    """`value` as a `cls` message: a dict in the proto's JSON form, or one already."""
    if value is None:
        return None
    if isinstance(value, cls):
        return value
    if isinstance(value, Message):
        raise TypeError(f"expected {cls.__name__} or a dict, got {type(value).__name__}")
    return json_format.ParseDict(dict(value), cls())


def _timestamp(value: Union[None, str, Timestamp]) -> Optional[Timestamp]:
    """An RFC 3339 string (or a `Timestamp`) as a `Timestamp`."""
    if value is None or isinstance(value, Timestamp):
        return value
    stamp = Timestamp()
    stamp.FromJsonString(value)
    return stamp


def _number(name: str, value: Any) -> Optional[float]:
    """A feature value as a float; None when missing (None, NaN, pandas' NA)."""
    if value is None or isinstance(value, (str, bytes)):
        if value is None:
            return None
        raise TypeError(f"feature {name!r}: {value!r} is not a number")
    try:
        number = float(value)
    except (TypeError, ValueError):
        # pandas.NA and friends refuse float(); they mean missing.
        if str(value) in ("<NA>", "NaT"):
            return None
        raise TypeError(f"feature {name!r}: {value!r} is not a number") from None
    return None if number != number else number


class Client:
    """A connection to one Detour server.

    `admin_token` (the server's `DETOUR_ADMIN_TOKEN`) is needed only by the
    model-admin methods; `user` names who acts in the server's audit log.
    """

    def __init__(
        self,
        target: str = "127.0.0.1:50051",
        *,
        admin_token: Optional[str] = None,
        user: Optional[str] = None,
        timeout: float = 10.0,
        channel: Optional[grpc.Channel] = None,
    ):
        self._channel = channel or grpc.insecure_channel(target)
        self._timeout = timeout
        self._admin_metadata = []
        if admin_token:
            self._admin_metadata.append(("authorization", f"Bearer {admin_token}"))
        self._admin_metadata.append(("x-detour-user", user or getpass.getuser()))
        self._scoring = scoring_pb2_grpc.RiskScoringStub(self._channel)
        self._ingest = ingest_pb2_grpc.EventIngestStub(self._channel)
        self._recommend = recommend_pb2_grpc.RecommendationsStub(self._channel)
        self._anomalies = anomalies_pb2_grpc.AnomaliesStub(self._channel)
        self._admin = admin_pb2_grpc.ModelAdminStub(self._channel)

    def close(self) -> None:
        """Closes the channel."""
        self._channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _call(self, method, request, admin: bool = False, timeout: Optional[float] = None):
        try:
            return method(
                request,
                timeout=timeout or self._timeout,
                metadata=self._admin_metadata if admin else None,
            )
        except grpc.RpcError as error:
            raise DetourError(error.code(), error.details()) from None

    # Scoring

    def score_shipment(
        self, shipment: Fields, *, as_of: Union[None, str, Timestamp] = None
    ) -> types_pb2.RiskScore:
        """Carrier-failure risk of one leg (`Shipment` fields)."""
        request = scoring_pb2.ScoreShipmentRequest(
            shipment=_message(shipment, types_pb2.Shipment), as_of=_timestamp(as_of)
        )
        return self._call(self._scoring.ScoreShipment, request)

    def score_order(self, order: Fields, *, as_of: Union[None, str, Timestamp] = None) -> types_pb2.RiskScore:
        """Order-fallout risk of one order (`Order` fields)."""
        request = scoring_pb2.ScoreOrderRequest(
            order=_message(order, types_pb2.Order), as_of=_timestamp(as_of)
        )
        return self._call(self._scoring.ScoreOrder, request)

    def score_site(self, site: str, *, as_of: Union[None, str, Timestamp] = None) -> types_pb2.RiskScore:
        """Congestion risk of one site, by its code."""
        request = scoring_pb2.ScoreSiteRequest(site=site, as_of=_timestamp(as_of))
        return self._call(self._scoring.ScoreSite, request)

    # Ingest

    def ingest(self, events: Iterable[Fields]) -> ingest_pb2.IngestEventsResponse:
        """Sends events (`Event` fields); the answer counts accepted, duplicate
        and rejected events, with each rejection's field and reason."""
        request = ingest_pb2.IngestEventsRequest(
            events=[_message(e, ingest_pb2.Event) for e in events]
        )
        return self._call(self._ingest.IngestEvents, request)

    # Recommendations

    def recommend_reroute(
        self,
        shipment: Union[str, Fields],
        *,
        exclude_carriers: Sequence[str] = (),
        as_of: Union[None, str, Timestamp] = None,
    ) -> recommend_pb2.Recommendation:
        """Carriers ranked for a leg: a `Shipment`, or the id of one ingested."""
        request = recommend_pb2.RecommendRerouteRequest(
            exclude_carriers=list(exclude_carriers), as_of=_timestamp(as_of)
        )
        if isinstance(shipment, str):
            request.shipment_id = shipment
        else:
            request.shipment.CopyFrom(_message(shipment, types_pb2.Shipment))
        return self._call(self._recommend.RecommendReroute, request)

    def recommend_reallocation(
        self,
        order: Union[str, Fields],
        *,
        lines: Sequence[Fields] = (),
        inventory: Sequence[Fields] = (),
        exclude_sites: Sequence[str] = (),
        as_of: Union[None, str, Timestamp] = None,
    ) -> recommend_pb2.Recommendation:
        """Sites ranked for an order: an `Order`, or the id of one ingested,
        with its lines (`OrderLine`) and the inventory to check them against
        (`InventoryPosition`)."""
        request = recommend_pb2.RecommendReallocationRequest(
            lines=[_message(line, recommend_pb2.OrderLine) for line in lines],
            inventory=[_message(i, types_pb2.InventoryPosition) for i in inventory],
            exclude_sites=list(exclude_sites),
            as_of=_timestamp(as_of),
        )
        if isinstance(order, str):
            request.order_id = order
        else:
            request.order.CopyFrom(_message(order, types_pb2.Order))
        return self._call(self._recommend.RecommendReallocation, request)

    # Anomalies

    def watch_anomalies(
        self,
        *,
        kinds: Sequence[str] = (),
        entity: str = "",
        min_severity: str = "",
        cursor: str = "",
        until_now: bool = False,
        timeout: Optional[float] = None,
    ) -> Iterator[anomalies_pb2.AnomalyEvent]:
        """Alert changes as they happen (or, with `until_now`, the log so far).
        Kinds and severity by their proto names (`ANOMALY_KIND_...`,
        `ANOMALY_SEVERITY_...`). Every event carries a cursor to resume from."""
        request = anomalies_pb2.WatchAnomaliesRequest(
            kinds=[anomalies_pb2.AnomalyKind.Value(k) for k in kinds],
            entity=entity,
            min_severity=anomalies_pb2.AnomalySeverity.Value(min_severity) if min_severity else 0,
            cursor=cursor,
            until_now=until_now,
        )
        try:
            yield from self._anomalies.WatchAnomalies(request, timeout=timeout)
        except grpc.RpcError as error:
            raise DetourError(error.code(), error.details()) from None

    def list_anomalies(self, **fields: Any) -> anomalies_pb2.ListAnomaliesResponse:
        """Alerts, open first, paged (`ListAnomaliesRequest` fields)."""
        return self._call(
            self._anomalies.ListAnomalies, _message(fields, anomalies_pb2.ListAnomaliesRequest)
        )

    # Model admin (needs the admin token)

    def models(self) -> admin_pb2.ListModelsResponse:
        """Every family's versions, states, comparison and recent actions."""
        return self._call(self._admin.ListModels, admin_pb2.ListModelsRequest(), admin=True)

    def deploy(
        self,
        artifact: Union[str, Path],
        *,
        shadow: bool = False,
        canary_percent: float = 0.0,
        force: bool = False,
        send_files: bool = True,
    ) -> admin_pb2.DeployModelResponse:
        """Deploys the artifact in the folder `artifact` (a version folder
        `detour-train train` or `import` wrote): its files are sent over
        gRPC, or with `send_files=False` the server reads the folder itself."""
        folder = Path(artifact)
        request = admin_pb2.DeployModelRequest(
            shadow=shadow, canary_percent=canary_percent, force=force
        )
        if send_files:
            for path in sorted(folder.iterdir()):
                if path.is_file():
                    request.files.add(name=path.name, content=path.read_bytes())
        else:
            request.directory = str(folder)
        return self._call(self._admin.DeployModel, request, admin=True, timeout=60.0)

    def promote(self, family: str, version: str) -> admin_pb2.ModelChangeResponse:
        """Makes a loaded version the family's active one."""
        return self._call(
            self._admin.PromoteModel,
            admin_pb2.PromoteModelRequest(family=family, version=version),
            admin=True,
        )

    def rollback(self, family: str) -> admin_pb2.ModelChangeResponse:
        """Back to the family's previous active version."""
        return self._call(
            self._admin.RollbackModel, admin_pb2.RollbackModelRequest(family=family), admin=True
        )

    def set_shadow(self, family: str, version: str) -> admin_pb2.ModelChangeResponse:
        """Scores every request with `version` too (empty: no candidate)."""
        return self._call(
            self._admin.SetShadow,
            admin_pb2.SetShadowRequest(family=family, version=version),
            admin=True,
        )

    def set_canary(
        self, family: str, version: str, percent: float
    ) -> admin_pb2.ModelChangeResponse:
        """Answers `percent` of entities with `version`, sticky per entity."""
        return self._call(
            self._admin.SetCanary,
            admin_pb2.SetCanaryRequest(family=family, version=version, percent=percent),
            admin=True,
        )

    def unload(self, family: str, version: str) -> admin_pb2.ModelChangeResponse:
        """Forgets a version that neither serves nor is compared."""
        return self._call(
            self._admin.UnloadModel,
            admin_pb2.UnloadModelRequest(family=family, version=version),
            admin=True,
        )

    def compare(self, family: str) -> admin_pb2.Comparison:
        """The candidate against the active version on outcomes so far."""
        return self._call(
            self._admin.CompareModels, admin_pb2.CompareModelsRequest(family=family), admin=True
        )

    def score_features(
        self,
        family: str,
        rows: Iterable[Mapping[str, float]],
        *,
        version: str = "",
    ) -> list:
        """Served probabilities of rows of named feature values (the feature
        columns `detour-train dataset` writes; None, NaN or pandas' NA is
        missing), by the active version or the named shadow/canary
        candidate. Returns one `ScoredRow` per row, in order; sends
        `MAX_FEATURE_ROWS` rows per call. A value that is not a number raises `TypeError`
        naming its column (pass the feature columns only)."""
        scored: list = []
        batch: list = []

        def flush() -> None:
            request = admin_pb2.ScoreFeaturesRequest(family=family, version=version)
            for features in batch:
                row = request.rows.add()
                for name, value in features.items():
                    number = _number(name, value)
                    if number is not None:
                        row.features[name] = number
            scored.extend(self._call(self._admin.ScoreFeatures, request, admin=True).scores)
            batch.clear()

        for features in rows:
            batch.append(features)
            if len(batch) == MAX_FEATURE_ROWS:
                flush()
        if batch:
            flush()
        return scored
