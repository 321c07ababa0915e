"""Registering the payload schemas with a Confluent-compatible schema registry (REST API).

Subjects follow the registry's default TopicNameStrategy, ``<topic>-value``. Registering a schema
the subject already has returns its existing id, so this runs at every (re)load of the filters
without creating versions. Only the standard library is used (two REST calls, no client package).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
TIMEOUT_S = 10.0


class RegistryError(RuntimeError):
    """The registry refused or could not be reached; the message has its answer."""


def _call(url: str, body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method="POST" if data else "GET",
                                     headers={"Content-Type": CONTENT_TYPE, "Accept": CONTENT_TYPE})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise RegistryError(f"{url}: HTTP {exc.code}: {exc.read().decode(errors='replace')}") from exc
    except urllib.error.URLError as exc:
        raise RegistryError(f"{url}: {exc.reason}") from exc
    except OSError as exc:  # a timeout, a connection reset
        raise RegistryError(f"{url}: {exc}") from exc


def register_schema(registry_url: str, topic: str, schema: dict) -> int:
    """Register ``schema`` under ``<topic>-value``; returns the registry's schema id."""
    url = f"{registry_url.rstrip('/')}/subjects/{topic}-value/versions"
    answer = _call(url, {"schema": json.dumps(schema)})
    if "id" not in answer:
        raise RegistryError(f"{url}: no schema id in the answer {answer!r}")
    return int(answer["id"])


def fetch_schema(registry_url: str, schema_id: int) -> dict:
    """The schema registered under ``schema_id`` (what a consumer does to decode a message)."""
    answer = _call(f"{registry_url.rstrip('/')}/schemas/ids/{schema_id}")
    return json.loads(answer["schema"])
