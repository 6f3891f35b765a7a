"""--sut factories that import fine but cannot make a provider (tests/corpus/suts_with_vendor.txt): found at start,
one usage error, not a failure in every provider check."""


def raising(open_session):
    raise RuntimeError("pool misconfigured: POOL_SIZE is not set")


def not_a_provider(open_session):
    return 42
