"""Bob's own example pipeline (the request-body example of PipelineCreate in bob-cd/bob
apiserver/resources/bob/api.yaml), unchanged but for what must be offline here: the image
(bob-test/busybox instead of gradle:jdk11), the repository (a local one served by the
reference git provider) and the gradle commands (shell scripts doing the same thing).

What it relies on, in Bob's runner (runner/src/runner/pipeline.clj `exec-step`,
engine.clj `create-container`): a step with `needs_resource: X` runs with its working
directory at the resource (`/root/X`); each step's container is committed and the next
step starts from that image, and a commit keeps the container's working directory
(libpod `importBuilder.SetWorkDir(c.config.Spec.Process.Cwd)`), so the steps after it
(`gradle shadowJar`) go on in the resource's directory. An artifact's path is joined to
the working directory of the step that produces it, and the store receives the
container's archive of that path: for a file, a tar holding the file under its own name."""

from __future__ import annotations

import io
import tarfile

import pytest

from tests.clients.conftest import IMAGE

pytestmark = pytest.mark.e2e

JAR = "bob-example-1.0-SNAPSHOT-all.jar"


def _example(repo) -> dict:
    return {
        "image": IMAGE,
        "vars": {"LOG_LEVEL": "error"},
        "steps": [
            {"cmd": "echo build started."},
            {"needs_resource": "source-code", "cmd": "sh test.sh"},
            {
                "cmd": "sh build.sh",
                "produces_artifact": {
                    "name": "uberjar",
                    "path": f"build/libs/{JAR}",
                    "store": "local",
                },
            },
        ],
        "resources": [
            {
                "name": "source-code",
                "type": "external",
                "provider": "git",
                "params": {"repo": str(repo), "branch": "main"},
            }
        ],
    }


def test_bobs_example_pipeline_runs_unchanged_and_its_artifact_comes_back(
    bob, plugins, unique, repo
):
    # Given the plugins the example names, "git" and "local", and the example pipeline
    for kind, name in (("resource-providers", "git"), ("artifact-stores", "local")):
        r = bob.http.post(f"/{kind}/{name}", json={"url": plugins[name]})
        assert r.status_code == 202, r.text
    bob.create_pipeline("dev", unique, _example(repo))

    # When it runs
    run_id = bob.start("dev", unique)

    # Then it passes: the tests ran inside the checkout, and so did the build after them
    status = bob.wait_terminal(run_id)
    lines = bob.log_lines(run_id)
    assert status == "passed", "\n".join(lines)
    assert "tests passed in source-code" in lines

    # And its artifact comes back through the API: the jar built in the checkout, as the
    # container engine archives a file (under its own name)
    r = bob.http.get(
        f"/pipelines/groups/dev/names/{unique}/runs/{run_id}/artifact-stores/local/artifact/uberjar"
    )
    assert r.status_code == 200, r.text
    with tarfile.open(fileobj=io.BytesIO(r.content)) as archive:
        files = {m.name: archive.extractfile(m).read() for m in archive if m.isreg()}
    assert files == {JAR: b"jar of source-code\n"}
