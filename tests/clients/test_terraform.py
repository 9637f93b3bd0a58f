"""The Terraform provider's sequences (tests/clients/terraform.py) against the running
cluster: create (POST, then its reconcile loop), read, a plan after apply, update and
delete, for a resource provider, an artifact store and a pipeline, with the exact bodies
the provider sends."""

from __future__ import annotations

import pytest

from tests.clients import terraform
from tests.clients.conftest import IMAGE
from tests.clients.terraform import Artifact, Pipeline, Plugin, Resource, Step

pytestmark = pytest.mark.e2e


@pytest.fixture
def provider(bob):
    """The provider as configured by default, pointed at the cluster."""
    client = terraform.Provider(bob.cluster.api_url)
    yield client
    client.close()


def _listed(bob, kind: str) -> list:
    r = bob.http.get(f"/{kind}s")
    assert r.status_code == 200, r.text
    return r.json()["message"]


@pytest.mark.parametrize("kind", [terraform.RESOURCE_PROVIDER, terraform.ARTIFACT_STORE])
def test_terraform_creates_reads_and_deletes_a_plugin_without_drift(
    bob, provider, plugins, unique, kind
):
    # Given a plugin block
    url = plugins["git"] if kind == terraform.RESOURCE_PROVIDER else plugins["local"]
    config = Plugin(f"{unique}-tf", url)

    # When it is applied
    try:
        state = provider.create_plugin(kind, config)
    except terraform.TerraformError as exc:
        pytest.fail(f"terraform apply: {exc}\n{provider.report()}")

    # Then the provider sent exactly its body and converged, and a plan shows nothing
    post = provider.exchanges[0]
    assert (post.method, post.url, post.body) == (
        "POST",
        f"{bob.cluster.api_url}/{kind}s/{config.name}",
        f'{{"url":"{url}"}}'.encode(),
    )
    refreshed = provider.read_plugin(kind, state)
    assert (
        terraform.plan({"name": config.name, "url": config.url}, refreshed, terraform.PLUGIN_SCHEMA)
        == []
    )

    # When it is destroyed
    try:
        provider.delete_plugin(kind, state)
    except terraform.TerraformError as exc:
        pytest.fail(f"terraform destroy: {exc}\n{provider.report()}")

    # Then Bob no longer lists it
    assert config.name not in [item.get("name") for item in _listed(bob, kind)]


def test_terraform_creates_updates_reads_and_deletes_a_pipeline_without_drift(
    bob, provider, plugins, unique, repo
):
    # Given the plugins it names, created by Terraform first, and a pipeline block
    git = Plugin(f"git-{unique}", plugins["git"])
    local = Plugin(f"local-{unique}", plugins["local"])
    for kind, plugin in ((terraform.RESOURCE_PROVIDER, git), (terraform.ARTIFACT_STORE, local)):
        provider.create_plugin(kind, plugin)
    config = Pipeline(
        group="tf",
        name=unique,
        image=IMAGE,
        vars={"GOOS": "linux", "GOARCH": "amd64"},
        resources=(
            Resource("source", "external", git.name, {"repo": str(repo), "branch": "main"}),
        ),
        steps=(
            Step("echo build started."),
            Step("sh test.sh", needs_resource="source"),
            Step(
                "sh build.sh",
                needs_resource="source",
                produces_artifact=Artifact("app", "build/libs", local.name),
            ),
        ),
    )

    # When it is applied
    try:
        created = provider.create_pipeline(config)
    except terraform.TerraformError as exc:
        pytest.fail(f"terraform apply: {exc}\n{provider.report()}")

    # Then exactly this was posted, Bob converged, and a plan after apply shows no drift
    post = next(e for e in provider.exchanges if e.url.endswith(f"/names/{unique}"))
    assert (
        post.body
        == (
            '{"image":"bob-test/busybox:latest",'
            f'"resources":[{{"name":"source","params":{{"branch":"main","repo":"{repo}"}},'
            f'"provider":"{git.name}","type":"external"}}],'
            '"steps":[{"cmd":"echo build started.","needs_resource":""},'
            '{"cmd":"sh test.sh","needs_resource":"source"},'
            '{"cmd":"sh build.sh","needs_resource":"source",'
            f'"produces_artifact":{{"name":"app","path":"build/libs","store":"{local.name}"}}}}],'
            '"vars":{"GOARCH":"amd64","GOOS":"linux"}}'
        ).encode()
    )
    assert created.set_errors == [], created.set_errors
    refreshed = provider.read_pipeline(created.state)
    assert refreshed.set_errors == [], refreshed.set_errors
    assert (
        terraform.plan(terraform.data_get(config), refreshed.state, terraform.PIPELINE_SCHEMA) == []
    )

    # When a variable changes and it is applied again
    changed = Pipeline(**{**config.__dict__, "vars": {"GOOS": "linux", "GOARCH": "arm64"}})
    try:
        updated = provider.update_pipeline(changed, refreshed.state)
    except terraform.TerraformError as exc:
        pytest.fail(f"terraform apply (update): {exc}\n{provider.report()}")

    # Then it converges again with no drift, and runs
    assert (
        terraform.plan(terraform.data_get(changed), updated.state, terraform.PIPELINE_SCHEMA) == []
    )
    run_id = bob.start("tf", unique)
    assert bob.wait_terminal(run_id) == "passed", bob.log_lines(run_id)

    # When it is destroyed
    try:
        provider.delete_pipeline(updated.state)
    except terraform.TerraformError as exc:
        pytest.fail(f"terraform destroy: {exc}\n{provider.report()}")

    # Then Bob lists it no more
    r = bob.http.get("/pipelines", params={"group": "tf", "name": unique})
    assert r.status_code == 200 and r.json()["message"] == [], r.text
