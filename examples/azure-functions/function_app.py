"""Azure Functions (Python v2 programming model): the chargeback Event Hub trigger.

Drop-in for the C# `ChargebackEventHubTrigger`: same Event Hub (`%EventHubName%`, connection
setting `EventHubConnection`), same `Azure OpenAI Tokens` custom event and dimensions, so the
existing KQL dashboards keep working. The logic lives in `chargeback.py` (no Azure imports).

App settings:
- `EventHubName`, `EventHubConnection`: as for the C# function.
- `CHARGEBACK_APPKEY_SECRET` (required): keys the AppKey HMAC; keep it in Key Vault.
- `CHARGEBACK_DEPLOYMENTS` (optional): JSON object mapping deployment names to models.
- `APPLICATIONINSIGHTS_CONNECTION_STRING`: where the events go.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Callable, Dict, List, Optional

import azure.functions as func

from chargeback import Chargeback

app = func.FunctionApp()
_log = logging.getLogger("chargeback")


def _app_insights_emitter() -> Callable[[str, Dict[str, str]], None]:
    """Application Insights `customEvents` through OpenTelemetry when it is installed and
    configured, else one JSON log line per event (which the host also ships to App Insights)."""
    try:
        from azure.monitor.events.extension import track_event  # type: ignore[import-not-found]
        from azure.monitor.opentelemetry import configure_azure_monitor  # type: ignore[import-not-found]
    except ImportError:
        track_event = None
    if track_event is not None and os.environ.get("APPLICATIONINSIGHTS_CONNECTION_STRING"):
        configure_azure_monitor()
        return lambda name, dims: track_event(name, dims)
    return lambda name, dims: _log.info("%s: %s", name, json.dumps(dims))


_chargeback: Optional[Chargeback] = None


def _service() -> Chargeback:
    # Built on first use so a missing secret fails the invocation loudly (ConfigurationError)
    # instead of ever writing a raw key.
    global _chargeback
    if _chargeback is None:
        deployments = json.loads(os.environ.get("CHARGEBACK_DEPLOYMENTS") or "{}")
        _chargeback = Chargeback(
            os.environ.get("CHARGEBACK_APPKEY_SECRET", ""),
            deployments=deployments,
            emit=_app_insights_emitter(),
        )
    return _chargeback


@app.function_name(name="ChargebackEventHubTrigger")
@app.event_hub_message_trigger(
    arg_name="events",
    event_hub_name="%EventHubName%",
    connection="EventHubConnection",
    cardinality="many",
)
def chargeback_eventhub_trigger(events: List[func.EventHubEvent]) -> None:
    """One `Azure OpenAI Tokens` event per APIM envelope in the batch."""
    _service().process(e.get_body() for e in events)
