import subprocess
import sys

import zturbo


def test_public_api_is_pinned():
    # Adding to the public API is a decision: update this list on purpose.
    assert sorted(zturbo.__all__) == sorted([
        "Cancelled", "CorruptWeights", "Engine", "GenerationFailed", "GenerationParams", "InvalidParams",
        "LoadOptions", "OutOfMemory", "PromptEncoding", "Result", "WeightsNotFound", "ZTurboError", "__version__",
        "load", "read_recipe", "seed_series",
    ])
    for name in zturbo.__all__:
        assert hasattr(zturbo, name)


def test_error_hierarchy_exit_codes():
    assert issubclass(zturbo.InvalidParams, zturbo.ZTurboError) and zturbo.InvalidParams.exit_code == 2
    assert zturbo.WeightsNotFound.exit_code == 1
    assert zturbo.Cancelled.exit_code == 130


def _imports_torch(code: str) -> bool:
    out = subprocess.run([sys.executable, "-c", f"{code}\nimport sys; print('torch' in sys.modules)"],
                         capture_output=True, text=True, check=True)
    return out.stdout.strip().splitlines()[-1] == "True"


def test_the_package_face_does_not_import_torch():
    # values, params, options and the CLI's parser are light: torch loads only with the engine
    for code in ("import zturbo", "import zturbo.params", "import zturbo.defaults",
                 "from zturbo import GenerationParams, LoadOptions, seed_series, InvalidParams; "
                 "LoadOptions(model='tiny', quant='q8'); seed_series(1, 3)",
                 "from zturbo.cli import build_parser; build_parser().parse_args(['report', 'x'])"):
        assert not _imports_torch(code), code
    assert _imports_torch("import zturbo; zturbo.Engine")


def test_unknown_attribute_is_an_attribute_error():
    import pytest

    with pytest.raises(AttributeError, match="no attribute 'Engin'"):
        zturbo.Engin  # noqa: B018
