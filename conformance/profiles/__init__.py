"""The vendor profiles shipped with the harness (data; see TEMPLATE.toml)."""
