"""The layer trim (`make build`): what it leaves out, that its lists match the code, and (slow) that
every function still imports, and creates the clients it needs, from a trimmed install of the
layer's requirements alone."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from voicedev import layer_trim
from voicedev.bench import cold, size
from voicedev.template_resources import PROJECT_ROOT, load_template, resources_of_type

from tests.support import deployed_environment

LAYER_SOURCE = PROJECT_ROOT / "layers" / "common"


def dist(site: Path, name: str, files: dict[str, bytes], requires: tuple[str, ...] = ()) -> Path:
    info = site / f"{name.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True)
    headers = [f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0"] + [
        f"Requires-Dist: {r}" for r in requires
    ]
    (info / "METADATA").write_text("\n".join(headers) + "\n")
    for relative, content in files.items():
        path = site / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    lines = [f"{relative},sha256=x,{len(content)}" for relative, content in files.items()]
    lines.append(f"{info.name}/RECORD,,")
    (info / "RECORD").write_text("\n".join(lines) + "\n")
    return info


@pytest.fixture
def site(tmp_path: Path) -> Path:
    site = tmp_path / "python"
    dist(
        site,
        "botocore",
        {
            "botocore/__init__.py": b"",
            "botocore/data/endpoints.json": b"{}",
            "botocore/data/dynamodb/2012-08-10/service-2.json.gz": b"d",
            "botocore/data/ec2/2016-11-15/service-2.json.gz": b"e" * 100,
        },
    )
    dist(
        site,
        "boto3",
        {
            "boto3/__init__.py": b"",
            "boto3/data/dynamodb/x/resources-1.json": b"r",
            "boto3/data/ec2/x/r.json": b"e",
        },
    )
    dist(
        site,
        "twilio",
        {
            "twilio/__init__.py": b"",
            "twilio/request_validator.py": b"v",
            "twilio/twiml/voice_response.py": b"t",
            "twilio/rest/__init__.py": b"r" * 1000,
            "twilio/http/http_client.py": b"h",
            "twilio/base/exceptions.py": b"b",
        },
        requires=("requests", "aiohttp"),
    )
    dist(site, "requests", {"requests/__init__.py": b"q", "requests/api.py": b"q"})
    # compileall's output is in no RECORD: it must go with its package.
    (site / "requests" / "__pycache__").mkdir()
    (site / "requests" / "__pycache__" / "api.cpython-313.pyc").write_bytes(b"c")
    (site / "twilio" / "__pycache__").mkdir()
    (site / "twilio" / "__pycache__" / "request_validator.cpython-313.pyc").write_bytes(b"c")
    dist(site, "wrapt", {"wrapt/__init__.py": b"", "wrapt-stubs/__init__.pyi": b"s", "wrapt/x.pyi": b"s"})
    (site / "requirements.txt").write_text("twilio\n")
    return site


def files(site: Path) -> set[str]:
    return {path.relative_to(site).as_posix() for path in site.rglob("*") if path.is_file()}


def test_trim_keeps_what_runs_and_drops_what_never_does(site: Path) -> None:
    # Given a layer as pip installs it
    # When it is trimmed
    report = layer_trim.trim(site)
    left = files(site)
    # Then twilio's validator and TwiML stay, its REST client and the HTTP stack only it uses go
    assert {"twilio/__init__.py", "twilio/request_validator.py", "twilio/twiml/voice_response.py"} <= left
    assert "twilio/__pycache__/request_validator.cpython-313.pyc" in left
    assert not {p for p in left if p.startswith(("twilio/rest", "twilio/http", "twilio/base", "requests"))}
    assert not (site / "requests-1.0.dist-info").exists()
    # botocore and boto3 keep the models of the services called, and botocore's shared data
    assert "botocore/data/dynamodb/2012-08-10/service-2.json.gz" in left
    assert "botocore/data/endpoints.json" in left
    assert "boto3/data/dynamodb/x/resources-1.json" in left
    assert not {p for p in left if "/ec2/" in p}
    # stubs and the build's copy of requirements.txt go
    assert not {p for p in left if p.endswith(".pyi") or p == "requirements.txt"}
    # and RECORD lists only what is left
    record = (site / "twilio-1.0.dist-info" / "RECORD").read_text()
    assert "twilio/rest" not in record
    assert "twilio/request_validator.py" in record
    assert report.dropped_distributions == ["requests"]
    assert report.files_after == len(left)
    assert report.bytes_before > report.bytes_after
    # and a trimmed tree has nothing left to trim
    assert layer_trim.problems(site) == []


def test_check_names_what_came_back(site: Path) -> None:
    # Given a trimmed layer, to which twilio's REST client comes back
    layer_trim.trim(site)
    (site / "twilio" / "rest").mkdir()
    (site / "twilio" / "rest" / "__init__.py").write_text("")
    # When it is checked
    exit_code = layer_trim.main(["--check", str(site)])
    # Then it fails, naming the file
    assert exit_code == 1
    assert layer_trim.problems(site) == ["twilio/rest/__init__.py (twilio REST client)"]


def test_the_kept_services_cover_every_client_the_code_creates() -> None:
    # Every client the functions create on their first request (the cold-start benchmark checks
    # that list against the processes), and every client/resource named in the shared package.
    services = {service for function in cold.FUNCTIONS for service in function.clients}
    source = "\n".join(path.read_text() for path in (LAYER_SOURCE / "voice_webhooks").rglob("*.py"))
    services |= set(re.findall(r"""\.(?:client|resource)\(\s*["']([a-z0-9-]+)["']""", source))
    assert services, "no AWS service found: the scan is broken"
    assert services <= set(layer_trim.KEEP_AWS_SERVICES)


def test_the_dropped_distributions_are_needed_only_by_twilio() -> None:
    # From the development environment's metadata (the same pins): what the layer's requirements
    # need without twilio must not include anything the trim drops, and each dropped one must be
    # something twilio pulls in (else the list is stale).
    botocore = importlib.util.find_spec("botocore")
    assert botocore is not None and botocore.origin is not None
    installed = Path(botocore.origin).parents[1]
    dists = size.distributions(installed)
    requirements = size.read_requirements()
    without_twilio = size.closure([r for r in requirements if r.name != "twilio"], dists)
    everything = size.closure(requirements, dists)
    dropped = {name.lower() for name in layer_trim.DROP_DISTRIBUTIONS}
    assert not (dropped & without_twilio)
    assert dropped <= everything


# Runs in a fresh interpreter without site-packages: only the trimmed layer (and the function's
# own directory, as Lambda puts LAMBDA_TASK_ROOT first) is importable.
_PROBE = """
import importlib.util, json, sys
site, app_path, services = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
sys.path[:0] = [str(__import__("pathlib").Path(app_path).parent), site]
spec = importlib.util.spec_from_file_location("app", app_path)
module = importlib.util.module_from_spec(spec)
sys.modules["app"] = module
spec.loader.exec_module(module)
import boto3, botocore.exceptions
clients = [boto3.client(name).meta.service_model.service_name for name in services]
try:
    boto3.client("ec2")
    unknown = False
except botocore.exceptions.UnknownServiceError:
    unknown = True
outside = sorted({m.__file__ for m in list(sys.modules.values())
                  if getattr(m, "__file__", None) and "site-packages" in m.__file__})
print(json.dumps({"clients": clients, "ec2_unknown": unknown, "outside": outside,
                  "handler": callable(getattr(module, "lambda_handler", None))}))
"""


@pytest.fixture(scope="module")
def trimmed_layer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """layers/common/requirements.txt installed for this interpreter, as `sam build` installs it
    for the runtime, with our package beside it, then trimmed as `make build` does."""
    target = tmp_path_factory.mktemp("layer") / "python"
    completed = subprocess.run(  # noqa: S603 - pip of this interpreter
        [
            sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile",
            "--target", str(target), "-r", str(LAYER_SOURCE / "requirements.txt"),
        ],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    if completed.returncode != 0:
        pytest.fail("pip install --target failed: " + completed.stderr.strip()[-800:])
    shutil.copytree(LAYER_SOURCE / "voice_webhooks", target / "voice_webhooks")
    shutil.copy(LAYER_SOURCE / "requirements.txt", target / "requirements.txt")
    layer_trim.trim(target)
    return target


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_trimmed_install_holds_nothing_never_imported(trimmed_layer: Path) -> None:
    # Given the requirements installed and trimmed
    # Then nothing the rules drop is left, twilio's REST client and its HTTP stack included
    assert layer_trim.problems(trimmed_layer) == []
    tops = {path.name for path in trimmed_layer.iterdir()}
    assert not tops & {"aiohttp", "requests", "jwt", "yarl", "multidict", "idna", "charset_normalizer"}
    assert not (trimmed_layer / "twilio" / "rest").exists()
    services = {path.name for path in (trimmed_layer / "botocore" / "data").iterdir() if path.is_dir()}
    assert services == set(layer_trim.KEEP_AWS_SERVICES)


# Every function in the template (all of functions/*): the cold-start bench's, with the clients
# each creates on its first request, and the reconciler, which the bench does not run.
_RECONCILER = cold.ColdFunction("reconciler", "ReconcilerFunction", ("secretsmanager", "dynamodb", "sqs"), ())
_FUNCTIONS = (*cold.FUNCTIONS, _RECONCILER)


def test_the_import_check_covers_every_function() -> None:
    template = load_template()
    code = {
        Path(props["CodeUri"]).name: logical_id
        for logical_id, props in resources_of_type("AWS::Serverless::Function", template).items()
    }
    assert {f.name: f.logical_id for f in _FUNCTIONS} == code
    assert set(code) == {path.parent.name for path in (PROJECT_ROOT / "functions").glob("*/app.py")}


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("function", list(_FUNCTIONS), ids=lambda f: f.name)
def test_every_function_imports_from_the_trimmed_layer_alone(
    trimmed_layer: Path, function: cold.ColdFunction
) -> None:
    # Given only the trimmed layer on the path (no site-packages), with tracing active as deployed,
    # and the function's environment from the template (its settings are checked at import)
    env = {
        **deployed_environment(function.logical_id),
        "PATH": os.environ.get("PATH", ""),
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_LAMBDA_FUNCTION_NAME": function.logical_id,
        "AWS_XRAY_CONTEXT_MISSING": "IGNORE_ERROR",
    }
    app = PROJECT_ROOT / "functions" / function.name / "app.py"
    # When the function's module is loaded by path and its clients are created
    completed = subprocess.run(  # noqa: S603 - this interpreter, our own probe
        [sys.executable, "-S", "-c", _PROBE, str(trimmed_layer), str(app), json.dumps(function.clients)],
        capture_output=True, text=True, env=env, timeout=120, check=False, cwd=trimmed_layer,
    )  # fmt: skip
    # Then it imports, every client it needs exists, and a service left out is refused
    assert completed.returncode == 0, completed.stderr[-2000:]
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert result["handler"]
    assert result["clients"] == list(function.clients)
    assert result["ec2_unknown"]
    assert result["outside"] == []
