"""The request follows the one declaration of the decompose options: the form's fields, their
bounds (the config's and the server's own limits, :class:`Settings`), the page built from
``/api/info``, and any other field refused, naming it."""

from __future__ import annotations

import re

import pytest

from layerdecomp.errors import InputError
from layerdecomp.layers import DecomposeConfig
from layerdecomp.options import option_fields, renamed
from layerdecomp.serve import Settings
from layerdecomp.serve.app import STATIC
from layerdecomp.serve.form import FIELDS, FORM_OPTIONS
from tests.layerdecomp.serve.helpers import upload, wait_for

pytestmark = pytest.mark.usefixtures("one_thread")

ROUTES = ("/api/jobs", "/api/decompose")

UNKNOWN = [
    ("renamed", {"iterations": "3"}, "iterations: renamed; use updates"),
    ("renamed too", {"newton_iters": "2"}, "newton_iters: renamed; use iters"),
    ("misspelt", {"sample": "2"}, "sample: not a field of this request; did you mean 'samples'?"),
    ("unknown", {"foo": "1"}, "foo: not a field of this request"),
    ("not on the form", {"tol": "0.5"}, "tol: not an option this server takes"),
]


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("case", UNKNOWN, ids=[case[0] for case in UNKNOWN])
def test_a_field_the_request_does_not_have_is_refused_naming_it(client, route, case):
    _, fields, message = case
    response = client.post(route, **upload(**fields))
    assert response.status_code == 422, response.text
    assert response.json()["error"].startswith(message), response.json()


@pytest.mark.parametrize("route", ROUTES)
def test_a_query_parameter_is_refused(client, route):
    response = client.post(f"{route}?updates=3", **upload())
    assert response.status_code == 422
    assert response.json() == {"error": "updates: send the request's fields in its multipart body"}


def test_a_request_with_every_field_runs(client):
    """Each field of the request, the form's options included, is taken (not refused)."""
    options = option_fields(DecomposeConfig)
    given = {shown.name: str(options[shown.name].default) for shown in FORM_OPTIONS}
    given |= {"updates": "2", "samples": "2", "runs": "1", "iters": "1", "work_side": "16"}
    fields = upload(formats=["png"], **given)
    assert set(fields["data"]) | set(fields["files"]) == {*FIELDS, *given}
    job = client.post("/api/jobs", **fields)
    assert job.status_code == 202, job.text
    assert wait_for(client, job.json()["id"])["state"] == "done"
    assert client.post("/api/decompose", **fields).status_code == 200


def test_api_info_declares_the_forms_options_in_order(make_client):
    info = make_client(max_updates=5, max_work_side=64).get("/api/info").json()
    options = option_fields(DecomposeConfig)
    assert [spec["name"] for spec in info["options"]] == [shown.name for shown in FORM_OPTIONS]
    for spec, shown in zip(info["options"], FORM_OPTIONS, strict=True):
        leaf = options[shown.name]
        assert (spec["label"], spec["more"]) == (shown.label, shown.more)
        assert (spec["default"], spec["help"]) == (leaf.default, leaf.help)
        assert info["defaults"][shown.name] == leaf.default
        assert spec["kind"] in ("int", "float", "bool", "str")
        if spec["kind"] in ("int", "float"):  # one request cannot hold the queue for hours
            assert spec["max"] is not None, spec
    by_name = {spec["name"]: spec for spec in info["options"]}
    assert by_name["updates"]["max"] == 5 and by_name["work_side"]["max"] == 64
    assert (by_name["noise_level"]["max"], by_name["noise_level"]["max_open"]) == (1, True)
    assert by_name["work_side"]["placeholder"] == "the image's"  # the toy model has no native size


def test_the_servers_limits_bound_the_fields(make_client):
    client = make_client(max_updates=5)
    response = client.post("/api/decompose", **upload(updates="6"))
    assert response.status_code == 422
    assert response.json()["error"] == "updates: Input should be less than or equal to 5"
    assert client.post("/api/decompose", **upload(updates="5")).status_code == 200


def test_settings_are_declared_with_help_and_bounds():
    fields = option_fields(Settings)
    assert all(field.help for field in fields.values()), fields
    assert Settings(max_upload_mb=0.5).max_upload_bytes == 2**19
    with pytest.raises(InputError, match="keep: expected ≥ 1, got 0"):
        Settings(keep=0)
    options = option_fields(DecomposeConfig)
    for name in fields:  # a max_<option> field limits a field of the form
        if name.startswith("max_") and name[4:] in options:
            assert name[4:] in [shown.name for shown in FORM_OPTIONS], name


def test_the_page_names_no_option():
    """The page builds its inputs from ``/api/info``: no option (nor an earlier name of one) is
    named in its HTML, script or style, as an id, a name or a string."""
    names = [*option_fields(DecomposeConfig), *renamed(DecomposeConfig)]
    for path in sorted(STATIC.iterdir()):
        text = path.read_text()
        for name in names:
            pattern = rf"""(["'`]){name}\1|#{name}\b|\b(id|name|for)=["']?{name}\b"""
            found = re.search(pattern, text)
            assert found is None, f"{path.name} names the option {name}: {found.group(0)!r}"
