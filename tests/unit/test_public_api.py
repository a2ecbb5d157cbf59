import zturbo


def test_public_api_is_pinned():
    # Adding to the public API is a decision: update this list on purpose.
    assert sorted(zturbo.__all__) == sorted([
        "Cancelled", "CorruptWeights", "Engine", "GenerationFailed", "GenerationParams", "InvalidParams",
        "OutOfMemory", "PromptEncoding", "Result", "WeightsNotFound", "ZTurboError", "__version__",
        "read_recipe",
    ])
    for name in zturbo.__all__:
        assert hasattr(zturbo, name)


def test_error_hierarchy_exit_codes():
    assert issubclass(zturbo.InvalidParams, zturbo.ZTurboError) and zturbo.InvalidParams.exit_code == 2
    assert zturbo.WeightsNotFound.exit_code == 1
    assert zturbo.Cancelled.exit_code == 130
