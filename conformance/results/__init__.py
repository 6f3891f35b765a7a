"""The results document: records, the incremental writer, reading a user's file, the JSON Schema, trace slices."""
