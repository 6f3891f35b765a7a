"""A vendor from profile to running process: profiles (TOML -> frozen dataclasses), the registry of shipped
and local profiles, declared deviations, provisioning, bringing the vendor up (runtime) and the preflight."""
