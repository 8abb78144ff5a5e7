"""The API fuzzed from its own OpenAPI (schemathesis): every operation, with a token of each
role and with none, on valid and on invalid input, answers no 5xx, and every error is
`{"error": {...}}` with a status the operation documents.

Bounded (`EXAMPLES` per operation and caller, derandomized, so CI sees the same cases) to run
in about two minutes. Requests go through the app's own `TestClient` (its lifespan running).
The two SSE streams are left out: they answer by never ending.
"""

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.schemas import OpenApiSchema

from tests.support.http import Api, open_api

pytestmark = pytest.mark.slow

EXAMPLES = 40
"""Cases at most per operation and caller (28 operations × 4 callers)."""
CALLERS = ["victor", "alice", "root", None]
"""A viewer, an approver, an admin (`tests.support.http.TOKENS`), and no token."""
ENDLESS = {"/approvals/stream", "/threads/{thread_id}/stream"}
SENT: list[str] = []


def _schema() -> OpenApiSchema:
    from hitl.server.app import create_app
    from hitl.service.settings import Settings

    return schemathesis.openapi.from_dict(create_app(Settings()).openapi())


def _operations() -> list[str]:
    labels = []
    for result in _schema().get_all_operations():
        operation = result.ok()
        if operation.path not in ENDLESS:
            labels.append(operation.label)
    return labels


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Api, OpenApiSchema]]:
    with open_api(tmp_path_factory.mktemp("fuzz")) as api:
        api.start()  # a thread that waits, so that not every thread is unknown
        yield api, _schema()
    print(f"fuzzed: {len(SENT)} requests")  # shown with -s: the figure in the docs


def test_every_operation_documents_its_errors_in_the_error_shape() -> None:
    """FastAPI documents only its own `422` shape (`HTTPValidationError`), which we never send."""
    for result in _schema().get_all_operations():
        responses = result.ok().definition.raw["responses"]
        for status in ("401", "403", "404", "422", "503"):
            schema = responses[status]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorBody"}, result.ok().label


@pytest.mark.parametrize("caller", CALLERS, ids=lambda c: c or "no-token")
@pytest.mark.parametrize("label", _operations())
def test_every_operation_answers_fuzzed_input_without_a_5xx_and_errors_in_the_documented_shape(
    fuzzed: tuple[Api, OpenApiSchema], label: str, caller: str | None
) -> None:
    api, schema = fuzzed
    operation = schema.find_operation_by_label(label)
    assert operation is not None
    documented = set(operation.definition.raw["responses"])
    headers = {} if caller is None else {"Authorization": f"Bearer {api.secrets[caller]}"}

    @given(case=st.one_of(*(operation.as_strategy(generation_mode=m) for m in GenerationMode)))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    def answers_well(case: Any) -> None:
        sent = case.as_transport_kwargs(base_url=str(api.client.base_url), headers=headers)
        if "data" in sent:  # requests' name for a raw body
            sent["content"] = sent.pop("data")
        assert not sent.pop("cookies"), "no operation takes a cookie parameter"
        response = api.client.request(**sent)
        SENT.append(label)
        what = f"{case.method} {case.formatted_path} as {caller}: {response.status_code}"
        assert response.status_code < 500, f"{what}\n{response.text[:2000]}"
        assert str(response.status_code) in documented, f"{what}: not documented"
        if response.status_code >= 400:
            error = response.json()["error"]
            assert isinstance(error["type"], str) and isinstance(error["message"], str), what
            assert error["status"] == response.status_code, what

    answers_well()
