"""`wendy apply -m manifest.yaml` (cmd/apply.go) against the running cluster: manifests of
a pipeline, a resource provider and an artifact store, applied in any order and applied
twice. apply lists by the manifest's identifiedBy keys, compares the first item with the
manifest's spec by reflect.DeepEqual (YAML values against JSON values), and POSTs the spec
when they differ: a second apply of the same manifests must change nothing."""

from __future__ import annotations

import pytest

from tests.clients.conftest import IMAGE

pytestmark = pytest.mark.e2e

PIPELINE = """\
apiVersion: wendy.bob.cd/v1alpha1
kind: Pipeline
identifiedBy:
  - group
  - name
spec:
  group: dev
  name: {name}
  image: {image}
  vars:
    LOG_LEVEL: error
  steps:
    - cmd: echo build started.
    - needs_resource: source
      cmd: sh test.sh
    - needs_resource: source
      vars:
        GOOS: linux
        GOARCH: amd64
      cmd: sh build.sh
      produces_artifact:
        name: app
        path: build/libs
        store: {store}
  resources:
    - name: source
      type: external
      provider: {provider}
      params:
        repo: {repo}
        branch: main
"""

PLUGIN = """\
apiVersion: wendy.bob.cd/v1alpha1
kind: {kind}
identifiedBy:
  - name
spec:
  name: {name}
  url: {url}
"""


def test_applying_the_same_manifests_twice_changes_nothing_the_second_time(
    bob, wendy, plugins, unique, repo, tmp_path
):
    # Given manifests of a pipeline and of the provider and store it names
    provider, store = f"git-{unique}", f"local-{unique}"
    (tmp_path / "pipeline.yaml").write_text(
        PIPELINE.format(name=unique, image=IMAGE, store=store, provider=provider, repo=repo)
    )
    (tmp_path / "provider.yaml").write_text(
        PLUGIN.format(kind="ResourceProvider", name=provider, url=plugins["git"])
    )
    (tmp_path / "store.yaml").write_text(
        PLUGIN.format(kind="ArtifactStore", name=store, url=plugins["local"])
    )
    manifests = ["pipeline.yaml", "provider.yaml", "store.yaml"]  # the pipeline first

    # When each is applied, then all of them again
    first = {m: wendy.run("apply", "-m", m) for m in manifests}
    second = {m: wendy.run("apply", "-m", m) for m in manifests}

    # Then the first apply creates each (in any order), the second changes nothing
    for result in first.values():
        assert result.exit_code == 0, result.report()
        assert [msg for _lvl, msg, _a in result.console.logs] == ["Updated"], result.report()
    for result in second.values():
        assert result.exit_code == 0, result.report()
        assert [msg for _lvl, msg, _a in result.console.logs] == ["Unchanged"], result.report()
        assert [e.method for e in result.exchanges] == ["GET"], result.report()


def test_an_applied_pipeline_runs(bob, wendy, plugins, unique, repo, tmp_path):
    # Given a provider, a store and a pipeline applied from manifests
    provider, store = f"git-{unique}", f"local-{unique}"
    (tmp_path / "provider.yaml").write_text(
        PLUGIN.format(kind="ResourceProvider", name=provider, url=plugins["git"])
    )
    (tmp_path / "store.yaml").write_text(
        PLUGIN.format(kind="ArtifactStore", name=store, url=plugins["local"])
    )
    (tmp_path / "pipeline.yaml").write_text(
        PIPELINE.format(name=unique, image=IMAGE, store=store, provider=provider, repo=repo)
    )
    for manifest in ("provider.yaml", "store.yaml", "pipeline.yaml"):
        applied = wendy.run("apply", "-m", manifest)
        assert applied.exit_code == 0, applied.report()

    # When it is started
    run_id = bob.start("dev", unique)

    # Then it passes, its steps inside the checkout
    assert bob.wait_terminal(run_id) == "passed", bob.log_lines(run_id)
    assert "tests passed in source" in bob.log_lines(run_id)
