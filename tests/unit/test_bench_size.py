"""The package-size benchmark's own logic: zipped and unzipped sizes, which distributions the
layer's requirements pull in (and what dropping boto3 would remove), and when `.aws-sam/build`
is fresh enough to reuse."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from voicedev.bench import size
from voicedev.template_resources import PROJECT_ROOT, load_template, resources_of_type


def dist(site: Path, name: str, requires: list[str], files: dict[str, bytes]) -> None:
    info = site / f"{name.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True)
    headers = [f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0"] + [
        f"Requires-Dist: {r}" for r in requires
    ]
    (info / "METADATA").write_text("\n".join(headers) + "\n\nLong description: Requires-Dist: nope\n")
    for relative, content in files.items():
        path = site / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    (info / "RECORD").write_text("".join(f"{relative},sha256=x,{len(c)}\n" for relative, c in files.items()))


@pytest.fixture
def site(tmp_path: Path) -> Path:
    site = tmp_path / "python"
    dist(site, "boto3", ["botocore", "s3transfer", "jmespath"], {"boto3/__init__.py": b"b" * 1000})
    dist(site, "botocore", ["jmespath", "urllib3"], {"botocore/__init__.py": b"c" * 5000})
    dist(site, "s3transfer", ["botocore"], {"s3transfer/__init__.py": b"s" * 300})
    dist(site, "jmespath", [], {"jmespath/__init__.py": b"j" * 10})
    dist(site, "urllib3", [], {"urllib3/__init__.py": b"u" * 10})
    dist(site, "aws-xray-sdk", ["botocore>=1.11", "wrapt"], {"aws_xray_sdk/__init__.py": b"x"})
    dist(site, "wrapt", [], {"wrapt/__init__.py": b"w"})
    dist(
        site,
        "aws-lambda-powertools",
        ["typing-extensions", "aws-xray-sdk<3; extra == 'tracer'", "boto3; extra == 'aws-sdk'"],
        {"aws_lambda_powertools/__init__.py": b"p"},
    )
    dist(site, "typing-extensions", [], {"typing_extensions.py": b"t"})
    dist(site, "twilio", ["requests", "legacy-lib; python_version < '3.8'"], {"twilio/__init__.py": b"tw"})
    dist(site, "requests", [], {"requests/__init__.py": b"r"})
    dist(site, "legacy-lib", [], {"legacy_lib.py": b"l"})
    return site


REQUIREMENTS = [Requirement(r) for r in ("aws-lambda-powertools[tracer]==3.0", "boto3==1.0", "twilio==9.0")]


def test_the_requirements_pull_in_their_dependencies_with_the_extras_asked_for(site: Path) -> None:
    dists = size.distributions(site)

    needed = size.closure(REQUIREMENTS, dists)

    assert needed == {
        "aws-lambda-powertools",
        "aws-xray-sdk",
        "typing-extensions",
        "wrapt",
        "boto3",
        "botocore",
        "s3transfer",
        "jmespath",
        "urllib3",
        "twilio",
        "requests",
    }  # not legacy-lib: its marker is false on python 3.13


def test_without_boto3_only_what_nothing_else_needs_goes(site: Path) -> None:
    dists = size.distributions(site)
    everything = size.closure(REQUIREMENTS, dists)

    without = size.closure([r for r in REQUIREMENTS if r.name != "boto3"], dists)

    # botocore stays: the X-Ray SDK (Powertools' tracer extra) requires it
    assert everything - without == {"boto3", "s3transfer"}


def test_each_distribution_lists_the_files_its_record_names(site: Path) -> None:
    dists = size.distributions(site)

    assert "boto3/__init__.py" in dists["boto3"].files
    assert "boto3-1.0.dist-info/RECORD" in dists["boto3"].files
    assert [str(r) for r in dists["botocore"].requires] == ["jmespath", "urllib3"]
    assert dists["boto3"].version == "1.0"


def test_an_artifact_is_measured_as_its_zip(tmp_path: Path, site: Path) -> None:
    artifact = size.measure(site, "layer")

    files = [path for path in site.rglob("*") if path.is_file()]
    assert artifact.files == len(files)
    assert artifact.unzipped == sum(path.stat().st_size for path in files)
    assert set(artifact.by_file) == {path.relative_to(site).as_posix() for path in files}
    assert artifact.by_file["botocore/__init__.py"][0] == 5000
    # the same bytes, zipped with deflate as a deployment package
    reference = tmp_path / "reference.zip"
    with zipfile.ZipFile(reference, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(site.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(site).as_posix())
    assert artifact.zipped == reference.stat().st_size


def test_what_no_function_imports_is_listed_with_its_size(tmp_path: Path, site: Path) -> None:
    # Given a layer whose functions imported boto3, botocore, the tracer, Powertools and twilio
    layer_root = tmp_path / "layer"
    shutil.copytree(site, layer_root / "python")
    layer = size.measure(layer_root, "CommonLayer")
    report = size.SizeReport(
        how="test",
        artifacts=[layer],
        layer_python_dists=size.distributions(layer_root / "python"),
        rows_by_dist=[],
        sdk_only=(0, 0, []),
        runtime_provided=(0, 0, []),
    )
    imported = {
        "boto3",
        "botocore",
        "jmespath",
        "urllib3",
        "aws_xray_sdk",
        "wrapt",
        "aws_lambda_powertools",
        "twilio",
    }

    unzipped, zipped, names = size.never_imported(report, imported)

    # Then the rest is listed, with the bytes its files take in the layer
    assert names == ["legacy-lib", "requests", "s3transfer", "typing-extensions"]
    expected = sum(
        layer.by_file[f"python/{path}"][0] for name in names for path in report.layer_python_dists[name].files
    )
    assert unzipped == expected
    assert zipped > 0
    assert size.top_level_names(report.layer_python_dists["typing-extensions"]) == {"typing_extensions"}
    assert size.top_level_names(report.layer_python_dists["aws-xray-sdk"]) == {"aws_xray_sdk"}


def fresh_build(root: Path) -> Path:
    """A copy of what `sam build` makes from the working tree: the layer's sources and each function."""
    build = root / "build"
    layer = build / size.LAYER / "python"
    common = PROJECT_ROOT / "layers" / "common"
    for source in common.rglob("*.py"):
        if "__pycache__" in source.parts:
            continue
        target = layer / source.relative_to(common)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, target)
    shutil.copy(common / "requirements.txt", layer / "requirements.txt")
    for name, props in resources_of_type("AWS::Serverless::Function", load_template()).items():
        shutil.copytree(
            PROJECT_ROOT / props["CodeUri"], build / name, ignore=shutil.ignore_patterns("__pycache__")
        )
    return build


def test_a_build_of_the_working_tree_is_fresh_and_a_changed_source_makes_it_stale(tmp_path: Path) -> None:
    build = fresh_build(tmp_path)
    assert size.stale_reasons(build=build) == []

    (build / size.LAYER / "python" / "voice_webhooks" / "edge" / "routes.py").write_text("# older\n")
    shutil.rmtree(build / "StatusFunction")

    reasons = size.stale_reasons(build=build)
    assert "StatusFunction is not built" in reasons
    assert "layers/common/voice_webhooks/edge/routes.py changed since the build" in reasons


def test_a_missing_build_is_stale(tmp_path: Path) -> None:
    assert size.stale_reasons(build=tmp_path) == [f"{tmp_path} has no CommonLayer"]
